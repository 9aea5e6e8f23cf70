//! The per-packet context the stages share over a burst, and the list of packets still in it.
use super::verdict::{DropReason, Verdict};
use super::BURST;
use crate::health::probe::Recognised;
use crate::route::NextHop;
use crate::wire::{icmp, ipv4, MacAddr};

/// What happened to a packet, beyond its verdict: for per-tunnel counters and trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note {
    /// The tunnel the packet was decapsulated from.
    pub ingress_tunnel: Option<u16>,
    /// The tunnel the packet was (or was to be) encapsulated into.
    pub egress_tunnel: Option<u16>,
    /// The next hop chosen from the route set, and the destination it was looked up for (the
    /// inner one after decapsulation, the sender for an ICMP error).
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
    /// A health probe's answer: ours (consumed) or another node's (dropped).
    pub probe: Option<Recognised>,
    /// Sent into its tunnel (`egress_tunnel`) by a learned ARR flow, not by a route. A bool,
    /// not the tunnel: the context stays as small as it was (callgrind).
    pub arr: bool,
}

impl Note {
    /// Nothing noted yet. A constant, so a reset is a copy of it (a few wide stores) rather
    /// than a store per field (16 per packet, callgrind).
    pub const NONE: Note = Note {
        ingress_tunnel: None,
        egress_tunnel: None,
        nexthop: None,
        route_dst: None,
        mss: None,
        clamped: false,
        icmp: None,
        answered: None,
        arp_reply: false,
        rule: None,
        probe: None,
        arr: false,
    };
}

impl Default for Note {
    fn default() -> Self {
        Note::NONE
    }
}

/// Where a packet entered, which decides the source of ICMP errors about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Port(u16),
    Tunnel(u16),
    /// Made by anygate itself: no TTL decrement, no firewall, never an ICMP error about it.
    Local,
}

/// Where a forwarded packet leaves: its new Ethernet addresses and the port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L2Rewrite {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub port: u16,
}

impl L2Rewrite {
    /// The first 12 bytes of the Ethernet header: destination, then source.
    #[inline(always)]
    pub fn macs(&self) -> Macs {
        let (d, s) = (self.dst.0, self.src.0);
        Macs {
            head: u64::from_ne_bytes([d[0], d[1], d[2], d[3], d[4], d[5], s[0], s[1]]),
            tail: u32::from_ne_bytes([s[2], s[3], s[4], s[5]]),
        }
    }
}

/// The first 12 bytes of an Ethernet header (destination, then source) as an 8-byte and a
/// 4-byte word: two stores (as a byte array they went through the stack as four; callgrind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Macs {
    head: u64,
    tail: u32,
}

impl Macs {
    /// No addresses (a placeholder never written).
    pub const ZERO: Macs = Macs { head: 0, tail: 0 };
    #[inline(always)]
    pub fn write(&self, h: &mut [u8; 12]) {
        let (a, b) = h.split_at_mut(8);
        a.copy_from_slice(&self.head.to_ne_bytes());
        b.copy_from_slice(&self.tail.to_ne_bytes());
    }
}

/// An ICMP error a packet is to be answered with, and the drop it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    pub reason: DropReason,
    pub kind: u8,
    pub code: u8,
    /// The next-hop MTU (frag-needed), else 0.
    pub mtu: u16,
}

impl IcmpError {
    pub fn time_exceeded() -> Self {
        IcmpError {
            reason: DropReason::TtlExceeded,
            kind: icmp::TYPE_TIME_EXCEEDED,
            code: icmp::CODE_TTL_EXCEEDED,
            mtu: 0,
        }
    }
    pub fn frag_needed(reason: DropReason, mtu: u16) -> Self {
        IcmpError {
            reason,
            kind: icmp::TYPE_DEST_UNREACHABLE,
            code: icmp::CODE_FRAG_NEEDED,
            mtu,
        }
    }
}

/// An ICMP error on its way out: the error, and the tunnels of the packet it answers (its drop
/// is counted against those, not the reply's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub error: IcmpError,
    pub ingress_tunnel: Option<u16>,
    pub egress_tunnel: Option<u16>,
}

