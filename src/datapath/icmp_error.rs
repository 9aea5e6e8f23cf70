//! ICMP errors (time exceeded, fragmentation needed), built in place: the offending packet's
//! own buffer is trimmed to its header plus 8 bytes, new IPv4 and ICMP headers go into the
//! headroom, and the result is routed back to the sender like any packet, through a tunnel
//! if that is where the sender lives. Rate-limited per worker with a token bucket.
use super::packet::PacketBuf;
use super::pipeline::{Ip4, Origin, Pipeline};
use super::verdict::{DropReason, Verdict};
use crate::lpm::{Prefix, View};
use crate::route::{Snapshot, NH_ANYCAST, NH_LOCAL};
use crate::wire::{ethernet, icmp, ipv4};

/// Bytes in front of the quote: new IPv4 header and ICMP header.
const PREFIX: usize = ipv4::MIN_HEADER_LEN + icmp::HEADER_LEN;

impl Pipeline {
    /// Drops the packet for `reason` and, when RFC 1812 and the rate limit allow, turns it
    /// into an ICMP error to its source. The drop is counted either way.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn icmp_error<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        fib: View,
        pkt: &mut B,
        ip: &Ip4,
        origin: Origin,
        reason: DropReason,
        ty: u8,
        code: u8,
        mtu: u16,
    ) -> Verdict {
        let src = match origin {
            Origin::Port(p) => snap.ports.get(p as usize).map(|p| p.addr),
            Origin::Tunnel(t) => snap.tunnels.get(t as usize).map(|t| t.iface_local),
            Origin::Local => None,
        };
        let Some(src) = src else {
            return Verdict::Drop(reason);
        };
        // Nor to the directed broadcast of the subnet the packet arrived on (RFC 1812 4.3.2.7).
        if let Origin::Port(p) = origin {
            let bcast = |p: &crate::route::PortState| p.addr | !Prefix::mask(p.prefix_len);
            if snap
                .ports
                .get(p as usize)
                .is_some_and(|p| ip.src == bcast(p))
            {
                return Verdict::Drop(reason);
            }
        }
        let allowed = pkt
            .as_ref()
            .get(ethernet::HEADER_LEN..)
            .and_then(|b| ipv4::Packet::new_checked(b).ok())
            .is_some_and(|p| icmp::error_allowed(&p));
        let nh = match fib.lookup(ip.src) {
            Some(NH_LOCAL) | Some(NH_ANYCAST) | None => None,
            Some(nh) => Some(nh),
        };
        let (true, Some(nh)) = (allowed, nh) else {
            return Verdict::Drop(reason);
        };
        if !self.icmp_token(snap.icmp_errors_per_second) {
            self.counters.icmp_rate_limited += 1;
            return Verdict::Drop(reason);
        }
        let quote = (ip.hlen + icmp::QUOTE_PAYLOAD).min(ip.total);
        let extra = pkt
            .as_ref()
            .len()
            .saturating_sub(ethernet::HEADER_LEN + quote);
        if !pkt.trim_back(extra) {
            return Verdict::Drop(reason);
        }
        let Some(buf) = pkt.prepend(PREFIX) else {
            return Verdict::Drop(reason);
        };
        buf[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
        let total = buf.len() - ethernet::HEADER_LEN;
        if icmp::write_error(&mut buf[ethernet::HEADER_LEN..], src, ip.src, ty, code, mtu).is_none()
        {
            return Verdict::Drop(reason);
        }
        // The offending packet is dropped; what leaves is a new packet of our own, routed
        // without the offending packet's tunnels. The drop is counted once, against those
        // tunnels, whether or not the reply gets out.
        let offending = (self.note.ingress_tunnel, self.note.egress_tunnel);
        self.note.ingress_tunnel = None;
        self.note.egress_tunnel = None;
        let reply = Ip4 {
            hlen: ipv4::MIN_HEADER_LEN,
            total,
            src,
            dst: ip.src,
            ttl: 64,
            proto: ipv4::PROTO_ICMP,
            tos: 0xc0,
            df: false,
            frag_off: 0,
        };
        match self.route(snap, fib, pkt, &reply, nh, Origin::Local) {
            Verdict::Forward(p) => {
                let reply_tunnels = (self.note.ingress_tunnel, self.note.egress_tunnel);
                (self.note.ingress_tunnel, self.note.egress_tunnel) = offending;
                self.count_drop(snap, reason);
                (self.note.ingress_tunnel, self.note.egress_tunnel) = reply_tunnels;
                self.counters.icmp_errors += 1;
                self.counters.originated += 1;
                self.note.icmp = Some((ty, code));
                self.note.answered = Some(reason);
                Verdict::Forward(p)
            }
            // The reply did not happen: the caller counts the original drop, as usual.
            Verdict::Drop(_) => {
                (self.note.ingress_tunnel, self.note.egress_tunnel) = offending;
                Verdict::Drop(reason)
            }
        }
    }

    /// Takes one token from the per-worker bucket: `rate` per second, bursts of rate/10.
    fn icmp_token(&mut self, rate: u32) -> bool {
        let rate = rate as u64;
        if rate == 0 {
            return false;
        }
        let cap = (rate / 10).max(1);
        match self.icmp_refilled {
            None => {
                self.icmp_tokens = cap;
                self.icmp_refilled = Some(self.now);
            }
            Some(last) if self.hz > 0 && self.now > last => {
                let add = ((self.now - last) as u128 * rate as u128 / self.hz as u128) as u64;
                if add > 0 {
                    self.icmp_tokens = (self.icmp_tokens + add).min(cap);
                    self.icmp_refilled = Some(self.now);
                }
            }
            Some(_) => {}
        }
        if self.icmp_tokens == 0 {
            return false;
        }
        self.icmp_tokens -= 1;
        true
    }
}
