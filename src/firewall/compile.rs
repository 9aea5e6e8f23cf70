//! The compiled classifier. Each rule is rewritten into a disjunction of terms (negations
//! pushed down to single-field predicates), each term a conjunction of per-field value sets.
//! For every key some rule tests (`key`), the value space is cut into elementary intervals,
//! and intervals accepted by the same terms share an equivalence class, found by a trie walk
//! (`trie`). Cross-product tables then combine two slots' classes into the class of their
//! intersection (Recursive Flow Classification), and the last table's entries are answers: a
//! packet costs a trie walk per key and a load per step, never one evaluation per rule. Past
//! the table budget the slots left are intersected per packet through their classes' term
//! lists. Rules whose expansion would exceed `MAX_TERMS` terms keep using the reference
//! evaluator, in their place in the order.
use super::eval::{eval, phase_end, Action, Fields, Rule};
use super::key::{Key, Packet, Reader};
use super::parser::{CmpOp, Expr, Value};
use super::scheme::Field;
use super::trie::Trie;

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
    /// A string's id; strings no rule names share the largest (a `Packet` keeps 31 bits of
    /// it: still above every named string's).
    fn lookup(&self, s: &str) -> u32 {
        self.0
            .iter()
            .position(|x| x == s)
            .map_or(u32::MAX, |i| i.min(u32::MAX as usize) as u32)
    }
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
/// the term lists of the slots left, and the final answers); past it the slots left are
/// intersected per packet through their term lists.
pub const TABLE_BUDGET: usize = 64 << 20;

/// Phase 0 for one key: the value's class through a trie (intervals that the same terms
/// accept share a class; the values of packets without the key, below every present one,
/// the absent class).
#[derive(Debug, Clone)]
struct Dim {
    reader: Reader,
    /// `reader` shifted by the trie's root shift: the root's index in one shift and mask.
    root: Reader,
    trie: Trie,
}

impl Dim {
    fn new(reader: Reader, trie: Trie) -> Dim {
        let root = reader.shifted(trie.root_shift());
        Dim {
            trie: trie.masked(root.mask()),
            root,
            reader,
        }
    }

