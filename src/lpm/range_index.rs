//! The lookup index: a compact copy of the DIR-24-8 that lookups read instead of it, after
//! DXR (Zec, Rizzo, Mikuc, "DXR: towards a billion routing lookups per second in software",
//! 2012). The 64 MiB tbl24 and its tbl8 groups cost a cache miss and a TLB miss per random
//! lookup on 4 KiB pages; this index holds the same answers in a few MiB (2 MiB for the real
//! 494k-prefix table), within the L2 TLB's reach.
//!
//! The address space is cut into 2^16 chunks (the top 16 bits). A chunk's direct entry is
//! its one value, or a block in a shared pool: the chunk's ranges of equal value, one entry
//! each (`key << 16 | value + 1`, the key being the range's first address within the
//! chunk), sorted, adjacent equal ranges merged. A lookup binary-searches the block for the
//! last range starting at or before the address. A chunk with many ranges gets a table of
//! 256 entries instead, one per /24, each a value or a block of that /24's ranges.
//!
//! The DIR-24-8 stays the editor's truth: an edit rewrites its entries, then rebuilds the
//! chunks it touched from them into fresh pool space, published with one release store of
//! the direct entry; the old block waits for the readers' epoch like a retired tbl8 group.
//! When the pool is full a chunk is marked to be looked up in the DIR-24-8 instead, so an
//! edit never fails for want of index space.
use super::dir24_8::{EXT, TBL8_GROUP};
use super::table_mem::{AtomicTable, AtomicTable64};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

pub(super) const CHUNK_BITS: u32 = 16;
pub(super) const CHUNKS: usize = 1 << CHUNK_BITS;
/// An entry's value part: below the key (the address bits below the chunk).
const LOW: u32 = 0xffff;
/// tbl24 entries per chunk.
const T24_PER_CHUNK: usize = 1 << (24 - CHUNK_BITS);
/// A chunk with more ranges than this gets a table of one entry per /24 (value or block), so
/// no search runs over more than one /24's ranges: a dense /16 is one more load, not ten
/// more steps of a binary search. Tests split at 4 ranges so that both forms meet often.
const SPLIT: usize = if cfg!(test) { 4 } else { 16 };

/// Direct entry flag: the entry points at a block (below: a value).
pub(super) const BLOCK: u64 = 1 << 63;
/// With `BLOCK`: the entry points at a per-/24 table.
pub(super) const TABLE: u64 = 1 << 62;
/// Direct entry of a chunk that the pool had no room for: look it up in the DIR-24-8.
pub(super) const FALLBACK: u64 = u64::MAX;
/// Pool entries kept in reserve beyond the built table, for edits: 16 MiB of address space,
/// whose pages cost memory only once an edit writes them.
const RESERVE: usize = 1 << 22;
/// Per-/24 tables kept in reserve (2 KiB each).
const TABLE_RESERVE: usize = 1 << 10;

/// A direct entry naming `count` ranges at `off`, in a block of 2^`class` entries or more.
fn block(off: u32, count: usize, class: u32) -> u64 {
    BLOCK | (class as u64) << 49 | (count as u64) << 32 | off as u64
}

/// `(offset, count)` of a block entry, for lookups.
#[inline(always)]
pub(super) fn block_of(d: u64) -> (usize, usize) {
    (d as u32 as usize, ((d >> 32) & 0x1_ffff) as usize)
}

/// `(offset, count, class)` of a block entry.
fn unpack(d: u64) -> (usize, usize, u32) {
    let (off, count) = block_of(d);
    (off, count, ((d >> 49) & 0x3f) as u32)
}

/// The shared part, read by workers: direct entries, the pool of blocks, the tables.
pub(super) struct RangeIndex {
    direct: AtomicTable64,
    pool: AtomicTable,
    tables: AtomicTable64,
    /// Entries of live blocks and live tables, for the memory figure.
    used: AtomicUsize,
    tables_used: AtomicUsize,
    /// Chunks looked up in the DIR-24-8 for want of pool space.
    fallbacks: AtomicUsize,
}

