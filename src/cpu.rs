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

/// Proof that the CPU has the POPCNT instruction: the crate is built for baseline x86-64,
/// where `count_ones` is a dozen shifts and adds and a `target_feature` intrinsic is a call
/// that cannot be inlined. Detect once per batch, count many times.
#[derive(Clone, Copy)]
pub struct Popcnt(());

impl Popcnt {
    pub fn detect() -> Option<Popcnt> {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("popcnt") {
            return Some(Popcnt(()));
        }
        None
    }

    /// The number of set bits in `x`.
    #[inline(always)]
    pub fn count(self, x: u64) -> u32 {
        #[cfg(target_arch = "x86_64")]
        {
            let n: u64;
            // SAFETY: a `Popcnt` exists only where `detect` found the instruction; it reads
            // and writes only the two registers named, touches no memory or stack.
            unsafe {
                std::arch::asm!("popcnt {n}, {x}", n = lateout(reg) n, x = in(reg) x,
                    options(pure, nomem, nostack));
            }
            n as u32
        }
        #[cfg(not(target_arch = "x86_64"))]
        x.count_ones()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn popcount_counts_bits() {
        let Some(p) = super::Popcnt::detect() else {
            return;
        };
        for x in [
            0u64,
            1,
            0x8000_0000_0000_0000,
            u64::MAX,
            0x0f0f_1234_5678_9abc,
        ] {
            assert_eq!(p.count(x), x.count_ones());
        }
    }
}
