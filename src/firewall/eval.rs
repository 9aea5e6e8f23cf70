//! The reference evaluator: rules tried one by one, first enabled match decides (a `skip`
//! match passes over the rest of its phase). Simple on purpose; a compiled classifier must
//! agree with it on every packet.
use super::parser::{CmpOp, Expr, Value};
use super::scheme::Field;

/// The fields of one packet. `None` marks a protocol the packet is not (a UDP packet has no
/// TCP ports): every comparison on such a field is false.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub len: u16,
    pub hdr_len: u8,
    pub ttl: u8,
    /// (type, code)
    pub icmp: Option<(u8, u8)>,
    /// (source port, destination port, flags)
    pub tcp: Option<(u16, u16, u8)>,
    /// (source port, destination port)
    pub udp: Option<(u16, u16)>,
    pub tunnel: Option<&'a str>,
    /// "ingress" or "egress"
    pub direction: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Block,
    /// Decides nothing: the rest of the rule's phase is passed over and evaluation goes on
    /// with the next phase (or the default action after the last).
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub expr: Expr,
    pub action: Action,
    pub enabled: bool,
    /// The phase the rule belongs to. Rules are listed phase by phase, so a phase is a run
    /// of equal numbers; with no phases configured every rule is in phase 0.
    pub phase: u16,
}

impl Rule {
    /// An enabled rule in phase 0.
    pub fn new(expr: Expr, action: Action) -> Rule {
        Rule {
            expr,
            action,
            enabled: true,
            phase: 0,
        }
    }
}

/// The index of the first rule after `i` in another phase than rule `i`'s.
pub fn phase_end(rules: &[Rule], i: usize) -> usize {
    let ph = rules.get(i).map_or(0, |r| r.phase);
    i + rules
        .get(i..)
        .map_or(0, |rs| rs.iter().take_while(|r| r.phase == ph).count())
}

/// A number-valued field, or None when the packet does not have it.
fn num(f: Field, p: &Fields<'_>) -> Option<u64> {
    Some(match f {
        Field::IpSrc => p.src as u64,
        Field::IpDst => p.dst as u64,
        Field::IpProto => p.proto as u64,
        Field::IpLen => p.len as u64,
        Field::IpHdrLen => p.hdr_len as u64,
        Field::IpTtl => p.ttl as u64,
        Field::IcmpType => p.icmp?.0 as u64,
        Field::IcmpCode => p.icmp?.1 as u64,
        Field::TcpFlags => p.tcp?.2 as u64,
        Field::TcpSrcPort => p.tcp?.0 as u64,
        Field::TcpDstPort => p.tcp?.1 as u64,
        Field::UdpSrcPort => p.udp?.0 as u64,
        Field::UdpDstPort => p.udp?.1 as u64,
        _ => return None,
    })
}

fn text<'a>(f: Field, p: &Fields<'a>) -> Option<&'a str> {
    match f {
        Field::Tunnel => p.tunnel,
        Field::Direction => p.direction,
        _ => None,
    }
}

fn has(f: Field, p: &Fields<'_>) -> bool {
    match f {
        Field::Icmp => p.icmp.is_some(),
        Field::Tcp => p.tcp.is_some(),
        Field::Udp => p.udp.is_some(),
        Field::TcpFlag(bit) => p.tcp.is_some_and(|t| t.2 & bit != 0),
        _ => false,
    }
}

pub fn eval(e: &Expr, p: &Fields<'_>) -> bool {
    match e {
        Expr::Or(a, b) => eval(a, p) || eval(b, p),
        Expr::Xor(a, b) => eval(a, p) != eval(b, p),
        Expr::And(a, b) => eval(a, p) && eval(b, p),
        Expr::Not(a) => !eval(a, p),
        Expr::Has(f) => has(*f, p),
        Expr::Cmp(f, op, Value::Num(v)) => num(*f, p).is_some_and(|x| match op {
            CmpOp::Eq => x == *v,
            CmpOp::Ne => x != *v,
            CmpOp::Lt => x < *v,
            CmpOp::Le => x <= *v,
            CmpOp::Gt => x > *v,
            CmpOp::Ge => x >= *v,
        }),
        Expr::Cmp(f, op, Value::Str(v)) => text(*f, p).is_some_and(|x| match op {
            CmpOp::Eq => x == v,
            CmpOp::Ne => x != v,
            _ => false,
        }),
        Expr::In(f, set) => match text(*f, p) {
            Some(s) => set.contains_str(s),
            None => num(*f, p).is_some_and(|x| set.contains_num(x)),
        },
    }
}

/// The deciding rule, rule by rule: the first enabled match decides, except that a `skip`
/// match passes over the rest of its phase. Its index and action (allow or block); None: the
/// default applies.
pub fn first_match(rules: &[Rule], p: &Fields<'_>) -> Option<(usize, Action)> {
    decide(rules, p, |_| {})
}

