//! Automatic Return Routing: flows learned from tunnels with ARR enabled, so that their
//! return traffic goes back into the tunnel it came from without a route lookup. `table` is
//! the shared lock-free flow table; `flow` reads a packet's flow key and what it may do to
//! the table. The stage that uses them is `datapath::stages::arr`.
pub mod flow;
pub mod table;

pub use flow::Flow;
pub use table::{Key, Learned, Table, Timeouts};

/// Entries the management thread checks for expiry per tick (10 ms): a 1M-flow table is
/// swept in under a second, about 80 us a tick.
pub const SWEEP_PER_TICK: usize = 16 * 1024;

/// One management tick: the shared clock to the table's age, then a bounded sweep.
pub fn tick(table: &Table) -> u64 {
    table.set_now(table.age());
    table.sweep(SWEEP_PER_TICK)
}
