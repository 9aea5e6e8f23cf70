//! Validation of `[health_checks]` (node-wide timing) and each tunnel's `health_check` table.
//! Both reload live: the checker is management-side and re-reads them from each config.
use super::parse::{parse_ip, Errs};
use super::schema::{RawHealthCheck, RawHealthChecks};
use crate::health::{CheckDirection, CheckType};

/// `health_check.rate`: how often a tunnel is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rate {
    Low,
    /// The vendor's default.
    #[default]
    Mid,
    High,
}

impl Rate {
    pub const NAMES: [&'static str; 3] = ["low", "mid", "high"];
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
    fn parse(s: &str) -> Option<Rate> {
        [Rate::Low, Rate::Mid, Rate::High]
            .into_iter()
            .find(|r| r.name() == s)
    }
}

/// Milliseconds between probes at each rate by default: high is the vendor's limit of one
/// probe per second per server; mid (the default) and low are our choice.
pub const DEFAULT_INTERVAL_MS: [u64; 3] = [10_000, 5_000, 1_000];
/// The shortest interval a test may set: 512 tunnels at this rate are ~10,000 probes/s.
pub const MIN_INTERVAL_MS: u64 = 50;
pub const MAX_INTERVAL_MS: u64 = 60_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 500;
/// The down rule looks at the last second: a failed probe and the two sent after it must
/// all time out within it, so a timeout stays under a second.
pub const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 10..=900;
/// The vendor's minimum time in a state before a better one, 5 minutes.
pub const DEFAULT_HOLD_MS: u64 = 300_000;
const HOLD_S: std::ops::RangeInclusive<f64> = 0.1..=86_400.0;

/// One tunnel's check, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheckConf {
    pub enabled: bool,
    pub kind: CheckType,
    pub direction: CheckDirection,
    /// The inner address probed.
    pub target: u32,
    pub rate: Rate,
}

/// `[health_checks]`, resolved to milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthChecksConf {
    pub hold_ms: u64,
    pub timeout_ms: u64,
    /// By `Rate as usize`: low, mid, high.
    pub interval_ms: [u64; 3],
}

impl Default for HealthChecksConf {
    fn default() -> Self {
        HealthChecksConf {
            hold_ms: DEFAULT_HOLD_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            interval_ms: DEFAULT_INTERVAL_MS,
        }
    }
}

impl HealthChecksConf {
    pub fn interval_ms(&self, r: Rate) -> u64 {
        self.interval_ms[r as usize]
    }
}

pub fn validate_health_checks(raw: &RawHealthChecks, e: &mut Errs) -> HealthChecksConf {
    let mut c = HealthChecksConf::default();
    if let Some(h) = raw.hold_time {
        if HOLD_S.contains(&h) {
            c.hold_ms = (h * 1000.0).round() as u64;
        } else {
            e.push(
                "health_checks.hold_time",
                format!("{h} is not in 0.1..=86400 seconds"),
            );
        }
    }
    if let Some(t) = raw.probe_timeout_ms {
        if TIMEOUT_MS.contains(&t) {
            c.timeout_ms = t;
        } else {
            e.push(
                "health_checks.probe_timeout_ms",
                format!("{t} is not in 10..=900 (a failed probe and the 2 sent after it must all time out within the 1 s the down rule looks at)"),
            );
        }
    }
    let given = [
        ("interval_low_ms", raw.interval_low_ms),
        ("interval_mid_ms", raw.interval_mid_ms),
        ("interval_high_ms", raw.interval_high_ms),
    ];
    // Per rate: None when the file's value is refused (it has its own error), else whether
    // the file gave it.
    let mut usable = [Some(false); 3];
    for (i, (key, v)) in given.iter().enumerate() {
        let Some(v) = *v else { continue };
        if (MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&v) {
            c.interval_ms[i] = v;
            usable[i] = Some(true);
        } else {
            usable[i] = None;
            e.push(
                format!("health_checks.{key}"),
                format!("{v} is not in {MIN_INTERVAL_MS}..={MAX_INTERVAL_MS}"),
            );
        }
    }
    // A higher rate probes at least as often as a lower one.
    // Compared only where both values stand; a default is said to be one, and the error goes
    // to the key the file gave.
    for i in 1..3 {
        let (a, b) = (c.interval_ms[i - 1], c.interval_ms[i]);
        let (Some(a_given), Some(b_given)) = (usable[i - 1], usable[i]) else {
            continue;
        };
        if b > a {
            let (key, other, other_v, default) = if b_given || !a_given {
                (given[i].0, given[i - 1].0, a, !a_given)
            } else {
                (given[i - 1].0, given[i].0, b, !b_given)
            };
            let other_v = if default {
                format!("{other_v}, its default")
            } else {
                other_v.to_string()
            };
            let own = if key == given[i].0 { b } else { a };
            let rel = if key == given[i].0 {
                "longer"
            } else {
                "shorter"
            };
            e.push(
                format!("health_checks.{key}"),
                format!("{own} is {rel} than {other} ({other_v}): a higher rate probes at least as often"),
            );
        }
    }
    c
}

