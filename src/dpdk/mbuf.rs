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
    #[inline(always)]
    pub(super) fn from_raw(p: NonNull<dpdk_sys::rte_mbuf>) -> Self {
        Mbuf(p)
    }

    /// Gives up ownership without freeing.
    #[inline(always)]
    pub(super) fn into_raw(self) -> *mut dpdk_sys::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    #[inline(always)]
    fn raw(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: we own a live mbuf for as long as self exists.
        unsafe { self.0.as_ref() }
    }

    fn raw_mut(&mut self) -> &mut dpdk_sys::rte_mbuf {
        // SAFETY: we own a live mbuf, and &mut self makes this the only reference to it.
        unsafe { self.0.as_mut() }
    }

    /// Bytes in the first segment.
    #[inline(always)]
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

/// A burst of up to N mbufs, held as the raw pointer array that burst calls read and write,
/// so rx and tx bursts go straight into and out of it (no copy, no per-slot `Option` test:
/// callgrind counted ~40 instructions per packet in the copies and byte sums around them).
/// Invariant: `slots[..len]` are mbufs this array owns; the rest are stale and never read
/// (a vector rx path may write pointers past the count it returns).
pub struct MbufArray<const N: usize> {
    slots: [*mut dpdk_sys::rte_mbuf; N],
    len: usize,
    /// Bytes (first segments) of the mbufs pushed since the array was last emptied, so a tx
    /// burst needs no pass over its mbufs to count them; not kept (`pushed` false) when an
    /// rx burst filled the array.
    bytes: u64,
    pushed: bool,
}

// SAFETY: the array owns the mbufs in slots[..len] as `Mbuf` values would (which are Send);
// the stale pointers past len are never dereferenced.
unsafe impl<const N: usize> Send for MbufArray<N> {}

impl<const N: usize> Default for MbufArray<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> MbufArray<N> {
    pub fn new() -> Self {
        MbufArray {
            slots: [std::ptr::null_mut(); N],
            len: 0,
            bytes: 0,
            pushed: true,
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
    #[inline(always)]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        let Some(slot) = self.slots.get_mut(self.len) else {
            return Err(m);
        };
        self.bytes += m.data_len() as u64;
        *slot = m.into_raw();
        self.len += 1;
        Ok(())
    }

    /// The mbufs as a slice, for the pipeline.
    #[inline(always)]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        let len = self.len.min(N);
        // SAFETY: Mbuf is repr(transparent) over a NonNull, so it has the layout of a
        // non-null `*mut rte_mbuf`; slots[..len] are non-null mbufs owned here (the invariant),
        // and the slice borrows self, so none is taken out meanwhile.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr() as *mut Mbuf, len) }
    }

    /// Takes every mbuf out, in order, leaving the array empty; those the caller does not
    /// take are freed when the iterator is dropped.
    #[inline(always)]
    pub fn drain(&mut self) -> Drain<'_> {
        let n = std::mem::take(&mut self.len).min(N);
        (self.bytes, self.pushed) = (0, true);
        Drain(self.slots[..n].iter())
    }

    /// Frees every mbuf with one bulk call.
    #[inline(always)]
    pub fn free_all(&mut self) {
        let n = std::mem::take(&mut self.len).min(N);
        (self.bytes, self.pushed) = (0, true);
        if n > 0 {
            // SAFETY: slots[..n] are mbufs we owned, and len is 0 now, so no longer ours.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.slots.as_mut_ptr(), n as u32) }
        }
    }

    /// Fills the array from an rx queue, freeing what it held first.
    ///
    /// # Safety
    /// `queue` is a set-up rx queue of port `port`, which stays configured (not closed) for
    /// the call, and no other burst runs on that queue meanwhile (DPDK indexes its queue array
    /// unchecked, and a queue's burst is not thread-safe). `RxQueue` guarantees both.
    #[inline(always)]
    pub(super) unsafe fn rx_from(&mut self, port: u16, queue: u16) -> usize {
        if self.len != 0 {
            self.free_all();
        }
        let want = N.min(u16::MAX as usize) as u16;
        // SAFETY: the queue exists and is ours for the call (the caller's contract); slots has
        // room for `want` pointers; the PMD hands over the first n it returns, each a non-null
        // mbuf (rte_eth_rx_burst's contract), which is the invariant for slots[..n].
        let n = unsafe { dpdk_sys::ag_rx_burst(port, queue, self.slots.as_mut_ptr(), want) };
        self.len = (n as usize).min(N);
        (self.bytes, self.pushed) = (0, false);
        self.len
    }

    /// Sends every mbuf; frees in bulk what the NIC refused. Returns (sent, bytes sent).
    ///
    /// # Safety
    /// As [`MbufArray::rx_from`], for a tx queue: `TxQueue` guarantees it.
    #[inline(always)]
    pub(super) unsafe fn tx_to(&mut self, port: u16, queue: u16) -> (usize, u64) {
        let n = std::mem::take(&mut self.len).min(N);
        let (all, pushed) = (self.bytes, self.pushed);
        (self.bytes, self.pushed) = (0, true);
        if n == 0 {
            return (0, 0);
        }
        // Filled by rx (not by push): count before the PMD owns them.
        let all = if pushed { all } else { self.sum_bytes(0, n) };
        let p = self.slots.as_mut_ptr();
        // SAFETY: the queue exists and is ours for the call (the caller's contract);
        // slots[..n] are owned mbufs; the PMD takes ownership of the first `sent`.
        let sent = (unsafe { dpdk_sys::ag_tx_burst(port, queue, p, n as u16) } as usize).min(n);
        if sent == n {
            return (n, all);
        }
        // slots[sent..n] were refused, so we still own them: count, then free them.
        let refused = self.sum_bytes(sent, n);
        // SAFETY: slots[sent..n] are owned mbufs, freed once here (len is already 0).
        unsafe { dpdk_sys::rte_pktmbuf_free_bulk(p.add(sent), (n - sent) as u32) }
        (sent, all - refused)
    }

    /// Bytes in the first segments of slots[from..to], all owned by this array.
    fn sum_bytes(&self, from: usize, to: usize) -> u64 {
        self.slots[from..to]
            .iter()
            // SAFETY: the caller names owned mbufs only (the invariant, before they are handed
            // to a PMD or freed); reading their header is reading our own memory.
            .map(|p| unsafe { (**p).data_len } as u64)
            .sum()
    }
}

/// The mbufs of a drained [`MbufArray`], in order; those not taken are freed on drop.
pub struct Drain<'a>(std::slice::Iter<'a, *mut dpdk_sys::rte_mbuf>);

impl Iterator for Drain<'_> {
    type Item = Mbuf;
    #[inline(always)]
    fn next(&mut self) -> Option<Mbuf> {
        // SAFETY: the pointers come from slots[..len] of a drained array, owned mbufs
        // (non-null by the invariant), each yielded once and no longer the array's.
        self.0
            .next()
            .map(|p| Mbuf::from_raw(unsafe { NonNull::new_unchecked(*p) }))
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        self.for_each(drop);
    }
}

impl<const N: usize> Drop for MbufArray<N> {
    fn drop(&mut self) {
        self.free_all();
    }
}
