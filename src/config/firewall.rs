//! Validation of `[firewall]`: every expression parsed (errors give the rule index and the
//! column), actions, limits and where the rules apply.
use super::parse::Errs;
use super::schema::RawConfig;
use crate::firewall::parser::Value;
use crate::firewall::scheme::Field;
use crate::firewall::{self, Action, Expr, Rule};
use crate::limits::MAX_RULES;
use std::collections::HashMap;

/// The most `max_expression_len` may be raised to. Nesting is bounded by the parser
/// (`firewall::parser::MAX_DEPTH`) whatever the length; this keeps one rule's text and tokens
/// small.
pub const MAX_EXPRESSION_LEN: usize = 65_536;

#[derive(Debug, Clone, PartialEq)]
pub struct FirewallConf {
    pub rules: Vec<Rule>,
    pub default_action: Action,
    pub ingress: bool,
    pub egress: bool,
    /// Each rule's identity for its counters across reloads: its `id`, else its phase, action
    /// and expression (and which occurrence, for exact duplicates).
    pub keys: Vec<String>,
}

fn action(s: &str) -> Option<Action> {
    match s {
        "allow" => Some(Action::Allow),
        "block" => Some(Action::Block),
        "skip" => Some(Action::Skip),
        _ => None,
    }
}

pub fn validate_firewall(raw: &RawConfig, e: &mut Errs) -> FirewallConf {
    let f = &raw.firewall;
    if f.max_rules > MAX_RULES {
        e.push(
            "firewall.max_rules",
            format!("{} is above anygate's limit of {MAX_RULES}", f.max_rules),
        );
    }
    if f.max_expression_len > MAX_EXPRESSION_LEN {
        e.push(
            "firewall.max_expression_len",
            format!(
                "{} is above anygate's limit of {MAX_EXPRESSION_LEN}",
                f.max_expression_len
            ),
        );
    }
    if f.rules.len() > f.max_rules {
        e.push(
            "firewall.rules",
            format!(
                "{} rules; firewall.max_rules is {}",
                f.rules.len(),
                f.max_rules
            ),
        );
    }
    let entries: usize = f.lists.values().map(Vec::len).sum();
    if entries > f.max_list_entries {
        e.push(
            "firewall.lists",
            format!(
                "{entries} entries; firewall.max_list_entries is {}",
                f.max_list_entries
            ),
        );
    }
    let default_action = action(&f.default_action)
        .filter(|a| *a != Action::Skip)
        .unwrap_or_else(|| {
            e.push(
                "firewall.default_action",
                format!("`{}` is not allow or block", f.default_action),
            );
            Action::Allow
        });
    let (mut ingress, mut egress) = (false, false);
    for (i, a) in f.apply.iter().enumerate() {
        match a.as_str() {
            "ingress" => ingress = true,
            "egress" => egress = true,
            _ => e.push(
                format!("firewall.apply[{i}]"),
                format!("`{a}` is not ingress or egress"),
            ),
        }
    }
    let lists: firewall::Lists = f
        .lists
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (i, p) in f.phases.iter().enumerate() {
        if p.is_empty() || f.phases[..i].contains(p) {
            e.push(
                format!("firewall.phases[{i}]"),
                format!("`{p}` is empty or named twice"),
            );
        }
    }
    let keys = rule_keys(f, e);
    let mut rules = Vec::new();
    let mut last_phase = 0;
    for (i, r) in f.rules.iter().enumerate() {
        let path = format!("firewall.rules[{i}]");
        let act = action(&r.action);
        if act.is_none() {
            e.push(
                format!("{path}.action"),
                format!("`{}` is not allow, block or skip", r.action),
            );
        }
        let phase = rule_phase(&f.phases, r.phase.as_deref(), last_phase)
            .map_err(|m| e.push(format!("{path}.phase"), m))
            .ok();
        let (Some(act), Some(phase)) = (act, phase) else {
            continue;
        };
        last_phase = phase;
        if r.expression.len() > f.max_expression_len.min(MAX_EXPRESSION_LEN) {
            e.push(
                format!("{path}.expression"),
                format!(
                    "{} characters; firewall.max_expression_len is {}",
                    r.expression.len(),
                    f.max_expression_len.min(MAX_EXPRESSION_LEN)
                ),
            );
            continue;
        }
        match firewall::parse(&r.expression, &lists) {
            Ok(expr) => match unknown_tunnel(&expr, raw) {
                Some(name) => e.push(
                    format!("{path}.expression"),
                    format!("anygate.tunnel: no tunnel named \"{name}\" in [[tunnels]]"),
                ),
                None => rules.push(Rule {
                    expr,
                    action: act,
                    enabled: r.enabled,
                    phase,
                }),
            },
            Err(err) => e.push(format!("{path}.expression"), err.to_string()),
        }
    }
    FirewallConf {
        rules,
        default_action,
        ingress,
        egress,
        keys,
    }
}

