//! Whether a packet may take its next hop: TTL, then the egress MTU (the port's, or the
//! tunnel's for its inner packet). A packet that fails is dropped, or marked for an ICMP
//! error (the `icmp_error` stage builds it) when RFC 1812 asks for one.
use crate::datapath::context::{Ctx, IcmpError, Origin};
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::DropReason;
use crate::route::{Gateway, NextHop, Snapshot};

/// Checks packet `i` against its next hop.
#[inline(always)]
pub fn one<B>(b: &mut Burst<B>, i: usize) {
    let c = &mut b.cx[i];
    let Some(nh) = c.nexthop else { return };
    // Noted before the TTL test: a packet the firewall passed both ways at one judgement
    // has it from here only, an expired one too (its ICMP error is counted against it).
    if let NextHop::Tunnel(t) = nh {
        c.note.egress_tunnel = Some(t);
    }
    let local = c.origin == Origin::Local;
    if !local && c.ip.ttl <= 1 {
        c.error = Some(IcmpError::time_exceeded());
        b.needs.icmp_error = true;
        return;
    }
    let (mtu, too_big) = match nh {
        NextHop::Tunnel(t) => {
            let mtu = b.snap.tunnels.get(t as usize).map_or(0, |t| t.mtu);
            (mtu, DropReason::TunnelMtuExceeded)
        }
        NextHop::Gateway(Gateway { port, .. }) | NextHop::Connected(port) => {
            (port_mtu(b.snap, port), DropReason::MtuExceeded)
        }
    };
    if c.ip.total_len > mtu {
        if c.ip.dont_frag && !local {
            c.error = Some(IcmpError::frag_needed(too_big, mtu));
            b.needs.icmp_error = true;
        } else {
            b.drop(i, too_big);
        }
    }
}

/// The MTU of port `port` (0 when there is none: every packet is too big for it).
#[inline(always)]
pub fn port_mtu(snap: &Snapshot, port: u16) -> u16 {
    snap.ports.get(port as usize).map_or(0, |p| p.mtu)
}

/// Whether a packet came in on a port (not from a tunnel, not made by us): the checks below
/// are `one`'s for such a packet only.
#[inline(always)]
pub fn from_port(c: &Ctx) -> bool {
    matches!(c.origin, Origin::Port(_))
}

/// Whether a packet from a port (`from_port`), toward a next hop on a port of MTU `mtu`,
/// passes the checks of `one` untouched: no TTL expiry and no MTU excess, so no error, drop
/// or note. The length first: the direct way refuses a set that never goes directly by an
/// MTU of 0 (`direct::Way`), on this one test.
#[inline(always)]
pub fn passes(c: &Ctx, mtu: u16) -> bool {
    c.ip.total_len <= mtu && c.ip.ttl > 1
}
