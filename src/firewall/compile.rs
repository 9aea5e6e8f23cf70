//! The compiled classifier. Each rule is rewritten into a disjunction of terms (negations
//! pushed down to single-field predicates), each term a conjunction of per-field value sets.
//! For every field some rule tests, the value space is cut into elementary intervals, and each
//! interval (plus "the packet lacks this field") maps to the bitset of terms that accept it.
//! A packet costs one binary search and one bitset AND per field, then the lowest set bit:
//! never one evaluation per rule. A `skip` winner masks off the rest of its phase and the
//! search resumes on the same bitset. Rules whose expansion would exceed `MAX_TERMS` terms
//! keep using the reference evaluator, in their place in the order.
use super::eval::{decide, eval, phase_end, Action, Fields, Rule};
use super::parser::{CmpOp, Expr, Value};
use super::scheme::Field;

/// Terms one rule may expand to before it falls back to the evaluator.
pub const MAX_TERMS: usize = 32;

/// A set of u64 values as sorted disjoint inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    fn all() -> Ranges {
        Ranges(vec![(0, u64::MAX)])
    }
    fn contains(&self, v: u64) -> bool {
        let i = self.0.partition_point(|r| r.1 < v);
        self.0.get(i).is_some_and(|r| r.0 <= v)
    }
    fn complement(&self) -> Ranges {
        let mut out = Vec::new();
        let mut next = 0u64;
        let mut done = false;
        for &(a, b) in &self.0 {
            if a > next {
                out.push((next, a - 1));
            }
            if b == u64::MAX {
                done = true;
                break;
            }
            next = b + 1;
        }
        if !done {
            out.push((next, u64::MAX));
        }
        Ranges(out)
    }
    fn intersect(&self, o: &Ranges) -> Ranges {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() && j < o.0.len() {
            let (a, b) = (self.0[i], o.0[j]);
            let lo = a.0.max(b.0);
            let hi = a.1.min(b.1);
            if lo <= hi {
                out.push((lo, hi));
            }
            if a.1 < b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        Ranges(out)
    }
}

/// One field's condition in a term: which values pass, and whether a packet without the
/// field passes.
#[derive(Debug, Clone)]
struct Atom {
    field: Field,
    accept: Ranges,
    absent: bool,
}

/// Interned strings for the string fields (tunnel names, directions).
#[derive(Debug, Clone, Default)]
struct Strings(Vec<String>);

impl Strings {
    fn id(&mut self, s: &str) -> u64 {
        match self.0.iter().position(|x| x == s) {
            Some(i) => i as u64,
            None => {
                self.0.push(s.to_owned());
                (self.0.len() - 1) as u64
            }
        }
    }
    fn lookup(&self, s: &str) -> u64 {
        self.0
            .iter()
            .position(|x| x == s)
            .map_or(u64::MAX, |i| i as u64)
    }
}

/// The packet's value for a field, None when the packet does not have it. Written apart from
/// the evaluator's `num`/`has`/`text` on purpose: the evaluator is the property test's oracle,
/// so a wrong field mapping here must disagree with it (and sharing them measured ~15
/// instructions per packet more).
#[inline(always)]
fn value(f: Field, p: &Fields<'_>, strings: &Strings) -> Option<u64> {
    Some(match f {
        Field::IpSrc => p.src as u64,
        Field::IpDst => p.dst as u64,
        Field::IpProto => p.proto as u64,
        Field::IpLen => p.len as u64,
        Field::IpHdrLen => p.hdr_len as u64,
        Field::IpTtl => p.ttl as u64,
        Field::Icmp => p.icmp.map(|_| 1)?,
        Field::IcmpType => p.icmp?.0 as u64,
        Field::IcmpCode => p.icmp?.1 as u64,
        Field::Tcp => p.tcp.map(|_| 1)?,
        Field::TcpFlags => p.tcp?.2 as u64,
        Field::TcpFlag(bit) => (p.tcp?.2 & bit != 0) as u64,
        Field::TcpSrcPort => p.tcp?.0 as u64,
        Field::TcpDstPort => p.tcp?.1 as u64,
        Field::Udp => p.udp.map(|_| 1)?,
        Field::UdpSrcPort => p.udp?.0 as u64,
        Field::UdpDstPort => p.udp?.1 as u64,
        Field::Tunnel => strings.lookup(p.tunnel?),
        Field::Direction => strings.lookup(p.direction?),
    })
}

