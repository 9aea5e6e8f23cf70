//! Pipeline tests. Packets are built with etherparse, an independent implementation, and the
//! outputs are parsed back with it, so a shared misunderstanding cannot hide a bug.
use super::*;
use crate::config::{parse, Host};
use crate::datapath::VecBuf;
use crate::wire::{arp, MacAddr};
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

const CFG: &str = r#"
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
mtu = 1000

[[workers]]
core = 1
rx = [{ port = "wan0" }, { port = "lan0" }]

[[neighbors]]
ip = "192.0.2.254"
mac = "02:00:00:00:00:fe"
port = "wan0"

[[neighbors]]
ip = "10.0.0.9"
mac = "02:00:00:00:01:09"
port = "lan0"

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[[routes]]
prefix = "172.16.0.0/12"
nexthop = "10.0.0.9"

[[routes]]
prefix = "172.16.5.0/24"
nexthop = "10.0.0.2"
"#;

const WAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const PEER: [u8; 6] = [2, 0, 0, 0, 0, 0x55];

fn snapshot() -> Snapshot {
    let cfg = parse(CFG, &Host { cores: vec![0, 1] }).unwrap();
    let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
    Snapshot::build(&cfg, &macs, 1, None).unwrap()
}

fn udp(dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], ttl: u8, payload: usize) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(PEER, dst_mac)
        .ipv4(src, dst, ttl)
        .udp(4000, 53);
    let payload = vec![0xab; payload];
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, &payload).unwrap();
    out
}

/// Clears DF and fixes the header checksum.
fn without_df(mut f: Vec<u8>) -> Vec<u8> {
    f[20] &= !0x40;
    f[24..26].copy_from_slice(&[0, 0]);
    let c = crate::wire::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// An ICMP destination-unreachable message in flight.
fn icmp_error_packet(dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], ttl: u8) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(PEER, dst_mac)
        .ipv4(src, dst, ttl)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ));
    let mut out = Vec::new();
    b.write(&mut out, &[0u8; 28]).unwrap();
    out
}

fn run(snap: &Snapshot, port: u16, frames: &[Vec<u8>]) -> (Pipeline, Vec<VecBuf>, Vec<Verdict>) {
    let mut p = Pipeline::new();
    let mut bufs: Vec<VecBuf> = frames.iter().map(|f| VecBuf::from_bytes(f)).collect();
    let mut v = vec![Verdict::Drop(DropReason::NoRoute); bufs.len()];
    p.process(snap, port, &mut bufs, &mut v);
    (p, bufs, v)
}

fn one(snap: &Snapshot, port: u16, frame: Vec<u8>) -> (Verdict, Vec<u8>) {
    let (_, b, v) = run(snap, port, &[frame]);
    (v[0], b[0].as_ref().to_vec())
}

#[test]
fn forwards_with_rewrite_ttl_and_valid_checksum() {
    let s = snapshot();
    let (v, out) = one(
        &s,
        0,
        udp(WAN_MAC, [198, 51, 100, 1], [172, 16, 9, 9], 64, 100),
    );
    assert_eq!(v, Verdict::Forward(1));
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let eth = p.link.unwrap().to_header().unwrap();
    let eth = match eth {
        etherparse::LinkHeader::Ethernet2(e) => e,
        _ => panic!("not ethernet"),
    };
    assert_eq!(eth.source, LAN_MAC);
    assert_eq!(eth.destination, [2, 0, 0, 0, 1, 9]);
    let ip = match p.net.unwrap() {
        etherparse::NetSlice::Ipv4(ip) => ip,
        _ => panic!("not ipv4"),
    };
    let h = ip.header().to_header();
    assert_eq!(h.time_to_live, 63);
    assert_eq!(
        h.header_checksum,
        h.calc_header_checksum(),
        "checksum after TTL decrement"
    );
    assert!(matches!(p.transport, Some(TransportSlice::Udp(_))));
}

#[test]
fn default_route_and_longest_prefix() {
    let s = snapshot();
    let (v, out) = one(&s, 1, udp(LAN_MAC, [10, 0, 0, 5], [8, 8, 8, 8], 9, 10));
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(&out[..6], &[2, 0, 0, 0, 0, 0xfe]);
    assert_eq!(&out[6..12], &WAN_MAC);
}

