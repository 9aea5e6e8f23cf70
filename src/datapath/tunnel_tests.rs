//! Tunnel paths through the pipeline: decap, encap, tunnel to tunnel, source checks, MSS
//! clamping and ICMP errors. Packets and expectations are built with etherparse.
use super::*;
use crate::config::{parse, Host};
use crate::datapath::{DropReason, VecBuf, Verdict};
use crate::route::Snapshot;
use crate::wire::MacAddr;
use etherparse::{IpNumber, Ipv4Header, PacketBuilder, TcpOptionElement};

const CFG: &str = r#"
[node]
anycast_addresses = ["203.0.113.10"]
icmp_errors_per_second = 1000

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
cloudflare_endpoint = "203.0.113.10"
interface_address = "10.100.0.2/31"
mss_clamp = 1360

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[[routes]]
prefix = "192.168.10.0/24"
nexthop = "acme"

[[routes]]
prefix = "192.168.20.0/24"
nexthop = "10.100.0.3"
"#;

const WAN: [u8; 6] = [2, 0, 0, 0, 0, 1];
const UP: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const EDGE: [u8; 4] = [203, 0, 113, 10];
const ACME: [u8; 4] = [198, 51, 100, 20];
const BETA: [u8; 4] = [198, 51, 100, 30];
const NET: [u8; 4] = [93, 184, 216, 34];

fn snapshot_with(cfg: &str) -> Snapshot {
    let cfg = parse(cfg, &Host { cores: vec![0, 1] }).unwrap();
    let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
    Snapshot::build(&cfg, &macs, 1, None).unwrap()
}

fn snapshot() -> Snapshot {
    snapshot_with(CFG)
}

/// An IPv4/UDP packet without Ethernet, DF set (etherparse's default).
fn inner_udp(src: [u8; 4], dst: [u8; 4], ttl: u8, len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, ttl)
        .udp(4000, 53)
        .write(&mut v, &vec![0x42; len])
        .unwrap();
    v
}