fn atom(e: &Expr, negate: bool, strings: &mut Strings) -> Option<Atom> {
    let (field, accept) = match e {
        Expr::Has(f) => (*f, Ranges(vec![(1, 1)])),
        Expr::Cmp(f, op, v) => {
            let v = match v {
                Value::Num(n) => *n,
                Value::Str(s) => strings.id(s),
            };
            let r = match op {
                CmpOp::Eq => Ranges(vec![(v, v)]),
                CmpOp::Ne => Ranges(vec![(v, v)]).complement(),
                CmpOp::Lt if v == 0 => Ranges(vec![]),
                CmpOp::Lt => Ranges(vec![(0, v - 1)]),
                CmpOp::Le => Ranges(vec![(0, v)]),
                CmpOp::Gt if v == u64::MAX => Ranges(vec![]),
                CmpOp::Gt => Ranges(vec![(v + 1, u64::MAX)]),
                CmpOp::Ge => Ranges(vec![(v, u64::MAX)]),
            };
            (*f, r)
        }
        Expr::In(f, set) => {
            if set.strs.is_empty() {
                (*f, Ranges(set.ranges.clone()))
            } else {
                let mut ids: Vec<(u64, u64)> = set
                    .strs
                    .iter()
                    .map(|s| strings.id(s))
                    .map(|i| (i, i))
                    .collect();
                ids.sort_unstable();
                (*f, Ranges(ids))
            }
        }
        _ => return None,
    };
    Some(if negate {
        Atom {
            field,
            accept: accept.complement(),
            absent: true,
        }
    } else {
        Atom {
            field,
            accept,
            absent: false,
        }
    })
}

/// Disjunctive normal form with negations pushed to atoms; None when it would exceed MAX_TERMS.
fn dnf(e: &Expr, negate: bool, strings: &mut Strings) -> Option<Vec<Vec<Atom>>> {
    let cross = |a: Vec<Vec<Atom>>, b: Vec<Vec<Atom>>| -> Option<Vec<Vec<Atom>>> {
        if a.len() * b.len() > MAX_TERMS {
            return None;
        }
        Some(
            a.iter()
                .flat_map(|x| b.iter().map(move |y| [x.clone(), y.clone()].concat()))
                .collect(),
        )
    };
    let union = |mut a: Vec<Vec<Atom>>, b: Vec<Vec<Atom>>| -> Option<Vec<Vec<Atom>>> {
        a.extend(b);
        (a.len() <= MAX_TERMS).then_some(a)
    };
    // A run of `not`s is peeled in a loop: one stack frame for the run, not one per `not`.
    let (mut e, mut negate) = (e, negate);
    while let Expr::Not(x) = e {
        (e, negate) = (x, !negate);
    }
    match (e, negate) {
        (Expr::Or(a, b), false) | (Expr::And(a, b), true) => {
            union(dnf(a, negate, strings)?, dnf(b, negate, strings)?)
        }
        (Expr::And(a, b), false) | (Expr::Or(a, b), true) => {
            cross(dnf(a, negate, strings)?, dnf(b, negate, strings)?)
        }
        (Expr::Xor(a, b), n) => {
            // a xor b = (a and not b) or (not a and b); its negation swaps one side.
            let (pa, pb) = (dnf(a, false, strings)?, dnf(b, !n, strings)?);
            let (na, nb) = (dnf(a, true, strings)?, dnf(b, n, strings)?);
            union(cross(pa, pb)?, cross(na, nb)?)
        }
        (leaf, n) => Some(vec![vec![atom(leaf, n, strings)?]]),
    }
}

/// Bytes the cross-product tables may take (tables, the classes' bitsets while they are built,
/// and the final answers); past it the classifier keeps the per-field bitsets and ANDs them.
pub const TABLE_BUDGET: usize = 64 << 20;

/// Phase 0 for one field: elementary interval starts, each interval's class (intervals that
/// the same terms accept share one), and the class of packets without the field. `index` maps
/// the value's top bits (a bucket) straight to the class when the bucket lies in one interval,
/// else to the few intervals it spans; it has at most 4096 entries, so the tables of all
/// fields stay in L2 (a 64K-entry index per field did not).
#[derive(Debug, Clone)]
struct Dim {
    field: Field,
    starts: Vec<u64>,
    /// Interval -> class.
    class: Vec<u32>,
    absent: u32,
    /// Bucket -> `LEAF | class`, or the first interval (low 32 bits) and the last (bits
    /// 32..63) the bucket's values fall in. The last bucket runs to `u64::MAX`.
    index: Vec<u64>,
    /// Value bits below the bucket number.
    shift: u32,
}

/// An index entry that is the class itself.
const LEAF: u64 = 1 << 63;

