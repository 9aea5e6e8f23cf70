//! Tunnel ingress: a packet for one of our anycast endpoints is matched to its tunnel by
//! outer (source, destination, protocol), decapsulated (GRE per RFC 2784/2890, or IP-in-IP),
//! and its inner packet is validated and source-checked; its lookup follows in bulk. A health
//! probe's answer is taken out first (`probe_answer`), inside the tunnel or not.
use super::{ipv4_validate, probe_answer};
use crate::datapath::context::{Live, Origin};
use crate::datapath::counters::Counters;
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::DropReason;
use crate::lpm::View;
use crate::packet::PacketBuf;
use crate::route::{Snapshot, TunnelState, SET_ANYCAST};
use crate::wire::{ethernet, gre, ipv4};

/// Decapsulates the packets addressed to an anycast endpoint; returns those that go on to
/// the inner lookup (the rest of `live` is untouched). Out of line: one call per burst, and
/// the loop's registers are its own, not a share of the whole pipeline's (inlined, changes
/// here moved spills in the plain path's loops; callgrind, issue 14).
#[inline(never)]
pub fn run<B: PacketBuf>(b: &mut Burst<B>, live: &Live) -> Live {
    let mut inner = Live::empty();
    let mut last: Last = Last::NONE;
    for i in live.iter() {
        if b.cx[i].set != SET_ANYCAST {
            continue;
        }
        match ingress(b, i, &mut last) {
            Ok(true) => inner.push(i),
            Ok(false) => {}
            Err(DropReason::AnycastNotTunnel) => not_tunnelled(b, i),
            Err(r) => b.drop(i, r),
        }
    }
    last.flush(b.counters);
    inner
}

/// The tunnel the previous packet of this pass was matched to, by its outer (source,
/// destination, protocol), with its state and its counters' slot: a burst mostly comes from
/// one customer, and a compare is cheaper than the binary search over every tunnel's
/// endpoints and the lookups behind them (callgrind, issue 14). Only matches are kept, so a
/// miss is looked up (and its reason found) packet by packet as before; the snapshot does
/// not change within a burst.
#[derive(Clone, Copy)]
struct Last<'s> {
    key: Key,
    tunnel: Option<Matched<'s>>,
    /// A route set found to hold the tunnel (RPF): an inner source routed there passes on a
    /// compare, not a walk over the set's candidates. Only passes are kept; `NO_SET` (never
    /// a set) before the first: a plain word, where an `Option` took a flag and a test more.
    rpf_set: u32,
    /// The tunnel's received packets and bytes not yet added to its counters: added when
    /// the tunnel changes and at the end of the pass, not per packet.
    rx: (u64, u64),
}

/// Above every route set (a FIB value is below 2^31): `Last::rpf_set` before a pass.
const NO_SET: u32 = u32::MAX;

/// An outer header's (source, destination) as its 8 bytes lie in the frame, read as one
/// word, and its protocol: the tunnel's key in one load and two compares (as three fields
/// of the context it was three loads and compares, and the addresses a register pair held
/// across the strip; callgrind, issue 14).
type Key = (u64, u8);

/// Where the outer header's source and destination lie in a frame.
const ADDRS: usize = ethernet::HEADER_LEN + 12;

/// The (source, destination) word of `Key` from the addresses as numbers.
fn addrs_word(src: u32, dst: u32) -> u64 {
    let (s, d) = (src.to_be_bytes(), dst.to_be_bytes());
    u64::from_ne_bytes([s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3]])
}

/// `addrs_word` undone: (source, destination).
fn addrs_of(word: u64) -> (u32, u32) {
    let b = word.to_ne_bytes();
    (
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
    )
}

/// A tunnel as ingress uses it.
#[derive(Clone, Copy)]
struct Matched<'s> {
    t: u16,
    tun: &'s TunnelState,
}

