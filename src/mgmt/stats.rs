//! Summing per-worker counters and printing them, as text or one JSON object per report.
use crate::config::Config;
use crate::config::Health;
use crate::datapath::{Counters, DropReason, LoopHistogram};
use crate::dpdk::PortStats;
use crate::health::checker::View;
use serde_json::{json, Map, Value};

pub struct Report<'a> {
    pub cfg: &'a Config,
    pub counters: Counters,
    pub nic: Vec<PortStats>,
    pub uptime_s: f64,
    pub generation: u64,
    pub mempool: Option<(u32, u32)>,
    pub tsc_hz: u64,
    pub final_report: bool,
    /// The drivers' non-zero extended statistics per port (final report only).
    pub xstats: Vec<Vec<(String, u64)>>,
    /// TSC cycles per busy loop, all workers (final report only).
    pub latency: Option<LoopHistogram>,
    /// Each tunnel's health (by position in `cfg.tunnels`) and what its checks report.
    pub health: Vec<(Option<Health>, Option<View>)>,
}

/// Busy-loop percentiles in cycles: exact (the workers' merged histograms, final stats) or
/// from the live loop buckets (within 1/8 above the exact figure; no max).
pub struct LoopCycles {
    pub samples: u64,
    pub p: [u64; 3],
    pub max: Option<u64>,
}

impl LoopCycles {
    /// From published loop buckets (one worker's or a sum).
    pub fn from_buckets(b: &[u64]) -> Option<LoopCycles> {
        Some(LoopCycles {
            samples: b.iter().sum(),
            p: crate::datapath::loop_buckets::percentiles(b)?,
            max: None,
        })
    }
}