impl Dim {
    /// An index over `starts` for values `width` bits wide: about 256 buckets per start
    /// (so that clustered starts still mostly get buckets of their own), 16 to 4096 of them.
    fn index(starts: &[u64], class: &[u32], width: u32) -> (Vec<u64>, u32) {
        let bits = (starts.len().next_power_of_two().trailing_zeros() + 8).clamp(4, 12);
        let shift = width - bits.min(width);
        let buckets = 1u64 << bits.min(width);
        let at = |v: u64| starts.partition_point(|s| *s <= v).saturating_sub(1);
        let index = (0..buckets)
            .map(|b| {
                let (lo, hi) = if b + 1 == buckets {
                    (at(b << shift), starts.len() - 1)
                } else {
                    (at(b << shift), at(((b + 1) << shift) - 1))
                };
                if lo == hi {
                    LEAF | class[lo] as u64
                } else {
                    lo as u64 | (hi as u64) << 32
                }
            })
            .collect();
        (index, shift)
    }

    /// The class of value `v`.
    #[inline]
    fn class_of_value(&self, v: u64) -> u32 {
        let b = ((v >> self.shift) as usize).min(self.index.len() - 1);
        let e = self.index[b];
        if e & LEAF != 0 {
            return e as u32;
        }
        let (mut lo, hi) = (e as u32 as usize, (e >> 32) as usize);
        if hi - lo > 8 {
            // A crowded bucket (clustered prefixes or ports): binary search.
            if let Some(within) = self.starts.get(lo + 1..=hi) {
                lo += within.partition_point(|s| *s <= v);
            }
        } else {
            while lo < hi && self.starts.get(lo + 1).is_some_and(|s| *s <= v) {
                lo += 1;
            }
        }
        self.class.get(lo).copied().unwrap_or(self.absent)
    }

    /// The packet's class for this field.
    #[inline(always)]
    fn class_of(&self, p: &Fields<'_>, strings: &Strings) -> u32 {
        match value(self.field, p, strings) {
            None => self.absent,
            Some(v) => self.class_of_value(v),
        }
    }
}

/// Fields whose values fit in 16 bits.
fn is_narrow(f: Field) -> bool {
    !matches!(f, Field::IpSrc | Field::IpDst)
}

/// Distinct term bitsets, `words` each, numbered in order of first appearance.
struct Interner {
    words: usize,
    map: std::collections::HashMap<Box<[u64]>, u32>,
    sets: Vec<u64>,
}

impl Interner {
    fn new(words: usize) -> Interner {
        Interner {
            words,
            map: Default::default(),
            sets: Vec::new(),
        }
    }
    fn id(&mut self, set: &[u64]) -> u32 {
        if let Some(&i) = self.map.get(set) {
            return i;
        }
        let i = (self.sets.len() / self.words) as u32;
        self.map.insert(set.into(), i);
        self.sets.extend_from_slice(set);
        i
    }
    /// Bytes the interner holds (its sets twice: in the list and as the map's keys).
    fn bytes(&self) -> usize {
        self.sets.len() * 16
    }
}

/// One cross-product step (Recursive Flow Classification, Gupta & McKeown): the classes of
/// slots `a` and `b` (a field's, or an earlier step's) combine to this step's class, one load
/// from `table[class_a * nb + class_b]`.
#[derive(Debug, Clone)]
struct Cross {
    a: usize,
    b: usize,
    nb: usize,
    table: Vec<u32>,
}

/// An answer that walks over skip rules.
const WALK: u32 = 1 << 31;
/// Slots a packet's classes take: fields, then one per cross-product step (fewer than 2 per
/// distinct field; fields are at most 26 kinds, counting each TCP flag).
const MAX_SLOTS: usize = 64;
/// Class pairs times words a candidate step may cost to have its classes counted before the
/// greedy order picks it (larger candidates are ranked by their pair count alone).
const TRIAL_WORK: usize = 1 << 22;

#[derive(Debug, Clone)]
pub struct Classifier {
    rules: Vec<Rule>,
    strings: Strings,
    dims: Vec<Dim>,
    /// Cross-product steps, in order; step `k` writes slot `max(dims, 1) + k`.
    cross: Vec<Cross>,
    /// The slots left after the steps, with their classes' term bitsets (`words` each),
    /// ANDed per packet; empty when a single final class has its answer precomputed.
    live: Vec<(usize, Vec<u64>)>,
    /// The final slot, when the steps reach one and no rule is left to the evaluator.
    final_slot: Option<usize>,
    /// Final class -> 0 (no rule matches), rule + 1 (it decides), or `WALK | i` (skip rules
    /// match first: `walks[i]`).
    answer: Vec<u32>,
    /// (skip rules passed, in order; the deciding rule + 1 or 0).
    walks: Vec<(Vec<u32>, u32)>,
    /// Term bit -> rule index, in rule order.
    term_rule: Vec<u16>,
    /// Enabled rules left to the evaluator, in order.
    fallback: Vec<usize>,
    /// Rule index -> its first term bit (terms of later rules come after); one extra entry.
    first_term: Vec<usize>,
    /// Rule index -> the first rule of the next phase, where a skip resumes.
    phase_end: Vec<usize>,
    words: usize,
    /// Some enabled rule tests the tunnel or the direction.
    per_crossing: bool,
    /// Bytes of the cross-product tables, the live bitsets and the answers.
    table_bytes: usize,
}