impl<'s> Last<'s> {
    const NONE: Last<'static> = Last {
        key: (0, 0),
        tunnel: None,
        rpf_set: NO_SET,
        rx: (0, 0),
    };

    /// The tunnel of outer `key`.
    #[inline(always)]
    fn tunnel(
        &mut self,
        snap: &'s Snapshot,
        counters: &mut Counters,
        key: Key,
    ) -> Result<Matched<'s>, DropReason> {
        match self.tunnel {
            Some(m) if self.key == key => Ok(m),
            _ => {
                let (src, dst) = addrs_of(key.0);
                let m = tunnel_of(snap, src, dst, key.1)?;
                self.flush(counters);
                *self = Last {
                    key,
                    tunnel: Some(m),
                    rpf_set: NO_SET,
                    rx: (0, 0),
                };
                Ok(m)
            }
        }
    }

    /// Adds the packets counted since the last flush to the tunnel's counters.
    #[inline(always)]
    fn flush(&mut self, counters: &mut Counters) {
        if let Some(m) = self.tunnel {
            if let Some(tc) = counters.tunnels.get_mut(m.tun.counter_slot) {
                tc.rx_packets += self.rx.0;
                tc.rx_bytes += self.rx.1;
            }
        }
        self.rx = (0, 0);
    }

    /// `Snapshot::source_allowed_in` for the matched tunnel, remembering the RPF set that
    /// passed.
    #[inline(always)]
    fn source_allowed(&mut self, snap: &Snapshot, fib: View, m: Matched, src: u32) -> bool {
        if !m.tun.rpf {
            return snap.source_allowed_in(m.t, m.tun, src, fib);
        }
        let set = fib.lookup(src);
        if set == Some(self.rpf_set) {
            return true;
        }
        let ok = snap.set_has_tunnel(set, m.t);
        if let (true, Some(set)) = (ok, set) {
            self.rpf_set = set;
        }
        ok
    }
}

/// A packet for an anycast address that is not tunnelled: a unidirectional health check's
/// answer (it comes back over the underlay), or a drop. Off the decapsulation path.
#[cold]
#[inline(never)]
fn not_tunnelled<B: PacketBuf>(b: &mut Burst<B>, i: usize) {
    let probe = match b.cx[i].ip.protocol {
        ipv4::PROTO_ICMP => probe_answer::check(b, i, None),
        _ => None,
    };
    match probe {
        Some(Ok(())) => {}
        Some(Err(r)) => b.drop(i, r),
        None => b.drop(i, DropReason::AnycastNotTunnel),
    }
}

/// Ok(true): decapsulated, on to the inner lookup; Ok(false): consumed as a probe answer.
#[inline(always)]
fn ingress<'s, B: PacketBuf>(
    b: &mut Burst<'s, B>,
    i: usize,
    last: &mut Last<'s>,
) -> Result<bool, DropReason> {
    let m = decap(b, i, last)?;
    let inner = &b.cx[i].ip;
    let (src, dst) = (inner.src, inner.dst);
    // Before the keepalive and source checks and the firewall: a probe answer is ours
    // whatever its addresses, and must never count as customer traffic.
    if inner.protocol == ipv4::PROTO_ICMP {
        if let Some(r) = probe_answer::check(b, i, Some(m.t)) {
            return r.map(|()| false);
        }
    }
    // The tunnel's protocol is the outer header's (it is part of the key that found it).
    if m.tun.proto == ipv4::PROTO_GRE && src == m.tun.local && dst == m.tun.remote {
        return Err(DropReason::GreKeepalive);
    }
    if !last.source_allowed(b.snap, b.fib, m, src) {
        return Err(DropReason::TunnelSpoofedSource);
    }
    Ok(true)
}

