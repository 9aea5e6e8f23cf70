//! Parsing rule expressions into a typed AST. Precedence, tightest first: `not !`, `and &&`,
//! `xor ^^`, `or ||`; parentheses group. Values are checked against the field's type here,
//! so evaluation never meets a mismatch.
//!
//! Every walk of the AST (this parser, the evaluator, the compiler, even `Drop`) recurses, so
//! nesting is bounded here, before any of them can overflow the stack: see `MAX_DEPTH`.
use super::lexer::{lex, Tok};
use super::scheme::{proto_number, Field, Type, DIRECTIONS};
use std::collections::HashMap;
use std::fmt;

/// Named lists (`$name`), each element written as in a set: `80`, `1000..2000`, `10.0.0.0/8`,
/// `192.0.2.1`, `"tcp"`.
pub type Lists = HashMap<String, Vec<String>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Numbers, protocols and addresses (as their 32-bit value).
    Num(u64),
    Str(String),
}

/// A set: sorted, merged inclusive ranges of numbers (addresses included), and strings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Set {
    pub ranges: Vec<(u64, u64)>,
    pub strs: Vec<String>,
}

impl Set {
    fn normalise(&mut self) {
        self.ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.ranges.len());
        for (a, b) in self.ranges.drain(..) {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        self.ranges = merged;
        self.strs.sort();
        self.strs.dedup();
    }

    /// Binary search over the merged ranges.
    pub fn contains_num(&self, v: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.1 < v);
        self.ranges.get(i).is_some_and(|r| r.0 <= v)
    }

    pub fn contains_str(&self, s: &str) -> bool {
        self.strs.binary_search_by(|x| x.as_str().cmp(s)).is_ok()
    }

    /// Number of elements as written, for the list-size limit.
    pub fn len(&self) -> usize {
        self.ranges.len() + self.strs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    Xor(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// A boolean field on its own.
    Has(Field),
    Cmp(Field, CmpOp, Value),
    In(Field, Set),
}

impl Expr {
    /// True when some field the expression tests satisfies `pred`.
    pub fn mentions(&self, pred: &dyn Fn(Field) -> bool) -> bool {
        match self {
            Expr::Or(a, b) | Expr::Xor(a, b) | Expr::And(a, b) => {
                a.mentions(pred) || b.mentions(pred)
            }
            Expr::Not(a) => a.mentions(pred),
            Expr::Has(f) | Expr::Cmp(f, ..) | Expr::In(f, _) => pred(*f),
        }
    }
}

/// The deepest nesting an expression may have. Each pair of parentheses, each `not` and each
/// `and`/`xor`/`or` node is a level; a run of one operator (`a or b or c ...`) is grouped as a
/// balanced tree, so 1,000 `or`s in a row cost 10 levels. The parser recurses once per
/// parenthesis and refuses the level past this one before entering it.
pub const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based column in the expression.
    pub column: usize,
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.msg)
    }
}

struct Parser<'a> {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end_col: usize,
    lists: &'a Lists,
}

/// An expression and its height in nesting levels (a field test is 0).
type Node = (Expr, usize);

fn too_deep(column: usize) -> ParseError {
    ParseError {
        column,
        msg: format!("nesting deeper than {MAX_DEPTH} levels"),
    }
}

/// Parses one rule expression.
pub fn parse(src: &str, lists: &Lists) -> Result<Expr, ParseError> {
    let toks = lex(src).map_err(|e| ParseError {
        column: e.column,
        msg: e.msg,
    })?;
    let mut p = Parser {
        toks,
        pos: 0,
        end_col: src.len() + 1,
        lists,
    };
    if p.toks.is_empty() {
        return Err(ParseError {
            column: 1,
            msg: "empty expression".into(),
        });
    }
    p.expr()
}

/// A run of one operator (`a and b and c`): its operands, and the column of the operator
/// after each but the last.
#[derive(Default)]
struct Run {
    items: Vec<Node>,
    ops: Vec<usize>,
}

