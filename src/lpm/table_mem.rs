//! Memory for the lookup tables: an anonymous mapping advised to use transparent huge pages.
//! tbl24 alone is 64 MiB; on 4 KiB pages nearly every random lookup also misses the TLB.
//! Measured here: huge pages cut bulk lookup cost by about a third (perf/RESULTS.md).
use memmap2::{Advice, MmapMut, MmapOptions};

pub(crate) struct U32Table {
    map: Option<MmapMut>,
}

impl U32Table {
    /// A zero-filled table of `len` entries. Huge pages are a hint: without them (THP off,
    /// or not available) the table still works on normal pages.
    pub fn zeroed(len: usize) -> std::io::Result<Self> {
        if len == 0 {
            return Ok(U32Table { map: None });
        }
        let map = MmapOptions::new().len(len * 4).map_anon()?;
        let _ = map.advise(Advice::HugePage);
        Ok(U32Table { map: Some(map) })
    }

    #[inline(always)]
    pub fn as_slice(&self) -> &[u32] {
        // A mapping is page-aligned and a whole number of u32s, so the cast cannot fail.
        self.map.as_deref().map_or(&[], bytemuck::cast_slice)
    }

    pub fn as_mut_slice(&mut self) -> &mut [u32] {
        self.map
            .as_deref_mut()
            .map_or(&mut [], bytemuck::cast_slice_mut)
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_and_writable() {
        let mut t = U32Table::zeroed(1 << 20).unwrap();
        assert_eq!(t.len(), 1 << 20);
        assert!(t.as_slice().iter().all(|v| *v == 0));
        t.as_mut_slice()[12345] = 7;
        assert_eq!(t.as_slice()[12345], 7);
        assert_eq!(U32Table::zeroed(0).unwrap().len(), 0);
    }
}
