//! The management thread's side: every [`INTERVAL`] it copies what only it can read (NIC
//! counters, health, the checker's probe figures, route counts, the mempool) into a fresh
//! [`MgmtView`] for the metrics thread. Route counts are recounted only for a new table
//! generation, so a full BGP table costs one pass per change, not per publish.
use super::view::{MgmtView, RouteCounts, Shared, TunnelView};
use crate::config::{Config, Health, RouteSource};
use crate::dpdk::PortStats;
use crate::health::checker::Checker;
use crate::route::{Rib, Snapshot};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How stale the management figures in a scrape can be.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// What one publish reads, borrowed from the management loop.
pub struct Parts<'a> {
    pub cfg: &'a Config,
    pub snap: &'a Snapshot,
    pub rib: &'a Rib,
    pub checker: &'a Checker,
    pub nic: Vec<PortStats>,
    pub mempool: (u32, u32),
    pub tsc_hz: u64,
    pub now_tsc: u64,
}

pub struct Feed {
    shared: Arc<Shared>,
    last: Option<Instant>,
    /// Route counts and the generation they were counted for.
    routes: Option<(u64, RouteCounts)>,
}

impl Feed {
    pub fn new(shared: Arc<Shared>) -> Feed {
        Feed {
            shared,
            last: None,
            routes: None,
        }
    }

    /// True when a publish is due (the first one at once).
    pub fn due(&self) -> bool {
        self.last.is_none_or(|t| t.elapsed() >= INTERVAL)
    }

    pub fn publish(&mut self, p: Parts) {
        self.last = Some(Instant::now());
        let generation = p.snap.generation;
        let routes = match &self.routes {
            Some((g, r)) if *g == generation => r.clone(),
            _ => {
                let r = count_routes(p.rib);
                self.routes = Some((generation, r.clone()));
                r
            }
        };
        let fib = p.rib.fib();
        self.shared.publish(MgmtView {
            generation,
            ports: p
                .cfg
                .ports
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.clone(), p.nic.get(i).copied().unwrap_or_default()))
                .collect(),
            tunnels: p
                .cfg
                .tunnels
                .iter()
                .enumerate()
                .map(|(i, t)| TunnelView {
                    name: t.name.clone(),
                    health: p.snap.health.get(i).map(|h| health_value(*h)),
                    probes: p
                        .checker
                        .view(&t.name, p.now_tsc)
                        .map(|v| [v.sent, v.answered, v.lost]),
                })
                .collect(),
            rules: p
                .cfg
                .raw
                .firewall
                .rules
                .iter()
                .enumerate()
                .map(|(i, r)| r.id.clone().unwrap_or_else(|| i.to_string()))
                .collect(),
            slots: p.snap.counter_slots.clone(),
            routes,
            fib_prefixes: fib.len() as u64,
            tbl8_used: fib.tbl8_groups() as u64,
            tbl8_limit: fib.tbl8_capacity() as u64,
            mempool: p.mempool,
            worker_cores: p.cfg.workers.iter().map(|w| w.core).collect(),
            tsc_hz: p.tsc_hz,
        });
    }
}

/// The vendor's scale: 1 healthy, 0.5 degraded, 0 down.
pub fn health_value(h: Health) -> f64 {
    match h {
        Health::Healthy => 1.0,
        Health::Degraded => 0.5,
        Health::Down => 0.0,
    }
}

/// Routes in the RIB by (source, origin), every pair listed (zeros included).
fn count_routes(rib: &Rib) -> RouteCounts {
    use crate::config::RouteOrigin;
    let mut n = [[0u64; 2]; 2];
    for r in rib.routes() {
        let s = match r.source {
            RouteSource::Static => 0,
            RouteSource::Bgp => 1,
        };
        let o = match r.origin {
            RouteOrigin::Config => 0,
            RouteOrigin::Ctl => 1,
        };
        n[s][o] += 1;
    }
    let mut out = Vec::new();
    for (s, source) in ["static", "bgp"].into_iter().enumerate() {
        for (o, origin) in [RouteOrigin::Config, RouteOrigin::Ctl]
            .into_iter()
            .enumerate()
        {
            out.push((source, origin.name(), n[s][o]));
        }
    }
    out
}
