//! CPU hints for the fast path. `prefetch` is `rte_prefetch0` for Rust references: a cache
//! hint for a table entry a later load needs. This module and `dpdk` are the only ones that
//! may use `unsafe`: the intrinsic is `unsafe` only because it is a target-feature function
//! taking a pointer; it reads nothing and cannot fault.

/// Asks the CPU to bring `r`'s cache line into L1.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 belongs to SSE, which every x86_64 CPU has; it is only a hint (it
    // never faults, even on a bad address), and this address comes from a live reference.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (r as *const T).cast::<i8>(),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}
