//! What `show stats`, `show ports`, `show neighbors` and `show status` answer, and
//! `clear counters`. Each reply carries its figures (schema [`VIEW_SCHEMA`]) and a `text`
//! rendering, so that the client prints what the server rendered and the stats are written
//! once (`mgmt::stats`).
use super::handlers::Plane;
use crate::ctl_proto::VIEW_SCHEMA;
use crate::dpdk::PortStats;
use crate::mgmt::observe::speed;
use crate::mgmt::stats::live::Baseline;
use crate::mgmt::stats::{nic_json, LoopCycles, Report};
use crate::route::arp_cache::ageing::{REACHABLE_S, REFRESH_S};
use serde_json::{json, Value};
use std::fmt::Write;
use std::net::Ipv4Addr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Live stats since the last `clear counters`, as the final stats print them, plus each
/// worker's busy loops and cycles: the mean per busy loop, and p50 / p99 / p99.9 from the
/// loop buckets the worker publishes about once a second (`datapath::loop_buckets`).
pub fn stats(plane: &Plane) -> Value {
    let snap = plane.publisher.current();
    let live = plane.obs.live(plane.cfg, snap, plane.counters);
    let nic = nic_since(plane);
    let r = Report {
        cfg: plane.cfg,
        counters: live.total,
        nic,
        uptime_s: plane.obs.uptime_s(),
        generation: snap.generation,
        mempool: plane.obs.pool.as_ref().map(|p| (p.size(), p.available())),
        tsc_hz: crate::dpdk::tsc_hz(),
        final_report: false,
        xstats: Vec::new(),
        latency: None,
        health: crate::mgmt::tunnel_health(plane.cfg, snap, plane.checker),
    };
    let workers: Vec<Value> = live
        .workers
        .iter()
        .zip(&plane.cfg.workers)
        .enumerate()
        .map(|(i, (c, w))| {
            json!({"index": i, "core": w.core, "rx_packets": c.rx_total(), "tx_packets": c.tx_total(),
                   "drops": c.drop_total(), "busy_loops": c.busy_loops, "busy_cycles": c.busy_cycles,
                   "cycles_per_loop": (c.busy_loops > 0).then(|| c.busy_cycles / c.busy_loops),
                   "loop_cycles": LoopCycles::from_buckets(&c.loop_buckets).map(|l| json!({
                       "samples": l.samples, "cycles": c.loop_buckets_cycles,
                       "p50": l.p[0], "p99": l.p[1], "p99_9": l.p[2]}))})
        })
        .collect();
    let mut text = r.to_text();
    for w in &workers {
        let _ = writeln!(
            text,
            "  worker {} core {:<3} rx {:>12}  busy loops {:>12}  cycles {:>16}  mean {} \
             cycles/loop  p50/p99/p99.9 {}",
            w["index"],
            w["core"],
            w["rx_packets"],
            w["busy_loops"],
            w["busy_cycles"],
            w["cycles_per_loop"]
                .as_u64()
                .map_or("-".into(), |c| c.to_string()),
            match &w["loop_cycles"] {
                Value::Null => "-".into(),
                l => format!("{}/{}/{}", l["p50"], l["p99"], l["p99_9"]),
            }
        );
    }
    let since = plane.obs.baseline.as_ref().map(|b| b.at);
    let _ = writeln!(
        text,
        "  counting since {} (busy-loop percentiles: live ones are refreshed each second and \
         read up to 1/8 high)",
        since.map_or("start".into(), |t| format!(
            "clear counters at {}",
            rfc3339(t)
        ))
    );
    let mut stats = r.to_json();
    if let Value::Object(m) = &mut stats {
        m.remove("event");
        m.remove("final");
        m.insert("workers".into(), json!(workers));
        let why: serde_json::Map<String, Value> = crate::datapath::DropReason::ALL
            .iter()
            .map(|r| (r.name().to_owned(), json!(r.description())))
            .collect();
        m.insert("drop_descriptions".into(), Value::Object(why));
    }
    json!({"schema": VIEW_SCHEMA, "generation": snap.generation,
           "cleared_at": since.map(rfc3339), "stats": stats, "text": text})
}

