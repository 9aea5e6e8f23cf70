//! The Prometheus endpoint on the real binary: scraped under live traffic, its figures lie
//! between the `--stats-json` reports before and after; scraped at a quiet point, they equal
//! the final stats; and the whole exposition parses with an independent parser (Python's
//! `prometheus_client`, installed by scripts/setup) under Prometheus' naming conventions.
mod common;

use common::*;
use etherparse::{IpNumber, Ipv4Header, PacketBuilder};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A port free now on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two GRE tunnels (T1 unchecked and degraded, T2 checked at `t2_rate` unless None), a /24
/// through each, a DNS firewall rule with an id, and the endpoint on `port`.
fn config(head: &str, port: u16, t2_rate: Option<&str>) -> String {
    let t2_check = match t2_rate {
        Some(r) => format!("{{ rate = \"{r}\" }}"),
        None => "{ enabled = false }".into(),
    };
    format!(
        r#"{head}
[[tunnels]]
name = "T1"
type = "gre"
customer_endpoint = "198.51.100.1"
edge_endpoint = "203.0.113.10"
interface_address = "10.255.0.2/31"
health = "degraded"
health_check = {{ enabled = false }}

[[tunnels]]
name = "T2"
type = "gre"
customer_endpoint = "198.51.100.2"
edge_endpoint = "203.0.113.10"
interface_address = "10.255.0.4/31"
health_check = {t2_check}

[health_checks]
interval_high_ms = 100
probe_timeout_ms = 50

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[[routes]]
prefix = "10.10.1.0/24"
nexthop = "T1"

[[routes]]
prefix = "10.10.2.0/24"
nexthop = "T2"

[firewall]
rules = [{{ id = "dns", expression = "udp.dstport eq 53", action = "allow" }}]

[metrics]
listen = "127.0.0.1:{port}"
"#
    )
}

fn udp(dst: [u8; 4], dport: u16, ttl: u8) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 1, 2], [2, 0, 0, 0, 1, 1])
        .ipv4([10, 0, 0, 50], dst, ttl)
        .udp(2000, dport);
    let mut v = Vec::new();
    b.write(&mut v, &[0u8; 18]).unwrap();
    v
}

/// From T1's customer: GRE around a packet from its /24 toward the default route.
fn gre_from_t1() -> Vec<u8> {
    let inner = {
        let b = PacketBuilder::ipv4([10, 10, 1, 9], [8, 8, 4, 4], 64).udp(3000, 53);
        let mut v = Vec::new();
        b.write(&mut v, &[0u8; 10]).unwrap();
        v
    };
    let mut h = Ipv4Header::new(
        (inner.len() + 4) as u16,
        64,
        IpNumber(47),
        [198, 51, 100, 1],
        [203, 0, 113, 10],
    )
    .unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut f = vec![2, 0, 0, 0, 1, 1, 2, 0, 0, 0, 1, 2, 8, 0];
    h.write(&mut f).unwrap();
    f.extend_from_slice(&[0, 0, 8, 0]);
    f.extend_from_slice(&inner);
    f
}

/// Into T1 (the DNS rule), into T2 (the default), TTL expiring, decapsulated from T1, and
/// IPv6 (unsupported): every kind of figure the endpoint exports moves.
fn traffic(rounds: usize) -> Vec<Vec<u8>> {
    let mut ipv6 = udp([10, 10, 1, 1], 53, 64);
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    let mut v = Vec::new();
    for i in 0..rounds {
        v.push(udp([10, 10, 1, (i % 200) as u8 + 1], 53, 64));
        v.push(udp([10, 10, 2, (i % 200) as u8 + 1], 80, 64));
        v.push(gre_from_t1());
        if i % 4 == 0 {
            v.push(udp([8, 8, 8, 8], 80, 1));
            v.push(ipv6.clone());
        }
    }
    v
}