    /// The packet's class for this key.
    #[inline(always)]
    fn class_of(&self, p: &Packet) -> u32 {
        self.trie
            .class_from_root(self.root.word(p) as usize, || self.reader.value(p) as u32)
    }
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

/// Table entries, two bytes each where every value fits (`narrow`), else four (`wide`; then
/// `narrow` is empty). Two vectors, not an enum: where the classifier knows every table is
/// narrow, it reads one without a test of the width per step (callgrind, issue 14).
#[derive(Debug, Clone)]
struct Entries {
    /// Shared with the chain's `Link`s.
    narrow: std::sync::Arc<[u16]>,
    wide: Vec<u32>,
}

impl Entries {
    fn new(v: Vec<u32>) -> Entries {
        match v.iter().all(|x| *x <= u16::MAX as u32) {
            true => Entries {
                narrow: v.into_iter().map(|x| x as u16).collect(),
                wide: Vec::new(),
            },
            false => Entries {
                narrow: Vec::new().into(),
                wide: v,
            },
        }
    }
    #[inline(always)]
    fn get(&self, i: usize) -> u32 {
        match self.wide.is_empty() {
            true => self.narrow(i),
            false => self.wide.get(i).copied().unwrap_or(0),
        }
    }
    /// Entry `i` of a narrow table.
    #[inline(always)]
    fn narrow(&self, i: usize) -> u32 {
        // `copied` first: through `map_or` the load also tested the element pointer for null.
        self.narrow.get(i).copied().unwrap_or(0) as u32
    }
    fn is_narrow(&self) -> bool {
        self.wide.is_empty()
    }
    fn bytes(&self) -> usize {
        self.narrow.len() * 2 + self.wide.len() * 4
    }
}

/// One cross-product step (Recursive Flow Classification, Gupta & McKeown): the classes of
/// slots `a` and `b` (a key's, or an earlier step's) combine to this step's class, one load
/// from `table[class_a * sa + class_b * sb]`: `sb` is 1 as `tables` builds a step, a chain's
/// step may be stored the other way round (`make_chain`). The final step's entries are
/// answers.
#[derive(Debug, Clone)]
struct Cross {
    a: usize,
    b: usize,
    sa: usize,
    sb: usize,
    table: Entries,
}

/// A step of a chain (`make_chain`): the key whose class crosses the classes so far, and
/// the step's table (narrow). One list, not the keys and the steps zipped: per key, one
/// pointer to step and no second length (callgrind, issue 14).
#[derive(Debug, Clone)]
struct Link {
    dim: Dim,
    /// Strides of the classes so far and of the key's class (`Cross::sa`, `Cross::sb`).
    sa: usize,
    sb: usize,
    table: std::sync::Arc<[u16]>,
}

/// A slot left when the budget ran out: its classes' term bitsets (`words` each) and term
/// lists (`list[at[c]..at[c + 1]]`, in rule order).
#[derive(Debug, Clone)]
struct Live {
    slot: usize,
    sets: Vec<u64>,
    list: Vec<u32>,
    at: Vec<u32>,
}

/// An answer: 0 (no rule matches), the deciding rule + 1, or `WALK | i` (skip rules match
/// first: `walks[i]`). Two bytes, so final tables are narrow.
const WALK: u32 = 1 << 15;
/// Slots a packet's classes take: one per key (at most 24 kinds, counting each TCP flag); a
/// cross-product step writes its classes over its first slot's. The last one is never
/// written: a final step over one slot reads it as its (always 0) second class. Small, as
/// each packet (each burst, in `classify_burst`) zeroes them.
const MAX_SLOTS: usize = 32;
const ZERO_SLOT: usize = MAX_SLOTS - 1;
/// Class pairs times words a candidate step may cost to have its classes counted before the
/// greedy order picks it (larger candidates count as many classes as pairs). A step uncounted
/// is a step misjudged: at 2000 rules, 2^22 left the (destination x port) step uncounted and
/// the order took steps whose final table was 24 MiB.
const TRIAL_WORK: usize = 1 << 27;

#[derive(Debug, Clone)]
pub struct Classifier {
    rules: Vec<Rule>,
    /// The rules' actions apart: an answer reads one byte, not a line of its `Rule`.
    actions: Vec<Action>,
    strings: Strings,
    dims: Vec<Dim>,
    /// Cross-product steps, in order; each writes its slot `a`.
    cross: Vec<Cross>,
    /// The step whose entries are answers, when the steps reach one slot and no rule is left
    /// to the evaluator.
    last: Option<Cross>,
    /// The slots left after the steps otherwise.
    live: Vec<Live>,
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
    /// Some key reads the IP header's protocol, lengths or TTL (`Packet::set_ip`).
    reads_ip: bool,
    /// Every cross-product table's entries are narrow (`Cross::narrow`).
    narrow: bool,
    /// The steps are a chain (`make_chain`): step `k` crosses slot 0 with key `k + 1`.
    chain: bool,
    /// The chain's steps after key 0, each with its key (copies sharing the tries and
    /// tables), when `chain`.
    links: Vec<Link>,
    /// Bytes of the cross-product tables, the live slots' sets and lists and the answers.
    table_bytes: usize,
    /// Bytes of the keys' tries.
    trie_bytes: usize,
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

/// The terms of a bitset, in order.
fn members(set: &[u64]) -> impl Iterator<Item = u32> + '_ {
    set.iter().enumerate().flat_map(|(i, &w)| {
        let mut w = w;
        std::iter::from_fn(move || {
            (w != 0).then(|| {
                let b = w.trailing_zeros();
                w &= w - 1;
                i as u32 * 64 + b
            })
        })
    })
}

/// A narrow table of `nb` columns, rows and columns swapped: `t[a * nb + b]` at `b * na + a`.
fn transposed(t: &Entries, nb: usize) -> Entries {
    let na = t.narrow.len() / nb.max(1);
    let v = (0..nb)
        .flat_map(|b| (0..na).map(move |a| a * nb + b))
        .map(|i| t.narrow(i))
        .collect();
    Entries::new(v)
}

/// Stores each chain step (classes so far first, `sb` 1) with the key's classes first where
/// the key has at most half as many classes as the classes so far. A key of few classes
/// against many has broad classes (the values no rule names, the wildcards of the rules
/// that do not test it) that many packets share: those packets then read one row of the
/// classes so far, a few lines, instead of one line per class so far. At 2000 rules of
/// `perf/acl-rules.py` (one step of 1696 x 1619 classes, then the source port's 4 and the
/// source address's 488 classes against ~2000), a cache model of the bench's traffic over
/// the tables alone gave 1.09 -> 0.73 misses a packet; the first step turned would give 1.46.
fn orient(steps: &mut [Cross]) {
    for c in steps {
        let nb = c.sa.max(1);
        let na = c.table.narrow.len() / nb;
        if nb * 2 <= na {
            c.table = transposed(&c.table, nb);
            (c.sa, c.sb) = (1, na);
        }
    }
}

impl Classifier {
    pub fn new(rules: &[Rule]) -> Classifier {
        Classifier::with_budget(rules, TABLE_BUDGET)
    }

    /// `new` with another byte budget for the cross-product tables (0: none, the keys'
    /// classes are intersected per packet).
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
        let (dims, classes) = match Classifier::dims(&terms) {
            Some(d) => d,
            None => {
                // A key with more boundaries than a trie can hold: every rule is evaluated.
                terms.clear();
                fallback = (0..rules.len()).filter(|i| rules[*i].enabled).collect();
                (Vec::new(), Vec::new())
            }
        };
        let words = terms.len().div_ceil(64).max(1);
        let term_rule: Vec<u16> = terms.iter().map(|(r, _)| *r).collect();
        let first_term: Vec<usize> = (0..=rules.len())
            .map(|r| terms.partition_point(|(t, _)| (*t as usize) < r))
            .collect();
        let mut c = Classifier {
            reads_ip: dims.iter().any(|d| d.reader.reads_ip()),
            narrow: false,
            chain: false,
            links: Vec::new(),
            actions: rules.iter().map(|r| r.action).collect(),
            rules: rules.to_vec(),
            strings,
            trie_bytes: dims.iter().map(|d| d.trie.bytes()).sum(),
            dims,
            cross: Vec::new(),
            last: None,
            live: Vec::new(),
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
        let classes = match classes.is_empty() {
            // No compiled term: one class (slot 0, always class 0) matching nothing.
            true => vec![vec![0; words]],
            false => classes,
        };
        c.tables(classes, budget);
        c.narrow = c.cross.iter().chain(&c.last).all(|x| x.table.is_narrow());
        c.chain = c.make_chain();
        c
    }