/// The NIC counters since the last `clear counters`.
fn nic_since(plane: &Plane) -> Vec<PortStats> {
    plane
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (n, b) = (
                p.stats(),
                plane.obs.nic_base.get(i).copied().unwrap_or_default(),
            );
            PortStats {
                ipackets: n.ipackets.saturating_sub(b.ipackets),
                opackets: n.opackets.saturating_sub(b.opackets),
                ibytes: n.ibytes.saturating_sub(b.ibytes),
                obytes: n.obytes.saturating_sub(b.obytes),
                imissed: n.imissed.saturating_sub(b.imissed),
                ierrors: n.ierrors.saturating_sub(b.ierrors),
                oerrors: n.oerrors.saturating_sub(b.oerrors),
                rx_nombuf: n.rx_nombuf.saturating_sub(b.rx_nombuf),
            }
        })
        .collect()
}

/// Starts the views counting from now: `show stats`, `show tunnels`, `show firewall`.
pub fn clear(plane: &mut Plane) -> Value {
    let snap = plane.publisher.current();
    let b = Baseline::take(plane.cfg, snap, plane.counters);
    let at = b.at;
    plane.obs.baseline = Some(b);
    plane.obs.nic_base = plane.ports.iter().map(|p| p.stats()).collect();
    let text = format!(
        "counters cleared at {}: show stats, tunnels and firewall count from now\n",
        rfc3339(at)
    );
    json!({"generation": snap.generation, "cleared_at": rfc3339(at), "text": text})
}

/// Each port: link, MAC, address, MTU, queues, and its NIC's counters (raw, since start).
pub fn ports(plane: &Plane) -> Value {
    let live = plane
        .obs
        .live(plane.cfg, plane.publisher.current(), plane.counters);
    let mut text = String::new();
    let list: Vec<Value> = plane
        .cfg
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let dev = plane.ports.get(i);
            let link = dev.map(|d| d.link());
            let nic = dev.map(|d| d.stats()).unwrap_or_default();
            let mac = dev.map(|d| d.mac()).or(p.mac).map(|m| m.to_string());
            let addr = format!("{}/{}", Ipv4Addr::from(p.addr), p.prefix_len);
            let _ = writeln!(
                text,
                "port {} ({}): link {}, mac {}, address {addr}, mtu {}, {} rx / {} tx queues\n  \
                 nic rx {} pkts {} B  tx {} pkts {} B  missed {}  errors rx {} tx {}  rx_nombuf {}\n  \
                 anygate rx {} pkts  tx {} pkts (since the last clear counters)",
                p.name,
                p.device,
                link.map_or("unknown".into(), |l| if l.up {
                    format!("up, {}", speed(&l))
                } else {
                    "down".into()
                }),
                mac.as_deref().unwrap_or("?"),
                p.mtu,
                p.rx_queues,
                p.tx_queues,
                nic.ipackets, nic.ibytes, nic.opackets, nic.obytes, nic.imissed, nic.ierrors,
                nic.oerrors, nic.rx_nombuf,
                live.total.rx_packets[i], live.total.tx_packets[i],
            );
            json!({"name": p.name, "device": p.device,
                   "link": link.map(|l| json!({"up": l.up, "speed_mbps": l.speed_mbps, "full_duplex": l.full_duplex})),
                   "mac": mac, "address": addr, "mtu": p.mtu,
                   "rx_queues": p.rx_queues, "tx_queues": p.tx_queues,
                   "rx_desc": p.rx_desc, "tx_desc": p.tx_desc,
                   "nic": nic_json(&nic),
                   "rx_packets": live.total.rx_packets[i], "tx_packets": live.total.tx_packets[i]})
        })
        .collect();
    json!({"schema": VIEW_SCHEMA, "ports": list, "text": text})
}

