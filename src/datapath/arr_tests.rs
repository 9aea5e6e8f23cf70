//! Automatic Return Routing through the pipeline: learning from tunnels with ARR, return
//! packets sent back into the tunnel that taught their flow, and what is never learned.
use super::*;
use crate::config::{parse, Health, Host};
use crate::datapath::{DropReason, VecBuf, Verdict};
use crate::route::Snapshot;
use crate::wire::MacAddr;
use etherparse::{Ipv4Header, PacketBuilder, TcpOptionElement};

/// Two sites with the same private prefix (only their flows can tell them apart), a third
/// tunnel without ARR, a shared server on lan0 and the Internet on wan0.
const CFG: &str = r#"
[node]
anycast_addresses = ["203.0.113.10"]

[[ports]]
name = "wan0"
device = "net_null0"
mac = "02:00:00:00:00:01"
address = "192.0.2.1/24"

[[ports]]
name = "lan0"
device = "net_null1"
mac = "02:00:00:00:01:01"
address = "10.0.0.1/24"

[[workers]]
core = 1
rx = [{ port = "wan0" }, { port = "lan0" }]

[[neighbors]]
ip = "192.0.2.254"
mac = "02:00:00:00:00:fe"
port = "wan0"

[[neighbors]]
ip = "10.0.0.50"
mac = "02:00:00:00:01:50"
port = "lan0"

[[tunnels]]
name = "acme"
type = "gre"
customer_endpoint = "198.51.100.20"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"
authorized_prefixes = ["192.168.10.0/24"]
automatic_return_routing = true

[[tunnels]]
name = "beta"
type = "gre"
customer_endpoint = "198.51.100.30"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.2/31"
authorized_prefixes = ["192.168.10.0/24"]
automatic_return_routing = true

[[tunnels]]
name = "gamma"
type = "gre"
customer_endpoint = "198.51.100.40"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.4/31"
authorized_prefixes = ["172.16.0.0/24"]

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[[routes]]
prefix = "172.16.0.0/24"
nexthop = "gamma"
"#;

const WAN: u16 = 0;
const LAN: u16 = 1;
const EDGE: [u8; 4] = [203, 0, 113, 10];
const ACME: [u8; 4] = [198, 51, 100, 20];
const BETA: [u8; 4] = [198, 51, 100, 30];
const HOST: [u8; 4] = [192, 168, 10, 5];
const NET: [u8; 4] = [93, 184, 216, 34];
const SERVER: [u8; 4] = [10, 0, 0, 50];

fn snapshot_with(cfg: &str) -> Snapshot {
    let cfg = parse(cfg, &Host { cores: vec![0, 1] }).unwrap();
    let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
    Snapshot::build(&cfg, &macs, 1, None).unwrap()
}

/// An Ethernet frame to wan0.
fn eth(payload: &[u8]) -> Vec<u8> {
    let mut v = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xfe, 0x08, 0x00];
    v.extend_from_slice(payload);
    v
}

/// An Ethernet frame to lan0.
fn lan(payload: &[u8]) -> Vec<u8> {
    let mut v = eth(payload);
    v[4] = 1;
    v
}

fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut v, &[0x42; 20])
        .unwrap();
    v
}

/// A TCP segment with `flags` (SYN 2, ACK 0x10, FIN 1, RST 4), an MSS option on SYNs.
fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut b = PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, 1, 64240);
    if flags & 2 != 0 {
        b = b.syn();
    }
    if flags & 0x10 != 0 {
        b = b.ack(7);
    }
    if flags & 1 != 0 {
        b = b.fin();
    }
    if flags & 4 != 0 {
        b = b.rst();
    }
    if flags & 2 != 0 {
        b = b
            .options(&[TcpOptionElement::MaximumSegmentSize(1460)])
            .unwrap();
    }
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

fn echo(src: [u8; 4], dst: [u8; 4], id: u16, request: bool) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, 64);
    let b = if request {
        b.icmpv4_echo_request(id, 1)
    } else {
        b.icmpv4_echo_reply(id, 1)
    };
    let mut v = Vec::new();
    b.write(&mut v, &[1, 2, 3, 4]).unwrap();
    v
}