/// GET `path` on the endpoint: (status line, content type, body).
fn get(port: u16, path: &str) -> (String, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{out}"));
    let status = head.lines().next().unwrap().to_owned();
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_owned();
    (status, ctype, body.to_owned())
}

/// Scrapes until the endpoint has its first view (it answers 503 before).
fn scrape(port: u16) -> String {
    scrape_or(port, String::new)
}

/// [`scrape`], with `context` in the failure message.
fn scrape_or(port: u16, context: impl Fn() -> String) -> String {
    let t = Instant::now();
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let (status, ctype, body) = get(port, "/metrics");
            if status == "HTTP/1.1 200 OK" {
                assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
                return body;
            }
            assert!(status.contains("503"), "{status}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "endpoint on {port} never up\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Samples by `name{labels}` as written (labels in the order the endpoint writes them).
fn samples(body: &str) -> HashMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap_or_else(|_| panic!("{l}")))
        })
        .collect()
}

fn get_s(m: &HashMap<String, f64>, k: &str) -> f64 {
    *m.get(k).unwrap_or_else(|| panic!("no sample {k}"))
}

fn u(v: &Value) -> f64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}")) as f64
}

/// Every figure the final stats and the endpoint both give, as (sample, value in the stats).
fn comparable(s: &Value) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for p in s["ports"].as_array().unwrap() {
        let n = p["name"].as_str().unwrap();
        for f in ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes"] {
            out.push((format!("anygate_port_{f}_total{{port=\"{n}\"}}"), u(&p[f])));
        }
        out.push((
            format!("anygate_port_nic_rx_missed_packets_total{{port=\"{n}\"}}"),
            u(&p["nic"]["imissed"]),
        ));
    }
    for (r, n) in s["drops"].as_object().unwrap() {
        out.push((format!("anygate_drops_total{{reason=\"{r}\"}}"), u(n)));
    }
    for t in s["tunnels"].as_array().unwrap() {
        let n = t["name"].as_str().unwrap();
        for f in ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes"] {
            out.push((
                format!("anygate_tunnel_{f}_total{{tunnel=\"{n}\"}}"),
                u(&t[f]),
            ));
        }
        for (r, c) in t["drops"].as_object().unwrap() {
            out.push((
                format!("anygate_tunnel_drops_total{{tunnel=\"{n}\",reason=\"{r}\"}}"),
                u(c),
            ));
        }
    }
    let fw = &s["firewall"];
    out.push((
        "anygate_firewall_rule_packets_total{rule=\"dns\"}".into(),
        u(&fw["rules"][0]["packets"]),
    ));
    out.push((
        "anygate_firewall_rule_bytes_total{rule=\"dns\"}".into(),
        u(&fw["rules"][0]["bytes"]),
    ));
    out.push((
        "anygate_firewall_default_packets_total".into(),
        u(&fw["default"]["packets"]),
    ));
    for (k, f) in [
        ("health_probe_consumed", "health_probe"),
        ("originated_packets", "originated"),
        ("icmp_errors", "icmp_errors"),
        ("probes_injected", "probes_injected"),
    ] {
        out.push((format!("anygate_{k}_total"), u(&s[f])));
    }
    out
}

