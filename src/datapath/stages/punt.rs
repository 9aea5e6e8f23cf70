//! Punt: a packet for one of our own addresses that the data plane does not answer itself
//! (BGP, ping, anything else) goes to the kernel through the exception port, rate-limited per
//! worker; without `[punt]` it is dropped as `local_destination`, as before. What the kernel
//! sends back through that port is ours: it is routed as a local packet (no TTL decrement,
//! no firewall, never an ICMP error about it).
//!
//! Rules (README, "Punt path"): a packet from a tunnel reaches here only after the tunnel's
//! source check (tunnel ingress) and is punted whichever tunnel it came from; the firewall,
//! which judges traffic crossing tunnels, does not see punted packets (filter them in the
//! kernel's input chain); no TTL rule (the packet is addressed to us). Never punted: a
//! network or broadcast address of a port subnet (no directed broadcasts), and anything that
//! came from the kernel itself (no loop).
use crate::datapath::context::{Live, Origin};
use crate::datapath::pipeline::Burst;
use crate::datapath::punt::PUNT_SRC_MAC;
use crate::datapath::verdict::DropReason;
use crate::lpm::Prefix;
use crate::packet::PacketBuf;
use crate::wire::ethernet;

/// Packet `i` is for one of our addresses: it leaves toward the kernel, or dropped.
#[cold]
#[inline(never)]
pub fn one<B: PacketBuf>(b: &mut Burst<B>, i: usize) {
    let snap = b.snap;
    let Some(p) = snap.punt else {
        return b.drop(i, DropReason::LocalDestination);
    };
    let dst = b.cx[i].ip.dst;
    let edge = snap.ports.iter().any(|port| {
        let host = !Prefix::mask(port.prefix_len);
        port.prefix_len != 0
            && port.prefix_len <= 30
            && (port.addr & !host) == (dst & !host)
            && (dst & host == 0 || dst & host == host)
    });
    if edge || b.in_port == p.port {
        return b.drop(i, DropReason::LocalDestination);
    }
    if !b.st.punt.take(b.st.now, b.st.hz, p.rate, p.burst) {
        return b.drop(i, DropReason::PuntRateLimited);
    }
    let Some(port) = snap.ports.get(p.port as usize) else {
        return b.drop(i, DropReason::LocalDestination);
    };
    let Some(mut eth) = ethernet::Frame::new_checked(b.pkts[i].as_mut()) else {
        return b.drop(i, DropReason::EthTruncated);
    };
    eth.set_dst(port.mac);
    eth.set_src(PUNT_SRC_MAC);
    b.counters.punted += 1;
    b.forward(i, p.port);
}

/// A burst from the exception port: the kernel's packets are ours, routed as local ones.
/// One test per burst on the other ports.
#[inline(always)]
pub fn from_kernel<B>(b: &mut Burst<B>, live: &Live) {
    if b.snap.punt.is_none_or(|p| p.port != b.in_port) {
        return;
    }
    for i in live.iter() {
        b.cx[i].origin = Origin::Local;
    }
}
