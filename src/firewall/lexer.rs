//! Tokens of the rule language, each with the 1-based column it starts at.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A field name or a word operator (`ip.src`, `eq`, `and`, `in`).
    Word(String),
    Int(u64),
    Ip(u32),
    /// An address with a prefix length: only valid inside sets.
    Cidr(u32, u8),
    Str(String),
    /// `$name`
    List(String),
    Op(&'static str),
    LBrace,
    RBrace,
    LParen,
    RParen,
    DotDot,
    Comma,
}

impl Tok {
    pub fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Int(n) => format!("number {n}"),
            Tok::Ip(a) => format!("address {}", std::net::Ipv4Addr::from(*a)),
            Tok::Cidr(a, l) => format!("CIDR {}/{l}", std::net::Ipv4Addr::from(*a)),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::List(n) => format!("list ${n}"),
            Tok::Op(o) => format!("`{o}`"),
            Tok::LBrace => "`{`".into(),
            Tok::RBrace => "`}`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::DotDot => "`..`".into(),
            Tok::Comma => "`,`".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub column: usize,
    pub msg: String,
}

const OPS: [&str; 10] = ["==", "!=", "<=", ">=", "&&", "||", "^^", "<", ">", "!"];

/// Splits an expression into tokens.
pub fn lex(src: &str) -> Result<Vec<(usize, Tok)>, LexError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |i: usize, msg: String| LexError { column: i + 1, msg };
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            b'{' => {
                i += 1;
                Tok::LBrace
            }
            b'}' => {
                i += 1;
                Tok::RBrace
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'.' if b.get(i + 1) == Some(&b'.') => {
                i += 2;
                Tok::DotDot
            }
            b'"' => {
                let end = src[i + 1..]
                    .find('"')
                    .ok_or_else(|| err(i, "unterminated string".into()))?;
                let s = src[i + 1..i + 1 + end].to_owned();
                i += end + 2;
                Tok::Str(s)
            }
            b'$' => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                if i == start + 1 {
                    return Err(err(start, "expected a list name after `$`".into()));
                }
                Tok::List(src[start + 1..i].to_owned())
            }
            b'0'..=b'9' => {
                // A number, an address (four dotted numbers) or a CIDR; `..` ends a number.
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || (b[i] == b'.' && b.get(i + 1) != Some(&b'.')))
                {
                    i += 1;
                }
                let text = &src[start..i];
                if text.contains('.') {
                    let addr: std::net::Ipv4Addr = text
                        .parse()
                        .map_err(|_| err(start, format!("`{text}` is not an IPv4 address")))?;
                    if b.get(i) == Some(&b'/') {
                        let ls = i + 1;
                        i += 1;
                        while i < b.len() && b[i].is_ascii_digit() {
                            i += 1;
                        }
                        let len: u8 =
                            src[ls..i]
                                .parse()
                                .ok()
                                .filter(|l| *l <= 32)
                                .ok_or_else(|| {
                                    err(
                                        ls,
                                        format!("prefix length `{}` is not 0..=32", &src[ls..i]),
                                    )
                                })?;
                        Tok::Cidr(u32::from(addr), len)
                    } else {
                        Tok::Ip(u32::from(addr))
                    }
                } else {
                    let n = match text.strip_prefix("0x") {
                        Some(h) => u64::from_str_radix(h, 16),
                        None => text.parse(),
                    };
                    Tok::Int(n.map_err(|_| err(start, format!("`{text}` is not a number")))?)
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.')
                {
                    i += 1;
                }
                Tok::Word(src[start..i].to_owned())
            }
            _ => {
                let op = OPS
                    .iter()
                    .find(|o| src[i..].starts_with(**o))
                    .ok_or_else(|| {
                        err(
                            i,
                            format!(
                                "unexpected character `{}`",
                                src[i..].chars().next().unwrap_or('?')
                            ),
                        )
                    })?;
                i += op.len();
                Tok::Op(op)
            }
        };
        out.push((start + 1, tok));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_columns() {
        let t = lex(r#"ip.src in {10.0.0.0/8 192.0.2.1} && tcp.dstport in {80..443 0x1f90} or ip.proto eq "gre""#).unwrap();
        let toks: Vec<Tok> = t.iter().map(|(_, t)| t.clone()).collect();
        assert_eq!(toks[0], Tok::Word("ip.src".into()));
        assert_eq!(toks[3], Tok::Cidr(0x0a00_0000, 8));
        assert_eq!(toks[4], Tok::Ip(0xc000_0201));
        assert_eq!(toks[6], Tok::Op("&&"));
        assert_eq!(toks[10], Tok::Int(80));
        assert_eq!(toks[11], Tok::DotDot);
        assert_eq!(toks[13], Tok::Int(8080));
        assert_eq!(toks.last(), Some(&Tok::Str("gre".into())));
        assert_eq!(t[1].0, 8, "`in` starts at column 8");
    }

    #[test]
    fn errors_carry_columns() {
        assert_eq!(lex("ip.src eq 10.0.0.300").unwrap_err().column, 11);
        assert_eq!(lex("tcp.dstport eq 8 @").unwrap_err().column, 18);
        assert!(lex(r#"ip.proto eq "tcp"#)
            .unwrap_err()
            .msg
            .contains("unterminated"));
        assert_eq!(
            lex("ip.src in {10.0.0.0/40}").unwrap_err().msg,
            "prefix length `40` is not 0..=32"
        );
    }
}