/// The sum over workers of one per-worker family.
fn worker_sum(m: &HashMap<String, f64>, family: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(&format!("{family}{{worker=")))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn scraped_under_traffic_the_figures_lie_between_the_stats_reports() {
    let _g = lock();
    let d = Dir::new();
    write_pcap(&d.p("in.pcap"), &traffic(64));
    let port = free_port();
    let cfg = d.p("metrics.toml");
    std::fs::write(
        &cfg,
        config(&live_config(&d, "ag-metrics"), port, Some("high")),
    )
    .unwrap();
    let mut r = Running::start(&cfg, "0.1", d.p("stderr.log"));
    let mut reports = vec![r.next_stats()];
    // A few scrapes while traffic flows. The endpoint's uptime is read before its counters,
    // a report's after its own (both from the management loop's start), so every report
    // with a smaller uptime counted no more; the final stats (SIGINT after the last scrape)
    // no less.
    let mut scrapes = Vec::new();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(150));
        scrapes.push(samples(&scrape(port)));
    }
    let last_uptime = get_s(scrapes.last().unwrap(), "anygate_uptime_seconds");
    while u_f(&reports.last().unwrap()["uptime_s"]) < last_uptime {
        reports.push(r.next_stats());
    }
    let last = r.finish();
    let hi = comparable(&last);
    let mut prev: Option<&HashMap<String, f64>> = None;
    for m in &scrapes {
        let up = get_s(m, "anygate_uptime_seconds");
        let before = reports
            .iter()
            .rev()
            .find(|s| u_f(&s["uptime_s"]) <= up)
            .expect("a report before the first scrape");
        for ((k, lo), (_, hi)) in comparable(before).iter().zip(&hi) {
            // NIC counters come through the management view, up to 100 ms old.
            if k.contains("_nic_") {
                continue;
            }
            let v = m.get(k).copied().unwrap_or(0.0);
            assert!(*lo <= v && v <= *hi, "{k}: {lo} <= {v} <= {hi} (at {up} s)");
            if let Some(p) = prev {
                let was = p.get(k).copied().unwrap_or(0.0);
                assert!(was <= v, "{k} went back from {was} to {v}");
            }
        }
        assert!(get_s(m, "anygate_port_rx_packets_total{port=\"in0\"}") > 0.0);
        assert!(get_s(m, "anygate_tunnel_rx_packets_total{tunnel=\"T1\"}") > 0.0);
        assert_eq!(get_s(m, "anygate_tunnel_health{tunnel=\"T1\"}"), 0.5);
        let busy = worker_sum(m, "anygate_worker_busy_cycles_total");
        assert!(u(&before["busy_cycles"]) <= busy && busy <= u(&last["busy_cycles"]));
        prev = Some(m);
    }
    // T2 is probed every 100 ms (and never answered: up0 is a null device).
    let m = scrapes.last().unwrap();
    let sent = get_s(m, "anygate_tunnel_probes_sent_total{tunnel=\"T2\"}");
    assert!(
        sent > 0.0 && sent <= u(&last["tunnels"][1]["probes_sent"]),
        "{sent}"
    );
    assert!(get_s(m, "anygate_probes_injected_total") > 0.0);
}