impl Run {
    /// The run as one node, grouped pairwise into a balanced tree: the operators are
    /// associative and evaluation has no side effects, so a long run adds log2 of its length
    /// to the nesting rather than its length.
    fn fold(self, node: fn(Box<Expr>, Box<Expr>) -> Expr) -> Result<Node, ParseError> {
        let (mut items, mut ops) = (self.items, self.ops);
        while items.len() > 1 {
            let mut next = Vec::with_capacity(items.len().div_ceil(2));
            let mut next_ops = Vec::with_capacity(ops.len() / 2);
            let mut it = items.into_iter();
            let mut k = 0;
            while let Some((a, ha)) = it.next() {
                let Some((b, hb)) = it.next() else {
                    next.push((a, ha));
                    break;
                };
                let col = ops.get(k).copied().unwrap_or(0);
                let h = ha.max(hb) + 1;
                if h > MAX_DEPTH {
                    return Err(too_deep(col));
                }
                next.push((node(Box::new(a), Box::new(b)), h));
                next_ops.extend(ops.get(k + 1));
                k += 2;
            }
            items = next;
            ops = next_ops;
        }
        items.pop().ok_or(ParseError {
            column: 1,
            msg: "expected an expression".into(),
        })
    }
}

/// The expression inside one pair of parentheses (or the whole one) as far as it is read:
/// the `or` run of `xor` runs of `and` runs, and the `not`s waiting for the next operand.
#[derive(Default)]
struct Group {
    /// The column of its `(`.
    open_col: usize,
    or: Run,
    xor: Run,
    and: Run,
    nots: Vec<usize>,
}

