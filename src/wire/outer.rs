//! A tunnel's outer headers as a template: the IPv4 header (and the 4-byte GRE header of a
//! GRE tunnel) with every field that is the same for all its packets written once, when the
//! tunnel is compiled into the snapshot, and the checksum's sum over those fields kept. Per
//! packet only the TOS, total length, IP ID and DF bit are written and the checksum finished
//! from the kept sum (RFC 1624's incremental view of RFC 1071): no 20-byte re-sum and no
//! per-field rebuild (callgrind, issue 14). The bytes are those `ipv4::Repr::emit` and
//! `gre::write_basic` write (a property test below holds them to it).
use super::{checksum, ethernet, gre, ipv4};

/// The longest template: IPv4 without options, then GRE without checksum, key or sequence.
pub const MAX_LEN: usize = ipv4::MIN_HEADER_LEN + gre::BASE_LEN;

/// The longest prebuilt header: Ethernet, then the longest template.
pub const ETH_MAX_LEN: usize = ethernet::HEADER_LEN + MAX_LEN;

/// The outer headers of one tunnel, less what changes per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    ip: [u8; ipv4::MIN_HEADER_LEN],
    /// The GRE header after the IPv4 one (24 bytes in all), or none: IP-in-IP (20).
    gre: Option<[u8; gre::BASE_LEN]>,
    /// The folded one's-complement sum of the IPv4 header as templated (TOS, length, ID and
    /// flags zero): a packet's fields are added to it.
    sum: u16,
}

/// The per-packet fields of an outer IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    pub tos: u8,
    /// The outer packet's length: the inner one's plus the template's.
    pub total_len: u16,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Template {
    /// The headers from `src` to `dst` with `ttl`, carrying IPv4 over GRE (`gre`) or
    /// directly (IP-in-IP). Off the packet path: built with the tunnel.
    pub fn new(src: u32, dst: u32, ttl: u8, gre: bool) -> Template {
        let mut ip = [0u8; ipv4::MIN_HEADER_LEN];
        let protocol = if gre {
            ipv4::PROTO_GRE
        } else {
            ipv4::PROTO_IPIP
        };
        ipv4::Repr {
            src,
            dst,
            header_len: ipv4::MIN_HEADER_LEN as u16,
            ttl,
            protocol,
            ..Default::default()
        }
        .emit(&mut ip);
        let gre = gre.then(|| {
            let mut g = [0u8; gre::BASE_LEN];
            gre::write_basic(&mut g, gre::PROTO_IPV4);
            g
        });
        // The stored checksum is the complement of the folded sum over the other fields.
        let [c0, c1] = [
            ip[ipv4::field::CHECKSUM.start],
            ip[ipv4::field::CHECKSUM.end - 1],
        ];
        let sum = !u16::from_be_bytes([c0, c1]);
        Template { ip, gre, sum }
    }

    /// Bytes the template writes in front of the inner packet.
    #[inline(always)]
    pub fn size(&self) -> usize {
        if self.gre.is_some() {
            MAX_LEN
        } else {
            ipv4::MIN_HEADER_LEN
        }
    }

    /// Writes the headers with packet `f`'s fields at the start of `buf`; nothing into a
    /// buffer shorter than `size()`.
    #[inline(always)]
    pub fn write(&self, buf: &mut [u8], f: Fields) {
        let Some((ip, rest)) = buf.split_first_chunk_mut::<{ ipv4::MIN_HEADER_LEN }>() else {
            return;
        };
        if let Some(tmpl) = &self.gre {
            let Some(g) = rest.first_chunk_mut::<{ gre::BASE_LEN }>() else {
                return;
            };
            *g = *tmpl;
        }
        *ip = self.ip;
        patch(ip, self.sum, f);
    }

    /// The Ethernet header `eth` and these headers in one block, for `Prebuilt::write`.
    /// Off the packet path: once per tunnel and pass.
    pub fn prebuilt(&self, eth: &[u8; ethernet::HEADER_LEN]) -> Prebuilt {
        let mut bytes = [0u8; ETH_MAX_LEN];
        bytes[..ethernet::HEADER_LEN].copy_from_slice(eth);
        bytes[ethernet::HEADER_LEN..ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN]
            .copy_from_slice(&self.ip);
        if let Some(g) = &self.gre {
            bytes[ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN..].copy_from_slice(g);
        }
        Prebuilt {
            bytes,
            gre: self.gre.is_some(),
            sum: self.sum,
        }
    }
}