/// The first name `anygate.tunnel` is compared with that no `[[tunnels]]` entry has: such a
/// test is a typo that never (or, with `ne`, always) matches. Names of tunnels refused for
/// other reasons count as known, so one mistake is not reported twice.
fn unknown_tunnel<'a>(e: &'a Expr, raw: &RawConfig) -> Option<&'a str> {
    // Recursion is bounded by the parser's nesting limit.
    let known = |s: &str| raw.tunnels.iter().any(|t| t.name == s);
    match e {
        Expr::Or(a, b) | Expr::Xor(a, b) | Expr::And(a, b) => {
            unknown_tunnel(a, raw).or_else(|| unknown_tunnel(b, raw))
        }
        Expr::Not(a) => unknown_tunnel(a, raw),
        Expr::Cmp(Field::Tunnel, _, Value::Str(s)) => (!known(s)).then_some(s.as_str()),
        Expr::In(Field::Tunnel, set) => set.strs.iter().map(String::as_str).find(|s| !known(s)),
        _ => None,
    }
}

/// The rules' counter identities; ids must be unique and not empty.
fn rule_keys(f: &super::schema::RawFirewall, e: &mut Errs) -> Vec<String> {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::new();
    let mut keys = Vec::with_capacity(f.rules.len());
    for (i, r) in f.rules.iter().enumerate() {
        if let Some(id) = &r.id {
            if id.is_empty() {
                e.push(format!("firewall.rules[{i}].id"), "empty");
            } else if let Some(first) = ids.get(id.as_str()) {
                e.push(
                    format!("firewall.rules[{i}].id"),
                    format!("duplicate id {id:?}, already firewall.rules[{first}]"),
                );
            } else {
                ids.insert(id, i);
            }
            keys.push(format!("id {id:?}"));
            continue;
        }
        let phase = r
            .phase
            .as_ref()
            .or(f.phases.first())
            .map_or("", String::as_str);
        let n = seen
            .entry((phase, r.action.as_str(), r.expression.as_str()))
            .or_default();
        keys.push(format!("rule {:?}", (phase, &r.action, &r.expression, *n)));
        *n += 1;
    }
    keys
}

