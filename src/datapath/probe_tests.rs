//! Health probes through the pipeline: probes injected into GRE and IP-in-IP tunnels leave
//! encapsulated byte for byte as etherparse builds them; answers are consumed (both
//! directions), another node's are dropped, lookalikes go on as ordinary traffic, and no
//! answer ever reaches the firewall or breaks the accounting identity.
use super::*;
use crate::config::{parse, Host};
use crate::datapath::{DropReason, VecBuf, Verdict};
use crate::health::probe::{self, tests::expected, ProbeSpec, Recognised};
use crate::health::{Answer, CheckType};
use crate::route::Snapshot;
use crate::wire::MacAddr;
use etherparse::{IcmpEchoHeader, Icmpv4Type, IpNumber, Ipv4Header, PacketBuilder};

const NODE: u32 = 42;

const CFG: &str = r#"
[node]
anycast_addresses = ["203.0.113.10"]
id = 42

[[ports]]
name = "wan0"
device = "net_null0"
mac = "02:00:00:00:00:01"
address = "192.0.2.1/24"

[[workers]]
core = 1
rx = [{ port = "wan0" }]

[[neighbors]]
ip = "192.0.2.254"
mac = "02:00:00:00:00:fe"
port = "wan0"

[[tunnels]]
name = "acme"
type = "gre"
customer_endpoint = "198.51.100.20"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"

[[tunnels]]
name = "beta"
type = "ipip"
customer_endpoint = "198.51.100.30"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.2/31"
ttl = 40

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[[routes]]
prefix = "192.168.10.0/24"
nexthop = "acme"
"#;

/// Blocks every ICMP packet crossing a tunnel, and everything else by default.
const FIREWALL: &str = r#"
[firewall]
default_action = "block"
rules = [{ expression = "ip.proto == 1", action = "block" }]
"#;

const WAN: [u8; 6] = [2, 0, 0, 0, 0, 1];
const UP: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const EDGE: [u8; 4] = [203, 0, 113, 10];
const ACME: [u8; 4] = [198, 51, 100, 20];
const BETA: [u8; 4] = [198, 51, 100, 30];
/// Our side and the customer's side of each tunnel's interface address.
const ACME_US: [u8; 4] = [10, 100, 0, 0];
const ACME_THEM: [u8; 4] = [10, 100, 0, 1];
const BETA_US: [u8; 4] = [10, 100, 0, 2];
const BETA_THEM: [u8; 4] = [10, 100, 0, 3];
const NET: [u8; 4] = [93, 184, 216, 34];

fn snapshot_with(cfg: &str) -> Snapshot {
    let cfg = parse(cfg, &Host { cores: vec![0, 1] }).unwrap();
    let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
    Snapshot::build(&cfg, &macs, 1, None).unwrap()
}

fn eth(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut v = dst.to_vec();
    v.extend_from_slice(&src);
    v.extend_from_slice(&[0x08, 0x00]);
    v.extend_from_slice(payload);
    v
}

/// `inner` in outer IPv4 from `src` to `dst` (+ a basic GRE header for GRE), outer TTL `ttl`
/// and DF as the inner packet's, in an Ethernet frame from `esrc` to `edst`.
#[allow(clippy::too_many_arguments)]
fn outer(
    edst: [u8; 6],
    esrc: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    gre: bool,
    ttl: u8,
    df: bool,
    inner: &[u8],
) -> Vec<u8> {
    let mut payload = if gre { vec![0, 0, 8, 0] } else { vec![] };
    payload.extend_from_slice(inner);
    let proto = if gre { 47 } else { 4 };
    let mut h = Ipv4Header::new(payload.len() as u16, ttl, IpNumber(proto), src, dst).unwrap();
    h.dont_fragment = df;
    h.header_checksum = h.calc_header_checksum();
    let mut ip = Vec::new();
    h.write(&mut ip).unwrap();
    ip.extend_from_slice(&payload);
    eth(edst, esrc, &ip)
}

/// An answer arriving from the customer through a tunnel.
fn from_acme(inner: &[u8]) -> Vec<u8> {
    outer(WAN, UP, ACME, EDGE, true, 60, false, inner)
}
fn from_beta(inner: &[u8]) -> Vec<u8> {
    outer(WAN, UP, BETA, EDGE, false, 60, false, inner)
}