/// Writes packet `f`'s fields into the templated IPv4 header `ip` and finishes its checksum
/// from `sum`, the template's.
#[inline(always)]
fn patch(ip: &mut [u8; ipv4::MIN_HEADER_LEN], sum: u16, f: Fields) {
    let frag: u16 = if f.dont_frag { 0x4000 } else { 0 };
    // RFC 1071: the sum of the template's words and the packet's, folded; the template's
    // fields are zero where the packet's go, so adding them is writing them.
    let sum = u32::from(sum)
        + u32::from(f.tos)
        + u32::from(f.total_len)
        + u32::from(f.ident)
        + u32::from(frag);
    let c = !checksum::fold(sum);
    ip[ipv4::field::TOS] = f.tos;
    ip[ipv4::field::LEN].copy_from_slice(&f.total_len.to_be_bytes());
    ip[ipv4::field::ID].copy_from_slice(&f.ident.to_be_bytes());
    ip[ipv4::field::FLAGS_FRAG].copy_from_slice(&frag.to_be_bytes());
    ip[ipv4::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
}

/// A tunnel's whole outer header toward one underlay neighbor: Ethernet, IPv4 and GRE (38
/// bytes) or Ethernet and IPv4 (34), written per packet with one fixed-size copy and the
/// `Template::write` patches (issue 14: the Ethernet header was three more writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prebuilt {
    bytes: [u8; ETH_MAX_LEN],
    gre: bool,
    sum: u16,
}

impl Prebuilt {
    /// No header: all zeros, IP-in-IP's length. A placeholder, never written to a packet.
    pub const EMPTY: Prebuilt = Prebuilt {
        bytes: [0; ETH_MAX_LEN],
        gre: false,
        sum: 0,
    };

