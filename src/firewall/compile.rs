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

/// One field's table: elementary interval starts, a bitset per interval, and the bitset for
/// packets without the field. `index` narrows the search for a value's interval to the few
/// starts inside its bucket (the value's top bits); it has at most 4096 entries, so the
/// tables of all fields stay in L2 (a 64K-entry index per field did not).
#[derive(Debug, Clone)]
struct Dim {
    field: Field,
    starts: Vec<u64>,
    /// The bitsets of all intervals, one after the other, `words` each: one allocation, so a
    /// lookup is one cache line away rather than behind a pointer.
    sets: Vec<u64>,
    absent: Vec<u64>,
    /// Bucket -> the interval holding the bucket's first value; one extra entry, the last
    /// interval, so `index[b]..=index[b + 1]` brackets every value of bucket `b`.
    index: Vec<u32>,
    /// Value bits below the bucket number.
    shift: u32,
}

impl Dim {
    /// An index over `starts` for values `width` bits wide: about four buckets per start,
    /// 16 to 4096 of them.
    fn index(starts: &[u64], width: u32) -> (Vec<u32>, u32) {
        let bits = (starts.len().next_power_of_two().trailing_zeros() + 2).clamp(4, 12);
        let shift = width - bits.min(width);
        let mut index: Vec<u32> = (0..=1u64 << bits.min(width))
            .map(|b| {
                (starts
                    .partition_point(|s| *s <= b << shift)
                    .saturating_sub(1)) as u32
            })
            .collect();
        if let Some(last) = index.last_mut() {
            *last = (starts.len() - 1) as u32;
        }
        (index, shift)
    }

    /// The elementary interval holding `v`.
    #[inline]
    fn interval(&self, v: u64) -> usize {
        let b = ((v >> self.shift) as usize).min(self.index.len() - 2);
        let (mut lo, hi) = (self.index[b] as usize, self.index[b + 1] as usize);
        if hi - lo > 8 {
            // A crowded bucket (clustered prefixes or ports): binary search.
            return match self.starts.get(lo + 1..=hi) {
                Some(within) => lo + within.partition_point(|s| *s <= v),
                None => lo,
            };
        }
        while lo < hi && self.starts.get(lo + 1).is_some_and(|s| *s <= v) {
            lo += 1;
        }
        lo
    }
}

/// Fields whose values fit in 16 bits.
fn is_narrow(f: Field) -> bool {
    !matches!(f, Field::IpSrc | Field::IpDst)
}

#[derive(Debug, Clone)]
pub struct Classifier {
    rules: Vec<Rule>,
    strings: Strings,
    dims: Vec<Dim>,
    /// Term bit -> rule index, in rule order.
    term_rule: Vec<u16>,
    /// Enabled terms.
    enabled: Vec<u64>,
    /// Enabled rules left to the evaluator, in order.
    fallback: Vec<usize>,
    /// Rule index -> its first term bit (terms of later rules come after); one extra entry.
    first_term: Vec<usize>,
    /// Rule index -> the first rule of the next phase, where a skip resumes.
    phase_end: Vec<usize>,
    words: usize,
    /// Some enabled rule tests the tunnel or the direction.
    per_crossing: bool,
}

impl Classifier {
    pub fn new(rules: &[Rule]) -> Classifier {
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
                let sets: Vec<u64> = starts
                    .iter()
                    .flat_map(|s| bits(&|c: &(Ranges, bool)| c.0.contains(*s)))
                    .collect();
                let absent = bits(&|c: &(Ranges, bool)| c.1);
                let (index, shift) = Dim::index(&starts, if is_narrow(field) { 16 } else { 32 });
                Dim {
                    field,
                    starts,
                    sets,
                    absent,
                    index,
                    shift,
                }
            })
            .collect();
        let mut enabled = vec![0u64; words];
        for k in 0..terms.len() {
            enabled[k / 64] |= 1 << (k % 64);
        }
        let first_term = (0..=rules.len())
            .map(|r| terms.partition_point(|(t, _)| (*t as usize) < r))
            .collect();
        Classifier {
            rules: rules.to_vec(),
            strings,
            dims,
            term_rule: terms.iter().map(|(r, _)| *r).collect(),
            enabled,
            fallback,
            first_term,
            phase_end: (0..rules.len()).map(|i| phase_end(rules, i)).collect(),
            words,
            per_crossing: rules.iter().any(|r| {
                r.enabled
                    && r.expr
                        .mentions(&|f| matches!(f, Field::Tunnel | Field::Direction))
            }),
        }
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
        let Some(acc) = scratch.get_mut(..self.words) else {
            // Too little scratch (never with the config's limits): answer the slow way.
            return decide(&self.rules, p, skipped);
        };
        acc.copy_from_slice(&self.enabled);
        for d in &self.dims {
            let set = match value(d.field, p, &self.strings) {
                None => &d.absent,
                Some(v) => {
                    let at = d.interval(v) * self.words;
                    d.sets.get(at..at + self.words).unwrap_or(&d.absent)
                }
            };
            let mut any = 0;
            for (a, s) in acc.iter_mut().zip(set) {
                *a &= s;
                any |= *a;
            }
            // No term left: the remaining fields cannot bring one back.
            if any == 0 && self.fallback.is_empty() {
                return None;
            }
        }
        // `acc` now holds every matching term; the first match at or after `from` decides,
        // unless it is a skip, which resumes the search at the next phase.
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
            let c = Classifier::new(&rules);
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
