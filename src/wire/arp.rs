//! ARP for IPv4 over Ethernet (RFC 826): parsing, answering in place, and building requests.
use super::ethernet::{self, MacAddr};

pub const PACKET_LEN: usize = 28;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

mod field {
    use std::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// A view of an Ethernet/IPv4 ARP packet (the Ethernet payload).
pub struct Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Accepts only hardware type Ethernet, protocol IPv4 and the matching address lengths.
    pub fn new_checked(buf: T) -> Option<Self> {
        let b = buf.as_ref();
        let ok = b.len() >= PACKET_LEN
            && b[field::HTYPE] == [0, 1]
            && b[field::PTYPE] == [0x08, 0x00]
            && b[field::HLEN] == 6
            && b[field::PLEN] == 4;
        ok.then_some(Packet { buf })
    }
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    pub fn operation(&self) -> u16 {
        u16::from_be_bytes([self.b()[6], self.b()[7]])
    }
    pub fn sender_mac(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.b()[field::SHA]);
        MacAddr(m)
    }
    pub fn sender_ip(&self) -> u32 {
        let s = &self.b()[field::SPA];
        u32::from_be_bytes([s[0], s[1], s[2], s[3]])
    }
    pub fn target_ip(&self) -> u32 {
        let s = &self.b()[field::TPA];
        u32::from_be_bytes([s[0], s[1], s[2], s[3]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Turns a request for `our_ip` into the reply from `our_mac`, in place.
    pub fn make_reply(&mut self, our_mac: MacAddr, our_ip: u32) {
        let asker_mac = self.sender_mac();
        let asker_ip = self.sender_ip();
        write_body(
            self.buf.as_mut(),
            OP_REPLY,
            our_mac,
            our_ip,
            asker_mac,
            asker_ip,
        );
    }
}

fn write_body(b: &mut [u8], op: u16, sha: MacAddr, spa: u32, tha: MacAddr, tpa: u32) {
    b[field::HTYPE].copy_from_slice(&[0, 1]);
    b[field::PTYPE].copy_from_slice(&[0x08, 0x00]);
    b[field::HLEN] = 6;
    b[field::PLEN] = 4;
    b[field::OPER].copy_from_slice(&op.to_be_bytes());
    b[field::SHA].copy_from_slice(&sha.0);
    b[field::SPA].copy_from_slice(&spa.to_be_bytes());
    b[field::THA].copy_from_slice(&tha.0);
    b[field::TPA].copy_from_slice(&tpa.to_be_bytes());
}

/// Writes a broadcast who-has request for `target_ip` into `frame` (at least 60 bytes: the
/// minimum Ethernet frame, zero padded). Returns the frame length, or None if it is too short.
pub fn write_request(
    frame: &mut [u8],
    our_mac: MacAddr,
    our_ip: u32,
    target_ip: u32,
) -> Option<usize> {
    let frame = frame.get_mut(..ethernet::MIN_FRAME_LEN)?;
    frame.fill(0);
    let mut eth = ethernet::Frame::new_checked(&mut *frame)?;
    eth.set_dst(MacAddr::BROADCAST);
    eth.set_src(our_mac);
    eth.set_ethertype(ethernet::ETHERTYPE_ARP);
    write_body(
        eth.payload_mut(),
        OP_REQUEST,
        our_mac,
        our_ip,
        MacAddr::ZERO,
        target_ip,
    );
    Some(ethernet::MIN_FRAME_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_then_reply() {
        let me = MacAddr([2, 0, 0, 0, 0, 1]);
        let peer = MacAddr([2, 0, 0, 0, 0, 2]);
        let mut f = [0u8; 64];
        assert_eq!(
            write_request(&mut f, peer, 0x0a000002, 0x0a000001),
            Some(60)
        );
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        let mut p = Packet::new_checked(&mut f[14..]).unwrap();
        assert_eq!(p.operation(), OP_REQUEST);
        assert_eq!(p.target_ip(), 0x0a000001);
        p.make_reply(me, 0x0a000001);
        assert_eq!(p.operation(), OP_REPLY);
        assert_eq!(p.sender_mac(), me);
        assert_eq!(p.sender_ip(), 0x0a000001);
        assert_eq!(&f[14 + 18..14 + 24], &peer.0);
        assert_eq!(&f[14 + 24..14 + 28], &[10, 0, 0, 2]);
    }

    #[test]
    fn rejects_non_ethernet_ipv4() {
        let mut f = [0u8; 64];
        write_request(&mut f, MacAddr::ZERO, 1, 2).unwrap();
        f[14 + 1] = 6; // htype 6
        assert!(Packet::new_checked(&f[14..]).is_none());
        assert!(Packet::new_checked(&f[14..30]).is_none());
    }
}
