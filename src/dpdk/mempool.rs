//! The packet buffer pool.
use super::{Error, Result};
use std::ffi::CString;
use std::ptr::NonNull;

pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
    size: u32,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer and meant to be shared by lcores.
unsafe impl Send for Mempool {}
// SAFETY: as above; all operations used go through DPDK's thread-safe mempool ops.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `size` mbufs with the default data room (2048 + headroom).
    pub fn new(name: &str, size: u32, cache: u32, socket: i32) -> Result<Mempool> {
        let cname = CString::new(name).unwrap_or_default();
        // SAFETY: cname is a valid C string; the other arguments are plain values.
        let p = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                size,
                cache,
                0,
                dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                socket,
            )
        };
        NonNull::new(p)
            .map(|raw| Mempool { raw, size })
            .ok_or_else(|| Error::new(format!("rte_pktmbuf_pool_create({name}, {size} mbufs)"), -1))
    }

    pub(super) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Free mbufs, including those in per-lcore caches.
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive for &self.
        unsafe { dpdk_sys::ag_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs currently allocated: held by NICs, workers, or leaked.
    pub fn in_use(&self) -> u32 {
        self.size.saturating_sub(self.available())
    }

    /// Allocates one mbuf.
    pub fn alloc(&self) -> Option<super::Mbuf> {
        // SAFETY: the pool is alive; a non-null result is a fresh mbuf we now own.
        let m = unsafe { dpdk_sys::ag_pktmbuf_alloc(self.raw.as_ptr()) };
        NonNull::new(m).map(super::Mbuf::from_raw)
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: dropped after every port using it was closed and every mbuf returned.
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
