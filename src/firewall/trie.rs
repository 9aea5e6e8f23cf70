//! Phase 0 of the classifier for one field: its value to its equivalence class through a
//! multi-bit trie, as rte_acl walks a key, but with each node's stride chosen at build time.
//! A node splits its value range into `2^stride` equal parts; a part that lies in one class is
//! that class (a leaf), else it points to a child node. A child's stride reaches the finest
//! boundary inside it (a /24 under a /12 bucket: 12 bits) when that costs at most ~256 entries
//! per boundary, so realistic prefixes and ports take one to three dependent loads, with no
//! search.
use std::sync::Arc;

/// An entry that is a child, not a class (a class is the entry itself, below 2^31): a class
/// read needs no mask, and the sign tells the two apart.
const CHILD: u32 = 1 << 31;
/// Child entries: the node's first entry (low 22 bits), its stride (4 bits), and the value
/// bits below its index (5 bits).
const OFFSET_BITS: u32 = 22;
const STRIDE_AT: u32 = OFFSET_BITS;
const SHIFT_AT: u32 = OFFSET_BITS + 4;
const MAX_ENTRIES: usize = 1 << OFFSET_BITS;
/// Widest node: 4096 entries (16 KiB).
const MAX_STRIDE: u32 = 12;
/// Entries of every root: a narrower root is repeated to fill them, so a root index is the
/// low 12 bits of the field's word shifted, whatever the bits above the field hold (one mask
/// by a constant, no bounds check: callgrind, issue 14).
pub const ROOT: usize = 1 << MAX_STRIDE;
/// Levels a lookup walks at most: the root's 12 bits, then strides of at least 4 over the
/// remaining 20 of a 32-bit value.
const MAX_DEPTH: usize = 6;

#[derive(Debug, Clone)]
pub struct Trie {
    /// The root node, repeated to `ROOT` entries (shared by the classifier's copies).
    root: Arc<[u32; ROOT]>,
    /// The nodes below the root (child offsets count from here).
    nodes: Arc<[u32]>,
    /// Value bits below the root's index.
    root_shift: u32,
    /// The largest value of the field's width (`class` clamps to it; the classifier's readers
    /// read no larger one).
    #[cfg(test)]
    max: u64,
}

impl Trie {
    /// The trie of a field `width` bits wide (1..=32) whose elementary intervals start at
    /// `starts` (sorted, from 0) and have the classes `class`. None only if `class` holds a
    /// class of 2^31 or more.
    pub fn new(starts: &[u64], class: &[u32], width: u32) -> Option<Trie> {
        if class.iter().any(|c| c & CHILD != 0) {
            return None;
        }
        // Neighbouring intervals of one class are one interval here.
        let (mut s, mut c) = (Vec::new(), Vec::new());
        for (&a, &k) in starts.iter().zip(class) {
            if c.last() != Some(&k) {
                s.push(a);
                c.push(k);
            }
        }
        // Strides of up to ~256 entries per boundary first; if those outgrow the offsets,
        // ~1 entry per boundary (at least 16 per node).
        [8, 0]
            .into_iter()
            .find_map(|extra| Builder::new(&s, &c, width, extra).build())
    }

    /// The class of value `v`, clamped to the field's width.
    #[cfg(test)]
    pub fn class(&self, v: u64) -> u32 {
        self.class_within(v.min(self.max) as u32)
    }

    /// The class of value `v`, which fits the field's width.
    #[cfg(test)]
    pub fn class_within(&self, v: u32) -> u32 {
        self.class_from_root((v >> self.root_shift) as usize, || v)
    }

    /// This trie for a reader whose values leave bits out (`mask`, shifted by the root shift:
    /// a TCP flag's reader reads its flag and presence bits only): root index `i` reads as
    /// `i & mask`, so the bits between them, another field's, change nothing.
    pub fn masked(mut self, mask: u64) -> Trie {
        let m = mask as usize % ROOT;
        let root: Vec<u32> = (0..ROOT).map(|i| self.root[i & m]).collect();
        if let Ok(r) = root.try_into() {
            self.root = Arc::new(r);
        }
        self
    }