/// Distinct ANDs of two class lists, counted by hash (an estimate, for ranking steps).
fn count_pairs(a: &[u64], b: &[u64], words: usize) -> usize {
    let mut seen = std::collections::HashSet::new();
    for sa in a.chunks_exact(words) {
        for sb in b.chunks_exact(words) {
            let h = sa
                .iter()
                .zip(sb)
                .fold(0xcbf2_9ce4_8422_2325u64, |h, (x, y)| {
                    (h ^ (x & y)).wrapping_mul(0x0100_0000_01b3).rotate_left(29)
                });
            seen.insert(h);
        }
    }
    seen.len()
}

impl Classifier {
    pub fn new(rules: &[Rule]) -> Classifier {
        Classifier::with_budget(rules, TABLE_BUDGET)
    }

    /// `new` with another byte budget for the cross-product tables (0: none, the per-field
    /// bitsets are ANDed per packet).
    pub fn with_budget(rules: &[Rule], budget: usize) -> Classifier {
        let mut strings = Strings::default();
        let mut terms: Vec<(u16, Vec<Atom>)> = Vec::new();
        let mut fallback = Vec::new();
        for (i, r) in rules.iter().enumerate().filter(|(_, r)| r.enabled) {
            match dnf(&r.expr, false, &mut strings) {
                Some(ts) => terms.extend(ts.into_iter().map(|t| (i as u16, t))),
                None => fallback.push(i),
            }
        }
        let words = terms.len().div_ceil(64).max(1);
        let mut fields: Vec<Field> = terms
            .iter()
            .flat_map(|(_, t)| t.iter().map(|a| a.field))
            .collect();
        fields.sort_unstable();
        fields.dedup();
        let mut classes: Vec<Vec<u64>> = Vec::new();
        let dims = fields
            .into_iter()
            .map(|field| {
                // Each term's condition on this field (all values when it has none).
                let conds: Vec<(Ranges, bool)> = terms
                    .iter()
                    .map(|(_, t)| {
                        t.iter()
                            .filter(|a| a.field == field)
                            .fold((Ranges::all(), true), |(r, abs), a| {
                                (r.intersect(&a.accept), abs && a.absent)
                            })
                    })
                    .collect();
                let mut starts: Vec<u64> = vec![0];
                for (r, _) in &conds {
                    for &(a, b) in &r.0 {
                        starts.push(a);
                        if b < u64::MAX {
                            starts.push(b + 1);
                        }
                    }
                }
                starts.sort_unstable();
                starts.dedup();
                let bits = |pred: &dyn Fn(&(Ranges, bool)) -> bool| {
                    let mut w = vec![0u64; words];
                    for (k, c) in conds.iter().enumerate() {
                        if pred(c) {
                            w[k / 64] |= 1 << (k % 64);
                        }
                    }
                    w
                };
                let mut ids = Interner::new(words);
                let class: Vec<u32> = starts
                    .iter()
                    .map(|s| ids.id(&bits(&|c: &(Ranges, bool)| c.0.contains(*s))))
                    .collect();
                let absent = ids.id(&bits(&|c: &(Ranges, bool)| c.1));
                classes.push(ids.sets);
                let width = if is_narrow(field) { 16 } else { 32 };
                let (index, shift) = Dim::index(&starts, &class, width);
                Dim {
                    field,
                    starts,
                    class,
                    absent,
                    index,
                    shift,
                }
            })
            .collect::<Vec<_>>();
        if classes.is_empty() {
            // No compiled term: one class (slot 0, always class 0) matching nothing.
            classes.push(vec![0; words]);
        }
        let term_rule: Vec<u16> = terms.iter().map(|(r, _)| *r).collect();
        let first_term: Vec<usize> = (0..=rules.len())
            .map(|r| terms.partition_point(|(t, _)| (*t as usize) < r))
            .collect();
        let mut c = Classifier {
            rules: rules.to_vec(),
            strings,
            dims,
            cross: Vec::new(),
            live: Vec::new(),
            final_slot: None,
            answer: Vec::new(),
            walks: Vec::new(),
            term_rule,
            fallback,
            first_term,
            phase_end: (0..rules.len()).map(|i| phase_end(rules, i)).collect(),
            words,
            per_crossing: rules.iter().any(|r| {
                r.enabled
                    && r.expr
                        .mentions(&|f| matches!(f, Field::Tunnel | Field::Direction))
            }),
            table_bytes: 0,
        };
        c.tables(classes, budget);
        c
    }

