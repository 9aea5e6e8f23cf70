//! DIR-24-8 longest-prefix match (Gupta, Lin, McKeown 1998), as rte_lpm lays it out: a 2^24
//! entry first level indexed by the top 24 bits, and 256-entry extension groups (tbl8) for
//! prefixes longer than /24. A lookup is one memory access, two for /25../32.
//!
//! Tables are immutable once built: the management thread builds a new one and publishes it
//! by RCU, so the fast path never sees a half-written entry.
mod dir24_8;
mod table_mem;

pub use dir24_8::{BuildError, Dir24_8, Prefix, View, MAX_VALUE};
