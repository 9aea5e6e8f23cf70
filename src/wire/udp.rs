//! The port pair at the start of a UDP header (TCP's ports sit in the same place).

/// Bytes holding the two ports.
pub const PORTS_LEN: usize = 4;

/// A view of the source and destination ports at the start of a UDP or TCP header.
pub struct Ports<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ports<T> {
    /// Needs only the ports, not a whole header: the firewall and the ECMP hash read what is
    /// there.
    #[inline]
    pub fn new_checked(buf: T) -> Option<Self> {
        (buf.as_ref().len() >= PORTS_LEN).then_some(Ports { buf })
    }
    /// For a buffer already known to hold the ports (a checked TCP header).
    #[inline]
    pub(super) fn new_unchecked(buf: T) -> Self {
        Ports { buf }
    }
    #[inline]
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    #[inline]
    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes([self.b()[0], self.b()[1]])
    }
    #[inline]
    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]])
    }
    /// Both ports as one word, source high: what the flow hash mixes.
    #[inline]
    pub fn word(&self) -> u32 {
        u32::from_be_bytes([self.b()[0], self.b()[1], self.b()[2], self.b()[3]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        let p = Ports::new_checked(&[0x12, 0x34, 0x01, 0xbb][..]).unwrap();
        assert_eq!(
            (p.src_port(), p.dst_port(), p.word()),
            (0x1234, 443, 0x1234_01bb)
        );
        assert!(Ports::new_checked(&[0u8; 3][..]).is_none());
    }
}
