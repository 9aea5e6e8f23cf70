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
}