/// The ARP cache (learned entries and gateways still unresolved) and the static
/// `[[neighbors]]`, with ages in seconds.
pub fn neighbors(plane: &Plane) -> Value {
    let snap = plane.publisher.current();
    let now = snap.arp.clock();
    let port = |p: u16| {
        plane
            .cfg
            .ports
            .get(p as usize)
            .map_or("?".into(), |p| p.name.clone())
    };
    let mut list: Vec<Value> = plane
        .cfg
        .neighbors
        .iter()
        .filter_map(|n| {
            let mac = n.mac?;
            Some(
                json!({"address": Ipv4Addr::from(n.ip).to_string(), "mac": mac.to_string(),
                        "port": port(n.port), "state": "static", "role": "gateway",
                        "age_s": null, "used_s": null}),
            )
        })
        .collect();
    list.extend(snap.arp.neighbors(now).into_iter().map(|n| {
        json!({"address": Ipv4Addr::from(n.ip).to_string(), "mac": n.mac.map(|m| m.to_string()),
               "port": port(n.port), "state": if n.mac.is_some() { "learned" } else { "incomplete" },
               "role": if n.gateway { "gateway" } else { "host" },
               "age_s": n.age_s, "used_s": n.used_s})
    }));
    let mut text = format!(
        "{:<16} {:<18} {:<10} {:<11} {:<8} {:>6} {:>7}\n",
        "address", "mac", "port", "state", "role", "age", "used"
    );
    let secs = |v: &Value| v.as_u64().map_or("-".into(), |s| format!("{s}s"));
    for n in &list {
        let _ = writeln!(
            text,
            "{:<16} {:<18} {:<10} {:<11} {:<8} {:>6} {:>7}",
            n["address"].as_str().unwrap_or("?"),
            n["mac"].as_str().unwrap_or("-"),
            n["port"].as_str().unwrap_or("?"),
            n["state"].as_str().unwrap_or("?"),
            n["role"].as_str().unwrap_or("?"),
            secs(&n["age_s"]),
            secs(&n["used_s"]),
        );
    }
    let _ = writeln!(
        text,
        "learned entries expire {REACHABLE_S} s after ARP last confirmed them; those in use are re-resolved from {REFRESH_S} s"
    );
    json!({"schema": VIEW_SCHEMA, "reachable_s": REACHABLE_S, "refresh_s": REFRESH_S,
           "neighbors": list, "text": text})
}

/// Versions, uptime, the running table and config, the workers and their cores.
pub fn status(plane: &Plane) -> Value {
    let snap = plane.publisher.current();
    let dpdk = crate::dpdk::version();
    let workers: Vec<Value> = plane
        .cfg
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let rx: Vec<Value> = w
                .rx
                .iter()
                .map(|&(p, q)| {
                    json!({"port": plane.cfg.ports.get(p as usize).map(|p| p.name.clone()), "queue": q})
                })
                .collect();
            json!({"index": i, "core": w.core, "rx": rx})
        })
        .collect();
    let loaded = plane.obs.config_loaded;
    let v = json!({"schema": VIEW_SCHEMA, "anygate_version": env!("CARGO_PKG_VERSION"),
        "dpdk_version": dpdk, "uptime_s": (plane.obs.uptime_s() * 10.0).round() / 10.0,
        "started_at": rfc3339(plane.obs.started_at), "generation": snap.generation,
        "config_file": plane.config_path.display().to_string(), "config_loaded_at": rfc3339(loaded),
        "node_id": plane.cfg.node.id, "workers": workers,
        "routes": plane.rib.route_count(), "prefixes": snap.fib.len(), "tunnels": plane.cfg.tunnels.len()});
    let mut text = format!(
        "anygate {} on {}, up {:.0} s (since {})\nnode id {}, table generation {} ({} routes, {} prefixes, {} tunnels)\nconfig {} loaded at {}\n",
        v["anygate_version"].as_str().unwrap_or("?"),
        dpdk,
        plane.obs.uptime_s(),
        v["started_at"].as_str().unwrap_or("?"),
        plane.cfg.node.id,
        snap.generation,
        v["routes"],
        v["prefixes"],
        v["tunnels"],
        plane.config_path.display(),
        v["config_loaded_at"].as_str().unwrap_or("?"),
    );
    for (i, w) in plane.cfg.workers.iter().enumerate() {
        let rx: Vec<String> =
            w.rx.iter()
                .map(|&(p, q)| {
                    let name = plane
                        .cfg
                        .ports
                        .get(p as usize)
                        .map_or("?", |p| p.name.as_str());
                    format!("{name}/{q}")
                })
                .collect();
        let _ = writeln!(text, "worker {i} on core {} polls {}", w.core, rx.join(" "));
    }
    let mut v = v;
    v["text"] = json!(text);
    v
}

/// `t` in UTC as RFC 3339, to the second ("2026-12-01T04:22:00Z").
pub fn rfc3339(t: SystemTime) -> String {
    let s = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (s / 86_400, s % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        let at = |s| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_795_926_153), "2026-11-29T04:22:33Z");
    }
}
