//! DIR-24-8 longest-prefix match (Gupta, Lin, McKeown 1998), as rte_lpm lays it out: a 2^24
//! entry first level indexed by the top 24 bits, and 256-entry extension groups (tbl8) for
//! prefixes longer than /24, with values up to 16 bits (route-set ids).
//!
//! Lookups do not read it: they read a compact index built beside it (`range_index`, after
//! DXR), a direct entry per /16 and a binary search over the /16's ranges, about 2 MiB for
//! a 494k-prefix table where tbl24 alone is 64 MiB: on 4 KiB pages the index stays within
//! the TLB's reach and mostly in L2.
//!
//! A full table is built off the fast path and published by RCU; single prefixes are then
//! added and withdrawn in place by the [`Editor`], entry by entry, and the index chunks they
//! touch rebuilt and republished, while workers read.
mod dir24_8;
mod editor;
mod range_index;
mod table_mem;

pub use dir24_8::{BuildError, Dir24_8, Prefix, View, MAX_VALUE};
pub use editor::{Edit, Editor};
