//! The vendor's documented rulesets, pasted verbatim, judged on crafted packets by both the
//! rule-by-rule evaluator and the compiled classifier; and `skip` across phases.
use super::eval::{decide, first_match, Action, Fields, Rule};
use super::parser::{parse, Lists};
use super::Classifier;

const ENDPOINT: [u8; 4] = [203, 0, 113, 10];
const ROUTER: [u8; 4] = [203, 0, 113, 254];
const WEB: [u8; 4] = [203, 0, 113, 80];
const OTHER: [u8; 4] = [203, 0, 113, 200];
const INTERNET: [u8; 4] = [198, 51, 100, 7];

fn lists() -> Lists {
    let mut l = Lists::new();
    l.insert("endpoints".into(), vec!["203.0.113.0/26".into()]);
    l.insert("internal_routers".into(), vec!["203.0.113.254".into()]);
    l.insert(
        "web_servers".into(),
        vec!["203.0.113.80".into(), "203.0.113.81".into()],
    );
    l
}

fn rules(table: &[(&str, Action)]) -> Vec<Rule> {
    let lists = lists();
    table
        .iter()
        .map(|(e, a)| Rule::new(parse(e, &lists).unwrap_or_else(|x| panic!("{e}: {x}")), *a))
        .collect()
}

fn packet(dst: [u8; 4], proto: u8) -> Fields<'static> {
    Fields {
        src: u32::from_be_bytes(INTERNET),
        dst: u32::from_be_bytes(dst),
        proto,
        len: 60,
        hdr_len: 20,
        ttl: 57,
        ..Default::default()
    }
}
fn tcp(dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Fields<'static> {
    Fields {
        tcp: Some((sport, dport, flags)),
        ..packet(dst, 6)
    }
}
fn udp(dst: [u8; 4], sport: u16, dport: u16) -> Fields<'static> {
    Fields {
        udp: Some((sport, dport)),
        ..packet(dst, 17)
    }
}
fn icmp(dst: [u8; 4], ty: u8) -> Fields<'static> {
    Fields {
        icmp: Some((ty, 0)),
        ..packet(dst, 1)
    }
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// Checks every case with the evaluator and the classifier: the deciding rule (None: the
/// default, allow) and its action.
fn check(rules: &[Rule], cases: &[(&str, Fields<'static>, Option<usize>)]) {
    let c = Classifier::new(rules);
    for (what, p, want) in cases {
        let want = want.map(|i| (i, rules[i].action));
        assert_eq!(first_match(rules, p), want, "evaluator: {what}");
        assert_eq!(c.classify(p), want, "classifier: {what}");
    }
}

/// The vendor's minimal ruleset followed by its extended ruleset (endpoints, internal routers,
/// web servers), each expression as documented.
#[test]
fn extended_ruleset_verdicts() {
    use Action::{Allow, Block};
    let r = rules(&[
        // Minimal ruleset (0-2).
        ("udp.srcport in {1900 11211 389 111 19 1194 3702 10001 20800 161 162 137 27005 520 0}", Block),
        ("tcp.srcport in {21 0 3306}", Block),
        ("(ip.proto eq \"hopopt\") or (not ip.proto in {\"esp\" \"tcp\" \"udp\" \"gre\" \"icmp\"})", Block),
        // Endpoints (3-6).
        ("ip.proto eq \"tcp\" and ip.dst in $endpoints and tcp.dstport in {32768..60999} and not (tcp.flags.syn and not tcp.flags.ack)", Allow),
        ("ip.proto eq \"udp\" and ip.dst in $endpoints and udp.dstport in {32768..60999}", Allow),
        ("ip.proto eq \"icmp\" and ip.dst in $endpoints and (icmp.type eq 0 or icmp.type eq 3 or icmp.type eq 11)", Allow),
        ("ip.dst in $endpoints", Block),
        // Internal routers (7-8).
        ("ip.proto eq \"icmp\" and ip.dst in $internal_routers and ( (icmp.type eq 0 or icmp.type eq 3) or (icmp.type eq 11) or (icmp.type eq 8) )", Allow),
        ("ip.dst in $internal_routers", Block),
        // Web servers (9-11).
        ("ip.proto eq \"tcp\" and tcp.srcport in {32768..60999} and ip.dst in $web_servers and tcp.dstport in {80 443} and not (tcp.flags.syn and tcp.flags.ack)", Allow),
        ("ip.dst in $web_servers and ip.proto eq \"udp\" and udp.srcport in {53 123} and udp.dstport in {1024..65535}", Allow),
        ("ip.dst in $web_servers", Block),
    ]);
    check(
        &r,
        &[
            (
                "endpoint: reply to its download",
                tcp(ENDPOINT, 443, 40000, ACK),
                Some(3),
            ),
            (
                "endpoint: SYN-ACK of its own connection",
                tcp(ENDPOINT, 443, 40000, SYN | ACK),
                Some(3),
            ),
            (
                "endpoint: unsolicited SYN",
                tcp(ENDPOINT, 443, 40000, SYN),
                Some(6),
            ),
            (
                "endpoint: below the ephemeral range",
                tcp(ENDPOINT, 443, 22, ACK),
                Some(6),
            ),
            (
                "endpoint: above the ephemeral range",
                tcp(ENDPOINT, 443, 61000, ACK),
                Some(6),
            ),
            ("endpoint: UDP reply", udp(ENDPOINT, 443, 50000), Some(4)),
            (
                "endpoint: memcached reflection, minimal ruleset first",
                udp(ENDPOINT, 11211, 50000),
                Some(0),
            ),
            ("endpoint: echo reply", icmp(ENDPOINT, 0), Some(5)),
            ("endpoint: unreachable", icmp(ENDPOINT, 3), Some(5)),
            ("endpoint: time exceeded", icmp(ENDPOINT, 11), Some(5)),
            ("endpoint: echo request", icmp(ENDPOINT, 8), Some(6)),
            ("endpoint: ESP", packet(ENDPOINT, 50), Some(6)),
            (
                "endpoint: SCTP, minimal ruleset",
                packet(ENDPOINT, 132),
                Some(2),
            ),
            ("router: ping", icmp(ROUTER, 8), Some(7)),
            ("router: BGP", tcp(ROUTER, 40000, 179, SYN), Some(8)),
            ("router: GRE", packet(ROUTER, 47), Some(8)),
            ("web: SYN to 443", tcp(WEB, 40000, 443, SYN), Some(9)),
            ("web: ACK to 80", tcp(WEB, 50000, 80, ACK), Some(9)),
            (
                "web: SYN-ACK to 443 (reflection)",
                tcp(WEB, 40000, 443, SYN | ACK),
                Some(11),
            ),
            (
                "web: from a non-ephemeral port",
                tcp(WEB, 1024, 443, SYN),
                Some(11),
            ),
            ("web: SSH", tcp(WEB, 40000, 22, SYN), Some(11)),
            ("web: DNS answer", udp(WEB, 53, 5353), Some(10)),
            (
                "web: NTP answer to a low port",
                udp(WEB, 123, 123),
                Some(11),
            ),
            (
                "web: MySQL source, minimal ruleset",
                tcp(WEB, 3306, 443, ACK),
                Some(1),
            ),
            ("outside every list", tcp(OTHER, 40000, 22, SYN), None),
        ],
    );
}

/// Phases: a skip exempts a packet from the rest of its phase only; later phases still judge
/// it, and the default follows the last phase.
#[test]
fn skip_passes_over_the_rest_of_its_phase() {
    use Action::{Allow, Block, Skip};
    let mut r = rules(&[
        // Phase 0, mitigations: a trusted source is exempt from the reflection blocks.
        ("ip.src in {198.51.100.0/24}", Skip),
        ("udp.srcport in {11211 19}", Block),
        (
            "tcp.flags.syn and tcp.flags.ack and not tcp.srcport in {80 443}",
            Block,
        ),
        // Phase 1, policy.
        ("tcp.dstport eq 22", Block),
        ("ip.proto eq \"icmp\"", Skip),
        ("ip.dst in $web_servers", Allow),
        // Phase 2, a catch-all.
        ("ip.dst in $endpoints", Block),
    ]);
    for (i, rule) in r.iter_mut().enumerate() {
        rule.phase = [0, 0, 0, 1, 1, 1, 2][i];
    }
    let mut untrusted = udp(WEB, 11211, 40000);
    untrusted.src = u32::from_be_bytes([192, 0, 2, 1]);
    check(
        &r,
        &[
            (
                "trusted memcached source: not blocked by phase 0",
                udp(WEB, 11211, 40000),
                Some(5),
            ),
            ("untrusted memcached source", untrusted, Some(1)),
            (
                "trusted SSH: phase 1 still blocks it",
                tcp(WEB, 40000, 22, SYN),
                Some(3),
            ),
            (
                "ICMP to an endpoint: skips phase 1, phase 2 blocks",
                icmp(ENDPOINT, 0),
                Some(6),
            ),
            (
                "ICMP elsewhere: skips everything, default",
                icmp(OTHER, 0),
                None,
            ),
        ],
    );
    // The skip rules that matched on the way are reported, in order.
    let mut seen = Vec::new();
    assert_eq!(
        decide(&r, &icmp(ENDPOINT, 0), |i| seen.push(i)),
        Some((6, Block))
    );
    assert_eq!(seen, [0, 4]);
    let c = Classifier::new(&r);
    let mut seen = Vec::new();
    c.classify_with(&icmp(OTHER, 0), |i| seen.push(i));
    assert_eq!(seen, [0, 4]);
    // With one phase a skip ends evaluation: the default decides.
    for rule in &mut r {
        rule.phase = 0;
    }
    check(&r, &[("one phase", udp(WEB, 11211, 40000), None)]);
}

/// A skip ahead of a rule the classifier leaves to the evaluator (too many terms).
#[test]
fn skip_with_an_interpreted_rule() {
    let deep = (0..6)
        .map(|i| format!("(tcp.dstport eq {i} or udp.dstport eq {i})"))
        .collect::<Vec<_>>()
        .join(" and ");
    let mut r = rules(&[
        ("tcp.srcport eq 7", Action::Skip),
        (&deep, Action::Block),
        ("tcp", Action::Allow),
        ("tcp.dstport eq 1", Action::Block),
    ]);
    r[3].phase = 1;
    r[2].phase = 0;
    let c = Classifier::new(&r);
    assert_eq!(c.fallback_rules(), &[1]);
    let mut t = tcp(OTHER, 7, 1, ACK);
    t.tcp = Some((7, 1, ACK));
    check(&r, &[("skipped past the interpreted rule", t, Some(3))]);
    let mut t = tcp(OTHER, 8, 1, ACK);
    t.tcp = Some((8, 1, ACK));
    check(
        &r,
        &[("the interpreted rule never decides alone", t, Some(2))],
    );
}

/// A boolean compared with 0 or 1, as Wireshark writes it: the same as the field on its own
/// (or its negation on a packet that has it); a TCP flag's comparison never matches a packet
/// without TCP. Evaluator and classifier alike.
#[test]
fn booleans_compared_with_zero_or_one() {
    use Action::Block;
    let r = rules(&[
        ("tcp.flags.syn == 1 and tcp.flags.ack eq 0", Block),
        ("tcp.flags.syn != 1 and tcp.dstport eq 22", Block),
        ("udp == 1 and udp.dstport eq 53", Block),
        ("icmp eq 0 and ip.proto eq 47", Block),
    ]);
    check(
        &r,
        &[
            ("SYN", tcp([10, 0, 0, 1], 1, 80, SYN), Some(0)),
            ("SYN-ACK", tcp([10, 0, 0, 1], 1, 80, SYN | ACK), None),
            ("ACK to 22", tcp([10, 0, 0, 1], 1, 22, ACK), Some(1)),
            ("SYN to 22", tcp([10, 0, 0, 1], 1, 22, SYN), Some(0)),
            ("UDP to 22", udp([10, 0, 0, 1], 1, 22), None),
            ("UDP to 53", udp([10, 0, 0, 1], 1, 53), Some(2)),
            ("GRE", packet([10, 0, 0, 1], 47), Some(3)),
            ("ICMP", icmp([10, 0, 0, 1], 8), None),
        ],
    );
}