    /// Combines the fields' classes through cross-product tables, within `budget` bytes:
    /// greedily, the step whose result has the fewest classes first. Down to one final
    /// class, whose answer is precomputed; a budget that runs out first leaves several slots
    /// whose term bitsets are ANDed per packet (budget 0: one per field).
    fn tables(&mut self, fields: Vec<Vec<u64>>, budget: usize) {
        let words = self.words;
        let n = fields.len();
        if n >= MAX_SLOTS / 2 {
            self.live = fields.into_iter().enumerate().collect();
            return;
        }
        let mut live: Vec<(usize, Vec<u64>)> = fields.into_iter().enumerate().collect();
        let mut table_bytes = 0usize;
        while live.len() > 1 {
            let held: usize = live.iter().map(|(_, s)| s.len() * 8).sum();
            let room = budget.saturating_sub(table_bytes + held);
            let len = |s: &Vec<u64>| s.len() / words;
            let mut best: Option<(usize, usize, usize, usize)> = None;
            for x in 0..live.len() {
                for y in x + 1..live.len() {
                    let pairs = len(&live[x].1) * len(&live[y].1);
                    if pairs * 4 > room {
                        continue;
                    }
                    let classes = if pairs * words <= TRIAL_WORK {
                        count_pairs(&live[x].1, &live[y].1, words)
                    } else {
                        pairs
                    };
                    if best.is_none_or(|b| (classes, pairs) < (b.0, b.1)) {
                        best = Some((classes, pairs, x, y));
                    }
                }
            }
            let Some((_, pairs, x, y)) = best else { break };
            let (a, b) = (&live[x].1, &live[y].1);
            let mut out = Interner::new(words);
            let mut table = Vec::with_capacity(pairs);
            let mut and = vec![0u64; words];
            let mut over = false;
            for sa in a.chunks_exact(words) {
                for sb in b.chunks_exact(words) {
                    for ((o, x), y) in and.iter_mut().zip(sa).zip(sb) {
                        *o = x & y;
                    }
                    table.push(out.id(&and));
                }
                if out.bytes() + pairs * 4 > room {
                    over = true;
                    break;
                }
            }
            if over {
                break;
            }
            table_bytes += table.len() * 4;
            let nb = len(b);
            let (sb, _) = live.swap_remove(y);
            let (sa, _) = live.swap_remove(x);
            self.cross.push(Cross {
                a: sa,
                b: sb,
                nb,
                table,
            });
            live.push((n.max(1) + self.cross.len() - 1, out.sets));
        }
        if let ([(slot, sets)], true) = (&live[..], self.fallback.is_empty()) {
            self.final_slot = Some(*slot);
            let mut walks = Vec::new();
            self.answer = sets
                .chunks_exact(words)
                .map(|set| {
                    let mut skips = Vec::new();
                    let mut from = 0;
                    let decided = loop {
                        match self.first_term_at(set, from) {
                            Some(i) if self.rules[i].action == Action::Skip => {
                                skips.push(i as u32);
                                from = self.phase_end[i];
                            }
                            Some(i) => break i as u32 + 1,
                            None => break 0,
                        }
                    };
                    if skips.is_empty() {
                        decided
                    } else {
                        walks.push((skips, decided));
                        WALK | (walks.len() - 1) as u32
                    }
                })
                .collect();
            self.walks = walks;
            live.clear();
        }
        self.table_bytes = table_bytes
            + self.answer.len() * 4
            + self.walks.iter().map(|w| w.0.len() * 4 + 32).sum::<usize>()
            + live.iter().map(|(_, s)| s.len() * 8).sum::<usize>();
        self.live = live;
    }

    /// The first matching rule, as `first_match` would say. `scratch` is reused across
    /// packets (at least `words()` long), so classifying allocates nothing.
    pub fn classify(&self, p: &Fields<'_>, scratch: &mut [u64]) -> Option<(usize, Action)> {
        self.classify_with(p, scratch, |_| {})
    }