    /// Writes the header with packet `f`'s fields at the start of `buf`; nothing into a
    /// buffer shorter than it.
    #[inline(always)]
    pub fn write(&self, buf: &mut [u8], f: Fields) {
        const IP: usize = ethernet::HEADER_LEN;
        const IP_END: usize = IP + ipv4::MIN_HEADER_LEN;
        let head = if self.gre {
            let Some(h) = buf.first_chunk_mut::<ETH_MAX_LEN>() else {
                return;
            };
            *h = self.bytes;
            h.as_mut_slice()
        } else {
            let Some(h) = buf.first_chunk_mut::<IP_END>() else {
                return;
            };
            if let Some(src) = self.bytes.first_chunk::<IP_END>() {
                *h = *src;
            }
            h.as_mut_slice()
        };
        if let Some(ip) = head
            .get_mut(IP..IP_END)
            .and_then(|s| <&mut [u8; ipv4::MIN_HEADER_LEN]>::try_from(s).ok())
        {
            patch(ip, self.sum, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the encapsulation wrote before the template: `Repr::emit`, then the GRE header.
    fn emitted(src: u32, dst: u32, ttl: u8, gre: bool, f: Fields) -> Vec<u8> {
        let mut b = vec![0u8; MAX_LEN];
        ipv4::Repr {
            tos: f.tos,
            total_len: f.total_len,
            ident: f.ident,
            dont_frag: f.dont_frag,
            ttl,
            protocol: if gre {
                ipv4::PROTO_GRE
            } else {
                ipv4::PROTO_IPIP
            },
            src,
            dst,
            header_len: ipv4::MIN_HEADER_LEN as u16,
            frag_offset: 0,
        }
        .emit(&mut b);
        if gre {
            gre::write_basic(&mut b[ipv4::MIN_HEADER_LEN..], gre::PROTO_IPV4);
        }
        b.truncate(if gre { MAX_LEN } else { ipv4::MIN_HEADER_LEN });
        b
    }

    #[test]
    fn golden_gre_header() {
        // 203.0.113.10 -> 198.51.100.20, TTL 64, 84-byte outer packet, DF, ID 0.
        let t = Template::new(0xcb00_710a, 0xc633_6414, 64, true);
        let mut b = [0xaau8; 30];
        let f = Fields {
            tos: 0,
            total_len: 84,
            ident: 0,
            dont_frag: true,
        };
        t.write(&mut b, f);
        assert_eq!(t.size(), 24);
        assert_eq!(
            b[..24],
            [
                0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, 47, 0xd4, 0x28, 203, 0, 113, 10, 198, 51, 100,
                20, 0, 0, 8, 0
            ]
        );
        assert!(checksum::verify(&b[..20]));
        assert_eq!(b[24..], [0xaa; 6], "nothing written past the template");
    }

    #[test]
    fn ipip_writes_only_the_ipv4_header_and_short_buffers_nothing() {
        let t = Template::new(1, 2, 3, false);
        assert_eq!(t.size(), 20);
        let mut b = [0xaau8; 24];
        t.write(
            &mut b,
            Fields {
                tos: 0,
                total_len: 40,
                ident: 7,
                dont_frag: false,
            },
        );
        assert_eq!(b[9], ipv4::PROTO_IPIP);
        assert_eq!(b[20..], [0xaa; 4]);
        let mut short = [0xaau8; 23];
        Template::new(1, 2, 3, true).write(
            &mut short,
            Fields {
                tos: 0,
                total_len: 40,
                ident: 7,
                dont_frag: false,
            },
        );
        assert_eq!(short, [0xaa; 23]);
    }

    proptest::proptest! {
        /// The prebuilt header writes byte for byte the Ethernet header and then what
        /// `Template::write` writes, and nothing past it.
        #[test]
        fn prebuilt_writes_ethernet_then_template(src in proptest::num::u32::ANY, dst in proptest::num::u32::ANY,
                                  ttl in proptest::num::u8::ANY, gre in proptest::bool::ANY,
                                  tos in proptest::num::u8::ANY, total_len in proptest::num::u16::ANY,
                                  ident in proptest::num::u16::ANY, dont_frag in proptest::bool::ANY,
                                  eth in proptest::array::uniform14(proptest::num::u8::ANY),
                                  len in 0usize..48) {
            let f = Fields { tos, total_len, ident, dont_frag };
            let t = Template::new(src, dst, ttl, gre);
            let mut want = vec![0x5au8; len];
            if len >= ethernet::HEADER_LEN + t.size() {
                want[..ethernet::HEADER_LEN].copy_from_slice(&eth);
                t.write(&mut want[ethernet::HEADER_LEN..], f);
            }
            let mut got = vec![0x5au8; len];
            t.prebuilt(&eth).write(&mut got, f);
            proptest::prop_assert_eq!(got, want);
        }

        /// The template writes byte for byte what `Repr::emit` and `write_basic` wrote, for
        /// any endpoints, TTL and per-packet fields (the checksum's -0 never arises: the
        /// version word keeps the sum above zero).
        #[test]
        fn writes_what_emit_wrote(src in proptest::num::u32::ANY, dst in proptest::num::u32::ANY,
                                  ttl in proptest::num::u8::ANY, gre in proptest::bool::ANY,
                                  tos in proptest::num::u8::ANY, total_len in proptest::num::u16::ANY,
                                  ident in proptest::num::u16::ANY, dont_frag in proptest::bool::ANY) {
            let f = Fields { tos, total_len, ident, dont_frag };
            let t = Template::new(src, dst, ttl, gre);
            let mut b = vec![0x5au8; MAX_LEN];
            t.write(&mut b, f);
            b.truncate(t.size());
            proptest::prop_assert_eq!(b, emitted(src, dst, ttl, gre, f));
        }
    }
}