#[test]
fn every_malformation_dropped_by_name() {
    let s = snapshot();
    let good = udp(WAN_MAC, [198, 51, 100, 1], [172, 16, 9, 9], 64, 20);
    let mut cases: Vec<(Vec<u8>, DropReason)> = Vec::new();
    cases.push((good[..13].to_vec(), DropReason::EthTruncated));
    cases.push((good[..30].to_vec(), DropReason::Ipv4Truncated));
    let mut f = good.clone();
    f[14] = 0x44;
    cases.push((f, DropReason::Ipv4BadIhl));
    let mut f = good.clone();
    f[14] = 0x65;
    cases.push((f, DropReason::Ipv4BadVersion));
    let mut f = good.clone();
    f[16..18].copy_from_slice(&2000u16.to_be_bytes());
    cases.push((f, DropReason::Ipv4BadLength));
    let mut f = good.clone();
    f[24] ^= 0x5a;
    cases.push((f, DropReason::Ipv4BadChecksum));
    let mut f = good.clone();
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    cases.push((f, DropReason::UnsupportedEthertype));
    let mut f = good.clone();
    f[12..14].copy_from_slice(&[0x81, 0x00]);
    cases.push((f, DropReason::UnsupportedEthertype));
    cases.push((
        udp(
            [2, 9, 9, 9, 9, 9],
            [198, 51, 100, 1],
            [172, 16, 9, 9],
            64,
            20,
        ),
        DropReason::L2NotForUs,
    ));
    cases.push((
        udp([0xff; 6], [198, 51, 100, 1], [172, 16, 9, 9], 64, 20),
        DropReason::L2NotForUs,
    ));
    cases.push((
        udp(WAN_MAC, [127, 0, 0, 1], [172, 16, 9, 9], 64, 20),
        DropReason::Ipv4MartianSrc,
    ));
    cases.push((
        udp(WAN_MAC, [198, 51, 100, 1], [224, 0, 0, 5], 64, 20),
        DropReason::Ipv4MartianDst,
    ));
    cases.push((
        udp(WAN_MAC, [198, 51, 100, 1], [192, 0, 2, 1], 64, 20),
        DropReason::LocalDestination,
    ));
    // Without DF: a plain drop, no ICMP.
    cases.push((
        without_df(udp(WAN_MAC, [198, 51, 100, 1], [172, 16, 9, 9], 64, 1000)),
        DropReason::MtuExceeded,
    ));
    // An ICMP error is never sent about an ICMP error.
    cases.push((
        icmp_error_packet(WAN_MAC, [198, 51, 100, 1], [172, 16, 9, 9], 1),
        DropReason::TtlExceeded,
    ));
    cases.push((
        udp(WAN_MAC, [198, 51, 100, 1], [172, 16, 5, 1], 64, 20),
        DropReason::NeighborUnresolved,
    ));
    let frames: Vec<Vec<u8>> = cases.iter().map(|c| c.0.clone()).collect();
    let (p, bufs, v) = run(&s, 0, &frames);
    for (i, (c, got)) in cases.iter().zip(&v).enumerate() {
        assert_eq!(*got, Verdict::Drop(c.1), "case {i}");
        assert_eq!(
            bufs[i].as_ref(),
            &c.0[..],
            "a dropped packet is left untouched (case {i})"
        );
    }
    assert_eq!(p.counters.drop_total(), cases.len() as u64);
    assert_eq!(p.counters.rx_packets[0], cases.len() as u64);
    assert_eq!(
        p.counters.drops[DropReason::UnsupportedEthertype as usize],
        2
    );
}