/// An IPv4/TCP SYN (or SYN-ACK) carrying `mss`, without Ethernet.
fn inner_syn(src: [u8; 4], dst: [u8; 4], mss: Option<u16>, ack: bool) -> Vec<u8> {
    let mut b = PacketBuilder::ipv4(src, dst, 64)
        .tcp(40000, 443, 1, 64240)
        .syn();
    if ack {
        b = b.ack(77);
    }
    let b = match mss {
        Some(m) => b
            .options(&[
                TcpOptionElement::Noop,
                TcpOptionElement::MaximumSegmentSize(m),
            ])
            .unwrap(),
        None => b,
    };
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

fn eth(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut v = dst.to_vec();
    v.extend_from_slice(&src);
    v.extend_from_slice(&[0x08, 0x00]);
    v.extend_from_slice(payload);
    v
}

/// Outer IPv4 (+ GRE when `gre_hdr` is given) around `inner`, in an Ethernet frame to wan0.
fn tunneled(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    gre_hdr: Option<&[u8]>,
    inner: &[u8],
) -> Vec<u8> {
    let mut payload = gre_hdr.map(|g| g.to_vec()).unwrap_or_default();
    payload.extend_from_slice(inner);
    let mut h = Ipv4Header::new(payload.len() as u16, 60, IpNumber(proto), src, dst).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut ip = Vec::new();
    h.write(&mut ip).unwrap();
    ip.extend_from_slice(&payload);
    eth(WAN, UP, &ip)
}

fn gre(inner: &[u8]) -> Vec<u8> {
    tunneled(ACME, EDGE, 47, Some(&[0, 0, 8, 0]), inner)
}

fn run1(snap: &Snapshot, frame: Vec<u8>) -> (Verdict, Vec<u8>, Pipeline) {
    let mut p = Pipeline::new();
    let mut b = [VecBuf::from_bytes(&frame)];
    let mut v = [Verdict::Drop(DropReason::NoRoute)];
    p.process(snap, 0, &mut b, &mut v);
    (v[0], b[0].as_ref().to_vec(), p)
}

fn with_ttl(mut ip: Vec<u8>, ttl: u8) -> Vec<u8> {
    ip[8] = ttl;
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = crate::wire::checksum::checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip
}

#[test]
fn gre_decap_then_forward_to_the_internet() {
    let s = snapshot();
    let inner = inner_udp([192, 168, 10, 5], NET, 64, 100);
    let (v, out, p) = run1(&s, gre(&inner));
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(
        out,
        eth(UP, WAN, &with_ttl(inner, 63)),
        "only the inner packet leaves, TTL - 1"
    );
    assert_eq!(p.note().ingress_tunnel, Some(0));
    assert_eq!(p.counters.tunnels[0].rx_packets, 1);
}

#[test]
fn ipip_decap() {
    let s = snapshot();
    let inner = inner_udp([192, 168, 20, 5], NET, 64, 10);
    let (v, out, p) = run1(&s, tunneled(BETA, EDGE, 4, None, &inner));
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(out, eth(UP, WAN, &with_ttl(inner, 63)));
    assert_eq!(p.note().ingress_tunnel, Some(1));
}

#[test]
fn gre_options_and_refusals() {
    let s = snapshot();
    let inner = inner_udp([192, 168, 10, 5], NET, 64, 20);
    // Checksum + key + sequence.
    let mut g = vec![0xb0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 1];
    g.extend_from_slice(&inner);
    let c = crate::wire::checksum::checksum(&g);
    g[4..6].copy_from_slice(&c.to_be_bytes());
    let (v, out, _) = run1(&s, tunneled(ACME, EDGE, 47, Some(&g[..16]), &inner));
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(out, eth(UP, WAN, &with_ttl(inner.clone(), 63)));
    let mut bad = g.clone();
    bad[5] ^= 1;
    // Dropped before decapsulation: the frame is untouched.
    let before: Vec<(Vec<u8>, DropReason)> = vec![
        (
            tunneled(ACME, EDGE, 47, Some(&bad[..16]), &inner),
            DropReason::GreBadChecksum,
        ),
        (
            tunneled(ACME, EDGE, 47, Some(&[0, 1, 8, 0]), &inner),
            DropReason::GreBadVersion,
        ),
        (
            tunneled(ACME, EDGE, 47, Some(&[0x40, 0, 8, 0]), &inner),
            DropReason::GreUnsupportedFlags,
        ),
        (
            tunneled(ACME, EDGE, 47, Some(&[0, 0, 0x86, 0xdd]), &inner),
            DropReason::GreInnerIpv6,
        ),
        (
            tunneled(ACME, EDGE, 47, Some(&[0, 0, 0x88, 0x0b]), &inner),
            DropReason::GreUnsupportedProtocol,
        ),
        (
            tunneled(ACME, EDGE, 47, Some(&[0x20, 0]), &[]),
            DropReason::GreMalformed,
        ),
        (
            tunneled([198, 51, 100, 99], EDGE, 47, Some(&[0, 0, 8, 0]), &inner),
            DropReason::TunnelUnknown,
        ),
        (
            tunneled(ACME, EDGE, 4, None, &inner),
            DropReason::TunnelWrongProtocol,
        ),
        (
            eth(WAN, UP, &inner_udp(ACME, EDGE, 64, 8)),
            DropReason::AnycastNotTunnel,
        ),
    ];
    for (i, (frame, want)) in before.into_iter().enumerate() {
        let (v, out, _) = run1(&s, frame.clone());
        assert_eq!(v, Verdict::Drop(want), "case {i}");
        assert_eq!(
            out, frame,
            "case {i}: a packet dropped before decap is left untouched"
        );
    }
    // Dropped after decapsulation: what remains is exactly the inner packet, unmodified.
    let after: Vec<(Vec<u8>, DropReason)> = vec![
        (inner_udp(EDGE, ACME, 255, 0), DropReason::GreKeepalive),
        (
            inner_udp([10, 9, 9, 9], NET, 64, 8),
            DropReason::TunnelSpoofedSource,
        ),
        (
            inner_udp([192, 168, 20, 5], NET, 64, 8),
            DropReason::TunnelSpoofedSource,
        ),
        (
            inner_udp([192, 168, 10, 5], [10, 100, 0, 0], 64, 8),
            DropReason::LocalDestination,
        ),
    ];
    for (i, (inner, want)) in after.into_iter().enumerate() {
        let (v, out, p) = run1(&s, gre(&inner));
        assert_eq!(v, Verdict::Drop(want), "case {i}");
        assert_eq!(out, eth(WAN, UP, &inner), "case {i}");
        assert_eq!(
            p.counters.tunnels[0].drops[want as usize], 1,
            "case {i}: counted against acme"
        );
    }
}

#[test]
fn encap_gre_toward_the_customer() {
    let s = snapshot();
    let inner = inner_udp(NET, [192, 168, 10, 7], 50, 300);
    let (v, out, p) = run1(&s, eth(WAN, UP, &inner));
    assert_eq!(
        v,
        Verdict::Forward(0),
        "the underlay is wan0, via the upstream router"
    );
    let mut h = Ipv4Header::new((4 + inner.len()) as u16, 64, IpNumber(47), EDGE, ACME).unwrap();
    h.dont_fragment = true;
    h.header_checksum = h.calc_header_checksum();
    let mut want = Vec::new();
    h.write(&mut want).unwrap();
    want.extend_from_slice(&[0, 0, 8, 0]);
    want.extend_from_slice(&with_ttl(inner, 49));
    assert_eq!(out, eth(UP, WAN, &want));
    assert_eq!(p.note().egress_tunnel, Some(0));
    assert_eq!(p.counters.tunnels[0].tx_packets, 1);
    assert_eq!(p.counters.tunnels[0].tx_bytes, out.len() as u64);
}

#[test]
fn encap_ipip_by_interface_address_route_and_padding_trimmed() {
    let s = snapshot();
    let inner = inner_udp(NET, [192, 168, 20, 7], 50, 2);
    let mut frame = eth(WAN, UP, &inner);
    frame.resize(60, 0); // Ethernet padding after a 30-byte packet
    let (v, out, _) = run1(&s, frame);
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(
        out.len(),
        14 + 20 + inner.len(),
        "padding is not carried into the tunnel"
    );
    let outer = Ipv4Header::from_slice(&out[14..]).unwrap().0;
    assert_eq!((outer.protocol, outer.time_to_live), (IpNumber(4), 64));
    assert_eq!((outer.source, outer.destination), (EDGE, BETA));
    assert_eq!(outer.header_checksum, outer.calc_header_checksum());
    assert_eq!(&out[34..], &with_ttl(inner, 49)[..]);
}

/// A buffer with no room in front: as an mbuf whose headroom a driver used up.
struct NoRoom(VecBuf);

impl AsRef<[u8]> for NoRoom {
    fn as_ref(&self) -> &[u8] {
        self.0.as_ref()
    }
}
impl AsMut<[u8]> for NoRoom {
    fn as_mut(&mut self) -> &mut [u8] {
        self.0.as_mut()
    }
}
impl crate::packet::PacketBuf for NoRoom {
    fn prepend(&mut self, _n: usize) -> Option<&mut [u8]> {
        None
    }
    fn trim_front(&mut self, n: usize) -> bool {
        self.0.trim_front(n)
    }
    fn trim_back(&mut self, n: usize) -> bool {
        self.0.trim_back(n)
    }
}

/// Encap's cold path: no headroom for the outer headers. The packet is dropped under its own
/// reason, not counted as sent into the tunnel, and its neighbour in the burst still leaves.
#[test]
fn no_headroom_for_the_outer_headers_drops_and_counts() {
    let s = snapshot();
    let inner = inner_udp(NET, [192, 168, 10, 7], 50, 2);
    let mut padded = eth(WAN, UP, &inner);
    padded.resize(60, 0);
    let frames = [
        padded,
        eth(WAN, UP, &inner_udp(NET, [192, 168, 10, 8], 50, 40)),
    ];
    let mut b: Vec<NoRoom> = frames
        .iter()
        .map(|f| NoRoom(VecBuf::from_bytes(f)))
        .collect();
    let mut v = [Verdict::Forward(9); 2];
    let mut p = Pipeline::new();
    p.process(&s, 0, &mut b, &mut v);
    assert_eq!(v, [Verdict::Drop(DropReason::NoHeadroom); 2]);
    assert_eq!(p.counters.drops[DropReason::NoHeadroom as usize], 2);
    assert_eq!(p.counters.tunnels[0].tx_packets, 0);
    assert_eq!(p.counters.tunnels[0].tx_bytes, 0);
    // As when the rewrite ran before encap: the inner edits made, the padding trimmed.
    assert_eq!(b[0].as_ref().len(), 14 + inner.len());
    assert_eq!(&b[0].as_ref()[14..], &with_ttl(inner, 49)[..]);

    // The same packets with headroom leave through the tunnel: the drop was the headroom's.
    let mut b: Vec<VecBuf> = frames.iter().map(|f| VecBuf::from_bytes(f)).collect();
    let mut p = Pipeline::new();
    p.process(&s, 0, &mut b, &mut v);
    assert_eq!(v, [Verdict::Forward(0); 2]);
    assert_eq!(p.counters.tunnels[0].tx_packets, 2);
}

/// The MSS in the inner TCP header at `at`, and whether its checksum verifies.
fn inner_mss(ip: &[u8]) -> (u16, bool) {
    let (h, rest) = Ipv4Header::from_slice(ip).unwrap();
    let (tcp, _) = etherparse::TcpHeader::from_slice(rest).unwrap();
    let mss = tcp
        .options_iterator()
        .find_map(|o| match o {
            Ok(TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
            _ => None,
        })
        .unwrap();
    let ok = tcp.checksum == tcp.calc_checksum_ipv4(&h, &[]).unwrap();
    (mss, ok)
}

#[test]
fn mss_clamped_both_ways_and_only_through_tunnels() {
    let s = snapshot();
    // Internet -> acme: SYN with MSS 1460, clamped to acme's default 1476 - 40.
    let (v, out, p) = run1(
        &s,
        eth(
            WAN,
            UP,
            &inner_syn(NET, [192, 168, 10, 7], Some(1460), false),
        ),
    );
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(inner_mss(&out[14 + 24..]), (1436, true));
    assert_eq!(p.note().mss, Some(1436));
    assert_eq!(p.counters.mss_clamped, 1);
    // acme -> internet: SYN-ACK decapsulated, clamped too.
    let (v, out, _) = run1(
        &s,
        gre(&inner_syn([192, 168, 10, 7], NET, Some(8960), true)),
    );
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(inner_mss(&out[14..]), (1436, true));
    // acme -> beta: the smaller clamp of the two tunnels.
    let (v, out, p) = run1(
        &s,
        gre(&inner_syn(
            [192, 168, 10, 7],
            [192, 168, 20, 8],
            Some(1460),
            false,
        )),
    );
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(p.note().ingress_tunnel, Some(0));
    assert_eq!(p.note().egress_tunnel, Some(1));
    assert_eq!(inner_mss(&out[14 + 20..]), (1360, true));
    // Lower than the clamp: kept. No MSS option: none added.
    let (_, out, _) = run1(
        &s,
        eth(
            WAN,
            UP,
            &inner_syn(NET, [192, 168, 10, 7], Some(1200), false),
        ),
    );
    assert_eq!(inner_mss(&out[14 + 24..]), (1200, true));
    let syn = inner_syn(NET, [192, 168, 10, 7], None, false);
    let (_, out, p) = run1(&s, eth(WAN, UP, &syn));
    assert_eq!(&out[14 + 24..], &with_ttl(syn, 63)[..]);
    assert_eq!(p.note().mss, None);
    // Not through a tunnel: untouched.
    let syn = inner_syn(NET, [10, 0, 0, 77], Some(1460), false);
    let cfg = CFG.replace("[[tunnels]]\nname = \"acme\"", "[[neighbors]]\nip = \"10.0.0.77\"\nmac = \"02:00:00:00:01:77\"\nport = \"lan0\"\n\n[[tunnels]]\nname = \"acme\"");
    let (v, out, _) = run1(&snapshot_with(&cfg), eth(WAN, UP, &syn));
    assert_eq!(v, Verdict::Forward(1));
    assert_eq!(inner_mss(&out[14..]), (1460, true));
}

/// (type, code, next-hop MTU, source, destination, quoted bytes) of an ICMP error frame.
fn icmp_of(frame: &[u8]) -> (u8, u8, u16, [u8; 4], [u8; 4], Vec<u8>) {
    let (h, rest) = Ipv4Header::from_slice(&frame[14..]).unwrap();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    assert_eq!(h.protocol, IpNumber(1));
    assert!(crate::wire::checksum::verify(rest), "ICMP checksum");
    let mtu = u16::from_be_bytes([rest[6], rest[7]]);
    (
        rest[0],
        rest[1],
        mtu,
        h.source,
        h.destination,
        rest[8..].to_vec(),
    )
}

#[test]
fn time_exceeded_from_the_port_and_through_the_tunnel() {
    let s = snapshot();
    let dying = inner_udp(NET, [192, 168, 10, 7], 1, 40);
    let (v, out, p) = run1(&s, eth(WAN, UP, &dying));
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(&out[..12], &[UP, WAN].concat()[..]);
    let (ty, code, _, src, dst, quote) = icmp_of(&out);
    assert_eq!((ty, code, src, dst), (11, 0, [192, 0, 2, 1], NET));
    assert_eq!(
        quote,
        dying[..28].to_vec(),
        "the original header and 8 bytes"
    );
    assert_eq!(
        p.counters.drops[DropReason::TtlExceeded as usize],
        1,
        "the drop is still counted"
    );
    assert_eq!((p.counters.icmp_errors, p.counters.originated), (1, 1));
    // Never to the directed broadcast of the arrival port's subnet.
    let from_bcast = inner_udp([192, 0, 2, 255], [192, 168, 10, 7], 1, 40);
    assert_eq!(
        run1(&s, eth(WAN, UP, &from_bcast)).0,
        Verdict::Drop(DropReason::TtlExceeded)
    );
    // A decapsulated packet expiring: the error comes from the tunnel interface, back into it.
    let dying = inner_udp([192, 168, 10, 5], NET, 1, 40);
    let (v, out, _) = run1(&s, gre(&dying));
    assert_eq!(v, Verdict::Forward(0));
    let outer = Ipv4Header::from_slice(&out[14..]).unwrap().0;
    assert_eq!((outer.protocol, outer.destination), (IpNumber(47), ACME));
    let (ty, _, _, src, dst, _) = icmp_of(&[&out[..14], &out[14 + 24..]].concat());
    assert_eq!((ty, src, dst), (11, [10, 100, 0, 0], [192, 168, 10, 5]));
}

#[test]
fn frag_needed_for_df_and_drop_without() {
    let s = snapshot();
    let big = inner_udp(NET, [192, 168, 10, 7], 64, 1477 - 28);
    let (v, out, _) = run1(&s, eth(WAN, UP, &big));
    assert_eq!(v, Verdict::Forward(0));
    let (ty, code, mtu, src, dst, _) = icmp_of(&out);
    assert_eq!((ty, code, mtu, src, dst), (3, 4, 1476, [192, 0, 2, 1], NET));
    let mut no_df = big.clone();
    no_df[6] = 0;
    let no_df = with_ttl(no_df, 64);
    let (v, _, p) = run1(&s, eth(WAN, UP, &no_df));
    assert_eq!(v, Verdict::Drop(DropReason::TunnelMtuExceeded));
    assert_eq!(
        p.counters.tunnels[0].drops[DropReason::TunnelMtuExceeded as usize],
        1
    );
    let fits = inner_udp(NET, [192, 168, 10, 7], 64, 1476 - 28);
    assert_eq!(run1(&s, eth(WAN, UP, &fits)).0, Verdict::Forward(0));
}

/// `CFG` with wan0's MTU at 1400 and three IP-in-IP tunnels more, c2 to c4, routed from
/// 192.168.30.0/24 to 192.168.32.0/24; c4 (index 4) shares acme's underlay slot.
fn five_tunnels_cfg() -> String {
    let mut cfg = CFG.replace(
        "address = \"192.0.2.1/24\"",
        "address = \"192.0.2.1/24\"\nmtu = 1400",
    );
    for (k, name) in ["c2", "c3", "c4"].iter().enumerate() {
        cfg += &format!(
            "\n[[tunnels]]\nname = \"{name}\"\ntype = \"ipip\"\n\
             customer_endpoint = \"198.51.100.{}\"\ncloudflare_endpoint = \"203.0.113.10\"\n\
             interface_address = \"10.100.0.{}/31\"\n\
             \n[[routes]]\nprefix = \"192.168.{}.0/24\"\nnexthop = \"{name}\"\n",
            40 + k,
            4 + 2 * k,
            30 + k
        );
    }
    cfg
}

/// The underlay is resolved once per burst and tunnel (`neighbor::Underlays`, four slots by
/// tunnel index): a burst that goes back and forth between tunnels, two of them sharing a
/// slot (0 and 4), with packets too big for the underlay port (but not for the tunnel)
/// between them, gets exactly what each packet gets alone.
#[test]
fn underlays_resolved_once_per_burst_decide_as_packet_by_packet() {
    let s = snapshot_with(&five_tunnels_cfg());
    assert_eq!(s.tunnels[4].name, "c4", "shares acme's slot");
    let to = |net: u8, len: usize| eth(WAN, UP, &inner_udp(NET, [192, 168, net, 7], 64, len));
    let frames = [
        to(10, 100),
        to(10, 1390 - 28),
        to(20, 100),
        to(10, 1376 - 28),
        to(20, 1380 - 28),
        to(10, 1377 - 28),
        to(20, 200),
        to(32, 1380 - 28),
        to(10, 1376 - 28),
        to(32, 1381 - 28),
    ];
    let alone: Vec<(Verdict, Vec<u8>)> = frames
        .iter()
        .map(|f| {
            let (v, out, _) = run1(&s, f.clone());
            (v, out)
        })
        .collect();
    assert_eq!(alone[0].0, Verdict::Forward(0));
    assert_eq!(
        alone[1].0,
        Verdict::Drop(DropReason::MtuExceeded),
        "1390 + 24 > 1400"
    );
    assert_eq!(alone[3].0, Verdict::Forward(0), "1376 + 24 = 1400 fits");
    assert_eq!(alone[4].0, Verdict::Forward(0), "1380 + 20 = 1400 fits");
    assert_eq!(
        alone[5].0,
        Verdict::Drop(DropReason::MtuExceeded),
        "1377 + 24 > 1400"
    );
    assert_eq!(alone[7].0, Verdict::Forward(0), "IP-in-IP: 1380 + 20 fits");
    assert_eq!(
        alone[9].0,
        Verdict::Drop(DropReason::MtuExceeded),
        "1381 + 20"
    );
    let mut p = Pipeline::new();
    let mut b: Vec<VecBuf> = frames.iter().map(|f| VecBuf::from_bytes(f)).collect();
    let mut v = vec![Verdict::Drop(DropReason::NoRoute); b.len()];
    p.process(&s, 0, &mut b, &mut v);
    for (k, (want, got)) in alone.iter().zip(b.iter().zip(&v)).enumerate() {
        assert_eq!(*got.1, want.0, "packet {k}");
        if let Verdict::Forward(_) = want.0 {
            assert_eq!(got.0.as_ref(), &want.1[..], "packet {k}");
        }
    }
}

proptest::proptest! {
    /// Tunnels' tx counters are summed per underlay slot and added when the slot changes
    /// tunnel and at the end of the pass (`neighbor::Underlays::flush`): bursts mixing five
    /// tunnels (two sharing a slot), with packets dropped for the underlay's MTU between
    /// them, count against each tunnel exactly the packets and bytes that left into it.
    #[test]
    fn tunnel_tx_counted_exactly_in_mixed_bursts(
        bursts in proptest::collection::vec(
            proptest::collection::vec((0usize..5, 0usize..1400), 1..=BURST),
            1..4,
        ),
    ) {
        static SNAP: std::sync::OnceLock<Snapshot> = std::sync::OnceLock::new();
        let s = SNAP.get_or_init(|| snapshot_with(&five_tunnels_cfg()));
        let nets = [10u8, 20, 30, 31, 32];
        let mut p = Pipeline::new();
        let mut want = [(0u64, 0u64); 5];
        for burst in &bursts {
            let mut b: Vec<VecBuf> = burst
                .iter()
                .map(|&(t, len)| {
                    let ip = inner_udp(NET, [192, 168, nets[t], 7], 64, len);
                    VecBuf::from_bytes(&eth(WAN, UP, &ip))
                })
                .collect();
            let mut v = vec![Verdict::Drop(DropReason::NoRoute); b.len()];
            p.process(s, 0, &mut b, &mut v);
            for (k, &(t, _)) in burst.iter().enumerate() {
                if v[k] == Verdict::Forward(0) {
                    want[t].0 += 1;
                    want[t].1 += b[k].as_ref().len() as u64;
                }
            }
        }
        for (t, &(n, bytes)) in want.iter().enumerate() {
            let tc = &p.counters.tunnels[s.tunnels[t].counter_slot];
            proptest::prop_assert_eq!((tc.tx_packets, tc.tx_bytes), (n, bytes), "tunnel {}", t);
        }
    }
}

#[test]
fn icmp_errors_are_rate_limited() {
    let s = snapshot_with(&CFG.replace(
        "icmp_errors_per_second = 1000",
        "icmp_errors_per_second = 10",
    ));
    let mut p = Pipeline::new();
    p.set_clock(1_000_000, 1_000_000_000);
    let dying = eth(WAN, UP, &inner_udp(NET, [192, 168, 10, 7], 1, 40));
    let mut bufs = [VecBuf::from_bytes(&dying), VecBuf::from_bytes(&dying)];
    let mut v = [Verdict::Drop(DropReason::NoRoute); 2];
    p.process(&s, 0, &mut bufs, &mut v);
    assert_eq!(
        v,
        [Verdict::Forward(0), Verdict::Drop(DropReason::TtlExceeded)]
    );
    assert_eq!(p.counters.icmp_rate_limited, 1);
    // A tenth of a second later there is a token again.
    p.set_clock(101_000_000, 1_000_000_000);
    let mut bufs = [VecBuf::from_bytes(&dying)];
    let mut v = [Verdict::Drop(DropReason::NoRoute)];
    p.process(&s, 0, &mut bufs, &mut v);
    assert_eq!(v[0], Verdict::Forward(0));
    assert_eq!(p.counters.drops[DropReason::TtlExceeded as usize], 3);
}

#[test]
fn config_refuses_bad_tunnels_by_key() {
    let bad =
        |from: &str, to: &str| match parse(&CFG.replace(from, to), &Host { cores: vec![0, 1] }) {
            Ok(_) => panic!("accepted {to}"),
            Err(e) => e.to_string(),
        };
    assert!(bad("name = \"acme\"", "name = \"a-very-long-tunnel\"").contains("tunnels[0].name"));
    assert!(bad(
        "edge_endpoint = \"203.0.113.10\"",
        "edge_endpoint = \"203.0.113.11\""
    )
    .contains("tunnels[0].edge_endpoint: 203.0.113.11 is not one of node.anycast_addresses"));
    assert!(bad("10.100.0.2/31", "10.100.0.1/31")
        .contains("tunnels[1].interface_address: 10.100.0.1/31 overlaps"));
    assert!(bad("10.100.0.2/31", "10.100.0.0/29").contains("must be a /31 or a /30"));
    assert!(bad("10.100.0.2/31", "8.8.8.8/31").contains("RFC 1918"));
    assert!(bad("type = \"ipip\"", "type = \"vxlan\"").contains("unknown variant `vxlan`"));
    assert!(bad("mss_clamp = 1360", "mss_clamp = 20").contains("tunnels[1].mss_clamp"));
    assert!(bad("nexthop = \"acme\"", "nexthop = \"acme2\"")
        .contains("routes[1].nexthop: `acme2` is neither"));
    let cfg = parse(CFG, &Host { cores: vec![0, 1] }).unwrap();
    let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
    let no_underlay = parse(
        &CFG.replace("prefix = \"0.0.0.0/0\"", "prefix = \"8.0.0.0/8\""),
        &Host { cores: vec![0, 1] },
    )
    .unwrap();
    let e = Snapshot::build(&no_underlay, &macs, 1, None).err().unwrap();
    assert!(
        e.starts_with("tunnels[0].customer_endpoint: no route toward 198.51.100.20"),
        "{e}"
    );
    assert_eq!(cfg.tunnels[0].mtu, 1476);
    assert_eq!(cfg.tunnels[0].mss_clamp, 1436);
    assert_eq!(cfg.tunnels[1].mtu, 1480);
    assert_eq!(cfg.tunnels[0].peer_addr, 0x0a64_0001);
}

/// Seed 000: a default-drop catch-all also blocks the customer's own outbound traffic, because
/// every packet is judged alone; an allow for the customer prefix placed first fixes it.
#[test]
fn firewall_default_drop_blocks_egress_until_the_prefix_is_allowed() {
    let fw = r#"
[firewall]
rules = [
  { expression = "tcp.dstport in {80 443}", action = "allow" },
  { expression = "ip.proto in {0..255}", action = "block", description = "default drop" },
]
"#;
    let s = snapshot_with(&format!("{CFG}{fw}"));
    let web_in = eth(
        WAN,
        UP,
        &inner_syn(NET, [192, 168, 10, 7], Some(1400), false),
    );
    let (v, _, p) = run1(&s, web_in);
    assert_eq!(
        v,
        Verdict::Forward(0),
        "toward the customer's web server: allowed"
    );
    assert_eq!(p.note().rule, Some(0));
    let outbound = gre(&inner_udp([192, 168, 10, 5], NET, 64, 40));
    let (v, _, p) = run1(&s, outbound.clone());
    assert_eq!(
        v,
        Verdict::Drop(DropReason::FirewallBlock),
        "the vendor's warning, reproduced"
    );
    assert_eq!(p.note().rule, Some(1));
    assert_eq!(p.counters.rules[1][0], 1);
    assert_eq!(
        p.counters.tunnels[0].drops[DropReason::FirewallBlock as usize],
        1
    );
    // The remedy: allow what the customer's prefix sends, before the catch-all.
    let fixed = fw.replace(
        "rules = [",
        "rules = [\n  { expression = \"ip.src in {192.168.10.0/24}\", action = \"allow\" },",
    );
    let s = snapshot_with(&format!("{CFG}{fixed}"));
    let (v, _, p) = run1(&s, outbound);
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(p.note().rule, Some(0));
    // Plain forwarding (neither from nor toward a tunnel) is not filtered.
    let s = snapshot_with(&format!("{CFG}{fw}"));
    assert_eq!(
        run1(&s, eth(WAN, UP, &inner_udp(NET, [8, 8, 8, 8], 64, 20))).0,
        Verdict::Forward(0)
    );
}

#[test]
fn firewall_directions_defaults_and_config_errors() {
    let one = |rules: &str, extra: &str| format!("{CFG}\n[firewall]\n{extra}\nrules = [{rules}]\n");
    // Block DNS toward customers only (egress), by the direction field.
    let s = snapshot_with(&one(
        r#"{ expression = "udp.dstport eq 53 and anygate.direction eq \"egress\"", action = "block" }"#,
        "",
    ));
    assert_eq!(
        run1(&s, eth(WAN, UP, &inner_udp(NET, [192, 168, 10, 7], 64, 20))).0,
        Verdict::Drop(DropReason::FirewallBlock)
    );
    // Rules applied to ingress only: the same packet passes.
    let s = snapshot_with(&one(
        r#"{ expression = "udp.dstport eq 53", action = "block" }"#,
        r#"apply = ["ingress"]"#,
    ));
    assert_eq!(
        run1(&s, eth(WAN, UP, &inner_udp(NET, [192, 168, 10, 7], 64, 20))).0,
        Verdict::Forward(0)
    );
    // Default block with no rules; counted under the default.
    let s = snapshot_with(&one("", r#"default_action = "block""#));
    let (v, _, p) = run1(&s, eth(WAN, UP, &inner_udp(NET, [192, 168, 10, 7], 64, 20)));
    assert_eq!(v, Verdict::Drop(DropReason::FirewallBlock));
    assert_eq!((p.note().rule, p.counters.firewall_default[0]), (None, 1));
    // A disabled rule never decides; a tunnel-name rule.
    let s = snapshot_with(&one(
        r#"{ expression = "udp", action = "block", enabled = false }, { expression = "anygate.tunnel eq \"beta\"", action = "block" }"#,
        "",
    ));
    assert_eq!(
        run1(&s, eth(WAN, UP, &inner_udp(NET, [192, 168, 10, 7], 64, 20))).0,
        Verdict::Forward(0)
    );
    assert_eq!(
        run1(&s, eth(WAN, UP, &inner_udp(NET, [192, 168, 20, 7], 64, 20))).0,
        Verdict::Drop(DropReason::FirewallBlock)
    );
    // Errors name the rule and the column.
    let err = |t: &str| match parse(t, &Host { cores: vec![0, 1] }) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err(&one(
        r#"{ expression = "tcp.dstport eq", action = "block" }"#,
        ""
    ))
    .contains("firewall.rules[0].expression: column 15: expected a number, found the end"));
    assert!(err(&one(r#"{ expression = "tcp", action = "drop" }"#, ""))
        .contains("firewall.rules[0].action: `drop` is not allow, block or skip"));
    assert!(err(&one(
        r#"{ expression = "tcp", action = "block" }, { expression = "udp", action = "block" }"#,
        "max_rules = 1"
    ))
    .contains("firewall.rules: 2 rules; firewall.max_rules is 1"));
    assert!(err(&one(
        r#"{ expression = "tcp or udp", action = "block" }"#,
        "max_expression_len = 5"
    ))
    .contains("firewall.rules[0].expression: 10 characters"));
}

/// `skip` with phases from the config: a skip rule counts what it matched, decides nothing,
/// and the next phase judges the packet; phase errors name the rule's key.
#[test]
fn firewall_phases_and_skip() {
    let fw = r#"
[firewall]
phases = ["mitigation", "policy"]
rules = [
  { phase = "mitigation", expression = "ip.src in {192.168.10.0/24}", action = "skip" },
  { phase = "mitigation", expression = "udp.srcport in {19 11211}", action = "block" },
  { phase = "policy", expression = "udp.dstport eq 53", action = "block" },
]
"#;
    let s = snapshot_with(&format!("{CFG}{fw}"));
    // From the customer's prefix, decapsulated: the skip passes over the mitigation phase,
    // the policy phase still blocks DNS (inner_udp is to port 53).
    let (v, _, p) = run1(&s, gre(&inner_udp([192, 168, 10, 5], NET, 64, 40)));
    assert_eq!(v, Verdict::Drop(DropReason::FirewallBlock));
    assert_eq!((p.counters.rules[0][0], p.note().rule), (1, Some(2)));
    // Anything else from it: skipped, nothing in policy matches, the default allows.
    let (v, _, p) = run1(&s, gre(&inner_syn([192, 168, 10, 5], NET, None, false)));
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!((p.counters.rules[0][0], p.note().rule), (1, None));
    assert_eq!(
        (p.counters.rules[1][0], p.counters.firewall_default[0]),
        (0, 1)
    );
    let err = |t: &str| match parse(&format!("{CFG}{t}"), &Host { cores: vec![0, 1] }) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err(&fw.replace("phase = \"policy\", ", ""))
        .contains("firewall.rules[2].phase: missing; with several firewall.phases"));
    assert!(
        err(&fw.replace("\"policy\", expression", "\"post\", expression"))
            .contains("firewall.rules[2].phase: `post` is not one of firewall.phases")
    );
    let swapped = fw.replace(
        "phases = [\"mitigation\", \"policy\"]",
        "phases = [\"policy\", \"mitigation\"]",
    );
    assert!(err(&swapped)
        .contains("firewall.rules[2].phase: `policy` comes after rules of phase `mitigation`"));
    assert!(err(&fw.replace("\"policy\"]", "\"mitigation\"]"))
        .contains("firewall.phases[1]: `mitigation` is empty or named twice"));
    assert!(err(&format!("{fw}default_action = \"skip\"\n"))
        .contains("firewall.default_action: `skip` is not allow or block"));
}

/// Tunnel to tunnel (acme in, beta out), a packet is judged on both crossings. When no rule
/// tests the tunnel or direction the second answer is the first one reused: the verdicts and
/// every counter must equal those of a rule set that forces two full evaluations.
#[test]
fn firewall_second_crossing_reuses_the_first_answer_only_when_it_must_agree() {
    let fw = |rules: &str| snapshot_with(&format!("{CFG}\n[firewall]\nrules = [{rules}]\n"));
    let dns = gre(&inner_udp([192, 168, 10, 5], [192, 168, 20, 7], 64, 40));
    let syn = gre(&inner_syn(
        [192, 168, 10, 5],
        [192, 168, 20, 7],
        None,
        false,
    ));
    let base = r#"{ expression = "tcp.flags.syn", action = "skip" },
        { expression = "udp.dstport eq 53", action = "allow" },
        { expression = "tcp.dstport eq 80", action = "block" }"#;
    // The same rules plus one that never matches but tests the direction: no reuse.
    let forced = format!(
        r#"{base}, {{ expression = "anygate.direction eq \"ingress\" and anygate.direction eq \"egress\"", action = "block" }}"#
    );
    let (reused, evaluated) = (fw(base), fw(&forced));
    assert!(!reused.classifier.per_crossing() && evaluated.classifier.per_crossing());
    for frame in [dns, syn] {
        let (va, _, a) = run1(&reused, frame.clone());
        let (vb, _, b) = run1(&evaluated, frame);
        assert_eq!(va, Verdict::Forward(0));
        assert_eq!(va, vb);
        assert_eq!(a.counters.rules[..3], b.counters.rules[..3]);
        assert_eq!(a.counters.firewall_default, b.counters.firewall_default);
        assert_eq!(a.note().rule, b.note().rule);
    }
    // Both crossings counted: DNS decided by rule 1 twice; the SYN skipped twice, default twice.
    let (_, _, p) = run1(
        &reused,
        gre(&inner_udp([192, 168, 10, 5], [192, 168, 20, 7], 64, 40)),
    );
    assert_eq!(
        (p.counters.rules[1][0], p.counters.firewall_default[0]),
        (2, 0)
    );
    let (_, _, p) = run1(
        &reused,
        gre(&inner_syn(
            [192, 168, 10, 5],
            [192, 168, 20, 7],
            None,
            false,
        )),
    );
    assert_eq!(
        (p.counters.rules[0][0], p.counters.firewall_default[0]),
        (2, 2)
    );
    // A direction rule that only matches on the way out must see the second crossing.
    let s = fw(
        r#"{ expression = "anygate.direction eq \"egress\" and udp.dstport eq 53", action = "block" }"#,
    );
    let (v, _, p) = run1(
        &s,
        gre(&inner_udp([192, 168, 10, 5], [192, 168, 20, 7], 64, 40)),
    );
    assert_eq!(v, Verdict::Drop(DropReason::FirewallBlock));
    assert_eq!(
        (p.counters.rules[0][0], p.counters.firewall_default[0]),
        (1, 1)
    );
}

/// A tunnel-to-tunnel packet whose TTL expires here, judged once for both crossings (the
/// egress tunnel noted by the hop checks alone) or twice (noted by the firewall too): the same
/// verdict, notes and counters, and the same as a live packet's egress tunnel.
#[test]
fn expired_tunnel_to_tunnel_packets_are_noted_alike_judged_once_or_twice() {
    let fw = |rules: &str| snapshot_with(&format!("{CFG}\n[firewall]\nrules = [{rules}]\n"));
    let base = r#"{ expression = "udp.dstport eq 53", action = "allow" }"#;
    let forced = format!(
        r#"{base}, {{ expression = "anygate.direction eq \"ingress\" and anygate.direction eq \"egress\"", action = "block" }}"#
    );
    let (reused, evaluated) = (fw(base), fw(&forced));
    assert!(!reused.classifier.per_crossing() && evaluated.classifier.per_crossing());
    let live = |ttl| gre(&inner_udp([192, 168, 10, 5], [192, 168, 20, 7], ttl, 40));
    let (_, _, p) = run1(&reused, live(64));
    assert_eq!(p.note().egress_tunnel, Some(1));
    let (va, oa, a) = run1(&reused, live(1));
    let (vb, ob, b) = run1(&evaluated, live(1));
    assert_eq!((va, oa), (vb, ob));
    assert_eq!(a.note().icmp, Some((11, 0)));
    assert_eq!(a.note(), b.note());
    assert_eq!(a.counters.tunnels, b.counters.tunnels);
    assert_eq!(a.counters.firewall_default, b.counters.firewall_default);
}

/// Rules applied to ingress only: a tunnel-to-tunnel packet whose first answer is reusable is
/// judged and counted once, on the way in; the second crossing neither counts nor blocks.
#[test]
fn firewall_ingress_only_counts_the_reusable_answer_once() {
    let s = snapshot_with(&format!(
        "{CFG}\n[firewall]\napply = [\"ingress\"]\nrules = [{}]\n",
        r#"{ expression = "udp.dstport eq 53", action = "allow" }"#
    ));
    assert!(!s.classifier.per_crossing());
    let (v, _, p) = run1(
        &s,
        gre(&inner_udp([192, 168, 10, 5], [192, 168, 20, 7], 64, 40)),
    );
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(
        (p.counters.rules[0][0], p.counters.firewall_default[0]),
        (1, 0)
    );
}

/// Tunnel ingress remembers the previous packet's tunnel within a burst: packets from other
/// endpoints or with another protocol between two from acme are still refused under their
/// own reasons, and counted against the right tunnel.
#[test]
fn one_burst_mixing_tunnels_and_refusals() {
    let s = snapshot();
    let inner = inner_udp([192, 168, 10, 5], NET, 64, 20);
    let frames = [
        gre(&inner),
        tunneled(ACME, EDGE, 4, None, &inner),
        gre(&inner),
        tunneled([198, 51, 100, 99], EDGE, 47, Some(&[0, 0, 8, 0]), &inner),
        gre(&inner),
    ];
    let mut p = Pipeline::new();
    let mut b: Vec<VecBuf> = frames.iter().map(|f| VecBuf::from_bytes(f)).collect();
    let mut v = [Verdict::Drop(DropReason::NoRoute); 5];
    p.process(&s, 0, &mut b, &mut v);
    assert_eq!(
        v,
        [
            Verdict::Forward(0),
            Verdict::Drop(DropReason::TunnelWrongProtocol),
            Verdict::Forward(0),
            Verdict::Drop(DropReason::TunnelUnknown),
            Verdict::Forward(0),
        ]
    );
    assert_eq!(p.counters.tunnels[0].rx_packets, 3);
    assert_eq!(
        p.counters.drops[DropReason::TunnelWrongProtocol as usize],
        1
    );
    assert_eq!(p.counters.drops[DropReason::TunnelUnknown as usize], 1);
}

/// RPF within one burst from one tunnel, where ingress keeps the route set that passed: a
/// spoofed source between passing ones is refused, in another /24 or in a longer prefix
/// inside a passing /24.
#[test]
fn rpf_refuses_spoofed_sources_between_passing_ones() {
    let burst = |s: &Snapshot, last: [u8; 6], third: [u8; 6]| {
        let frames: Vec<VecBuf> = last
            .iter()
            .zip(third)
            .map(|(&l, t)| VecBuf::from_bytes(&gre(&inner_udp([192, 168, t, l], NET, 64, 20))))
            .collect();
        let mut b = frames;
        let mut v = [Verdict::Drop(DropReason::NoRoute); 6];
        Pipeline::new().process(s, 0, &mut b, &mut v);
        v
    };
    const F: Verdict = Verdict::Forward(0);
    const S: Verdict = Verdict::Drop(DropReason::TunnelSpoofedSource);
    let whole = snapshot();
    assert_eq!(
        burst(&whole, [5, 6, 5, 7, 200, 9], [10, 10, 20, 10, 10, 21]),
        [F, F, S, F, F, S]
    );
    let split = snapshot_with(&format!(
        "{CFG}\n[[routes]]\nprefix = \"192.168.10.128/25\"\nnexthop = \"10.100.0.3\"\n"
    ));
    assert_eq!(
        burst(&split, [5, 200, 6, 5, 7, 129], [10, 10, 10, 20, 10, 10]),
        [F, S, F, S, F, S]
    );
}

/// An ICMP error whose reply cannot leave (its tunnel's underlay MAC is unresolved) is one
/// drop, counted once, against the tunnel the offending packet came from.
#[test]
fn unroutable_icmp_reply_counts_the_drop_once() {
    let cfg = CFG.replace("mac = \"02:00:00:00:00:fe\"\n", "");
    let s = snapshot_with(&cfg);
    let dying = gre(&inner_udp([192, 168, 10, 5], NET, 1, 40));
    let (v, _, p) = run1(&s, dying);
    assert_eq!(v, Verdict::Drop(DropReason::TtlExceeded));
    assert_eq!(p.counters.drops[DropReason::TtlExceeded as usize], 1);
    assert_eq!(p.counters.drop_total(), 1);
    assert_eq!(
        p.counters.tunnels[0].drops[DropReason::TtlExceeded as usize],
        1,
        "once, against acme"
    );
    assert_eq!(p.counters.tunnels[0].drop_total(), 1);
    assert_eq!((p.counters.icmp_errors, p.counters.originated), (0, 0));
}

/// The general path's decapsulation, as it was before the fixed-offset fast path and the
/// strip and inner parse on one look at the buffer: the GRE header by `gre::parse` on the
/// outer packet, the strip, then the inner header read from the stripped frame. None when
/// the packet gets past decapsulation (what follows is other stages').
fn decap_model(frame: &[u8]) -> Option<(DropReason, Vec<u8>)> {
    use crate::datapath::stages::ipv4_validate;
    use crate::wire::gre;
    let outer = ipv4_validate::parse(frame).ok()?;
    let outer_end = 14 + usize::from(outer.total_len);
    let mut inner_at = 14 + usize::from(outer.header_len);
    if outer.protocol == 47 {
        let g = match gre::parse(&frame[inner_at..outer_end]) {
            Ok(g) => g,
            Err(e) => return Some((e.into(), frame.to_vec())),
        };
        match g.protocol {
            gre::PROTO_IPV4 => {}
            gre::PROTO_IPV6 => return Some((DropReason::GreInnerIpv6, frame.to_vec())),
            _ => return Some((DropReason::GreUnsupportedProtocol, frame.to_vec())),
        }
        inner_at += g.len;
    }
    let mut stripped = frame[..14].to_vec();
    stripped.extend_from_slice(&frame[inner_at..outer_end]);
    ipv4_validate::parse(&stripped).err().map(|r| (r, stripped))
}

proptest::proptest! {
    /// Random and mutated GRE and IP-in-IP packets from our tunnels' endpoints (GRE headers
    /// with and without flags, any bytes after them, outer lengths short of the frame) are
    /// decapsulated, or refused under the same reason with the same bytes left, as the
    /// general path did; those that pass are counted against their tunnel.
    #[test]
    fn mutated_tunnel_packets_decap_as_the_general_path(
        ipip in proptest::bool::ANY,
        gre_hdr in proptest::prop_oneof![
            proptest::strategy::Just(vec![0u8, 0, 8, 0]),
            proptest::strategy::Just(vec![0x20u8, 0, 8, 0, 0, 0, 0, 7]),
            proptest::collection::vec(proptest::num::u8::ANY, 0..12),
        ],
        inner_len in 0usize..40,
        flips in proptest::collection::vec((0usize..48, 0u8..8), 0..4),
        short in 0usize..24,
        pad in 0usize..6,
    ) {
        // One table for every case: building it is most of a case's time.
        static SNAP: std::sync::OnceLock<Snapshot> = std::sync::OnceLock::new();
        let s = SNAP.get_or_init(snapshot);
        let mut payload = if ipip { Vec::new() } else { gre_hdr };
        payload.extend_from_slice(&inner_udp([192, 168, 10, 5], NET, 64, inner_len));
        for (at, bit) in flips {
            if let Some(b) = payload.get_mut(at) {
                *b ^= 1 << bit;
            }
        }
        // The outer length may stop short of the payload: the rest is padding.
        let total = (20 + payload.len()).saturating_sub(short).max(20);
        let (src, proto) = if ipip { (BETA, 4) } else { (ACME, 47) };
        let mut h = Ipv4Header::new(0, 60, IpNumber(proto), src, EDGE).unwrap();
        h.total_len = total as u16;
        h.header_checksum = h.calc_header_checksum();
        let mut ip = Vec::new();
        h.write(&mut ip).unwrap();
        ip.extend_from_slice(&payload);
        ip.resize(ip.len() + pad, 0);
        let frame = eth(WAN, UP, &ip);
        let model = decap_model(&frame);
        let (v, out, p) = run1(s, frame);
        let t = usize::from(ipip);
        proptest::prop_assert_eq!(p.counters.tunnels[t].rx_packets, 1);
        match model {
            Some((r, bytes)) => {
                proptest::prop_assert_eq!(v, Verdict::Drop(r));
                proptest::prop_assert_eq!(out, bytes);
                proptest::prop_assert_eq!(p.counters.tunnels[t].drops[r as usize], 1);
            }
            None => proptest::prop_assert_eq!(p.note().ingress_tunnel, Some(t as u16)),
        }
    }
}

/// The general path's encapsulation, as it was before the prebuilt header and the inner
/// edits made by `encap`: the inner packet's TTL decremented (`rewrite`), Ethernet padding
/// cut, then `Repr::emit` and `gre::write_basic` for the outer headers and the Ethernet
/// header toward the upstream router.
fn encap_model(inner: &[u8], gre: bool, dst: [u8; 4], ident: u16) -> Vec<u8> {
    use crate::wire::{gre, ipv4};
    let r = ipv4::Repr::parse(inner).unwrap();
    let inner = with_ttl(inner[..usize::from(r.total_len)].to_vec(), r.ttl - 1);
    let overhead = if gre { 24 } else { 20 };
    let mut out = vec![0u8; overhead];
    ipv4::Repr {
        tos: r.tos,
        total_len: (overhead + inner.len()) as u16,
        ident: if r.dont_frag { 0 } else { ident },
        dont_frag: r.dont_frag,
        ttl: 64,
        protocol: if gre { 47 } else { 4 },
        src: u32::from_be_bytes(EDGE),
        dst: u32::from_be_bytes(dst),
        header_len: 20,
        frag_offset: 0,
    }
    .emit(&mut out);
    if gre {
        gre::write_basic(&mut out[20..], gre::PROTO_IPV4);
    }
    out.extend_from_slice(&inner);
    eth(UP, WAN, &out)
}

proptest::proptest! {
    /// Packets from a port toward either tunnel (GRE and IP-in-IP; any TOS, DF or not, any
    /// TTL that forwards, any length, Ethernet padding or none), several in one burst, leave
    /// byte for byte as the general path wrote them, counted against their tunnel.
    #[test]
    fn encapsulated_packets_as_the_general_path(
        pkts in proptest::collection::vec(
            (proptest::bool::ANY, proptest::num::u8::ANY, proptest::bool::ANY, 2u8..=255,
             0usize..80, 0usize..24, 1u8..250),
            1..6,
        ),
    ) {
        static SNAP: std::sync::OnceLock<Snapshot> = std::sync::OnceLock::new();
        let s = SNAP.get_or_init(snapshot);
        let mut frames = Vec::new();
        let mut want = Vec::new();
        let mut ident = 0u16;
        let mut tx = [(0u64, 0u64); 2];
        for &(gre, tos, df, ttl, len, pad, host) in &pkts {
            let dst = if gre { [192, 168, 10, host] } else { [192, 168, 20, host] };
            let mut ip = inner_udp(NET, dst, ttl, len);
            ip[1] = tos;
            ip[6] = if df { 0x40 } else { 0 };
            let ip = with_ttl(ip, ttl);
            let mut f = eth(WAN, UP, &ip);
            f.resize(f.len() + pad, 0xee);
            if !df {
                ident += 1;
            }
            let out = encap_model(&ip, gre, if gre { ACME } else { BETA }, ident);
            let t = usize::from(!gre);
            tx[t].0 += 1;
            tx[t].1 += out.len() as u64;
            frames.push(f);
            want.push(out);
        }
        let mut p = Pipeline::new();
        let mut bufs: Vec<VecBuf> = frames.iter().map(|f| VecBuf::from_bytes(f)).collect();
        let mut v = vec![Verdict::Drop(DropReason::NoRoute); bufs.len()];
        p.process(s, 0, &mut bufs, &mut v);
        for (k, (b, w)) in bufs.iter().zip(&want).enumerate() {
            proptest::prop_assert_eq!(v[k], Verdict::Forward(0));
            proptest::prop_assert_eq!(b.as_ref(), &w[..]);
        }
        for (t, &(n, bytes)) in tx.iter().enumerate() {
            proptest::prop_assert_eq!(p.counters.tunnels[t].tx_packets, n);
            proptest::prop_assert_eq!(p.counters.tunnels[t].tx_bytes, bytes);
        }
    }
}

#[path = "counter_reload_tests.rs"]
mod counter_reload;

#[path = "firewall_burst_tests.rs"]
mod firewall_burst;

/// Review 12 reproduction (fails today): a non-first fragment of a GRE packet (outer offset
/// not zero) holds no GRE header, yet it is decapsulated and its "inner packet" forwarded.
/// An outer fragment must be dropped under a named reason (or reassembled), never parsed.
#[test]
#[ignore = "review 12 reproduction: outer fragments are decapsulated"]
fn review12_an_outer_non_first_fragment_is_never_decapsulated() {
    let s = snapshot();
    let inner = inner_udp([192, 168, 10, 5], NET, 64, 100);
    let mut frame = gre(&inner);
    // Outer fragment offset 100 (800 bytes), MF clear: the last fragment of a GRE packet.
    frame[14 + 6..14 + 8].copy_from_slice(&100u16.to_be_bytes());
    frame[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
    let c = crate::wire::checksum::checksum(&frame[14..34]);
    frame[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
    let (v, _, _) = run1(&s, frame);
    assert!(matches!(v, Verdict::Drop(_)), "{v:?}");
}