fn addr(a: [u8; 4]) -> u32 {
    u32::from_be_bytes(a)
}

fn build(kind: CheckType, src: [u8; 4], dst: [u8; 4], seq: u32) -> Vec<u8> {
    let mut out = [0u8; crate::health::INJECT_MAX];
    let spec = ProbeSpec {
        kind,
        src: addr(src),
        dst: addr(dst),
        seq,
        node_id: NODE,
    };
    let n = probe::build(&spec, &mut out);
    out[..n].to_vec()
}

/// Injects `probes` ((tunnel, inner packet)) as the worker does: an Ethernet placeholder
/// then the inner packet.
fn inject(s: &Snapshot, probes: &[(u16, Vec<u8>)]) -> (Vec<Verdict>, Vec<Vec<u8>>, Pipeline) {
    let mut p = Pipeline::new();
    let mut bufs: Vec<VecBuf> = probes
        .iter()
        .map(|(_, ip)| VecBuf::from_bytes(&eth([0; 6], [0; 6], ip)))
        .collect();
    let tunnels: Vec<u16> = probes.iter().map(|(t, _)| *t).collect();
    let mut v = vec![Verdict::Drop(DropReason::NoRoute); probes.len()];
    p.inject(s, &mut bufs, &tunnels, &mut v);
    let out = bufs.iter().map(|b| b.as_ref().to_vec()).collect();
    (v, out, p)
}

fn process(s: &Snapshot, frames: &[Vec<u8>], now: u64) -> (Vec<Verdict>, Pipeline) {
    let mut p = Pipeline::new();
    p.set_clock(now, 1_000_000_000);
    let mut bufs: Vec<VecBuf> = frames.iter().map(|f| VecBuf::from_bytes(f)).collect();
    let mut v = vec![Verdict::Drop(DropReason::NoRoute); frames.len()];
    p.process(s, 0, &mut bufs, &mut v);
    (v, p)
}

fn udp(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(4000, 53)
        .write(&mut v, &[0; 8])
        .unwrap();
    v
}

fn firewall_untouched(p: &Pipeline) {
    assert!(
        p.counters.rules.iter().all(|r| *r == [0, 0]),
        "rule counters"
    );
    assert_eq!(p.counters.firewall_default, [0, 0], "default counter");
}

#[test]
fn injected_probes_leave_encapsulated_byte_for_byte() {
    // Each case: tunnel, type, inner addresses (as the checker picks them per direction),
    // outer destination, GRE, outer TTL.
    let cases = [
        // reply + bidirectional: customer side -> our side.
        (0, CheckType::Reply, ACME_THEM, ACME_US, ACME, true, 64),
        // request + bidirectional: our side -> customer side.
        (0, CheckType::Request, ACME_US, ACME_THEM, ACME, true, 64),
        (1, CheckType::Reply, BETA_THEM, BETA_US, BETA, false, 40),
        (1, CheckType::Request, BETA_US, BETA_THEM, BETA, false, 40),
        // reply + unidirectional: target -> our anycast endpoint; request: the reverse.
        (0, CheckType::Reply, ACME_THEM, EDGE, ACME, true, 64),
        (1, CheckType::Request, EDGE, BETA_THEM, BETA, false, 40),
    ];
    // The firewall would block every one of them, were they not our own.
    let s = snapshot_with(&format!("{CFG}{FIREWALL}"));
    for (k, &(t, kind, src, dst, remote, gre, ttl)) in cases.iter().enumerate() {
        let ip = build(kind, src, dst, 1000 + k as u32);
        assert_eq!(ip, expected(kind, src, dst, NODE, 1000 + k as u32));
        let (v, out, p) = inject(&s, &[(t, ip.clone())]);
        assert_eq!(v, [Verdict::Forward(0)], "case {k}");
        // Outer DF is copied from the probe's (set); the probe itself is untouched (TTL 64).
        let want = outer(UP, WAN, EDGE, remote, gre, ttl, true, &ip);
        assert_eq!(out[0], want, "case {k}");
        let c = &p.counters;
        assert_eq!((c.originated, c.probes_injected), (1, 1), "case {k}");
        assert_eq!(c.tunnels[t as usize].tx_packets, 1, "case {k}");
        assert_eq!(c.tunnels[t as usize].tx_bytes, want.len() as u64);
        assert_eq!((c.rx_total(), c.drop_total()), (0, 0), "case {k}");
        assert_eq!(p.note().egress_tunnel, Some(t));
        firewall_untouched(&p);
    }
}

