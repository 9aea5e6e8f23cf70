//! Ethernet and ARP: counts what arrived, keeps IPv4 addressed to the port's MAC, answers ARP
//! requests for the port's address in place and learns neighbours from ARP.
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::{DropReason, Verdict};
use crate::packet::PacketBuf;
use crate::route::PortState;
use crate::wire::{arp, ethernet, MacAddr};

/// Counts what arrived, once for the whole burst (every packet of it is still in): `bytes`
/// summed by the pass that read each frame anyway.
#[inline(always)]
pub fn count_rx<B>(b: &mut Burst<B>, bytes: u64) {
    let p = b.in_port as usize % b.counters.rx_packets.len();
    b.counters.rx_packets[p] += b.pkts.len() as u64;
    b.counters.rx_bytes[p] += bytes;
}

/// The port a burst arrived on, read once per burst: its state, and its MAC as `dst_word`
/// gives a frame's destination (one compare per packet, not a load of the port's six bytes
/// and a compare of each part; callgrind, issue 14).
#[derive(Clone, Copy)]
pub struct Port<'a> {
    state: Option<&'a PortState>,
    mac: u64,
}

/// The port the burst arrived on, looked up once per burst.
#[inline(always)]
pub fn port<'a, B>(b: &Burst<'a, B>) -> Port<'a> {
    let state = b.snap.ports.get(b.in_port as usize);
    let mac = state.map_or(u64::MAX, |p| dst_word(&p.mac.0));
    Port { state, mac }
}

/// Six destination bytes as one word (native order: compared, never shown).
#[inline(always)]
fn dst_word(m: &[u8; 6]) -> u64 {
    u64::from(u32::from_ne_bytes([m[0], m[1], m[2], m[3]]))
        | u64::from(u16::from_ne_bytes([m[4], m[5]])) << 32
}

/// What the Ethernet header says to do with a frame.
pub enum Kind {
    /// IPv4 to the port's MAC: it goes on, to `ipv4_validate`.
    Ipv4,
    /// ARP to the port's MAC or broadcast: answered or consumed here (`arp`).
    Arp,
    Drop(DropReason),
}

/// The Ethernet checks on a frame received on `port`; `contiguous` is the buffer's own.
#[inline(always)]
pub fn kind(frame: &[u8], contiguous: bool, port: Port) -> Kind {
    if !contiguous {
        return Kind::Drop(DropReason::MultiSegment);
    }
    if port.state.is_none() {
        return Kind::Drop(DropReason::L2NotForUs);
    }
    let Some(h) = frame.first_chunk::<{ ethernet::HEADER_LEN }>() else {
        return Kind::Drop(DropReason::EthTruncated);
    };
    let to_us = dst_word(h.first_chunk::<6>().unwrap_or(&[0; 6])) == port.mac;
    // The ethertype as it lies, against the constants in wire order (no swap per packet).
    let ethertype = u16::from_ne_bytes([h[12], h[13]]);
    if ethertype == ethernet::ETHERTYPE_IPV4.to_be() {
        if to_us {
            Kind::Ipv4
        } else {
            Kind::Drop(DropReason::L2NotForUs)
        }
    } else if ethertype == ethernet::ETHERTYPE_ARP.to_be() {
        if to_us || h[..6] == MacAddr::BROADCAST.0 {
            Kind::Arp
        } else {
            Kind::Drop(DropReason::L2NotForUs)
        }
    } else {
        Kind::Drop(DropReason::UnsupportedEthertype)
    }
}

/// Answers requests for the port's address, learns gateway MACs from any ARP they send,
/// and the MACs of hosts on the port's subnet from ARP addressed to us (requests for our
/// address, replies to ours).
pub fn arp<B: PacketBuf>(b: &mut Burst<B>, i: usize) -> Verdict {
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
