//! Owned mbufs and fixed-size mbuf arrays for bursts.
use crate::packet::PacketBuf;
use std::ptr::NonNull;

/// One owned mbuf, freed on drop. `repr(transparent)` over a non-null pointer, so an array of
/// `Option<Mbuf>` has the layout of the `struct rte_mbuf **` that bursts use.
///
/// An mbuf does not hold its pool (that would be an atomic operation per packet); its pool's
/// memory stays mapped for as long as it lives because a `Mempool` is freed only once every
/// one of its mbufs is back, and leaked otherwise (see `Mempool`'s drop). This holds for
/// mbufs from `Mempool::alloc` and from rx bursts alike: a port's rx queues fill from the pool
/// the port holds.
#[repr(transparent)]
pub struct Mbuf(NonNull<dpdk_sys::rte_mbuf>);

// SAFETY: an mbuf is owned by exactly one Mbuf value; moving it between lcores is how DPDK
// pipelines work, and the mempool it returns to is thread-safe.
unsafe impl Send for Mbuf {}

impl Mbuf {
    pub(super) fn from_raw(p: NonNull<dpdk_sys::rte_mbuf>) -> Self {
        Mbuf(p)
    }

    /// Gives up ownership without freeing.
    pub(super) fn into_raw(self) -> *mut dpdk_sys::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    fn raw(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: we own a live mbuf for as long as self exists.
        unsafe { self.0.as_ref() }
    }

    fn raw_mut(&mut self) -> &mut dpdk_sys::rte_mbuf {
        // SAFETY: we own a live mbuf, and &mut self makes this the only reference to it.
        unsafe { self.0.as_mut() }
    }

    /// Bytes in the first segment.
    pub fn data_len(&self) -> usize {
        self.raw().data_len as usize
    }

    /// Extends the packet at the tail by `n` bytes; returns the whole data.
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let n = u16::try_from(n).ok()?;
        // SAFETY: we own the mbuf; append checks the tailroom and returns null when short.
        let p = unsafe { dpdk_sys::ag_pktmbuf_append(self.0.as_ptr(), n) };
        (!p.is_null()).then(|| self.as_mut())
    }

    pub fn headroom(&self) -> usize {
        // SAFETY: we own a live mbuf.
        unsafe { dpdk_sys::ag_pktmbuf_headroom(self.0.as_ptr()) as usize }
    }
}

impl AsRef<[u8]> for Mbuf {
    #[inline(always)]
    fn as_ref(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off is the first data byte of the first segment, and
        // data_len bytes from there lie inside its buffer; we own the mbuf, so nobody writes.
        unsafe {
            std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }
}

impl AsMut<[u8]> for Mbuf {
    #[inline(always)]
    fn as_mut(&mut self) -> &mut [u8] {
        let m = self.raw();
        let (addr, off, len) = (
            m.buf_addr as *mut u8,
            m.data_off as usize,
            m.data_len as usize,
        );
        // SAFETY: as in as_ref, and &mut self guarantees exclusive access to the bytes.
        unsafe { std::slice::from_raw_parts_mut(addr.add(off), len) }
    }
}

// Single-segment mbufs (every packet the pipeline modifies) are adjusted here, in Rust, as
// rte_pktmbuf_prepend/adj/trim would: the shim's C functions cannot be inlined across the
// language boundary, and these run on every tunnelled packet.
impl PacketBuf for Mbuf {
    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n = u16::try_from(n).ok()?;
        if self.raw().nb_segs != 1 {
            // SAFETY: we own the mbuf; prepend checks the headroom and returns null when short.
            let p = unsafe { dpdk_sys::ag_pktmbuf_prepend(self.0.as_ptr(), n) };
            return (!p.is_null()).then(|| self.as_mut());
        }
        let m = self.raw_mut();
        if n > m.data_off {
            return None;
        }
        m.data_off -= n;
        m.data_len += n;
        m.pkt_len += n as u32;
        Some(self.as_mut())
    }
    #[inline]
    fn trim_front(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        let m = self.raw_mut();
        if m.nb_segs != 1 {
            // SAFETY: we own the mbuf; adj refuses (null) when the first segment is shorter.
            return unsafe { !dpdk_sys::ag_pktmbuf_adj(self.0.as_ptr(), n).is_null() };
        }
        if n > m.data_len {
            return false;
        }
        m.data_off += n;
        m.data_len -= n;
        m.pkt_len -= n as u32;
        true
    }
    #[inline]
    fn trim_back(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        let m = self.raw_mut();
        if m.nb_segs != 1 {
            // SAFETY: we own the mbuf; trim refuses (-1) when the last segment is shorter.
            return unsafe { dpdk_sys::ag_pktmbuf_trim(self.0.as_ptr(), n) == 0 };
        }
        if n > m.data_len {
            return false;
        }
        m.data_len -= n;
        m.pkt_len -= n as u32;
        true
    }
    #[inline]
    fn is_contiguous(&self) -> bool {
        self.raw().nb_segs == 1
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and give it back exactly once.
        unsafe { dpdk_sys::ag_pktmbuf_free(self.0.as_ptr()) }
    }
}

