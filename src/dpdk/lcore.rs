//! Registering non-EAL threads as DPDK lcores, and the TSC.

/// While alive, the current thread is a registered DPDK lcore (it has an lcore id, so mempool
/// caches work). Unregisters on drop; it must be dropped on the thread that made it.
pub struct LcoreRegistration {
    pub lcore_id: u32,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl LcoreRegistration {
    pub fn register() -> super::Result<Self> {
        // SAFETY: registers the calling thread; the EAL is initialised before workers start.
        let rc = unsafe { dpdk_sys::rte_thread_register() };
        if rc < 0 {
            return Err(super::Error::new("rte_thread_register", -1));
        }
        // SAFETY: reads the calling thread's lcore id.
        let lcore_id = unsafe { dpdk_sys::ag_lcore_id() };
        Ok(LcoreRegistration {
            lcore_id,
            _not_send: std::marker::PhantomData,
        })
    }
}

impl Drop for LcoreRegistration {
    fn drop(&mut self) {
        // SAFETY: same thread that registered (the type is !Send).
        unsafe { dpdk_sys::rte_thread_unregister() }
    }
}

/// The time-stamp counter.
#[inline(always)]
pub fn tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions.
    unsafe { dpdk_sys::ag_rdtsc() }
}

/// TSC ticks per second, as the EAL measured it.
pub fn tsc_hz() -> u64 {
    // SAFETY: plain query after EAL init.
    unsafe { dpdk_sys::ag_tsc_hz() }
}
