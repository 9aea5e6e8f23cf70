//! The punt path through the pipeline: our own addresses to the exception port (from a port
//! and from inside a tunnel), the rate limit, `local_destination` when punt is off, subnet
//! edges never punted, the kernel's packets routed as local ones, and the accounting.
use super::*;
use crate::config::{parse, Host};
use crate::datapath::punt::{PUNT_SRC_MAC, PUNT_STANDIN_MAC};
use crate::datapath::{DropReason, VecBuf, Verdict};
use crate::route::Snapshot;
use crate::wire::MacAddr;
use etherparse::PacketBuilder;

const CFG: &str = r#"
[node]
anycast_addresses = ["203.0.113.10"]

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

[[neighbors]]
ip = "192.0.2.7"
mac = "02:00:00:00:00:07"
port = "wan0"

[[tunnels]]
name = "acme"
type = "gre"
customer_endpoint = "198.51.100.20"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"
mss_clamp = 1300

[[routes]]
prefix = "198.51.100.20/32"
nexthop = "192.0.2.254"
"#;

const WAN: [u8; 6] = [2, 0, 0, 0, 0, 1];
const UP: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
/// The exception port's index: after the one configured port.
const TAP: u16 = 1;

fn snapshot(punt: &str) -> Snapshot {
    let cfg = parse(&format!("{CFG}\n{punt}"), &Host { cores: vec![0, 1] }).unwrap();
    let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
    Snapshot::build(&cfg, &macs, 1, None).unwrap()
}

const ON: &str = "[punt]\nenabled = true\nrate = 10\nburst = 4\n";

/// An ICMP echo request from `src` to `dst` on the wan port (to its MAC).
fn ping(src: [u8; 4], dst: [u8; 4]) -> VecBuf {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 7], WAN)
        .ipv4(src, dst, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut v, b"ping")
        .unwrap();
    VecBuf::from_bytes(&v)
}

/// The same ping inside GRE from the acme customer endpoint.
fn ping_in_gre(src: [u8; 4], dst: [u8; 4]) -> VecBuf {
    let mut inner = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut inner, b"ping")
        .unwrap();
    let mut payload = vec![0, 0, 0x08, 0x00];
    payload.extend_from_slice(&inner);
    let mut v = Vec::new();
    PacketBuilder::ethernet2(UP, WAN)
        .ipv4([198, 51, 100, 20], [203, 0, 113, 10], 64)
        .write(&mut v, etherparse::IpNumber(47), &payload)
        .unwrap();
    VecBuf::from_bytes(&v)
}

fn run(
    p: &mut Pipeline,
    snap: &Snapshot,
    port: u16,
    mut pkts: Vec<VecBuf>,
) -> (Vec<Verdict>, Vec<VecBuf>) {
    let mut v = vec![Verdict::Drop(DropReason::NoRoute); pkts.len()];
    p.set_clock(1_000_000, 1_000_000);
    p.process(snap, port, &mut pkts, &mut v);
    (v, pkts)
}

/// rx + originated = tx (verdicts forwarded) + drops + health_probe, with the tap a port.
fn assert_accounted(p: &Pipeline, forwarded: u64) {
    let c = &p.counters;
    let drops: u64 = c.drops.iter().sum();
    assert_eq!(
        c.rx_total() + c.originated,
        forwarded + drops + c.health_probe
    );
}

#[test]
fn off_our_addresses_are_local_destination_as_before() {
    let snap = snapshot("");
    assert!(snap.punt.is_none());
    let mut p = Pipeline::new();
    let (v, _) = run(
        &mut p,
        &snap,
        0,
        vec![
            ping([192, 0, 2, 7], [192, 0, 2, 1]),
            ping_in_gre([10, 100, 0, 1], [10, 100, 0, 0]),
        ],
    );
    assert_eq!(v, [Verdict::Drop(DropReason::LocalDestination); 2]);
    assert_eq!(p.counters.punted, 0);
}

#[test]
fn a_port_address_and_our_tunnel_side_go_to_the_kernel() {
    let snap = snapshot(ON);
    assert_eq!(snap.punt.map(|p| p.port), Some(TAP));
    assert_eq!(snap.ports[TAP as usize].mac, PUNT_STANDIN_MAC);
    let mut p = Pipeline::new();
    let (v, out) = run(
        &mut p,
        &snap,
        0,
        vec![
            ping([192, 0, 2, 7], [192, 0, 2, 1]),
            ping_in_gre([10, 100, 0, 1], [10, 100, 0, 0]),
        ],
    );
    assert_eq!(v, [Verdict::Forward(TAP); 2]);
    for o in &out {
        let f = o.as_ref();
        assert_eq!(&f[..6], &PUNT_STANDIN_MAC.0, "to the kernel side's MAC");
        assert_eq!(&f[6..12], &PUNT_SRC_MAC.0);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(f[14 + 8], 64, "TTL untouched: the packet is for us");
    }
    // The tunnelled one arrives decapsulated: the inner packet from the customer side.
    assert_eq!(
        &out[1].as_ref()[14 + 12..14 + 20],
        &[10, 100, 0, 1, 10, 100, 0, 0]
    );
    assert_eq!(p.counters.punted, 2);
    assert_eq!(p.counters.tunnels[snap.tunnel_slot(0)].rx_packets, 1);
    assert_accounted(&p, 2);
}