    /// Where each step after the first crosses the previous step's classes with one key's
    /// (always so for up to three keys), renames the slots so that the classes run through
    /// slot 0 and step `k` takes key `k + 1` (the keys reordered to match, a table transposed
    /// where its key is its first side): then `chained` runs the steps with the classes in a
    /// register, no slot array to clear, store and index. False, and nothing changed, where
    /// the steps are not such a chain (or some table is wide, or slots are left).
    fn make_chain(&mut self) -> bool {
        let n = self.dims.len();
        let steps: Vec<&Cross> = self.cross.iter().chain(&self.last).collect();
        if !self.narrow
            || !self.live.is_empty()
            || self.last.is_none()
            || n < 2
            || steps.len() + 1 != n
        {
            return false;
        }
        // The keys in chain order, and whether each step's key is its first side.
        let (first, mut res) = (steps[0], steps[0].a);
        let mut order = vec![first.a, first.b];
        let mut flip = vec![false];
        for s in &steps[1..] {
            let (key, flipped) = match (s.a == res, s.b == res) {
                (true, false) => (s.b, false),
                (false, true) => (s.a, true),
                _ => return false,
            };
            order.push(key);
            flip.push(flipped);
            // A step writes its slot `a`: where that is the key's, later steps read it there.
            res = s.a;
        }
        let mut seen = vec![false; n];
        for &k in &order {
            match seen.get_mut(k) {
                Some(x) if !*x => *x = true,
                _ => return false,
            }
        }
        let mut chained: Vec<Cross> = steps
            .iter()
            .zip(&flip)
            .enumerate()
            .map(|(k, (s, &flipped))| {
                // `tables` builds steps with `sb` 1 and `sa` the second side's classes.
                let (nb, table) = match flipped {
                    false => (s.sa, s.table.clone()),
                    true => {
                        let na = s.table.narrow.len() / s.sa.max(1);
                        (na, transposed(&s.table, s.sa))
                    }
                };
                Cross {
                    a: 0,
                    b: k + 1,
                    sa: nb,
                    sb: 1,
                    table,
                }
            })
            .collect();
        orient(&mut chained);
        let mut dims: Vec<Option<Dim>> = std::mem::take(&mut self.dims)
            .into_iter()
            .map(Some)
            .collect();
        self.dims = order.iter().filter_map(|&k| dims[k].take()).collect();
        self.last = chained.pop();
        self.cross = chained;
        self.links = self.dims[1..]
            .iter()
            .zip(self.cross.iter().chain(&self.last))
            .map(|(d, c)| Link {
                dim: d.clone(),
                sa: c.sa,
                sb: c.sb,
                table: c.table.narrow.clone(),
            })
            .collect();
        true
    }

    /// Each key's trie and its classes' term bitsets; None when a trie cannot be built.
    #[allow(clippy::type_complexity)]
    fn dims(terms: &[(u16, Vec<Atom>)]) -> Option<(Vec<Dim>, Vec<Vec<u64>>)> {
        let words = terms.len().div_ceil(64).max(1);
        let mut keys: Vec<Key> = terms
            .iter()
            .flat_map(|(_, t)| t.iter().map(|a| Key::of(a.field)))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut classes: Vec<Vec<u64>> = Vec::new();
        let mut dims = Vec::new();
        for key in keys {
            let reader = Reader::of(key);
            // Each term's condition on this key (all values when it has none), in the
            // reader's values.
            let conds: Vec<(Ranges, bool)> = terms
                .iter()
                .map(|(_, t)| {
                    let (r, absent) = key.cond(|field| {
                        let (r, abs) = t
                            .iter()
                            .filter(|a| a.field == field)
                            .fold((Ranges::all(), true), |(r, abs), a| {
                                (r.intersect(&a.accept), abs && a.absent)
                            });
                        (r.0, abs)
                    });
                    (Ranges(reader.map(r)), absent)
                })
                .collect();
            // Values below `present` are packets' without the key: one interval, the
            // absent class.
            let present = reader.present();
            let mut starts: Vec<u64> = vec![0, present];
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
                .map(|&s| match s < present {
                    true => ids.id(&bits(&|c: &(Ranges, bool)| c.1)),
                    false => ids.id(&bits(&|c: &(Ranges, bool)| c.0.contains(s))),
                })
                .collect();
            classes.push(ids.sets);
            let trie = Trie::new(&starts, &class, reader.width())?;
            dims.push(Dim::new(reader, trie));
        }
        Some((dims, classes))
    }

