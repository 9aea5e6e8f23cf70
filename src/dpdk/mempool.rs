//! The packet buffer pool.
//!
//! Mbufs do not hold their pool (a reference count per packet would cost an atomic operation
//! per packet). Instead the pool refuses to be freed while any of its mbufs may be out: its
//! drop frees it only when it can prove every mbuf is back, and otherwise leaks it, with the
//! EAL it lives in, and logs how many were out. An mbuf that outlives its `Mempool` value
//! therefore always returns to memory that is still mapped.
use super::{Eal, Error, Result};
use std::ffi::CString;
use std::ptr::NonNull;

pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
    size: u32,
    /// Keeps the EAL, and with it the pool's memory, up while the pool exists.
    eal: Eal,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer and meant to be shared by lcores.
unsafe impl Send for Mempool {}
// SAFETY: as above; all operations used go through DPDK's thread-safe mempool ops.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `size` mbufs with the default data room (2048 + headroom).
    pub fn new(eal: &Eal, name: &str, size: u32, cache: u32, socket: i32) -> Result<Mempool> {
        let cname = CString::new(name).unwrap_or_default();
        // SAFETY: the EAL is running (we hold a handle); cname is a valid C string; the other
        // arguments are plain values.
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
            .map(|raw| Mempool {
                raw,
                size,
                eal: eal.clone(),
            })
            .ok_or_else(|| Error::new(format!("rte_pktmbuf_pool_create({name}, {size} mbufs)"), -1))
    }

    pub(super) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }

    /// The EAL the pool lives in.
    pub fn eal(&self) -> &Eal {
        &self.eal
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

    /// Allocates one mbuf. It may outlive `self`: see the module documentation.
    pub fn alloc(&self) -> Option<super::Mbuf> {
        // SAFETY: the pool is alive; a non-null result is a fresh mbuf we now own.
        let m = unsafe { dpdk_sys::ag_pktmbuf_alloc(self.raw.as_ptr()) };
        NonNull::new(m).map(super::Mbuf::from_raw)
    }
}

impl Drop for Mempool {
    /// Frees the pool when every mbuf is provably back, else leaks it (and the EAL) with a log.
    ///
    /// Why the proof holds. Nothing can take an mbuf from the pool any more: allocating needs
    /// `&Mempool`, and receiving needs a port or queue handle, which holds an `Arc` of its
    /// pool; so the count of mbufs out can only fall. `rte_mempool_avail_count` adds the ring's
    /// count to the length of every lcore's cache, without synchronising with the threads that
    /// own those caches, so a thread putting mbufs back through its cache while we count can be
    /// counted twice (a cache flushed to the ring between the two reads) and the sum can reach
    /// the pool's size while an mbuf is still out. So the count is trusted only when no cache
    /// can change under us:
    /// - no thread registered by `LcoreRegistration` is alive, and none can register while we
    ///   decide and free (the EAL's lcore count is locked); the caches of threads that
    ///   unregistered hold mbufs nobody touches;
    /// - we run on the main lcore, so its cache is ours.
    ///
    /// Every other thread has no lcore id, so its puts go straight to the ring, and the ring's
    /// count includes a put only once the put has finished with the pool (its tail store is
    /// its last access, as long as DPDK is built without `RTE_LIBRTE_MEMPOOL_STATS`, a debug
    /// option off in the distribution's 22.11). EAL-launched lcores (extra `-l` cores, service
    /// cores) also have caches, but anygate never runs code on them. A full count is then exact: every mbuf is home, none can leave, and
    /// no thread is still inside the pool.
    fn drop(&mut self) {
        let lcores = self.eal.lcores();
        let (free, why) = if *lcores != 0 {
            (
                false,
                format!("{} registered worker lcore(s) alive", *lcores),
            )
        } else if !super::lcore::on_main_lcore() {
            (false, "dropped off the main lcore".to_owned())
        } else {
            let avail = self.available();
            (
                avail == self.size,
                format!(
                    "{} of {} mbufs still out",
                    self.size - avail.min(self.size),
                    self.size
                ),
            )
        };
        if free {
            // SAFETY: every mbuf is back and none can be taken or be in use (see above), the
            // EAL is running (we hold a handle), and the lcore count stays locked until after.
            unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) }
        } else {
            log::warn!("mempool not freed ({why}): left allocated, with the EAL, until exit");
            // Mbufs still out return to this pool later: its memory, and the EAL's, must stay.
            std::mem::forget(self.eal.clone());
        }
        drop(lcores);
    }
}
