//! Next-hop choice: the route set's group, one member by the flow hash when it is ECMP.
use crate::datapath::context::Live;
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::DropReason;
use crate::packet::PacketBuf;
use crate::route::{ecmp, NextHop};
use crate::wire::{ethernet, ipv4, udp};

pub fn run<B: PacketBuf>(b: &mut Burst<B>, live: &mut Live) {
    for i in live.iter() {
        let (ip, set) = (b.cx[i].ip, b.cx[i].set);
        let Some(group) = b.snap.group(set) else {
            b.drop(i, DropReason::NoRoute);
            continue;
        };
        let hash = if group.is_ecmp() {
            flow_hash(b.pkts[i].as_ref(), &ip)
        } else {
            0
        };
        let Some((id, &nh)) = group
            .pick(hash)
            .and_then(|id| Some((id, b.snap.nexthops.get(id as usize)?)))
        else {
            b.drop(i, DropReason::NoRoute);
            continue;
        };
        b.needs.encap |= matches!(nh, NextHop::Tunnel(_));
        let c = &mut b.cx[i];
        c.nexthop = Some(nh);
        c.note.nexthop = Some(id);
        c.note.route_dst = Some(ip.dst);
    }
    b.compact(live);
}

/// The ECMP flow hash of a packet: addresses, plus ports for TCP and UDP unless it is a
/// non-first fragment. After decapsulation `ip` is the inner header, so tunnels never polarise.
#[inline]
fn flow_hash(frame: &[u8], ip: &ipv4::Repr) -> u32 {
    let l4 = frame
        .get(ethernet::HEADER_LEN + ip.header_len..)
        .unwrap_or(&[]);
    let ports = match (ip.protocol, ip.frag_offset) {
        // TCP's ports sit where UDP's do.
        (ipv4::PROTO_TCP | ipv4::PROTO_UDP, 0) => {
            udp::Ports::new_checked(l4).map_or(0, |p| p.word())
        }
        _ => 0,
    };
    ecmp::flow_hash(ip.src, ip.dst, ports)
}