    /// The answer for a final class's term bitset: the first match decides, skip rules pass
    /// over the rest of their phase. None when the answer does not fit two bytes.
    fn answer(&mut self, set: &[u64]) -> Option<u32> {
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
            return (decided < WALK).then_some(decided);
        }
        let w = (skips, decided);
        let i = match self.walks.iter().position(|x| *x == w) {
            Some(i) => i,
            None => {
                self.walks.push(w);
                self.walks.len() - 1
            }
        };
        (i < WALK as usize && decided < WALK).then_some(WALK | i as u32)
    }

    /// Combines the keys' classes through cross-product tables, within `budget` bytes:
    /// greedily, the step of least cost (its table plus its result crossed with the others)
    /// first, down to one step whose entries are the answers. A budget that runs out first leaves several slots, whose
    /// classes' term lists are intersected per packet (budget 0: one per key).
    fn tables(&mut self, fields: Vec<Vec<u64>>, budget: usize) {
        let words = self.words;
        let n = fields.len();
        let mut live: Vec<(usize, Vec<u64>)> = fields.into_iter().enumerate().collect();
        let mut table_bytes = 0usize;
        let len = |s: &Vec<u64>| s.len() / words;
        let lasting = self.fallback.is_empty();
        while n < MAX_SLOTS / 2 && live.len() > 1 {
            let held: usize = live.iter().map(|(_, s)| s.len() * 8).sum();
            let room = budget.saturating_sub(table_bytes + held);
            // Each candidate's cost: its table, plus its classes times the other slots'
            // (the table crossing its result with all of them): a step that merges many
            // pairs into few classes goes first, and no step leaves a huge one for last.
            let mut best: Option<(f64, usize, usize, usize)> = None;
            for x in 0..live.len() {
                for y in x + 1..live.len() {
                    let pairs = len(&live[x].1) * len(&live[y].1);
                    if pairs * 2 > room {
                        continue;
                    }
                    let classes = if live.len() == 2 && lasting {
                        0
                    } else if pairs * words <= TRIAL_WORK {
                        count_pairs(&live[x].1, &live[y].1, words)
                    } else {
                        pairs
                    };
                    let rest: f64 = (0..live.len())
                        .filter(|&z| z != x && z != y)
                        .map(|z| len(&live[z].1) as f64)
                        .product();
                    let cost = pairs as f64 + classes as f64 * rest;
                    if best.is_none_or(|b| (cost, pairs) < (b.0, b.1)) {
                        best = Some((cost, pairs, x, y));
                    }
                }
            }
            let Some((_, pairs, x, y)) = best else { break };
            let (a, b) = (&live[x].1, &live[y].1);
            let final_step = live.len() == 2 && lasting;
            let mut out = Interner::new(words);
            let mut table = Vec::with_capacity(pairs);
            let mut and = vec![0u64; words];
            let mut over = false;
            for sa in a.chunks_exact(words) {
                for sb in b.chunks_exact(words) {
                    for ((o, x), y) in and.iter_mut().zip(sa).zip(sb) {
                        *o = x & y;
                    }
                    // The final step's entries are answers: its classes are not kept.
                    let entry = match final_step {
                        true => self.answer(&and),
                        false => Some(out.id(&and)),
                    };
                    let Some(entry) = entry else {
                        over = true;
                        break;
                    };
                    table.push(entry);
                }
                let entry = if out.sets.len() / words > u16::MAX as usize {
                    4
                } else {
                    2
                };
                if over || out.bytes() + pairs * entry > room {
                    over = true;
                    break;
                }
            }
            if over {
                break;
            }
            let table = Entries::new(table);
            table_bytes += table.bytes();
            let nb = len(b);
            let (sb, _) = live.swap_remove(y);
            let (sa, _) = live.swap_remove(x);
            let step = Cross {
                a: sa,
                b: sb,
                sa: nb,
                sb: 1,
                table,
            };
            if final_step {
                self.last = Some(step);
                live.clear();
            } else {
                self.cross.push(step);
                // The step's classes take its first slot's place (never read again).
                live.push((sa, out.sets));
            }
        }
        if let ([(slot, sets)], true) = (&live[..], lasting) {
            // One slot from the start: its classes' answers are the final table.
            let answers: Option<Vec<u32>> = sets
                .clone()
                .chunks_exact(words)
                .map(|s| self.answer(s))
                .collect();
            if let Some(answers) = answers.filter(|a| a.len() * 2 <= budget) {
                let table = Entries::new(answers);
                table_bytes += table.bytes();
                self.last = Some(Cross {
                    a: *slot,
                    b: ZERO_SLOT,
                    sa: 1,
                    sb: 1,
                    table,
                });
                live.clear();
            }
        }
        if self.last.is_none() {
            self.walks.clear();
        }
        self.live = live
            .into_iter()
            .map(|(slot, sets)| {
                let mut list = Vec::new();
                let mut at = vec![0];
                for s in sets.chunks_exact(words) {
                    list.extend(members(s));
                    at.push(list.len() as u32);
                }
                Live {
                    slot,
                    sets,
                    list,
                    at,
                }
            })
            .collect();
        self.table_bytes = table_bytes
            + self.walks.iter().map(|w| w.0.len() * 4 + 32).sum::<usize>()
            + self
                .live
                .iter()
                .map(|l| l.sets.len() * 8 + (l.list.len() + l.at.len()) * 4)
                .sum::<usize>();
    }

