//! The link layer toward each packet's next hop: the gateway's MAC, a connected host's, or,
//! for a tunnel, the underlay's toward its customer endpoint. Resolved before anything is
//! modified, so a packet dropped for want of a MAC leaves untouched; an unresolved address
//! is queued for the worker to ARP for.
use crate::datapath::context::L2Rewrite;
use crate::datapath::counters::Counters;
use crate::datapath::pipeline::{Burst, State};
use crate::datapath::verdict::DropReason;
use crate::route::{ecmp, Gateway, NextHop, NhMac, Snapshot};
use crate::wire::{ethernet, outer, MacAddr};

/// Underlays resolved in this pass, by tunnel (a few, direct-mapped): a burst's packets
/// toward tunnels mostly go to the same few, and the next packet for one reuses its link
/// layer and its whole outer header with one compare instead of the walk from the tunnel to
/// its underlay's group, next hop, gateway MAC and port (~55 instructions per encapsulated
/// packet, callgrind). Only resolutions that succeeded are kept, so a failure is found (and
/// an unresolved gateway asked for) packet by packet as before; within one burst the
/// snapshot does not change. Made at the burst's first tunnel next hop (`graph::leave`): a
/// burst with none pays nothing for them, and a packet toward a tunnel no test whether they
/// were made (an `Option` made on first use cost 3 instructions a packet; callgrind).
pub struct Underlays([Underlay; 4]);

/// A tunnel's underlay as this pass resolved it: what `encap` needs of it and of the tunnel,
/// so that it looks at neither.
#[derive(Clone, Copy)]
pub struct Underlay {
    /// Packets sent into the tunnel and not yet added to its counters (`tx_bytes`, their
    /// bytes): added when the slot takes another tunnel and at the end of the pass
    /// (`Underlays::flush`), not per packet (a bounds test and a multiply by the counters'
    /// stride; callgrind). Declared apart, so that they do not lie side by side: adjacent,
    /// the two adds per packet were made as one vector add (5 instructions for 2; callgrind).
    tx_packets: u64,
    /// The tunnel, or `NO_TUNNEL`: one compare of a word (an `Option<u16>` took three).
    tunnel: u32,
    l2: L2Rewrite,
    /// The largest inner packet the underlay port carries: its MTU less the tunnel overhead.
    max_inner: usize,
    /// The Ethernet header toward the underlay and the tunnel's outer headers.
    pub head: outer::Prebuilt,
    /// The tunnel's counters.
    counter_slot: usize,
    tx_bytes: u64,
    /// Bytes the outer headers add (the tunnel's).
    pub overhead: u16,
}

impl Underlay {
    /// The port toward the underlay.
    #[inline(always)]
    pub fn port(&self) -> u16 {
        self.l2.port
    }

    /// Counts a packet of `len` bytes sent into the tunnel.
    #[inline(always)]
    pub fn count_tx(&mut self, len: usize) {
        self.tx_packets += 1;
        self.tx_bytes += len as u64;
    }

    /// Adds the packets counted since the last flush to the tunnel's counters.
    #[inline(always)]
    fn flush(&mut self, counters: &mut Counters) {
        if let Some(tc) = counters.tunnels.get_mut(self.counter_slot) {
            tc.tx_packets += self.tx_packets;
            tc.tx_bytes += self.tx_bytes;
        }
        self.tx_packets = 0;
        self.tx_bytes = 0;
    }
}

/// Above every tunnel index (a `u16`): a slot that holds none.
const NO_TUNNEL: u32 = u32::MAX;

impl Underlays {
    /// Four empty slots.
    #[inline(always)]
    pub fn new() -> Underlays {
        Underlays(
            [Underlay {
                tx_packets: 0,
                tunnel: NO_TUNNEL,
                l2: L2Rewrite {
                    dst: MacAddr([0; 6]),
                    src: MacAddr([0; 6]),
                    port: 0,
                },
                max_inner: 0,
                head: outer::Prebuilt::EMPTY,
                counter_slot: 0,
                tx_bytes: 0,
                overhead: 0,
            }; 4],
        )
    }

    /// Adds what each slot counted to its tunnel's counters: at the end of the pass.
    #[inline(always)]
    pub fn flush(&mut self, counters: &mut Counters) {
        for u in &mut self.0 {
            u.flush(counters);
        }
    }
}

/// Packet `i`'s link layer toward its next hop, handed straight to `rewrite`; None when
/// there is none yet (the packet leaves). A packet for a tunnel goes by `underlay_of`.
#[inline(always)]
pub fn one<B>(b: &mut Burst<B>, i: usize) -> Option<L2Rewrite> {
    let snap = b.snap;
    let c = &b.cx[i];
    // Matched in place: a copy of the next hop went by way of the stack (callgrind).
    let l2 = match &c.nexthop {
        Some(NextHop::Gateway(g)) => gateway(snap, b.st, g),
        &Some(NextHop::Connected(p)) => host(snap, b.st, p, c.ip.dst),
        // Packets for tunnels leave by `underlay_of` (`graph::leave`); none comes here.
        Some(NextHop::Tunnel(_)) | None => Err(DropReason::NoRoute),
    };
    match l2 {
        Ok(l2) => Some(l2),
        Err(r) => {
            b.drop(i, r);
            None
        }
    }
}

