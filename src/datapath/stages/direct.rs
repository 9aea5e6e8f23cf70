//! The direct way: route ─► firewall ─► hop_checks ─► neighbor ─► rewrite in one step, for a
//! packet from a port whose route set has one member, a gateway with a known MAC, and that
//! passes the hop checks. Such a packet meets no firewall (it crosses no tunnel), no ICMP
//! error and no encapsulation, and each stage's part is its own function here; any other
//! packet goes the general way, which decides it exactly as before.
//!
//! The route set's next hop, port MTU and link layer are found once per run of packets with
//! the same set (plain traffic mostly shares one): the stages' per-packet walk from the set
//! to the group, next hop, port and MAC was ~60 instructions a packet (callgrind, issue 14).
//! A link layer is looked up only for a packet about to use it, so a gateway's ARP entry is
//! read (and kept fresh) only when the general way would read it too; within a burst the
//! snapshot does not change, and an entry read once for a run is the entry the rest of the
//! run would read, as `neighbor::Underlays` keeps it for tunnels.
use super::{hop_checks, neighbor, rewrite, route};
use crate::datapath::context::{Ctx, Macs};
use crate::datapath::pipeline::Burst;
use crate::packet::PacketBuf;
use crate::route::{Gateway, NextHop, Snapshot};

/// The last route set seen in a pass and where its packets go directly, if they may.
pub struct Way {
    /// The set decided last: one compare a packet finds it, where the set, its hop and its
    /// link layer were three (callgrind). Its packets go directly when they pass the hop
    /// checks against `mtu`; a set that never goes directly (not one gateway: a tunnel's,
    /// ECMP) is kept here with MTU 0, which no packet passes (IPv4 validation found each
    /// total length 20 or more).
    ready: Ready,
    /// u32::MAX (a FIB miss, never a stored set) until the first packet.
    set: u32,
    hop: Option<Hop>,
}

/// Everything the direct way writes for a packet of set `set`.
#[derive(Clone, Copy)]
struct Ready {
    /// u32::MAX while no set is ready.
    set: u32,
    mtu: u16,
    /// The next hop's id (the route's note).
    id: u32,
    /// `L2Rewrite::macs` (made once for the run) and the port.
    macs: Macs,
    port: u16,
}

#[derive(Clone, Copy)]
struct Hop {
    /// The next hop's id (the route's note).
    id: u32,
    gateway: Gateway,
    mtu: u16,
}

impl Way {
    #[inline(always)]
    pub fn new() -> Way {
        Way {
            ready: Ready::NONE,
            set: u32::MAX,
            hop: None,
        }
    }

    /// Route set `set`'s gateway, when its packets may go directly; a set whose packets
    /// never do is decided at once (`ready`).
    #[inline(never)]
    fn take(&mut self, snap: &Snapshot, set: u32) {
        self.set = set;
        self.hop = match route::single(snap, set) {
            Some((id, NextHop::Gateway(g))) => Some(Hop {
                id,
                gateway: *g,
                mtu: hop_checks::port_mtu(snap, g.port),
            }),
            _ => None,
        };
        self.ready = match self.hop {
            Some(_) => Ready::NONE,
            None => Ready { set, ..Ready::NONE },
        };
    }

    /// Whether packet `c`, of a set not decided (`ready`), may go directly: then its set is
    /// decided. The checks in their order before `ready`: the set's hop, the hop checks,
    /// then the link layer (looked up, and a learned entry kept fresh, only for a packet
    /// about to use it). In line: out of line it cost a call (~15) for each packet of a set
    /// not decided yet (callgrind, encap path).
    #[inline(always)]
    fn settle(&mut self, snap: &Snapshot, c: &Ctx) -> bool {
        if c.set != self.set {
            self.take(snap, c.set);
        }
        let Some(hop) = &self.hop else {
            return false;
        };
        if !hop_checks::passes(c, hop.mtu) {
            return false;
        }
        // Not decided, with a hop: its link layer is not known yet.
        let Some(l2) = neighbor::resolved(snap, &hop.gateway) else {
            return false;
        };
        self.ready = Ready {
            set: c.set,
            mtu: hop.mtu,
            id: hop.id,
            macs: l2.macs(),
            port: l2.port,
        };
        true
    }
}

impl Ready {
    const NONE: Ready = Ready {
        set: u32::MAX,
        mtu: 0,
        id: 0,
        macs: Macs::ZERO,
        port: 0,
    };
}

impl Default for Way {
    fn default() -> Self {
        Way::new()
    }
}

/// Packet `i`, directly when it may: the port it left forwarded to, None when it is to go
/// the general way, untouched. The caller counts the leavers (`Burst::left`) and hands out
/// their verdicts. (A port, not a `Verdict`: copied whole, a verdict went byte by byte and
/// was tested again; callgrind.)
#[inline(always)]
pub fn one<B: PacketBuf>(b: &mut Burst<B>, i: usize, way: &mut Way) -> Option<u16> {
    let c = &b.cx[i];
    // The origin first: a decapsulated packet leaves on one test.
    if !hop_checks::from_port(c) {
        return None;
    }
    // `go` on each branch, not after both: joined, the context's address was worked out
    // again after the settling branch's call (callgrind).
    if c.set == way.ready.set {
        if !hop_checks::passes(c, way.ready.mtu) {
            return None;
        }
        Some(go(b, i, &way.ready))
    } else if way.settle(b.snap, c) {
        Some(go(b, i, &way.ready))
    } else {
        None
    }
}

/// Packet `i` of the set `r` is ready for, which passed the checks: noted, its verdict set,
/// rewritten; its port.
#[inline(always)]
fn go<B: PacketBuf>(b: &mut Burst<B>, i: usize, r: &Ready) -> u16 {
    // The context first, at the address the checks used: after the frame's edits it was
    // worked out again (the compiler cannot tell the two apart; callgrind).
    let c = &mut b.cx[i];
    route::note(c, r.id);
    c.forward(r.port);
    rewrite::direct(b, i, &r.macs);
    r.port
}