#[test]
fn a_spoofed_source_in_the_tunnel_is_not_punted() {
    let snap = snapshot(ON);
    let mut p = Pipeline::new();
    let (v, _) = run(
        &mut p,
        &snap,
        0,
        vec![ping_in_gre([172, 16, 0, 9], [10, 100, 0, 0])],
    );
    assert_eq!(v, [Verdict::Drop(DropReason::TunnelSpoofedSource)]);
    assert_eq!(p.counters.punted, 0);
}

#[test]
fn subnet_edges_and_anycast_are_never_punted() {
    let snap = snapshot(ON);
    let mut p = Pipeline::new();
    let (v, _) = run(
        &mut p,
        &snap,
        0,
        vec![
            ping([192, 0, 2, 7], [192, 0, 2, 0]),
            ping([192, 0, 2, 7], [192, 0, 2, 255]),
            ping([192, 0, 2, 7], [203, 0, 113, 10]),
        ],
    );
    assert_eq!(
        v,
        [
            Verdict::Drop(DropReason::LocalDestination),
            Verdict::Drop(DropReason::LocalDestination),
            Verdict::Drop(DropReason::AnycastNotTunnel),
        ]
    );
    assert_eq!(p.counters.punted, 0);
}

#[test]
fn the_rate_limit_drops_and_counts_the_excess() {
    let snap = snapshot(ON);
    let mut p = Pipeline::new();
    let pkts = (0..10)
        .map(|_| ping([192, 0, 2, 7], [192, 0, 2, 1]))
        .collect();
    let (v, _) = run(&mut p, &snap, 0, pkts);
    let punted = v.iter().filter(|v| **v == Verdict::Forward(TAP)).count();
    assert_eq!(punted, 4, "the burst");
    assert_eq!(p.counters.punted, 4);
    assert_eq!(p.counters.drops[DropReason::PuntRateLimited as usize], 6);
    assert_accounted(&p, 4);
    // 10 per second: 0.1 s later (the clock is in µs here), one more.
    let mut pkts = vec![ping([192, 0, 2, 7], [192, 0, 2, 1]); 2];
    let mut v = [Verdict::Drop(DropReason::NoRoute); 2];
    p.set_clock(1_100_000, 1_000_000);
    p.process(&snap, 0, &mut pkts, &mut v);
    assert_eq!(
        v,
        [
            Verdict::Forward(TAP),
            Verdict::Drop(DropReason::PuntRateLimited)
        ]
    );
}

/// A frame from the kernel side: to the tap's MAC from itself (the kernel's `arp off`).
fn from_kernel(src: [u8; 4], dst: [u8; 4], syn: bool) -> VecBuf {
    let mut v = Vec::new();
    let b = PacketBuilder::ethernet2(PUNT_STANDIN_MAC.0, PUNT_STANDIN_MAC.0).ipv4(src, dst, 64);
    if syn {
        b.tcp(179, 40000, 1, 65535)
            .syn()
            .ack(1)
            .options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
            .unwrap()
            .write(&mut v, &[])
            .unwrap();
    } else {
        b.icmpv4_echo_reply(1, 1).write(&mut v, b"ping").unwrap();
    }
    VecBuf::from_bytes(&v)
}

#[test]
fn the_kernel_s_packets_are_routed_as_local_ones() {
    let snap = snapshot(ON);
    let mut p = Pipeline::new();
    let (v, out) = run(
        &mut p,
        &snap,
        TAP,
        vec![
            from_kernel([10, 100, 0, 0], [10, 100, 0, 1], true),
            from_kernel([192, 0, 2, 1], [192, 0, 2, 7], false),
            from_kernel([192, 0, 2, 1], [192, 0, 2, 1], false),
        ],
    );
    assert_eq!(
        v,
        [
            Verdict::Forward(0),
            Verdict::Forward(0),
            Verdict::Drop(DropReason::LocalDestination),
        ],
        "into the tunnel, to the port neighbour, never back to the kernel"
    );
    // Into the tunnel: GRE toward the customer endpoint, the inner TTL kept (local), the SYN
    // clamped to the tunnel's 1300.
    let gre = out[0].as_ref();
    assert_eq!(&gre[..6], &UP);
    assert_eq!(gre[14 + 9], 47);
    let inner = &gre[14 + 20 + 4..];
    assert_eq!(inner[8], 64, "no TTL decrement for our own packets");
    assert_eq!(p.note_at(0).mss, Some(1300));
    // To the port neighbour: its MAC, our port's, TTL kept.
    let f = out[1].as_ref();
    assert_eq!(&f[..6], &[2, 0, 0, 0, 0, 7]);
    assert_eq!(&f[6..12], &WAN);
    assert_eq!(f[14 + 8], 64);
    assert_eq!(p.counters.rx_packets[TAP as usize], 3);
    assert_eq!(p.counters.punted, 0);
    assert_accounted(&p, 2);
}