fn u_f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn scraped_at_a_quiet_point_the_figures_equal_the_final_stats() {
    let _g = lock();
    let d = Dir::new();
    let frames = traffic(500);
    write_pcap(&d.p("in.pcap"), &frames);
    let port = free_port();
    let cfg = d.p("metrics.toml");
    // The capture replayed once, then quiet; T2 unchecked, so nothing changes the table.
    let head = live_config(&d, "ag-metrics-q").replace(",infinite_rx=1", "");
    std::fs::write(&cfg, config(&head, port, None)).unwrap();
    // No periodic stats: the final ones come at SIGINT, once the capture is replayed.
    let r = Running::start(&cfg, "3600", d.p("stderr.log"));
    let rx = "anygate_port_rx_packets_total{port=\"in0\"}";
    let log = || r.stderr();
    // A worker publishes its counters every 10 ms while busy and whenever it takes a new
    // table, so the last packets of a burst show once it is handed a new generation: T2's
    // health set by hand (it carries no traffic by then).
    scrape_or(port, log); // up, and so is the control socket
    let t = Instant::now();
    for h in ["degraded", "healthy"].iter().cycle() {
        let (ok, _, err) = ctl(&d, &["set-health", "T2", h]);
        assert!(ok, "ctl set-health: {err}");
        // The management view (NIC counters, generation) is at most 100 ms old.
        std::thread::sleep(Duration::from_millis(300));
        if get_s(&samples(&scrape_or(port, log)), rx) >= frames.len() as f64 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "traffic never counted\n{}",
            log()
        );
    }
    let body = scrape_or(port, log);
    let m = samples(&body);
    let last = r.finish();
    assert_eq!(last["final"], true);

    let figures = comparable(&last);
    for (k, want) in &figures {
        assert_eq!(m.get(k).copied(), Some(*want), "{k}\n{body}");
    }
    // Every drop reason is exported, and the traffic moved the figures compared.
    assert_eq!(
        m.keys()
            .filter(|k| k.starts_with("anygate_drops_total{"))
            .count(),
        last["drops"].as_object().unwrap().len()
    );
    for k in [
        rx,
        "anygate_tunnel_tx_packets_total{tunnel=\"T1\"}",
        "anygate_tunnel_tx_packets_total{tunnel=\"T2\"}",
        "anygate_tunnel_rx_packets_total{tunnel=\"T1\"}",
        "anygate_drops_total{reason=\"ttl_exceeded\"}",
        "anygate_drops_total{reason=\"unsupported_ethertype\"}",
        "anygate_firewall_rule_packets_total{rule=\"dns\"}",
    ] {
        assert!(get_s(&m, k) > 0.0, "{k} did not move\n{body}");
    }
    assert_eq!(get_s(&m, rx), frames.len() as f64);
    assert_eq!(
        worker_sum(&m, "anygate_worker_busy_cycles_total"),
        u(&last["busy_cycles"])
    );
    assert_eq!(
        worker_sum(&m, "anygate_worker_busy_loops_total"),
        u(&last["busy_loops"])
    );
    // The busy-loop histogram was refreshed when the traffic stopped: every loop is in it.
    let hist = "anygate_worker_busy_loop_seconds";
    let loops = worker_sum(&m, &format!("{hist}_count"));
    assert_eq!(loops, u(&last["busy_loops"]), "{body}");
    assert_eq!(loops, u(&last["loop_cycles"]["samples"]));
    let busy_s = worker_sum(&m, "anygate_worker_busy_seconds_total");
    let sum_s = worker_sum(&m, &format!("{hist}_sum"));
    assert!(
        (sum_s - busy_s).abs() <= 1e-9 * busy_s.max(1.0),
        "{sum_s} vs {busy_s}"
    );
    loop_buckets_ordered(&m, hist, loops);
    let p = ["p50", "p99", "p99_9"].map(|k| u(&last["loop_cycles"][k]));
    assert!(p[0] > 0.0 && p[0] <= p[1] && p[1] <= p[2], "{p:?}");
    assert_eq!(
        get_s(&m, "anygate_table_generation"),
        u(&last["generation"])
    );
    let health = |h: &Value| match h.as_str() {
        Some("healthy") => 1.0,
        Some("degraded") => 0.5,
        Some("down") => 0.0,
        _ => panic!("{h}"),
    };
    for t in last["tunnels"].as_array().unwrap() {
        let k = format!(
            "anygate_tunnel_health{{tunnel=\"{}\"}}",
            t["name"].as_str().unwrap()
        );
        assert_eq!(get_s(&m, &k), health(&t["health"]), "{k}");
    }
    assert_eq!(get_s(&m, "anygate_tunnel_health{tunnel=\"T1\"}"), 0.5);
    // Routes: three static ones from the config; the pool as the workers hold it.
    assert_eq!(
        get_s(&m, "anygate_routes{source=\"static\",origin=\"config\"}"),
        3.0
    );
    assert_eq!(
        get_s(&m, "anygate_routes{source=\"bgp\",origin=\"config\"}"),
        0.0
    );
    assert_eq!(
        get_s(&m, "anygate_mempool_mbufs_size"),
        u(&last["mempool"]["size"])
    );
    assert!(get_s(&m, "anygate_mempool_mbufs_free") <= get_s(&m, "anygate_mempool_mbufs_size"));
    assert!(get_s(&m, "anygate_tbl8_groups_limit") > 0.0);

    check_with_python(&body);
}

