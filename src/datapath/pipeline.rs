//! The per-burst driver and the first stages: L2 checks, ARP, IPv4 validation, and the
//! dispatch on the FIB result (forward, decapsulate, or local). `ingress`, `forward` and
//! `icmp_error` hold the other stages.
use super::counters::Counters;
use super::packet::PacketBuf;
use super::verdict::{DropReason, Verdict};
use crate::lpm::View;
use crate::route::{Snapshot, NH_ANYCAST, NH_LOCAL};
use crate::wire::{arp, ethernet, ipv4, MacAddr};

/// Addresses whose MAC a burst found unresolved, for the worker to ARP for.
const ARP_WANTS: usize = 8;

/// What happened to the last packet, beyond its verdict: for per-tunnel counters and trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Note {
    /// The tunnel the packet was decapsulated from.
    pub ingress_tunnel: Option<u16>,
    /// The tunnel the packet was (or was to be) encapsulated into.
    pub egress_tunnel: Option<u16>,
    /// The FIB next hop chosen, and the destination it was looked up for (the inner one
    /// after decapsulation, the sender for an ICMP error).
    pub nexthop: Option<u32>,
    pub route_dst: Option<u32>,
    /// The MSS option after clamping, on TCP SYNs through a tunnel that carry one.
    pub mss: Option<u16>,
    pub clamped: bool,
    /// (type, code) of the ICMP error the packet was turned into, and the drop it answers.
    pub icmp: Option<(u8, u8)>,
    pub answered: Option<DropReason>,
    /// An ARP request for our address, answered in place.
    pub arp_reply: bool,
    /// The firewall rule that decided, when one did (None: no rule matched, or not filtered).
    pub rule: Option<u16>,
}

/// Where a packet entered, which decides the source of ICMP errors about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    Port(u16),
    Tunnel(u16),
    /// Made by anygate itself: no TTL decrement, never an ICMP error about it.
    Local,
}

/// The IPv4 header fields the stages use, read once after validation. Small, so it stays
/// in registers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ip4 {
    pub src: u32,
    pub dst: u32,
    pub total: usize,
    pub hlen: usize,
    pub ttl: u8,
    pub proto: u8,
    pub tos: u8,
    pub df: bool,
    /// Fragment offset is not zero: not the first fragment.
    pub frag_off: u16,
}

/// Validates the IPv4 packet after the Ethernet header of `frame` (`ipv4::Packet` is the
/// one validator), then reads the fields from the fixed 20-byte header.
#[inline(always)]
pub(super) fn parse_ipv4(frame: &[u8]) -> Result<Ip4, DropReason> {
    let body = frame.get(ethernet::HEADER_LEN..).unwrap_or(&[]);
    let hlen = match ipv4::Packet::new_checked(body) {
        Ok(ip) => ip.header_len(),
        Err(e) => {
            return Err(match e {
                ipv4::Error::Truncated => DropReason::Ipv4Truncated,
                ipv4::Error::BadVersion => DropReason::Ipv4BadVersion,
                ipv4::Error::BadIhl => DropReason::Ipv4BadIhl,
                ipv4::Error::BadLength => DropReason::Ipv4BadLength,
                ipv4::Error::BadChecksum => DropReason::Ipv4BadChecksum,
            })
        }
    };
    let Some(h) = body.first_chunk::<{ ipv4::MIN_HEADER_LEN }>() else {
        return Err(DropReason::Ipv4Truncated);
    };
    let src = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
    let dst = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
    if ipv4::is_martian_src(src) {
        return Err(DropReason::Ipv4MartianSrc);
    }
    if ipv4::is_martian_dst(dst) {
        return Err(DropReason::Ipv4MartianDst);
    }
    Ok(Ip4 {
        src,
        dst,
        total: u16::from_be_bytes([h[2], h[3]]) as usize,
        hlen,
        ttl: h[8],
        proto: h[9],
        tos: h[1],
        df: h[6] & 0x40 != 0,
        frag_off: u16::from_be_bytes([h[6], h[7]]) & 0x1fff,
    })
}

