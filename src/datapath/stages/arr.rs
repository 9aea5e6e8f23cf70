//! Automatic Return Routing: a packet from a port whose flow a tunnel with ARR taught us
//! goes back into that tunnel instead of through the route table (`ret`, before the route);
//! a packet from such a tunnel routed toward a port teaches its flow (`learn`, once the
//! firewall and hop checks let it go). The tunnel is then used as a route would be: egress
//! firewall, MTU, MSS clamp and encapsulation all apply. Tunnel to tunnel traffic is never
//! learned (the vendor's first release). A flow whose tunnel is down follows the route
//! table (which the health penalties steer) until the tunnel is back; its entry is kept.
use crate::arr::table::{Learned, Table, CLOSING, CONFIRMED};
use crate::arr::{flow, flow::Action};
use crate::config::Health;
use crate::datapath::context::Origin;
use crate::datapath::pipeline::Burst;
use crate::packet::PacketBuf;
use crate::route::NextHop;

/// Packet `i`'s next hop from a learned flow; false when none applies (the route decides).
#[inline(always)]
pub fn ret<B: PacketBuf>(b: &mut Burst<B>, i: usize, table: &Table) -> bool {
    let c = &b.cx[i];
    if !matches!(c.origin, Origin::Port(_)) {
        return false;
    }
    let Some((key, flags)) = flow::inbound(b.pkts[i].as_ref(), &c.ip) else {
        return false;
    };
    let Some(f) = table.lookup(&key) else {
        return false;
    };
    let snap = b.snap;
    let t = f.tunnel;
    let usable = f.epoch == snap.arr_epoch
        && snap.tunnels.get(t as usize).is_some_and(|s| s.arr)
        && snap.health.get(t as usize) != Some(&Health::Down);
    if !usable {
        return false;
    }
    // A return packet confirms the flow: it is established, no longer evictable.
    table.touch(&f, flags | CONFIRMED, 0);
    b.counters.arr_returned += 1;
    if let Some(tc) = b.counters.tunnels.get_mut(snap.tunnel_slot(t)) {
        tc.arr_returned += 1;
    }
    let c = &mut b.cx[i];
    c.nexthop = Some(NextHop::Tunnel(t));
    c.note.arr = true;
    c.note.egress_tunnel = Some(t);
    true
}

/// Learns packet `i`'s flow when it came from a tunnel with ARR and leaves through a port.
#[inline(always)]
pub fn learn<B: PacketBuf>(b: &mut Burst<B>, i: usize, table: &Table) {
    let c = &b.cx[i];
    let Origin::Tunnel(t) = c.origin else { return };
    let to_port = matches!(c.nexthop, Some(NextHop::Gateway(_) | NextHop::Connected(_)));
    if !to_port || !c.pending() || c.error.is_some() {
        return;
    }
    let snap = b.snap;
    if !snap.tunnels.get(t as usize).is_some_and(|s| s.arr) {
        return;
    }
    let Some(fl) = flow::outbound(b.pkts[i].as_ref(), &c.ip) else {
        return;
    };
    let epoch = snap.arr_epoch;
    let learned = match fl.action {
        // A new SYN on a known flow reopens it: the closing mark goes.
        Action::Create => table.learn(&fl.key, epoch, t, fl.flags, CLOSING),
        Action::Refresh => match table.lookup(&fl.key) {
            Some(f) if f.tunnel == t && f.epoch == epoch => {
                table.touch(&f, fl.flags, 0);
                Learned::Refreshed
            }
            _ => return,
        },
    };
    let counters = &mut *b.counters;
    let tc = counters.tunnels.get_mut(snap.tunnel_slot(t));
    match learned {
        Learned::New | Learned::Moved => {
            counters.arr_learned += 1;
            if let Some(tc) = tc {
                tc.arr_learned += 1;
            }
        }
        Learned::Refreshed => counters.arr_refreshed += 1,
        Learned::Refused => {
            counters.arr_refused += 1;
            if let Some(tc) = tc {
                tc.arr_refused += 1;
            }
        }
    }
}
