//! Automatic Return Routing: flows learned from tunnels with ARR enabled, so that their
//! return traffic goes back into the tunnel it came from without a route lookup. `table` is
//! the shared lock-free flow table; `flow` reads a packet's flow key and what it may do to
//! the table. The stage that uses them is `datapath::stages::arr`.
pub mod flow;
pub mod table;

pub use flow::Flow;
pub use table::{Key, Learned, Table, Timeouts};