/// Identifies the tunnel, strips the outer headers (leaving the Ethernet header in front of
/// the inner packet: only its 14 bytes move, the payload stays) and reads the inner header
/// into the packet's context. The buffer is taken once for all three: a second look cost
/// ~17 instructions a packet (callgrind, issue 14). The packet's origin is its tunnel from
/// here on, dropped or not: no one reads a dropped packet's.
#[inline(always)]
fn decap<'s, B: PacketBuf>(
    b: &mut Burst<'s, B>,
    i: usize,
    last: &mut Last<'s>,
) -> Result<Matched<'s>, DropReason> {
    let proto = b.cx[i].ip.protocol;
    if proto != ipv4::PROTO_GRE && proto != ipv4::PROTO_IPIP {
        return Err(DropReason::AnycastNotTunnel);
    }
    let pkt = &mut b.pkts[i];
    let frame = pkt.as_mut();
    let len = frame.len();
    // The outer header was validated, so it lies within the frame.
    let addrs = match frame.get(ADDRS..).and_then(|a| a.first_chunk()) {
        Some(a) => u64::from_ne_bytes(*a),
        None => addrs_word(b.cx[i].ip.src, b.cx[i].ip.dst),
    };
    let m = last.tunnel(b.snap, b.counters, (addrs, proto))?;
    let c = &mut b.cx[i];
    c.note.ingress_tunnel = Some(m.t);
    c.origin = Origin::Tunnel(m.t);
    last.rx.0 += 1;
    last.rx.1 += len as u64;
    // Read here, not first: held across the tunnel's match it was spilled (callgrind). The
    // outer header was validated: it and its payload lie within the frame.
    let outer_end = ethernet::HEADER_LEN + usize::from(c.ip.total_len);
    // The inner header goes into the context field by field as it is read (the outer header
    // is done with): held in registers across the strip, it was spilled and reloaded (~25
    // instructions a packet), and returned whole and then stored, ~12 (callgrind).
    match first_look(frame, proto, outer_end, &mut c.ip) {
        Some(shift) => trim(pkt, shift, len, outer_end)?,
        None => {
            // Still the outer header's length: the first look writes the context only past
            // its test of a 20-byte outer header, and then writes 20.
            let header_end = ethernet::HEADER_LEN + usize::from(c.ip.header_len);
            strip_general(pkt, proto, header_end, outer_end, &mut c.ip)?
        }
    }
    Ok(m)
}

/// The buffer's side of a strip: `shift` bytes off the front (the Ethernet header was
/// moved up to the inner packet) and anything after the outer packet (Ethernet padding,
/// not part of the inner one) off the back. `len`: the frame's length before.
#[inline(always)]
fn trim<B: PacketBuf>(
    pkt: &mut B,
    shift: usize,
    len: usize,
    outer_end: usize,
) -> Result<(), DropReason> {
    if !pkt.trim_front(shift) {
        return Err(DropReason::GreMalformed);
    }
    let extra = len.saturating_sub(outer_end);
    if extra > 0 {
        pkt.trim_back(extra);
    }
    Ok(())
}

/// The strip of any frame `first_look` did not take, then the inner header's verdict, which
/// waits until the strip is done: every packet gets it, dropped or not (but for a GRE
/// header's reason: then nothing moved).
#[inline(never)]
fn strip_general<B: PacketBuf>(
    pkt: &mut B,
    proto: u8,
    header_end: usize,
    outer_end: usize,
    ip: &mut ipv4::Repr,
) -> Result<(), DropReason> {
    let frame = pkt.as_mut();
    let len = frame.len();
    let (shift, parsed) = general(frame, proto, header_end, outer_end, ip)?;
    trim(pkt, shift, len, outer_end)?;
    parsed
}

/// What `general` does to a frame: the bytes to trim at the front (the Ethernet header was
/// moved up to the inner packet), and the inner header's verdict (its fields are in the
/// context either way).
type Stripped = (usize, Result<(), DropReason>);

/// Frame bytes the common shapes lie in: Ethernet, a 20-byte outer header, GRE's 4 bytes
/// and a 20-byte inner header.
const LOOK: usize =
    ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + gre::BASE_LEN + ipv4::MIN_HEADER_LEN;

