//! The `/metrics` body in the Prometheus text format (0.0.4), written by `prometheus-client`:
//! a collector reads the worker counters and the management view once per scrape. Names
//! are `anygate_` plus a base-unit name; counters get `_total` from the encoder.
use super::view::{MgmtView, Shared};
use crate::datapath::{Counters, DropReason};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::Arc;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

type Labels = Vec<(&'static str, String)>;

/// Everything one scrape reports, read before encoding.
#[derive(Debug)]
struct Scrape {
    /// Totals over workers, rules and tunnels by position in the running config.
    total: Counters,
    /// Each worker's own counters (for its cycles).
    workers: Vec<Counters>,
    view: Arc<MgmtView>,
    uptime_s: f64,
}

/// The exposition for the current counters; None before the management thread's first
/// view (the endpoint answers 503 then).
pub fn render(shared: &Shared) -> Option<String> {
    let view = shared.view()?;
    // Before the counters: a report of the stats made before this uptime counted no more.
    let uptime_s = shared.started.elapsed().as_secs_f64();
    let raw = shared.counters.total();
    let scrape = Scrape {
        total: view.slots.by_position(&raw),
        workers: (0..shared.counters.workers())
            .map(|w| shared.counters.read(w))
            .collect(),
        view,
        uptime_s,
    };
    let mut registry = Registry::with_prefix("anygate");
    registry.register_collector(Box::new(scrape));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).ok()?;
    Some(out)
}

/// One family: its descriptor, then a sample per label set.
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, M)>,
) -> Result<(), std::fmt::Error> {
    let samples: Vec<(Labels, M)> = samples.into_iter().collect();
    let Some(first) = samples.first() else {
        return Ok(());
    };
    let ty: MetricType = first.1.metric_type();
    let mut d = enc.encode_descriptor(name, help, None, ty)?;
    if let [(labels, m)] = &samples[..] {
        if labels.is_empty() {
            return m.encode(d);
        }
    }
    for (labels, m) in &samples {
        m.encode(d.encode_family(labels)?)?;
    }
    Ok(())
}

/// One worker's busy loops as a Prometheus histogram in seconds, from its published loop
/// buckets merged into buckets at 2^6 .. 2^26 TSC cycles (each `le` counts the loops under
/// that many cycles) and +Inf.
#[derive(Debug)]
struct LoopSeconds {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl LoopSeconds {
    const FIRST: u32 = 6;
    const LAST: u32 = 26;