impl RangeIndex {
    /// An index whose chunks all miss, with room for `pool` range entries and `tables`
    /// tables.
    pub fn empty(pool: usize, tables: usize) -> Result<Self, String> {
        Ok(RangeIndex {
            direct: AtomicTable64::zeroed(CHUNKS)?,
            pool: AtomicTable::zeroed(pool)?,
            tables: AtomicTable64::zeroed(tables * T24_PER_CHUNK)?,
            used: AtomicUsize::new(0),
            tables_used: AtomicUsize::new(0),
            fallbacks: AtomicUsize::new(0),
        })
    }

    pub fn direct(&self) -> &[AtomicU64; CHUNKS] {
        self.direct
            .cells()
            .try_into()
            .expect("the direct table has CHUNKS entries")
    }
    pub fn pool(&self) -> &[AtomicU32] {
        self.pool.cells()
    }
    pub fn tables(&self) -> &[AtomicU64] {
        self.tables.cells()
    }
    /// Bytes lookups may touch: the direct table, live ranges and live tables.
    pub fn memory_bytes(&self) -> usize {
        CHUNKS * 8
            + self.used.load(Ordering::Relaxed) * 4
            + self.tables_used.load(Ordering::Relaxed) * T24_PER_CHUNK * 8
    }
    pub fn fallbacks(&self) -> usize {
        self.fallbacks.load(Ordering::Relaxed)
    }
}

/// Table entry `j` of table entry `d` (a direct entry with `TABLE`).
#[inline(always)]
pub(super) fn table_slot(d: u64, ip: u32) -> usize {
    (d as u32 as usize) * T24_PER_CHUNK + ((ip >> 8) & 0xff) as usize
}

/// The last range in `blk` starting at or before `ip`'s key: its entry's value part
/// (`value + 1`, 0 for a miss). `blk[0]` starts at or before any key searched in it, so
/// there always is one. Blocks hold at most 256 ranges (one /24's, or `SPLIT`), so eight
/// halving steps always do; each is branch-free (probes past the end count as greater), so
/// the search never mispredicts: a loop whose length followed the block's did, about twice
/// per lookup.
#[inline(always)]
pub(super) fn search(blk: &[AtomicU32], ip: u32) -> u32 {
    let x = (ip << CHUNK_BITS) | LOW;
    let Some(last) = blk.len().checked_sub(1) else {
        return 0;
    };
    let at = |i: usize| {
        blk.get(i.min(last))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    };
    let mut base = 0usize;
    for step in [128, 64, 32, 16, 8, 4, 2, 1] {
        let p = base + step;
        base += step * ((p <= last) & (at(p) <= x)) as usize;
    }
    at(base) & LOW
}

/// Appends the ranges of /24 `j` of chunk `c`, read off the DIR-24-8, to `out`, merging
/// with its last entry.
fn ranges_24(t24: &[AtomicU32], t8: &[AtomicU32], c: usize, j: usize, out: &mut Vec<u32>) {
    let mut push = |key: u32, e: u32| {
        if out.last().is_none_or(|l| l & LOW != e) {
            out.push(key << 16 | e);
        }
    };
    let e = t24[c * T24_PER_CHUNK + j].load(Ordering::Relaxed);
    let key = (j as u32) << 8;
    if e & EXT == 0 {
        return push(key, e);
    }
    let g = (e & !EXT) as usize * TBL8_GROUP;
    for (k, c8) in t8[g..g + TBL8_GROUP].iter().enumerate() {
        push(key | k as u32, c8.load(Ordering::Relaxed));
    }
}

/// The ranges of chunk `c` read off the DIR-24-8, as index entries, into `out`.
pub(super) fn chunk_ranges(t24: &[AtomicU32], t8: &[AtomicU32], c: usize, out: &mut Vec<u32>) {
    out.clear();
    for j in 0..T24_PER_CHUNK {
        ranges_24(t24, t8, c, j, out);
    }
}

