//! The compressed first level lookups read instead of the 64 MiB tbl24.
//!
//! tbl24 stays the editor's truth (and a reader's fallback), but a random lookup into it is a
//! TLB miss and a cache miss. Lookups go through `top` instead: one 32-bit entry per /16
//! (256 KiB), either
//! - a tbl24 entry (no [`EXT`] bit): every /24 of the /16 holds that entry (a value or a miss);
//! - `EXT | b`: block `b` of the pool, the /16's 256 tbl24 entries run-length compressed;
//! - [`FALLBACK`]: read tbl24 itself (the pool had no room for the block).
//!
//! A block is 64 header words, then one tbl24 entry per run of equal entries: header byte `s`
//! (of word `s / 4`, little end first) is the run /24 `s` belongs to, so /24 `s` reads entry
//! `64 + byte s`: two loads, no search. Real tables have few runs per /16 (neighbouring
//! prefixes share a next hop or a miss), so the blocks of the 494k-prefix table fit in a few
//! MiB: in cache and in the TLB's reach, where tbl24 is 64 MiB of 4 KiB pages.
//!
//! Blocks are immutable once published. When an edit changes a /16's tbl24 entries, the editor
//! writes a new block and publishes it with one release store into `top`; the old one is
//! retired and reused only after readers acknowledged the epoch, like tbl8 groups.
use super::dir24_8::{Dir24_8, EXT};
use std::sync::atomic::{AtomicU32, Ordering};

pub(super) const TOP_SIZE: usize = 1 << 16;
/// `top` entry: this /16 is looked up in tbl24.
pub(super) const FALLBACK: u32 = u32::MAX;
/// Header words of a block: a byte per /24.
pub(super) const HDR: usize = 64;
/// Block sizes in words (whole 64-byte lines): header plus up to 16, 32, 64, 128 or 256 runs.
const CLASSES: [usize; 5] = [80, 96, 128, 192, 320];
/// Pool words reserved (64 MiB of address space, touched only as blocks are written). The
/// 494k-prefix table uses about a tenth; past it, /16s fall back to tbl24.
pub(super) const POOL_WORDS: usize = 1 << 24;

fn class_of(words: usize) -> usize {
    CLASSES
        .iter()
        .position(|c| *c >= words)
        .unwrap_or(CLASSES.len() - 1)
}

/// The editor's bookkeeping of pool space.
pub(super) struct Chunks {
    free: [Vec<u32>; CLASSES.len()],
    /// Blocks unpublished while readers may still be in them, with the epoch that frees them.
    retired: Vec<(u64, u32)>,
    /// Next word never used.
    bump: usize,
    /// Words in published blocks.
    live: usize,
}

impl Chunks {
    pub fn new(table: &Dir24_8) -> Chunks {
        Chunks {
            free: Default::default(),
            retired: Vec::new(),
            bump: table.pool_start(),
            live: 0,
        }
    }

    /// Words of pool in published blocks.
    pub fn live_words(&self) -> usize {
        self.live
    }

    fn alloc(&mut self, words: usize, pool_len: usize) -> Option<u32> {
        let c = class_of(words);
        if let Some(b) = self.free[c].pop() {
            return Some(b);
        }
        let b = self.bump;
        if b + CLASSES[c] > pool_len || b >= EXT as usize {
            return None;
        }
        self.bump += CLASSES[c];
        Some(b as u32)
    }

    /// Size in words of the published block at `b`: the header plus one word per run (the
    /// last /24 is in the last run).
    fn block_words(pool: &[AtomicU32], b: usize) -> usize {
        HDR + (pool[b + HDR - 1].load(Ordering::Relaxed) >> 24) as usize + 1
    }

    /// Recompresses /16 `c` from tbl24 and publishes it; the block it replaces is retired at
    /// `epoch`.
    pub fn rebuild(&mut self, table: &Dir24_8, c: usize, epoch: u64) {
        let (t24, _) = table.tables();
        let (top, pool) = table.index();
        let slots = &t24[c << 8..(c + 1) << 8];
        let mut hdr = [0u32; HDR];
        let mut runs = [0u32; 256];
        let mut n = 0;
        for (s, cell) in slots.iter().enumerate() {
            let e = cell.load(Ordering::Relaxed);
            if s == 0 || e != runs[n - 1] {
                runs[n] = e;
                n += 1;
            }
            hdr[s / 4] |= ((n - 1) as u32) << (8 * (s % 4));
        }
        let new = if n == 1 && runs[0] & EXT == 0 {
            runs[0]
        } else {
            match self.alloc(HDR + n, pool.len()) {
                None => FALLBACK,
                Some(b) => {
                    let b = b as usize;
                    for (cell, w) in pool[b..b + HDR].iter().zip(&hdr) {
                        cell.store(*w, Ordering::Relaxed);
                    }
                    for (cell, e) in pool[b + HDR..b + HDR + n].iter().zip(&runs) {
                        cell.store(*e, Ordering::Relaxed);
                    }
                    self.live += HDR + n;
                    EXT | b as u32
                }
            }
        };
        let old = top[c].load(Ordering::Relaxed);
        if old == new {
            return;
        }
        // Release: a reader that sees the block also sees its words.
        top[c].store(new, Ordering::Release);
        if old & EXT != 0 && old != FALLBACK {
            let b = old & !EXT;
            self.live -= Self::block_words(pool, b as usize);
            self.retired.push((epoch, b));
        }
    }

    /// Makes the blocks retired at epochs up to `acked` reusable.
    pub fn reclaim(&mut self, table: &Dir24_8, acked: u64) {
        let (_, pool) = table.index();
        let mut k = 0;
        while k < self.retired.len() {
            let (e, b) = self.retired[k];
            if e <= acked {
                self.retired.swap_remove(k);
                let c = class_of(Self::block_words(pool, b as usize));
                self.free[c].push(b);
            } else {
                k += 1;
            }
        }
    }
}
