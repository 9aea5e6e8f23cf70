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

/// The number of set bits, with the POPCNT instruction when the CPU has it (every CPU DPDK
/// supports does, but the crate is built for baseline x86-64, where `count_ones` is a dozen
/// shifts and adds, and a `target_feature` intrinsic is a call that cannot be inlined): the
/// check is a cached flag, one predictable branch.
#[inline(always)]
pub fn popcount(x: u64) -> u32 {
    #[cfg(all(target_arch = "x86_64", not(target_feature = "popcnt")))]
    if std::is_x86_feature_detected!("popcnt") {
        let n: u64;
        // SAFETY: POPCNT is present (detected at run time just above); the instruction reads
        // and writes only the two registers named, touches no memory or stack, and sets flags.
        unsafe {
            std::arch::asm!("popcnt {n}, {x}", n = lateout(reg) n, x = in(reg) x,
                options(pure, nomem, nostack));
        }
        return n as u32;
    }
    x.count_ones()
}

#[cfg(test)]
mod tests {
    #[test]
    fn popcount_counts_bits() {
        for x in [
            0u64,
            1,
            0x8000_0000_0000_0000,
            u64::MAX,
            0x0f0f_1234_5678_9abc,
        ] {
            assert_eq!(super::popcount(x), x.count_ones());
        }
    }
}