impl Group {
    fn close_and(&mut self) -> Result<(), ParseError> {
        let n = std::mem::take(&mut self.and).fold(Expr::And)?;
        self.xor.items.push(n);
        Ok(())
    }
    fn close_xor(&mut self) -> Result<(), ParseError> {
        self.close_and()?;
        let n = std::mem::take(&mut self.xor).fold(Expr::Xor)?;
        self.or.items.push(n);
        Ok(())
    }
    fn finish(mut self) -> Result<Node, ParseError> {
        self.close_xor()?;
        self.or.fold(Expr::Or)
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }
    fn col(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end_col, |(c, _)| *c)
    }
    fn found(&self) -> String {
        self.peek().map_or("the end".into(), Tok::describe)
    }
    fn fail<T>(&self, msg: String) -> Result<T, ParseError> {
        Err(ParseError {
            column: self.col(),
            msg,
        })
    }
    fn eat_word(&mut self, words: &[&str]) -> bool {
        let hit = match self.peek() {
            Some(Tok::Word(w)) => words.contains(&w.as_str()),
            Some(Tok::Op(o)) => words.contains(o),
            _ => false,
        };
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// The expression, read without recursion: an explicit stack holds the groups that
    /// parentheses opened, so no input can exhaust the thread's stack here.
    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut cur = Group::default();
        let mut outer: Vec<Group> = Vec::new();
        // Parentheses and `not`s open around the current token: refused past MAX_DEPTH
        // before anything is built for them.
        let mut open = 0;
        loop {
            // An operand: `not`s and `(`s, then a field test.
            let col = self.col();
            if self.eat_word(&["not", "!"]) {
                if open >= MAX_DEPTH {
                    return Err(too_deep(col));
                }
                open += 1;
                cur.nots.push(col);
                continue;
            }
            let mut operand = match self.peek().cloned() {
                Some(Tok::LParen) => {
                    if open >= MAX_DEPTH {
                        return Err(too_deep(col));
                    }
                    open += 1;
                    self.pos += 1;
                    let inner = Group {
                        open_col: col,
                        ..Group::default()
                    };
                    outer.push(std::mem::replace(&mut cur, inner));
                    continue;
                }
                Some(Tok::Word(name)) => {
                    let field =
                        Field::parse(&name).map_err(|msg| ParseError { column: col, msg })?;
                    self.pos += 1;
                    (self.after_field(field, &name)?, 0)
                }
                _ => {
                    return self.fail(format!(
                        "expected a field, `not` or `(`, found {}",
                        self.found()
                    ))
                }
            };
            // After an operand: its `not`s apply, then an operator, a `)` (the group
            // becomes an operand of the one around it) or the end.
            loop {
                open -= cur.nots.len();
                for col in std::mem::take(&mut cur.nots).into_iter().rev() {
                    if operand.1 >= MAX_DEPTH {
                        return Err(too_deep(col));
                    }
                    operand = (Expr::Not(Box::new(operand.0)), operand.1 + 1);
                }
                cur.and.items.push(operand);
                let col = self.col();
                if self.eat_word(&["and", "&&"]) {
                    cur.and.ops.push(col);
                    break;
                }
                if self.eat_word(&["xor", "^^"]) {
                    cur.close_and()?;
                    cur.xor.ops.push(col);
                    break;
                }
                if self.eat_word(&["or", "||"]) {
                    cur.close_xor()?;
                    cur.or.ops.push(col);
                    break;
                }
                let Some(parent) = outer.pop() else {
                    return match self.peek() {
                        None => Ok(cur.finish()?.0),
                        Some(_) => self.fail(format!(
                            "expected `and`, `or`, `xor` or the end, found {}",
                            self.found()
                        )),
                    };
                };
                if self.peek() != Some(&Tok::RParen) {
                    return self.fail(format!("expected `)`, found {}", self.found()));
                }
                self.pos += 1;
                open -= 1;
                let group = std::mem::replace(&mut cur, parent);
                let open_col = group.open_col;
                let (e, h) = group.finish()?;
                if h >= MAX_DEPTH {
                    return Err(too_deep(open_col));
                }
                operand = (e, h + 1);
            }
        }
    }

    fn after_field(&mut self, field: Field, name: &str) -> Result<Expr, ParseError> {
        let op = match self.peek() {
            Some(Tok::Word(w)) if w == "in" => {
                self.pos += 1;
                return Ok(Expr::In(field, self.set(field)?));
            }
            Some(Tok::Word(w)) => match w.as_str() {
                "eq" => Some(CmpOp::Eq),
                "ne" => Some(CmpOp::Ne),
                "lt" => Some(CmpOp::Lt),
                "le" => Some(CmpOp::Le),
                "gt" => Some(CmpOp::Gt),
                "ge" => Some(CmpOp::Ge),
                _ => None,
            },
            Some(Tok::Op(o)) => match *o {
                "==" => Some(CmpOp::Eq),
                "!=" => Some(CmpOp::Ne),
                "<" => Some(CmpOp::Lt),
                "<=" => Some(CmpOp::Le),
                ">" => Some(CmpOp::Gt),
                ">=" => Some(CmpOp::Ge),
                _ => None,
            },
            _ => None,
        };
        let Some(op) = op else {
            if field.kind() == Type::Bool {
                return Ok(Expr::Has(field));
            }
            return self.fail(format!(
                "expected a comparison (eq == ne != lt < le <= gt > ge >=) or `in` after `{name}`, found {}",
                self.found()
            ));
        };
        if field.kind() == Type::Bool {
            return self.flag_compared(field, name, op);
        }
        if field.kind() == Type::Str && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
            return self.fail(format!("`{name}` is a string: only eq and ne apply"));
        }
        self.pos += 1;
        let col = self.col();
        let tok = self.peek().cloned();
        let value = self
            .value(field, tok.as_ref())
            .map_err(|msg| ParseError { column: col, msg })?;
        // Above the field's largest value: a typo (an 8-bit field compared as 16-bit), never
        // a rule that can match.
        if let (CmpOp::Gt, Value::Num(n), Type::Int | Type::Proto) = (op, &value, field.kind()) {
            let max = if field.kind() == Type::Proto {
                255
            } else {
                field.max()
            };
            if *n >= max {
                return Err(ParseError {
                    column: col,
                    msg: format!("`gt {n}` can never match: `{name}` is at most {max}"),
                });
            }
        }
        self.pos += 1;
        Ok(Expr::Cmp(field, op, value))
    }

    /// A boolean field compared with 0 or 1, as Wireshark allows (`tcp.flags.syn == 1`),
    /// written as the field on its own: `== 1` and `!= 0` test it set, `== 0` and `!= 1` test
    /// it clear on a packet that has it (a TCP flag on a TCP packet), as a comparison with an
    /// absent field never matches.
    fn flag_compared(&mut self, field: Field, name: &str, op: CmpOp) -> Result<Expr, ParseError> {
        let set = match op {
            CmpOp::Eq | CmpOp::Ne => matches!(op, CmpOp::Eq),
            _ => return self.fail(format!("`{name}` is true or false: only eq and ne apply")),
        };
        self.pos += 1;
        let col = self.col();
        let set = match self.peek() {
            Some(Tok::Int(1)) => set,
            Some(Tok::Int(0)) => !set,
            _ => {
                return Err(ParseError {
                    column: col,
                    msg: format!("`{name}` compares only with 0 or 1, found {}", self.found()),
                })
            }
        };
        self.pos += 1;
        let has = Expr::Has(field);
        Ok(match (set, field) {
            (true, _) => has,
            (false, Field::TcpFlag(_)) => Expr::And(
                Box::new(Expr::Has(Field::Tcp)),
                Box::new(Expr::Not(Box::new(has))),
            ),
            (false, _) => Expr::Not(Box::new(has)),
        })
    }

    /// A single value for a comparison with `field`.
    fn value(&self, field: Field, tok: Option<&Tok>) -> Result<Value, String> {
        let found = tok.map_or("the end".into(), Tok::describe);
        match (field.kind(), tok) {
            (Type::Ip, Some(Tok::Ip(a))) => Ok(Value::Num(*a as u64)),
            (Type::Ip, Some(Tok::Cidr(..))) => Err(format!(
                "{found}: CIDRs are allowed only inside sets, as in `in {{...}}`"
            )),
            (Type::Int, Some(Tok::Int(n))) => in_range(field, *n).map(Value::Num),
            (Type::Proto, Some(Tok::Int(n))) if *n <= 255 => Ok(Value::Num(*n)),
            (Type::Proto, Some(Tok::Str(s))) => proto_number(s)
                .map(|n| Value::Num(n as u64))
                .ok_or_else(|| format!("unknown protocol name \"{s}\"")),
            (Type::Str, Some(Tok::Str(s))) => known_str(field, s).map(Value::Str),
            (kind, _) => Err(format!("expected {}, found {found}", expects(kind))),
        }
    }

    fn set(&mut self, field: Field) -> Result<Set, ParseError> {
        let mut set = Set::default();
        // `in $name`, as the vendor writes it, is `in {$name}`.
        if let Some(Tok::List(name)) = self.peek().cloned() {
            self.add_list(&mut set, field, &name)?;
            self.pos += 1;
            set.normalise();
            return Ok(set);
        }
        if self.peek() != Some(&Tok::LBrace) {
            return self.fail(format!(
                "expected `{{` or a $list after `in`, found {}",
                self.found()
            ));
        }
        self.pos += 1;
        loop {
            match self.peek().cloned() {
                Some(Tok::RBrace) => {
                    self.pos += 1;
                    break;
                }
                Some(Tok::Comma) => self.pos += 1,
                Some(Tok::List(name)) => {
                    self.add_list(&mut set, field, &name)?;
                    self.pos += 1;
                }
                Some(_) => {
                    let col = self.col();
                    let first = self.toks[self.pos].1.clone();
                    let mut elem = vec![first];
                    self.pos += 1;
                    if self.peek() == Some(&Tok::DotDot) {
                        self.pos += 1;
                        let Some(hi) = self.peek().cloned() else {
                            return self.fail("expected the end of the range after `..`".into());
                        };
                        elem.push(Tok::DotDot);
                        elem.push(hi);
                        self.pos += 1;
                    }
                    let refs: Vec<&Tok> = elem.iter().collect();
                    add_element(&mut set, field, &refs)
                        .map_err(|msg| ParseError { column: col, msg })?;
                }
                None => return self.fail("expected `}` to close the set".into()),
            }
        }
        set.normalise();
        Ok(set)
    }

    /// Adds every entry of the named list (at the current token) to `set`.
    fn add_list(&self, set: &mut Set, field: Field, name: &str) -> Result<(), ParseError> {
        let col = self.col();
        let items = self.lists.get(name).ok_or(ParseError {
            column: col,
            msg: format!("no list named ${name}"),
        })?;
        for item in items {
            let toks = lex(item).map_err(|e| ParseError {
                column: col,
                msg: format!("${name}: `{item}`: {}", e.msg),
            })?;
            let refs: Vec<&Tok> = toks.iter().map(|(_, t)| t).collect();
            add_element(set, field, &refs).map_err(|m| ParseError {
                column: col,
                msg: format!("${name}: `{item}`: {m}"),
            })?;
        }
        Ok(())
    }
}