    fn new(c: &Counters, hz: f64) -> Self {
        use crate::datapath::loop_buckets::{lower, LOOP_BUCKETS};
        let mut buckets: Vec<(f64, u64)> = (Self::FIRST..=Self::LAST)
            .map(|k| ((1u64 << k) as f64 / hz, 0))
            .chain([(f64::INFINITY, 0)])
            .collect();
        for (i, n) in c.loop_buckets.iter().enumerate().take(LOOP_BUCKETS) {
            // Fine buckets never straddle a power of two: the first coarse one above holds it.
            let k = (64 - lower(i).leading_zeros()).max(Self::FIRST);
            let j = ((k - Self::FIRST) as usize).min(buckets.len() - 1);
            buckets[j].1 += n;
        }
        LoopSeconds {
            sum: c.loop_buckets_cycles as f64 / hz,
            count: c.loop_buckets.iter().sum(),
            buckets,
        }
    }
}

impl EncodeMetric for LoopSeconds {
    fn encode(&self, mut enc: prometheus_client::encoding::MetricEncoder) -> std::fmt::Result {
        enc.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.sum,
            self.count,
            &self.buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn counter(labels: Labels, v: u64) -> (Labels, ConstCounter<u64>) {
    (labels, ConstCounter::new(v))
}

fn gauge<N>(labels: Labels, v: N) -> (Labels, ConstGauge<N>) {
    (labels, ConstGauge::new(v))
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (c, v) = (&self.total, &*self.view);
        let port = |i: usize| vec![("port", v.ports[i].0.clone())];
        let ports = 0..v.ports.len();
        type PortField = (&'static str, &'static str, fn(&Counters, usize) -> u64);
        let port_fields: [PortField; 4] = [
            (
                "port_rx_packets",
                "Packets received by the workers on the port.",
                |c, i| c.rx_packets[i],
            ),
            (
                "port_rx_bytes",
                "Bytes received by the workers on the port.",
                |c, i| c.rx_bytes[i],
            ),
            (
                "port_tx_packets",
                "Packets sent by the workers on the port.",
                |c, i| c.tx_packets[i],
            ),
            (
                "port_tx_bytes",
                "Bytes sent by the workers on the port.",
                |c, i| c.tx_bytes[i],
            ),
        ];
        for (name, help, f) in port_fields {
            family(
                &mut e,
                name,
                help,
                ports.clone().map(|i| counter(port(i), f(c, i))),
            )?;
        }
        type NicField = (
            &'static str,
            &'static str,
            fn(&crate::dpdk::PortStats) -> u64,
        );
        let nic_fields: [NicField; 4] = [
            (
                "port_nic_rx_missed_packets",
                "Packets the NIC dropped for want of rx descriptors (imissed).",
                |s| s.imissed,
            ),
            (
                "port_nic_rx_errors",
                "Erroneous packets the NIC received (ierrors).",
                |s| s.ierrors,
            ),
            (
                "port_nic_tx_errors",
                "Packets the NIC failed to send (oerrors).",
                |s| s.oerrors,
            ),
            (
                "port_nic_rx_nombuf",
                "Receive failures for want of an mbuf (rx_nombuf).",
                |s| s.rx_nombuf,
            ),
        ];
        for (name, help, f) in nic_fields {
            family(
                &mut e,
                name,
                help,
                v.ports
                    .iter()
                    .enumerate()
                    .map(|(i, p)| counter(port(i), f(&p.1))),
            )?;
        }
        family(
            &mut e,
            "drops",
            "Packets dropped, by reason (every reason, zero included).",
            DropReason::ALL
                .iter()
                .map(|r| counter(vec![("reason", r.name().into())], c.drops[*r as usize])),
        )?;
        let scalars: [(&str, &str, u64); 12] = [
            (
                "originated_packets",
                "Packets anygate made itself (ARP, ICMP errors, probes), also in tx.",
                c.originated,
            ),
            ("arp_replies", "ARP replies sent.", c.arp_replies),
            ("arp_learned", "ARP entries learned.", c.arp_learned),
            ("icmp_errors", "ICMP errors sent.", c.icmp_errors),
            (
                "icmp_rate_limited",
                "ICMP errors not sent because of the rate limit.",
                c.icmp_rate_limited,
            ),
            (
                "mss_clamped",
                "TCP SYNs whose MSS was clamped.",
                c.mss_clamped,
            ),
            (
                "health_probe_consumed",
                "Health probe answers recognised and consumed (health_probe).",
                c.health_probe,
            ),
            (
                "probes_injected",
                "Health probes sent from the inject rings.",
                c.probes_injected,
            ),
            (
                "probes_inject_stale",
                "Probes not sent: built for another table generation.",
                c.inject_stale,
            ),
            (
                "probes_inject_no_mbuf",
                "Probes not sent: no mbuf was free.",
                c.inject_no_mbuf,
            ),
            (
                "probe_ring_full",
                "Probe answers whose record was lost to a full answer ring.",
                c.probe_ring_full,
            ),
            (
                "punted_packets",
                "Packets for our own addresses sent to the kernel through the exception port ([punt]).",
                c.punted,
            ),
        ];
        for (name, help, n) in scalars {
            family(&mut e, name, help, [counter(vec![], n)])?;
        }
        self.tunnels(&mut e)?;
        self.firewall(&mut e)?;
        self.workers(&mut e)?;
        self.table(&mut e)
    }
}

impl Scrape {
    fn tunnels(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (c, v) = (&self.total, &*self.view);
        let t = |i: usize| vec![("tunnel", v.tunnels[i].name.clone())];
        let tc = |i: usize| c.tunnels.get(i).copied().unwrap_or_default();
        let n = 0..v.tunnels.len();
        type Field = (
            &'static str,
            &'static str,
            fn(&crate::datapath::TunnelCounters) -> u64,
        );
        let fields: [Field; 4] = [
            (
                "tunnel_rx_packets",
                "Packets decapsulated from the tunnel.",
                |t| t.rx_packets,
            ),
            (
                "tunnel_rx_bytes",
                "Bytes decapsulated from the tunnel (outer packets).",
                |t| t.rx_bytes,
            ),
            (
                "tunnel_tx_packets",
                "Packets encapsulated into the tunnel.",
                |t| t.tx_packets,
            ),
            (
                "tunnel_tx_bytes",
                "Bytes encapsulated into the tunnel (outer packets).",
                |t| t.tx_bytes,
            ),
        ];
        for (name, help, f) in fields {
            family(e, name, help, n.clone().map(|i| counter(t(i), f(&tc(i)))))?;
        }
        family(
            e,
            "tunnel_drops",
            "Packets dropped after the tunnel was identified or chosen, by reason (non-zero only).",
            n.clone().flat_map(|i| {
                let d = tc(i).drops;
                DropReason::ALL
                    .iter()
                    .filter(move |r| d[**r as usize] > 0)
                    .map(move |r| {
                        let mut l = t(i);
                        l.push(("reason", r.name().into()));
                        counter(l, d[*r as usize])
                    })
            }),
        )?;
        family(
            e,
            "tunnel_health",
            "Tunnel health on the vendor's scale: 1 healthy, 0.5 degraded, 0 down.",
            n.clone()
                .filter_map(|i| v.tunnels[i].health.map(|h| gauge(t(i), h))),
        )?;
        for (k, (name, help)) in [
            ("tunnel_probes_sent", "Health probes sent into the tunnel."),
            ("tunnel_probes_answered", "Health probes answered in time."),
            ("tunnel_probes_lost", "Health probes that timed out."),
        ]
        .into_iter()
        .enumerate()
        {
            family(
                e,
                name,
                help,
                n.clone()
                    .filter_map(|i| v.tunnels[i].probes.map(|p| counter(t(i), p[k]))),
            )?;
        }
        Ok(())
    }

