//! The buffer the pipeline works on. DPDK's mbuf and the in-memory [`VecBuf`] both implement
//! it, so every stage runs unchanged in unit tests, benchmarks, fuzzers and `trace`. Below
//! both `datapath` and `dpdk`; depends on neither.

pub trait PacketBuf: AsRef<[u8]> + AsMut<[u8]> {
    /// Grows the packet at the front by `n` bytes of headroom; None when there is no room.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Removes `n` bytes from the front; false when the packet is shorter.
    fn trim_front(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the back; false when the packet is shorter.
    fn trim_back(&mut self, n: usize) -> bool;
    /// False for a packet chained over several segments: the pipeline needs one slice.
    fn is_contiguous(&self) -> bool {
        true
    }
}

/// Headroom the in-memory buffer keeps, as DPDK's RTE_PKTMBUF_HEADROOM.
pub const HEADROOM: usize = 128;

/// An owned packet with headroom, for tests, benchmarks and `trace`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl VecBuf {
    pub fn from_bytes(data: &[u8]) -> Self {
        let mut buf = vec![0u8; HEADROOM + data.len()];
        buf[HEADROOM..].copy_from_slice(data);
        VecBuf {
            buf,
            start: HEADROOM,
            end: HEADROOM + data.len(),
        }
    }
    /// Replaces the contents, keeping the allocation (for benchmarks that replay a burst).
    pub fn reset(&mut self, data: &[u8]) {
        if self.buf.len() < HEADROOM + data.len() {
            self.buf.resize(HEADROOM + data.len(), 0);
        }
        self.start = HEADROOM;
        self.end = HEADROOM + data.len();
        self.buf[self.start..self.end].copy_from_slice(data);
    }
}

// Inlined as `Mbuf`'s are: the in-memory benchmarks and tests then compile the stages as
// the workers do (out of line, the decap path paid ~36 instructions a packet in calls).
impl AsRef<[u8]> for VecBuf {
    #[inline(always)]
    fn as_ref(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}
impl AsMut<[u8]> for VecBuf {
    #[inline(always)]
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }
}

impl PacketBuf for VecBuf {
    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start {
            return None;
        }
        self.start -= n;
        Some(&mut self.buf[self.start..self.end])
    }
    #[inline]
    fn trim_front(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    #[inline]
    fn trim_back(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.end -= n;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_and_trim() {
        let mut b = VecBuf::from_bytes(&[1, 2, 3, 4]);
        assert!(b.trim_front(1));
        assert_eq!(b.as_ref(), &[2, 3, 4]);
        let h = b.prepend(2).unwrap();
        h[0] = 9;
        h[1] = 8;
        assert_eq!(b.as_ref(), &[9, 8, 2, 3, 4]);
        assert!(b.trim_back(2));
        assert_eq!(b.as_ref(), &[9, 8, 2]);
        assert!(!b.trim_back(4));
        assert!(b.prepend(HEADROOM).is_none());
    }
}
