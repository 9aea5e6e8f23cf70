//! Fixed limits: counters and per-worker tables are arrays of these sizes (no allocation on
//! the fast path), and a config above them is refused.

/// Most ports one process drives.
pub const MAX_PORTS: usize = 16;
/// Most tunnels one process serves.
pub const MAX_TUNNELS: usize = 256;
/// The most rules a config may raise `firewall.max_rules` to.
pub const MAX_RULES: usize = 1024;
