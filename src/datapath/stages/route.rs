//! Next-hop choice: the route set's group, one member by the flow hash when it is ECMP.
use crate::datapath::context::Ctx;
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::DropReason;
use crate::packet::PacketBuf;
use crate::route::{ecmp, NextHop, Snapshot};
use crate::wire::{ethernet, ipv4, udp};

/// Packet `i`'s next hop; false when it has none (it leaves, dropped).
#[inline(always)]
pub fn one<B: PacketBuf>(b: &mut Burst<B>, i: usize) -> bool {
    let snap = b.snap;
    let c = &b.cx[i];
    let Some(group) = snap.group(c.set) else {
        b.drop(i, DropReason::NoRoute);
        return false;
    };
    let hash = if group.is_ecmp() {
        flow_hash(b.pkts[i].as_ref(), &c.ip)
    } else {
        0
    };
    // The next hop copied straight from the snapshot into the context (through a tuple it
    // went by way of the stack, callgrind).
    let Some((id, nh)) = group
        .pick(hash)
        .and_then(|id| Some((id, snap.nexthops.get(id as usize)?)))
    else {
        b.drop(i, DropReason::NoRoute);
        return false;
    };
    let c = &mut b.cx[i];
    c.nexthop = Some(*nh);
    note(c, id);
    true
}

/// What the trace is told of a packet's route: the next hop chosen, for which destination.
#[inline(always)]
pub fn note(c: &mut Ctx, id: u32) {
    c.note.nexthop = Some(id);
    c.note.route_dst = Some(c.ip.dst);
}

/// The next hop every packet of route set `set` takes, when the set has one member (no flow
/// hash to choose by): the choice `one` makes for each of them, made once.
#[inline(always)]
pub fn single(snap: &Snapshot, set: u32) -> Option<(u32, &NextHop)> {
    let group = snap.group(set)?;
    if group.is_ecmp() {
        return None;
    }
    let id = group.pick(0)?;
    Some((id, snap.nexthops.get(id as usize)?))
}

