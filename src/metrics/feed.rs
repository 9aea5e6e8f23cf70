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
                        .filter(|v| v.check.enabled)
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
            route_sets: p.snap.sets.len() as u64,
            route_sets_limit: crate::limits::MAX_ROUTE_SETS as u64,
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
    let mut n = [[0u64; 3]; 2];
    for r in rib.routes() {
        let s = match r.source {
            RouteSource::Static => 0,
            RouteSource::Bgp => 1,
        };
        let o = match r.origin {
            RouteOrigin::Config => 0,
            RouteOrigin::Ctl => 1,
            RouteOrigin::Bgp => 2,
        };
        n[s][o] += 1;
    }
    let mut out = Vec::new();
    for (s, source) in ["static", "bgp"].into_iter().enumerate() {
        for (o, origin) in [RouteOrigin::Config, RouteOrigin::Ctl, RouteOrigin::Bgp]
            .into_iter()
            .enumerate()
        {
            out.push((source, origin.name(), n[s][o]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Host};
    use crate::datapath::SharedCounters;

    const CFG: &str = r#"
[[ports]]
name = "wan0"
device = "net_null0"
mac = "02:00:00:00:00:01"
address = "192.0.2.1/24"

[[workers]]
core = 1
rx = [{ port = "wan0" }]

[node]
anycast_addresses = ["203.0.113.10"]

[[tunnels]]
name = "T1"
type = "gre"
customer_endpoint = "198.51.100.1"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"
health = "degraded"

[[tunnels]]
name = "T2"
type = "gre"
customer_endpoint = "198.51.100.2"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.2/31"
health = "down"
health_check = { enabled = false }

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[[routes]]
prefix = "10.1.0.0/16"
nexthop = "T1"
source = "bgp"

[[routes]]
prefix = "10.2.0.0/24"
nexthop = "T2"

[firewall]
rules = [
  { id = "web", expression = "tcp.dstport eq 80", action = "allow" },
  { expression = "udp", action = "block" },
]
"#;

    #[test]
    fn a_publish_carries_what_only_the_management_thread_knows() {
        let cfg = parse(CFG, &Host { cores: vec![0, 1] }).unwrap();
        let macs: Vec<_> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
        let (snap, rib) = Snapshot::build_with_rib(&cfg, &macs, 4, None).unwrap();
        let checker = {
            let mut c = Checker::new(1_000_000_000, 0);
            c.sync(&cfg, &snap, 0);
            c
        };
        let shared = Arc::new(Shared::new(
            Arc::new(SharedCounters::new(1)),
            Instant::now(),
        ));
        let mut feed = Feed::new(shared.clone());
        assert!(feed.due(), "the first publish is due at once");
        assert!(shared.view().is_none());
        feed.publish(Parts {
            cfg: &cfg,
            snap: &snap,
            rib: &rib,
            checker: &checker,
            nic: vec![PortStats {
                imissed: 3,
                ..Default::default()
            }],
            mempool: (4095, 4000),
            tsc_hz: 1_000_000_000,
            now_tsc: 0,
        });
        assert!(!feed.due(), "then not before {INTERVAL:?}");
        let v = shared.view().unwrap();
        assert_eq!(v.generation, 4);
        assert_eq!((v.ports[0].0.as_str(), v.ports[0].1.imissed), ("wan0", 3));
        let t: Vec<_> = v
            .tunnels
            .iter()
            .map(|t| (t.name.as_str(), t.health, t.probes.is_some()))
            .collect();
        assert_eq!(
            t,
            [("T1", Some(0.5), true), ("T2", Some(0.0), false)],
            "health on the vendor's scale; probe figures for checked tunnels only"
        );
        assert_eq!(v.rules, ["web", "1"], "the id, else the position");
        assert_eq!(
            v.routes,
            [
                ("static", "config", 2),
                ("static", "ctl", 0),
                ("static", "bgp", 0),
                ("bgp", "config", 1),
                ("bgp", "ctl", 0),
                ("bgp", "bgp", 0)
            ]
        );
        assert!(v.tbl8_limit > 0 && v.tbl8_used <= v.tbl8_limit);
        assert_eq!(v.route_sets, snap.sets.len() as u64);
        assert_eq!(v.route_sets_limit, 32_765);
        assert_eq!(v.fib_prefixes, snap.fib.len() as u64);
        assert_eq!(
            (v.mempool, v.worker_cores.as_slice()),
            ((4095, 4000), &[1][..])
        );
    }

    #[test]
    fn health_on_the_vendors_scale() {
        assert_eq!(health_value(Health::Healthy), 1.0);
        assert_eq!(health_value(Health::Degraded), 0.5);
        assert_eq!(health_value(Health::Down), 0.0);
    }
}