impl Report<'_> {
    /// The final histogram when there is one, else the live buckets.
    pub fn loop_cycles(&self) -> Option<LoopCycles> {
        match self.latency.as_ref().filter(|l| !l.is_empty()) {
            Some(l) => Some(LoopCycles {
                samples: l.len(),
                p: [0.5, 0.99, 0.999].map(|q| l.value_at_quantile(q)),
                max: Some(l.max()),
            }),
            None => LoopCycles::from_buckets(&self.counters.loop_buckets),
        }
    }

    pub fn cycles_per_packet(&self) -> Option<f64> {
        let pkts = self.counters.rx_total();
        (pkts > 0).then(|| self.counters.busy_cycles as f64 / pkts as f64)
    }

    pub fn to_json(&self) -> Value {
        let c = &self.counters;
        let ports: Vec<Value> = self
            .cfg
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let nic = self.nic.get(i).copied().unwrap_or_default();
                json!({
                    "name": p.name,
                    "rx_packets": c.rx_packets[i], "rx_bytes": c.rx_bytes[i],
                    "tx_packets": c.tx_packets[i], "tx_bytes": c.tx_bytes[i],
                    "nic": nic_json(&nic),
                    "xstats": self.xstats.get(i).map(|x| {
                        x.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<String, Value>>()
                    }).unwrap_or_default(),
                })
            })
            .collect();
        let drops: Map<String, Value> = DropReason::ALL
            .iter()
            .map(|r| (r.name().to_owned(), json!(c.drops[*r as usize])))
            .collect();
        let mut v = json!({
            "event": "stats",
            "final": self.final_report,
            "uptime_s": (self.uptime_s * 1000.0).round() / 1000.0,
            "generation": self.generation,
            "ports": ports,
            "drops": drops,
            "rx_total": c.rx_total(),
            "tx_total": c.tx_total(),
            "drop_total": c.drop_total(),
            "originated": c.originated,
            "arp_replies": c.arp_replies,
            "arp_learned": c.arp_learned,
            "icmp_errors": c.icmp_errors,
            "icmp_rate_limited": c.icmp_rate_limited,
            "mss_clamped": c.mss_clamped,
            "health_probe": c.health_probe,
            "probes_injected": c.probes_injected,
            "inject_stale": c.inject_stale,
            "inject_no_mbuf": c.inject_no_mbuf,
            "probe_ring_full": c.probe_ring_full,
            "tunnels": self.tunnels_json(),
            "firewall": {
                "rules": self.cfg.raw.firewall.rules.iter().zip(&c.rules)
                    .map(|(r, n)| json!({"description": r.description, "packets": n[0], "bytes": n[1]}))
                    .collect::<Vec<_>>(),
                "default": {"packets": c.firewall_default[0], "bytes": c.firewall_default[1]},
            },
            "busy_loops": c.busy_loops,
            "busy_cycles": c.busy_cycles,
            "tsc_hz": self.tsc_hz,
        });
        // Both always present (schema 1 removes no key): null while nothing was measured
        // (no busy loop, no packet received since start or `clear counters`).
        v["loop_cycles"] = Value::Null;
        if let Some(l) = self.loop_cycles() {
            v["loop_cycles"] = json!({
                "samples": l.samples, "p50": l.p[0], "p99": l.p[1], "p99_9": l.p[2],
            });
            if let Some(max) = l.max {
                v["loop_cycles"]["max"] = json!(max);
            }
        }
        v["cycles_per_packet"] = json!(self
            .cycles_per_packet()
            .map(|cpp| (cpp * 10.0).round() / 10.0));
        if self.cfg.tunnels.iter().any(|t| t.arr) {
            v["arr"] = json!({"learned": c.arr_learned, "refreshed": c.arr_refreshed,
                              "refused": c.arr_refused, "returned": c.arr_returned});
        }
        if let Some(p) = self.cfg.punt.enabled.then_some(self.cfg.ports.len()) {
            // The exception port is not one of `ports`: its traffic is here (and in the totals).
            v["punt"] = json!({"punted": c.punted, "rx_packets": c.rx_packets.get(p),
                               "tx_packets": c.tx_packets.get(p)});
        }
        if let Some((size, avail)) = self.mempool {
            v["mempool"] = json!({ "size": size, "available": avail });
        }
        v
    }

    /// Per-tunnel traffic, the analogue of the vendor's tunnel bandwidth analytics: packets
    /// and bytes decapsulated (rx) and encapsulated (tx), and drops by reason.
    fn tunnels_json(&self) -> Value {
        let c = &self.counters;
        let list: Vec<Value> = self
            .cfg
            .tunnels
            .iter()
            .zip(&c.tunnels)
            .enumerate()
            .map(|(i, (t, tc))| {
                let drops: Map<String, Value> = DropReason::ALL
                    .iter()
                    .filter(|r| tc.drops[**r as usize] > 0)
                    .map(|r| (r.name().to_owned(), json!(tc.drops[*r as usize])))
                    .collect();
                let (health, view) = self.health.get(i).cloned().unwrap_or_default();
                let mut v = json!({
                    "name": t.name,
                    "rx_packets": tc.rx_packets, "rx_bytes": tc.rx_bytes,
                    "tx_packets": tc.tx_packets, "tx_bytes": tc.tx_bytes,
                    "drops": drops,
                    "health": health.map(Health::name),
                });
                if let (Some(h), Value::Object(m)) = (view, &mut v) {
                    m.extend(h.fields());
                }
                if t.arr {
                    v["arr"] = json!({"learned": tc.arr_learned, "refused": tc.arr_refused,
                                      "returned": tc.arr_returned});
                }
                v
            })
            .collect();
        json!(list)
    }

    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let c = &self.counters;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} at {:.1}s, table generation {}:",
            if self.final_report {
                "final stats"
            } else {
                "stats"
            },
            self.uptime_s,
            self.generation
        );
        for (i, p) in self.cfg.ports.iter().enumerate() {
            let nic = self.nic.get(i).copied().unwrap_or_default();
            let _ = writeln!(
                s,
                "  port {:<10} rx {:>12} pkts {:>14} B   tx {:>12} pkts {:>14} B   nic missed {} errors {}/{} nombuf {}",
                p.name, c.rx_packets[i], c.rx_bytes[i], c.tx_packets[i], c.tx_bytes[i],
                nic.imissed, nic.ierrors, nic.oerrors, nic.rx_nombuf
            );
        }
        if self.cfg.punt.enabled {
            let p = self.cfg.ports.len();
            let _ = writeln!(
                s,
                "  punt {:<10} rx {:>12} pkts (from the kernel)   tx {:>12} pkts   punted {}",
                self.cfg.punt.interface, c.rx_packets[p], c.tx_packets[p], c.punted
            );
        }
        let _ = writeln!(
            s,
            "  total    rx {}  tx {}  dropped {}  originated {}  (arp replies {}, learned {})",
            c.rx_total(),
            c.tx_total(),
            c.drop_total(),
            c.originated,
            c.arp_replies,
            c.arp_learned
        );
        for (i, (t, tc)) in self.cfg.tunnels.iter().zip(&c.tunnels).enumerate() {
            let _ = writeln!(
                s,
                "  tunnel {:<15} decap {:>12} pkts {:>14} B   encap {:>12} pkts {:>14} B   dropped {}",
                t.name, tc.rx_packets, tc.rx_bytes, tc.tx_packets, tc.tx_bytes, tc.drop_total()
            );
            if let Some((Some(h), Some(v))) = self.health.get(i) {
                let _ = writeln!(s, "         {:<15} {}", "", health_line(*h, v));
            }
            if t.arr {
                let _ = writeln!(
                    s,
                    "         {:<15} arr learned {} refused {} returned {}",
                    "", tc.arr_learned, tc.arr_refused, tc.arr_returned
                );
            }
        }
        if c.icmp_errors + c.icmp_rate_limited + c.mss_clamped > 0 {
            let _ = writeln!(
                s,
                "  icmp errors sent {} (rate-limited {}), mss clamped {}",
                c.icmp_errors, c.icmp_rate_limited, c.mss_clamped
            );
        }
        if c.probes_injected + c.inject_stale + c.inject_no_mbuf + c.health_probe > 0 {
            let _ = writeln!(
                s,
                "  health probes injected {} (stale {}, no mbuf {}), answers consumed {} \
                 (records lost to a full ring {})",
                c.probes_injected,
                c.inject_stale,
                c.inject_no_mbuf,
                c.health_probe,
                c.probe_ring_full
            );
        }
        for r in DropReason::ALL {
            let n = c.drops[*r as usize];
            if n > 0 {
                let _ = writeln!(s, "  drop {:<22} {:>12}   {}", r.name(), n, r.description());
            }
        }
        if let Some(cpp) = self.cycles_per_packet() {
            let _ = writeln!(s, "  {cpp:.1} TSC cycles per packet (busy loops only)");
        }
        if let Some(l) = self.loop_cycles() {
            let us = |c: u64| c as f64 * 1e6 / self.tsc_hz.max(1) as f64;
            let [p50, p99, p999] = l.p;
            let _ = writeln!(
                s,
                "  busy loop (a burst received, processed, sent): p50 {p50} / p99 {p99} / p99.9 \
                 {p999} cycles ({:.2} / {:.2} / {:.2} us), {} loops",
                us(p50),
                us(p99),
                us(p999),
                l.samples
            );
        }
        if let Some((size, avail)) = self.mempool {
            let _ = writeln!(s, "  mempool {avail}/{size} mbufs free");
        }
        s
    }
}

