use super::table_mem::AtomicTable;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{fence, AtomicU16, AtomicUsize, Ordering};

pub(super) const TBL24_SIZE: usize = 1 << 24;
pub(super) const TBL8_GROUP: usize = 256;
/// A table entry: 2 bytes, so that tbl24 is 32 MiB rather than rte_lpm's 64 and twice as
/// many entries share a cache line (the real table's lookups miss less; perf/RESULTS.md).
pub(super) type Entry = u16;
/// Entry bit that marks a tbl24 entry as the index of a tbl8 group (the other 15 bits).
pub(super) const EXT: Entry = 1 << 15;
/// A zero entry is a miss; otherwise entries store `value + 1` in the 15 bits under EXT.
pub(super) const MISS: Entry = 0;
/// Largest value a route can carry: 32,766, so 32,767 distinct values.
pub const MAX_VALUE: u32 = EXT as u32 - 2;
/// Most tbl8 groups a table can hold: what a 15-bit group index reaches (16 MiB of tbl8).
pub const MAX_TBL8_GROUPS: usize = EXT as usize;

/// An IPv4 prefix with no host bits set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub addr: u32,
    pub len: u8,
}

impl Prefix {
    pub fn mask(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - len as u32)
        }
    }
    /// Fails when `len > 32` or host bits are set.
    pub fn new(addr: u32, len: u8) -> Option<Prefix> {
        (len <= 32 && addr & !Self::mask(len) == 0).then_some(Prefix { addr, len })
    }
    pub fn contains(&self, ip: u32) -> bool {
        ip & Self::mask(self.len) == self.addr
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.len)
    }
}
impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum BuildError {
    /// More /25../32 sub-trees than the configured tbl8 group limit.
    Tbl8Exhausted {
        needed: usize,
        limit: usize,
    },
    ValueTooLarge(u32),
    /// The table memory could not be mapped.
    NoMemory(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            BuildError::Tbl8Exhausted { needed, limit } => write!(
                f,
                "the table needs {needed} tbl8 groups (one per /24 holding longer prefixes), limit is {limit}"
            ),
            BuildError::ValueTooLarge(v) => write!(f, "next-hop value {v} exceeds {MAX_VALUE}"),
            BuildError::NoMemory(e) => write!(f, "cannot allocate the lookup table: {e}"),
        }
    }
}

/// A DIR-24-8 table mapping IPv4 addresses to values up to [`MAX_VALUE`] (route-set ids).
/// Workers read it through [`View`]s; the only writer is its [`Editor`](super::Editor), on
/// the management thread, which changes entries in place with single 16-bit stores.
pub struct Dir24_8 {
    tbl24: AtomicTable,
    /// The whole tbl8 reserve, mapped up front so a group index never dangles; pages of
    /// groups never used are never touched.
    tbl8: AtomicTable,
    routes: AtomicUsize,
    groups_used: AtomicUsize,
}

impl Dir24_8 {
    /// Builds the table from `(prefix, value)` pairs; later duplicates of a prefix win. Fails
    /// when the routes need more than `max_tbl8_groups` /24s holding longer prefixes (at most
    /// [`MAX_TBL8_GROUPS`], whatever is asked) or a value is above [`MAX_VALUE`].
    pub fn build(routes: &[(Prefix, u32)], max_tbl8_groups: usize) -> Result<Self, BuildError> {
        super::Editor::build(routes, max_tbl8_groups).map(super::Editor::into_table)
    }

    /// An empty table with room for `max_tbl8_groups` groups (at most [`MAX_TBL8_GROUPS`]).
    pub(super) fn empty(max_tbl8_groups: usize) -> Result<Self, BuildError> {
        let mem = |n| AtomicTable::zeroed(n).map_err(BuildError::NoMemory);
        Ok(Dir24_8 {
            tbl24: mem(TBL24_SIZE)?,
            tbl8: mem(max_tbl8_groups.min(MAX_TBL8_GROUPS) * TBL8_GROUP)?,
            routes: AtomicUsize::new(0),
            groups_used: AtomicUsize::new(0),
        })
    }

    pub(super) fn tables_mut(&mut self) -> (&mut [AtomicU16], &mut [AtomicU16]) {
        (self.tbl24.cells_mut(), self.tbl8.cells_mut())
    }
    pub(super) fn tables(&self) -> (&[AtomicU16], &[AtomicU16]) {
        (self.tbl24.cells(), self.tbl8.cells())
    }
    pub(super) fn set_counts(&self, routes: usize, groups: usize) {
        self.routes.store(routes, Ordering::Relaxed);
        self.groups_used.store(groups, Ordering::Relaxed);
    }