    fn firewall(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (c, v) = (&self.total, &*self.view);
        for (k, (name, help)) in [
            (
                "firewall_rule_packets",
                "Packets decided by the rule (label: its id, else its position).",
            ),
            ("firewall_rule_bytes", "Bytes decided by the rule."),
        ]
        .into_iter()
        .enumerate()
        {
            family(
                e,
                name,
                help,
                v.rules.iter().enumerate().map(|(i, r)| {
                    counter(
                        vec![("rule", r.clone())],
                        c.rules.get(i).map_or(0, |x| x[k]),
                    )
                }),
            )?;
        }
        family(
            e,
            "firewall_default_packets",
            "Packets decided by the firewall's default action.",
            [counter(vec![], c.firewall_default[0])],
        )?;
        family(
            e,
            "firewall_default_bytes",
            "Bytes decided by the firewall's default action.",
            [counter(vec![], c.firewall_default[1])],
        )
    }

    fn workers(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let v = &*self.view;
        let hz = v.tsc_hz.max(1) as f64;
        let w = |i: usize| {
            let core = v
                .worker_cores
                .get(i)
                .map_or(String::new(), |c| c.to_string());
            vec![("worker", i.to_string()), ("core", core)]
        };
        let ws = || self.workers.iter().enumerate();
        family(
            e,
            "worker_busy_loops",
            "Poll loops that received packets.",
            ws().map(|(i, c)| counter(w(i), c.busy_loops)),
        )?;
        family(
            e,
            "worker_busy_cycles",
            "TSC cycles spent in loops that received packets.",
            ws().map(|(i, c)| counter(w(i), c.busy_cycles)),
        )?;
        let busy = |c: &Counters| c.busy_cycles as f64 / hz;
        family(
            e,
            "worker_busy_seconds",
            "Seconds spent in loops that received packets.",
            ws().map(|(i, c)| (w(i), ConstCounter::new(busy(c)))),
        )?;
        family(
            e,
            "worker_idle_seconds",
            "Seconds since start not spent in busy loops (polling empty queues).",
            ws().map(|(i, c)| (w(i), ConstCounter::new((self.uptime_s - busy(c)).max(0.0)))),
        )?;
        family(
            e,
            "worker_busy_loop_seconds",
            "Duration of busy loops (refreshed about once a second); buckets at powers of two \
             TSC cycles.",
            ws().map(|(i, c)| (w(i), LoopSeconds::new(c, hz))),
        )
    }