/// `first_match`, telling `skipped` each skip rule that matched on the way.
pub fn decide(
    rules: &[Rule],
    p: &Fields<'_>,
    mut skipped: impl FnMut(usize),
) -> Option<(usize, Action)> {
    let mut i = 0;
    while let Some(r) = rules.get(i) {
        if !(r.enabled && eval(&r.expr, p)) {
            i += 1;
        } else if r.action == Action::Skip {
            skipped(i);
            i = phase_end(rules, i);
        } else {
            return Some((i, r.action));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::parser::{parse, Lists};
    use super::*;

    fn udp(src: [u8; 4], sport: u16, dport: u16) -> Fields<'static> {
        Fields {
            src: u32::from_be_bytes(src),
            dst: 0xc000_0201,
            proto: 17,
            len: 60,
            hdr_len: 20,
            ttl: 64,
            udp: Some((sport, dport)),
            ..Default::default()
        }
    }
    fn tcp(src: [u8; 4], sport: u16, dport: u16, flags: u8) -> Fields<'static> {
        Fields {
            src: u32::from_be_bytes(src),
            dst: 0xc000_0201,
            proto: 6,
            len: 60,
            hdr_len: 20,
            ttl: 64,
            tcp: Some((sport, dport, flags)),
            ..Default::default()
        }
    }
    fn m(expr: &str, p: &Fields) -> bool {
        eval(
            &parse(expr, &Lists::new()).unwrap_or_else(|e| panic!("{expr}: {e}")),
            p,
        )
    }

    #[test]
    fn every_operator() {
        let p = tcp([10, 0, 0, 1], 40000, 443, 0x12);
        for (e, want) in [
            ("tcp.dstport eq 443", true),
            ("tcp.dstport == 443", true),
            ("tcp.dstport ne 443", false),
            ("tcp.dstport != 80", true),
            ("tcp.dstport lt 443", false),
            ("tcp.dstport < 444", true),
            ("tcp.dstport le 443", true),
            ("tcp.dstport <= 442", false),
            ("tcp.dstport gt 442", true),
            ("tcp.dstport > 443", false),
            ("tcp.dstport ge 443", true),
            ("tcp.dstport >= 444", false),
            ("tcp.dstport in {80 443}", true),
            ("tcp.dstport in {1..442 444..65535}", false),
            ("ip.src in {10.0.0.0/8}", true),
            ("ip.src in {10.0.0.2..10.0.0.9, 192.0.2.1}", false),
            ("ip.src eq 10.0.0.1", true),
            ("ip.proto eq \"tcp\"", true),
            ("ip.proto eq 6", true),
            ("ip.proto in {\"udp\" \"gre\"}", false),
            ("tcp", true),
            ("udp", false),
            ("icmp", false),
            ("tcp.flags.syn and tcp.flags.ack", true),
            ("tcp.flags.fin", false),
            ("tcp.flags eq 0x12", true),
            // Wireshark's comparisons of a boolean with 0 or 1.
            ("tcp.flags.syn == 1", true),
            ("tcp.flags.syn eq 0", false),
            ("tcp.flags.fin == 0", true),
            ("tcp.flags.fin != 1", true),
            ("tcp.flags.fin ne 0", false),
            ("tcp == 1 and udp == 0", true),
            ("ip.len eq 60 && ip.hdr_len eq 20 && ip.ttl eq 64", true),
        ] {
            assert_eq!(m(e, &p), want, "{e}");
        }
    }

    #[test]
    fn precedence_not_and_xor_or() {
        let p = tcp([10, 0, 0, 1], 1, 2, 0);
        // and binds tighter than or
        assert!(m("udp or tcp and tcp.dstport eq 2", &p));
        assert!(!m("(udp or tcp) and tcp.dstport eq 3", &p));
        // not binds tightest
        assert!(m("not udp and tcp", &p));
        assert!(!m("not (udp or tcp)", &p));
        // xor sits between and and or: (tcp xor (tcp and udp)) or udp
        assert!(m("tcp xor tcp and udp or udp", &p));
        assert!(!m("tcp ^^ tcp", &p));
        assert!(m("! udp && tcp || udp", &p));
    }

    #[test]
    fn fields_that_do_not_apply_never_match() {
        let p = udp([10, 0, 0, 1], 53, 0);
        assert!(!m("tcp.dstport eq 0", &p), "UDP has no TCP port");
        assert!(!m("tcp.dstport ne 0", &p), "not even for ne");
        assert!(m("not tcp.dstport eq 0", &p));
        assert!(m("udp.dstport eq 0", &p));
        assert!(!m("icmp.type eq 0", &p));
        assert!(!m("anygate.tunnel eq \"acme\"", &p));
    }

    #[test]
    fn errors_name_the_column_and_what_was_expected() {
        let e = |s: &str| parse(s, &Lists::new()).unwrap_err().to_string();
        assert_eq!(
            e("ip.src eq 10.0.0.0/8"),
            "column 11: CIDR 10.0.0.0/8: CIDRs are allowed only inside sets, as in `in {...}`"
        );
        assert_eq!(e("tcp.dstport 80"), "column 13: expected a comparison (eq == ne != lt < le <= gt > ge >=) or `in` after `tcp.dstport`, found number 80");
        assert_eq!(
            e("tcp.dstport eq \"http\""),
            "column 16: expected a number, found string \"http\""
        );
        assert_eq!(
            e("ip.geoip.country eq \"GB\""),
            "column 1: field `ip.geoip.country` is not supported by anygate"
        );
        assert_eq!(e("ip.srcc eq 1.2.3.4"), "column 1: unknown field `ip.srcc`");
        assert_eq!(e("(tcp and udp"), "column 13: expected `)`, found the end");
        assert_eq!(
            e("tcp udp"),
            "column 5: expected `and`, `or`, `xor` or the end, found `udp`"
        );
        assert_eq!(
            e("ip.proto eq \"tcpx\""),
            "column 13: unknown protocol name \"tcpx\""
        );
        assert_eq!(
            e("tcp.flags.syn lt 1"),
            "column 15: `tcp.flags.syn` is true or false: only eq and ne apply"
        );
        assert_eq!(
            e("tcp.flags.syn eq 2"),
            "column 18: `tcp.flags.syn` compares only with 0 or 1, found number 2"
        );
        assert_eq!(
            e("tcp == \"x\""),
            "column 8: `tcp` compares only with 0 or 1, found string \"x\""
        );
        assert_eq!(
            e("tcp.dstport in {10..5}"),
            "column 17: range 10..5 is empty"
        );
        assert_eq!(
            e("ip.src in {10.0.0.1/8}"),
            "column 12: host bits set in 10.0.0.1/8"
        );
        assert_eq!(
            e("udp.srcport in {$nope}"),
            "column 17: no list named $nope"
        );
        assert_eq!(e(""), "column 1: empty expression");
    }

    #[test]
    fn named_lists() {
        let mut lists = Lists::new();
        lists.insert(
            "amp".into(),
            vec![
                "19".into(),
                "1900".into(),
                "11211".into(),
                "3000..3010".into(),
            ],
        );
        lists.insert(
            "nets".into(),
            vec!["192.0.2.0/24".into(), "10.1.1.1".into()],
        );
        let e = parse("udp.srcport in {$amp 53} and ip.src in {$nets}", &lists).unwrap();
        assert!(eval(&e, &udp([192, 0, 2, 9], 3005, 1)));
        assert!(eval(&e, &udp([10, 1, 1, 1], 53, 1)));
        assert!(!eval(&e, &udp([10, 1, 1, 2], 53, 1)));
        // The vendor's form without braces.
        let e = parse("ip.src in $nets", &lists).unwrap();
        assert!(eval(&e, &udp([192, 0, 2, 9], 1, 1)));
        assert!(!eval(&e, &udp([10, 1, 1, 2], 1, 1)));
        let err = parse("ip.src in 10.0.0.1", &lists).unwrap_err();
        assert_eq!(
            (err.column, err.msg.as_str()),
            (
                11,
                "expected `{` or a $list after `in`, found address 10.0.0.1"
            )
        );
        assert_eq!(
            parse("ip.src in $nope", &lists).unwrap_err().msg,
            "no list named $nope"
        );
        lists.insert("bad".into(), vec!["10.0.0.0/33".into()]);
        assert!(parse("ip.src in {$bad}", &lists)
            .unwrap_err()
            .msg
            .starts_with("$bad: `10.0.0.0/33`"));
    }

    /// The vendor's "minimal ruleset", pasted as documented.
    #[test]
    fn minimal_ruleset_verdicts() {
        let rules: Vec<Rule> = [
            "udp.srcport in {1900 11211 389 111 19 1194 3702 10001 20800 161 162 137 27005 520 0}",
            "tcp.srcport in {21 0 3306}",
            "(ip.proto eq \"hopopt\") or (not ip.proto in {\"esp\" \"tcp\" \"udp\" \"gre\" \"icmp\"})",
        ]
        .iter()
        .map(|e| Rule::new(parse(e, &Lists::new()).unwrap(), Action::Block))
        .collect();
        let verdict = |p: &Fields| first_match(&rules, p);
        assert_eq!(
            verdict(&udp([198, 51, 100, 1], 11211, 40000)),
            Some((0, Action::Block)),
            "memcached reflection"
        );
        assert_eq!(
            verdict(&udp([198, 51, 100, 1], 53, 40000)),
            None,
            "DNS answers pass"
        );
        assert_eq!(
            verdict(&tcp([198, 51, 100, 1], 3306, 40000, 0x12)),
            Some((1, Action::Block))
        );
        assert_eq!(verdict(&tcp([198, 51, 100, 1], 443, 40000, 0x12)), None);
        let mut sctp = udp([198, 51, 100, 1], 1, 1);
        sctp.proto = 132;
        sctp.udp = None;
        assert_eq!(
            verdict(&sctp),
            Some((2, Action::Block)),
            "protocols outside the allowed five"
        );
        let mut gre = sctp.clone();
        gre.proto = 47;
        assert_eq!(verdict(&gre), None);
        let mut disabled = rules.clone();
        disabled[0].enabled = false;
        assert_eq!(
            first_match(&disabled, &udp([198, 51, 100, 1], 11211, 1)),
            None,
            "a disabled rule never decides"
        );
    }
}