/// The ECMP flow hash of a packet: addresses, plus ports for TCP and UDP unless it is a
/// non-first fragment. After decapsulation `ip` is the inner header, so tunnels never polarise.
#[inline]
fn flow_hash(frame: &[u8], ip: &ipv4::Repr) -> u32 {
    // TCP's ports sit where UDP's do. The word is read whatever the protocol and kept by a
    // mask: a traffic mix of TCP and UDP made the branch on the protocol mispredict (0.2 a
    // packet on the full path, callgrind).
    let word = frame
        .get(ethernet::HEADER_LEN + usize::from(ip.header_len)..)
        .and_then(udp::Ports::new_checked)
        .map_or(0, |p| p.word());
    let ported = (ip.protocol == ipv4::PROTO_TCP) | (ip.protocol == ipv4::PROTO_UDP);
    let keep = ported & (ip.frag_offset == 0);
    ecmp::flow_hash(ip.src, ip.dst, word & 0u32.wrapping_sub(u32::from(keep)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The flow hash as the rule states it: ports for TCP and UDP first fragments that hold
    /// them, else 0.
    fn naive(frame: &[u8], ip: &ipv4::Repr) -> u32 {
        let at = ethernet::HEADER_LEN + usize::from(ip.header_len);
        let tcp_or_udp = ip.protocol == ipv4::PROTO_TCP || ip.protocol == ipv4::PROTO_UDP;
        let ports = match frame.get(at..at + 4) {
            Some(p) if tcp_or_udp && ip.frag_offset == 0 => {
                u32::from_be_bytes([p[0], p[1], p[2], p[3]])
            }
            _ => 0,
        };
        ecmp::flow_hash(ip.src, ip.dst, ports)
    }

    proptest! {
        #[test]
        fn flow_hash_takes_ports_of_tcp_and_udp_first_fragments_only(
            frame in proptest::collection::vec(any::<u8>(), 0..80),
            header_len in prop_oneof![Just(20u16), Just(24), Just(60), 0u16..80],
            protocol in prop_oneof![Just(ipv4::PROTO_TCP), Just(ipv4::PROTO_UDP), Just(1u8), Just(47), any::<u8>()],
            frag_offset in prop_oneof![Just(0u16), 1u16..8192],
            src in any::<u32>(),
            dst in any::<u32>(),
        ) {
            let ip = ipv4::Repr { src, dst, header_len, protocol, frag_offset, ..Default::default() };
            prop_assert_eq!(flow_hash(&frame, &ip), naive(&frame, &ip));
        }
    }

    /// An edge with one GRE and one IP-in-IP tunnel and a route set of two gateways (ECMP).
    const ECMP_CFG: &str = r#"
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
ip = "192.0.2.253"
mac = "02:00:00:00:00:fd"
port = "wan0"

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

[[routes]]
prefix = "198.51.100.0/24"
nexthop = "192.0.2.254"

[[routes]]
prefix = "192.168.0.0/16"
nexthop = "acme"

[[routes]]
prefix = "192.168.0.0/16"
nexthop = "beta"

[[routes]]
prefix = "100.64.0.0/10"
nexthop = "192.0.2.253"

[[routes]]
prefix = "100.64.0.0/10"
nexthop = "192.0.2.254"
"#;

    /// An IPv4 header of `options` extra bytes (NOPs) and a valid checksum before `l4`.
    fn inner_ip(src: u32, dst: u32, protocol: u8, frag: u16, options: usize, l4: &[u8]) -> Vec<u8> {
        let hl = ipv4::MIN_HEADER_LEN + options;
        let total = (hl + l4.len()) as u16;
        let mut h = vec![0u8; hl];
        h[0] = 0x40 | (hl / 4) as u8;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[6..8].copy_from_slice(&frag.to_be_bytes());
        h[8] = 64;
        h[9] = protocol;
        h[12..16].copy_from_slice(&src.to_be_bytes());
        h[16..20].copy_from_slice(&dst.to_be_bytes());
        h[20..].fill(1);
        let c = crate::wire::checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(l4);
        h
    }

    fn eth_frame(dst: [u8; 6], payload: &[u8], padding: usize) -> Vec<u8> {
        let mut v = dst.to_vec();
        v.extend_from_slice(&[2, 0, 0, 0, 0, 0xfe, 0x08, 0x00]);
        v.extend_from_slice(payload);
        v.resize(v.len() + padding, 0xa5);
        v
    }

    /// `inner` in an outer IPv4 header from the customer at `remote` (GRE with `gre` when
    /// given, else IP-in-IP) to the edge.
    fn tunnelled(remote: u32, gre: Option<&[u8]>, inner: &[u8]) -> Vec<u8> {
        let mut payload = gre.map(<[u8]>::to_vec).unwrap_or_default();
        payload.extend_from_slice(inner);
        let proto = if gre.is_some() {
            ipv4::PROTO_GRE
        } else {
            ipv4::PROTO_IPIP
        };
        let mut outer = inner_ip(remote, 0xcb00_710a, proto, 0, 0, &payload);
        outer[6] = 0x40; // DF
        outer[10..12].fill(0);
        let c = crate::wire::checksum::checksum(&outer[..ipv4::MIN_HEADER_LEN]);
        outer[10..12].copy_from_slice(&c.to_be_bytes());
        outer
    }

    fn run_one(
        snap: &Snapshot,
        port: u16,
        frame: &[u8],
    ) -> (crate::datapath::Verdict, Option<u32>) {
        use crate::datapath::{DropReason, Pipeline, VecBuf, Verdict};
        let mut p = Pipeline::new();
        let mut b = [VecBuf::from_bytes(frame)];
        let mut v = [Verdict::Drop(DropReason::NoRoute)];
        p.process(snap, port, &mut b, &mut v);
        (v[0], p.note().nexthop)
    }

    proptest! {
        /// A decapsulated packet takes the ECMP member the same inner packet takes arriving
        /// on a port: its ports are read from the inner header's end after the strip, and
        /// never from the outer packet's padding. GRE with and without a key, IP-in-IP, IPv4
        /// options, TCP, UDP and other protocols, later fragments, transport bytes too few
        /// for the ports, Ethernet padding after the outer packet.
        #[test]
        fn decapsulated_packets_take_the_member_their_inner_frame_gives(
            host in any::<u16>(),
            dst in 0x6440_0000u32..0x6480_0000,
            protocol in prop_oneof![Just(ipv4::PROTO_TCP), Just(ipv4::PROTO_UDP), Just(ipv4::PROTO_ICMP), any::<u8>()],
            frag in prop_oneof![Just(0u16), Just(0x2000), 1u16..0x2000],
            options in prop_oneof![Just(0usize), Just(4), Just(8)],
            l4 in proptest::collection::vec(any::<u8>(), 0..12),
            shape in 0u8..3,
            padding in 0usize..24,
        ) {
            let snap = snapshot_with(ECMP_CFG);
            let src = 0xc0a8_0000 | u32::from(host);
            let inner = inner_ip(src, dst, protocol, frag, options, &l4);
            let (remote, gre): (u32, Option<&[u8]>) = match shape {
                0 => (0xc633_6414, Some(&[0, 0, 8, 0])),
                1 => (0xc633_6414, Some(&[0x20, 0, 8, 0, 1, 2, 3, 4])),
                _ => (0xc633_641e, None),
            };
            let wan = [2, 0, 0, 0, 0, 1];
            let from_tunnel = run_one(&snap, 0, &eth_frame(wan, &tunnelled(remote, gre, &inner), padding));
            let from_port = run_one(&snap, 1, &eth_frame([2, 0, 0, 0, 1, 1], &inner, 0));
            prop_assert_eq!(from_tunnel, from_port);
            if protocol == ipv4::PROTO_UDP {
                prop_assert_eq!(from_tunnel.0, crate::datapath::Verdict::Forward(0));
            }
        }
    }

    fn snapshot_with(cfg: &str) -> Snapshot {
        use crate::config::{parse, Host};
        let cfg = parse(cfg, &Host { cores: vec![0, 1] }).unwrap();
        let macs: Vec<crate::wire::MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
        Snapshot::build(&cfg, &macs, 1, None).unwrap()
    }
}
