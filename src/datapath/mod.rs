//! The packet pipeline, in plain safe Rust over byte buffers, and the DPDK worker loop that
//! drives it. Only `worker` knows about DPDK; everything else runs in tests and `trace`.
mod context;
pub mod counter_slots;
pub mod counters;
mod graph;
pub mod idle;
pub mod loop_buckets;
pub mod pipeline;
pub mod punt;
mod stages;
pub mod tap;
pub mod verdict;
pub mod worker;

pub use crate::packet::{PacketBuf, VecBuf};
pub use context::Note;
pub use counter_slots::CounterSlots;
pub use counters::{Counters, SharedCounters, TunnelCounters};
pub use pipeline::Pipeline;
pub use stages::firewall::Direction;
pub use verdict::{DropReason, Verdict};
pub use worker::{loop_histogram, LoopHistogram};

/// Packets per rx burst, as l3fwd.
pub const BURST: usize = 32;