/// Packets that leave in the first pass come out of the live list before the lookups, whose
/// answers (all routes here: the burst takes the lookup stage's short way) must still pair
/// with the right packets; the received bytes are summed in that first pass.
#[test]
fn routes_after_early_drops_stay_with_their_packets() {
    let s = snapshot();
    let to_lan = udp(WAN_MAC, [198, 51, 100, 1], [172, 16, 9, 9], 64, 20);
    let to_wan = udp(WAN_MAC, [198, 51, 100, 1], [8, 8, 8, 8], 64, 30);
    let mut bad_sum = to_lan.clone();
    bad_sum[24] ^= 0x5a;
    let mut arp_other = arp_reply(WAN_MAC, MacAddr(PEER), 0xc000_0263, 0xc000_0201);
    arp_other[..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
    let frames = vec![
        bad_sum,
        to_wan.clone(),
        to_lan.clone(),
        arp_other,
        udp([2, 9, 9, 9, 9, 9], [198, 51, 100, 1], [8, 8, 8, 8], 64, 20),
        to_wan,
        to_lan,
    ];
    let (p, _, v) = run(&s, 0, &frames);
    assert_eq!(
        v,
        [
            Verdict::Drop(DropReason::Ipv4BadChecksum),
            Verdict::Forward(0),
            Verdict::Forward(1),
            Verdict::Drop(DropReason::L2NotForUs),
            Verdict::Drop(DropReason::L2NotForUs),
            Verdict::Forward(0),
            Verdict::Forward(1),
        ]
    );
    let bytes: usize = frames.iter().map(Vec::len).sum();
    assert_eq!(p.counters.rx_packets[0], frames.len() as u64);
    assert_eq!(p.counters.rx_bytes[0], bytes as u64);
    assert_eq!(p.counters.drop_total(), 3);
}

#[test]
fn no_route_without_default() {
    let cfg = parse(
        &CFG.replace("prefix = \"0.0.0.0/0\"", "prefix = \"203.0.113.0/24\""),
        &Host { cores: vec![0, 1] },
    )
    .unwrap();
    let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
    let s = Snapshot::build(&cfg, &macs, 1, None).unwrap();
    let (v, _) = one(&s, 1, udp(LAN_MAC, [10, 0, 0, 5], [8, 8, 8, 8], 9, 10));
    assert_eq!(v, Verdict::Drop(DropReason::NoRoute));
}

#[test]
fn ipv4_options_are_forwarded() {
    let s = snapshot();
    let mut f = udp(WAN_MAC, [198, 51, 100, 1], [172, 16, 9, 9], 64, 8);
    // Insert a 4-byte NOP/NOP/NOP/EOL option and fix IHL, length and checksum.
    f.splice(34..34, [1, 1, 1, 0]);
    f[14] = 0x46;
    let tl = u16::from_be_bytes([f[16], f[17]]) + 4;
    f[16..18].copy_from_slice(&tl.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let c = crate::wire::checksum::checksum(&f[14..38]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let (v, out) = one(&s, 0, f);
    assert_eq!(v, Verdict::Forward(1));
    assert_eq!(out[22], 63);
    assert!(crate::wire::checksum::verify(&out[14..38]));
}

#[test]
fn answers_arp_for_own_address_only() {
    let s = snapshot();
    let mut req = vec![0u8; 60];
    arp::write_request(&mut req, MacAddr(PEER), 0xc0000263, 0xc0000201).unwrap();
    let (v, out) = one(&s, 0, req.clone());
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(&out[..6], &PEER);
    assert_eq!(&out[6..12], &WAN_MAC);
    let a = arp::Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(a.operation(), arp::OP_REPLY);
    assert_eq!(a.sender_mac(), MacAddr(WAN_MAC));
    assert_eq!(a.sender_ip(), 0xc0000201);
    assert_eq!(a.target_ip(), 0xc0000263);
    // The same request on the other port asks for an address that port does not own.
    let (v, _) = one(&s, 1, req);
    assert_eq!(v, Verdict::Drop(DropReason::ArpConsumed));
    let mut bad = vec![0u8; 60];
    arp::write_request(&mut bad, MacAddr(PEER), 1, 2).unwrap();
    bad[15] = 6;
    assert_eq!(one(&s, 0, bad).0, Verdict::Drop(DropReason::ArpMalformed));
}

#[test]
fn unresolved_gateway_learned_from_arp_then_forwarded() {
    let s = snapshot();
    let pkt = udp(WAN_MAC, [198, 51, 100, 1], [172, 16, 5, 1], 64, 20);
    let (mut p, _, v) = run(&s, 0, std::slice::from_ref(&pkt));
    assert_eq!(v[0], Verdict::Drop(DropReason::NeighborUnresolved));
    let wants: Vec<(u16, u32)> = p.take_arp_wants().collect();
    assert_eq!(wants, vec![(1, 0x0a000002)], "ARP for the gateway on lan0");
    assert_eq!(p.take_arp_wants().count(), 0);
    // 10.0.0.2 answers (a reply to our request) on lan0.
    let gw = MacAddr([2, 0, 0, 0, 1, 2]);
    let mut rep = vec![0u8; 60];
    arp::write_request(&mut rep, gw, 0x0a000002, 0x0a000001).unwrap();
    rep[..6].copy_from_slice(&LAN_MAC);
    rep[21] = 2; // op = reply
    let (v, _) = one(&s, 1, rep);
    assert_eq!(v, Verdict::Drop(DropReason::ArpConsumed));
    let (v, out) = one(&s, 0, pkt);
    assert_eq!(v, Verdict::Forward(1));
    assert_eq!(&out[..6], &gw.0);
}

proptest::proptest! {
    /// Arbitrary bytes never panic, and every packet is either forwarded or counted as a drop.
    #[test]
    fn arbitrary_frames_are_accounted(frames in proptest::collection::vec(
        proptest::collection::vec(proptest::num::u8::ANY, 0..120), 1..32), flip in 0usize..120) {
        let s = snapshot();
        // Half the frames start as valid packets with one byte flipped, to get past the L2 check.
        let mut frames = frames;
        for (i, f) in frames.iter_mut().enumerate() {
            if i % 2 == 0 {
                let mut g = udp(WAN_MAC, [198, 51, 100, 1], [172, 16, 9, (i % 250) as u8], 64, 30);
                let k = flip % g.len();
                g[k] ^= f.first().copied().unwrap_or(1);
                *f = g;
            }
        }
        let (p, _, v) = run(&s, 0, &frames);
        let fwd = v.iter().filter(|v| matches!(v, Verdict::Forward(_))).count() as u64;
        proptest::prop_assert_eq!(p.counters.rx_total(), frames.len() as u64);
        let consumed = p.counters.health_probe;
        proptest::prop_assert_eq!(fwd + p.counters.drop_total() + consumed, frames.len() as u64);
    }
}

/// An ARP reply from `ip` (MAC `mac`) to our address `to` on a port with MAC `port_mac`.
fn arp_reply(port_mac: [u8; 6], mac: MacAddr, ip: u32, to: u32) -> Vec<u8> {
    let mut rep = vec![0u8; 60];
    arp::write_request(&mut rep, mac, ip, to).unwrap();
    rep[..6].copy_from_slice(&port_mac);
    rep[21] = 2; // op = reply
    rep
}

#[test]
fn hosts_on_a_port_subnet_are_reached_directly_through_the_connected_route() {
    // 10.0.0.77 is on lan0's 10.0.0.1/24 and has no route of its own: it used to leave
    // through the default route on wan0.
    let s = snapshot();
    let pkt = udp(WAN_MAC, [198, 51, 100, 1], [10, 0, 0, 77], 64, 20);
    let (mut p, _, v) = run(&s, 0, std::slice::from_ref(&pkt));
    assert_eq!(v[0], Verdict::Drop(DropReason::NeighborUnresolved));
    assert_eq!(
        p.take_arp_wants().collect::<Vec<_>>(),
        vec![(1, 0x0a00_004d)],
        "a who-has for the host itself, on lan0"
    );
    // An ARP reply not addressed to us teaches nothing; one to us does.
    let host = MacAddr([2, 0, 0, 0, 1, 0x4d]);
    let stray = arp_reply(LAN_MAC, host, 0x0a00_004d, 0x0a00_0063);
    assert_eq!(one(&s, 1, stray).0, Verdict::Drop(DropReason::ArpConsumed));
    assert_eq!(
        one(&s, 0, pkt.clone()).0,
        Verdict::Drop(DropReason::NeighborUnresolved)
    );
    let rep = arp_reply(LAN_MAC, host, 0x0a00_004d, 0x0a00_0001);
    assert_eq!(one(&s, 1, rep).0, Verdict::Drop(DropReason::ArpConsumed));
    let (v, out) = one(&s, 0, pkt);
    assert_eq!(v, Verdict::Forward(1));
    assert_eq!(&out[..6], &host.0, "to the host's own MAC");
    assert_eq!(&out[6..12], &LAN_MAC);
    // An ICMP error about a packet from that host goes back to it on lan0, not upstream.
    let expired = udp(LAN_MAC, [10, 0, 0, 77], [198, 51, 100, 1], 1, 20);
    let (p, bufs, v) = run(&s, 1, &[expired]);
    assert_eq!(v[0], Verdict::Forward(1), "the error leaves on lan0");
    assert_eq!(p.counters.drops[DropReason::TtlExceeded as usize], 1);
    let out = bufs[0].as_ref().to_vec();
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    assert_eq!(ip.header().destination(), [10, 0, 0, 77]);
    assert_eq!(&out[..6], &host.0);
}

#[test]
fn a_port_subnets_network_and_broadcast_addresses_are_not_forwarded() {
    let s = snapshot();
    for dst in [[10, 0, 0, 0], [10, 0, 0, 255]] {
        let (v, _) = one(&s, 0, udp(WAN_MAC, [198, 51, 100, 1], dst, 64, 20));
        assert_eq!(v, Verdict::Drop(DropReason::LocalDestination), "{dst:?}");
    }
    // A static neighbour's /32 still wins inside the subnet.
    let (v, out) = one(
        &s,
        0,
        udp(WAN_MAC, [198, 51, 100, 1], [10, 0, 0, 9], 64, 20),
    );
    assert_eq!(v, Verdict::Forward(1));
    assert_eq!(&out[..6], &[2, 0, 0, 0, 1, 9]);
}