    /// `classify`, telling `skipped` each skip rule that matched on the way (for counters).
    pub fn classify_with(
        &self,
        p: &Fields<'_>,
        scratch: &mut [u64],
        mut skipped: impl FnMut(usize),
    ) -> Option<(usize, Action)> {
        let mut ids = [0u32; MAX_SLOTS];
        for (k, d) in self.dims.iter().enumerate() {
            // Opaque per field: otherwise LLVM hoists every field's load out of the loop and
            // spills them, ~60 instructions per packet for the few fields the rules test.
            let p = std::hint::black_box(p);
            ids[k % MAX_SLOTS] = d.class_of(p, &self.strings);
        }
        let n = self.dims.len().max(1);
        for (k, c) in self.cross.iter().enumerate() {
            // Slots are below MAX_SLOTS by construction; the masks spare the bounds checks.
            let at = ids[c.a % MAX_SLOTS] as usize * c.nb + ids[c.b % MAX_SLOTS] as usize;
            ids[(n + k) % MAX_SLOTS] = c.table.get(at).copied().unwrap_or(0);
        }
        if let Some(slot) = self.final_slot {
            let a = self.answer.get(ids[slot] as usize).copied().unwrap_or(0);
            let decided = if a & WALK == 0 {
                a
            } else {
                let (skips, decided) = self.walks.get((a & !WALK) as usize)?;
                for &i in skips {
                    skipped(i as usize);
                }
                *decided
            };
            let i = decided.checked_sub(1)? as usize;
            return Some((i, self.rules.get(i)?.action));
        }
        let Some(acc) = scratch.get_mut(..self.words) else {
            // Too little scratch (never with the config's limits): answer the slow way.
            return decide(&self.rules, p, skipped);
        };
        acc.fill(u64::MAX);
        for (slot, sets) in &self.live {
            let at = ids[*slot] as usize * self.words;
            let set = sets.get(at..at + self.words).unwrap_or(&[]);
            let mut any = 0;
            for (a, s) in acc.iter_mut().zip(set) {
                *a &= s;
                any |= *a;
            }
            // No term left: the remaining slots cannot bring one back.
            if any == 0 && self.fallback.is_empty() {
                return None;
            }
        }
        self.walk(acc, p, skipped)
    }

    /// The decision on the packet's matching terms `acc`: the first match decides, unless it
    /// is a skip, which resumes the search at the next phase; rules left to the evaluator are
    /// evaluated in their place.
    fn walk(
        &self,
        acc: &[u64],
        p: &Fields<'_>,
        mut skipped: impl FnMut(usize),
    ) -> Option<(usize, Action)> {
        let mut from = 0;
        loop {
            let compiled = self.first_term_at(acc, from);
            // A fallback rule ahead of the compiled winner still decides first.
            let fb = self
                .fallback
                .iter()
                .skip_while(|&&i| i < from)
                .take_while(|&&i| compiled.is_none_or(|c| i < c))
                .find(|&&i| eval(&self.rules[i].expr, p))
                .copied();
            let i = fb.or(compiled)?;
            let action = self.rules[i].action;
            if action != Action::Skip {
                return Some((i, action));
            }
            skipped(i);
            from = self.phase_end[i];
        }
    }

    /// The rule of the lowest set term bit that belongs to rule `from` or a later one.
    fn first_term_at(&self, acc: &[u64], from: usize) -> Option<usize> {
        let k = *self.first_term.get(from)?;
        let (w0, b0) = (k / 64, k % 64);
        acc.iter()
            .enumerate()
            .skip(w0)
            .map(|(i, w)| (i, if i == w0 { w & (u64::MAX << b0) } else { *w }))
            .find(|(_, w)| *w != 0)
            .map(|(i, w)| self.term_rule[i * 64 + w.trailing_zeros() as usize] as usize)
    }

    /// Scratch words `classify` needs.
    pub fn words(&self) -> usize {
        self.words
    }
    /// Rules left to the evaluator.
    pub fn fallback_rules(&self) -> &[usize] {
        &self.fallback
    }
    /// Bytes of the cross-product tables, precomputed answers and the bitsets ANDed per
    /// packet (not counting the fields' own interval tables).
    pub fn table_bytes(&self) -> usize {
        self.table_bytes
    }
    /// Cross-product steps, and slots whose bitsets are ANDed per packet (0 when a final
    /// class's answer is precomputed; one per field when the budget allowed no table).
    pub fn shape(&self) -> (usize, usize) {
        (self.cross.len(), self.live.len())
    }
    /// True when a packet's answer can differ between its two crossings (in from one tunnel,
    /// out to another) because some rule tests `anygate.tunnel` or `anygate.direction`. When
    /// false, the same packet gets the same answer both times.
    pub fn per_crossing(&self) -> bool {
        self.per_crossing
    }
}

