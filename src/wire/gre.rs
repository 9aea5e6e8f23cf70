//! GRE headers (RFC 2784, with the key and sequence extensions of RFC 2890).
use super::checksum;

pub const BASE_LEN: usize = 4;
pub const PROTO_IPV4: u16 = 0x0800;
pub const PROTO_IPV6: u16 = 0x86dd;

const FLAG_C: u16 = 0x8000;
const FLAG_K: u16 = 0x2000;
const FLAG_S: u16 = 0x1000;
/// Routing present, strict source route, recursion control and the reserved flag bits.
const UNSUPPORTED: u16 = 0x4000 | 0x0800 | 0x0700 | 0x00f8;
const VERSION: u16 = 0x0007;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Truncated,
    /// Version other than 0 (1 is PPTP's enhanced GRE).
    BadVersion,
    /// Routing, strict source route, recursion or reserved bits set.
    UnsupportedFlags,
    BadChecksum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Header length: 4, plus 4 for each of checksum, key and sequence number present.
    pub len: usize,
    pub protocol: u16,
    pub key: Option<u32>,
    pub sequence: Option<u32>,
    pub has_checksum: bool,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Parses the GRE header at the start of `packet` (header and payload: the checksum, when
/// present, covers both and is verified here).
#[inline]
pub fn parse(packet: &[u8]) -> Result<Header, Error> {
    // The common case, no flags at all (what anygate and most routers send), without the
    // general path's bookkeeping.
    if let Some(&[0, 0, p0, p1]) = packet.first_chunk::<BASE_LEN>() {
        return Ok(Header {
            len: BASE_LEN,
            protocol: u16::from_be_bytes([p0, p1]),
            key: None,
            sequence: None,
            has_checksum: false,
        });
    }
    parse_flags(packet)
}

/// `parse` for headers with flags: checksum, key and sequence number, or refusals.
fn parse_flags(packet: &[u8]) -> Result<Header, Error> {
    if packet.len() < BASE_LEN {
        return Err(Error::Truncated);
    }
    let flags = u16::from_be_bytes([packet[0], packet[1]]);
    if flags & VERSION != 0 {
        return Err(Error::BadVersion);
    }
    if flags & UNSUPPORTED != 0 {
        return Err(Error::UnsupportedFlags);
    }
    let has_checksum = flags & FLAG_C != 0;
    let mut len = BASE_LEN;
    if has_checksum {
        len += 4;
    }
    let key_at = len;
    if flags & FLAG_K != 0 {
        len += 4;
    }
    let seq_at = len;
    if flags & FLAG_S != 0 {
        len += 4;
    }
    if packet.len() < len {
        return Err(Error::Truncated);
    }
    if has_checksum && !checksum::verify(packet) {
        return Err(Error::BadChecksum);
    }
    Ok(Header {
        len,
        protocol: u16::from_be_bytes([packet[2], packet[3]]),
        key: (flags & FLAG_K != 0).then(|| be32(&packet[key_at..])),
        sequence: (flags & FLAG_S != 0).then(|| be32(&packet[seq_at..])),
        has_checksum,
    })
}

/// Writes the 4-byte header anygate sends: no checksum, key or sequence number.
pub fn write_basic(buf: &mut [u8], protocol: u16) {
    if let Some(h) = buf.get_mut(..BASE_LEN) {
        h[..2].copy_from_slice(&[0, 0]);
        h[2..].copy_from_slice(&protocol.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_basic() {
        let p = [0x00, 0x00, 0x08, 0x00, 0x45];
        let h = parse(&p).unwrap();
        assert_eq!(
            h,
            Header {
                len: 4,
                protocol: PROTO_IPV4,
                key: None,
                sequence: None,
                has_checksum: false
            }
        );
        let mut b = [0xffu8; 4];
        write_basic(&mut b, PROTO_IPV4);
        assert_eq!(b, [0, 0, 8, 0]);
    }

    #[test]
    fn golden_key_and_sequence() {
        // K and S set: key 0x01020304, sequence 7.
        let p = [0x30, 0x00, 0x08, 0x00, 1, 2, 3, 4, 0, 0, 0, 7, 0x45];
        let h = parse(&p).unwrap();
        assert_eq!(h.len, 12);
        assert_eq!(h.key, Some(0x01020304));
        assert_eq!(h.sequence, Some(7));
    }

    #[test]
    fn golden_checksum() {
        // C set: checksum over header and payload.
        let mut p = vec![0x80, 0x00, 0x08, 0x00, 0, 0, 0, 0, 0x45, 0x00, 0x12, 0x34];
        let c = checksum::checksum(&p);
        p[4..6].copy_from_slice(&c.to_be_bytes());
        let h = parse(&p).unwrap();
        assert!(h.has_checksum);
        assert_eq!(h.len, 8);
        p[10] ^= 1;
        assert_eq!(parse(&p), Err(Error::BadChecksum));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse(&[0, 1, 8, 0]), Err(Error::BadVersion));
        assert_eq!(parse(&[0x40, 0, 8, 0]), Err(Error::UnsupportedFlags));
        assert_eq!(parse(&[0x01, 0, 8, 0]), Err(Error::UnsupportedFlags));
        assert_eq!(parse(&[0x20, 0, 8, 0, 1, 2]), Err(Error::Truncated));
        assert_eq!(parse(&[0, 0, 8]), Err(Error::Truncated));
    }
}
