//! Tunnel health checks: probes sent through every tunnel, answers recognised by the
//! workers, and the vendor's state machine that turns the results into a tunnel health.
//!
//! The management side builds probes and hands each to one worker through that worker's
//! inject ring; a worker that recognises an answer hands a small record back through its
//! answer ring. Both rings are fixed-size and lock-free: a worker never waits on the
//! management plane, and a full ring loses the item (counted), never blocks.
use crossbeam::queue::ArrayQueue;

pub mod probe;

/// The largest inner packet an inject item carries (IPv4 + ICMP echo + payload).
pub const INJECT_MAX: usize = 128;
/// Items each ring holds; at the highest probe rate with 512 tunnels this is ample.
pub const RING_SIZE: usize = 1024;

/// A packet built off the fast path for a worker to send: an inner IPv4 packet, encapsulated
/// toward `tunnel` like any packet routed into it.
#[derive(Clone, Copy)]
pub struct Inject {
    /// Tunnel index in the snapshot the probe was built for.
    pub tunnel: u16,
    /// The snapshot generation it was built for: a worker on another generation drops it
    /// (the tunnel index may mean another tunnel there).
    pub generation: u64,
    pub len: u16,
    pub bytes: [u8; INJECT_MAX],
}

impl Inject {
    pub fn packet(&self) -> &[u8] {
        &self.bytes[..(self.len as usize).min(INJECT_MAX)]
    }
}

/// A probe answer a worker recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The sequence number the probe carried (unique per node across all tunnels).
    pub seq: u32,
    /// The tunnel the answer was decapsulated from (None: it came over the underlay, as a
    /// unidirectional check's answer does).
    pub via_tunnel: Option<u16>,
    /// When the worker saw it, in TSC cycles (the same clock as `dpdk::tsc()`).
    pub tsc: u64,
}

/// One worker's two rings.
pub struct WorkerRings {
    pub inject: ArrayQueue<Inject>,
    pub answers: ArrayQueue<Answer>,
}

impl WorkerRings {
    pub fn new() -> Self {
        WorkerRings {
            inject: ArrayQueue::new(RING_SIZE),
            answers: ArrayQueue::new(RING_SIZE),
        }
    }
}

impl Default for WorkerRings {
    fn default() -> Self {
        Self::new()
    }
}

/// `health_check.type`: what a probe is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    /// An echo reply from the customer side to ours: the customer router routes it back.
    #[default]
    Reply,
    /// An echo request from our side to the customer's, which answers it.
    Request,
}

/// `health_check.direction`: how the answer comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckDirection {
    /// Inside the tunnel.
    #[default]
    Bidirectional,
    /// Outside the tunnel, over the underlay, to our anycast endpoint.
    Unidirectional,
}
