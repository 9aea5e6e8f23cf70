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
    let l4 = frame
        .get(ethernet::HEADER_LEN + usize::from(ip.header_len)..)
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
