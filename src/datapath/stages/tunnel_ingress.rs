//! Tunnel ingress: a packet for one of our anycast endpoints is matched to its tunnel by
//! outer (source, destination, protocol), decapsulated (GRE per RFC 2784/2890, or IP-in-IP),
//! and its inner packet is validated and source-checked; its lookup follows in bulk. A health
//! probe's answer is taken out first (`probe_answer`), inside the tunnel or not.
use super::{ipv4_validate, probe_answer};
use crate::datapath::context::{Live, Origin};
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::DropReason;
use crate::packet::PacketBuf;
use crate::route::{Snapshot, TunnelState, SET_ANYCAST};
use crate::wire::{ethernet, gre, ipv4};

/// Decapsulates the packets addressed to an anycast endpoint; returns those that go on to
/// the inner lookup (the rest of `live` is untouched).
pub fn run<B: PacketBuf>(b: &mut Burst<B>, live: &Live) -> Live {
    let mut inner = Live::empty();
    let mut last: Last = Last::NONE;
    for i in live.iter() {
        if b.cx[i].set != SET_ANYCAST {
            continue;
        }
        match ingress(b, i, &mut last) {
            Ok(true) => inner.push(i),
            Ok(false) => {}
            Err(DropReason::AnycastNotTunnel) => not_tunnelled(b, i),
            Err(r) => b.drop(i, r),
        }
    }
    inner
}

/// The tunnel the previous packet of this pass was matched to, by its outer (source,
/// destination, protocol), with its state and its counters' slot: a burst mostly comes from
/// one customer, and a compare is cheaper than the binary search over every tunnel's
/// endpoints and the lookups behind them (callgrind, issue 14). Only matches are kept, so a
/// miss is looked up (and its reason found) packet by packet as before; the snapshot does
/// not change within a burst.
#[derive(Clone, Copy)]
struct Last<'s> {
    key: (u32, u32, u8),
    tunnel: Option<Matched<'s>>,
}

/// A tunnel as ingress uses it.
#[derive(Clone, Copy)]
struct Matched<'s> {
    t: u16,
    tun: &'s TunnelState,
}

impl<'s> Last<'s> {
    const NONE: Last<'static> = Last {
        key: (0, 0, 0),
        tunnel: None,
    };

    /// The tunnel of outer `key`.
    #[inline(always)]
    fn tunnel(
        &mut self,
        snap: &'s Snapshot,
        key: (u32, u32, u8),
    ) -> Result<Matched<'s>, DropReason> {
        match self.tunnel {
            Some(m) if self.key == key => Ok(m),
            _ => {
                let m = tunnel_of(snap, key)?;
                *self = Last {
                    key,
                    tunnel: Some(m),
                };
                Ok(m)
            }
        }
    }
}

/// A packet for an anycast address that is not tunnelled: a unidirectional health check's
/// answer (it comes back over the underlay), or a drop. Off the decapsulation path.
#[cold]
#[inline(never)]
fn not_tunnelled<B: PacketBuf>(b: &mut Burst<B>, i: usize) {
    let probe = match b.cx[i].ip.protocol {
        ipv4::PROTO_ICMP => probe_answer::check(b, i, None),
        _ => None,
    };
    match probe {
        Some(Ok(())) => {}
        Some(Err(r)) => b.drop(i, r),
        None => b.drop(i, DropReason::AnycastNotTunnel),
    }
}

