//! Ethernet and ARP: counts what arrived, keeps IPv4 addressed to the port's MAC, answers ARP
//! requests for the port's address in place and learns neighbours from ARP.
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::{DropReason, Verdict};
use crate::packet::PacketBuf;
use crate::route::PortState;
use crate::wire::{arp, ethernet, ipv4, MacAddr};

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

/// Six destination bytes as one word, in its high 48 bits (little-endian, as `ipv4_plain`
/// reads eight bytes and shifts two out: compared, never shown). The low 16 bits are 0, so
/// no word matches `Port::mac`'s u64::MAX.
#[inline(always)]
fn dst_word(m: &[u8; 6]) -> u64 {
    u64::from_le_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]])
}

/// The Ethernet header and a 20-byte IPv4 header: what the plain path reads of a frame.
pub const PLAIN_HEAD: usize = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN;

/// The first `PLAIN_HEAD` bytes of a frame that `kind` finds IPv4 to the port's MAC and
/// whose IPv4 header has no options (version 4, IHL 5: the first byte 0x45, which
/// `ipv4_validate::one_plain` then takes as tested); None: `kind` and `ipv4_validate::one`
/// decide. One bounds test, one compare of the destination and one of the ethertype with
/// the version byte, where they made seven tests (callgrind, issue 14). A port that is not
/// there has `mac` u64::MAX, which no six bytes match.
#[inline(always)]
pub fn ipv4_plain<'f>(
    frame: &'f [u8],
    contiguous: bool,
    port: Port,
) -> Option<&'f [u8; PLAIN_HEAD]> {
    let h = frame.first_chunk::<PLAIN_HEAD>()?;
    let eight = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    // Shifted, not masked: a mask had the load split in two (callgrind).
    let to_us = eight << 16 == port.mac;
    // The ethertype and the version/IHL byte compared in place, each on its own: as one
    // 3-byte word the load was split in two and joined (6 instructions, now 4; callgrind).
    let v4 =
        u16::from_ne_bytes([h[12], h[13]]) == ethernet::ETHERTYPE_IPV4.to_be() && h[14] == 0x45;
    (contiguous & to_us & v4).then_some(h)
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
/// address, replies to ours). `pkt` is packet `i`'s buffer (held apart from `b.pkts` by the
/// first pass).
pub fn arp<B: PacketBuf>(b: &mut Burst<B>, pkt: &mut B, i: usize) -> Verdict {
    let (snap, in_port) = (b.snap, b.in_port);
    let Some(port) = snap.ports.get(in_port as usize) else {
        return Verdict::Drop(DropReason::ArpMalformed);
    };
    let (hdr, body) = pkt.as_mut().split_at_mut(ethernet::HEADER_LEN);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::context::Ctx;
    use crate::datapath::stages::ipv4_validate;
    use proptest::prelude::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    /// A valid frame to the port: Ethernet, a 20-byte IPv4 header, 8 bytes of UDP-ish payload.
    fn valid() -> Vec<u8> {
        let mut f = MAC.to_vec();
        f.extend_from_slice(&[2, 0, 0, 0, 0, 0xfe, 0x08, 0x00]);
        let mut h = [
            0x45, 0, 0, 28, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 198, 51, 100, 1, 172, 16, 3, 1,
        ];
        let c = crate::wire::checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&h);
        f.extend_from_slice(&[1; 8]);
        f
    }

    proptest! {
        /// The plain first look decides as `kind` then `ipv4_validate::one` do, the header
        /// and origin included, and it takes every frame it can (contiguous, 34 bytes or
        /// more, IPv4 to the port's MAC with first byte 0x45).
        #[test]
        fn plain_look_is_kind_then_one(
            edits in proptest::collection::vec((0usize..46, any::<u8>()), 0..3),
            cut in 0usize..48,
            contiguous in any::<bool>(),
            fix_checksum in any::<bool>(),
            present in any::<bool>(),
        ) {
            let mut f = valid();
            for (at, v) in edits {
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            if fix_checksum {
                f[24..26].fill(0);
                let c = crate::wire::checksum::checksum(&f[14..34]);
                f[24..26].copy_from_slice(&c.to_be_bytes());
            }
            f.truncate(f.len() - cut.min(f.len()));
            let state = PortState { mac: MacAddr(MAC), addr: 0, prefix_len: 24, mtu: 1500 };
            let port = Port {
                state: present.then_some(&state),
                mac: if present { dst_word(&MAC) } else { u64::MAX },
            };
            let (mut general, mut plain) = (Ctx::default(), Ctx::default());
            let want = match kind(&f, contiguous, port) {
                Kind::Ipv4 => Some(ipv4_validate::one(&f, &mut general, 3)),
                _ => None,
            };
            let can = want.is_some() && f.len() >= PLAIN_HEAD && f[14] == 0x45;
            match ipv4_plain(&f, contiguous, port) {
                Some(h) => {
                    prop_assert!(can);
                    let got = ipv4_validate::one_plain(h, f.len(), &mut plain, 3);
                    prop_assert_eq!(Some(got), want);
                    if got.is_ok() {
                        prop_assert_eq!(plain.ip, general.ip);
                        prop_assert_eq!(plain.origin, general.origin);
                    }
                }
                None => prop_assert!(!can),
            }
        }
    }

    #[test]
    fn the_valid_frame_takes_the_plain_look() {
        let f = valid();
        let state = PortState {
            mac: MacAddr(MAC),
            addr: 0,
            prefix_len: 24,
            mtu: 1500,
        };
        let port = Port {
            state: Some(&state),
            mac: dst_word(&MAC),
        };
        let h = ipv4_plain(&f, true, port).expect("plain");
        let mut c = Ctx::default();
        assert_eq!(ipv4_validate::one_plain(h, f.len(), &mut c, 3), Ok(()));
        assert_eq!(
            (c.ip.dst, c.ip.ttl, c.ip.total_len, c.ip.header_len),
            (0xac10_0301, 64, 28, 20)
        );
        assert_eq!(c.origin, crate::datapath::context::Origin::Port(3));
        // One bit of the destination MAC's last byte, or of the ethertype, and it is not.
        for at in [5, 12, 13, 14] {
            let mut g = f.clone();
            g[at] ^= 1;
            assert!(ipv4_plain(&g, true, port).is_none(), "byte {at}");
        }
        assert!(ipv4_plain(&f, false, port).is_none());
    }

    /// ARP from a `[[neighbors]]` address with a static MAC teaches nothing: no learned
    /// entry beside the static one (or "moved" when another MAC claims the address), and
    /// the configured MAC keeps forwarding; another host on the subnet is learned as usual.
    #[test]
    fn arp_from_a_static_neighbour_teaches_nothing() {
        use crate::datapath::{Pipeline, VecBuf};
        // The demo: wan0 192.0.2.1/24 (MAC `MAC`), upstream 192.0.2.254 at ..:fe, static.
        let cfg = crate::config::parse(
            include_str!("../../../config/demo.toml"),
            &crate::config::Host { cores: vec![0, 1] },
        )
        .unwrap();
        let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
        assert_eq!(macs[0], MacAddr(MAC));
        let snap = crate::route::Snapshot::build(&cfg, &macs, 1, None).unwrap();
        let fixed = MacAddr([2, 0, 0, 0, 0, 0xfe]);
        let other = MacAddr([2, 0, 0, 0, 0, 0x66]);
        // A reply to our address, and a request for it, each from `ip` at `mac`.
        let from = |mac: MacAddr, ip: u32, op: u16| {
            let mut f = vec![0u8; 60];
            arp::write_request(&mut f, mac, ip, 0xc000_0201).unwrap();
            f[..6].copy_from_slice(&MAC);
            f[20..22].copy_from_slice(&op.to_be_bytes());
            f
        };
        let mut p = Pipeline::new();
        for op in [arp::OP_REPLY, arp::OP_REQUEST] {
            let mut bufs = [VecBuf::from_bytes(&from(other, 0xc000_02fe, op))];
            let mut v = [Verdict::Drop(DropReason::NoRoute)];
            p.process(&snap, 0, &mut bufs, &mut v);
        }
        assert_eq!(
            p.counters.arp_learned, 0,
            "learned a static neighbour's address"
        );
        assert_eq!(snap.arp.host(0, 0xc000_02fe), Some(fixed));
        let listed = snap.arp.neighbors(1);
        assert!(!listed.iter().any(|n| n.ip == 0xc000_02fe), "{listed:?}");
        // Any other host is learned.
        let mut bufs = [VecBuf::from_bytes(&from(other, 0xc000_0242, arp::OP_REPLY))];
        let mut v = [Verdict::Drop(DropReason::NoRoute)];
        p.process(&snap, 0, &mut bufs, &mut v);
        assert_eq!(p.counters.arp_learned, 1);
        assert_eq!(snap.arp.host(0, 0xc000_0242), Some(other));
    }
}
