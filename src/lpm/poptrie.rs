//! A Poptrie lookup index (Asai & Ohara, SIGCOMM 2015) beside the DIR-24-8, which stays the
//! editor's truth: lookups read this small structure instead of the 64 MiB tbl24.
//!
//! Layout: a direct table indexed by the top 18 bits, each entry a leaf (value + 1, 0 = no
//! route, as in tbl24) or `EXT | node`. A node covers the next 6 bits with two 64-bit maps:
//! `vector` marks the positions that have a child node, `leafvec` the positions where a run of
//! equal leaves starts; a node's children and its leaves sit side by side in the node and leaf
//! arrays, so the one to read is its base plus a popcount. Three node levels reach /36, so a
//! lookup is the direct entry and at most three nodes, then one leaf.
//!
//! Every /18 slot is built from the DIR-24-8's 64 tbl24 entries (and their tbl8 groups): the
//! slot's nodes in one extent of the node array (breadth first, so each node's children are
//! contiguous), its leaves in one extent of the leaf array. An edit rebuilds only the slots
//! the prefix covers, into fresh extents, and switches the direct entry with one release
//! store; the old extents are retired to the editor's epoch, as tbl8 groups are. When the
//! arrays are full a slot is marked [`FALLBACK`] and its lookups read the DIR-24-8.
use super::dir24_8::{EXT, TBL8_GROUP};
use super::pool::{Extent, Pool};
use super::table_mem::AtomicTable;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

pub(super) const DIRECT_BITS: u32 = 18;
pub(super) const SLOTS: usize = 1 << DIRECT_BITS;
const STRIDE: u32 = 6;
/// tbl24 entries per slot.
const SLOT_24: usize = 1 << (24 - DIRECT_BITS);
/// A direct entry whose slot the index does not hold: look it up in the DIR-24-8.
pub(super) const FALLBACK: u32 = u32::MAX;
/// Room past a full build for edits: rebuilt slots take fresh extents before the old ones
/// come back.
const SPARE_NODES: usize = 1 << 16;
const SPARE_LEAVES: usize = 1 << 18;

/// `[vector, leafvec, leaf base | child base << 32]`.
pub(super) type Node = [AtomicU64; 3];

/// The index's memory, shared with readers.
pub(super) struct Index {
    direct: AtomicTable<AtomicU32>,
    nodes: AtomicTable<Node>,
    leaves: AtomicTable<AtomicU32>,
}

impl Index {
    /// An index of an empty table: every slot a miss.
    pub fn empty() -> Result<Index, String> {
        Index::with_room(1, 1)
    }

    fn with_room(nodes: usize, leaves: usize) -> Result<Index, String> {
        Ok(Index {
            direct: AtomicTable::zeroed(SLOTS)?,
            nodes: AtomicTable::zeroed(nodes)?,
            leaves: AtomicTable::zeroed(leaves)?,
        })
    }

    #[inline(always)]
    pub fn view(&self) -> IndexView<'_> {
        IndexView {
            direct: self
                .direct
                .cells()
                .try_into()
                .expect("direct has SLOTS entries"),
            nodes: self.nodes.cells(),
            leaves: self.leaves.cells(),
        }
    }
}

#[derive(Clone, Copy)]
pub(super) struct IndexView<'a> {
    direct: &'a [AtomicU32; SLOTS],
    nodes: &'a [Node],
    leaves: &'a [AtomicU32],
}

impl IndexView<'_> {
    #[inline(always)]
    pub fn direct(&self, ip: u32) -> u32 {
        self.direct[(ip >> (32 - DIRECT_BITS)) as usize].load(Ordering::Relaxed)
    }

    /// Starts loading `ip`'s direct entry.
    #[inline(always)]
    pub fn prefetch_direct(&self, ip: u32) {
        crate::cpu::prefetch(&self.direct[(ip >> (32 - DIRECT_BITS)) as usize]);
    }

    /// Starts loading the first node of a direct entry that links one.
    #[inline(always)]
    pub fn prefetch_node(&self, d: u32) {
        if let Some(n) = self.nodes.get((d & !EXT) as usize) {
            crate::cpu::prefetch(n);
        }
    }

    /// The leaf entry (value + 1, 0 = no route) for `ip` under direct entry `d`, or
    /// [`FALLBACK`].
    #[inline(always)]
    pub fn resolve(&self, d: u32, ip: u32) -> u32 {
        if d & EXT == 0 || d == FALLBACK {
            return d;
        }
        // Pairs with the editor's release store of the direct entry: the slot's nodes and
        // leaves are written before it is linked. Free on x86 (a compiler barrier).
        fence(Ordering::Acquire);
        let mut n = (d & !EXT) as usize;
        for off in [DIRECT_BITS, DIRECT_BITS + STRIDE, DIRECT_BITS + 2 * STRIDE] {
            let Some(w) = self.nodes.get(n) else {
                return 0;
            };
            let v = (ip << off) >> (32 - STRIDE);
            let upto = u64::MAX >> (63 - v);
            let vector = w[0].load(Ordering::Relaxed);
            if vector >> v & 1 == 0 {
                let leafvec = w[1].load(Ordering::Relaxed);
                let base = w[2].load(Ordering::Relaxed) as u32 as usize;
                let i = base + crate::cpu::popcount(leafvec & upto) as usize - 1;
                return self.leaves.get(i).map_or(0, |c| c.load(Ordering::Relaxed));
            }
            let base = (w[2].load(Ordering::Relaxed) >> 32) as usize;
            n = base + crate::cpu::popcount(vector & upto) as usize - 1;
        }
        0
    }
}

