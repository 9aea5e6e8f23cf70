//! Fixed limits: counters and per-worker tables are arrays of these sizes (no allocation on
//! the fast path), and a config above them is refused.

/// Most ports one process drives.
pub const MAX_PORTS: usize = 16;
/// Most tunnels one process serves.
pub const MAX_TUNNELS: usize = 256;
/// The most rules a config may raise `firewall.max_rules` to.
pub const MAX_RULES: usize = 1024;
/// Most /24s holding prefixes longer than /24 (one tbl8 group each): a DIR-24-8 entry has 15
/// bits for a group index. 16 MiB of tbl8 at most.
pub const MAX_TBL8_GROUPS: usize = crate::lpm::MAX_TBL8_GROUPS;
/// Most distinct route sets (candidate lists) one table holds: the FIB value is a 15-bit
/// route-set id (0..=`lpm::MAX_VALUE`), and the top two ids are our own and the anycast
/// addresses'. A route change that needs more is refused.
pub const MAX_ROUTE_SETS: usize = crate::route::SET_ANYCAST as usize;