/// Per-worker pipeline state: counters, pending ARP, the ICMP rate limiter, the outer IP ID.
/// Nothing in here allocates after `new`.
pub struct Pipeline {
    pub counters: Counters,
    /// (port, address) pairs to ARP for.
    arp_wants: [(u16, u32); ARP_WANTS],
    n_arp_wants: usize,
    pub(super) note: Note,
    /// TSC (or nanoseconds, in trace) and its rate, set per burst.
    pub(super) now: u64,
    pub(super) hz: u64,
    pub(super) icmp_tokens: u64,
    pub(super) icmp_refilled: Option<u64>,
    pub(super) ip_id: u16,
    /// Scratch bitset for the firewall classifier, sized for the largest rule set.
    pub(super) fw_scratch: Vec<u64>,
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
            arp_wants: [(0, 0); ARP_WANTS],
            n_arp_wants: 0,
            note: Note::default(),
            now: 0,
            hz: 0,
            icmp_tokens: 0,
            icmp_refilled: None,
            ip_id: 0,
            fw_scratch: vec![
                0;
                crate::config::MAX_RULES * crate::firewall::compile::MAX_TERMS / 64
            ],
        }
    }

    /// The current time in ticks of `hz` per second, for the ICMP rate limit. Once per burst.
    pub fn set_clock(&mut self, now: u64, hz: u64) {
        self.now = now;
        self.hz = hz;
    }

    /// What happened to the last packet processed.
    pub fn note(&self) -> &Note {
        &self.note
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
        // A first pass over the burst starts each packet's table load, so the lookups below
        // find their tbl24 entries in cache instead of waiting on memory one packet at a time.
        for pkt in pkts.iter() {
            let (outer, inner) = lookup_addresses(pkt.as_ref());
            fib.prefetch(outer);
            if let Some(inner) = inner {
                fib.prefetch(inner);
            }
        }
        for (pkt, v) in pkts.iter_mut().zip(verdicts.iter_mut()) {
            self.note = Note::default();
            self.counters.rx_packets[p] += 1;
            self.counters.rx_bytes[p] += pkt.as_ref().len() as u64;
            *v = self.one(snap, fib, in_port, pkt);
            if let Verdict::Drop(r) = *v {
                self.count_drop(snap, r);
            }
        }
    }

    /// Counts a drop, and against the tunnel the packet came from or was going to.
    pub(super) fn count_drop(&mut self, snap: &Snapshot, r: DropReason) {
        self.counters.drop(r);
        if let Some(t) = self.note.ingress_tunnel.or(self.note.egress_tunnel) {
            if let Some(tc) = self.counters.tunnels.get_mut(snap.tunnel_slot(t)) {
                tc.drops[r as usize] += 1;
            }
        }
    }

    /// (port, address) pairs that needed ARP since the last call; the caller sends the
    /// requests.
    pub fn take_arp_wants(&mut self) -> impl Iterator<Item = (u16, u32)> + '_ {
        let n = std::mem::take(&mut self.n_arp_wants);
        self.arp_wants[..n].iter().copied()
    }

    pub(super) fn want_arp(&mut self, port: u16, ip: u32) {
        let w = (port, ip);
        if self.n_arp_wants < ARP_WANTS && !self.arp_wants[..self.n_arp_wants].contains(&w) {
            self.arp_wants[self.n_arp_wants] = w;
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
        let Some(eth) = ethernet::Frame::new_checked(pkt.as_ref()) else {
            return Verdict::Drop(DropReason::EthTruncated);
        };
        let dst = eth.dst();
        match eth.ethertype() {
            ethernet::ETHERTYPE_IPV4 if dst == port.mac => self.ipv4(snap, fib, in_port, pkt),
            ethernet::ETHERTYPE_ARP if dst == port.mac || dst.is_broadcast() => {
                self.arp(snap, in_port, pkt.as_mut())
            }
            ethernet::ETHERTYPE_IPV4 | ethernet::ETHERTYPE_ARP => {
                Verdict::Drop(DropReason::L2NotForUs)
            }
            _ => Verdict::Drop(DropReason::UnsupportedEthertype),
        }
    }

    /// Answers requests for the port's address, learns gateway MACs from any ARP they send,
    /// and the MACs of hosts on the port's subnet from ARP addressed to us (requests for our
    /// address, replies to ours).
    fn arp(&mut self, snap: &Snapshot, in_port: u16, frame: &mut [u8]) -> Verdict {
        let Some(port) = snap.ports.get(in_port as usize) else {
            return Verdict::Drop(DropReason::ArpMalformed);
        };
        let (hdr, body) = frame.split_at_mut(ethernet::HEADER_LEN);
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
                self.counters.arp_learned += 1;
            }
        }
        if a.operation() != arp::OP_REQUEST || a.target_ip() != port.addr {
            return Verdict::Drop(DropReason::ArpConsumed);
        }
        a.make_reply(port.mac, port.addr);
        rewrite_l2(hdr, sender, port.mac);
        self.counters.arp_replies += 1;
        self.note.arp_reply = true;
        Verdict::Forward(in_port)
    }

    /// Validates an IPv4 packet and sends it on by what its destination is: a route, one of
    /// our anycast tunnel endpoints, or ourselves.
    fn ipv4<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        fib: View,
        in_port: u16,
        pkt: &mut B,
    ) -> Verdict {
        let ip = match parse_ipv4(pkt.as_ref()) {
            Ok(ip) => ip,
            Err(r) => return Verdict::Drop(r),
        };
        match fib.lookup(ip.dst) {
            None => Verdict::Drop(DropReason::NoRoute),
            Some(NH_LOCAL) => Verdict::Drop(DropReason::LocalDestination),
            Some(NH_ANYCAST) => self.decapsulated(snap, fib, pkt, &ip),
            Some(nh) => self.route(snap, fib, pkt, &ip, nh, Origin::Port(in_port)),
        }
    }
}

/// The destination addresses a packet will be looked up for, read without validation (a guess
/// for prefetching only): the IPv4 destination and, for GRE without options or IP-in-IP,
/// the inner one. Zero where the frame is too short.
#[inline(always)]
fn lookup_addresses(frame: &[u8]) -> (u32, Option<u32>) {
    let be32 = |at: usize| {
        frame
            .get(at..at + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    const IP: usize = ethernet::HEADER_LEN;
    let Some(&[ver_ihl, .., proto]) = frame.get(IP..IP + 10) else {
        return (0, None);
    };
    let inner = IP + (ver_ihl & 0x0f) as usize * 4;
    let inner = match proto {
        ipv4::PROTO_GRE if frame.get(inner..inner + 2) == Some(&[0, 0]) => Some(inner + 4),
        ipv4::PROTO_IPIP => Some(inner),
        _ => None,
    };
    (be32(IP + 16), inner.map(|i| be32(i + 16)))
}

/// Sets both MACs of an Ethernet header.
#[inline(always)]
pub(super) fn rewrite_l2(hdr: &mut [u8], dst: MacAddr, src: MacAddr) {
    if let Some(mut eth) = ethernet::Frame::new_checked(hdr) {
        eth.set_dst(dst);
        eth.set_src(src);
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "tunnel_tests.rs"]
mod tunnel_tests;