/// One slot's nodes and leaves, built apart before they are copied into the index; child and
/// leaf bases relative to the slot's extents.
#[derive(Default)]
struct SlotTree {
    nodes: Vec<[u64; 3]>,
    leaves: Vec<u32>,
    /// Nodes still to fill, in index order: what each covers.
    pending: Vec<Src>,
}

/// What a node covers.
#[derive(Clone, Copy)]
enum Src {
    /// The 64 tbl24 entries of a slot.
    Slot(usize),
    /// A tbl8 group, four entries per position.
    Group(usize),
    /// Four entries of a group (the last two bits of an address, the top of the 6-bit index).
    Quad(usize),
}

enum Item {
    Leaf(u32),
    Child(Src),
}

fn item(t24: &[AtomicU32], t8: &[AtomicU32], src: Src, i: usize) -> Item {
    let ld = |c: &AtomicU32| c.load(Ordering::Relaxed);
    match src {
        Src::Slot(s) => {
            let e = ld(&t24[s * SLOT_24 + i]);
            if e & EXT != 0 {
                Item::Child(Src::Group((e & !EXT) as usize * TBL8_GROUP))
            } else {
                Item::Leaf(e)
            }
        }
        Src::Group(g) => {
            let four = &t8[g + 4 * i..g + 4 * i + 4];
            let e = ld(&four[0]);
            if four.iter().all(|c| ld(c) == e) {
                Item::Leaf(e)
            } else {
                Item::Child(Src::Quad(g + 4 * i))
            }
        }
        Src::Quad(q) => Item::Leaf(ld(&t8[q + (i >> 4)])),
    }
}

impl SlotTree {
    /// Builds slot `s` from the DIR-24-8; returns the slot's single leaf when it has one
    /// value throughout (no nodes then).
    fn build(&mut self, t24: &[AtomicU32], t8: &[AtomicU32], s: usize) -> Option<u32> {
        self.nodes.clear();
        self.leaves.clear();
        self.pending.clear();
        let first = t24[s * SLOT_24].load(Ordering::Relaxed);
        if t24[s * SLOT_24..(s + 1) * SLOT_24]
            .iter()
            .all(|c| c.load(Ordering::Relaxed) == first)
            && first & EXT == 0
        {
            return Some(first);
        }
        self.pending.push(Src::Slot(s));
        let mut k = 0;
        while k < self.pending.len() {
            let src = self.pending[k];
            let (mut vector, mut leafvec) = (0u64, 0u64);
            let child_base = self.pending.len() as u64;
            let leaf_base = self.leaves.len() as u64;
            let mut last = None;
            for i in 0..64 {
                match item(t24, t8, src, i) {
                    Item::Child(c) => {
                        vector |= 1 << i;
                        self.pending.push(c);
                    }
                    Item::Leaf(e) if last != Some(e) => {
                        leafvec |= 1 << i;
                        self.leaves.push(e);
                        last = Some(e);
                    }
                    Item::Leaf(_) => {}
                }
            }
            self.nodes
                .push([vector, leafvec, leaf_base | child_base << 32]);
            k += 1;
        }
        None
    }
}

/// The index's management half: where each slot's extents are, and the free space.
pub(super) struct IndexEditor {
    slots: Vec<(Extent, Extent)>,
    nodes: Pool,
    leaves: Pool,
    scratch: SlotTree,
}

impl IndexEditor {
    /// Builds the index of a whole DIR-24-8, with room for edits: as much again as the
    /// build takes, and some.
    pub fn build(t24: &[AtomicU32], t8: &[AtomicU32]) -> Result<(Index, IndexEditor), String> {
        Self::build_with_room(t24, t8, None)
    }

