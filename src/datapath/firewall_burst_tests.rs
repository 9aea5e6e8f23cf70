//! The firewall over whole bursts: a burst mixing packets that cross no tunnel, cross one
//! way or both, are blocked or allowed, pass skip rules or reuse their first answer must get
//! the verdicts, output bytes, notes and counters each packet gets alone (a stage that judged
//! a burst's crossings together, or kept state from one packet to the next, must keep this).
use super::*;

/// Frames of every kind the firewall meets, from wan0 unless said.
fn mixed() -> Vec<Vec<u8>> {
    let cust = [192, 168, 10, 5];
    let beta_side = [192, 168, 20, 7];
    vec![
        // Crosses nothing: port to port.
        eth(WAN, UP, &inner_udp(NET, [8, 8, 8, 8], 64, 20)),
        // In from acme, out to a port: DNS to NET (blocked on the way in by rule 1).
        gre(&inner_udp(cust, NET, 64, 40)),
        // In from acme, out to beta (both ways): a SYN (skipped by rule 0, then the default).
        gre(&inner_syn(cust, beta_side, None, false)),
        // In from a port, out to acme: HTTPS from NET, blocked on the way out by rule 3.
        eth(
            WAN,
            UP,
            &inner_syn(NET, [192, 168, 10, 7], Some(1400), false),
        ),
        // In from acme, out to beta: DNS (allowed by rule 2 both ways).
        gre(&inner_udp(cust, beta_side, 64, 40)),
        // Crosses nothing again, between crossings.
        eth(WAN, UP, &inner_udp(NET, [9, 9, 9, 9], 64, 60)),
        // In from acme, out to a port: a SYN to NET (skip, then the default).
        gre(&inner_syn(cust, NET, Some(1460), false)),
        // In from a port to acme: DNS from NET (allowed by rule 2).
        eth(WAN, UP, &inner_udp(NET, [192, 168, 10, 9], 64, 30)),
    ]
}

const RULES: &str = r#"
  { expression = "ip.src in {192.168.10.0/24} and tcp.flags.syn", action = "skip" },
  { expression = "udp.dstport eq 53 and ip.dst in {93.184.216.0/24}", action = "block" },
  { expression = "udp.dstport eq 53", action = "allow" },
  { expression = "tcp.dstport eq 443 and ip.src in {93.184.216.0/24}", action = "block" },"#;

/// The burst through one pipeline, and each packet alone (one burst each) through another.
fn both(s: &Snapshot, frames: &[Vec<u8>]) -> ([Verdict; 8], Pipeline, Pipeline) {
    let mut v = [Verdict::Drop(DropReason::NoRoute); 8];
    let mut burst = Pipeline::new();
    let mut b: Vec<VecBuf> = frames.iter().map(|f| VecBuf::from_bytes(f)).collect();
    burst.process(s, 0, &mut b, &mut v);
    let mut alone = Pipeline::new();
    for (k, f) in frames.iter().enumerate() {
        let mut one = [VecBuf::from_bytes(f)];
        let mut w = [Verdict::Drop(DropReason::NoRoute)];
        alone.process(s, 0, &mut one, &mut w);
        assert_eq!(w[0], v[k], "packet {k}: verdict");
        assert_eq!(one[0].as_ref(), b[k].as_ref(), "packet {k}: bytes");
        assert_eq!(alone.note(), burst.note_at(k), "packet {k}: note");
    }
    assert_eq!(
        format!("{:?}", burst.counters),
        format!("{:?}", alone.counters),
        "counters"
    );
    (v, burst, alone)
}

#[test]
fn a_mixed_burst_is_judged_as_its_packets_alone() {
    use DropReason::FirewallBlock;
    let s = snapshot_with(&format!("{CFG}\n[firewall]\nrules = [{RULES}]\n"));
    assert!(!s.classifier.per_crossing());
    let (v, p, _) = both(&s, &mixed());
    let block = Verdict::Drop(FirewallBlock);
    assert_eq!(
        v,
        [
            Verdict::Forward(0),
            block,
            Verdict::Forward(0),
            block,
            Verdict::Forward(0),
            Verdict::Forward(0),
            Verdict::Forward(0),
            Verdict::Forward(0),
        ]
    );
    let n = |r: usize| p.counters.rules[r][0];
    // Skips: the tunnel-to-tunnel SYN twice (its first answer reused), the SYN to NET once.
    // Rule 2: the tunnel-to-tunnel DNS twice, DNS toward acme once.
    assert_eq!((n(0), n(1), n(2), n(3)), (3, 1, 3, 1));
    assert_eq!(p.counters.firewall_default[0], 3);
    assert_eq!(p.counters.drops[FirewallBlock as usize], 2);
    assert_eq!(p.counters.tunnels[0].drops[FirewallBlock as usize], 2);
    assert_eq!(
        [1, 3, 4].map(|k| p.note_at(k).rule),
        [Some(1), Some(3), Some(2)]
    );
}

/// Rules that test the direction or tunnel: no answer is reused, each crossing is classified
/// in its direction's batch, and egress-only blocks hit packets the ingress let through.
#[test]
fn a_mixed_burst_with_per_crossing_rules_is_judged_as_its_packets_alone() {
    let rules = format!(
        r#"{{ expression = "anygate.direction eq \"egress\" and anygate.tunnel eq \"beta\" and udp", action = "block" }},{RULES}"#
    );
    let s = snapshot_with(&format!("{CFG}\n[firewall]\nrules = [{rules}]\n"));
    assert!(s.classifier.per_crossing());
    let (v, p, _) = both(&s, &mixed());
    let block = Verdict::Drop(DropReason::FirewallBlock);
    // The tunnel-to-tunnel DNS now leaves blocked on its way into beta.
    assert_eq!((v[2], v[4]), (Verdict::Forward(0), block));
    assert_eq!(p.note_at(4).rule, Some(0));
    assert_eq!(p.counters.rules[0][0], 1);
    // Rule 3 (now 4) still blocks HTTPS toward acme; the SYN tunnel to tunnel is skipped on
    // each crossing, evaluated twice.
    assert_eq!(v[3], block);
    assert_eq!(p.counters.rules[1][0], 3);
}

/// Ingress only and egress only, a default of block, and no rules at all.
#[test]
fn one_direction_and_defaults_over_a_mixed_burst() {
    for extra in [
        "apply = [\"ingress\"]",
        "apply = [\"egress\"]",
        "default_action = \"block\"",
    ] {
        let s = snapshot_with(&format!("{CFG}\n[firewall]\n{extra}\nrules = [{RULES}]\n"));
        both(&s, &mixed());
    }
    let s = snapshot_with(&format!(
        "{CFG}\n[firewall]\ndefault_action = \"block\"\nrules = []\n"
    ));
    let (v, _, _) = both(&s, &mixed());
    // Only the packets that cross nothing leave.
    let fwd: Vec<usize> = (0..8).filter(|k| v[*k] == Verdict::Forward(0)).collect();
    assert_eq!(fwd, [0, 5]);
}
