//! Memory for the lookup tables: zero-filled arrays of atomic 16-bit entries.
//!
//! Entries are atomics so the management thread can edit a published table in place while
//! workers read it (rte_lpm does the same with plain 32-bit stores). On x86 a relaxed atomic
//! load or store is an ordinary `mov`, so lookups cost what they did on plain integers.
//!
//! The memory comes from `calloc`: large tables are fresh anonymous mappings whose pages are
//! faulted in on first touch, so an unused tbl8 reserve costs address space, not RAM. tbl24
//! alone is 32 MiB, and on 4 KiB pages nearly every random lookup also misses the TLB: run
//! with `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` (glibc ≥ 2.35) to have malloc advise
//! transparent huge pages for them (perf/RESULTS.md has the measured difference).
use std::sync::atomic::AtomicU16;

pub(crate) struct AtomicTable {
    cells: Box<[AtomicU16]>,
}

impl AtomicTable {
    /// A zero-filled table of `len` entries.
    pub fn zeroed(len: usize) -> Result<Self, String> {
        let cells = bytemuck::allocation::try_zeroed_slice_box::<AtomicU16>(len).map_err(|()| {
            format!(
                "cannot allocate {} MiB",
                (len * std::mem::size_of::<AtomicU16>()) >> 20
            )
        })?;
        Ok(AtomicTable { cells })
    }

    #[inline(always)]
    pub fn cells(&self) -> &[AtomicU16] {
        &self.cells
    }

    /// Exclusive access while the table is built and not yet shared: plain stores.
    pub fn cells_mut(&mut self) -> &mut [AtomicU16] {
        &mut self.cells
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn zeroed_and_writable() {
        let mut t = AtomicTable::zeroed(1 << 20).unwrap();
        assert_eq!(t.len(), 1 << 20);
        assert!(t.cells().iter().all(|v| v.load(Ordering::Relaxed) == 0));
        *t.cells_mut()[12345].get_mut() = 7;
        t.cells()[7].store(3, Ordering::Relaxed);
        assert_eq!(t.cells()[12345].load(Ordering::Relaxed), 7);
        assert_eq!(t.cells()[7].load(Ordering::Relaxed), 3);
        assert_eq!(AtomicTable::zeroed(0).unwrap().len(), 0);
    }
}
