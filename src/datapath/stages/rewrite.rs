//! The rewrite toward the next hop: MSS clamping for SYNs through tunnels, the TTL (RFC 1624
//! incremental checksum), and for a gateway or connected host the Ethernet addresses; the
//! packet is then forwarded. Packets for a tunnel are `encap`'s, which makes the same edits
//! (`edit_inner`) on its way.
use crate::datapath::context::{Ctx, L2Rewrite, Macs, Origin};
use crate::datapath::counters::Counters;
use crate::datapath::pipeline::Burst;
use crate::packet::PacketBuf;
use crate::route::{NextHop, Snapshot};
use crate::wire::{ethernet, ipv4, tcp};

/// Rewrites packet `i` toward a gateway or host; it leaves forwarded. (A packet for a tunnel
/// is `encap`'s, edits and all.)
#[inline(always)]
pub fn one<B: PacketBuf>(b: &mut Burst<B>, i: usize, l2: &L2Rewrite) {
    let c = &mut b.cx[i];
    // The buffer's bounds read once for the three edits (callgrind, issue 14).
    let frame = b.pkts[i].as_mut();
    edit_inner(b.snap, b.counters, frame, c);
    // Field by field: `l2` is in registers here, where building `Macs` from it took ~25
    // instructions (decap path, callgrind); the direct way makes its `Macs` once per run.
    if let Some(mut eth) = ethernet::Frame::new_checked(frame) {
        eth.set_dst(l2.dst);
        eth.set_src(l2.src);
    }
    // Not counted in `Burst::left`, as in `encap::one`.
    c.forward(l2.port);
}

/// The edits to the packet's own headers in `frame` (from its Ethernet header on): the MSS
/// clamp of a SYN through a tunnel, and the TTL. `encap` makes them too, through its own
/// look at the buffer.
#[inline(always)]
pub fn edit_inner(snap: &Snapshot, counters: &mut Counters, frame: &mut [u8], c: &mut Ctx) {
    if c.ip.protocol == ipv4::PROTO_TCP && c.ip.frag_offset == 0 {
        clamp(snap, counters, frame, c);
    }
    // A packet not our own passed the hop checks, which hold back a TTL of 1 or less (an
    // ICMP error replaces it, `Origin::Local`, or it is dropped): no test for the wrap
    // (callgrind, issue 14; `direct` relies on the same).
    if c.origin != Origin::Local {
        ipv4::decrement_live_ttl_in(frame.get_mut(ethernet::HEADER_LEN..).unwrap_or(&mut []));
    }
}

/// `one`'s edits for a packet from a port toward a gateway or host on a port (no tunnel
/// either side, so no MSS clamp: `clamp` finds no limit) whose TTL the hop checks found above
/// 1: the TTL and the Ethernet addresses (`L2Rewrite::macs`, made once for many packets).
/// The caller notes the route and sets the verdict.
#[inline(always)]
pub fn direct<B: PacketBuf>(b: &mut Burst<B>, i: usize, macs: &Macs) {
    let frame = b.pkts[i].as_mut();
    ipv4::decrement_live_ttl_in(frame.get_mut(ethernet::HEADER_LEN..).unwrap_or(&mut []));
    set_macs(frame, macs);
}

/// The new Ethernet addresses (`L2Rewrite::macs`), into a frame that holds a whole Ethernet
/// header: two stores.
#[inline(always)]
fn set_macs(frame: &mut [u8], macs: &Macs) {
    if frame.len() >= ethernet::HEADER_LEN {
        if let Some(h) = frame.first_chunk_mut::<12>() {
            macs.write(h);
        }
    }
}

/// Lowers the MSS of a SYN or SYN-ACK that enters or leaves through a tunnel.
fn clamp(snap: &Snapshot, counters: &mut Counters, frame: &mut [u8], c: &mut Ctx) {
    let start = ethernet::HEADER_LEN + usize::from(c.ip.header_len);
    let end = ethernet::HEADER_LEN + usize::from(c.ip.total_len);
    let Some(seg) = frame.get_mut(start..end) else {
        return;
    };
    // Most segments are not SYNs: their flags before the tunnels' limits (two look-ups).
    // `clamp_mss` would leave them alone, and `note.mss` is None already.
    if !tcp::is_syn(seg) {
        return;
    }
    let limit = |t: u16| snap.tunnels.get(t as usize).map_or(0, |t| t.mss_clamp);
    let ingress = if let Origin::Tunnel(t) = c.origin {
        limit(t)
    } else {
        0
    };
    let egress = if let Some(NextHop::Tunnel(t)) = c.nexthop {
        limit(t)
    } else {
        0
    };
    let max = match (ingress, egress) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    };
    if max == 0 {
        return;
    }
    let r = tcp::clamp_mss(seg, max);
    c.note.mss = r.value();
    if let tcp::Mss::Clamped(..) = r {
        c.note.clamped = true;
        counters.mss_clamped += 1;
    }
}
