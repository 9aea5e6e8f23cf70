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
use crate::datapath::context::Macs;
use crate::datapath::pipeline::Burst;
use crate::packet::PacketBuf;
use crate::route::{Gateway, NextHop, Snapshot};

/// The last route set seen in a pass and where its packets go directly, if they may.
pub struct Way {
    /// u32::MAX (a FIB miss, never a stored set) until the first packet.
    set: u32,
    hop: Option<Hop>,
}

#[derive(Clone, Copy)]
struct Hop {
    /// The next hop's id (the route's note).
    id: u32,
    gateway: Gateway,
    mtu: u16,
    /// The link layer (`L2Rewrite::macs` and the port), looked up by the first packet that
    /// passes the checks.
    l2: Option<(Macs, u16)>,
}

impl Way {
    #[inline(always)]
    pub fn new() -> Way {
        Way {
            set: u32::MAX,
            hop: None,
        }
    }

    /// Route set `set`'s gateway, when its packets may go directly.
    #[inline(never)]
    fn take(&mut self, snap: &Snapshot, set: u32) {
        self.set = set;
        self.hop = match route::single(snap, set) {
            Some((id, NextHop::Gateway(g))) => Some(Hop {
                id,
                gateway: *g,
                mtu: hop_checks::port_mtu(snap, g.port),
                l2: None,
            }),
            _ => None,
        };
    }
}

impl Default for Way {
    fn default() -> Self {
        Way::new()
    }
}

/// Packet `i`, directly when it may: true when it left (forwarded), false when it is to go
/// the general way, untouched.
#[inline(always)]
pub fn one<B: PacketBuf>(b: &mut Burst<B>, i: usize, way: &mut Way) -> bool {
    let snap = b.snap;
    let c = &b.cx[i];
    // The origin first: a decapsulated packet leaves on one test.
    if !hop_checks::from_port(c) {
        return false;
    }
    if c.set != way.set {
        way.take(snap, c.set);
    }
    let Some(hop) = &mut way.hop else {
        return false;
    };
    if !hop_checks::passes(c, hop.mtu) {
        return false;
    }
    let (macs, port) = match hop.l2 {
        Some(l2) => l2,
        None => {
            let Some(l2) = neighbor::resolved(snap, &hop.gateway) else {
                return false;
            };
            let l2 = (l2.macs(), l2.port);
            hop.l2 = Some(l2);
            l2
        }
    };
    rewrite::direct(b, i, &macs, port, hop.id);
    true
}