/// A rule's phase number. Rules must come phase by phase, in the order of `firewall.phases`,
/// so that list order is evaluation order (and rule indices in counters read top to bottom).
fn rule_phase(phases: &[String], named: Option<&str>, last: u16) -> Result<u16, String> {
    let Some(name) = named else {
        return match phases.len() {
            0 | 1 => Ok(0),
            _ => Err(format!(
                "missing; with several firewall.phases each rule names one of {phases:?}"
            )),
        };
    };
    let Some(at) = phases.iter().position(|p| p == name) else {
        return Err(format!("`{name}` is not one of firewall.phases {phases:?}"));
    };
    let at = at as u16;
    if at < last {
        return Err(format!(
            "`{name}` comes after rules of phase `{}`: list the rules phase by phase, in the \
             order of firewall.phases",
            phases[last as usize]
        ));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firewall(rules: &str) -> (FirewallConf, Vec<String>) {
        let raw: RawConfig = toml::from_str(&format!("[firewall]\nrules = [{rules}]")).unwrap();
        let mut e = Errs(Vec::new());
        let f = validate_firewall(&raw, &mut e);
        (f, e.0.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn rule_ids_must_be_unique_and_not_empty() {
        let (_, e) = firewall(
            r#"{ id = "x", expression = "tcp", action = "block" },
               { id = "", expression = "udp", action = "block" },
               { expression = "udp", action = "block" },
               { id = "x", expression = "icmp", action = "allow" }"#,
        );
        assert_eq!(
            e,
            [
                "firewall.rules[1].id: empty",
                "firewall.rules[3].id: duplicate id \"x\", already firewall.rules[0]"
            ]
        );
    }

    #[test]
    fn a_rule_is_known_by_its_id_else_by_its_text_and_occurrence() {
        let (f, e) = firewall(
            r#"{ expression = "tcp", action = "block" },
               { expression = "tcp", action = "block", description = "again" },
               { expression = "tcp", action = "allow" },
               { id = "tcp", expression = "tcp", action = "block" }"#,
        );
        assert!(e.is_empty(), "{e:?}");
        let k = &f.keys;
        assert_eq!(k.len(), 4);
        assert!(k[0] != k[1] && k[0] != k[2] && k[1] != k[2], "{k:?}");
        assert_eq!(k[3], "id \"tcp\"");
        // The same rule after another is inserted before it keeps its identity.
        let (g, _) = firewall(
            r#"{ expression = "udp", action = "block" },
               { expression = "tcp", action = "block" },
               { expression = "tcp", action = "block", description = "again" }"#,
        );
        assert_eq!(g.keys[1..], k[..2]);
    }

    fn with_settings(settings: &str, rules: &str) -> Vec<String> {
        let raw: RawConfig =
            toml::from_str(&format!("[firewall]\n{settings}\nrules = [{rules}]")).unwrap();
        let mut e = Errs(Vec::new());
        validate_firewall(&raw, &mut e);
        e.0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn max_expression_len_has_a_ceiling() {
        assert_eq!(
            with_settings("max_expression_len = 10000000", ""),
            ["firewall.max_expression_len: 10000000 is above anygate's limit of 65536"]
        );
        assert!(with_settings("max_expression_len = 65536", "").is_empty());
    }

    /// Nesting past the parser's limit is refused naming the rule and the column, on a
    /// 256 KiB stack: nothing recurses once per level before the refusal.
    #[test]
    fn deep_nesting_is_refused_naming_the_rule_and_column() {
        let parens = format!("{}tcp{}", "(".repeat(10_000), ")".repeat(10_000));
        // Within the length ceiling: 20,000 `!`, or 16,000 `not `.
        let bangs = format!("{}tcp", "!".repeat(20_000));
        let nots = format!("{}tcp", "not ".repeat(16_000));
        let rules = format!(
            r#"{{ expression = "udp", action = "allow" }},
               {{ expression = "{parens}", action = "block" }},
               {{ expression = "{bangs}", action = "block" }},
               {{ expression = "{nots}", action = "block" }}"#
        );
        let e = crate::firewall::parser::tests::on_small_stack(move || {
            with_settings("max_expression_len = 65536", &rules)
        });
        assert_eq!(
            e,
            [
                "firewall.rules[1].expression: column 129: nesting deeper than 128 levels",
                "firewall.rules[2].expression: column 129: nesting deeper than 128 levels",
                "firewall.rules[3].expression: column 513: nesting deeper than 128 levels",
            ]
        );
    }

    #[test]
    fn values_out_of_their_fields_range_refused() {
        let (_, e) = firewall(
            r#"{ expression = "tcp.dstport > 70000", action = "block" },
               { expression = "ip.ttl == 256", action = "block" },
               { expression = "icmp.type > 256", action = "block" },
               { expression = "udp.srcport in {1..65536}", action = "block" },
               { expression = "ip.proto == 262", action = "block" },
               { expression = "tcp.dstport > 65534 and ip.ttl == 255 and icmp.code in {0..255}", action = "block" },
               { expression = "icmp.type > 255", action = "block" },
               { expression = "ip.proto gt 255", action = "block" }"#,
        );
        assert_eq!(
            e,
            [
                "firewall.rules[0].expression: column 15: 70000 is out of range (0..=65535)",
                "firewall.rules[1].expression: column 11: 256 is out of range (0..=255)",
                "firewall.rules[2].expression: column 13: 256 is out of range (0..=255)",
                "firewall.rules[3].expression: column 17: 65536 is out of range (0..=65535)",
                "firewall.rules[4].expression: column 13: expected a protocol number or name \
                 (\"tcp\"), found number 262",
                "firewall.rules[6].expression: column 13: `gt 255` can never match: `icmp.type` is at most 255",
                "firewall.rules[7].expression: column 13: `gt 255` can never match: `ip.proto` is at most 255",
            ]
        );
        let raw: RawConfig = toml::from_str(
            r#"[firewall]
               lists = { ports = ["80", "999999"] }
               rules = [{ expression = "tcp.dstport in $ports", action = "block" }]"#,
        )
        .unwrap();
        let mut e = Errs(Vec::new());
        validate_firewall(&raw, &mut e);
        assert_eq!(
            e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            ["firewall.rules[0].expression: column 16: $ports: `999999`: 999999 is out of range \
              (0..=65535)"]
        );
    }

    #[test]
    fn a_direction_is_ingress_or_egress() {
        let (_, e) = firewall(
            r#"{ expression = "anygate.direction == \"sideways\"", action = "block" },
               { expression = "anygate.direction in {\"ingress\" \"up\"}", action = "block" },
               { expression = "anygate.direction ne \"egress\"", action = "block" }"#,
        );
        assert_eq!(
            e,
            [
                "firewall.rules[0].expression: column 22: \"sideways\" is not a direction: \
                 \"ingress\" or \"egress\"",
                "firewall.rules[1].expression: column 33: \"up\" is not a direction: \
                 \"ingress\" or \"egress\"",
            ]
        );
    }

    #[test]
    fn a_tunnel_name_must_be_a_configured_tunnel() {
        let tunnel = |name: &str| {
            format!(
                "[[tunnels]]\nname = \"{name}\"\ntype = \"gre\"\ncustomer_endpoint = \"198.51.100.1\"\n\
                 edge_endpoint = \"203.0.113.1\"\ninterface_address = \"10.1.0.0/31\"\n"
            )
        };
        let raw: RawConfig = toml::from_str(&format!(
            r#"{}{}
[firewall]
lists = {{ names = ['"acme"', '"nosuch2"'] }}
rules = [
    {{ expression = "anygate.tunnel == \"acme\" or anygate.tunnel in {{\"beta\"}}", action = "block" }},
    {{ expression = "tcp and not anygate.tunnel ne \"nosuchtunnel\"", action = "block" }},
    {{ expression = "anygate.tunnel in $names", action = "block" }},
]"#,
            tunnel("acme"),
            tunnel("beta")
        ))
        .unwrap();
        let mut e = Errs(Vec::new());
        let f = validate_firewall(&raw, &mut e);
        assert_eq!(
            e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            [
                "firewall.rules[1].expression: anygate.tunnel: no tunnel named \"nosuchtunnel\" \
                 in [[tunnels]]",
                "firewall.rules[2].expression: anygate.tunnel: no tunnel named \"nosuch2\" in \
                 [[tunnels]]",
            ]
        );
        assert_eq!(f.rules.len(), 1);
    }
}
