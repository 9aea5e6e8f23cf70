//! The stateless firewall's rule language, modelled on Wireshark display filters as the vendor
//! uses them: `scheme` (the fields and their types), `lexer` (tokens with columns), `parser`
//! (precedence not > and > xor > or, sets, named lists), `eval` (the rule-by-rule reference
//! evaluator a compiled classifier is checked against).
//!
//! Fields that do not apply to a packet (`tcp.dstport` on a UDP packet) make every comparison
//! on them false, `ne` included, as in Wireshark: `tcp.dstport eq 0` and `tcp.dstport ne 0`
//! both fail on UDP, and only `not ...` turns that into true.
pub mod compile;
pub mod eval;
mod key;
pub mod lexer;
pub mod parser;
pub mod scheme;
mod trie;

pub use compile::Classifier;
pub use eval::{decide, first_match, Action, Fields, Rule};
pub use key::Packet;
pub use parser::{parse, Expr, Lists, ParseError};
#[cfg(test)]
mod ruleset_tests;