/// Packet `i`'s underlay toward its next hop, tunnel `t`, handed straight to `encap`; None
/// when there is none (the packet leaves, dropped as `one` drops it). The underlay is
/// resolved once per pass; the slot's previous tunnel's packets are counted before it gives
/// the slot up. The drops are made here, not returned as a `Result` for the caller to make
/// (6 instructions a packet; callgrind).
#[inline(always)]
pub fn underlay_of<'k, B>(
    b: &mut Burst<B>,
    i: usize,
    t: u16,
    known: &'k mut Underlays,
) -> Option<&'k mut Underlay> {
    let u = &mut known.0[usize::from(t) % 4];
    if u.tunnel != u32::from(t) {
        if let Err(r) = underlay(b.snap, b.st, b.counters, t, u) {
            b.drop(i, r);
            return None;
        }
    }
    if usize::from(b.cx[i].ip.total_len) > u.max_inner {
        b.drop(i, DropReason::MtuExceeded);
        return None;
    }
    Some(u)
}

/// Toward a gateway, or why not yet. Inlined: on its own it costs a call and ~18
/// instructions per packet (callgrind, plain path).
#[inline(always)]
fn gateway(snap: &Snapshot, st: &mut State, g: &Gateway) -> Result<L2Rewrite, DropReason> {
    let Some(port) = snap.ports.get(g.port as usize) else {
        return Err(DropReason::NoRoute);
    };
    let Some(dst) = gateway_mac(snap, g) else {
        st.want_arp(g.port, g.ip);
        return Err(DropReason::NeighborUnresolved);
    };
    Ok(L2Rewrite {
        dst,
        src: port.mac,
        port: g.port,
    })
}

/// The gateway's MAC, configured or learned; None while ARP has not resolved it.
#[inline(always)]
fn gateway_mac(snap: &Snapshot, g: &Gateway) -> Option<MacAddr> {
    match g.mac {
        NhMac::Static(m) => Some(m),
        NhMac::Arp(slot) => snap.arp.get(slot as usize),
    }
}

/// Toward gateway `g` when it is resolved: `gateway` without the drop and the ARP request
/// (the caller sends an unresolved one the general way, which makes both).
#[inline(always)]
pub fn resolved(snap: &Snapshot, g: &Gateway) -> Option<L2Rewrite> {
    let port = snap.ports.get(g.port as usize)?;
    Some(L2Rewrite {
        dst: gateway_mac(snap, g)?,
        src: port.mac,
        port: g.port,
    })
}

/// Toward host `ip` on port `p`'s connected subnet. Inlined: out of line, its result came
/// back through memory and every path's link layer with it (callgrind, plain path).
#[inline(always)]
fn host(snap: &Snapshot, st: &mut State, p: u16, ip: u32) -> Result<L2Rewrite, DropReason> {
    let Some(port) = snap.ports.get(p as usize) else {
        return Err(DropReason::NoRoute);
    };
    match snap.arp.host(p, ip) {
        Some(dst) => Ok(L2Rewrite {
            dst,
            src: port.mac,
            port: p,
        }),
        None => {
            st.want_arp(p, ip);
            Err(DropReason::NeighborUnresolved)
        }
    }
}

/// Tunnel `t`'s underlay into slot `u`, whose packets are counted first: toward its
/// customer endpoint, the largest inner packet its underlay port carries (an error when the
/// port is gone or carries not even the outer headers), and the whole outer header toward
/// it. On an error the slot is left as it was. Written in place: returned, the 96-byte
/// `Underlay` went through a stack temporary and was copied into the slot (~15
/// instructions a call, callgrind, issue 14).
#[inline(never)]
fn underlay(
    snap: &Snapshot,
    st: &mut State,
    counters: &mut Counters,
    t: u16,
    u: &mut Underlay,
) -> Result<(), DropReason> {
    let Some(tun) = snap.tunnels.get(t as usize) else {
        return Err(DropReason::NoRoute);
    };
    // The underlay may be ECMP too: one path per tunnel, by its endpoints.
    let under = snap.group(tun.underlay).and_then(|g| {
        let hash = if g.is_ecmp() {
            ecmp::flow_hash(tun.local, tun.remote, 0)
        } else {
            0
        };
        g.pick(hash)
    });
    let l2 = match under.and_then(|u| snap.nexthops.get(u as usize)) {
        Some(NextHop::Gateway(g)) => gateway(snap, st, g)?,
        Some(&NextHop::Connected(p)) => host(snap, st, p, tun.remote)?,
        Some(NextHop::Tunnel(_)) | None => return Err(DropReason::NoRoute),
    };
    // `total + overhead > mtu` for every inner packet when the port is missing or its MTU
    // is below the overhead.
    let max_inner = snap
        .ports
        .get(l2.port as usize)
        .and_then(|p| (p.mtu as usize).checked_sub(tun.overhead as usize))
        .ok_or(DropReason::MtuExceeded)?;
    u.flush(counters);
    u.tunnel = u32::from(t);
    u.l2 = l2;
    u.max_inner = max_inner;
    u.head = tun.outer.prebuilt(&eth_header(&l2));
    u.counter_slot = tun.counter_slot;
    u.overhead = tun.overhead;
    Ok(())
}

/// The Ethernet header toward `l2`'s neighbor, carrying IPv4.
fn eth_header(l2: &L2Rewrite) -> [u8; ethernet::HEADER_LEN] {
    let mut h = [0u8; ethernet::HEADER_LEN];
    if let Some(mut e) = ethernet::Frame::new_checked(&mut h[..]) {
        e.set_dst(l2.dst);
        e.set_src(l2.src);
        e.set_ethertype(ethernet::ETHERTYPE_IPV4);
    }
    h
}
