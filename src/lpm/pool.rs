//! Space for the lookup index's node and leaf arrays: a fixed capacity handed out as
//! contiguous extents (Poptrie needs each slot's nodes, and each node's children, side by
//! side). Freed extents are split into power-of-two pieces on per-size free lists; an
//! extent taken from a larger piece returns the rest the same way. Extents a reader may still
//! be in are retired with an epoch and reused only once every reader has passed it.
//!
//! Management thread only; the arrays themselves live in the index.

/// A run of `len` entries from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Extent {
    pub start: u32,
    pub len: u32,
}

pub(super) struct Pool {
    capacity: u32,
    /// Entries never handed out start here.
    bump: u32,
    /// `free[k]`: starts of free pieces of exactly 2^k entries.
    free: Vec<Vec<u32>>,
    retired: Vec<(u64, Extent)>,
    /// Entries in live extents.
    used: u32,
}

impl Pool {
    /// A pool of `capacity` entries whose first `reserved` are already taken (entry 0 is
    /// never handed out, so a zeroed word never names a real extent).
    pub fn new(capacity: u32, reserved: u32) -> Pool {
        Pool {
            capacity,
            bump: reserved.max(1),
            free: vec![Vec::new(); 33],
            retired: Vec::new(),
            used: reserved,
        }
    }

    /// A fresh extent of `len` entries, or None when the pool has no room left.
    pub fn alloc(&mut self, len: u32) -> Option<Extent> {
        if len == 0 {
            return Some(Extent::default());
        }
        let class = len.next_power_of_two().trailing_zeros() as usize;
        let start = match (class..self.free.len()).find(|k| !self.free[*k].is_empty()) {
            Some(k) => {
                let s = self.free[k].pop()?;
                self.give_back(s + len, (1u32 << k) - len);
                s
            }
            None if self.capacity - self.bump >= len => {
                self.bump += len;
                self.bump - len
            }
            None => return None,
        };
        self.used += len;
        Some(Extent { start, len })
    }

    /// `e` may still be read until readers pass `epoch`.
    pub fn retire(&mut self, e: Extent, epoch: u64) {
        if e.len > 0 {
            self.used -= e.len;
            self.retired.push((epoch, e));
        }
    }

    /// Makes extents retired at epochs up to `acked` reusable; returns how many wait.
    pub fn reclaim(&mut self, acked: u64) -> usize {
        let mut i = 0;
        while i < self.retired.len() {
            if self.retired[i].0 <= acked {
                let (_, e) = self.retired.swap_remove(i);
                self.give_back(e.start, e.len);
            } else {
                i += 1;
            }
        }
        self.retired.len()
    }

    /// Entries in live extents (retired and free ones not counted).
    pub fn used(&self) -> u32 {
        self.used
    }

    /// Puts `len` entries from `start` on the free lists, as power-of-two pieces.
    fn give_back(&mut self, mut start: u32, len: u32) {
        for k in (0..32).rev() {
            if len & (1 << k) != 0 {
                self.free[k].push(start);
                start += 1 << k;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_never_overlap_and_come_back_after_the_epoch() {
        let mut p = Pool::new(100, 10);
        let a = p.alloc(30).unwrap();
        assert_eq!(a, Extent { start: 10, len: 30 });
        let b = p.alloc(50).unwrap();
        assert_eq!(b.start, 40);
        assert_eq!(p.alloc(11), None, "10 entries left");
        p.retire(a, 3);
        assert_eq!(p.alloc(11), None, "retired, not yet free");
        assert_eq!(p.reclaim(2), 1);
        assert_eq!(p.reclaim(3), 0);
        // 30 came back as pieces of 16, 8, 4 and 2.
        let c = p.alloc(11).unwrap();
        assert_eq!(c, Extent { start: 10, len: 11 });
        let d = p.alloc(5).unwrap();
        assert!(d.start >= 21 && d.start + 5 <= 40, "{d:?}");
        assert_eq!(p.used(), 10 + 50 + 11 + 5);
        assert_eq!(p.alloc(0), Some(Extent::default()));
    }

    #[test]
    fn random_churn_keeps_extents_disjoint() {
        let mut p = Pool::new(4096, 1);
        let mut live: Vec<Extent> = Vec::new();
        let mut x = 12345u64;
        for step in 0..5000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if x >> 63 == 0 || live.is_empty() {
                if let Some(e) = p.alloc(((x >> 40) % 90) as u32 + 1) {
                    live.push(e);
                }
            } else {
                let e = live.swap_remove(((x >> 20) as usize) % live.len());
                p.retire(e, step);
            }
            p.reclaim(step.saturating_sub(3));
            let mut s = live.clone();
            s.sort_by_key(|e| e.start);
            for w in s.windows(2) {
                assert!(w[0].start + w[0].len <= w[1].start, "{w:?}");
            }
            assert!(s.iter().all(|e| e.start >= 1 && e.start + e.len <= 4096));
            assert_eq!(p.used(), 1 + live.iter().map(|e| e.len).sum::<u32>());
        }
    }
}