/// Calls `f(j, ranges)` for each /24 of a chunk with `ranges`: those starting in it, after
/// the one covering its first address (whose key becomes the /24's start).
fn per_24(ranges: &[u32], sub: &mut Vec<u32>, mut f: impl FnMut(usize, &[u32])) {
    let mut i = 0;
    for j in 0..T24_PER_CHUNK {
        let start = (j as u32) << 8;
        while i + 1 < ranges.len() && ranges[i + 1] >> 16 <= start {
            i += 1;
        }
        sub.clear();
        sub.push(start << 16 | ranges[i] & LOW);
        sub.extend(
            ranges[i + 1..]
                .iter()
                .take_while(|r| *r >> 16 < start + 256),
        );
        f(j, sub);
    }
}

enum Retired {
    Block { off: u32, class: u32 },
    Table(u32),
}

/// The index's writer, on the editor's side: pool allocation and retirement.
pub(super) struct IndexWriter {
    /// Free blocks of at least 2^class entries, by class.
    free: Vec<Vec<u32>>,
    free_tables: Vec<u32>,
    /// Blocks and tables unlinked while readers may still use them, with their epoch.
    retired: Vec<(u64, Retired)>,
    /// Pool entries (tables) never handed out start here.
    top: usize,
    tables_top: usize,
    scratch: Vec<u32>,
    sub: Vec<u32>,
}

impl IndexWriter {
    fn new() -> Self {
        IndexWriter {
            free: vec![Vec::new(); 18],
            free_tables: Vec::new(),
            retired: Vec::new(),
            top: 0,
            tables_top: 0,
            scratch: Vec::new(),
            sub: Vec::new(),
        }
    }

    /// Builds the index of the DIR-24-8 tables, blocks packed end to end, with room for
    /// edits after them. Chunks that no prefix longer than the chunk starts in (`mixed` is
    /// false) hold one value, read off their first tbl24 entry. `reserve`: pool entries for
    /// edits (None: as many as the built blocks take, at least `RESERVE`).
    pub fn build(
        t24: &[AtomicU32],
        t8: &[AtomicU32],
        mixed: &[bool],
        reserve: Option<usize>,
    ) -> Result<(RangeIndex, Self), String> {
        let (mut direct, mut all, mut tabs) = (vec![0u64; CHUNKS], Vec::new(), Vec::new());
        let (mut v, mut sub) = (Vec::new(), Vec::new());
        let pack = |all: &mut Vec<u32>, r: &[u32]| match r {
            [one] => (*one & LOW) as u64,
            r => {
                let class = usize::BITS - 1 - r.len().leading_zeros();
                all.extend_from_slice(r);
                block((all.len() - r.len()) as u32, r.len(), class)
            }
        };
        for (c, d) in direct.iter_mut().enumerate() {
            if mixed.get(c) == Some(&false) {
                *d = t24[c * T24_PER_CHUNK].load(Ordering::Relaxed) as u64;
                continue;
            }
            chunk_ranges(t24, t8, c, &mut v);
            if v.len() <= SPLIT {
                *d = pack(&mut all, &v);
                continue;
            }
            let t = tabs.len() / T24_PER_CHUNK;
            *d = BLOCK | TABLE | t as u64;
            tabs.resize(tabs.len() + T24_PER_CHUNK, 0);
            per_24(&v, &mut sub, |j, r| {
                tabs[t * T24_PER_CHUNK + j] = pack(&mut all, r)
            });
        }
        let reserve = reserve.unwrap_or(all.len().max(RESERVE));
        let ntabs = tabs.len() / T24_PER_CHUNK;
        let table_reserve = if reserve == 0 { 0 } else { TABLE_RESERVE };
        let mut index = RangeIndex::empty(all.len() + reserve, ntabs + table_reserve)?;
        for (cell, d) in index.direct.cells_mut().iter_mut().zip(direct) {
            *cell.get_mut() = d;
        }
        for (cell, e) in index.pool.cells_mut().iter_mut().zip(&all) {
            *cell.get_mut() = *e;
        }
        for (cell, d) in index.tables.cells_mut().iter_mut().zip(tabs) {
            *cell.get_mut() = d;
        }
        *index.used.get_mut() = all.len();
        *index.tables_used.get_mut() = ntabs;
        let mut w = IndexWriter::new();
        w.top = all.len();
        w.tables_top = ntabs;
        w.scratch = v;
        w.sub = sub;
        Ok((index, w))
    }

