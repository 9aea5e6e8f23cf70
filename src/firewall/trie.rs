//! Phase 0 of the classifier for one field: its value to its equivalence class through a
//! multi-bit trie, as rte_acl walks a key, but with each node's stride chosen at build time.
//! A node splits its value range into `2^stride` equal parts; a part that lies in one class is
//! that class (a leaf), else it points to a child node. A child's stride reaches the finest
//! boundary inside it (a /24 under a /12 bucket: 12 bits) when that costs at most ~256 entries
//! per boundary, so realistic prefixes and ports take one to three dependent loads, with no
//! search.
use std::sync::Arc;

/// An entry below the root that is a child, not a class (a class is the entry itself, below
/// 2^31): a class read needs no mask, and the sign tells the two apart.
const CHILD: u32 = 1 << 31;
/// A root entry that is not a class (below 2^15) but `CHILD_OF_ROOT | k`: the root's `k`th
/// child, whose node is `nodes[k << first_stride..]`. Every child of a root has the trie's one
/// stride, so its place is its number, with no header to load: roots take two bytes an entry,
/// half the cache lines of four (issue 14). Stride 0 makes each child a single four-byte
/// entry, a class of 2^15 or more or a child of any stride (a head).
const CHILD_OF_ROOT: u16 = 1 << 15;
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
/// Levels a lookup walks below the root's children at most: strides of at least 4 over the
/// remaining 20 bits of a 32-bit value.
const MAX_DEPTH: usize = 6;
/// A root's children may take this many times the entries that each at its own stride would
/// (plus `SPARE`) before the trie's one stride for them is narrowed.
const GROWTH: usize = 2;
const SPARE: usize = 4096;