#[cfg(test)]
mod tests {
    use super::super::eval::{decide, first_match};
    use super::super::parser::{parse, Lists};
    use super::*;
    use proptest::prelude::*;

    fn rule(e: &str) -> Rule {
        Rule::new(
            parse(e, &Lists::new()).unwrap_or_else(|x| panic!("{e}: {x}")),
            Action::Block,
        )
    }

    /// Crowded buckets (many interval starts under one index entry) take the binary search;
    /// sparse ones the short scan. Both must find every value's interval, at the edges too.
    #[test]
    fn crowded_and_sparse_buckets() {
        let mut rules: Vec<Rule> = (0..40)
            .map(|i| rule(&format!("tcp.dstport eq {}", 1000 + 2 * i)))
            .collect();
        rules.push(rule("tcp.dstport in {40000..40010 65535}"));
        rules.push(rule(
            "ip.dst in {10.0.0.0/30 10.0.0.8/29 10.0.1.0/24 255.255.255.255}",
        ));
        let c = Classifier::new(&rules);
        let mut scratch = vec![0; c.words()];
        let ports = (990..1090).chain([0, 39999, 40000, 40010, 40011, 65534, 65535]);
        let addrs = [
            0,
            0x0a00_0000,
            0x0a00_0003,
            0x0a00_0004,
            0x0a00_0008,
            0x0a00_0010,
            0x0a00_0100,
            0xffff_fffe,
            u32::MAX,
        ];
        for port in ports {
            for &dst in &addrs {
                let p = Fields {
                    dst,
                    proto: 6,
                    tcp: Some((1, port, 0)),
                    ..Default::default()
                };
                assert_eq!(
                    c.classify(&p, &mut scratch),
                    first_match(&rules, &p),
                    "port {port}, dst {dst:#x}"
                );
            }
        }
    }

