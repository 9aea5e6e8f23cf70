//! Encapsulation toward a tunnel: outer IPv4 from our anycast endpoint to the customer's (TTL
//! from the tunnel, DSCP/ECN and DF copied from the inner header, ID 0 when DF is set and a
//! per-worker counter otherwise), plus a 4-byte GRE header for GRE tunnels, written into the
//! mbuf headroom from the tunnel's template (`wire::outer`: only the per-packet fields and
//! the checksum's finish are computed here); the payload is never copied.
use crate::datapath::context::L2Rewrite;
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::DropReason;
use crate::packet::PacketBuf;
use crate::route::NextHop;
use crate::wire::{ethernet, outer};

/// Encapsulates packet `i` if its next hop is a tunnel; it leaves forwarded or dropped.
#[inline(always)]
pub fn one<B: PacketBuf>(b: &mut Burst<B>, i: usize, l2: &L2Rewrite) {
    let Some(NextHop::Tunnel(t)) = b.cx[i].nexthop else {
        return;
    };
    match encap(b, i, t, l2) {
        Ok(port) => b.forward(i, port),
        Err(r) => b.drop(i, r),
    }
}

#[inline(always)]
fn encap<B: PacketBuf>(
    b: &mut Burst<B>,
    i: usize,
    t: u16,
    l2: &L2Rewrite,
) -> Result<u16, DropReason> {
    let Some(tun) = b.snap.tunnels.get(t as usize) else {
        return Err(DropReason::NoRoute);
    };
    let ip = b.cx[i].ip;
    let pkt = &mut b.pkts[i];
    let padding = pkt
        .as_ref()
        .len()
        .saturating_sub(ethernet::HEADER_LEN + usize::from(ip.total_len));
    if padding > 0 {
        pkt.trim_back(padding);
    }
    let ident = if ip.dont_frag { 0 } else { b.st.next_ip_id() };
    let buf = pkt
        .prepend(tun.overhead as usize)
        .ok_or(DropReason::NoHeadroom)?;
    let frame_len = buf.len();
    let (eth, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
    let fields = outer::Fields {
        tos: ip.tos,
        total_len: ip.total_len.wrapping_add(tun.overhead),
        ident,
        dont_frag: ip.dont_frag,
    };
    tun.outer.write(rest, fields);
    if let Some(mut e) = ethernet::Frame::new_checked(eth) {
        e.set_dst(l2.dst);
        e.set_src(l2.src);
        e.set_ethertype(ethernet::ETHERTYPE_IPV4);
    }
    if let Some(tc) = b.counters.tunnels.get_mut(tun.counter_slot) {
        tc.tx_packets += 1;
        tc.tx_bytes += frame_len as u64;
    }
    Ok(l2.port)
}
