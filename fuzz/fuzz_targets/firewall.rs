//! The firewall compiler against the reference evaluator: rules parsed from the input (one
//! `action expression` per line; a parse error ends the case), then packets built from the
//! remaining bytes. The classifier must pick the same rule, with the same skips, as the
//! rule-by-rule evaluator; neither may panic.
#![no_main]
use anygate::firewall::{decide, parse, Action, Classifier, Fields, Lists, Rule};
use libfuzzer_sys::fuzz_target;

const TUNNELS: [&str; 3] = ["acme", "beta", "gamma"];

fn lists() -> Lists {
    let mut l = Lists::new();
    for (name, items) in [
        ("ports", &["53", "80", "1000..2000"][..]),
        ("nets", &["10.0.0.0/8", "192.0.2.1", "172.16.0.0/12"][..]),
        ("protos", &["tcp", "udp", "1"][..]),
    ] {
        l.insert(name.into(), items.iter().map(|s| s.to_string()).collect());
    }
    l
}

fn packet(b: &[u8]) -> Fields<'static> {
    let g = |i: usize| b.get(i).copied().unwrap_or(0);
    let be16 = |i: usize| u16::from_be_bytes([g(i), g(i + 1)]);
    let be32 = |i: usize| u32::from_be_bytes([g(i), g(i + 1), g(i + 2), g(i + 3)]);
    let proto = [6, 17, 1, 47, g(0)][g(1) as usize % 5];
    Fields {
        src: be32(2),
        dst: be32(6),
        proto,
        len: be16(10),
        hdr_len: g(12),
        ttl: g(13),
        icmp: (proto == 1).then(|| (g(14), g(15))),
        tcp: (proto == 6).then(|| (be16(14), be16(16), g(18))),
        udp: (proto == 17).then(|| (be16(14), be16(16))),
        tunnel: match g(19) % 4 {
            3 => None,
            t => Some(TUNNELS[t as usize]),
        },
        direction: [None, Some("ingress"), Some("egress")][g(20) as usize % 3],
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == 0) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let lists = lists();
    let mut rules = Vec::new();
    for (i, line) in text.lines().take(64).enumerate() {
        let (action, expr) = match line.split_once(' ') {
            Some(("allow", e)) => (Action::Allow, e),
            Some(("block", e)) => (Action::Block, e),
            Some(("skip", e)) => (Action::Skip, e),
            _ => return,
        };
        let Ok(expr) = parse(expr, &lists) else {
            return;
        };
        let mut r = Rule::new(expr, action);
        // Phases of up to three rules, so skips have somewhere to go.
        r.phase = (i / 3) as u16;
        rules.push(r);
    }
    let c = Classifier::new(&rules);
    for pkt in data[split + 1..].chunks(21) {
        let p = packet(pkt);
        let (mut s1, mut s2) = (Vec::new(), Vec::new());
        let want = decide(&rules, &p, |i| s1.push(i));
        let got = c.classify_with(&p, |i| s2.push(i));
        assert_eq!(got, want, "{p:?}");
        assert_eq!(s2, s1, "skips passed, {p:?}");
    }
});