/// `inner` in GRE from the customer endpoint `from`, as received on wan0.
fn gre(from: [u8; 4], inner: &[u8]) -> Vec<u8> {
    let mut payload = vec![0, 0, 8, 0];
    payload.extend_from_slice(inner);
    let mut h = Ipv4Header::new(payload.len() as u16, 60, 47.into(), from, EDGE).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut ip = Vec::new();
    h.write(&mut ip).unwrap();
    ip.extend_from_slice(&payload);
    eth(&ip)
}

/// Sets a fragment offset (8-byte units) on an IPv4 packet, fixing its checksum.
fn fragment(mut ip: Vec<u8>, offset: u16) -> Vec<u8> {
    ip[6..8].copy_from_slice(&offset.to_be_bytes());
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = crate::wire::checksum::checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip
}

/// What happened to one packet: its verdict, the outer destination when it left in a
/// tunnel, and the tunnel ARR chose.
#[derive(Debug, PartialEq)]
struct Out {
    verdict: Verdict,
    tunnel_to: Option<[u8; 4]>,
    arr: Option<u16>,
}

fn send(p: &mut Pipeline, s: &Snapshot, port: u16, frame: Vec<u8>) -> Out {
    let mut b = [VecBuf::from_bytes(&frame)];
    let mut v = [Verdict::Drop(DropReason::NoRoute)];
    p.process(s, port, &mut b, &mut v);
    let out = b[0].as_ref();
    let tunnel_to = (matches!(v[0], Verdict::Forward(_)) && out.get(23) == Some(&47))
        .then(|| out[30..34].try_into().unwrap());
    Out {
        verdict: v[0],
        tunnel_to,
        arr: p.note().egress_tunnel.filter(|_| p.note().arr),
    }
}

fn via_arr(to: [u8; 4], t: u16) -> Out {
    Out {
        verdict: Verdict::Forward(WAN),
        tunnel_to: Some(to),
        arr: Some(t),
    }
}

fn by_route(port: u16) -> Out {
    Out {
        verdict: Verdict::Forward(port),
        tunnel_to: None,
        arr: None,
    }
}

fn table(s: &Snapshot) -> &crate::arr::Table {
    s.arr_table().expect("ARR on")
}

#[test]
fn overlapping_sites_each_get_their_own_return_traffic() {
    let s = snapshot_with(CFG);
    let mut p = Pipeline::new();
    // Before any flow is learned, the route table decides (here: back out of wan0).
    assert_eq!(
        send(&mut p, &s, WAN, eth(&udp(NET, HOST, 53, 4000))),
        by_route(WAN)
    );
    // The same host address at both sites, two flows.
    assert_eq!(
        send(&mut p, &s, WAN, gre(ACME, &udp(HOST, NET, 4000, 53))),
        by_route(WAN)
    );
    assert_eq!(
        send(&mut p, &s, WAN, gre(BETA, &udp(HOST, NET, 4001, 53))),
        by_route(WAN)
    );
    assert_eq!(
        send(&mut p, &s, WAN, eth(&udp(NET, HOST, 53, 4000))),
        via_arr(ACME, 0)
    );
    assert_eq!(
        send(&mut p, &s, WAN, eth(&udp(NET, HOST, 53, 4001))),
        via_arr(BETA, 1)
    );
    // To a server on lan0, and back from it.
    assert_eq!(
        send(&mut p, &s, WAN, gre(BETA, &echo(HOST, SERVER, 9, true))),
        by_route(LAN)
    );
    assert_eq!(
        send(&mut p, &s, LAN, lan(&echo(SERVER, HOST, 9, false))),
        via_arr(BETA, 1)
    );
    // Another echo identifier, or a request the other way, is not that flow.
    assert_eq!(
        send(&mut p, &s, LAN, lan(&echo(SERVER, HOST, 10, false))),
        by_route(WAN)
    );
    assert_eq!(
        send(&mut p, &s, LAN, lan(&echo(SERVER, HOST, 9, true))),
        by_route(WAN)
    );
    let c = &p.counters;
    assert_eq!((c.arr_learned, c.arr_returned, c.arr_refused), (3, 3, 0));
    assert_eq!(c.tunnels[s.tunnel_slot(0)].arr_learned, 1);
    assert_eq!(c.tunnels[s.tunnel_slot(1)].arr_learned, 2);
    assert_eq!(c.tunnels[s.tunnel_slot(1)].arr_returned, 2);
    assert_eq!(c.tunnels[s.tunnel_slot(1)].tx_packets, 2);
}