    /// Value bits below the root's index: a reader may shift them out with the field's own
    /// shift, one shift per key instead of two (`class_from_root`).
    pub fn root_shift(&self) -> u32 {
        self.root_shift
    }

    /// The class of the value whose root index is `i` (`value >> root_shift`, or those bits
    /// with any above them: only the low 12 are read); `v` gives the value itself, needed only
    /// below the root.
    #[inline(always)]
    pub fn class_from_root(&self, i: usize, v: impl FnOnce() -> u32) -> u32 {
        let e = self.root[i % ROOT];
        // The root's entry, inline; the levels below it apart: with the loop inline the
        // classifier's per-key loop shuffled registers around it (callgrind, issue 14).
        match e & CHILD == 0 {
            true => e,
            false => self.below(e, v()),
        }
    }

    /// The class of `v` from the root's entry `e` for it, a child.
    #[inline(never)]
    fn below(&self, mut e: u32, v: u32) -> u32 {
        for _ in 0..MAX_DEPTH {
            // A class returns as it is, and a missing entry as class 0, each where it is
            // found: after the loop, they cost a mask and a zeroing per call (callgrind).
            if e & CHILD == 0 {
                return e;
            }
            let stride = (e >> STRIDE_AT) & 15;
            let shift = (e >> SHIFT_AT) & 31;
            let at = (e & (MAX_ENTRIES as u32 - 1)) + ((v >> shift) & ((1 << stride) - 1));
            match self.nodes.get(at as usize) {
                Some(&x) => e = x,
                None => return 0,
            }
        }
        e & !CHILD
    }

    pub fn bytes(&self) -> usize {
        (ROOT + self.nodes.len()) * 4
    }
}

struct Builder<'a> {
    starts: &'a [u64],
    class: &'a [u32],
    width: u32,
    /// log2 of the entries a child may spend per boundary inside it.
    extra: u32,
    nodes: Vec<u32>,
}