/// `n`, when the field can hold it.
fn in_range(field: Field, n: u64) -> Result<u64, String> {
    if n > field.max() {
        return Err(format!("{n} is out of range (0..={})", field.max()));
    }
    Ok(n)
}

/// `s`, when the string field can have it: `anygate.direction` is "ingress" or "egress"
/// (tunnel names are the config's to check).
fn known_str(field: Field, s: &str) -> Result<String, String> {
    if field == Field::Direction && !DIRECTIONS.contains(&s) {
        return Err(format!(
            "\"{s}\" is not a direction: \"ingress\" or \"egress\""
        ));
    }
    Ok(s.to_owned())
}

fn expects(kind: Type) -> &'static str {
    match kind {
        Type::Ip => "an IPv4 address",
        Type::Int => "a number",
        Type::Proto => "a protocol number or name (\"tcp\")",
        Type::Str => "a string",
        Type::Bool => "nothing",
    }
}

/// Adds one set element (`x`, `x .. y`) of the field's type.
fn add_element(set: &mut Set, field: Field, toks: &[&Tok]) -> Result<(), String> {
    let num = |t: &Tok| -> Result<u64, String> {
        match (field.kind(), t) {
            (Type::Ip, Tok::Ip(a)) => Ok(*a as u64),
            (Type::Int, Tok::Int(n)) => in_range(field, *n),
            (Type::Proto, Tok::Int(n)) if *n <= 255 => Ok(*n),
            (Type::Proto, Tok::Str(s)) => proto_number(s)
                .map(u64::from)
                .ok_or_else(|| format!("unknown protocol name \"{s}\"")),
            (kind, t) => Err(format!(
                "expected {} in the set, found {}",
                expects(kind),
                t.describe()
            )),
        }
    };
    match toks {
        [Tok::Cidr(a, l)] if field.kind() == Type::Ip => {
            let mask = if *l == 0 {
                0
            } else {
                u32::MAX << (32 - *l as u32)
            };
            if a & !mask != 0 {
                return Err(format!(
                    "host bits set in {}/{l}",
                    std::net::Ipv4Addr::from(*a)
                ));
            }
            set.ranges.push((*a as u64, (*a | !mask) as u64));
        }
        [Tok::Str(s)] if field.kind() == Type::Str => set.strs.push(known_str(field, s)?),
        [one] => {
            let v = num(one)?;
            set.ranges.push((v, v));
        }
        [lo, Tok::DotDot, hi] => {
            let (a, b) = (num(lo)?, num(hi)?);
            if a > b {
                return Err(format!("range {a}..{b} is empty"));
            }
            set.ranges.push((a, b));
        }
        _ => return Err("expected a set element".into()),
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs `f` on a thread with a 256 KiB stack: a parser that recursed once per level of
    /// a 10,000-deep input would overflow it and abort the test binary.
    pub(crate) fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    fn err(src: String) -> String {
        on_small_stack(move || parse(&src, &Lists::new()).unwrap_err().to_string())
    }

    #[test]
    fn deep_nesting_is_refused_at_the_level_past_the_limit() {
        let parens = format!("{}tcp{}", "(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(err(parens), "column 129: nesting deeper than 128 levels");
        // Unbalanced: refused for the depth before the missing `)` is noticed.
        assert_eq!(
            err("(".repeat(10_000)),
            "column 129: nesting deeper than 128 levels"
        );
        // `not ` is 4 characters: the 129th starts at column 513.
        assert_eq!(
            err(format!("{}tcp", "not ".repeat(20_000))),
            "column 513: nesting deeper than 128 levels"
        );
        assert_eq!(
            err(format!("{}tcp", "!".repeat(20_000))),
            "column 129: nesting deeper than 128 levels"
        );
        // Parentheses and `not`s add up: 64 of each, then one more.
        assert_eq!(
            err(format!("{}(tcp{}", "!(".repeat(64), ")".repeat(65))),
            "column 129: nesting deeper than 128 levels"
        );
        // 128 parentheses around an `or`: the `or` is level 129, found on the way out, at
        // the outermost parenthesis.
        assert_eq!(
            err(format!("{}tcp or udp{}", "(".repeat(128), ")".repeat(128))),
            "column 1: nesting deeper than 128 levels"
        );
        // A chain over a maximally nested operand: the operator is the level too many.
        assert_eq!(
            err(format!("{}tcp{} or udp", "(".repeat(128), ")".repeat(128))),
            "column 261: nesting deeper than 128 levels"
        );
    }

    #[test]
    fn nesting_at_the_limit_and_long_chains_are_accepted() {
        for src in [
            format!("{}tcp{}", "(".repeat(128), ")".repeat(128)),
            format!("{}tcp", "not ".repeat(128)),
            format!("{}tcp{}", "!(".repeat(64), ")".repeat(64)),
            format!("{}tcp or udp{}", "(".repeat(127), ")".repeat(127)),
            // 5,000 `or`s and as many `and`s cost 13 levels each, not 5,000.
            vec!["tcp.dstport eq 80"; 5_000].join(" or "),
            vec!["(tcp and udp)"; 5_000].join(" || "),
        ] {
            on_small_stack(move || {
                if let Err(e) = parse(&src, &Lists::new()) {
                    panic!("{}...: {e}", &src[..40.min(src.len())]);
                }
            });
        }
    }

    #[test]
    fn chains_keep_their_operands_in_order() {
        let l = Lists::new();
        let leaf = |n: u64| Expr::Cmp(Field::TcpDstPort, CmpOp::Eq, Value::Num(n));
        let or = |a, b| Expr::Or(Box::new(a), Box::new(b));
        assert_eq!(
            parse(
                "tcp.dstport eq 1 or tcp.dstport eq 2 or tcp.dstport eq 3",
                &l
            )
            .unwrap(),
            or(or(leaf(1), leaf(2)), leaf(3))
        );
        assert_eq!(
            parse(&["tcp.dstport eq 1"; 4].join(" or "), &l).unwrap(),
            or(or(leaf(1), leaf(1)), or(leaf(1), leaf(1))),
            "grouped pairwise"
        );
    }

    proptest::proptest! {
        /// Any text either parses or fails with a column inside it (or just past its end).
        #[test]
        fn never_panics(s in "[ -~]{0,60}") {
            if let Err(e) = parse(&s, &Lists::new()) {
                proptest::prop_assert!(e.column >= 1 && e.column <= s.len() + 1, "{e}");
            }
        }

        /// Token soup drawn from the language itself, to get deep into the parser.
        #[test]
        fn never_panics_on_language_tokens(parts in proptest::collection::vec(proptest::sample::select(vec![
            "ip.src", "tcp.dstport", "tcp", "not", "and", "or", "xor", "(", ")", "{", "}", "in", "eq",
            "!=", "10.0.0.0/8", "1.2.3.4", "80", "1..5", "\"tcp\"", "$x", "..", "ip.proto", "tcp.flags.syn",
        ]), 0..14)) {
            let s = parts.join(" ");
            let _ = parse(&s, &Lists::new());
        }
    }
}