    /// The value of the longest prefix covering `ip`.
    #[inline]
    pub fn lookup(&self, ip: u32) -> Option<u32> {
        self.view().lookup(ip)
    }

    /// Borrowed slices of both levels: take it once per burst, look up per packet.
    #[inline]
    pub fn view(&self) -> View<'_> {
        View {
            // Tables are allocated with exactly TBL24_SIZE entries; a fixed-size array lets
            // the compiler see that `ip >> 8` is always in bounds.
            tbl24: self
                .tbl24
                .cells()
                .try_into()
                .expect("tbl24 has TBL24_SIZE entries"),
            tbl8: self.tbl8.cells(),
        }
    }

    /// Looks up a batch, eight at a time: the next eight tbl24 entries are prefetched while
    /// the current ones resolve, so the cache misses overlap. Misses yield `miss`.
    pub fn lookup_bulk(&self, ips: &[u32], out: &mut [u32], miss: u32) {
        self.view().lookup_bulk(ips, out, miss)
    }

    /// Distinct prefixes in the table.
    pub fn len(&self) -> usize {
        self.routes.load(Ordering::Relaxed)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// tbl8 groups in use.
    pub fn tbl8_groups(&self) -> usize {
        self.groups_used.load(Ordering::Relaxed)
    }
    /// tbl8 groups the table can hold.
    pub fn tbl8_capacity(&self) -> usize {
        self.tbl8.len() / TBL8_GROUP
    }
    /// Bytes of table memory in use: 32 MiB of tbl24 plus 512 bytes per tbl8 group.
    pub fn memory_bytes(&self) -> usize {
        let entry = std::mem::size_of::<Entry>();
        TBL24_SIZE * entry + self.tbl8_groups() * TBL8_GROUP * entry
    }
}

/// What [`View::resolve`] answers for no route: above every value.
const NONE: u32 = u32::MAX;

/// A borrowed view of a [`Dir24_8`], so the fast path converts the table memory once per
/// burst rather than once per packet.
#[derive(Clone, Copy)]
pub struct View<'a> {
    tbl24: &'a [AtomicU16; TBL24_SIZE],
    tbl8: &'a [AtomicU16],
}