    /// The first matching rule, as `first_match` would say. Classifying allocates nothing.
    pub fn classify(&self, p: &Fields<'_>) -> Option<(usize, Action)> {
        self.classify_with(p, |_| {})
    }

    /// `classify`, telling `skipped` each skip rule that matched on the way (for counters).
    pub fn classify_with(
        &self,
        p: &Fields<'_>,
        skipped: impl FnMut(usize),
    ) -> Option<(usize, Action)> {
        self.classify_packet(&self.packet(p), || p.clone(), skipped)
    }

    /// The packet `p` as `classify_packet` takes it (inline: as a call, its 64 bytes were
    /// copied out to the caller).
    #[inline(always)]
    pub fn packet(&self, p: &Fields<'_>) -> Packet {
        Packet::of(p, |s| self.string_id(s))
    }

    /// The id a tunnel name or direction has in a `Packet` for this classifier.
    pub fn string_id(&self, s: &str) -> u32 {
        self.strings.lookup(s)
    }

    /// Whether `classify_packet` may call its `fields` (some rule is left to the evaluator).
    pub fn evaluates(&self) -> bool {
        !self.fallback.is_empty()
    }

    /// `classify_with` for a packet as its keys: `fields` gives the same packet as `Fields`,
    /// called only when a rule left to the evaluator must be tried (`evaluates`).
    #[inline(always)]
    pub fn classify_packet<'a>(
        &self,
        p: &Packet,
        fields: impl Fn() -> Fields<'a>,
        skipped: impl FnMut(usize),
    ) -> Option<(usize, Action)> {
        if self.chain {
            return self.answered(self.chained(p), skipped);
        }
        let mut ids = [0u32; MAX_SLOTS];
        for (id, d) in ids.iter_mut().zip(&self.dims) {
            *id = d.class_of(p);
        }
        let code = match self.narrow {
            true => self.steps(&mut ids, Entries::narrow),
            false => self.steps(&mut ids, Entries::get),
        };
        match code {
            Some(code) => self.answered(code, skipped),
            None => self.walk(&ids, fields, skipped),
        }
    }

    /// The cross-product steps over the keys' classes in `ids`, entries read by `get`: the
    /// final step's answer, if there is one.
    #[inline(always)]
    fn steps(
        &self,
        ids: &mut [u32; MAX_SLOTS],
        get: impl Fn(&Entries, usize) -> u32,
    ) -> Option<u32> {
        for c in &self.cross {
            // Slots are below MAX_SLOTS by construction; the masks spare the bounds checks.
            let at = ids[c.a % MAX_SLOTS] as usize * c.sa + ids[c.b % MAX_SLOTS] as usize * c.sb;
            ids[c.a % MAX_SLOTS] = get(&c.table, at);
        }
        let c = self.last.as_ref()?;
        let at = ids[c.a % MAX_SLOTS] as usize * c.sa + ids[c.b % MAX_SLOTS] as usize * c.sb;
        Some(get(&c.table, at))
    }

    /// The final step's answer for a chain (`make_chain`): key 0's class crossed with each
    /// next key's, step by step.
    #[inline(always)]
    fn chained(&self, p: &Packet) -> u32 {
        let Some(first) = self.dims.first() else {
            return 0;
        };
        let mut class = first.class_of(p);
        for l in &self.links {
            let at = class as usize * l.sa + l.dim.class_of(p) as usize * l.sb;
            class = l.table.get(at).copied().unwrap_or(0) as u32;
        }
        class
    }

    /// `classify_packet` where the steps are a chain (`make_chain`, the usual shape), None
    /// otherwise: the caller builds no `fields` for the evaluator, as no rule is left to it
    /// (its captures were stored per packet for nothing: callgrind, issue 14).
    #[inline(always)]
    pub fn classify_chained(
        &self,
        p: &Packet,
        skipped: impl FnMut(usize),
    ) -> Option<Option<(usize, Action)>> {
        match self.chain {
            true => Some(self.answered(self.chained(p), skipped)),
            false => None,
        }
    }

    /// Whether some key reads the IP header's protocol, lengths or TTL: when none does, a
    /// `Packet` for `classify_packet` may go without them (`Packet::addrs`).
    pub fn reads_ip(&self) -> bool {
        self.reads_ip
    }

    /// `classify_with` for each packet of `ps` (answers into `out`, which is at least as
    /// long), eight at a time, each step over all eight: the table loads of different
    /// packets do not depend on each other, so they overlap, as rte_acl walks several flows
    /// per call. (A chain's 32 a step, without the slot array, ran 3–5% slower at 10 and 200
    /// rules: issue 14, acl12.) `skipped(packet, rule)` as in `classify_with`, packet by packet in order.
    pub fn classify_burst(
        &self,
        ps: &[Fields<'_>],
        out: &mut [Option<(usize, Action)>],
        mut skipped: impl FnMut(usize, usize),
    ) {
        const LANES: usize = 8;
        let Some(last) = &self.last else {
            for (j, (p, o)) in ps.iter().zip(out.iter_mut()).enumerate() {
                *o = self.classify_with(p, |r| skipped(j, r));
            }
            return;
        };
        let mut keys = [Packet::ip(0, 0, 0, 0, 0, 0); LANES];
        // Zeroed once a burst, not once a chunk (1 KiB, a memset call: callgrind, issue 14).
        // A short last chunk's spare lanes keep an earlier chunk's classes, which index the
        // tables as well as zeros do, and their answers are never read.
        let mut ids = [[0u32; LANES]; MAX_SLOTS];
        for (c, (ps, out)) in ps.chunks(LANES).zip(out.chunks_mut(LANES)).enumerate() {
            for (k, p) in keys.iter_mut().zip(ps) {
                *k = self.packet(p);
            }
            for (k, d) in self.dims.iter().enumerate() {
                for (id, p) in ids[k % MAX_SLOTS].iter_mut().zip(&keys[..ps.len()]) {
                    *id = d.class_of(p);
                }
            }
            for x in &self.cross {
                let (a, b) = (ids[x.a % MAX_SLOTS], ids[x.b % MAX_SLOTS]);
                let to = &mut ids[x.a % MAX_SLOTS];
                for j in 0..LANES {
                    to[j] = x.table.get(a[j] as usize * x.sa + b[j] as usize * x.sb);
                }
            }
            let (a, b) = (ids[last.a % MAX_SLOTS], ids[last.b % MAX_SLOTS]);
            for (j, o) in out.iter_mut().enumerate().take(ps.len()) {
                let code = last
                    .table
                    .get(a[j] as usize * last.sa + b[j] as usize * last.sb);
                *o = self.answered(code, |r| skipped(c * LANES + j, r));
            }
        }
    }

    /// The decision an answer code stands for, telling `skipped` the skip rules it passes.
    #[inline(always)]
    fn answered(&self, code: u32, mut skipped: impl FnMut(usize)) -> Option<(usize, Action)> {
        let decided = if code & WALK == 0 {
            code
        } else {
            let (skips, decided) = self.walks.get((code & !WALK) as usize)?;
            for &i in skips {
                skipped(i as usize);
            }
            *decided
        };
        let i = decided.checked_sub(1)? as usize;
        Some((i, *self.actions.get(i)?))
    }

    /// The first term at or after term `k` that every live slot's class holds: the terms of
    /// the class with the shortest list, each tested in the other classes' bitsets.
    fn first_term_from(&self, ids: &[u32; MAX_SLOTS], k: usize) -> Option<usize> {
        let class = |l: &Live| ids[l.slot % MAX_SLOTS] as usize;
        let range = |l: &Live| {
            let c = class(l);
            let (s, e) = (l.at.get(c).copied(), l.at.get(c + 1).copied());
            s.zip(e).map_or(0..0, |(s, e)| s as usize..e as usize)
        };
        let shortest = self.live.iter().min_by_key(|l| range(l).len())?;
        let list = self.live_list(shortest, range(shortest));
        let from = list.partition_point(|t| (*t as usize) < k);
        list.get(from..)?.iter().map(|t| *t as usize).find(|&t| {
            self.live.iter().all(|l| {
                let at = class(l) * self.words + t / 64;
                l.sets.get(at).is_some_and(|w| w >> (t % 64) & 1 != 0)
            })
        })
    }

    fn live_list<'a>(&self, l: &'a Live, r: std::ops::Range<usize>) -> &'a [u32] {
        l.list.get(r).unwrap_or(&[])
    }

    /// The decision on the packet's classes `ids` in the live slots: the first match
    /// decides, unless it is a skip, which resumes the search at the next phase; rules left
    /// to the evaluator are evaluated in their place.
    fn walk<'a>(
        &self,
        ids: &[u32; MAX_SLOTS],
        fields: impl Fn() -> Fields<'a>,
        mut skipped: impl FnMut(usize),
    ) -> Option<(usize, Action)> {
        // The packet's `Fields`, made at its first evaluation.
        let mut p: Option<Fields<'a>> = None;
        let mut from = 0;
        loop {
            let compiled = self
                .first_term
                .get(from)
                .and_then(|&k| self.first_term_from(ids, k))
                .and_then(|t| self.term_rule.get(t))
                .map(|r| *r as usize);
            // A fallback rule ahead of the compiled winner still decides first.
            let fb = self
                .fallback
                .iter()
                .skip_while(|&&i| i < from)
                .take_while(|&&i| compiled.is_none_or(|c| i < c))
                .find(|&&i| eval(&self.rules[i].expr, p.get_or_insert_with(&fields)))
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

    /// Rules left to the evaluator.
    pub fn fallback_rules(&self) -> &[usize] {
        &self.fallback
    }
    /// Bytes of the cross-product tables, precomputed answers and the live slots' bitsets
    /// and term lists (not counting the keys' tries: `trie_bytes`).
    pub fn table_bytes(&self) -> usize {
        self.table_bytes
    }
    /// Bytes of the keys' tries (phase 0).
    pub fn trie_bytes(&self) -> usize {
        self.trie_bytes
    }
    /// Cross-product steps (the final one included), and slots whose classes are
    /// intersected per packet (0 when the final step's answers are precomputed; one per key
    /// when the budget allowed no table).
    pub fn shape(&self) -> (usize, usize) {
        (
            self.cross.len() + self.last.is_some() as usize,
            self.live.len(),
        )
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
                    c.classify(&p),
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
            // Every optional field's values next to its absence (the readers' presence bits);
            // 15 kinds of key in all, so that the tables reach one final class.
            (0u8..3).prop_map(|c| format!("icmp.code le {c}")),
            (0u8..40).prop_map(|f| format!("tcp.flags gt {f}")),
            Just("tcp.flags.ack".to_string()),
            Just("not tcp.flags.syn".to_string()),
            Just("anygate.tunnel in {\"acme\" \"beta\"}".to_string()),
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
            0u8..4,
            0u8..4,
            0u16..700,
            0u16..700,
            0u8..255,
            0u8..64,
            0u8..3,
            0u8..3,
        )
            .prop_map(|(kind, o, a, b, ttl, t, tunnel, dir)| {
                let mut f = Fields {
                    src: u32::from_be_bytes([if o < 2 { 10 } else { 192 }, o, 0, t]),
                    dst: 1,
                    // Protocol 47 has none of the transports.
                    proto: [6, 17, 1, 47][kind as usize],
                    len: 40 + u16::from(t),
                    hdr_len: 20 + 4 * (t % 2),
                    ttl,
                    // Packets without a tunnel or direction too (local ones, in tests).
                    tunnel: [Some("acme"), Some("beta"), None][tunnel as usize],
                    direction: [Some("egress"), Some("ingress"), None][dir as usize],
                    ..Default::default()
                };
                match kind {
                    0 => f.tcp = Some((a, b, t)),
                    1 => f.udp = Some((a, b)),
                    2 => f.icmp = Some((t % 8, t / 16)),
                    _ => {}
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
                                     packets in proptest::collection::vec(arb_packet(), 40)) {
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
            // A budget that runs out part way: some steps, then slots intersected.
            let partial = Classifier::with_budget(&rules, 600);
            for c in [tables, bitsets, partial] {
                let mut all_slow = Vec::new();
                let mut want = Vec::new();
                for (j, p) in packets.iter().enumerate() {
                    let (mut fast, mut slow) = (Vec::new(), Vec::new());
                    want.push(decide(&rules, p, |i| slow.push(i)));
                    prop_assert_eq!(
                        c.classify_with(p, |i| fast.push(i)),
                        want[j],
                        "{:?}", exprs
                    );
                    all_slow.extend(slow.iter().map(|&i| (j, i)));
                    prop_assert_eq!(fast, slow);
                }
                // Bursts (40 packets: five full groups of eight, and short groups after the
                // first 21) say the same, skips included, packet by packet.
                for split in [40, 21] {
                    let (mut got, mut fast) = (vec![None; 40], Vec::new());
                    let (a, b) = packets.split_at(split);
                    let (oa, ob) = got.split_at_mut(split);
                    c.classify_burst(a, oa, |j, i| fast.push((j, i)));
                    c.classify_burst(b, ob, |j, i| fast.push((j + split, i)));
                    prop_assert_eq!(&got, &want);
                    prop_assert_eq!(&fast, &all_slow);
                }
            }
        }
    }

    /// Where the table budget runs out after some steps, the slots left are intersected
    /// through their term lists, and the answers stay the evaluator's.
    #[test]
    fn budget_running_out_part_way_keeps_the_answers() {
        let rules: Vec<Rule> = (0..40u32)
            .map(|i| {
                let mut r = rule(&format!(
                    "ip.src in {{10.{}.0.0/16}} and ip.dst in {{192.0.{}.0/24}} and \
                     tcp.dstport in {{{}..{}}} and tcp.srcport ne {}",
                    i % 7,
                    i % 11,
                    1000 + i * 13,
                    1100 + i * 17,
                    i % 5
                ));
                r.action = [Action::Allow, Action::Block, Action::Skip][i as usize % 3];
                r.phase = (i / 4) as u16;
                r
            })
            .collect();
        let partial = (6..24)
            .map(|b| Classifier::with_budget(&rules, 1 << b))
            .find(|c| c.shape().0 >= 1 && c.shape().1 >= 2)
            .expect("some budget builds a step and leaves several slots");
        for i in 0..4000u32 {
            let p = Fields {
                src: u32::from_be_bytes([10, (i % 9) as u8, 0, 1]),
                dst: u32::from_be_bytes([192, 0, (i % 13) as u8, 7]),
                proto: 6,
                tcp: Some(((i % 6) as u16, 990 + (i * 7 % 1800) as u16, 0)),
                ..Default::default()
            };
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            assert_eq!(
                partial.classify_with(&p, |r| fast.push(r)),
                decide(&rules, &p, |r| slow.push(r)),
                "{p:?}"
            );
            assert_eq!(fast, slow);
        }
    }

    /// Steps that form a chain run through `chained`; with the flag off, the same renamed
    /// steps run through the slot array: both give the evaluator's answers.
    #[test]
    fn chained_steps_agree_with_the_slot_array() {
        let rules: Vec<Rule> = (0..30u32)
            .map(|i| {
                rule(&format!(
                    "ip.src in {{10.{}.0.0/16}} and tcp.dstport in {{{}..{}}} and \
                     ip.dst in {{192.0.{}.0/24}}",
                    i % 5,
                    1000 + i * 13,
                    1100 + i * 17,
                    i % 7
                ))
            })
            .collect();
        let c = Classifier::new(&rules);
        assert!(c.chain, "three keys make a chain");
        let mut slots = c.clone();
        slots.chain = false;
        for i in 0..3000u32 {
            let p = Fields {
                src: u32::from_be_bytes([10, (i % 7) as u8, 0, 1]),
                dst: u32::from_be_bytes([192, 0, (i % 9) as u8, 7]),
                proto: 6,
                tcp: Some((1, 990 + (i * 7 % 1800) as u16, 0)),
                ..Default::default()
            };
            let want = first_match(&rules, &p);
            assert_eq!(c.classify(&p), want, "{p:?}");
            assert_eq!(slots.classify(&p), want, "{p:?}");
        }
    }

    /// Chains over four and five keys, from rule families whose classes differ in number per
    /// key (so that the greedy order varies, and steps take the classes as either side, a
    /// table transposed): chained, through the slot array, in bursts, and by the evaluator,
    /// the same answers and skips.
    #[test]
    fn longer_chains_agree_with_the_evaluator() {
        // Chains, and steps stored with the key's classes first (`orient`).
        let (mut chains, mut turned) = (0, 0);
        for (m, keys) in [(3u32, 4), (5, 4), (7, 5), (11, 5), (2, 5), (13, 4)] {
            let rules: Vec<Rule> = (0..24u32)
                .map(|i| {
                    let mut e = format!(
                        "ip.src in {{10.{}.0.0/16}} and tcp.dstport in {{{}..{}}} and \
                         ip.dst in {{192.0.{}.0/24}} and ip.ttl gt {}",
                        i % m,
                        1000 + i * 13,
                        1100 + i * 17,
                        i % (m + 2),
                        (i * m) % 200
                    );
                    if keys == 5 {
                        e.push_str(&format!(" and tcp.srcport ne {}", i % (m * 2 + 1)));
                    }
                    let mut r = rule(&e);
                    r.action = [Action::Allow, Action::Block, Action::Skip][(i % 3) as usize];
                    r.phase = (i / 4) as u16;
                    r
                })
                .collect();
            let c = Classifier::new(&rules);
            chains += usize::from(c.chain);
            turned += c.links.iter().filter(|l| l.sb != 1).count();
            let mut slots = c.clone();
            slots.chain = false;
            let packets: Vec<Fields> = (0..600u32)
                .map(|i| Fields {
                    src: u32::from_be_bytes([10, (i % (m + 3)) as u8, 0, 1]),
                    dst: u32::from_be_bytes([192, 0, (i % (m + 5)) as u8, 7]),
                    proto: 6,
                    ttl: (i * 37 % 256) as u8,
                    tcp: Some(((i % 29) as u16, 990 + (i * 7 % 1800) as u16, 0)),
                    ..Default::default()
                })
                .collect();
            let mut want = Vec::new();
            let mut all_slow = Vec::new();
            for (j, p) in packets.iter().enumerate() {
                let (mut fast, mut via_slots, mut slow) = (Vec::new(), Vec::new(), Vec::new());
                want.push(decide(&rules, p, |r| slow.push(r)));
                assert_eq!(c.classify_with(p, |r| fast.push(r)), want[j], "{m}: {p:?}");
                assert_eq!(slots.classify_with(p, |r| via_slots.push(r)), want[j]);
                assert_eq!(fast, slow);
                assert_eq!(via_slots, slow);
                all_slow.extend(slow.iter().map(|&r| (j, r)));
            }
            let (mut got, mut fast) = (vec![None; packets.len()], Vec::new());
            c.classify_burst(&packets, &mut got, |j, r| fast.push((j, r)));
            assert_eq!(got, want);
            assert_eq!(fast, all_slow);
        }
        assert!(chains >= 3, "{chains} chains");
        assert!(turned >= 1, "{turned} steps turned");
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
        let p = Fields {
            proto: 6,
            tcp: Some((1, 3, 0)),
            ..Default::default()
        };
        assert_eq!(c.classify(&p), Some((2, Action::Block)));
        assert_eq!(c.classify(&p), first_match(&rules, &p));
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
                for (p, w) in packets.iter().zip(want) {
                    assert_eq!(eval(&rules[0].expr, p), w, "{e} on {p:?}");
                    assert_eq!(c.classify(p), first_match(&rules, p), "{e}");
                }
            }
        });
    }
}