/// The strip of the common shapes (what anygate and most routers send): a 20-byte outer
/// header, then GRE without flags carrying IPv4 or nothing (IP-in-IP), then a valid 20-byte
/// inner header with no martian address within the outer packet, all read at fixed offsets
/// after one bounds test (the general way's bounds, offsets and version test were ~15
/// instructions a packet; callgrind, issue 14). Returns the bytes to trim at the front.
/// None for any other frame, the frame untouched, which `general` takes, so every drop
/// reason and its order stay: an inner header found bad is parsed again there, for its
/// reason, rather than every packet carrying one (~8 instructions). `frame`'s outer
/// header was validated; `proto` is GRE or IP-in-IP; `outer_end` is within the frame.
#[inline(always)]
fn first_look(frame: &mut [u8], proto: u8, outer_end: usize, ip: &mut ipv4::Repr) -> Option<usize> {
    const AT: usize = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN;
    const BASIC: [u8; gre::BASE_LEN] = [0, 0, 0x08, 0x00];
    const _: () = assert!(gre::PROTO_IPV4 == 0x0800);
    let h = frame.first_chunk_mut::<LOOK>()?;
    // A 20-byte outer header (its version was checked): one byte compare, where the
    // context's length was a load, an add and a compare (callgrind).
    if h[ethernet::HEADER_LEN] != 0x45 {
        return None;
    }
    if proto != ipv4::PROTO_GRE {
        return strip_at::<{ ipv4::MIN_HEADER_LEN }>(h, outer_end, ip);
    }
    // One word compare, not four byte compares.
    let word = h.get(AT..).and_then(|g| g.first_chunk()).copied();
    if word.map(u32::from_ne_bytes) != Some(u32::from_ne_bytes(BASIC)) {
        return None;
    }
    strip_at::<{ ipv4::MIN_HEADER_LEN + gre::BASE_LEN }>(h, outer_end, ip)
}

/// `first_look`'s strip of an inner packet `SHIFT` bytes after the Ethernet header: the
/// offsets are constants, so no bounds are tested again.
#[inline(always)]
fn strip_at<const SHIFT: usize>(
    h: &mut [u8; LOOK],
    outer_end: usize,
    ip: &mut ipv4::Repr,
) -> Option<usize> {
    let at = ethernet::HEADER_LEN + SHIFT;
    let inner = h.get(at..)?.first_chunk::<{ ipv4::MIN_HEADER_LEN }>()?;
    if inner[0] != 0x45 || outer_end < at + ipv4::MIN_HEADER_LEN {
        return None;
    }
    // `ipv4_validate::header20_into`'s checks, as one test.
    if !ipv4::Repr::parse20_ok_into(inner, outer_end - at, ip) || ipv4::either_martian(inner) {
        return None;
    }
    h.copy_within(..ethernet::HEADER_LEN, SHIFT);
    Some(SHIFT)
}

/// The strip of any frame `first_look` did not take (outer options, GRE flags or another
/// protocol, an inner header with options, bad or martian, truncation): the inner packet
/// found after the GRE header, the Ethernet header moved up to it, then the inner header
/// read (the move wrote only in front of it). Err: the GRE header's reason, nothing moved.
#[inline(always)]
fn general(
    frame: &mut [u8],
    proto: u8,
    header_end: usize,
    outer_end: usize,
    ip: &mut ipv4::Repr,
) -> Result<Stripped, DropReason> {
    let inner_at = if proto == ipv4::PROTO_GRE {
        gre_any(frame, header_end, outer_end)?
    } else {
        header_end
    };
    let shift = inner_at - ethernet::HEADER_LEN;
    frame.copy_within(..ethernet::HEADER_LEN, shift);
    // Never out of the frame: `inner_at <= outer_end <= len`.
    let parsed = match frame.get(inner_at..outer_end) {
        Some(inner) => ipv4_validate::header_into(inner, ip),
        None => Err(DropReason::Ipv4Truncated),
    };
    Ok((shift, parsed))
}

/// Where the inner packet starts after the GRE header at `at` (the outer IPv4 header's
/// end, the outer packet's at `outer_end`), or why not there.
fn gre_any(frame: &[u8], at: usize, outer_end: usize) -> Result<usize, DropReason> {
    let outer_pkt = frame.get(..outer_end).unwrap_or(&[]);
    let g = gre::parse(outer_pkt.get(at..).unwrap_or(&[]))?;
    match g.protocol {
        gre::PROTO_IPV4 => Ok(at + g.len),
        gre::PROTO_IPV6 => Err(DropReason::GreInnerIpv6),
        _ => Err(DropReason::GreUnsupportedProtocol),
    }
}

