//! Parsing rule expressions into a typed AST. Precedence, tightest first: `not !`, `and &&`,
//! `xor ^^`, `or ||`; parentheses group. Values are checked against the field's type here,
//! so evaluation never meets a mismatch.
use super::lexer::{lex, Tok};
use super::scheme::{proto_number, Field, Type};
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
    let e = p.or()?;
    if let Some((col, t)) = p.toks.get(p.pos) {
        return Err(ParseError {
            column: *col,
            msg: format!(
                "expected `and`, `or`, `xor` or the end, found {}",
                t.describe()
            ),
        });
    }
    Ok(e)
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

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.xor()?;
        while self.eat_word(&["or", "||"]) {
            e = Expr::Or(Box::new(e), Box::new(self.xor()?));
        }
        Ok(e)
    }
    fn xor(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.and()?;
        while self.eat_word(&["xor", "^^"]) {
            e = Expr::Xor(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.not()?;
        while self.eat_word(&["and", "&&"]) {
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }
    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.eat_word(&["not", "!"]) {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        match self.peek().cloned() {
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return self.fail(format!("expected `)`, found {}", self.found()));
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Word(name)) => {
                let col = self.col();
                let field = Field::parse(&name).map_err(|msg| ParseError { column: col, msg })?;
                self.pos += 1;
                self.after_field(field, &name)
            }
            _ => self.fail(format!(
                "expected a field, `not` or `(`, found {}",
                self.found()
            )),
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
            return self.fail(format!(
                "`{name}` is true or false on its own; it takes no comparison"
            ));
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
        self.pos += 1;
        Ok(Expr::Cmp(field, op, value))
    }

    /// A single value for a comparison with `field`.
    fn value(&self, field: Field, tok: Option<&Tok>) -> Result<Value, String> {
        let found = tok.map_or("the end".into(), Tok::describe);
        match (field.kind(), tok) {
            (Type::Ip, Some(Tok::Ip(a))) => Ok(Value::Num(*a as u64)),
            (Type::Ip, Some(Tok::Cidr(..))) => Err(format!(
                "{found}: CIDRs are allowed only inside sets, as in `in {{...}}`"
            )),
            (Type::Int, Some(Tok::Int(n))) => Ok(Value::Num(*n)),
            (Type::Proto, Some(Tok::Int(n))) if *n <= 255 => Ok(Value::Num(*n)),
            (Type::Proto, Some(Tok::Str(s))) => proto_number(s)
                .map(|n| Value::Num(n as u64))
                .ok_or_else(|| format!("unknown protocol name \"{s}\"")),
            (Type::Str, Some(Tok::Str(s))) => Ok(Value::Str(s.clone())),
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
            (Type::Int, Tok::Int(n)) => Ok(*n),
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
        [Tok::Str(s)] if field.kind() == Type::Str => set.strs.push(s.clone()),
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
mod tests {
    use super::*;

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