#[test]
fn tcp_syn_creates_others_refresh_and_fin_shortens() {
    let s = snapshot_with(CFG);
    let t = table(&s);
    let mut p = Pipeline::new();
    // An ACK of an unknown flow teaches nothing.
    send(&mut p, &s, WAN, gre(ACME, &tcp(HOST, NET, 5000, 443, 0x10)));
    assert_eq!(
        send(&mut p, &s, WAN, eth(&tcp(NET, HOST, 443, 5000, 0x10))),
        by_route(WAN)
    );
    assert_eq!(p.counters.arr_learned, 0);
    // The SYN does; its SYN-ACK goes back, MSS-clamped like any packet into the tunnel.
    send(&mut p, &s, WAN, gre(ACME, &tcp(HOST, NET, 5000, 443, 0x02)));
    assert_eq!(
        send(&mut p, &s, WAN, eth(&tcp(NET, HOST, 443, 5000, 0x12))),
        via_arr(ACME, 0)
    );
    assert_eq!(p.note().mss, Some(1436));
    // Established (a return packet was seen): 300 s idle.
    t.set_now(299);
    t.sweep(t.capacity());
    send(&mut p, &s, WAN, gre(ACME, &tcp(HOST, NET, 5000, 443, 0x10)));
    assert_eq!(p.counters.arr_refreshed, 1);
    // A FIN from the customer: 10 s to live.
    send(&mut p, &s, WAN, gre(ACME, &tcp(HOST, NET, 5000, 443, 0x11)));
    t.set_now(308);
    assert_eq!(t.sweep(t.capacity()), 0);
    t.set_now(309);
    assert_eq!(t.sweep(t.capacity()), 1);
    assert_eq!(
        send(&mut p, &s, WAN, eth(&tcp(NET, HOST, 443, 5000, 0x10))),
        by_route(WAN)
    );
}

#[test]
fn idle_flows_expire() {
    let s = snapshot_with(CFG);
    let t = table(&s);
    let mut p = Pipeline::new();
    send(&mut p, &s, WAN, gre(ACME, &udp(HOST, NET, 4000, 53)));
    send(&mut p, &s, WAN, gre(ACME, &echo(HOST, NET, 3, true)));
    t.set_now(30);
    assert_eq!(t.sweep(t.capacity()), 1, "ICMP after 30 s");
    assert_eq!(
        send(&mut p, &s, WAN, eth(&echo(NET, HOST, 3, false))),
        by_route(WAN)
    );
    assert_eq!(
        send(&mut p, &s, WAN, eth(&udp(NET, HOST, 53, 4000))),
        via_arr(ACME, 0)
    );
    // The return packet refreshed it at 30: UDP lives 60 s from there.
    t.set_now(89);
    assert_eq!(t.sweep(t.capacity()), 0);
    t.set_now(90);
    assert_eq!(t.sweep(t.capacity()), 1);
    assert_eq!(
        send(&mut p, &s, WAN, eth(&udp(NET, HOST, 53, 4000))),
        by_route(WAN)
    );
    assert_eq!(t.expired(), 2);
}

#[test]
fn a_full_table_refuses_and_counts() {
    let s = snapshot_with(&format!("{CFG}\n[arr]\nmax_flows = 1024\n"));
    let t = table(&s);
    assert_eq!(t.capacity(), 1024);
    let mut p = Pipeline::new();
    // All in one second: nothing is old enough to give way.
    let mut forwarded = 0;
    for n in 0..2048u16 {
        let out = send(&mut p, &s, WAN, gre(ACME, &udp(HOST, NET, 10000 + n, 53)));
        forwarded += usize::from(out.verdict == Verdict::Forward(WAN));
    }
    let c = &p.counters;
    assert_eq!(c.arr_learned + c.arr_refused, 2048);
    assert!(c.arr_refused >= 1024, "{}", c.arr_refused);
    assert_eq!(c.tunnels[s.tunnel_slot(0)].arr_refused, c.arr_refused);
    assert_eq!(t.census(s.arr_epoch, 3).0 as u64, c.arr_learned);
    // Refused flows still forwarded: ARR never drops.
    assert_eq!(forwarded, 2048);
}

