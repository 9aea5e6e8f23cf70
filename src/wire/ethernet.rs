//! Ethernet II frames and MAC addresses.
use std::fmt;
use std::str::FromStr;

pub const HEADER_LEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Shortest frame on the wire, without FCS; shorter ones get zero padding.
pub const MIN_FRAME_LEN: usize = 60;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
    /// Packs into the low 48 bits of a u64, for atomic storage.
    pub fn to_u64(self) -> u64 {
        let mut b = [0u8; 8];
        b[2..].copy_from_slice(&self.0);
        u64::from_be_bytes(b)
    }
    pub fn from_u64(v: u64) -> Self {
        let b = v.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(format!(
                "`{s}` is not a MAC address (want six hex bytes, aa:bb:cc:dd:ee:ff)"
            ));
        }
        let mut out = [0u8; 6];
        for (o, p) in out.iter_mut().zip(&parts) {
            if p.len() != 2 {
                return Err(format!(
                    "`{s}` is not a MAC address (byte `{p}` is not two hex digits)"
                ));
            }
            *o = u8::from_str_radix(p, 16)
                .map_err(|_| format!("`{s}` is not a MAC address (byte `{p}` is not hex)"))?;
        }
        Ok(MacAddr(out))
    }
}

mod field {
    use std::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
}

/// A view of an Ethernet II header at the start of a buffer.
pub struct Frame<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Fails when the buffer cannot hold the 14-byte header.
    pub fn new_checked(buf: T) -> Option<Self> {
        (buf.as_ref().len() >= HEADER_LEN).then_some(Frame { buf })
    }
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    pub fn dst(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.b()[field::DST]);
        MacAddr(m)
    }
    pub fn src(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.b()[field::SRC]);
        MacAddr(m)
    }
    pub fn ethertype(&self) -> u16 {
        let b = &self.b()[field::ETHERTYPE];
        u16::from_be_bytes([b[0], b[1]])
    }
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    pub fn set_dst(&mut self, m: MacAddr) {
        self.buf.as_mut()[field::DST].copy_from_slice(&m.0);
    }
    pub fn set_src(&mut self, m: MacAddr) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&m.0);
    }
    pub fn set_ethertype(&mut self, t: u16) {
        self.buf.as_mut()[field::ETHERTYPE].copy_from_slice(&t.to_be_bytes());
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_rewrite() {
        let mut raw = [0u8; 20];
        raw[..6].copy_from_slice(&[0xff; 6]);
        raw[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        raw[12] = 0x08;
        let mut f = Frame::new_checked(&mut raw[..]).unwrap();
        assert!(f.dst().is_broadcast());
        assert_eq!(f.ethertype(), ETHERTYPE_IPV4);
        f.set_dst(MacAddr([2, 0, 0, 0, 0, 1]));
        f.set_ethertype(ETHERTYPE_ARP);
        assert_eq!(&raw[..6], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&raw[12..14], &[0x08, 0x06]);
    }

    #[test]
    fn short_buffer_refused() {
        assert!(Frame::new_checked(&[0u8; 13][..]).is_none());
    }

    #[test]
    fn mac_parse_and_print() {
        let m: MacAddr = "02:AA:00:00:00:0f".parse().unwrap();
        assert_eq!(m.to_string(), "02:aa:00:00:00:0f");
        assert_eq!(MacAddr::from_u64(m.to_u64()), m);
        assert!("02:aa:00:00:00".parse::<MacAddr>().is_err());
        assert!("02:aa:00:00:00:zz".parse::<MacAddr>().is_err());
        assert!("02:aa:00:00:00:123".parse::<MacAddr>().is_err());
    }
}