impl View<'_> {
    #[inline(always)]
    pub fn lookup(&self, ip: u32) -> Option<u32> {
        let v = self.value(ip);
        (v != NONE).then_some(v)
    }

    /// The value entry `e` leads to for `ip`, or [`NONE`]: entries hold `value + 1`, so one
    /// wrapping subtract turns a miss (0) into NONE.
    #[inline(always)]
    fn resolve(&self, mut e: Entry, ip: u32) -> u32 {
        if e & EXT != 0 {
            // Pairs with the editor's release store of the group index: the group's entries
            // are written before it is linked. Free on x86 (a compiler barrier).
            fence(Ordering::Acquire);
            let i = ((e & !EXT) as usize) * TBL8_GROUP + (ip & 0xff) as usize;
            e = self.tbl8.get(i).map_or(MISS, |c| c.load(Ordering::Relaxed));
        }
        u32::from(e).wrapping_sub(1)
    }

    /// Starts loading `ip`'s tbl24 entry into the cache, for a lookup a little later.
    #[inline(always)]
    pub fn prefetch(&self, ip: u32) {
        crate::cpu::prefetch(&self.tbl24[(ip >> 8) as usize]);
    }

    /// The value for `ip`, u32::MAX when no route covers it (`lookup` without the `Option`).
    #[inline(always)]
    pub fn value(&self, ip: u32) -> u32 {
        self.resolve(self.tbl24[(ip >> 8) as usize].load(Ordering::Relaxed), ip)
    }

    /// The values for eight addresses, u32::MAX for a miss: the eight table loads issued
    /// before any is resolved. No prefetch: for a caller that looks up as it goes (the plain
    /// path's first pass, eight packets at a time), where `lookup_bulk` needs every address
    /// first.
    #[inline(always)]
    pub fn lookup8(&self, ips: &[u32; 8]) -> [u32; 8] {
        let e: [Entry; 8] =
            std::array::from_fn(|k| self.tbl24[(ips[k] >> 8) as usize].load(Ordering::Relaxed));
        std::array::from_fn(|k| self.resolve(e[k], ips[k]))
    }

    /// See [`Dir24_8::lookup_bulk`]. Blocks of [`BLOCK`] addresses in three passes, so that
    /// a block's misses are in flight together rather than one lookup's after another's:
    /// 1. every tbl24 entry of the block is prefetched;
    /// 2. the entries are read, and each address's answer cell found (the tbl8 entry a link
    ///    leads to, else a copy of the tbl24 entry) and prefetched: without this pass the
    ///    ~40% of real-table lookups that go to a tbl8 group take a second miss nothing
    ///    overlaps (perf/RESULTS.md);
    /// 3. the answers are read from their cells.
    ///
    /// No branch depends on an entry: choosing the cell is a `cmov`, where a branch on the
    /// link bit is mispredicted about once in two lookups on random addresses.
    pub fn lookup_bulk(&self, ips: &[u32], out: &mut [u32], miss: u32) {
        let n = ips.len().min(out.len());
        let (ips, out) = (&ips[..n], &mut out[..n]);
        // The tbl24 entries as read in pass 2: a non-link's answer is read back from its copy
        // here, not from tbl24, which the editor may have changed in between.
        let copies: [AtomicU16; BLOCK] = [const { AtomicU16::new(MISS) }; BLOCK];
        let mut cells: [&AtomicU16; BLOCK] = [&NO_GROUP; BLOCK];
        for (ips, out) in ips.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
            for ip in ips {
                crate::cpu::prefetch(&self.tbl24[(ip >> 8) as usize]);
            }
            for ((cell, copy), &ip) in cells.iter_mut().zip(&copies).zip(ips) {
                let e = self.tbl24[(ip >> 8) as usize].load(Ordering::Relaxed);
                copy.store(e, Ordering::Relaxed);
                *cell = self.answer_cell(e, ip, copy);
                crate::cpu::prefetch(*cell);
            }
            // Pairs with the editor's release store of a group index: a group's entries are
            // written before it is linked. Free on x86 (a compiler barrier).
            fence(Ordering::Acquire);
            for (o, cell) in out.iter_mut().zip(&cells) {
                // A miss (0) wraps to NONE, as in `resolve`.
                *o = u32::from(cell.load(Ordering::Relaxed)).wrapping_sub(1);
            }
        }
        // Misses are NONE above, with no test per lookup: choosing `miss` there cost a test
        // and a branch per address on 16-bit entries (callgrind, +3 instructions per packet
        // on the plain path). Callers pass NONE, so this pass is compiled out.
        if miss != NONE {
            out.iter_mut()
                .filter(|o| **o == NONE)
                .for_each(|o| *o = miss);
        }
    }

    /// Where `ip`'s answer is, given its tbl24 entry `e` (whose copy is `copy`): the tbl8
    /// entry for a link (a group past the table, never linked, answers MISS), else the copy.
    /// A select, not a branch (see `lookup_bulk`). The bounds test is made for non-links too
    /// (LLVM hoists it), where `i` comes from a value: in range on tables with room for every
    /// group index (`MAX_TBL8_GROUPS`, as the RIB and source filter build them), so it is
    /// always taken the same way there.
    #[inline(always)]
    fn answer_cell<'a>(&'a self, e: Entry, ip: u32, copy: &'a AtomicU16) -> &'a AtomicU16 {
        let i = ((e & !EXT) as usize) * TBL8_GROUP + (ip & 0xff) as usize;
        if e & EXT != 0 {
            self.tbl8.get(i).unwrap_or(&NO_GROUP)
        } else {
            copy
        }
    }
}

/// Addresses `lookup_bulk` takes per block: its passes keep the block's cells on the stack
/// (640 bytes), and 64 misses in flight is about what a core tracks.
const BLOCK: usize = 64;