/// A port's NIC counters (`rte_eth_stats`) under their stable names.
pub fn nic_json(nic: &PortStats) -> Value {
    json!({
        "ipackets": nic.ipackets, "opackets": nic.opackets,
        "ibytes": nic.ibytes, "obytes": nic.obytes,
        "imissed": nic.imissed, "ierrors": nic.ierrors,
        "oerrors": nic.oerrors, "rx_nombuf": nic.rx_nombuf,
    })
}

/// One tunnel's health as `show tunnels` and the text stats print it.
pub fn health_line(h: Health, v: &View) -> String {
    let rtt = v.rtt_us.map_or("-".into(), |r| format!("{r} us"));
    format!(
        "{} ({}, {:.1} s)  probes sent {} answered {} lost {}  rtt {rtt}  loss 5m {:.2}%",
        h.name(),
        v.source.name(),
        v.since_s,
        v.sent,
        v.answered,
        v.lost,
        v.figures.loss_5m() * 100.0
    )
}

/// Live counters for the views (`ctl show stats`, `show tunnels`, `show firewall`) and
/// anything else that reads them while the workers run: read from the seqlock snapshots by
/// the management thread, never waiting on a worker.
pub mod live {
    use crate::config::Config;
    use crate::datapath::{Counters, SharedCounters};
    use crate::route::Snapshot;
    use std::time::SystemTime;

    /// The counters as a `clear counters` found them: raw per worker, and by position with
    /// the identity of each tunnel and rule, so that a reload that moves or replaces items
    /// keeps each item's own baseline (a new item counts from zero).
    #[derive(Debug, Clone)]
    pub struct Baseline {
        pub at: SystemTime,
        total: Counters,
        tunnels: Vec<String>,
        rules: Vec<String>,
        workers: Vec<Counters>,
    }

    /// What identifies each rule's counters across reloads (as `counter_slots` does).
    fn rule_keys(cfg: &Config) -> Vec<String> {
        let rules = cfg.raw.firewall.rules.iter();
        rules
            .map(|r| format!("{:?}", (&r.id, &r.phase, &r.action, &r.expression)))
            .collect()
    }