/// A histogram's cumulative buckets never fall, end at +Inf with `total` over workers, and
/// its bounds are in seconds (a busy loop is well under one).
fn loop_buckets_ordered(m: &HashMap<String, f64>, hist: &str, total: f64) {
    let mut by_worker: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    for (k, v) in m {
        let Some(rest) = k.strip_prefix(&format!("{hist}_bucket{{")) else {
            continue;
        };
        let (labels, le) = rest.rsplit_once(",le=\"").unwrap();
        let le = le.trim_end_matches("\"}");
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap()
        };
        by_worker.entry(labels.into()).or_default().push((le, *v));
    }
    assert!(!by_worker.is_empty());
    let mut inf = 0.0;
    for (w, mut b) in by_worker {
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        assert!(b.windows(2).all(|p| p[0].1 <= p[1].1), "{w}: {b:?}");
        assert!(b[0].0 < 1e-6 && b[b.len() - 2].0 < 1.0, "{w}: {b:?}");
        inf += b.last().unwrap().1;
    }
    assert_eq!(inf, total);
}

/// Python `prometheus_client`'s parser reads every family: each typed (no untyped
/// fallbacks), counters' samples end in `_total`, gauges' do not, units are base units.
fn check_with_python(body: &str) {
    const SCRIPT: &str = r#"
import json, re, sys
from prometheus_client.parser import text_string_to_metric_families
text = sys.stdin.read()
families = list(text_string_to_metric_families(text))
out = {"families": {}, "samples": 0, "problems": []}
for f in families:
    out["families"][f.name] = f.type
    for s in f.samples:
        out["samples"] += 1
        if not re.fullmatch(r"anygate_[a-z0-9_]+", s.name):
            out["problems"].append("bad name " + s.name)
        if f.type == "counter" and not s.name.endswith("_total"):
            out["problems"].append("counter sample without _total: " + s.name)
        if f.type == "gauge" and s.name.endswith("_total"):
            out["problems"].append("gauge named _total: " + s.name)
        if f.type == "histogram" and not re.search(r"_(bucket|sum|count)$", s.name):
            out["problems"].append("histogram sample " + s.name)
        if f.type not in ("counter", "gauge", "histogram"):
            out["problems"].append(f.name + " is " + f.type)
        for k in s.labels:
            if not re.fullmatch(r"[a-z_]+", k):
                out["problems"].append("bad label " + k)
        for unit in ("milliseconds", "microseconds", "kilobytes", "megabytes", "cycles_seconds"):
            if unit in s.name:
                out["problems"].append("not a base unit: " + s.name)
print(json.dumps(out))
"#;
    // apt's package is for the system python; a pyenv shim may come first on PATH.
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", "import prometheus_client"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect("python3 with prometheus_client: run scripts/setup");
    let mut child = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/setup)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the exposition (python3-prometheus-client from scripts/setup): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    let lines = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    assert_eq!(v["samples"], lines, "every sample line parsed");
    let types = body.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let fams = v["families"].as_object().unwrap();
    assert_eq!(fams.len(), types, "one family per TYPE line: {v}");
    for (name, ty) in [
        ("anygate_port_rx_bytes", "counter"),
        ("anygate_drops", "counter"),
        ("anygate_tunnel_health", "gauge"),
        ("anygate_tunnel_tx_bytes", "counter"),
        ("anygate_worker_busy_seconds", "counter"),
        ("anygate_worker_idle_seconds", "counter"),
        ("anygate_worker_busy_loop_seconds", "histogram"),
        ("anygate_routes", "gauge"),
        ("anygate_tbl8_groups_used", "gauge"),
        ("anygate_route_sets", "gauge"),
        ("anygate_route_sets_limit", "gauge"),
        ("anygate_mempool_mbufs_free", "gauge"),
        ("anygate_table_generation", "gauge"),
        ("anygate_health_probe_consumed", "counter"),
    ] {
        assert_eq!(
            fams.get(name).and_then(Value::as_str),
            Some(ty),
            "{name}: {v}"
        );
    }
}
