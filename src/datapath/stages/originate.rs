//! Packets anygate makes itself and sends into a tunnel (health probes from the inject ring):
//! an inner IPv4 packet behind an Ethernet placeholder, with its tunnel chosen by the sender.
//! They join the graph where a route would have put them, as local packets: no TTL
//! decrement, no firewall, never an ICMP error about them; then encapsulation as any packet
//! routed into that tunnel.
use super::ipv4_validate;
use crate::datapath::context::{Live, Origin};
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::DropReason;
use crate::packet::PacketBuf;
use crate::route::NextHop;

/// `tunnels[i]` is the tunnel (index in the snapshot) packet `i` goes into.
pub fn run<B: PacketBuf>(b: &mut Burst<B>, live: &mut Live, tunnels: &[u16]) {
    for i in live.iter() {
        b.counters.originated += 1;
        b.counters.probes_injected += 1;
        let t = tunnels.get(i).copied().unwrap_or(u16::MAX);
        if b.snap.tunnels.get(t as usize).is_none() {
            b.drop(i, DropReason::TunnelUnknown);
            continue;
        }
        match ipv4_validate::parse(b.pkts[i].as_ref()) {
            Ok(ip) => {
                let c = &mut b.cx[i];
                c.ip = ip;
                c.origin = Origin::Local;
                c.nexthop = Some(NextHop::Tunnel(t));
                c.note.egress_tunnel = Some(t);
            }
            Err(r) => b.drop(i, r),
        }
    }
    b.compact(live);
}
