//! Registering non-EAL threads as DPDK lcores, and the TSC.
use super::Eal;

/// While alive, the current thread is a registered DPDK lcore (it has an lcore id, so mempool
/// caches work). Unregisters on drop; it must be dropped on the thread that made it, so it is
/// neither `Send` nor `Sync`. It keeps the EAL running, and counts itself with the EAL so that
/// a mempool knows whether another thread may be using a cache of it (see `Mempool`'s drop).
pub struct LcoreRegistration {
    pub lcore_id: u32,
    eal: Eal,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl LcoreRegistration {
    pub fn register(eal: &Eal) -> super::Result<Self> {
        let mut count = eal.lcores();
        // SAFETY: registers the calling thread; the EAL is running (we hold a handle).
        let rc = unsafe { dpdk_sys::rte_thread_register() };
        if rc < 0 {
            return Err(super::Error::new("rte_thread_register", -1));
        }
        *count += 1;
        // SAFETY: reads the calling thread's lcore id.
        let lcore_id = unsafe { dpdk_sys::ag_lcore_id() };
        Ok(LcoreRegistration {
            lcore_id,
            eal: eal.clone(),
            _not_send: std::marker::PhantomData,
        })
    }
}

impl Drop for LcoreRegistration {
    fn drop(&mut self) {
        let mut count = self.eal.lcores();
        // SAFETY: same thread that registered (the type is !Send), EAL still running (we hold
        // a handle).
        unsafe { dpdk_sys::rte_thread_unregister() }
        *count -= 1;
    }
}

/// Whether the calling thread is the EAL's main lcore (the thread that started the EAL).
pub(super) fn on_main_lcore() -> bool {
    // SAFETY: plain queries of this thread's lcore id and the EAL's configuration.
    unsafe { dpdk_sys::ag_lcore_id() == dpdk_sys::rte_get_main_lcore() }
}

/// The time-stamp counter.
#[inline(always)]
pub fn tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions.
    unsafe { dpdk_sys::ag_rdtsc() }
}

/// TSC ticks per second, as the EAL measured it.
pub fn tsc_hz() -> u64 {
    // SAFETY: plain query; the EAL fills the value at init (0 before).
    unsafe { dpdk_sys::ag_tsc_hz() }
}