impl<'a> Builder<'a> {
    fn new(starts: &'a [u64], class: &'a [u32], width: u32, extra: u32) -> Builder<'a> {
        Builder {
            starts,
            class,
            width,
            extra,
            nodes: Vec::new(),
        }
    }

    /// The interval value `v` lies in.
    fn at(&self, v: u64) -> usize {
        self.starts.partition_point(|s| *s <= v).saturating_sub(1)
    }

    fn build(mut self) -> Option<Trie> {
        let stride = self.width.min(MAX_STRIDE);
        let shift = self.width - stride;
        self.node(0, stride, shift)?;
        // The root apart, repeated; child offsets then count from the first node below it.
        let n = 1usize << stride;
        let below = |e: u32| match e & CHILD == 0 {
            true => e,
            false => e - n as u32,
        };
        let root: Vec<u32> = (0..ROOT).map(|i| below(self.nodes[i % n])).collect();
        let nodes: Vec<u32> = self.nodes[n..].iter().map(|&e| below(e)).collect();
        Some(Trie {
            root: Arc::new(root.try_into().ok()?),
            nodes: nodes.into(),
            root_shift: shift,
            #[cfg(test)]
            max: (1u64 << self.width) - 1,
        })
    }

    /// Appends the node for values `base..base + 2^(stride + shift)` (and its children);
    /// returns its first entry.
    fn node(&mut self, base: u64, stride: u32, shift: u32) -> Option<usize> {
        let first = self.nodes.len();
        if first + (1 << stride) > MAX_ENTRIES {
            return None;
        }
        self.nodes.resize(first + (1 << stride), 0);
        for i in 0..1u64 << stride {
            let lo = base + (i << shift);
            let hi = lo + (1u64 << shift) - 1;
            let (a, b) = (self.at(lo), self.at(hi));
            let e = if a == b {
                self.class[a]
            } else {
                // Boundaries inside the part: the finest one sets the stride that resolves
                // them all, within ~2^extra entries per boundary.
                let tz = self.starts[a + 1..=b]
                    .iter()
                    .map(|s| (s - lo).trailing_zeros())
                    .min()
                    .unwrap_or(0);
                let room = (self.extra + (b - a + 1).ilog2()).max(4);
                let s = (shift - tz.min(shift)).min(MAX_STRIDE).min(room).max(1);
                let child = self.node(lo, s, shift - s)?;
                CHILD | child as u32 | s << STRIDE_AT | (shift - s) << SHIFT_AT
            };
            self.nodes[first + i as usize] = e;
        }
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value near every boundary finds its interval's class, through nodes of every
    /// stride (clustered /24s, a lone /32, ports, a one-bit field).
    #[test]
    fn every_boundary_finds_its_class() {
        let cases: Vec<(u32, Vec<u64>)> = vec![
            (
                32,
                vec![0, 0x0a00_0000, 0x0a00_0100, 0x0a00_0200, 0x0a01_0000],
            ),
            (32, vec![0, 0xc0a8_0001, 0xc0a8_0002, 0xffff_ffff]),
            (32, (0..300).map(|i| i * 0x100 + 0x0a00_0000).collect()),
            (16, vec![0, 22, 23, 1024, 3000, 3001, 65535]),
            (
                18,
                vec![0, 1 << 16, (1 << 16) + 80, (1 << 16) + 81, 2 << 16],
            ),
            (1, vec![0, 1]),
        ];
        for (width, mut starts) in cases {
            if starts[0] != 0 {
                starts.insert(0, 0);
            }
            // Classes repeat (a, b, a, c, ...), so merged neighbours are exercised too.
            let class: Vec<u32> = (0..starts.len() as u32).map(|i| i % 3 + i / 6).collect();
            let t = Trie::new(&starts, &class, width).expect("builds");
            let max = (1u64 << width) - 1;
            for (k, &s) in starts.iter().enumerate() {
                for v in [s.saturating_sub(1), s, s + 1, s + 255, s + 256] {
                    let v = v.min(max);
                    let want = class[starts.partition_point(|x| *x <= v) - 1];
                    assert_eq!(
                        t.class(v),
                        want,
                        "width {width}, start {k} {s:#x}, value {v:#x}"
                    );
                }
            }
            assert_eq!(t.class(u64::MAX), *class.last().unwrap(), "clamped");
        }
    }

    /// A root narrower than `ROOT` is read through the low bits of a word that holds other
    /// fields above the key: those bits change no class, nor do bits a mask leaves out.
    #[test]
    fn narrow_roots_ignore_the_bits_around_the_key() {
        let (starts, class) = (vec![0, 3, 5, 9], vec![1, 2, 3, 4]);
        let t = Trie::new(&starts, &class, 4).expect("builds");
        for v in 0..16u64 {
            for above in [0usize, 1, 0x7f, 0xff] {
                let i = above << 4 | v as usize;
                assert_eq!(t.class_from_root(i, || v as u32), t.class(v), "{v} {above}");
            }
        }
        // Values with bits 0 and 3 only (a TCP flag and its presence bit): the rest ignored.
        let t = t.masked(0b1001);
        for i in 0..ROOT {
            let v = (i & 0b1001) as u64;
            assert_eq!(
                t.class_from_root(i, || v as u32),
                class[starts.partition_point(|s| *s <= v) - 1]
            );
        }
    }

    /// Boundaries too many for wide nodes within the offsets fall back to narrow strides.
    #[test]
    fn many_scattered_hosts_stay_within_the_offsets() {
        let mut starts: Vec<u64> = (0..20_000u64)
            .flat_map(|i| {
                let a = i.wrapping_mul(0x9e37_79b9) & 0xffff_fffe;
                [a, a + 1]
            })
            .collect();
        starts.push(0);
        starts.sort_unstable();
        starts.dedup();
        let class: Vec<u32> = (0..starts.len() as u32).map(|i| i % 2).collect();
        let t = Trie::new(&starts, &class, 32).expect("builds");
        for (k, &s) in starts.iter().enumerate().step_by(7) {
            assert_eq!(t.class(s), class[k]);
        }
    }
}
