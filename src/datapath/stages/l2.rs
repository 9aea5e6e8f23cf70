//! Ethernet and ARP: counts what arrived, keeps IPv4 addressed to the port's MAC, answers ARP
//! requests for the port's address in place and learns neighbours from ARP.
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::{DropReason, Verdict};
use crate::packet::PacketBuf;
use crate::route::PortState;
use crate::wire::{arp, ethernet, MacAddr};

/// Counts what arrived, once for the whole burst (every packet of it is still in).
#[inline(always)]
pub fn count_rx<B: PacketBuf>(b: &mut Burst<B>) {
    let p = b.in_port as usize % b.counters.rx_packets.len();
    let bytes: u64 = b.pkts.iter().map(|p| p.as_ref().len() as u64).sum();
    b.counters.rx_packets[p] += b.pkts.len() as u64;
    b.counters.rx_bytes[p] += bytes;
}

/// The port the burst arrived on, looked up once per burst.
#[inline(always)]
pub fn port<'a, B>(b: &Burst<'a, B>) -> Option<&'a PortState> {
    b.snap.ports.get(b.in_port as usize)
}

/// Packet `i`: true for IPv4 to the port's MAC (it goes on); else it leaves with its verdict.
#[inline(always)]
pub fn one<B: PacketBuf>(b: &mut Burst<B>, i: usize, port: Option<&PortState>) -> bool {
    match frame(b, i, port) {
        None => true,
        Some(v) => {
            b.leave(i, v);
            false
        }
    }
}

/// None for IPv4 to the port's MAC (it goes on); else the packet's verdict.
#[inline(always)]
fn frame<B: PacketBuf>(b: &mut Burst<B>, i: usize, port: Option<&PortState>) -> Option<Verdict> {
    if !b.pkts[i].is_contiguous() {
        return Some(Verdict::Drop(DropReason::MultiSegment));
    }
    let Some(port) = port else {
        return Some(Verdict::Drop(DropReason::L2NotForUs));
    };
    let Some(eth) = ethernet::Frame::new_checked(b.pkts[i].as_ref()) else {
        return Some(Verdict::Drop(DropReason::EthTruncated));
    };
    let dst = eth.dst();
    match eth.ethertype() {
        ethernet::ETHERTYPE_IPV4 if dst == port.mac => None,
        ethernet::ETHERTYPE_ARP if dst == port.mac || dst.is_broadcast() => Some(arp(b, i)),
        ethernet::ETHERTYPE_IPV4 | ethernet::ETHERTYPE_ARP => {
            Some(Verdict::Drop(DropReason::L2NotForUs))
        }
        _ => Some(Verdict::Drop(DropReason::UnsupportedEthertype)),
    }
}

/// Answers requests for the port's address, learns gateway MACs from any ARP they send,
/// and the MACs of hosts on the port's subnet from ARP addressed to us (requests for our
/// address, replies to ours).
fn arp<B: PacketBuf>(b: &mut Burst<B>, i: usize) -> Verdict {
    let (snap, in_port) = (b.snap, b.in_port);
    let Some(port) = snap.ports.get(in_port as usize) else {
        return Verdict::Drop(DropReason::ArpMalformed);
    };
    let (hdr, body) = b.pkts[i].as_mut().split_at_mut(ethernet::HEADER_LEN);
    let Some(mut a) = arp::Packet::new_checked(body) else {
        return Verdict::Drop(DropReason::ArpMalformed);
    };
    let sender = a.sender_mac();
    if !sender.is_multicast() && sender != MacAddr::ZERO {
        let ip = a.sender_ip();
        let learned = match snap.arp.slot(in_port, ip) {
            Some(slot) => snap.arp.set(slot, sender),
            None => a.target_ip() == port.addr && snap.arp.set_host(in_port, ip, sender),
        };
        if learned {
            b.counters.arp_learned += 1;
        }
    }
    if a.operation() != arp::OP_REQUEST || a.target_ip() != port.addr {
        return Verdict::Drop(DropReason::ArpConsumed);
    }
    a.make_reply(port.mac, port.addr);
    if let Some(mut eth) = ethernet::Frame::new_checked(hdr) {
        eth.set_dst(sender);
        eth.set_src(port.mac);
    }
    b.counters.arp_replies += 1;
    b.cx[i].note.arp_reply = true;
    Verdict::Forward(in_port)
}