    impl Baseline {
        pub fn take(cfg: &Config, snap: &Snapshot, shared: &SharedCounters) -> Baseline {
            let workers = per_worker(shared);
            let mut raw = Counters::default();
            for w in &workers {
                raw.add(w);
            }
            Baseline {
                at: SystemTime::now(),
                total: snap.counters_of(&raw),
                tunnels: cfg.tunnels.iter().map(|t| t.name.clone()).collect(),
                rules: rule_keys(cfg),
                workers,
            }
        }

        /// This baseline laid out for `cfg`'s tunnels and rules (zero for items it lacks).
        fn for_config(&self, cfg: &Config) -> Counters {
            let mut b = self.total.clone();
            b.tunnels.fill(Default::default());
            b.rules.fill([0; 2]);
            for (i, t) in cfg.tunnels.iter().enumerate() {
                if let Some(j) = self.tunnels.iter().position(|n| *n == t.name) {
                    b.tunnels[i] = self.total.tunnels[j];
                }
            }
            for (i, r) in rule_keys(cfg).iter().enumerate() {
                if let Some(j) = self.rules.iter().position(|k| k == r) {
                    b.rules[i] = self.total.rules[j];
                }
            }
            b
        }
    }

    /// Each worker's raw counters (by counter slot).
    pub fn per_worker(shared: &SharedCounters) -> Vec<Counters> {
        (0..shared.workers()).map(|w| shared.read(w)).collect()
    }

    /// Live counters since `base` (everything, without one).
    pub struct Live {
        /// Summed over the workers, tunnels and rules by position in `cfg`.
        pub total: Counters,
        /// Per worker, raw: ports, drops, busy loops and cycles are what matter here.
        pub workers: Vec<Counters>,
    }

    pub fn read(
        cfg: &Config,
        snap: &Snapshot,
        shared: &SharedCounters,
        base: Option<&Baseline>,
    ) -> Live {
        let mut workers = per_worker(shared);
        let mut raw = Counters::default();
        for w in &workers {
            raw.add(w);
        }
        let mut total = snap.counters_of(&raw);
        if let Some(b) = base {
            total = total.since(&b.for_config(cfg));
            for (w, bw) in workers.iter_mut().zip(&b.workers) {
                *w = w.since(bw);
            }
        }
        Live { total, workers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Host};
    use crate::datapath::SharedCounters;
    use crate::health::checker::Checker;
    use crate::route::Snapshot;

    #[test]
    fn each_tunnel_carries_its_health_figures_in_json_and_text() {
        let text = r#"
[[ports]]
name = "wan0"
device = "net_null0"
mac = "02:00:00:00:00:01"
address = "192.0.2.1/24"

[[workers]]
core = 1
rx = [{ port = "wan0" }]

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[node]
anycast_addresses = ["203.0.113.10"]

[[tunnels]]
name = "T1"
type = "gre"
customer_endpoint = "198.51.100.1"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"
health = "degraded"
health_check = { rate = "high" }
"#;
        let cfg = parse(text, &Host { cores: vec![0, 1] }).unwrap();
        let macs: Vec<_> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
        let snap = Snapshot::build(&cfg, &macs, 1, None).unwrap();
        let mut checker = Checker::new(1_000_000_000, 0);
        checker.sync(&cfg, &snap, 0);
        let r = Report {
            cfg: &cfg,
            counters: snap.counters(&SharedCounters::new(1)),
            nic: Vec::new(),
            uptime_s: 1.0,
            generation: 1,
            mempool: None,
            tsc_hz: 1_000_000_000,
            final_report: false,
            xstats: Vec::new(),
            latency: None,
            health: vec![(Some(snap.health[0]), checker.view("T1", 2_500_000_000))],
        };
        let t = &r.to_json()["tunnels"][0];
        assert_eq!(t["health"], "degraded", "the config's starting health");
        assert_eq!(t["health_source"], "auto");
        assert_eq!(t["probes_sent"], 0);
        assert_eq!(t["since"], 2.5);
        assert_eq!(t["health_check"]["rate"], "high");
        assert_eq!(t["health_check"]["interval_ms"], 1000);
        let text = r.to_text();
        assert!(
            text.contains(
                "degraded (auto, 2.5 s)  probes sent 0 answered 0 lost 0  rtt -  loss 5m 0.00%"
            ),
            "{text}"
        );
    }
}