#[test]
fn an_injected_probe_needs_its_underlay_resolved_and_its_tunnel_known() {
    // The upstream's MAC is learned by ARP: the probe waits for it like any packet.
    let cfg = CFG.replace(
        "[[neighbors]]\nip = \"192.0.2.254\"\nmac = \"02:00:00:00:00:fe\"\nport = \"wan0\"\n",
        "",
    );
    let s = snapshot_with(&cfg);
    let ip = build(CheckType::Reply, ACME_THEM, ACME_US, 1);
    let (v, _, mut p) = inject(&s, &[(0, ip.clone()), (7, ip)]);
    assert_eq!(
        v,
        [
            Verdict::Drop(DropReason::NeighborUnresolved),
            Verdict::Drop(DropReason::TunnelUnknown)
        ]
    );
    let wants: Vec<_> = p.take_arp_wants().collect();
    assert_eq!(wants, [(0, addr([192, 0, 2, 254]))]);
    // Made here, dropped here: originated = forwarded + dropped.
    assert_eq!((p.counters.originated, p.counters.drop_total()), (2, 2));
    assert_eq!(
        p.counters.tunnels[0].drops[DropReason::NeighborUnresolved as usize],
        1
    );
}

#[test]
fn answers_are_consumed_in_both_directions() {
    let s = snapshot_with(CFG);
    let frames = [
        // bidirectional, reply probe routed back through GRE; request answered over IP-in-IP.
        from_acme(&expected(CheckType::Reply, ACME_THEM, ACME_US, NODE, 7)),
        from_beta(&expected(CheckType::Reply, BETA_THEM, BETA_US, NODE, 8)),
        // unidirectional: a plain echo reply to our anycast address, over the underlay.
        eth(
            WAN,
            UP,
            &expected(CheckType::Reply, ACME_THEM, EDGE, NODE, 9),
        ),
    ];
    let (v, mut p) = process(&s, &frames, 12345);
    assert_eq!(v, [Verdict::Consumed; 3]);
    let answers: Vec<Answer> = p.take_probe_answers().collect();
    let a = |seq, via_tunnel| Answer {
        seq,
        via_tunnel,
        tsc: 12345,
    };
    assert_eq!(answers, [a(7, Some(0)), a(8, Some(1)), a(9, None)]);
    assert_eq!(p.take_probe_answers().count(), 0, "taken once");
    let c = &p.counters;
    assert_eq!((c.health_probe, c.drop_total(), c.rx_total()), (3, 0, 3));
    assert_eq!(c.tunnels[0].rx_packets, 1, "decapsulated from acme");
    assert_eq!(p.note_at(0).probe, Some(Recognised::Ours { seq: 7 }));
    assert_eq!(p.note_at(0).ingress_tunnel, Some(0));
}

#[test]
fn an_answer_is_taken_before_the_source_check_and_the_firewall() {
    let s = snapshot_with(&format!("{CFG}{FIREWALL}"));
    // From a target outside the tunnel's authorized prefixes: the source check would drop it.
    let spoofed = from_acme(&expected(CheckType::Reply, [10, 9, 9, 9], ACME_US, NODE, 1));
    // Shaped like a GRE keepalive (inner EDGE -> ACME): that check would drop it.
    let keepalive = from_acme(&expected(CheckType::Reply, EDGE, ACME, NODE, 2));
    let plain = eth(WAN, UP, &expected(CheckType::Reply, NET, EDGE, NODE, 3));
    let (v, p) = process(&s, &[spoofed, keepalive, plain], 0);
    assert_eq!(v, [Verdict::Consumed; 3]);
    firewall_untouched(&p);
    assert_eq!(p.counters.drop_total(), 0);
    // The firewall is on: an ordinary ping through the tunnel is blocked and counted.
    let mut ping = Vec::new();
    PacketBuilder::ipv4([192, 168, 10, 5], NET, 64)
        .icmpv4(Icmpv4Type::EchoReply(IcmpEchoHeader { id: 1, seq: 1 }))
        .write(&mut ping, &[0; 16])
        .unwrap();
    let (v, p) = process(&s, &[from_acme(&ping)], 0);
    assert_eq!(v, [Verdict::Drop(DropReason::FirewallBlock)]);
    assert_eq!(p.counters.rules[0][0], 1);
}