/// The answer cell of a link to a group past the table: a miss. Never written.
static NO_GROUP: AtomicU16 = AtomicU16::new(MISS);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(
            u32::from(a.parse::<Ipv4Addr>().unwrap()),
            l.parse().unwrap(),
        )
        .unwrap()
    }
    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    #[test]
    fn longest_prefix_wins_at_every_depth() {
        let t = Dir24_8::build(
            &[
                (p("0.0.0.0/0"), 0),
                (p("10.0.0.0/8"), 1),
                (p("10.1.0.0/16"), 2),
                (p("10.1.2.0/24"), 3),
                (p("10.1.2.128/25"), 4),
                (p("10.1.2.200/32"), 5),
            ],
            16,
        )
        .unwrap();
        assert_eq!(t.lookup(ip("192.0.2.1")), Some(0));
        assert_eq!(t.lookup(ip("10.9.9.9")), Some(1));
        assert_eq!(t.lookup(ip("10.1.9.9")), Some(2));
        assert_eq!(t.lookup(ip("10.1.2.1")), Some(3));
        assert_eq!(t.lookup(ip("10.1.2.129")), Some(4));
        assert_eq!(t.lookup(ip("10.1.2.200")), Some(5));
        assert_eq!(t.lookup(ip("10.1.2.201")), Some(4));
        assert_eq!(t.tbl8_groups(), 1);
        assert_eq!(t.len(), 6);
    }

    #[test]
    fn no_default_route_misses() {
        let t = Dir24_8::build(&[(p("10.0.0.0/8"), 7)], 0).unwrap();
        assert_eq!(t.lookup(ip("11.0.0.1")), None);
        assert_eq!(t.lookup(ip("10.255.255.255")), Some(7));
        let mut out = [0; 6];
        t.lookup_bulk(
            &[
                ip("10.0.0.1"),
                ip("9.0.0.1"),
                ip("10.1.1.1"),
                0,
                u32::MAX,
                ip("10.2.3.4"),
            ],
            &mut out,
            99,
        );
        assert_eq!(out, [7, 99, 7, 99, 99, 7]);
    }

    #[test]
    fn host_route_under_no_covering_24() {
        let t = Dir24_8::build(&[(p("203.0.113.9/32"), 3)], 4).unwrap();
        assert_eq!(t.lookup(ip("203.0.113.9")), Some(3));
        assert_eq!(t.lookup(ip("203.0.113.8")), None);
    }

    #[test]
    fn tbl8_limit_is_enforced() {
        let err = Dir24_8::build(&[(p("10.0.0.1/32"), 1), (p("10.0.1.1/32"), 1)], 1)
            .err()
            .unwrap();
        assert_eq!(
            err,
            BuildError::Tbl8Exhausted {
                needed: 2,
                limit: 1
            }
        );
    }

    /// Group indexes and values up to what a 2-byte entry holds, and one past each refused.
    #[test]
    fn groups_and_values_at_the_entry_limits() {
        let host = |g: u32| Prefix {
            addr: 0x4000_0000 + (g << 8) + 7,
            len: 32,
        };
        let mut routes: Vec<(Prefix, u32)> = (0..MAX_TBL8_GROUPS as u32)
            .map(|g| (host(g), MAX_VALUE - g % 3))
            .collect();
        routes.push((p("64.0.0.0/8"), MAX_VALUE - 3));
        // Asked for more groups than an entry can index: the table holds what it can.
        let t = Dir24_8::build(&routes, 1 << 20).unwrap();
        assert_eq!(t.tbl8_capacity(), MAX_TBL8_GROUPS);
        assert_eq!(t.tbl8_groups(), MAX_TBL8_GROUPS);
        let last = MAX_TBL8_GROUPS as u32 - 1;
        for g in [0, 1, last - 1, last] {
            assert_eq!(t.lookup(host(g).addr), Some(MAX_VALUE - g % 3), "group {g}");
            assert_eq!(t.lookup(host(g).addr + 1), Some(MAX_VALUE - 3), "group {g}");
        }
        let mut out = [0; 3];
        t.lookup_bulk(
            &[host(last).addr, host(last).addr - 1, 0],
            &mut out,
            u32::MAX,
        );
        assert_eq!(out, [MAX_VALUE - last % 3, MAX_VALUE - 3, u32::MAX]);
        assert_eq!(
            t.memory_bytes(),
            (TBL24_SIZE + MAX_TBL8_GROUPS * TBL8_GROUP) * 2
        );

        routes.push((host(MAX_TBL8_GROUPS as u32), 1));
        assert_eq!(
            Dir24_8::build(&routes, 1 << 20).err(),
            Some(BuildError::Tbl8Exhausted {
                needed: MAX_TBL8_GROUPS + 1,
                limit: MAX_TBL8_GROUPS
            })
        );
        assert_eq!(
            Dir24_8::build(&[(p("10.0.0.0/8"), MAX_VALUE + 1)], 0).err(),
            Some(BuildError::ValueTooLarge(MAX_VALUE + 1))
        );
    }

    #[test]
    fn prefix_rejects_host_bits() {
        assert!(Prefix::new(ip("10.0.0.1"), 24).is_none());
        assert!(Prefix::new(0, 33).is_none());
        assert_eq!(p("10.0.0.0/24").to_string(), "10.0.0.0/24");
    }

    /// The model: scan every route, keep the longest match (last one on equal prefixes).
    fn linear(routes: &[(Prefix, u32)], ip: u32) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        for (p, v) in routes {
            if p.contains(ip) && best.is_none_or(|(l, _)| p.len >= l) {
                best = Some((p.len, *v));
            }
        }
        best.map(|(_, v)| v)
    }

    fn arb_routes() -> impl Strategy<Value = Vec<(Prefix, u32)>> {
        // Addresses drawn from a small space so that prefixes nest and collide often.
        let prefix = (0u32..64, 0u32..4, any::<u8>(), 0u8..=32).prop_map(|(a, b, c, len)| {
            let addr = (10 << 24) | (a << 16) | (b << 8) | c as u32;
            let len = if len < 8 { len / 4 } else { len }; // a few /0 and /1
            Prefix {
                addr: addr & Prefix::mask(len),
                len,
            }
        });
        // Values also at the top of the range, where they meet the group-link bit.
        let value = prop_oneof![0u32..1000, MAX_VALUE - 3..=MAX_VALUE];
        proptest::collection::vec((prefix, value), 0..40)
    }

    /// One route per prefix, the last given (as `build` keeps them).
    fn dedup(routes: &[(Prefix, u32)]) -> Vec<(Prefix, u32)> {
        let mut dedup: Vec<(Prefix, u32)> = Vec::new();
        for (p, v) in routes {
            dedup.retain(|(q, _)| q != p);
            dedup.push((*p, *v));
        }
        dedup
    }

    fn probe_ip((a, b, c): &(u32, u32, u8)) -> u32 {
        (10 << 24) | (a << 16) | (b << 8) | *c as u32
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn matches_linear_scan(routes in arb_routes(),
                               probes in proptest::collection::vec((0u32..64, 0u32..4, any::<u8>()), 64)) {
            let dedup = dedup(&routes);
            let t = Dir24_8::build(&dedup, 1024).unwrap();
            let ips: Vec<u32> = probes.iter().map(probe_ip)
                .chain([0, u32::MAX, 0x0b000000]).collect();
            let mut bulk = vec![0; ips.len()];
            t.lookup_bulk(&ips, &mut bulk, u32::MAX);
            // Eight at a time as the plain path's first pass looks up, and one by one.
            let view = t.view();
            let eights: Vec<u32> = ips
                .chunks_exact(8)
                .flat_map(|c| view.lookup8(c.try_into().unwrap()))
                .collect();
            for (i, ip) in ips.iter().enumerate() {
                let want = linear(&dedup, *ip);
                prop_assert_eq!(t.lookup(*ip), want, "ip {}", Ipv4Addr::from(*ip));
                prop_assert_eq!(bulk[i], want.unwrap_or(u32::MAX));
                prop_assert_eq!(view.value(*ip), want.unwrap_or(u32::MAX));
                if let Some(e) = eights.get(i) {
                    prop_assert_eq!(*e, want.unwrap_or(u32::MAX));
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
        /// `lookup_bulk`'s blocks and passes: every batch length up to three blocks (so each
        /// edge of a block and of the last, partial one), tables with and without tbl8
        /// groups, any miss value, an output longer or shorter than the batch.
        #[test]
        fn bulk_blocks_match_linear_scan(routes in arb_routes(), deep in any::<bool>(),
                                         probes in proptest::collection::vec((0u32..64, 0u32..4, any::<u8>()), 0..3 * BLOCK + 8),
                                         miss in prop_oneof![Just(NONE), any::<u32>()],
                                         spare in 0usize..3, short in 0usize..9) {
            // Without deep routes the table holds no tbl8 group, and has room for none.
            let routes: Vec<_> = routes.into_iter().filter(|(p, _)| deep || p.len <= 24).collect();
            let dedup = dedup(&routes);
            let t = Dir24_8::build(&dedup, if deep { 1024 } else { 0 }).unwrap();
            prop_assert_eq!(t.tbl8_groups() > 0, dedup.iter().any(|(p, _)| p.len > 24));
            let ips: Vec<u32> = probes.iter().map(probe_ip).collect();
            let want: Vec<u32> = ips.iter().map(|ip| linear(&dedup, *ip).unwrap_or(miss)).collect();
            // Room past the batch is left alone.
            let mut out = vec![7; ips.len() + spare];
            t.lookup_bulk(&ips, &mut out, miss);
            prop_assert_eq!(&out[..ips.len()], &want[..]);
            prop_assert!(out[ips.len()..].iter().all(|o| *o == 7));
            // A shorter output takes the batch's first answers.
            let k = ips.len().saturating_sub(short);
            let mut out = vec![7; k];
            t.lookup_bulk(&ips, &mut out, miss);
            prop_assert_eq!(&out[..], &want[..k]);
        }
    }
}