/// The tunnel outer (source, destination, protocol) belongs to, or why none.
#[inline(never)]
fn tunnel_of(snap: &Snapshot, src: u32, dst: u32, proto: u8) -> Result<Matched<'_>, DropReason> {
    let Some(t) = snap.tunnel_by_endpoints(src, dst, proto) else {
        return Err(if snap.has_tunnel_endpoints(src, dst) {
            DropReason::TunnelWrongProtocol
        } else {
            DropReason::TunnelUnknown
        });
    };
    let tun = snap
        .tunnels
        .get(usize::from(t))
        .ok_or(DropReason::TunnelUnknown)?;
    Ok(Matched { t, tun })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An Ethernet frame with a 20-byte outer IPv4 header (only its length field matters
    /// here), then `gre` and `inner`.
    fn frame(gre: &[u8], inner: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; ethernet::HEADER_LEN];
        f.extend_from_slice(&[0x45; ipv4::MIN_HEADER_LEN]);
        f.extend_from_slice(gre);
        f.extend_from_slice(inner);
        f
    }

    #[test]
    fn gre_headers_and_their_reasons() {
        let at = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN;
        let f = frame(&[0, 0, 8, 0], &[0x45; 20]);
        assert_eq!(gre_any(&f, at, f.len()), Ok(at + 4));
        let k = frame(&[0x20, 0, 8, 0, 1, 2, 3, 4], &[0x45; 20]);
        assert_eq!(gre_any(&k, at, k.len()), Ok(at + 8));
        // The outer packet ends inside the GRE header, padding after it.
        assert_eq!(gre_any(&f, at, at + 3), Err(DropReason::GreMalformed));
        let v6 = frame(&[0, 0, 0x86, 0xdd], &[]);
        assert_eq!(gre_any(&v6, at, v6.len()), Err(DropReason::GreInnerIpv6));
        // Outer options: the header starts further on.
        let o = frame(&[0, 0, 0, 0, 0, 0, 8, 0], &[]);
        assert_eq!(gre_any(&o, at + 4, o.len()), Ok(at + 8));
    }

    /// The key's address word is the frame's 8 bytes, and turns back into the addresses.
    #[test]
    fn the_address_word_is_the_frames() {
        for (src, dst) in [
            (0xc633_6414u32, 0xcb00_710au32),
            (1, u32::MAX),
            (0x0102_0304, 0),
        ] {
            let mut f = frame(&[0, 0, 8, 0], &inner(8));
            f[ADDRS..ADDRS + 4].copy_from_slice(&src.to_be_bytes());
            f[ADDRS + 4..ADDRS + 8].copy_from_slice(&dst.to_be_bytes());
            let word = u64::from_ne_bytes(f[ADDRS..ADDRS + 8].try_into().unwrap());
            assert_eq!(word, addrs_word(src, dst));
            assert_eq!(addrs_of(word), (src, dst));
        }
    }

    /// A valid 20-byte inner header (UDP, 198.18.0.1 to 93.184.216.34) and `payload` bytes.
    fn inner(payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; ipv4::MIN_HEADER_LEN + payload];
        ipv4::Repr {
            src: 0xc612_0001,
            dst: 0x5db8_d822,
            header_len: ipv4::MIN_HEADER_LEN as u16,
            total_len: p.len() as u16,
            ttl: 64,
            protocol: ipv4::PROTO_UDP,
            ..Default::default()
        }
        .emit(&mut p);
        p
    }

    /// The first look's and the general way's strips of `f`, each on its own copy, the
    /// outer header's first byte made to say its length (`header_end`), as validation left
    /// it.
    fn both(
        f: &[u8],
        proto: u8,
        header_end: usize,
        outer_end: usize,
    ) -> [(Option<Stripped>, Vec<u8>, ipv4::Repr); 2] {
        let mut f = f.to_vec();
        f[ethernet::HEADER_LEN] = 0x40 | ((header_end - ethernet::HEADER_LEN) / 4) as u8;
        let (mut a, mut ia) = (f.clone(), ipv4::Repr::default());
        let look = first_look(&mut a, proto, outer_end, &mut ia).map(|s| (s, Ok(())));
        let (mut g, mut ig) = (f.to_vec(), ipv4::Repr::default());
        let gen = general(&mut g, proto, header_end, outer_end, &mut ig).ok();
        [(look, a, ia), (gen, g, ig)]
    }

    #[test]
    fn the_common_shapes_take_the_first_look() {
        let at = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN;
        let g = frame(&[0, 0, 8, 0], &inner(8));
        let [look, gen] = both(&g, ipv4::PROTO_GRE, at, g.len());
        assert_eq!(look.0, Some((24, Ok(()))));
        assert_eq!(look, gen);
        let p = frame(&[], &inner(8));
        let [look, gen] = both(&p, ipv4::PROTO_IPIP, at, p.len());
        assert_eq!(look.0, Some((20, Ok(()))));
        assert_eq!(look, gen);
        // Shorter than the look (an IP-in-IP packet of headers only), a key, outer options:
        // the general way.
        let short = frame(&[], &inner(0));
        assert_eq!(both(&short, ipv4::PROTO_IPIP, at, short.len())[0].0, None);
        let k = frame(&[0x20, 0, 8, 0, 1, 2, 3, 4], &inner(8));
        assert_eq!(both(&k, ipv4::PROTO_GRE, at, k.len())[0].0, None);
        let o = frame(&[0; 4], &inner(8));
        assert_eq!(both(&o, ipv4::PROTO_IPIP, at + 4, o.len())[0].0, None);
    }

    /// The shapes the first look must leave to the general way (GRE checksum, key, sequence
    /// and version bits, another protocol; inner options, another version; an inner header
    /// cut by the outer packet's end; one the general way refuses: its length past the outer
    /// packet or under 20, a bad checksum, a martian) and those it takes (with padding after
    /// the outer packet): wherever it takes one, the general way's strip, verdict (Ok) and
    /// fields.
    #[test]
    fn first_look_edges() {
        let at = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN;
        let gre = ipv4::PROTO_GRE;
        let ipip = ipv4::PROTO_IPIP;
        let with = |f: fn(&mut Vec<u8>)| {
            let mut p = inner(8);
            f(&mut p);
            p
        };
        // `with`, the header's checksum made right after the change.
        let summed = |f: fn(&mut Vec<u8>)| {
            let mut p = with(f);
            p[10..12].copy_from_slice(&[0, 0]);
            let c = crate::wire::checksum::checksum(&p[..ipv4::MIN_HEADER_LEN]);
            p[10..12].copy_from_slice(&c.to_be_bytes());
            p
        };
        let mut options = inner(8);
        options[0] = 0x46;
        options.splice(20..20, [1, 1, 1, 0]);
        /// (GRE header, inner packet, cut from the outer packet's end, pad, protocol, taken)
        type Case = (Vec<u8>, Vec<u8>, usize, usize, u8, bool);
        let cases: Vec<Case> = vec![
            (vec![0, 0, 8, 0], inner(8), 0, 0, gre, true),
            (vec![0, 0, 8, 0], inner(8), 0, 6, gre, true),
            (vec![], inner(8), 0, 6, ipip, true),
            (vec![0x80, 0, 8, 0, 0, 0, 0, 0], inner(8), 0, 0, gre, false),
            (vec![0x20, 0, 8, 0, 0, 0, 0, 7], inner(8), 0, 0, gre, false),
            (vec![0x10, 0, 8, 0, 0, 0, 0, 1], inner(8), 0, 0, gre, false),
            (
                vec![0xb0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1],
                inner(8),
                0,
                0,
                gre,
                false,
            ),
            (vec![0, 1, 8, 0], inner(8), 0, 0, gre, false),
            (vec![0, 0, 0x86, 0xdd], inner(8), 0, 0, gre, false),
            (vec![0, 0, 8, 0], options.clone(), 0, 0, gre, false),
            (vec![], options, 0, 0, ipip, false),
            (vec![0, 0, 8, 0], with(|p| p[0] = 0x65), 0, 0, gre, false),
            (vec![0, 0, 8, 0], inner(8), 12, 0, gre, false),
            (vec![0, 0, 8, 0], inner(8), 8, 8, gre, false),
            (vec![0, 0, 8, 0], inner(8), 4, 4, gre, false),
            (vec![0, 0, 8, 0], with(|p| p[3] = 19), 0, 0, gre, false),
            (vec![0, 0, 8, 0], with(|p| p[10] ^= 1), 0, 0, gre, false),
            (vec![], with(|p| p[12] = 127), 0, 0, ipip, false),
            (vec![0, 0, 8, 0], summed(|p| p[12] = 0), 0, 0, gre, false),
            (vec![], summed(|p| p[16] = 240), 0, 0, ipip, false),
            (vec![], summed(|p| p[8] = 1), 0, 0, ipip, true),
            (vec![0, 0, 8, 0], inner(8), 0, 3, gre, true),
        ];
        for (k, (g, p, cut, pad, proto, taken)) in cases.into_iter().enumerate() {
            let mut f = frame(&g, &p);
            let outer_end = f.len() - cut;
            f.resize(f.len() + pad, 0xee);
            let [look, general] = both(&f, proto, at, outer_end);
            assert_eq!(look.0.is_some(), taken, "case {k}");
            if taken {
                assert_eq!(look, general, "case {k}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        /// Wherever the first look strips a frame, it strips as the general way: the same
        /// shift and verdict, the same frame bytes after, the same context fields. Frames:
        /// GRE or IP-in-IP, outer options or not, random bytes or a valid inner packet with
        /// bit flips (its checksum fixed after them or not), the outer packet cut short,
        /// Ethernet padding.
        #[test]
        fn first_look_strips_as_the_general_way(
            gre in any::<bool>(),
            random in proptest::collection::vec(any::<u8>(), 0..64),
            use_random in any::<bool>(),
            flips in proptest::collection::vec((0usize..32, 0u8..8), 0..3),
            fix_sum in any::<bool>(),
            options in prop_oneof![Just(0usize), Just(0), Just(4)],
            payload in 0usize..24,
            cut in prop_oneof![Just(0usize), 0usize..48],
            pad in 0usize..8,
        ) {
            let mut body = if use_random {
                random
            } else {
                let mut b = if gre { vec![0, 0, 8, 0] } else { vec![] };
                b.extend_from_slice(&inner(payload));
                b
            };
            for (byte, bit) in flips {
                if let Some(b) = body.get_mut(byte) {
                    *b ^= 1 << bit;
                }
            }
            let h = if gre && !use_random { gre::BASE_LEN } else { 0 };
            if fix_sum && !use_random {
                body[h + 10..h + 12].copy_from_slice(&[0, 0]);
                let c = crate::wire::checksum::checksum(&body[h..h + ipv4::MIN_HEADER_LEN]);
                body[h + 10..h + 12].copy_from_slice(&c.to_be_bytes());
            }
            let header_end = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + options;
            let mut f: Vec<u8> = (0..header_end as u8).collect();
            f.extend_from_slice(&body);
            let outer_end = f.len().saturating_sub(cut).max(header_end);
            f.resize(f.len().max(outer_end) + pad, 0xee);
            let proto = if gre { ipv4::PROTO_GRE } else { ipv4::PROTO_IPIP };
            // The outer header's first byte as `both` makes it.
            f[ethernet::HEADER_LEN] = 0x40 | (options / 4 + 5) as u8;
            let [look, gen] = both(&f, proto, header_end, outer_end);
            if look.0.is_some() {
                prop_assert_eq!(look, gen);
            } else {
                // Declined, the frame is left as it came for the general way.
                prop_assert_eq!(look.1, f);
            }
        }
    }
}