/// `path` is `tunnels[i].health_check`; `peer` is the customer side of the interface subnet.
pub fn validate_check(
    raw: &RawHealthCheck,
    path: &str,
    peer: u32,
    e: &mut Errs,
) -> HealthCheckConf {
    let kind = match raw.kind.as_deref() {
        None | Some("reply") => CheckType::Reply,
        Some("request") => CheckType::Request,
        Some(k) => {
            e.push(
                format!("{path}.type"),
                format!("`{k}` is neither reply nor request"),
            );
            CheckType::Reply
        }
    };
    let direction = match raw.direction.as_deref() {
        None | Some("bidirectional") => CheckDirection::Bidirectional,
        Some("unidirectional") => CheckDirection::Unidirectional,
        Some(d) => {
            e.push(
                format!("{path}.direction"),
                format!("`{d}` is neither bidirectional nor unidirectional"),
            );
            CheckDirection::Bidirectional
        }
    };
    let rate = match raw.rate.as_deref().map(|r| (r, Rate::parse(r))) {
        None => Rate::default(),
        Some((_, Some(r))) => r,
        Some((r, None)) => {
            e.push(
                format!("{path}.rate"),
                format!("`{r}` is not low, mid or high"),
            );
            Rate::default()
        }
    };
    let target = match raw.target.as_deref().map(|t| (t, parse_ip(t))) {
        None => peer,
        Some((t, Ok(ip))) if crate::wire::ipv4::is_martian_dst(ip) => {
            e.push(
                format!("{path}.target"),
                format!("{t} is not a unicast address"),
            );
            peer
        }
        Some((_, Ok(ip))) => ip,
        Some((_, Err(m))) => {
            e.push(format!("{path}.target"), m);
            peer
        }
    };
    HealthCheckConf {
        enabled: raw.enabled.unwrap_or(true),
        kind,
        direction,
        target,
        rate,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Host};

    const BASE: &str = r#"
[[ports]]
name = "wan0"
device = "net_null0"
address = "192.0.2.1/24"

[[workers]]
core = 1
rx = [{ port = "wan0" }]

[node]
anycast_addresses = ["203.0.113.10"]

[[tunnels]]
name = "T1"
type = "gre"
customer_endpoint = "198.51.100.1"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"
"#;

    fn cfg(extra: &str) -> Result<crate::config::Config, Vec<String>> {
        parse(&format!("{BASE}{extra}"), &Host { cores: vec![0, 1] })
            .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn defaults_are_the_vendors() {
        let c = cfg("").unwrap();
        let h = c.tunnels[0].check;
        assert!(h.enabled);
        assert_eq!(h.kind, crate::health::CheckType::Reply);
        assert_eq!(h.direction, crate::health::CheckDirection::Bidirectional);
        assert_eq!(h.rate, super::Rate::Mid);
        assert_eq!(h.target, 0x0a64_0001, "the customer side of 10.100.0.0/31");
        assert_eq!(c.health_checks, super::HealthChecksConf::default());
        assert_eq!(c.health_checks.hold_ms, 300_000);
        assert_eq!(c.health_checks.interval_ms(super::Rate::High), 1000);
    }

    #[test]
    fn every_key_is_read_inline_or_as_a_table() {
        let c = cfg("health_check = { enabled = false, type = \"request\", direction = \"unidirectional\", target = \"10.9.9.9\", rate = \"high\" }\n").unwrap();
        let h = c.tunnels[0].check;
        assert!(!h.enabled);
        assert_eq!(h.kind, crate::health::CheckType::Request);
        assert_eq!(h.direction, crate::health::CheckDirection::Unidirectional);
        assert_eq!(h.target, 0x0a09_0909);
        assert_eq!(h.rate, super::Rate::High);
        let c = cfg("[tunnels.health_check]\nrate = \"low\"\n\n[health_checks]\nhold_time = 1.5\nprobe_timeout_ms = 50\ninterval_low_ms = 200\ninterval_mid_ms = 150\ninterval_high_ms = 100\n").unwrap();
        assert_eq!(c.tunnels[0].check.rate, super::Rate::Low);
        assert_eq!(
            c.health_checks,
            super::HealthChecksConf {
                hold_ms: 1500,
                timeout_ms: 50,
                interval_ms: [200, 150, 100]
            }
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        let bad = cfg("health_check = { type = \"ping\", direction = \"both\", target = \"10.1.1\", rate = \"max\" }\n").unwrap_err();
        assert_eq!(
            bad,
            [
                "tunnels[0].health_check.type: `ping` is neither reply nor request",
                "tunnels[0].health_check.direction: `both` is neither bidirectional nor unidirectional",
                "tunnels[0].health_check.rate: `max` is not low, mid or high",
                "tunnels[0].health_check.target: `10.1.1` is not an IPv4 address",
            ]
        );
        assert_eq!(
            cfg("health_check = { target = \"224.0.0.1\" }\n").unwrap_err(),
            ["tunnels[0].health_check.target: 224.0.0.1 is not a unicast address"]
        );
        let e = cfg("health_check = { colour = 1 }\n").unwrap_err();
        assert!(e[0].contains("unknown field `colour`"), "{e:?}");
        let e = cfg("health_check = { enabled = \"yes\" }\n").unwrap_err();
        assert!(e[0].contains("invalid type"), "{e:?}");
    }

    #[test]
    fn node_timing_is_bounded_naming_the_key() {
        assert_eq!(
            cfg("[health_checks]\nhold_time = 0.05\nprobe_timeout_ms = 1000\ninterval_high_ms = 10\n")
                .unwrap_err(),
            [
                "health_checks.hold_time: 0.05 is not in 0.1..=86400 seconds",
                "health_checks.probe_timeout_ms: 1000 is not in 10..=900 (a failed probe and the 2 sent after it must all time out within the 1 s the down rule looks at)",
                "health_checks.interval_high_ms: 10 is not in 50..=60000",
            ]
        );
        assert_eq!(
            cfg("[health_checks]\ninterval_mid_ms = 20000\n").unwrap_err(),
            ["health_checks.interval_mid_ms: 20000 is longer than interval_low_ms (10000, its default): a higher rate probes at least as often"]
        );
        // A value refused on its own is compared with nothing; a default is said to be one.
        assert_eq!(
            cfg("[health_checks]\ninterval_mid_ms = 500\ninterval_high_ms = 10\n").unwrap_err(),
            ["health_checks.interval_high_ms: 10 is not in 50..=60000"]
        );
        assert_eq!(
            cfg("[health_checks]\ninterval_high_ms = 6000\n").unwrap_err(),
            ["health_checks.interval_high_ms: 6000 is longer than interval_mid_ms (5000, its default): a higher rate probes at least as often"]
        );
        assert_eq!(
            cfg("[health_checks]\ninterval_low_ms = 2000\n").unwrap_err(),
            ["health_checks.interval_low_ms: 2000 is shorter than interval_mid_ms (5000, its default): a higher rate probes at least as often"]
        );
        assert_eq!(
            cfg("[health_checks]\ninterval_mid_ms = 500\ninterval_high_ms = 600\n").unwrap_err(),
            ["health_checks.interval_high_ms: 600 is longer than interval_mid_ms (500): a higher rate probes at least as often"]
        );
        let e = cfg("[health_checks]\nhold = 3\n").unwrap_err();
        assert!(e[0].contains("unknown field `hold`"), "{e:?}");
    }

    #[test]
    fn checks_reload_live() {
        let a = cfg("").unwrap();
        let b =
            cfg("health_check = { rate = \"high\" }\n[health_checks]\nhold_time = 2\n").unwrap();
        assert!(a.restart_required(&b).is_empty());
    }
}