/// A burst of up to N mbufs. Invariant: `slots[..len]` are `Some`, the rest `None`.
pub struct MbufArray<const N: usize> {
    slots: [Option<Mbuf>; N],
    len: usize,
}

impl<const N: usize> Default for MbufArray<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> MbufArray<N> {
    pub fn new() -> Self {
        MbufArray {
            slots: std::array::from_fn(|_| None),
            len: 0,
        }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Adds an mbuf; hands it back when full.
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == N {
            return Err(m);
        }
        self.slots[self.len] = Some(m);
        self.len += 1;
        Ok(())
    }

    /// The mbufs as a slice, for the pipeline.
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        let len = self.len.min(N);
        // SAFETY: Option<Mbuf> has Mbuf's layout (null-pointer optimisation over a
        // repr(transparent) NonNull), and slots[..len] are all Some by the invariant.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr() as *mut Mbuf, len) }
    }

    /// Takes every mbuf out, in order, leaving the array empty.
    pub fn drain(&mut self) -> impl Iterator<Item = Mbuf> + '_ {
        let n = std::mem::take(&mut self.len);
        self.slots[..n].iter_mut().filter_map(Option::take)
    }

    /// Moves the mbufs out as raw pointers, for a burst call; returns how many.
    fn take_raw(&mut self, out: &mut [*mut dpdk_sys::rte_mbuf; N]) -> usize {
        let mut n = 0;
        for m in self.drain() {
            out[n] = m.into_raw();
            n += 1;
        }
        n
    }

    /// Frees every mbuf with one bulk call.
    pub fn free_all(&mut self) {
        let mut raw = [std::ptr::null_mut(); N];
        let n = self.take_raw(&mut raw);
        if n > 0 {
            // SAFETY: raw[..n] are mbufs we owned and no longer reference.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(raw.as_mut_ptr(), n as u32) }
        }
    }

    /// Fills the array from an rx queue, freeing what it held first.
    ///
    /// # Safety
    /// `queue` is a set-up rx queue of port `port`, which stays configured (not closed) for
    /// the call, and no other burst runs on that queue meanwhile (DPDK indexes its queue array
    /// unchecked, and a queue's burst is not thread-safe). `RxQueue` guarantees both.
    pub(super) unsafe fn rx_from(&mut self, port: u16, queue: u16) -> usize {
        if self.len != 0 {
            self.free_all();
        }
        let mut raw = [std::ptr::null_mut(); N];
        let want = N.min(u16::MAX as usize) as u16;
        // SAFETY: the queue exists and is ours for the call (the caller's contract); raw has
        // room for `want` pointers; the PMD writes that many at most, each an mbuf it hands
        // over to us.
        let n = unsafe { dpdk_sys::ag_rx_burst(port, queue, raw.as_mut_ptr(), want) } as usize;
        for (slot, p) in self.slots.iter_mut().zip(&raw[..n]) {
            *slot = NonNull::new(*p).map(Mbuf::from_raw);
        }
        self.len = n;
        n
    }

    /// Sends every mbuf; frees in bulk what the NIC refused. Returns (sent, bytes sent).
    ///
    /// # Safety
    /// As [`MbufArray::rx_from`], for a tx queue: `TxQueue` guarantees it.
    pub(super) unsafe fn tx_to(&mut self, port: u16, queue: u16) -> (usize, u64) {
        let mut lens = [0u16; N];
        for (l, m) in lens.iter_mut().zip(self.slots[..self.len].iter().flatten()) {
            *l = m.data_len() as u16;
        }
        let mut raw = [std::ptr::null_mut(); N];
        let n = self.take_raw(&mut raw);
        if n == 0 {
            return (0, 0);
        }
        // SAFETY: the queue exists and is ours for the call (the caller's contract); raw[..n]
        // are owned mbufs; the PMD takes ownership of the first `sent`.
        let sent =
            unsafe { dpdk_sys::ag_tx_burst(port, queue, raw.as_mut_ptr(), n as u16) } as usize;
        if sent < n {
            // SAFETY: raw[sent..n] were refused, so we still own them.
            unsafe {
                dpdk_sys::rte_pktmbuf_free_bulk(raw.as_mut_ptr().add(sent), (n - sent) as u32)
            }
        }
        (sent, lens[..sent].iter().map(|l| *l as u64).sum())
    }
}

impl<const N: usize> Drop for MbufArray<N> {
    fn drop(&mut self) {
        self.free_all();
    }
}
