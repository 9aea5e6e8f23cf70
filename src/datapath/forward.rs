//! Forwarding toward a next hop: TTL, MTU, MSS clamping through tunnels, then either the L2
//! rewrite toward a gateway or encapsulation into a tunnel (outer headers written into the
//! mbuf headroom; the payload is never copied). The link layer is resolved before anything
//! is modified, so a packet dropped for want of a MAC leaves untouched.
use super::packet::PacketBuf;
use super::pipeline::{rewrite_l2, Ip4, Origin, Pipeline};
use super::verdict::{DropReason, Verdict};
use crate::config::TunnelType;
use crate::lpm::View;
use crate::route::{ecmp, Gateway, NextHop, NhMac, Snapshot};
use crate::wire::{ethernet, gre, icmp, ipv4, tcp, MacAddr};

/// Where a packet leaves: destination and source MAC, and the port.
type L2 = (MacAddr, MacAddr, u16);

impl Pipeline {
    pub(super) fn route<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        fib: View,
        pkt: &mut B,
        ip: &Ip4,
        set: u32,
        origin: Origin,
    ) -> Verdict {
        let Some(group) = snap.group(set) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let hash = if group.is_ecmp() {
            flow_hash(pkt.as_ref(), ip)
        } else {
            0
        };
        let Some(nh_id) = group.pick(hash) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let Some(&nh) = snap.nexthops.get(nh_id as usize) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        self.note.nexthop = Some(nh_id);
        self.note.route_dst = Some(ip.dst);
        let local = origin == Origin::Local;
        // The firewall: after decap for traffic from a tunnel, before encap toward one. A
        // packet crossing both ways is judged twice, but the second time may reuse the first.
        if !local {
            let mut first = None;
            if let Origin::Tunnel(t) = origin {
                let (blocked, judged) = self.filter(snap, pkt, ip, t, "ingress", None);
                if blocked {
                    return Verdict::Drop(DropReason::FirewallBlock);
                }
                first = judged;
            }
            if let NextHop::Tunnel(t) = nh {
                self.note.egress_tunnel = Some(t);
                if self.filter(snap, pkt, ip, t, "egress", first).0 {
                    return Verdict::Drop(DropReason::FirewallBlock);
                }
            }
        }
        if !local && ip.ttl <= 1 {
            return self.icmp_error(
                snap,
                fib,
                pkt,
                ip,
                origin,
                DropReason::TtlExceeded,
                icmp::TYPE_TIME_EXCEEDED,
                icmp::CODE_TTL_EXCEEDED,
                0,
            );
        }
        let (mtu, too_big) = match nh {
            NextHop::Tunnel(t) => {
                self.note.egress_tunnel = Some(t);
                let mtu = snap.tunnels.get(t as usize).map_or(0, |t| t.mtu);
                (mtu, DropReason::TunnelMtuExceeded)
            }
            NextHop::Gateway(Gateway { port, .. }) | NextHop::Connected(port) => {
                let mtu = snap.ports.get(port as usize).map_or(0, |p| p.mtu);
                (mtu, DropReason::MtuExceeded)
            }
        };
        if ip.total > mtu as usize {
            if ip.df && !local {
                return self.icmp_error(
                    snap,
                    fib,
                    pkt,
                    ip,
                    origin,
                    too_big,
                    icmp::TYPE_DEST_UNREACHABLE,
                    icmp::CODE_FRAG_NEEDED,
                    mtu,
                );
            }
            return Verdict::Drop(too_big);
        }
        let l2 = match nh {
            NextHop::Gateway(g) => self.gateway_mac(snap, &g).map(|(d, s)| (d, s, g.port)),
            NextHop::Connected(p) => self.host_mac(snap, p, ip.dst).map(|(d, s)| (d, s, p)),
            NextHop::Tunnel(t) => self.underlay(snap, ip, t),
        };
        let l2 = match l2 {
            Ok(l2) => l2,
            Err(r) => return Verdict::Drop(r),
        };
        if ip.proto == ipv4::PROTO_TCP && ip.frag_off == 0 {
            self.clamp(snap, pkt, ip, origin, nh);
        }
        if !local {
            let hdr = pkt
                .as_mut()
                .get_mut(ethernet::HEADER_LEN..)
                .unwrap_or(&mut []);
            ipv4::decrement_ttl_in(hdr);
        }
        match nh {
            NextHop::Gateway(_) | NextHop::Connected(_) => {
                rewrite_l2(pkt.as_mut(), l2.0, l2.1);
                Verdict::Forward(l2.2)
            }
            NextHop::Tunnel(t) => self.encap(snap, pkt, ip, t, l2),
        }
    }

    /// Lowers the MSS of a SYN or SYN-ACK that enters or leaves through a tunnel.
    fn clamp<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        ip: &Ip4,
        origin: Origin,
        nh: NextHop,
    ) {
        let limit = |t: u16| snap.tunnels.get(t as usize).map_or(0, |t| t.mss_clamp);
        let ingress = if let Origin::Tunnel(t) = origin {
            limit(t)
        } else {
            0
        };
        let egress = if let NextHop::Tunnel(t) = nh {
            limit(t)
        } else {
            0
        };
        let max = match (ingress, egress) {
            (0, x) | (x, 0) => x,
            (a, b) => a.min(b),
        };
        if max == 0 {
            return;
        }
        let start = ethernet::HEADER_LEN + ip.hlen;
        let end = ethernet::HEADER_LEN + ip.total;
        let Some(seg) = pkt.as_mut().get_mut(start..end) else {
            return;
        };
        let r = tcp::clamp_mss(seg, max);
        self.note.mss = r.value();
        if let tcp::Mss::Clamped(..) = r {
            self.note.clamped = true;
            self.counters.mss_clamped += 1;
        }
    }

    /// (destination, source) MACs toward a gateway, or why there are none yet. Inlined: on
    /// its own it costs a call and ~18 instructions per packet (callgrind, plain path).
    #[inline(always)]
    fn gateway_mac(
        &mut self,
        snap: &Snapshot,
        g: &Gateway,
    ) -> Result<(MacAddr, MacAddr), DropReason> {
        let Some(port) = snap.ports.get(g.port as usize) else {
            return Err(DropReason::NoRoute);
        };
        match g.mac {
            NhMac::Static(m) => Ok((m, port.mac)),
            NhMac::Arp(slot) => match snap.arp.get(slot) {
                Some(m) => Ok((m, port.mac)),
                None => {
                    self.want_arp(g.port, g.ip);
                    Err(DropReason::NeighborUnresolved)
                }
            },
        }
    }

    /// (destination, source) MACs toward host `ip` on port `p`'s connected subnet. Out of
    /// line: the gateway paths are the common ones.
    #[inline(never)]
    fn host_mac(
        &mut self,
        snap: &Snapshot,
        p: u16,
        ip: u32,
    ) -> Result<(MacAddr, MacAddr), DropReason> {
        let Some(port) = snap.ports.get(p as usize) else {
            return Err(DropReason::NoRoute);
        };
        match snap.arp.host(p, ip) {
            Some(m) => Ok((m, port.mac)),
            None => {
                self.want_arp(p, ip);
                Err(DropReason::NeighborUnresolved)
            }
        }
    }

    /// The link layer toward tunnel `t`'s customer endpoint, checking the outer size.
    /// Inlined: out of line it costs ~45 instructions per encapsulated packet (callgrind).
    #[inline(always)]
    fn underlay(&mut self, snap: &Snapshot, ip: &Ip4, t: u16) -> Result<L2, DropReason> {
        let Some(tun) = snap.tunnels.get(t as usize) else {
            return Err(DropReason::NoRoute);
        };
        // The underlay may be ECMP too: one path per tunnel, by its endpoints.
        let under = snap.group(tun.underlay).and_then(|g| {
            let hash = if g.is_ecmp() {
                ecmp::flow_hash(tun.local, tun.remote, 0)
            } else {
                0
            };
            g.pick(hash)
        });
        let (dst, src, port) = match under.and_then(|u| snap.nexthops.get(u as usize)) {
            Some(NextHop::Gateway(g)) => {
                let (d, s) = self.gateway_mac(snap, g)?;
                (d, s, g.port)
            }
            Some(&NextHop::Connected(p)) => {
                let (d, s) = self.host_mac(snap, p, tun.remote)?;
                (d, s, p)
            }
            Some(NextHop::Tunnel(_)) | None => return Err(DropReason::NoRoute),
        };
        let outer_total = ip.total + tun.overhead as usize;
        if snap
            .ports
            .get(port as usize)
            .is_none_or(|p| outer_total > p.mtu as usize)
        {
            return Err(DropReason::MtuExceeded);
        }
        Ok((dst, src, port))
    }

    /// Wraps the packet for tunnel `t`: outer IPv4 from our anycast endpoint to the customer's
    /// (TTL from the tunnel, DSCP/ECN and DF copied from the inner header, ID 0 when DF is set
    /// and a per-worker counter otherwise), plus a 4-byte GRE header for GRE tunnels.
    fn encap<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        ip: &Ip4,
        t: u16,
        l2: L2,
    ) -> Verdict {
        let Some(tun) = snap.tunnels.get(t as usize) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let padding = pkt
            .as_ref()
            .len()
            .saturating_sub(ethernet::HEADER_LEN + ip.total);
        if padding > 0 {
            pkt.trim_back(padding);
        }
        let ident = if ip.df {
            0
        } else {
            self.ip_id = self.ip_id.wrapping_add(1);
            self.ip_id
        };
        let Some(buf) = pkt.prepend(tun.overhead as usize) else {
            return Verdict::Drop(DropReason::NoHeadroom);
        };
        let frame_len = buf.len();
        let outer = ipv4::NewHeader {
            tos: ip.tos,
            total_len: (ip.total + tun.overhead as usize) as u16,
            ident,
            dont_frag: ip.df,
            ttl: tun.ttl,
            protocol: tun.proto,
            src: tun.local,
            dst: tun.remote,
        };
        let (eth, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
        ipv4::write_header(rest, &outer);
        if tun.kind == TunnelType::Gre {
            let g = rest.get_mut(ipv4::MIN_HEADER_LEN..).unwrap_or(&mut []);
            gre::write_basic(g, gre::PROTO_IPV4);
        }
        if let Some(mut e) = ethernet::Frame::new_checked(eth) {
            e.set_dst(l2.0);
            e.set_src(l2.1);
            e.set_ethertype(ethernet::ETHERTYPE_IPV4);
        }
        if let Some(tc) = self.counters.tunnels.get_mut(snap.tunnel_slot(t)) {
            tc.tx_packets += 1;
            tc.tx_bytes += frame_len as u64;
        }
        Verdict::Forward(l2.2)
    }
}

/// The ECMP flow hash of a packet: addresses, plus ports for TCP and UDP unless it is a
/// non-first fragment. After decapsulation `ip` is the inner header, so tunnels never polarise.
#[inline]
fn flow_hash(frame: &[u8], ip: &Ip4) -> u32 {
    let l4 = ethernet::HEADER_LEN + ip.hlen;
    let ports = match (ip.proto, ip.frag_off) {
        (ipv4::PROTO_TCP | ipv4::PROTO_UDP, 0) => frame
            .get(l4..l4 + 4)
            .map_or(0, |p| u32::from_be_bytes([p[0], p[1], p[2], p[3]])),
        _ => 0,
    };
    ecmp::flow_hash(ip.src, ip.dst, ports)
}
