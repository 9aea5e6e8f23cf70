//! What the metrics thread reads. Worker counters come straight from their seqlock blocks;
//! what lives on the management thread only (NIC counters, health, routes, the table) is
//! copied there into a [`MgmtView`] and swapped in under a mutex held only for the swap.
use crate::datapath::{CounterSlots, SharedCounters};
use crate::dpdk::PortStats;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// (source, origin, routes) for every pair.
pub type RouteCounts = Vec<(&'static str, &'static str, u64)>;

/// One tunnel as the management thread sees it.
#[derive(Debug, Clone, Default)]
pub struct TunnelView {
    pub name: String,
    /// 1 healthy, 0.5 degraded, 0 down (the vendor's scale); None before the first table.
    pub health: Option<f64>,
    /// Probes sent, answered and lost, when the tunnel is checked.
    pub probes: Option<[u64; 3]>,
}

/// The management thread's part of a scrape.
#[derive(Debug, Clone, Default)]
pub struct MgmtView {
    pub generation: u64,
    /// (port name, its NIC counters), in config order.
    pub ports: Vec<(String, PortStats)>,
    pub tunnels: Vec<TunnelView>,
    /// Each firewall rule's label (its id, else its position), in config order.
    pub rules: Vec<String>,
    /// The running table's counter slots, to read rules and tunnels by position.
    pub slots: Arc<CounterSlots>,
    /// (source, origin, routes) for every pair present.
    pub routes: RouteCounts,
    pub fib_prefixes: u64,
    pub tbl8_used: u64,
    pub tbl8_limit: u64,
    /// Route-set ids held (live or left by withdrawn routes until a rebuild) and the most.
    pub route_sets: u64,
    pub route_sets_limit: u64,
    /// (size, available) mbufs.
    pub mempool: (u32, u32),
    /// Each worker's core, by worker index.
    pub worker_cores: Vec<usize>,
    pub tsc_hz: u64,
}

/// Shared between the management thread (writer) and the metrics thread (reader).
pub struct Shared {
    pub counters: Arc<SharedCounters>,
    pub started: Instant,
    view: Mutex<Option<Arc<MgmtView>>>,
}

impl Shared {
    pub fn new(counters: Arc<SharedCounters>, started: Instant) -> Shared {
        Shared {
            counters,
            started,
            view: Mutex::new(None),
        }
    }

    /// Management side: the lock is held only to swap an `Arc` (the old one drops after).
    pub fn publish(&self, v: MgmtView) {
        let new = Some(Arc::new(v));
        let _old = match self.view.lock() {
            Ok(mut g) => std::mem::replace(&mut *g, new),
            Err(p) => std::mem::replace(&mut *p.into_inner(), new),
        };
    }

    /// Metrics side: the latest view, None before the first publish.
    pub fn view(&self) -> Option<Arc<MgmtView>> {
        match self.view.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}
