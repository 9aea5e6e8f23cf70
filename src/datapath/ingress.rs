//! Tunnel ingress: a packet for one of our anycast endpoints is matched to its tunnel by
//! outer (source, destination, protocol), decapsulated (GRE per RFC 2784/2890, or IP-in-IP),
//! and its inner packet is validated, source-checked and routed like any other.
use super::packet::PacketBuf;
use super::pipeline::{parse_ipv4, Ip4, Origin, Pipeline};
use super::verdict::{DropReason, Verdict};
use crate::lpm::View;
use crate::route::{Snapshot, NH_ANYCAST, NH_LOCAL};
use crate::wire::{ethernet, gre, ipv4};

impl Pipeline {
    pub(super) fn decapsulated<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        fib: View,
        pkt: &mut B,
        outer: &Ip4,
    ) -> Verdict {
        let t = match self.decap(snap, pkt, outer) {
            Ok(t) => t,
            Err(r) => return Verdict::Drop(r),
        };
        let inner = match parse_ipv4(pkt.as_ref()) {
            Ok(ip) => ip,
            Err(r) => return Verdict::Drop(r),
        };
        let Some(tun) = snap.tunnels.get(t as usize) else {
            return Verdict::Drop(DropReason::TunnelUnknown);
        };
        if outer.proto == ipv4::PROTO_GRE && inner.src == tun.local && inner.dst == tun.remote {
            return Verdict::Drop(DropReason::GreKeepalive);
        }
        if !snap.source_allowed(t, inner.src, fib) {
            return Verdict::Drop(DropReason::TunnelSpoofedSource);
        }
        match fib.lookup(inner.dst) {
            None => Verdict::Drop(DropReason::NoRoute),
            Some(NH_LOCAL) | Some(NH_ANYCAST) => Verdict::Drop(DropReason::LocalDestination),
            Some(nh) => self.route(snap, fib, pkt, &inner, nh, Origin::Tunnel(t)),
        }
    }

    /// Identifies the tunnel and strips the outer headers, leaving the Ethernet header in
    /// front of the inner packet. Only the 14-byte Ethernet header moves; the payload stays.
    fn decap<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        outer: &Ip4,
    ) -> Result<u16, DropReason> {
        if outer.proto != ipv4::PROTO_GRE && outer.proto != ipv4::PROTO_IPIP {
            return Err(DropReason::AnycastNotTunnel);
        }
        let Some(t) = snap.tunnel_by_endpoints(outer.src, outer.dst, outer.proto) else {
            return Err(if snap.has_tunnel_endpoints(outer.src, outer.dst) {
                DropReason::TunnelWrongProtocol
            } else {
                DropReason::TunnelUnknown
            });
        };
        self.note.ingress_tunnel = Some(t);
        let frame_len = pkt.as_ref().len();
        if let Some(tc) = self.counters.tunnels.get_mut(snap.tunnel_slot(t)) {
            tc.rx_packets += 1;
            tc.rx_bytes += frame_len as u64;
        }
        let mut inner_at = ethernet::HEADER_LEN + outer.hlen;
        if outer.proto == ipv4::PROTO_GRE {
            let end = ethernet::HEADER_LEN + outer.total;
            let g = gre::parse(pkt.as_ref().get(inner_at..end).unwrap_or(&[])).map_err(
                |e| match e {
                    gre::Error::Truncated => DropReason::GreMalformed,
                    gre::Error::BadVersion => DropReason::GreBadVersion,
                    gre::Error::UnsupportedFlags => DropReason::GreUnsupportedFlags,
                    gre::Error::BadChecksum => DropReason::GreBadChecksum,
                },
            )?;
            match g.protocol {
                gre::PROTO_IPV4 => {}
                gre::PROTO_IPV6 => return Err(DropReason::GreInnerIpv6),
                _ => return Err(DropReason::GreUnsupportedProtocol),
            }
            inner_at += g.len;
        }
        let shift = inner_at - ethernet::HEADER_LEN;
        pkt.as_mut().copy_within(..ethernet::HEADER_LEN, shift);
        if !pkt.trim_front(shift) {
            return Err(DropReason::GreMalformed);
        }
        // Anything after the outer packet (Ethernet padding) is not part of the inner one.
        let inner_frame = ethernet::HEADER_LEN + outer.total - shift;
        let extra = pkt.as_ref().len().saturating_sub(inner_frame);
        if extra > 0 {
            pkt.trim_back(extra);
        }
        Ok(t)
    }
}