    /// Rebuilds chunk `c` from the DIR-24-8 and publishes it; what it replaces is retired at
    /// `epoch`.
    pub fn rebuild(
        &mut self,
        index: &RangeIndex,
        t24: &[AtomicU32],
        t8: &[AtomicU32],
        c: usize,
        epoch: u64,
    ) {
        let mut v = std::mem::take(&mut self.scratch);
        chunk_ranges(t24, t8, c, &mut v);
        let slot = &index.direct()[c];
        let old = slot.load(Ordering::Relaxed);
        let new = if v.len() <= SPLIT {
            self.publish_block(index, &v)
        } else {
            self.publish_table(index, &v)
        };
        let new = new.unwrap_or(FALLBACK);
        // Release: a reader that sees the new entry also sees the block's (table's) entries.
        slot.store(new, Ordering::Release);
        if new == FALLBACK {
            index.fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        self.retire(index, old, Some(epoch));
        self.scratch = v;
    }

    /// Rebuilds /24s `js` of chunk `c` after an edit below the chunk: in place when the
    /// chunk has a table (each table entry republished by itself, as tbl24 entries are),
    /// else the whole chunk.
    pub fn rebuild_24s(
        &mut self,
        index: &RangeIndex,
        t24: &[AtomicU32],
        t8: &[AtomicU32],
        c: usize,
        js: std::ops::Range<usize>,
        epoch: u64,
    ) {
        let d = index.direct()[c].load(Ordering::Relaxed);
        if d & TABLE == 0 || d == FALLBACK {
            return self.rebuild(index, t24, t8, c, epoch);
        }
        let mut v = std::mem::take(&mut self.scratch);
        for j in js {
            v.clear();
            ranges_24(t24, t8, c, j, &mut v);
            let Some(new) = self.publish_block(index, &v) else {
                self.scratch = v;
                return self.rebuild(index, t24, t8, c, epoch);
            };
            let cell = &index.tables()[d as u32 as usize * T24_PER_CHUNK + j];
            let old = cell.swap(new, Ordering::Release);
            self.retire(index, old, Some(epoch));
        }
        self.scratch = v;
    }

    /// The direct (or table) entry for `ranges`: the value, or a block written to the pool;
    /// None when the pool is full.
    fn publish_block(&mut self, index: &RangeIndex, ranges: &[u32]) -> Option<u64> {
        if let [one] = ranges {
            return Some((*one & LOW) as u64);
        }
        let pool = index.pool();
        let (off, class) = self.alloc(pool.len(), ranges.len())?;
        for (cell, e) in pool[off as usize..].iter().zip(ranges) {
            cell.store(*e, Ordering::Relaxed);
        }
        index.used.fetch_add(ranges.len(), Ordering::Relaxed);
        Some(block(off, ranges.len(), class))
    }

    /// A table for a chunk's `ranges`, its blocks written; None (nothing held) when full.
    fn publish_table(&mut self, index: &RangeIndex, ranges: &[u32]) -> Option<u64> {
        let t = match self.free_tables.pop() {
            Some(t) => t,
            None if (self.tables_top + 1) * T24_PER_CHUNK <= index.tables().len() => {
                self.tables_top += 1;
                (self.tables_top - 1) as u32
            }
            None => return None,
        };
        let d = BLOCK | TABLE | t as u64;
        let mut sub = std::mem::take(&mut self.sub);
        let mut full = false;
        per_24(ranges, &mut sub, |j, r| {
            let e = if full {
                None
            } else {
                self.publish_block(index, r)
            };
            full |= e.is_none();
            index.tables()[t as usize * T24_PER_CHUNK + j].store(e.unwrap_or(0), Ordering::Relaxed);
        });
        self.sub = sub;
        index.tables_used.fetch_add(1, Ordering::Relaxed);
        if full {
            self.retire(index, d, None);
            return None;
        }
        Some(d)
    }

    /// Retires what direct or table entry `old` held, for reuse after `epoch` (None: at
    /// once, it was never published).
    fn retire(&mut self, index: &RangeIndex, old: u64, epoch: Option<u64>) {
        let r = if old == FALLBACK {
            index.fallbacks.fetch_sub(1, Ordering::Relaxed);
            return;
        } else if old & TABLE != 0 {
            let t = old as u32;
            for k in 0..T24_PER_CHUNK {
                let e = index.tables()[t as usize * T24_PER_CHUNK + k].load(Ordering::Relaxed);
                self.retire(index, e, epoch);
            }
            index.tables_used.fetch_sub(1, Ordering::Relaxed);
            Retired::Table(t)
        } else if old & BLOCK != 0 {
            let (off, count, class) = unpack(old);
            index.used.fetch_sub(count, Ordering::Relaxed);
            Retired::Block {
                off: off as u32,
                class,
            }
        } else {
            return;
        };
        match (epoch, r) {
            (Some(e), r) => self.retired.push((e, r)),
            (None, Retired::Block { off, class }) => self.free[class as usize].push(off),
            (None, Retired::Table(t)) => self.free_tables.push(t),
        }
    }

    /// A block for `n` entries: `(offset, class)`. At build time blocks are packed (class =
    /// floor(log2 n), the block exactly n long); later ones take 2^ceil(log2 n) entries.
    fn alloc(&mut self, pool: usize, n: usize) -> Option<(u32, u32)> {
        let want = n.next_power_of_two().trailing_zeros();
        if let Some(off) = self.free[want as usize].pop() {
            return Some((off, want));
        }
        let packed = self.retired.is_empty() && self.free.iter().all(Vec::is_empty);
        let (size, class) = if packed {
            (n, usize::BITS - 1 - n.leading_zeros())
        } else {
            (1 << want, want)
        };
        if self.top + size <= pool {
            self.top += size;
            return Some(((self.top - size) as u32, class));
        }
        let c = (want as usize + 1..self.free.len()).find(|c| !self.free[*c].is_empty())?;
        self.free[c].pop().map(|off| (off, c as u32))
    }

    /// Blocks and tables retired at epochs up to `acked` become free; returns how many wait.
    pub fn reclaim(&mut self, acked: u64) -> usize {
        let (free, tables) = (&mut self.free, &mut self.free_tables);
        self.retired.retain(|(e, r)| {
            let ready = *e <= acked;
            if ready {
                match r {
                    Retired::Block { off, class } => free[*class as usize].push(*off),
                    Retired::Table(t) => tables.push(*t),
                }
            }
            !ready
        });
        self.retired.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(v: &[u32]) -> Vec<AtomicU32> {
        v.iter().map(|x| AtomicU32::new(*x)).collect()
    }

    #[test]
    fn search_finds_the_range_holding_the_key() {
        let blk = cells(&[0x0000_0001, 0x0100_0002, 0x0180_0000, 0xff00_0003]);
        let at = |low: u32| search(&blk, 0x0a0b_0000 | low);
        assert_eq!(at(0x0000), 1);
        assert_eq!(at(0x00ff), 1);
        assert_eq!(at(0x0100), 2);
        assert_eq!(at(0x017f), 2);
        assert_eq!(at(0x0180), 0);
        assert_eq!(at(0xfeff), 0);
        assert_eq!(at(0xff00), 3);
        assert_eq!(at(0xffff), 3);
        assert_eq!(search(&blk[..1], 0xffff), 1);
    }

    #[test]
    fn packed_then_power_of_two_blocks_and_reuse_after_the_epoch() {
        let mut w = IndexWriter::new();
        assert_eq!(w.alloc(100, 5), Some((0, 2)), "packed: 5 entries, class 2");
        assert_eq!(w.alloc(100, 3), Some((5, 1)));
        w.retired.push((7, Retired::Block { off: 0, class: 2 }));
        assert_eq!(w.alloc(100, 3), Some((8, 2)), "no longer packed: 4 entries");
        assert_eq!(w.reclaim(6), 1);
        assert_eq!(w.reclaim(7), 0);
        assert_eq!(w.alloc(100, 4), Some((0, 2)), "the retired block is reused");
        assert_eq!(w.alloc(14, 3), None, "pool full, nothing free");
    }
}
