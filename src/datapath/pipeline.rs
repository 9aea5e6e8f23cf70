//! Plain IPv4 forwarding over a burst: L2 checks, ARP, IPv4 validation, DIR-24-8 lookup,
//! TTL decrement with an incremental checksum, and the Ethernet rewrite toward the next hop.
use super::counters::Counters;
use super::packet::PacketBuf;
use super::verdict::{DropReason, Verdict};
use crate::lpm::View;
use crate::route::{NhMac, Snapshot, NH_LOCAL};
use crate::wire::{arp, ethernet, ipv4};

/// Next hops whose MAC a burst found unresolved, for the worker to ARP for.
const ARP_WANTS: usize = 8;

/// Per-worker pipeline state: counters and the next hops to resolve. Nothing allocates.
pub struct Pipeline {
    pub counters: Counters,
    arp_wants: [u32; ARP_WANTS],
    n_arp_wants: usize,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Pipeline {
    pub fn new() -> Self {
        Pipeline {
            counters: Counters::default(),
            arp_wants: [0; ARP_WANTS],
            n_arp_wants: 0,
        }
    }

    /// Decides every packet of a burst received on `in_port`, rewriting forwarded ones in
    /// place. `verdicts[i]` is the decision for `pkts[i]`.
    pub fn process<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        in_port: u16,
        pkts: &mut [B],
        verdicts: &mut [Verdict],
    ) {
        let p = in_port as usize % self.counters.rx_packets.len();
        let fib = snap.fib.view();
        for (pkt, v) in pkts.iter_mut().zip(verdicts.iter_mut()) {
            self.counters.rx_packets[p] += 1;
            self.counters.rx_bytes[p] += pkt.as_ref().len() as u64;
            *v = self.one(snap, fib, in_port, pkt);
            if let Verdict::Drop(r) = *v {
                self.counters.drop(r);
            }
        }
    }

    /// Next hops that needed ARP since the last call; the caller sends the requests.
    pub fn take_arp_wants(&mut self) -> impl Iterator<Item = u32> + '_ {
        let n = std::mem::take(&mut self.n_arp_wants);
        self.arp_wants[..n].iter().copied()
    }

    fn want_arp(&mut self, nh: u32) {
        if self.n_arp_wants < ARP_WANTS && !self.arp_wants[..self.n_arp_wants].contains(&nh) {
            self.arp_wants[self.n_arp_wants] = nh;
            self.n_arp_wants += 1;
        }
    }

    #[inline]
    fn one<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        fib: View,
        in_port: u16,
        pkt: &mut B,
    ) -> Verdict {
        if !pkt.is_contiguous() {
            return Verdict::Drop(DropReason::MultiSegment);
        }
        let Some(port) = snap.ports.get(in_port as usize) else {
            return Verdict::Drop(DropReason::L2NotForUs);
        };
        let data = pkt.as_mut();
        let Some(eth) = ethernet::Frame::new_checked(&mut *data) else {
            return Verdict::Drop(DropReason::EthTruncated);
        };
        let dst = eth.dst();
        match eth.ethertype() {
            ethernet::ETHERTYPE_IPV4 if dst == port.mac => self.ipv4(snap, fib, data),
            ethernet::ETHERTYPE_ARP if dst == port.mac || dst.is_broadcast() => {
                self.arp(snap, in_port, data)
            }
            ethernet::ETHERTYPE_IPV4 | ethernet::ETHERTYPE_ARP => {
                Verdict::Drop(DropReason::L2NotForUs)
            }
            _ => Verdict::Drop(DropReason::UnsupportedEthertype),
        }
    }

    /// Answers requests for the port's address, learns gateway MACs from any ARP they send.
    fn arp(&mut self, snap: &Snapshot, in_port: u16, frame: &mut [u8]) -> Verdict {
        let Some(port) = snap.ports.get(in_port as usize) else {
            return Verdict::Drop(DropReason::ArpMalformed);
        };
        let (hdr, body) = frame.split_at_mut(ethernet::HEADER_LEN);
        let Some(mut a) = arp::Packet::new_checked(body) else {
            return Verdict::Drop(DropReason::ArpMalformed);
        };
        let sender = a.sender_mac();
        if !sender.is_multicast() && sender != crate::wire::MacAddr::ZERO {
            if let Some(slot) = snap.arp.slot(in_port, a.sender_ip()) {
                if snap.arp.set(slot, sender) {
                    self.counters.arp_learned += 1;
                }
            }
        }
        if a.operation() != arp::OP_REQUEST || a.target_ip() != port.addr {
            return Verdict::Drop(DropReason::ArpConsumed);
        }
        a.make_reply(port.mac, port.addr);
        rewrite_l2(hdr, sender, port.mac);
        self.counters.arp_replies += 1;
        Verdict::Forward(in_port)
    }

    fn ipv4(&mut self, snap: &Snapshot, fib: View, frame: &mut [u8]) -> Verdict {
        let (hdr, body) = frame.split_at_mut(ethernet::HEADER_LEN);
        let mut ip = match ipv4::Packet::new_checked(body) {
            Ok(ip) => ip,
            Err(e) => {
                return Verdict::Drop(match e {
                    ipv4::Error::Truncated => DropReason::Ipv4Truncated,
                    ipv4::Error::BadVersion => DropReason::Ipv4BadVersion,
                    ipv4::Error::BadIhl => DropReason::Ipv4BadIhl,
                    ipv4::Error::BadLength => DropReason::Ipv4BadLength,
                    ipv4::Error::BadChecksum => DropReason::Ipv4BadChecksum,
                })
            }
        };
        if ipv4::is_martian_src(ip.src()) {
            return Verdict::Drop(DropReason::Ipv4MartianSrc);
        }
        let dst = ip.dst();
        if ipv4::is_martian_dst(dst) {
            return Verdict::Drop(DropReason::Ipv4MartianDst);
        }
        let nh_id = match fib.lookup(dst) {
            None => return Verdict::Drop(DropReason::NoRoute),
            Some(NH_LOCAL) => return Verdict::Drop(DropReason::LocalDestination),
            Some(id) => id,
        };
        if ip.ttl() <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let Some(nh) = snap.nexthops.get(nh_id as usize) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let Some(out) = snap.ports.get(nh.port as usize) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        if ip.total_len() > out.mtu as usize {
            return Verdict::Drop(DropReason::MtuExceeded);
        }
        let mac = match nh.mac {
            NhMac::Static(m) => m,
            NhMac::Arp(slot) => match snap.arp.get(slot) {
                Some(m) => m,
                None => {
                    self.want_arp(nh_id);
                    return Verdict::Drop(DropReason::NeighborUnresolved);
                }
            },
        };
        ip.decrement_ttl();
        rewrite_l2(hdr, mac, out.mac);
        Verdict::Forward(nh.port)
    }
}

/// Sets both MACs of an Ethernet header.
#[inline(always)]
fn rewrite_l2(hdr: &mut [u8], dst: crate::wire::MacAddr, src: crate::wire::MacAddr) {
    if let Some(mut eth) = ethernet::Frame::new_checked(hdr) {
        eth.set_dst(dst);
        eth.set_src(src);
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