    fn table(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let v = &*self.view;
        family(
            e,
            "routes",
            "Routes in the RIB, by source (static, bgp) and origin (config, ctl).",
            v.routes.iter().map(|(s, o, n)| {
                gauge(
                    vec![("source", (*s).into()), ("origin", (*o).into())],
                    *n as i64,
                )
            }),
        )?;
        let g: [(&str, &str, i64); 9] = [
            (
                "fib_prefixes",
                "Distinct prefixes in the forwarding table.",
                v.fib_prefixes as i64,
            ),
            (
                "tbl8_groups_used",
                "DIR-24-8 tbl8 groups in use.",
                v.tbl8_used as i64,
            ),
            (
                "tbl8_groups_limit",
                "DIR-24-8 tbl8 groups the table can hold.",
                v.tbl8_limit as i64,
            ),
            (
                "route_sets",
                "Route-set ids held: distinct next-hop lists, including those withdrawn routes left until the next rebuild.",
                v.route_sets as i64,
            ),
            (
                "route_sets_limit",
                "Route-set ids the 2-byte FIB entry allows; past it a change renumbers the live sets by a rebuild.",
                v.route_sets_limit as i64,
            ),
            (
                "mempool_mbufs_free",
                "Mbufs free in the pool.",
                v.mempool.1 as i64,
            ),
            (
                "mempool_mbufs_size",
                "Mbufs in the pool.",
                v.mempool.0 as i64,
            ),
            (
                "table_generation",
                "Generation of the running table (one more per publish).",
                v.generation as i64,
            ),
            ("workers", "Worker threads.", self.workers.len() as i64),
        ];
        for (name, help, n) in g {
            family(e, name, help, [gauge(vec![], n)])?;
        }
        family(
            e,
            "uptime_seconds",
            "Seconds since the management loop started.",
            [gauge(vec![], self.uptime_s)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::SharedCounters;
    use crate::dpdk::PortStats;
    use crate::metrics::TunnelView;
    use std::time::Instant;

    fn shared() -> Shared {
        let counters = Arc::new(SharedCounters::new(2));
        let mut c = Counters::default();
        c.rx_packets[0] = 7;
        c.rx_bytes[0] = 700;
        c.drops[DropReason::NoRoute as usize] = 3;
        c.busy_cycles = 2_000;
        c.busy_loops = 4;
        // Three loops of 100 cycles and one of 1,000 (the clock is 1 kHz: 0.1 s and 1 s).
        c.loop_buckets[crate::datapath::loop_buckets::index(100)] = 3;
        c.loop_buckets[crate::datapath::loop_buckets::index(1_000)] = 1;
        c.loop_buckets_cycles = 1_300;
        c.health_probe = 5;
        c.tunnels[0].rx_packets = 2;
        c.tunnels[0].drops[DropReason::NoRoute as usize] = 1;
        c.rules[1] = [9, 900];
        counters.publish(0, &mut c);
        counters.publish(1, &mut c);
        let s = Shared::new(counters, Instant::now());
        s.publish(MgmtView {
            generation: 3,
            ports: vec![(
                "wan0".into(),
                PortStats {
                    imissed: 11,
                    ..Default::default()
                },
            )],
            tunnels: vec![TunnelView {
                name: "T1".into(),
                health: Some(0.5),
                probes: Some([10, 8, 2]),
            }],
            rules: vec!["allow-bgp".into(), "1".into()],
            routes: vec![("static", "config", 2), ("bgp", "ctl", 0)],
            mempool: (4096, 4000),
            worker_cores: vec![1, 2],
            tsc_hz: 1_000,
            slots: Arc::new(
                crate::datapath::CounterSlots::default()
                    .next(&["allow-bgp", "1"], &["T1"], 1, 0, None)
                    .unwrap(),
            ),
            ..Default::default()
        });
        s
    }

    #[test]
    fn nothing_before_the_first_view() {
        let s = Shared::new(Arc::new(SharedCounters::new(1)), Instant::now());
        assert_eq!(render(&s), None);
    }

    #[test]
    fn families_carry_the_figures_under_conventional_names() {
        let out = render(&shared()).unwrap();
        for line in [
            "# TYPE anygate_port_rx_packets_total counter",
            "anygate_port_rx_packets_total{port=\"wan0\"} 14",
            "anygate_port_rx_bytes_total{port=\"wan0\"} 1400",
            "anygate_port_nic_rx_missed_packets_total{port=\"wan0\"} 11",
            "anygate_drops_total{reason=\"no_route\"} 6",
            "anygate_drops_total{reason=\"ttl_exceeded\"} 0",
            "anygate_health_probe_consumed_total 10",
            "anygate_tunnel_rx_packets_total{tunnel=\"T1\"} 4",
            "anygate_tunnel_drops_total{tunnel=\"T1\",reason=\"no_route\"} 2",
            "# TYPE anygate_tunnel_health gauge",
            "anygate_tunnel_health{tunnel=\"T1\"} 0.5",
            "anygate_tunnel_probes_lost_total{tunnel=\"T1\"} 2",
            "anygate_firewall_rule_packets_total{rule=\"allow-bgp\"} 0",
            "anygate_firewall_rule_bytes_total{rule=\"1\"} 1800",
            "anygate_worker_busy_cycles_total{worker=\"1\",core=\"2\"} 2000",
            "anygate_worker_busy_seconds_total{worker=\"0\",core=\"1\"} 2.0",
            "# TYPE anygate_worker_busy_loop_seconds histogram",
            "anygate_worker_busy_loop_seconds_sum{worker=\"0\",core=\"1\"} 1.3",
            "anygate_worker_busy_loop_seconds_count{worker=\"0\",core=\"1\"} 4",
            "anygate_worker_busy_loop_seconds_bucket{worker=\"0\",core=\"1\",le=\"0.064\"} 0",
            "anygate_worker_busy_loop_seconds_bucket{worker=\"0\",core=\"1\",le=\"0.128\"} 3",
            "anygate_worker_busy_loop_seconds_bucket{worker=\"1\",core=\"2\",le=\"0.512\"} 3",
            "anygate_worker_busy_loop_seconds_bucket{worker=\"1\",core=\"2\",le=\"1.024\"} 4",
            "anygate_worker_busy_loop_seconds_bucket{worker=\"0\",core=\"1\",le=\"+Inf\"} 4",
            "anygate_routes{source=\"static\",origin=\"config\"} 2",
            "anygate_mempool_mbufs_free 4000",
            "anygate_table_generation 3",
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "missing `{line}` in:\n{out}"
            );
        }
        assert_eq!(
            out.lines()
                .filter(|l| l.starts_with("anygate_drops_total{"))
                .count(),
            DropReason::COUNT,
            "every reason, zero included"
        );
        // Counters end in _total; nothing else does.
        for l in out.lines().filter(|l| l.starts_with("# TYPE ")) {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f[3] == "counter", f[2].ends_with("_total"), "{l}");
        }
    }
}
