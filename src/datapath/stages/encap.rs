//! Encapsulation toward a tunnel: outer IPv4 from our anycast endpoint to the customer's (TTL
//! from the tunnel, DSCP/ECN and DF copied from the inner header, ID 0 when DF is set and a
//! per-worker counter otherwise), plus a 4-byte GRE header for GRE tunnels, written into the
//! mbuf headroom, with the Ethernet header, from the header the neighbor stage prebuilt for
//! the tunnel's underlay (`wire::outer::Prebuilt`: one copy, then only the per-packet fields
//! and the checksum's finish are computed here); the payload is never copied.
//!
//! The inner packet's own edits (`rewrite::edit_inner`: MSS clamp, TTL) are made here, in
//! the same look at the buffer as the prepend, and what is needed of the tunnel comes with
//! its underlay: `rewrite` then `encap` each took the buffer and its bounds, and `encap`
//! looked the tunnel and its header up again (callgrind, issue 14).
use super::neighbor::Underlay;
use super::rewrite;
use crate::datapath::context::Ctx;
use crate::datapath::counters::Counters;
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::DropReason;
use crate::packet::PacketBuf;
use crate::route::Snapshot;
use crate::wire::{ethernet, outer};

/// Rewrites and encapsulates packet `i` toward its tunnel's underlay `u`; it leaves
/// forwarded or dropped.
#[inline(always)]
pub fn one<B: PacketBuf>(b: &mut Burst<B>, i: usize, u: &mut Underlay) {
    match encap(b, i, u) {
        // Not counted in `Burst::left`: `leave` is the burst's last pass, nothing compacts
        // after it.
        Ok(port) => b.cx[i].forward(port),
        Err(r) => b.drop(i, r),
    }
}

#[inline(always)]
fn encap<B: PacketBuf>(b: &mut Burst<B>, i: usize, u: &mut Underlay) -> Result<u16, DropReason> {
    let c = &mut b.cx[i];
    let pkt = &mut b.pkts[i];
    let overhead = usize::from(u.overhead);
    let ident = if c.ip.dont_frag { 0 } else { b.st.next_ip_id() };
    let Some(buf) = pkt.prepend(overhead) else {
        return Err(no_headroom(b.snap, b.counters, pkt, c));
    };
    let Some(frame) = buf.get_mut(overhead..) else {
        return Err(DropReason::NoHeadroom);
    };
    // The frame as it came: its Ethernet header is overwritten below, the inner packet is not.
    rewrite::edit_inner(b.snap, b.counters, frame, c);
    let ip = &c.ip;
    let padding = frame
        .len()
        .saturating_sub(ethernet::HEADER_LEN + usize::from(ip.total_len));
    u.head.write(
        buf,
        outer::Fields {
            tos: ip.tos,
            total_len: ip.total_len.wrapping_add(u.overhead),
            ident,
            dont_frag: ip.dont_frag,
        },
    );
    let frame_len = buf.len() - padding;
    // Ethernet padding after the inner packet is not sent on: trimmed after the writes, which
    // end where the inner packet starts.
    if padding > 0 {
        pkt.trim_back(padding);
    }
    u.count_tx(frame_len);
    Ok(u.port())
}

/// No headroom for the outer headers: the packet leaves dropped as it did when `rewrite` ran
/// before `encap` (inner edits made, padding trimmed).
#[cold]
#[inline(never)]
fn no_headroom<B: PacketBuf>(
    snap: &Snapshot,
    counters: &mut Counters,
    pkt: &mut B,
    c: &mut Ctx,
) -> DropReason {
    let frame = pkt.as_mut();
    rewrite::edit_inner(snap, counters, frame, c);
    let padding = frame
        .len()
        .saturating_sub(ethernet::HEADER_LEN + usize::from(c.ip.total_len));
    if padding > 0 {
        pkt.trim_back(padding);
    }
    DropReason::NoHeadroom
}