#[test]
fn another_nodes_answer_is_dropped_as_foreign() {
    let s = snapshot_with(CFG);
    let frames = [
        from_acme(&expected(CheckType::Reply, ACME_THEM, ACME_US, 43, 7)),
        eth(WAN, UP, &expected(CheckType::Reply, ACME_THEM, EDGE, 44, 8)),
    ];
    let (v, mut p) = process(&s, &frames, 0);
    assert_eq!(v, [Verdict::Drop(DropReason::ProbeForeign); 2]);
    assert_eq!(p.take_probe_answers().count(), 0);
    let c = &p.counters;
    assert_eq!(c.drops[DropReason::ProbeForeign as usize], 2);
    assert_eq!(c.tunnels[0].drops[DropReason::ProbeForeign as usize], 1);
    assert_eq!(c.health_probe, 0);
    assert_eq!(
        p.note_at(1).probe,
        Some(Recognised::Foreign { node_id: 44 })
    );
}

#[test]
fn lookalikes_go_on_as_ordinary_traffic() {
    let s = snapshot_with(CFG);
    let good = expected(CheckType::Reply, [192, 168, 10, 5], NET, NODE, 7);
    let mut bad_sum = good.clone();
    bad_sum[43] ^= 1;
    let mut short = good[..40].to_vec();
    short[3] = 40;
    short[10..12].copy_from_slice(&[0, 0]);
    let c = crate::wire::checksum::checksum(&short[..20]);
    short[10..12].copy_from_slice(&c.to_be_bytes());
    // Our request (type 8) is not an answer either.
    let request = expected(CheckType::Request, [192, 168, 10, 5], NET, NODE, 7);
    // To the anycast endpoint, not tunnelled, with a broken ICMP checksum.
    let mut to_edge = expected(CheckType::Reply, NET, EDGE, NODE, 7);
    to_edge[43] ^= 1;
    let frames = [
        from_acme(&bad_sum),
        from_acme(&short),
        from_acme(&request),
        eth(WAN, UP, &to_edge),
    ];
    let (v, p) = process(&s, &frames, 0);
    assert_eq!(
        v,
        [
            Verdict::Forward(0),
            Verdict::Forward(0),
            Verdict::Forward(0),
            Verdict::Drop(DropReason::AnycastNotTunnel)
        ]
    );
    assert_eq!(p.counters.health_probe, 0);
    assert!((0..4).all(|i| p.note_at(i).probe.is_none()));
}

#[test]
fn accounting_holds_with_answers_in_the_burst() {
    let s = snapshot_with(CFG);
    let mut frames = Vec::new();
    for seq in 0..40u32 {
        frames.push(from_acme(&expected(
            CheckType::Reply,
            ACME_THEM,
            ACME_US,
            NODE,
            seq,
        )));
        frames.push(from_acme(&expected(
            CheckType::Reply,
            ACME_THEM,
            ACME_US,
            9,
            seq,
        )));
        frames.push(from_acme(&udp([192, 168, 10, 5], NET)));
    }
    let (v, mut p) = process(&s, &frames, 0);
    let fwd = v
        .iter()
        .filter(|v| matches!(v, Verdict::Forward(_)))
        .count() as u64;
    let consumed = v.iter().filter(|v| **v == Verdict::Consumed).count() as u64;
    let c = &p.counters;
    assert_eq!((fwd, consumed, c.drop_total()), (40, 40, 40));
    assert_eq!(c.health_probe, consumed);
    assert_eq!(c.rx_total(), fwd + c.drop_total() + c.health_probe);
    // 120 packets come in four chunks of at most 32; the records of one processing call
    // beyond what the answer array holds are lost, counted, and the packets still consumed.
    let held = p.take_probe_answers().count() as u64;
    assert_eq!(held + p.counters.probe_ring_full, 40);
    assert!(p.counters.probe_ring_full > 0);
}
