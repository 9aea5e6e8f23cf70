//! Counters across a table rebuild: a rule or tunnel keeps its count when others are inserted
//! before it or reordered, while a worker still on the old table keeps counting.
use super::*;
use crate::datapath::SharedCounters;
use crate::route::Previous;

/// `cfg` built over `prev` as the next generation, while every worker has taken `acked`.
fn rebuild(cfg: &str, prev: &Snapshot, acked: u64, shared: &SharedCounters) -> Snapshot {
    let cfg = parse(cfg, &Host { cores: vec![0, 1] }).unwrap();
    let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
    let raw = shared.total();
    let previous = Previous {
        snapshot: prev,
        acked,
        counters: &raw,
    };
    Snapshot::build(&cfg, &macs, prev.generation + 1, Some(previous)).unwrap()
}

/// The worker `p` on table `snap` takes `frame` `n` times, then publishes its counters.
fn feed(p: &mut Pipeline, snap: &Snapshot, frame: &[u8], n: usize, shared: &SharedCounters) {
    let mut v = [Verdict::Drop(DropReason::NoRoute)];
    for _ in 0..n {
        p.process(snap, 0, &mut [VecBuf::from_bytes(frame)], &mut v);
    }
    shared.publish(0, &mut p.counters);
}

#[test]
fn a_rule_keeps_its_count_when_a_rule_is_inserted_before_it() {
    let fw = |rules: &str| format!("{CFG}\n[firewall]\nrules = [{rules}]\n");
    let dns_rule = r#"{ expression = "udp.dstport eq 53", action = "block" }"#;
    let syn_rule = |e: &str| format!(r#"{{ id = "syn", expression = "{e}", action = "block" }}"#);
    let dns = gre(&inner_udp([192, 168, 10, 5], NET, 64, 40));
    let syn = gre(&inner_syn([192, 168, 10, 5], NET, None, false));
    let shared = SharedCounters::new(1);
    let mut w = Pipeline::new();
    let s1 = snapshot_with(&fw(dns_rule));
    feed(&mut w, &s1, &dns, 5, &shared);
    let [_, dns_bytes] = s1.counters(&shared).rules[0];
    assert_eq!(s1.counters(&shared).rules[0][0], 5);

    // A rule on top; the worker is still on the old table for a while, counting by it.
    let s2 = rebuild(
        &fw(&format!("{}, {dns_rule}", syn_rule("tcp.flags.syn"))),
        &s1,
        1,
        &shared,
    );
    feed(&mut w, &s1, &dns, 2, &shared);
    feed(&mut w, &s2, &dns, 3, &shared);
    feed(&mut w, &s2, &syn, 1, &shared);
    let c = s2.counters(&shared);
    assert_eq!(
        c.rules[0],
        [1, syn.len() as u64 - 24],
        "the new rule: only its packet"
    );
    assert_eq!(c.rules[1], [10, 2 * dns_bytes], "the DNS rule counts on");

    // The DNS rule removed, a new one in its place: it starts from zero, though a worker on
    // the old table still counts DNS; the rule with an id keeps its count across an edit.
    let s3 = rebuild(
        &fw(&format!(
            r#"{}, {{ expression = "udp", action = "allow" }}"#,
            syn_rule("tcp.flags.syn and tcp.dstport eq 443")
        )),
        &s2,
        2,
        &shared,
    );
    feed(&mut w, &s2, &dns, 4, &shared);
    assert_eq!(s3.counters(&shared).rules[..2], [c.rules[0], [0, 0]]);
    feed(&mut w, &s3, &dns, 1, &shared);
    feed(&mut w, &s3, &syn, 1, &shared);
    let c = s3.counters(&shared);
    assert_eq!((c.rules[0][0], c.rules[1][0]), (2, 1));
}

#[test]
fn tunnels_keep_their_counts_when_reordered() {
    let (a, b, end) = (
        CFG.find("[[tunnels]]\nname = \"acme\"").unwrap(),
        CFG.find("[[tunnels]]\nname = \"beta\"").unwrap(),
        CFG.find("[[routes]]").unwrap(),
    );
    let swapped = format!("{}{}{}{}", &CFG[..a], &CFG[b..end], &CFG[a..b], &CFG[end..]);
    let from_acme = gre(&inner_udp([192, 168, 10, 5], NET, 64, 10));
    let from_beta = tunneled(
        BETA,
        EDGE,
        4,
        None,
        &inner_udp([192, 168, 20, 5], NET, 64, 10),
    );
    let to_acme = eth(WAN, UP, &inner_udp(NET, [192, 168, 10, 7], 64, 20));
    let shared = SharedCounters::new(1);
    let mut w = Pipeline::new();
    let s1 = snapshot();
    feed(&mut w, &s1, &from_acme, 3, &shared);
    feed(&mut w, &s1, &from_beta, 1, &shared);
    feed(&mut w, &s1, &to_acme, 2, &shared);

    let s2 = rebuild(&swapped, &s1, 1, &shared);
    assert_eq!(
        (&*s2.tunnels[0].name, &*s2.tunnels[1].name),
        ("beta", "acme")
    );
    feed(&mut w, &s1, &from_acme, 1, &shared);
    feed(&mut w, &s2, &from_acme, 2, &shared);
    feed(&mut w, &s2, &to_acme, 1, &shared);
    let c = s2.counters(&shared);
    let (beta, acme) = (c.tunnels[0], c.tunnels[1]);
    assert_eq!((beta.rx_packets, beta.tx_packets), (1, 0));
    assert_eq!((acme.rx_packets, acme.tx_packets), (6, 3));
    assert_eq!(acme.rx_bytes, 6 * from_acme.len() as u64);
    assert_eq!(c.tunnels[2], Default::default());
}