#[derive(Debug, Clone)]
pub struct Trie {
    /// The root node, repeated to `ROOT` entries (shared by the classifier's copies).
    root: Arc<[u16; ROOT]>,
    /// The root's children, `1 << first_stride` entries each in their order, then the nodes
    /// below them (child offsets count from the first).
    nodes: Arc<[u32]>,
    /// Value bits below the root's index.
    root_shift: u32,
    /// The stride of every child of the root, the value bits below its index, and its mask.
    first_stride: u32,
    first_shift: u32,
    first_mask: u32,
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
            .find_map(|extra| Builder::new(&s, &c, width, extra).best())
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
        let root: Vec<u16> = (0..ROOT).map(|i| self.root[i & m]).collect();
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
        match e & CHILD_OF_ROOT == 0 {
            true => e as u32,
            false => self.below(e, v()),
        }
    }

    /// The class of `v` from the root's entry `e` for it, a child.
    #[inline(never)]
    fn below(&self, e: u16, v: u32) -> u32 {
        let k = (e & !CHILD_OF_ROOT) as u32;
        let at = k << self.first_stride | (v >> self.first_shift) & self.first_mask;
        let Some(&(mut e)) = self.nodes.get(at as usize) else {
            return 0;
        };
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
        ROOT * 2 + self.nodes.len() * 4
    }

    /// Entries of the root's children (the front of `nodes`).
    fn first_children(&self) -> usize {
        self.root
            .iter()
            .filter(|e| *e & CHILD_OF_ROOT != 0)
            .map(|e| (e & !CHILD_OF_ROOT) as usize + 1)
            .max()
            .unwrap_or(0)
            << self.first_stride
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

    /// The trie whose root children share the widest stride that does not grow them past
    /// `GROWTH` times their entries at their own strides (stride 0, a head each, is that).
    fn best(self) -> Option<Trie> {
        let heads = Builder {
            nodes: Vec::new(),
            ..self
        }
        .build(0)?;
        let widest = heads.nodes[..heads.first_children()]
            .iter()
            .filter(|e| *e & CHILD != 0)
            .map(|e| (e >> STRIDE_AT) & 15)
            .max()
            .unwrap_or(0);
        let limit = heads.nodes.len() * GROWTH + SPARE;
        (1..=widest)
            .rev()
            .filter_map(|s| {
                Builder {
                    nodes: Vec::new(),
                    ..self
                }
                .build(s)
            })
            .find(|t| t.nodes.len() <= limit)
            .or(Some(heads))
    }

    /// The trie whose root children all take stride `first` (at most the root's shift).
    fn build(mut self, first: u32) -> Option<Trie> {
        let stride = self.width.min(MAX_STRIDE);
        let shift = self.width - stride;
        let first = first.min(shift);
        // The root's entries: a class that fits, else the next child's number.
        let mut children = Vec::new();
        let mut root = Vec::with_capacity(1 << stride);
        for i in 0..1u64 << stride {
            let lo = i << shift;
            let (a, b) = (self.at(lo), self.at(lo + (1u64 << shift) - 1));
            match (a == b).then(|| u16::try_from(self.class[a])) {
                Some(Ok(c)) if c & CHILD_OF_ROOT == 0 => root.push(c),
                _ => {
                    root.push(CHILD_OF_ROOT | u16::try_from(children.len()).ok()?);
                    children.push(lo);
                }
            }
        }
        let size = children.len() << first;
        if size > MAX_ENTRIES {
            return None;
        }
        self.nodes.resize(size, 0);
        for (k, &lo) in children.iter().enumerate() {
            self.fill(k << first, lo, first, shift - first)?;
        }
        let root: Vec<u16> = (0..ROOT).map(|i| root[i % root.len()]).collect();
        Some(Trie {
            root: Arc::new(root.try_into().ok()?),
            nodes: self.nodes.into(),
            root_shift: shift,
            first_stride: first,
            first_shift: shift - first,
            first_mask: (1 << first) - 1,
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
        self.fill(first, base, stride, shift)?;
        Some(first)
    }

    /// Writes the node at `first` (its entries already there) for values
    /// `base..base + 2^(stride + shift)`, appending its children.
    fn fill(&mut self, first: usize, base: u64, stride: u32, shift: u32) -> Option<()> {
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
        Some(())
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

    /// The interval model: the class of the last interval starting at or below `v`.
    fn naive(starts: &[u64], class: &[u32], v: u64) -> u32 {
        class[starts.partition_point(|s| *s <= v) - 1]
    }

    /// Classes past two bytes in the root are read through its children (one entry each at
    /// stride 0, a node of one class at wider strides), as are children.
    #[test]
    fn large_classes_in_the_root_read_through_children() {
        let starts: Vec<u64> = vec![0, 3, 5, 9, 0x1234, 0x1235, 0xfff0, 0x3_0000];
        let class = vec![0, 40_000, 7, 70_000, 0x7fff, 0x8000, 1 << 30, 5];
        for first in 0..=6 {
            let b = Builder::new(&starts, &class, 18, 8);
            let t = b.build(first).expect("builds");
            assert_eq!(t.first_stride, first);
            for (k, &s) in starts.iter().enumerate() {
                for v in [s.saturating_sub(1), s, s + 1, s + 63, s + 64] {
                    let want = naive(&starts, &class, v);
                    assert_eq!(t.class(v), want, "stride {first}, start {k} {s:#x}, {v:#x}");
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 32, ..proptest::prelude::ProptestConfig::default()
        })]
        /// Whatever one stride the root's children take (and the one `Trie::new` picks), every
        /// value near every boundary finds its interval's class.
        #[test]
        fn any_first_stride_finds_the_classes(
            width in 1u32..=32,
            raw in proptest::collection::vec((0u64..u64::MAX, 0u32..70_000), 1..60),
            near in proptest::collection::vec(0u64..1 << 14, 8),
        ) {
            let max = (1u64 << width) - 1;
            let mut points: Vec<(u64, u32)> = raw.iter().map(|&(a, c)| (a & max, c)).collect();
            points.push((0, 1));
            points.sort_unstable_by_key(|p| p.0);
            points.dedup_by_key(|p| p.0);
            let (starts, class): (Vec<u64>, Vec<u32>) = points.into_iter().unzip();
            let shift = width - width.min(MAX_STRIDE);
            let mut tries: Vec<Trie> = (0..=shift.min(MAX_STRIDE))
                .filter_map(|s| Builder::new(&starts, &class, width, 8).build(s))
                .collect();
            tries.push(Trie::new(&starts, &class, width).expect("builds"));
            for t in &tries {
                for &s in &starts {
                    for d in &near {
                        for v in [s.saturating_sub(*d), s + d] {
                            let v = v.min(max);
                            proptest::prop_assert_eq!(
                                t.class(v),
                                naive(&starts, &class, v),
                                "first stride {}, {:#x}", t.first_stride, v
                            );
                        }
                    }
                }
            }
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
