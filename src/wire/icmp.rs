//! ICMP error messages (RFC 792) and the rules on when not to send them (RFC 1812 4.3.2.7).
use super::{checksum, ipv4};

pub const HEADER_LEN: usize = 8;
pub const TYPE_DEST_UNREACHABLE: u8 = 3;
pub const CODE_FRAG_NEEDED: u8 = 4;
pub const TYPE_TIME_EXCEEDED: u8 = 11;
pub const CODE_TTL_EXCEEDED: u8 = 0;
/// Bytes of the offending datagram's payload quoted after its header.
pub const QUOTE_PAYLOAD: usize = 8;

/// A view of an ICMP message's type and code.
pub struct Message<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Message<T> {
    /// Needs the type and code only: the firewall matches on what is there.
    #[inline]
    pub fn new_checked(buf: T) -> Option<Self> {
        (buf.as_ref().len() >= 2).then_some(Message { buf })
    }
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[0]
    }
    #[inline]
    pub fn code(&self) -> u8 {
        self.buf.as_ref()[1]
    }
}

/// Query types: echo, timestamp, information, address mask (requests and replies). Errors
/// may be sent about these; never about error messages or unknown types.
fn is_query(t: u8) -> bool {
    matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)
}

/// May an ICMP error be sent about this datagram? Not about ICMP errors, not about fragments
/// other than the first, not to sources that do not name one host.
pub fn error_allowed<T: AsRef<[u8]>>(ip: &ipv4::Packet<T>) -> bool {
    if ip.frag_offset() != 0 || ipv4::is_martian_src(ip.src()) {
        return false;
    }
    if ip.protocol() == ipv4::PROTO_ICMP {
        return ip.payload().first().is_some_and(|t| is_query(*t));
    }
    true
}

/// Fills the headers of an ICMP error in `pkt`, which holds 20 bytes for the new IPv4 header,
/// 8 for the ICMP header, then the quoted datagram. `mtu` goes in the next-hop MTU field
/// (fragmentation needed); pass 0 otherwise.
pub fn write_error(pkt: &mut [u8], src: u32, dst: u32, ty: u8, code: u8, mtu: u16) -> Option<()> {
    let total = u16::try_from(pkt.len()).ok()?;
    if pkt.len() < ipv4::MIN_HEADER_LEN + HEADER_LEN {
        return None;
    }
    let (ip, icmp) = pkt.split_at_mut(ipv4::MIN_HEADER_LEN);
    ipv4::Repr {
        tos: 0xc0, // internetwork control, as routers mark their own ICMP
        total_len: total,
        ttl: 64,
        protocol: ipv4::PROTO_ICMP,
        src,
        dst,
        header_len: ipv4::MIN_HEADER_LEN as u16,
        ..ipv4::Repr::default()
    }
    .emit(ip);
    icmp[..8].copy_from_slice(&[ty, code, 0, 0, 0, 0, 0, 0]);
    icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
    let c = checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(proto: u8, first: u8, frag: u16) -> Vec<u8> {
        let mut h = vec![
            0x45, 0, 0, 28, 0, 1, 0, 0, 64, proto, 0, 0, 198, 51, 100, 1, 10, 0, 0, 1,
        ];
        h[6..8].copy_from_slice(&frag.to_be_bytes());
        let c = checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(&[first, 0, 0, 0, 0, 0, 0, 0]);
        h
    }

    #[test]
    fn rfc1812_rules() {
        let ok = |d: &Vec<u8>| error_allowed(&ipv4::Packet::new_checked(&d[..]).unwrap());
        assert!(ok(&datagram(17, 0, 0)));
        assert!(ok(&datagram(1, 8, 0)), "echo request");
        assert!(!ok(&datagram(1, 3, 0)), "an error about an error");
        assert!(!ok(&datagram(1, 11, 0)));
        assert!(ok(&datagram(17, 0, 0x2000)), "first fragment is fine");
        assert!(!ok(&datagram(17, 0, 185)), "non-first fragment");
        let mut m = datagram(17, 0, 0);
        m[12] = 224;
        let c = {
            m[10] = 0;
            m[11] = 0;
            checksum::checksum(&m[..20])
        };
        m[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(!ok(&m), "multicast source");
    }

    #[test]
    fn golden_frag_needed() {
        let mut p = vec![0u8; 28 + 28];
        p[28..].copy_from_slice(&datagram(6, 0, 0x4000));
        write_error(
            &mut p,
            0x0a00_0001,
            0xc633_6401,
            TYPE_DEST_UNREACHABLE,
            CODE_FRAG_NEEDED,
            1476,
        )
        .unwrap();
        let ip = ipv4::Packet::new_checked(&p[..]).unwrap();
        assert_eq!((ip.total_len(), ip.ttl(), ip.protocol()), (56, 64, 1));
        assert_eq!(&p[20..22], &[3, 4]);
        assert_eq!(&p[26..28], &1476u16.to_be_bytes());
        assert!(checksum::verify(&p[20..]));
    }
}
