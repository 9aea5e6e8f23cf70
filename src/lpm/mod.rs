//! DIR-24-8 longest-prefix match (Gupta, Lin, McKeown 1998), as rte_lpm lays it out: a 2^24
//! entry first level indexed by the top 24 bits, and 256-entry extension groups (tbl8) for
//! prefixes longer than /24. A lookup is one memory access, two for /25../32. Entries are 2
//! bytes, half of rte_lpm's (a link bit and 15 bits of value or group index): values up to
//! [`MAX_VALUE`], at most [`MAX_TBL8_GROUPS`] groups, 32 MiB of tbl24.
//!
//! A full table is built off the fast path and published by RCU; single prefixes are then
//! added and withdrawn in place by the [`Editor`], entry by entry, while workers read.
mod dir24_8;
mod editor;
mod table_mem;

pub use dir24_8::{BuildError, Dir24_8, Prefix, View, MAX_TBL8_GROUPS, MAX_VALUE};
pub use editor::{Edit, Editor};