#[test]
fn non_first_fragments_neither_learn_nor_return() {
    let s = snapshot_with(CFG);
    let mut p = Pipeline::new();
    let mut frag = fragment(udp(HOST, NET, 4000, 53), 0x2000);
    // MF only on a first fragment: offset 0, it has ports and is learned.
    send(&mut p, &s, WAN, gre(ACME, &frag));
    assert_eq!(p.counters.arr_learned, 1);
    frag = fragment(udp(HOST, NET, 4002, 53), 8);
    send(&mut p, &s, WAN, gre(ACME, &frag));
    assert_eq!(p.counters.arr_learned, 1, "offset 8: no ports");
    // A return non-first fragment of a known flow: the route decides (no ports to match).
    assert_eq!(
        send(&mut p, &s, WAN, eth(&fragment(udp(NET, HOST, 53, 4000), 8))),
        by_route(WAN)
    );
    assert_eq!(
        send(&mut p, &s, WAN, eth(&udp(NET, HOST, 53, 4000))),
        via_arr(ACME, 0)
    );
}

#[test]
fn tunnel_to_tunnel_is_never_learned_nor_returned_from_a_tunnel() {
    let s = snapshot_with(CFG);
    let mut p = Pipeline::new();
    let to_gamma = send(
        &mut p,
        &s,
        WAN,
        gre(ACME, &udp(HOST, [172, 16, 0, 5], 4000, 53)),
    );
    assert_eq!(to_gamma.tunnel_to, Some([198, 51, 100, 40]));
    assert_eq!(p.counters.arr_learned, 0);
    // A flow learned toward the Internet: its "return" arriving from another tunnel is
    // routed by the table, not by ARR.
    send(&mut p, &s, WAN, gre(ACME, &udp(HOST, NET, 4000, 53)));
    assert_eq!(p.counters.arr_learned, 1);
    let from_gamma = udp(NET, HOST, 53, 4000);
    let mut g = gre([198, 51, 100, 40], &from_gamma);
    // gamma may only send 172.16.0.0/24: the source check drops it before ARR could act.
    assert_eq!(
        send(&mut p, &s, WAN, std::mem::take(&mut g)).verdict,
        Verdict::Drop(DropReason::TunnelSpoofedSource)
    );
    assert_eq!(p.counters.arr_returned, 0);
}

#[test]
fn a_down_tunnel_falls_back_to_the_route_table_and_returns_when_up() {
    let s = snapshot_with(CFG);
    let mut p = Pipeline::new();
    send(&mut p, &s, WAN, gre(ACME, &udp(HOST, NET, 4000, 53)));
    let ret = || eth(&udp(NET, HOST, 53, 4000));
    let degraded = s.with_health(0, Health::Degraded, 2).unwrap();
    assert_eq!(send(&mut p, &degraded, WAN, ret()), via_arr(ACME, 0));
    let down = s.with_health(0, Health::Down, 3).unwrap();
    assert_eq!(send(&mut p, &down, WAN, ret()), by_route(WAN));
    let up = down.with_health(0, Health::Healthy, 4).unwrap();
    assert_eq!(send(&mut p, &up, WAN, ret()), via_arr(ACME, 0));
}

#[test]
fn off_by_default_and_off_per_tunnel() {
    let plain = CFG.replace("automatic_return_routing = true", "");
    let s = snapshot_with(&plain);
    assert!(
        s.arr.is_none() && s.arr_table().is_none(),
        "no table allocated"
    );
    let mut p = Pipeline::new();
    send(&mut p, &s, WAN, gre(ACME, &udp(HOST, NET, 4000, 53)));
    assert_eq!(
        send(&mut p, &s, WAN, eth(&udp(NET, HOST, 53, 4000))),
        by_route(WAN)
    );
    // Only beta has it: acme's flows are not learned.
    let one = CFG.replacen("automatic_return_routing = true", "", 1);
    let s = snapshot_with(&one);
    send(&mut p, &s, WAN, gre(ACME, &udp(HOST, NET, 4000, 53)));
    assert_eq!(p.counters.arr_learned, 0);
    send(&mut p, &s, WAN, gre(BETA, &udp(HOST, NET, 4000, 53)));
    assert_eq!(p.counters.arr_learned, 1);
}