/// A packet's state between stages. Under 128 bytes of fields, aligned to 64 so that it is 128:
/// a context is two cache lines and indexing one is a shift.
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
pub struct Ctx {
    /// The header being routed: the outer one, the inner one after decapsulation, the error's.
    pub ip: ipv4::Repr,
    pub origin: Origin,
    /// The FIB value for `ip.dst`: a route-set id (or SET_LOCAL / SET_ANYCAST; a packet
    /// dropped for want of a route may hold the miss).
    pub set: u32,
    pub nexthop: Option<NextHop>,
    /// An ICMP error the hop checks asked for, and one being routed back.
    pub error: Option<IcmpError>,
    pub answer: Option<Answer>,
    /// Set once the packet leaves the burst (forwarded or dropped).
    pub verdict: Option<Verdict>,
    pub note: Note,
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx {
            ip: ipv4::Repr::default(),
            origin: Origin::Local,
            set: 0,
            nexthop: None,
            error: None,
            answer: None,
            verdict: None,
            note: Note::default(),
        }
    }
}

impl Ctx {
    /// Clears what a stage may read before another wrote it; the rest is written first.
    #[inline(always)]
    pub fn reset(&mut self) {
        self.nexthop = None;
        self.error = None;
        self.answer = None;
        self.verdict = None;
        self.note = Note::NONE;
    }
    #[inline(always)]
    pub fn drop(&mut self, r: DropReason) {
        self.verdict = Some(Verdict::Drop(r));
    }
    #[inline(always)]
    pub fn forward(&mut self, port: u16) {
        self.verdict = Some(Verdict::Forward(port));
    }
    #[inline(always)]
    pub fn pending(&self) -> bool {
        self.verdict.is_none()
    }
}

/// Indices of the packets still in the burst, in arrival order: a stage drops a packet by
/// setting its verdict, and `retain_pending` takes it out. Fixed size, no allocation.
#[derive(Clone, Copy)]
pub struct Live {
    idx: [u8; BURST],
    len: usize,
}

impl Live {
    /// Every packet of a burst of `n`.
    #[inline(always)]
    pub fn first(n: usize) -> Live {
        const ALL: [u8; BURST] = {
            let mut a = [0u8; BURST];
            let mut i = 0;
            while i < BURST {
                a[i] = i as u8;
                i += 1;
            }
            a
        };
        Live {
            idx: ALL,
            len: n.min(BURST),
        }
    }
    pub fn empty() -> Live {
        Live {
            idx: [0; BURST],
            len: 0,
        }
    }
    /// No packet left.
    #[inline(always)]
    pub fn clear(&mut self) {
        self.len = 0;
    }
    /// Adds packet `i`, which comes after every packet in the list (`is_all` counts on it).
    #[inline(always)]
    pub fn push(&mut self, i: usize) {
        debug_assert!(self.len == 0 || usize::from(self.idx[self.len - 1]) < i);
        if let Some(s) = self.idx.get_mut(self.len) {
            *s = i as u8;
            self.len += 1;
        }
    }
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the list is every packet of a burst of `n`, in order, so that a pass may walk
    /// positions instead: lists are in arrival order (`first`, then `retain_pending` or
    /// `push`), so one `n` long holds each of 0..n once, in order.
    #[inline(always)]
    pub fn is_all(&self, n: usize) -> bool {
        self.len == n
    }
    /// The indices, in arrival order. Reduced below BURST (they are), so that indexing the
    /// burst's context array needs no bounds check.
    #[inline(always)]
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.idx[..self.len].iter().map(|&i| usize::from(i) % BURST)
    }
    #[inline(always)]
    pub fn retain_pending(&mut self, cx: &[Ctx]) {
        let mut n = 0;
        for k in 0..self.len {
            let i = self.idx[k];
            if cx.get(i as usize).is_some_and(Ctx::pending) {
                self.idx[n] = i;
                n += 1;
            }
        }
        self.len = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stages index contexts by a shift and read one in two cache lines (callgrind, issue
    /// 14): a field that grows the context past 128 bytes fails here, not silently in speed.
    #[test]
    fn macs_are_destination_then_source() {
        let l2 = L2Rewrite {
            dst: MacAddr([1, 2, 3, 4, 5, 6]),
            src: MacAddr([7, 8, 9, 10, 11, 12]),
            port: 3,
        };
        let mut h = [0; 12];
        l2.macs().write(&mut h);
        assert_eq!(h, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }

    #[test]
    fn a_context_is_128_bytes() {
        assert_eq!(std::mem::size_of::<Ctx>(), 128);
        assert_eq!(std::mem::size_of::<Option<NextHop>>(), 20);
    }
}
