//! Phase 0 of the classifier for one field: its value to its equivalence class through a
//! multi-bit trie, as rte_acl walks a key, but with each node's stride chosen at build time.
//! A node splits its value range into `2^stride` equal parts; a part that lies in one class is
//! that class (a leaf), else it points to a child node. A child's stride reaches the finest
//! boundary inside it (a /24 under a /12 bucket: 12 bits) when that costs at most ~256 entries
//! per boundary, so realistic prefixes and ports take one to three dependent loads, with no
//! search.

/// Entries, once read (sign-extended): a class `c` is `!c` (negative), a child the index of
/// its node's head (`heads`). Two bytes each where every class and head index fits 15 bits
/// (halves the roots' L1 footprint), else four.
#[derive(Debug, Clone)]
enum Nodes {
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}
/// A child node's head: its first entry (low 32 bits), the value bits below its index (bits
/// 32..40: a shift reads them modulo 32 itself) and its index mask (from bit 40).
const SHIFT_AT: u32 = 32;
const MASK_AT: u32 = 40;
const MAX_ENTRIES: usize = 1 << 22;
/// Widest node: 4096 entries (8 or 16 KiB).
const MAX_STRIDE: u32 = 12;
/// Levels a lookup walks at most: the root's 12 bits, then strides of at least 4 over the
/// remaining 20 of a 32-bit value.
const MAX_DEPTH: usize = 6;

#[cfg(test)]
thread_local! {
    /// Tests: build four-byte entries even where two fit (the fallback's coverage).
    pub static WIDE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[derive(Debug, Clone)]
pub struct Trie {
    nodes: Nodes,
    heads: Vec<u64>,
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
        if class.iter().any(|c| *c >= 1 << 31) {
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

    /// The class of value `v`, which fits the field's width (a larger one reads as class 0).
    #[cfg(test)]
    pub fn class_within(&self, v: u32) -> u32 {
        self.class_from_root((v >> self.root_shift) as usize, || v)
    }

    /// Value bits below the root's index: a reader may shift them out with the field's own
    /// shift, one shift per key instead of two (`class_from_root`).
    pub fn root_shift(&self) -> u32 {
        self.root_shift
    }

    /// The class of the value whose root index (`value >> root_shift`) is `i`; `v` gives the
    /// value itself, needed only below the root.
    #[inline(always)]
    pub fn class_from_root(&self, i: usize, v: impl FnOnce() -> u32) -> u32 {
        let e = self.entry(i);
        // The root's entry, inline; the levels below it apart: with the loop inline the
        // classifier's per-key loop shuffled registers around it (callgrind, issue 14).
        match e < 0 {
            true => !e as u32,
            false => self.below(e as u32, v()),
        }
    }

    /// Entry `i`, sign-extended (an index past the end reads as class 0).
    #[inline(always)]
    fn entry(&self, i: usize) -> i32 {
        match &self.nodes {
            Nodes::Narrow(n) => n.get(i).copied().unwrap_or(!0) as i16 as i32,
            Nodes::Wide(n) => n.get(i).copied().unwrap_or(!0) as i32,
        }
    }

    /// The class of `v` from the root's entry `h` for it, a child's head index.
    #[inline(never)]
    fn below(&self, mut h: u32, v: u32) -> u32 {
        for _ in 0..MAX_DEPTH {
            let head = self.heads.get(h as usize).copied().unwrap_or(0);
            let at = (head as u32)
                .wrapping_add(v.wrapping_shr((head >> SHIFT_AT) as u32) & (head >> MASK_AT) as u32);
            let e = self.entry(at as usize);
            if e < 0 {
                return !e as u32;
            }
            h = e as u32;
        }
        0
    }

    /// Whether entries take two bytes.
    #[cfg(test)]
    pub fn narrow(&self) -> bool {
        matches!(self.nodes, Nodes::Narrow(_))
    }

    pub fn bytes(&self) -> usize {
        match &self.nodes {
            Nodes::Narrow(n) => n.len() * 2,
            Nodes::Wide(n) => n.len() * 4,
        }
    }
}

struct Builder<'a> {
    starts: &'a [u64],
    class: &'a [u32],
    width: u32,
    /// log2 of the entries a child may spend per boundary inside it.
    extra: u32,
    nodes: Vec<i32>,
    heads: Vec<u64>,
}

impl<'a> Builder<'a> {
    fn new(starts: &'a [u64], class: &'a [u32], width: u32, extra: u32) -> Builder<'a> {
        Builder {
            starts,
            class,
            width,
            extra,
            nodes: Vec::new(),
            heads: Vec::new(),
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
        let narrow = self.heads.len() <= 1 << 15
            && self
                .nodes
                .iter()
                .all(|&e| (-(1 << 15)..1 << 15).contains(&e));
        #[cfg(test)]
        let narrow = narrow && !WIDE.get();
        let nodes = match narrow {
            true => Nodes::Narrow(self.nodes.iter().map(|&e| e as u16).collect()),
            false => Nodes::Wide(self.nodes.iter().map(|&e| e as u32).collect()),
        };
        Some(Trie {
            nodes,
            heads: self.heads,
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
        self.nodes.resize(first + (1 << stride), !0);
        for i in 0..1u64 << stride {
            let lo = base + (i << shift);
            let hi = lo + (1u64 << shift) - 1;
            let (a, b) = (self.at(lo), self.at(hi));
            let e = if a == b {
                !(self.class[a] as i32)
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
                self.heads.push(
                    child as u64 | ((shift - s) as u64) << SHIFT_AT | ((1u64 << s) - 1) << MASK_AT,
                );
                self.heads.len() as i32 - 1
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
            for wide in [false, true] {
                let t = WIDE.with(|w| {
                    w.set(wide);
                    let t = Trie::new(&starts, &class, width).expect("builds");
                    w.set(false);
                    t
                });
                assert_eq!(t.narrow(), !wide);
                finds_every_boundary(&t, &starts, &class, width);
            }
        }
    }

    fn finds_every_boundary(t: &Trie, starts: &[u64], class: &[u32], width: u32) {
        {
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

    /// Classes past 15 bits take four-byte entries, and still find their intervals.
    #[test]
    fn large_classes_fall_back_to_wide_entries() {
        let starts: Vec<u64> = (0..4u64).map(|i| i << 20).collect();
        for top in [(1 << 15) - 1, 1 << 15, (1 << 31) - 1] {
            let class = vec![0, top, 5, top - 1];
            let t = Trie::new(&starts, &class, 32).expect("builds");
            assert_eq!(t.narrow(), top < 1 << 15);
            finds_every_boundary(&t, &starts, &class, 32);
        }
        assert!(Trie::new(&starts, &[0, 1 << 31, 0, 0], 32).is_none());
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