#[test]
fn the_egress_firewall_still_applies_to_returned_packets() {
    let fw = "\n[firewall]\napply = [\"egress\"]\n[[firewall.rules]]\nexpression = \"udp.srcport == 53\"\naction = \"block\"\n";
    let s = snapshot_with(&format!("{CFG}{fw}"));
    let mut p = Pipeline::new();
    send(&mut p, &s, WAN, gre(ACME, &udp(HOST, NET, 4000, 53)));
    let out = send(&mut p, &s, WAN, eth(&udp(NET, HOST, 53, 4000)));
    assert_eq!(out.verdict, Verdict::Drop(DropReason::FirewallBlock));
    assert_eq!(out.arr, Some(0));
}

#[test]
fn a_reload_that_changes_the_tunnels_forgets_their_flows() {
    let cfg = parse(CFG, &Host { cores: vec![0, 1] }).unwrap();
    let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
    let s = Snapshot::build(&cfg, &macs, 1, None).unwrap();
    let mut p = Pipeline::new();
    send(&mut p, &s, WAN, gre(ACME, &udp(HOST, NET, 4000, 53)));
    let counters = p.counters.clone();
    let prev = crate::route::Previous {
        snapshot: &s,
        acked: 1,
        counters: &counters,
    };
    let same = Snapshot::build(&cfg, &macs, 2, Some(prev)).unwrap();
    assert!(std::sync::Arc::ptr_eq(
        s.arr.as_ref().unwrap(),
        same.arr.as_ref().unwrap()
    ));
    let ret = || eth(&udp(NET, HOST, 53, 4000));
    assert_eq!(send(&mut p, &same, WAN, ret()), via_arr(ACME, 0));
    // beta and acme swap places: index 0 is now beta, so acme's entry must not be found.
    let swapped = CFG
        .replacen("name = \"acme\"", "name = \"tmp\"", 1)
        .replacen("name = \"beta\"", "name = \"acme\"", 1)
        .replacen("name = \"tmp\"", "name = \"beta\"", 1);
    let cfg2 = parse(&swapped, &Host { cores: vec![0, 1] }).unwrap();
    let prev = crate::route::Previous {
        snapshot: &same,
        acked: 2,
        counters: &counters,
    };
    let moved = Snapshot::build(&cfg2, &macs, 3, Some(prev)).unwrap();
    assert_ne!(moved.arr_epoch, same.arr_epoch);
    assert_eq!(send(&mut p, &moved, WAN, ret()), by_route(WAN));
}

/// Two workers on real threads sharing one table: one receives the customers' flows from
/// both tunnels (wan0 queue 0), the other their return packets (lan0) at the same time; every
/// return packet of a flow learned before it was sent goes back into its own site's tunnel.
#[test]
fn two_workers_learn_on_one_and_return_on_the_other() {
    const FLOWS: u16 = 500;
    let s = std::sync::Arc::new(snapshot_with(CFG));
    let learned = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(0));
    let site = |n: u16| {
        if n.is_multiple_of(2) {
            (ACME, 0)
        } else {
            (BETA, 1)
        }
    };
    let learner = {
        let (s, learned) = (s.clone(), learned.clone());
        std::thread::spawn(move || {
            let mut p = Pipeline::new();
            for n in 0..FLOWS {
                let out = send(
                    &mut p,
                    &s,
                    WAN,
                    gre(site(n).0, &udp(HOST, SERVER, 20000 + n, 53)),
                );
                assert_eq!(out, by_route(LAN));
                learned.store(n + 1, std::sync::atomic::Ordering::Release);
            }
            p.counters.arr_learned
        })
    };
    let returner = {
        let (s, learned) = (s.clone(), learned.clone());
        std::thread::spawn(move || {
            let mut p = Pipeline::new();
            let mut checked = 0u32;
            while checked < FLOWS as u32 * 2 {
                let upto = learned.load(std::sync::atomic::Ordering::Acquire);
                if upto == 0 {
                    std::thread::yield_now();
                    continue;
                }
                let n = (checked as u16 * 7) % upto;
                let (to, t) = site(n);
                let out = send(&mut p, &s, LAN, lan(&udp(SERVER, HOST, 53, 20000 + n)));
                assert_eq!(out, via_arr(to, t), "flow {n}");
                checked += 1;
            }
            p.counters.arr_returned
        })
    };
    assert_eq!(learner.join().unwrap(), FLOWS as u64);
    assert_eq!(returner.join().unwrap(), FLOWS as u64 * 2);
}