/// Ok(true): decapsulated, on to the inner lookup; Ok(false): consumed as a probe answer.
#[inline(always)]
fn ingress<'s, B: PacketBuf>(
    b: &mut Burst<'s, B>,
    i: usize,
    last: &mut Last<'s>,
) -> Result<bool, DropReason> {
    let proto = b.cx[i].ip.protocol;
    let Matched { t, tun, .. } = decap(b, i, last)?;
    // Into the context at once (the outer header is done with): a copy through the stack
    // cost ~18 instructions a packet (callgrind). A packet dropped here or below leaves with
    // (part of) its inner header there, which no one reads.
    ipv4_validate::parse_into(b.pkts[i].as_ref(), &mut b.cx[i].ip)?;
    let inner = b.cx[i].ip;
    // Before the keepalive and source checks and the firewall: a probe answer is ours
    // whatever its addresses, and must never count as customer traffic.
    if inner.protocol == ipv4::PROTO_ICMP {
        if let Some(r) = probe_answer::check(b, i, Some(t)) {
            return r.map(|()| false);
        }
    }
    if proto == ipv4::PROTO_GRE && inner.src == tun.local && inner.dst == tun.remote {
        return Err(DropReason::GreKeepalive);
    }
    if !b.snap.source_allowed_in(t, tun, inner.src, b.fib) {
        return Err(DropReason::TunnelSpoofedSource);
    }
    b.cx[i].origin = Origin::Tunnel(t);
    Ok(true)
}

/// Identifies the tunnel and strips the outer headers, leaving the Ethernet header in
/// front of the inner packet. Only the 14-byte Ethernet header moves; the payload stays.
#[inline(always)]
fn decap<'s, B: PacketBuf>(
    b: &mut Burst<'s, B>,
    i: usize,
    last: &mut Last<'s>,
) -> Result<Matched<'s>, DropReason> {
    let outer = &b.cx[i].ip;
    let (proto, key) = (outer.protocol, (outer.src, outer.dst, outer.protocol));
    // The outer header was validated: it and its payload lie within the frame.
    let outer_end = ethernet::HEADER_LEN + usize::from(outer.total_len);
    let mut inner_at = ethernet::HEADER_LEN + usize::from(outer.header_len);
    if proto != ipv4::PROTO_GRE && proto != ipv4::PROTO_IPIP {
        return Err(DropReason::AnycastNotTunnel);
    }
    let m = last.tunnel(b.snap, key)?;
    b.cx[i].note.ingress_tunnel = Some(m.t);
    let pkt = &mut b.pkts[i];
    let frame = pkt.as_ref();
    let len = frame.len();
    if let Some(tc) = b.counters.tunnels.get_mut(m.tun.counter_slot) {
        tc.rx_packets += 1;
        tc.rx_bytes += len as u64;
    }
    if proto == ipv4::PROTO_GRE {
        let outer_pkt = frame.get(..outer_end).unwrap_or(&[]);
        let g = gre::parse(outer_pkt.get(inner_at..).unwrap_or(&[]))?;
        match g.protocol {
            gre::PROTO_IPV4 => {}
            gre::PROTO_IPV6 => return Err(DropReason::GreInnerIpv6),
            _ => return Err(DropReason::GreUnsupportedProtocol),
        }
        inner_at += g.len;
    }
    let shift = inner_at - ethernet::HEADER_LEN;
    pkt.as_mut().copy_within(..ethernet::HEADER_LEN, shift);
    if !pkt.trim_front(shift) {
        return Err(DropReason::GreMalformed);
    }
    // Anything after the outer packet (Ethernet padding) is not part of the inner one.
    let extra = len.saturating_sub(outer_end);
    if extra > 0 {
        pkt.trim_back(extra);
    }
    Ok(m)
}

/// The tunnel outer (source, destination, protocol) belongs to, or why none.
#[inline(never)]
fn tunnel_of(snap: &Snapshot, key: (u32, u32, u8)) -> Result<Matched<'_>, DropReason> {
    let (src, dst, proto) = key;
    let Some(t) = snap.tunnel_by_endpoints(src, dst, proto) else {
        return Err(if snap.has_tunnel_endpoints(src, dst) {
            DropReason::TunnelWrongProtocol
        } else {
            DropReason::TunnelUnknown
        });
    };
    let tun = snap
        .tunnels
        .get(usize::from(t))
        .ok_or(DropReason::TunnelUnknown)?;
    Ok(Matched { t, tun })
}