    /// [`build`](Self::build) with `room` (nodes, leaves) past the build's own size.
    pub fn build_with_room(
        t24: &[AtomicU32],
        t8: &[AtomicU32],
        room: Option<(usize, usize)>,
    ) -> Result<(Index, IndexEditor), String> {
        let mut one = SlotTree::default();
        let mut direct = vec![0u32; SLOTS];
        let mut slots = vec![(Extent::default(), Extent::default()); SLOTS];
        // Entry 0 of both arrays stays unused (see `Pool::new`).
        let mut nodes: Vec<[u64; 3]> = vec![[0; 3]];
        let mut leaves: Vec<u32> = vec![0];
        for (s, d) in direct.iter_mut().enumerate() {
            if let Some(leaf) = one.build(t24, t8, s) {
                *d = leaf;
                continue;
            }
            let ne = Extent {
                start: nodes.len() as u32,
                len: one.nodes.len() as u32,
            };
            let le = Extent {
                start: leaves.len() as u32,
                len: one.leaves.len() as u32,
            };
            let shift = le.start as u64 | (ne.start as u64) << 32;
            nodes.extend(one.nodes.iter().map(|n| [n[0], n[1], n[2] + shift]));
            leaves.extend_from_slice(&one.leaves);
            slots[s] = (ne, le);
            *d = EXT | ne.start;
        }
        let (n_room, l_room) =
            room.unwrap_or((nodes.len() + SPARE_NODES, leaves.len() + SPARE_LEAVES));
        let (n_cap, l_cap) = (nodes.len() + n_room, leaves.len() + l_room);
        if n_cap > (EXT - 1) as usize || l_cap > u32::MAX as usize {
            return Err("the lookup index would exceed 2^31 nodes".into());
        }
        let mut index = Index::with_room(n_cap, l_cap)?;
        for (c, n) in index.nodes.cells_mut().iter_mut().zip(&nodes) {
            for (w, v) in c.iter_mut().zip(n) {
                *w.get_mut() = *v;
            }
        }
        for (c, l) in index.leaves.cells_mut().iter_mut().zip(&leaves) {
            *c.get_mut() = *l;
        }
        for (c, d) in index.direct.cells_mut().iter_mut().zip(direct) {
            *c.get_mut() = d;
        }
        let editor = IndexEditor {
            slots,
            nodes: Pool::new(n_cap as u32, nodes.len() as u32),
            leaves: Pool::new(l_cap as u32, leaves.len() as u32),
            scratch: SlotTree::default(),
        };
        Ok((index, editor))
    }

    /// Rebuilds slot `s` from the DIR-24-8 after an edit changed it; the slot's old extents
    /// may be read until readers pass `epoch`.
    pub fn rebuild(
        &mut self,
        index: &Index,
        t24: &[AtomicU32],
        t8: &[AtomicU32],
        s: usize,
        epoch: u64,
    ) {
        let leaf = self.scratch.build(t24, t8, s);
        let (old_n, old_l) = self.slots[s];
        let entry = match leaf {
            Some(e) => {
                self.slots[s] = Default::default();
                e
            }
            None => match self.place(index) {
                Some((ne, le)) => {
                    self.slots[s] = (ne, le);
                    EXT | ne.start
                }
                None => {
                    self.slots[s] = Default::default();
                    FALLBACK
                }
            },
        };
        // Release: a reader that sees the new entry also sees the nodes and leaves under it.
        index.direct.cells()[s].store(entry, Ordering::Release);
        self.nodes.retire(old_n, epoch);
        self.leaves.retire(old_l, epoch);
    }

    /// Copies the scratch tree into fresh extents, or None when the arrays are full.
    fn place(&mut self, index: &Index) -> Option<(Extent, Extent)> {
        let ne = self.nodes.alloc(self.scratch.nodes.len() as u32)?;
        let Some(le) = self.leaves.alloc(self.scratch.leaves.len() as u32) else {
            // Never published: free as soon as anything is reclaimed.
            self.nodes.retire(ne, 0);
            return None;
        };
        let cells = (index.nodes.cells(), index.leaves.cells());
        store_slot(cells, ne, le, &self.scratch.nodes, &self.scratch.leaves);
        Some((ne, le))
    }

    /// Makes extents retired at epochs up to `acked` reusable.
    pub fn reclaim(&mut self, acked: u64) {
        self.nodes.reclaim(acked);
        self.leaves.reclaim(acked);
    }

    /// Bytes of index memory in live use.
    pub fn memory_bytes(&self) -> usize {
        SLOTS * 4 + self.nodes.used() as usize * 24 + self.leaves.used() as usize * 4
    }
}

/// Writes a slot's nodes and leaves at their extents, bases made absolute.
fn store_slot(
    (cells_n, cells_l): (&[Node], &[AtomicU32]),
    ne: Extent,
    le: Extent,
    nodes: &[[u64; 3]],
    leaves: &[u32],
) {
    let shift = le.start as u64 | (ne.start as u64) << 32;
    for (c, n) in cells_n[ne.start as usize..].iter().zip(nodes) {
        c[0].store(n[0], Ordering::Relaxed);
        c[1].store(n[1], Ordering::Relaxed);
        c[2].store(n[2] + shift, Ordering::Relaxed);
    }
    for (c, l) in cells_l[le.start as usize..].iter().zip(leaves) {
        c.store(*l, Ordering::Relaxed);
    }
}
