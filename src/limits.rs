//! Fixed limits: counters and per-worker tables are arrays of these sizes (no allocation on
//! the fast path), and a config above them is refused.

/// Most ports one process drives.
pub const MAX_PORTS: usize = 16;
/// Most tunnels one process serves.
pub const MAX_TUNNELS: usize = 256;
/// The most rules a config may raise `firewall.max_rules` to.
pub const MAX_RULES: usize = 1024;
/// Largest FIB value (route-set id): the lookup index stores `value + 1` in 16 bits. The two
/// highest are the node's own and anycast addresses, so at most `MAX_FIB_VALUE - 1` route sets.
pub const MAX_FIB_VALUE: u32 = 0xfffe;
/// Most route sets (distinct candidate lists) one route table may hold.
pub const MAX_ROUTE_SETS: usize = MAX_FIB_VALUE as usize - 1;