    /// Rule texts built from pieces of the language, so that nesting, negation, sets and
    /// absent fields all occur.
    fn arb_expr() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            (0u16..6).prop_map(|p| format!("tcp.dstport eq {}", p * 100)),
            (0u16..6).prop_map(|p| format!("udp.srcport ne {}", p * 100)),
            (0u16..600, 0u16..600).prop_map(|(a, b)| format!(
                "tcp.srcport in {{{}..{} 7}}",
                a.min(b),
                a.max(b)
            )),
            (0u8..4).prop_map(|o| format!("ip.src in {{10.{o}.0.0/16 192.0.2.{o}}}")),
            (0u8..255).prop_map(|t| format!("ip.ttl lt {t}")),
            Just("tcp".to_string()),
            Just("udp".to_string()),
            Just("icmp".to_string()),
            Just("tcp.flags.syn".to_string()),
            (0u8..5).prop_map(|t| format!("icmp.type ge {t}")),
            Just("ip.proto in {\"tcp\" \"gre\"}".to_string()),
            Just("anygate.tunnel eq \"acme\"".to_string()),
            Just("anygate.direction ne \"egress\"".to_string()),
            // 2^6 terms: left to the evaluator, in its place among compiled rules.
            (0u16..3).prop_map(|p| (0..6)
                .map(|i| format!(
                    "(tcp.dstport eq {} or udp.srcport lt {})",
                    p * 100 + i,
                    i * 100
                ))
                .collect::<Vec<_>>()
                .join(" and ")),
        ];
        leaf.prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} and {b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} xor {b})")),
                inner.prop_map(|a| format!("not {a}")),
            ]
        })
    }

    fn arb_packet() -> impl Strategy<Value = Fields<'static>> {
        (
            0u8..3,
            0u8..4,
            0u16..700,
            0u16..700,
            0u8..255,
            0u8..8,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(kind, o, a, b, ttl, t, acme, egress)| {
                let mut f = Fields {
                    src: u32::from_be_bytes([if o < 2 { 10 } else { 192 }, o, 0, t]),
                    dst: 1,
                    proto: [6, 17, 1][kind as usize],
                    len: 60,
                    hdr_len: 20,
                    ttl,
                    tunnel: if acme { Some("acme") } else { Some("beta") },
                    direction: Some(if egress { "egress" } else { "ingress" }),
                    ..Default::default()
                };
                match kind {
                    0 => f.tcp = Some((a, b, t)),
                    1 => f.udp = Some((a, b)),
                    _ => f.icmp = Some((t, 0)),
                }
                f
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        /// The compiled classifier and the rule-by-rule evaluator agree on the verdict and on
        /// the deciding rule, for random rule lists and packets.
        #[test]
        fn agrees_with_the_evaluator(exprs in proptest::collection::vec(arb_expr(), 1..12),
                                     disabled in proptest::collection::vec(any::<bool>(), 12),
                                     packets in proptest::collection::vec(arb_packet(), 24)) {
            let rules: Vec<Rule> = exprs.iter().enumerate().map(|(i, e)| {
                let mut r = rule(e);
                r.enabled = !disabled[i] || i == 0;
                r.action = [Action::Allow, Action::Block, Action::Skip][(i + exprs.len()) % 3];
                // Phases of 1..4 rules, so skips pass over runs of rules.
                r.phase = (i / (1 + exprs.len() % 4)) as u16;
                r
            }).collect();
            // The cross-product tables, and the per-field bitsets they fall back to past
            // their budget.
            let tables = Classifier::new(&rules);
            // Small rule sets always reach one final class.
            prop_assert!(tables.shape().1 <= 1, "{:?}", tables.shape());
            let bitsets = Classifier::with_budget(&rules, 0);
            prop_assert_eq!(bitsets.shape().0, 0);
            for c in [tables, bitsets] {
                let mut scratch = vec![0u64; c.words()];
                for p in &packets {
                    let (mut fast, mut slow) = (Vec::new(), Vec::new());
                    prop_assert_eq!(
                        c.classify_with(p, &mut scratch, |i| fast.push(i)),
                        decide(&rules, p, |i| slow.push(i)),
                        "{:?}", exprs
                    );
                    prop_assert_eq!(fast, slow);
                }
            }
        }
    }

    #[test]
    fn deep_rules_fall_back_but_keep_their_place() {
        // 2^6 = 64 terms: over MAX_TERMS, so it stays with the evaluator.
        let deep = (0..6)
            .map(|i| format!("(tcp.dstport eq {i} or udp.dstport eq {i})"))
            .collect::<Vec<_>>()
            .join(" and ");
        let rules = vec![rule("tcp.dstport eq 9"), rule(&deep), rule("tcp")];
        let c = Classifier::new(&rules);
        assert_eq!(c.fallback_rules(), &[1]);
        let mut s = vec![0; c.words()];
        let p = Fields {
            proto: 6,
            tcp: Some((1, 3, 0)),
            ..Default::default()
        };
        assert_eq!(c.classify(&p, &mut s), Some((2, Action::Block)));
        assert_eq!(c.classify(&p, &mut s), first_match(&rules, &p));
    }

    /// Expressions nested exactly as deep as the parser allows: the evaluator, the compiler
    /// and dropping the AST all recurse once per level, within a 256 KiB stack, and the
    /// classifier agrees with the evaluator.
    #[test]
    fn nesting_at_the_limit_compiles_and_agrees() {
        use super::super::parser::MAX_DEPTH;
        let n = MAX_DEPTH;
        let exprs = [
            format!("{}tcp.dstport eq 80{}", "(".repeat(n), ")".repeat(n)),
            format!("{}tcp", "not ".repeat(n)),
            format!("{}udp", "not ".repeat(n - 1)),
            format!("{}tcp{}", "not (".repeat(n / 2), ")".repeat(n / 2)),
            format!("{}tcp or icmp{}", "(".repeat(n - 1), ")".repeat(n - 1)),
            format!("{}tcp xor udp", "!".repeat(n - 1)),
            // Each level a parenthesis and an `and`: the compiler's deepest recursion.
            format!("{}tcp{}", "tcp and (".repeat(n / 2), ")".repeat(n / 2)),
        ];
        let packets = [
            Fields {
                proto: 6,
                tcp: Some((1, 80, 0)),
                ..Default::default()
            },
            Fields {
                proto: 17,
                udp: Some((1, 80)),
                ..Default::default()
            },
            Fields {
                proto: 1,
                icmp: Some((8, 0)),
                ..Default::default()
            },
        ];
        let want = [
            [true, false, false],
            [true, false, false],
            [true, false, true],
            [true, false, false],
            [true, false, true],
            [false, false, true],
            [true, false, false],
        ];
        super::super::parser::tests::on_small_stack(move || {
            for (e, want) in exprs.iter().zip(want) {
                let rules = vec![rule(e)];
                let c = Classifier::new(&rules);
                assert!(c.fallback_rules().is_empty(), "{e}");
                let mut s = vec![0; c.words()];
                for (p, w) in packets.iter().zip(want) {
                    assert_eq!(eval(&rules[0].expr, p), w, "{e} on {p:?}");
                    assert_eq!(c.classify(p, &mut s), first_match(&rules, p), "{e}");
                }
            }
        });
    }
}
