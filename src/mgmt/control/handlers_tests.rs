//! `set-health` as a manual override and `auto`, and the health fields of `show tunnels`,
//! against a real table and checker (no workers: the test reads what they would be given).
use super::*;
use crate::config::parse;
use crate::health::checker::Checker;
use crate::route::Snapshot;

const CFG: &str = r#"
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

[[routes]]
prefix = "10.1.0.0/16"
nexthop = "T1"

[[neighbors]]
ip = "192.0.2.253"
mac = "02:00:00:00:00:fd"
port = "wan0"

[node]
anycast_addresses = ["203.0.113.10"]

[health_checks]
hold_time = 1
probe_timeout_ms = 100
interval_mid_ms = 100
interval_high_ms = 100

[[tunnels]]
name = "T1"
type = "gre"
customer_endpoint = "198.51.100.1"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"
"#;

struct World {
    cfg: Config,
    host: Host,
    macs: Vec<MacAddr>,
    publisher: Publisher<Snapshot>,
    rib: Rib,
    counters: SharedCounters,
    runtime: Vec<config::RawRoute>,
    checker: Checker,
    obs: crate::mgmt::observe::Observe,
    bgp: crate::bgp::sync::Bgp,
}

impl World {
    fn new() -> World {
        World::with(CFG)
    }

    fn with(text: &str) -> World {
        let host = Host { cores: vec![0, 1] };
        let cfg = parse(text, &host).unwrap();
        let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
        let (snap, rib) = Snapshot::build_with_rib(&cfg, &macs, 1, None).unwrap();
        // No reader: nothing waits for acks.
        let (publisher, _) = crate::rcu::new(Arc::new(snap), 0);
        World {
            cfg,
            host,
            macs,
            publisher,
            rib,
            counters: SharedCounters::new(1),
            runtime: Vec::new(),
            checker: Checker::new(crate::dpdk::tsc_hz().max(1), crate::dpdk::tsc()),
            obs: crate::mgmt::observe::Observe::new(None),
            bgp: Default::default(),
        }
    }

    fn call(&mut self, req: Request) -> Reply {
        self.with_plane(|plane| handle(req, Some(0), plane))
    }

    fn with_plane<R>(&mut self, f: impl FnOnce(&mut Plane) -> R) -> R {
        let mut plane = Plane {
            cfg: &mut self.cfg,
            host: &self.host,
            macs: &self.macs,
            publisher: &mut self.publisher,
            rib: &mut self.rib,
            config_path: Path::new("/nonexistent"),
            counters: &self.counters,
            runtime: &mut self.runtime,
            checker: &mut self.checker,
            ports: &[],
            obs: &mut self.obs,
            bgp: &mut self.bgp,
        };
        f(&mut plane)
    }

    /// Route changes as `ctl add-route`/`del-route` make them.
    fn apply(&mut self, changes: Vec<Change>) -> Result<Value, String> {
        self.with_plane(|plane| apply_changes(plane, changes, "test", |_| None))
    }

    fn set(&mut self, h: HealthSetting) -> Reply {
        self.call(Request::SetHealth {
            tunnel: "T1".into(),
            health: h,
        })
    }

    fn t1(&mut self) -> Value {
        let r = self.call(Request::ShowTunnels {
            history: false,
            tunnel: None,
        });
        r.get("tunnels")[0].clone()
    }
}

#[test]
fn set_health_is_a_manual_override_and_auto_hands_it_back() {
    let mut w = World::new();
    let t = w.t1();
    assert_eq!(t["health"], "healthy");
    assert_eq!(t["health_source"], "auto");
    let r = w.set(HealthSetting::Down);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.get("changed"), true);
    assert_eq!(r.get("health_source"), "manual");
    assert_eq!(w.publisher.current().health[0], Health::Down);
    let t = w.t1();
    assert_eq!(
        (t["health"].as_str(), t["health_source"].as_str()),
        (Some("down"), Some("manual"))
    );
    // The checker, ticking, leaves it alone: it has no verdict but healthy yet.
    let now = crate::dpdk::tsc();
    let snap = w.publisher.current().clone();
    assert!(w.checker.tick(now, &[], &snap).is_empty());
    // `auto`: back to the checks' verdict (healthy: no probe has failed).
    let r = w.set(HealthSetting::Auto);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.get("health"), "healthy");
    assert_eq!(r.get("health_source"), "auto");
    assert_eq!(w.publisher.current().health[0], Health::Healthy);
    // Nothing to change: said so, no generation published.
    let g = w.publisher.generation();
    let r = w.set(HealthSetting::Auto);
    assert_eq!(r.get("changed"), false);
    assert_eq!(w.publisher.generation(), g);
    let r = w.call(Request::SetHealth {
        tunnel: "T9".into(),
        health: HealthSetting::Auto,
    });
    assert_eq!(r.error.as_deref(), Some("no tunnel named `T9`"));
}

#[test]
fn show_tunnels_carries_the_stable_health_fields() {
    let mut w = World::new();
    let t = w.t1();
    for k in [
        "name",
        "health",
        "health_source",
        "probes_sent",
        "probes_answered",
        "probes_lost",
        "rtt_us",
        "since",
        "loss_5m",
    ] {
        assert!(t.get(k).is_some(), "{k} missing: {t}");
    }
    assert_eq!(t["rtt_us"], Value::Null, "no answer yet");
    assert_eq!(
        t["health_check"],
        json!({"enabled": true, "type": "reply", "direction": "bidirectional",
               "target": "10.100.0.1", "rate": "mid", "interval_ms": 100})
    );
}

/// Counters as worker 0 would publish them: `n` packets received on port 0, `n` dropped
/// with no route, `n` decapsulated from T1.
fn publish(w: &World, n: u64) {
    use crate::datapath::{Counters, DropReason};
    let mut c = Counters::default();
    c.rx_packets[0] = n;
    c.drops[DropReason::NoRoute as usize] = n;
    c.busy_loops = n;
    c.busy_cycles = 100 * n;
    // n loops of 100 cycles: bucket 100..=103 (upper 103).
    c.loop_buckets[crate::datapath::loop_buckets::index(100)] = n;
    let slot = w.publisher.current().tunnel_slot(0);
    c.tunnels[slot].rx_packets = n;
    w.counters.publish(0, &mut c);
}

#[test]
fn show_stats_is_live_and_clear_counters_resets_the_views_only() {
    use crate::datapath::DropReason;
    let mut w = World::new();
    publish(&w, 10);
    let r = w.call(Request::ShowStats {});
    assert!(r.ok, "{r:?}");
    assert_eq!(r.get("schema"), crate::ctl_proto::VIEW_SCHEMA);
    let st = r.get("stats");
    let no_route = DropReason::NoRoute.name();
    assert_eq!(st["ports"][0]["name"], "wan0");
    assert_eq!(st["ports"][0]["rx_packets"], 10);
    assert_eq!(st["drops"][no_route], 10);
    assert_eq!(
        st["drop_descriptions"][no_route],
        DropReason::NoRoute.description()
    );
    assert_eq!(st["tunnels"][0]["rx_packets"], 10);
    assert_eq!(st["workers"][0]["busy_loops"], 10);
    assert_eq!(st["workers"][0]["cycles_per_loop"], 100);
    assert_eq!(st["workers"][0]["loop_cycles"]["p50"], 103);
    assert_eq!(st["workers"][0]["loop_cycles"]["p99_9"], 103);
    assert_eq!(st["loop_cycles"]["samples"], 10);
    assert!(st.get("event").is_none() && st.get("final").is_none());
    let text = r.get("text").as_str().unwrap();
    assert!(text.contains(&format!("drop {no_route:<22}")), "{text}");
    assert!(text.contains("worker 0 core 1"), "{text}");
    assert!(text.contains("p50/p99/p99.9 103/103/103"), "{text}");
    assert!(text.contains("busy loop (a burst received"), "{text}");
    assert!(text.contains("counting since start"), "{text}");
    assert_eq!(r.get("cleared_at"), &Value::Null);

    let r = w.call(Request::ClearCounters {});
    assert!(r.ok, "{r:?}");
    assert!(r.get("cleared_at").as_str().unwrap().ends_with('Z'));
    let st = w.call(Request::ShowStats {}).get("stats").clone();
    assert_eq!(st["ports"][0]["rx_packets"], 0);
    assert_eq!(st["drops"][no_route], 0);
    assert_eq!(st["tunnels"][0]["rx_packets"], 0);
    assert_eq!(st["workers"][0]["busy_loops"], 0);
    assert_eq!(st["workers"][0]["loop_cycles"], Value::Null, "cleared too");
    assert_eq!(
        w.t1()["rx_packets"],
        0,
        "show tunnels counts from the clear too"
    );
    assert_eq!(
        w.counters.total().rx_packets[0],
        10,
        "the raw counters are untouched"
    );

    publish(&w, 15);
    let r = w.call(Request::ShowStats {});
    let st = r.get("stats");
    assert_eq!(st["ports"][0]["rx_packets"], 5);
    assert_eq!(st["drops"][no_route], 5);
    assert_eq!(st["tunnels"][0]["rx_packets"], 5);
    assert_eq!(w.t1()["rx_packets"], 5);
    assert!(r
        .get("text")
        .as_str()
        .unwrap()
        .contains("clear counters at "));
}

#[test]
fn show_neighbors_lists_static_learned_and_unresolved_entries() {
    let mut w = World::new();
    let arp = w.publisher.current().arp.clone();
    arp.set_clock(5);
    let m = MacAddr([2, 0, 0, 0, 0, 0x42]);
    assert!(arp.set_host(0, 0xc000_0242, m)); // 192.0.2.66, a host on wan0's subnet
                                              // ARP from the static neighbour's address with another MAC teaches nothing.
    assert!(!arp.set_host(0, 0xc000_02fd, m));
    arp.set_clock(12);
    let r = w.call(Request::ShowNeighbors {});
    assert!(r.ok, "{r:?}");
    assert_eq!(r.get("reachable_s"), 300);
    let n = r.get("neighbors").as_array().unwrap().clone();
    let find = |a: &str| n.iter().find(|e| e["address"] == a).cloned().unwrap();
    for a in ["192.0.2.253", "192.0.2.66", "192.0.2.254"] {
        assert_eq!(
            n.iter().filter(|e| e["address"] == a).count(),
            1,
            "{a}: {n:?}"
        );
    }
    assert_eq!(
        find("192.0.2.253"),
        json!({"address": "192.0.2.253", "mac": "02:00:00:00:00:fd", "port": "wan0",
               "state": "static", "role": "gateway", "age_s": null, "used_s": null})
    );
    let h = find("192.0.2.66");
    assert_eq!(
        (&h["mac"], &h["state"], &h["role"]),
        (
            &json!("02:00:00:00:00:42"),
            &json!("learned"),
            &json!("host")
        )
    );
    assert_eq!(h["age_s"], 7);
    let g = find("192.0.2.254");
    assert_eq!(
        (&g["state"], &g["mac"]),
        (&json!("incomplete"), &Value::Null)
    );
    let text = r.get("text").as_str().unwrap();
    assert!(
        text.contains("192.0.2.66       02:00:00:00:00:42  wan0       learned"),
        "{text}"
    );
}

#[test]
fn show_status_and_show_ports_describe_the_running_instance() {
    let mut w = World::new();
    let r = w.call(Request::ShowStatus {});
    assert!(r.ok, "{r:?}");
    assert_eq!(r.get("anygate_version"), env!("CARGO_PKG_VERSION"));
    assert!(
        r.get("dpdk_version").as_str().unwrap().starts_with("DPDK "),
        "{r:?}"
    );
    assert_eq!(r.get("generation"), 1);
    assert_eq!(r.get("config_file"), "/nonexistent");
    assert_eq!(
        r.get("workers"),
        &json!([{"index": 0, "core": 1, "rx": [{"port": "wan0", "queue": 0}]}])
    );
    assert!(r
        .get("text")
        .as_str()
        .unwrap()
        .contains("worker 0 on core 1 polls wan0/0"));
    let r = w.call(Request::ShowPorts {});
    let p = &r.get("ports")[0];
    assert_eq!(
        (&p["name"], &p["address"], &p["mtu"]),
        (&json!("wan0"), &json!("192.0.2.1/24"), &json!(1500))
    );
    assert_eq!(p["mac"], "02:00:00:00:00:01");
    assert_eq!(p["link"], Value::Null, "no device in this test");
}

#[test]
fn show_arr_gives_the_table_and_its_top_tunnels() {
    let mut w = World::new();
    let r = w.call(Request::ShowArr {});
    assert_eq!(*r.get("arr"), json!({"enabled": false}));
    let text = CFG.replace(
        "interface_address = \"10.100.0.0/31\"",
        "interface_address = \"10.100.0.0/31\"\nautomatic_return_routing = true",
    ) + "[arr]\nmax_flows = 4096\n";
    let mut w = World::with(&text);
    let t = w.publisher.current().arr.clone().unwrap();
    for n in 0..3 {
        let k = crate::arr::Key {
            src: n,
            dst: 1,
            proto: 17,
            ports: 53,
        };
        t.learn(&k, 0, 0, 0, 0);
    }
    let a = w.call(Request::ShowArr {}).get("arr").clone();
    assert_eq!(a["enabled"], true);
    assert_eq!(a["entries"], 3);
    assert_eq!(a["capacity"], 4096);
    assert_eq!(a["bytes"], 4096 * 24);
    assert_eq!(a["timeouts"]["tcp_established"], 300);
    assert_eq!(
        a["top_tunnels"],
        json!([{"name": "T1", "flows": 3, "learned": 0, "refused": 0, "returned": 0}])
    );
    assert_eq!(w.t1()["name"], "T1");
}

#[test]
fn show_tunnels_history_gives_per_second_rates_per_tunnel() {
    use crate::mgmt::history::Reading;
    let mut w = World::new();
    let hist = |w: &mut World, tunnel: Option<&str>| {
        w.call(Request::ShowTunnels {
            history: true,
            tunnel: tunnel.map(Into::into),
        })
    };
    // The first management tick takes the starting point: no rates yet.
    let snap = w.publisher.current().clone();
    w.obs.tick(&w.cfg, &snap, &[], &w.counters);
    let r = hist(&mut w, None);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.get("window_s"), 300);
    let t = &r.get("history")[0];
    assert_eq!(t["name"], "T1");
    assert_eq!(t["rx_pps"], json!([]));
    // Two more seconds, 1,000 packets of 100 bytes decapsulated in each.
    for (s, n) in [(2u32, 1000u64), (3, 2000)] {
        let reading = Reading {
            rx_packets: n,
            tx_packets: 0,
            rx_bytes: n * 100,
            tx_bytes: 0,
        };
        w.obs.history.sample(s, 1000, [("T1", reading)].into_iter());
    }
    let t = hist(&mut w, Some("T1")).get("history")[0].clone();
    assert_eq!(t["interval_s"], 1);
    assert_eq!(t["t"].as_array().unwrap().len(), 2);
    assert_eq!(t["rx_pps"][1], 1000.0);
    assert_eq!(t["rx_bps"][1], 800_000.0);
    assert_eq!(t["tx_pps"][1], 0.0);
    assert_eq!(t["tx_bps"], json!([0.0, 0.0]));
    let r = hist(&mut w, Some("T9"));
    assert_eq!(r.error.as_deref(), Some("no tunnel named `T9`"));
    // Without `history`, show tunnels is unchanged, and a tunnel filter is refused.
    assert_eq!(w.t1()["name"], "T1");
    let r = w.call(Request::ShowTunnels {
        history: false,
        tunnel: Some("T1".into()),
    });
    assert!(!r.ok);
}

/// Route-set ids are never reused between rebuilds. When withdrawn routes have left enough
/// behind that a change needs an id past the limit, the change is applied by a full rebuild
/// that numbers only the live sets, instead of being refused; every route stays as it was.
#[test]
fn route_set_ids_that_run_out_are_renumbered_by_a_rebuild() {
    use crate::limits::MAX_ROUTE_SETS;
    let own = World::new().publisher.current().sets.len();
    let prefix = |i: usize| format!("10.{}.{}.0/24", 128 + (i >> 8), i & 255);
    // Each route at a priority of its own (none the config's own routes use) is a route
    // set of its own.
    let routes: String = (0..MAX_ROUTE_SETS - own)
        .map(|i| {
            format!(
                "\n[[routes]]\nprefix = \"{}\"\nnexthop = \"T1\"\npriority = {}\n",
                prefix(i),
                1000 + i
            )
        })
        .collect();
    let mut w = World::with(&format!("{CFG}{routes}"));
    assert_eq!(w.publisher.current().sets.len(), MAX_ROUTE_SETS);
    let gone: Vec<Change> = (0..1000)
        .map(|i| removal(&w.cfg, &prefix(i), "T1").unwrap())
        .collect();
    w.apply(gone).unwrap();
    assert_eq!(w.publisher.current().sets.len(), MAX_ROUTE_SETS, "ids held");

    let raw = |prefix: &str, priority: u32| config::RawRoute {
        prefix: prefix.into(),
        nexthop: "T1".into(),
        priority,
        weight: None,
        description: String::new(),
        scope: None,
        source: Default::default(),
    };
    let g = w.publisher.generation();
    let fresh = ctl_route(&w.cfg, &raw("10.20.0.0/16", 100_000)).unwrap();
    let r = w.apply(vec![Change::Add(fresh)]).unwrap();
    let s = w.publisher.current().clone();
    assert!(w.publisher.generation() > g);
    assert_eq!(
        s.sets.len(),
        MAX_ROUTE_SETS - 1000 + 1,
        "only live sets numbered"
    );
    assert_eq!(r["rebuilt"], true);
    assert!(
        r["rebuild_reason"]
            .as_str()
            .unwrap()
            .contains("renumbering"),
        "{r}"
    );
    let via = |s: &Snapshot, ip: &str| {
        let set = s
            .fib
            .lookup(u32::from(ip.parse::<std::net::Ipv4Addr>().unwrap()));
        let g = s.group(set.unwrap()).unwrap();
        s.nexthop_name(g.members[0])
    };
    assert_eq!(via(&s, "10.20.0.1"), "T1");
    assert_eq!(via(&s, "10.147.136.1"), "T1", "a kept route");
    assert_eq!(via(&s, "10.128.5.1"), "192.0.2.254", "a withdrawn one");
    assert_eq!(w.rib.route_count(), w.cfg.routes.len());
    // The rebuilt table takes the next change in place, new sets included.
    let next = ctl_route(&w.cfg, &raw("10.21.0.0/16", 100_001)).unwrap();
    let r = w.apply(vec![Change::Add(next)]).unwrap();
    assert_eq!(r["rebuilt"], false);
    assert_eq!(r["new_sets"], 1);
    assert_eq!(via(w.publisher.current(), "10.21.0.1"), "T1");
}

/// Schema 1 removes no key: what cannot be measured yet (no packet, no busy loop since the
/// clear) is null, not missing.
#[test]
fn show_stats_keeps_every_key_before_traffic_and_after_a_clear() {
    let mut w = World::new();
    for (i, when) in [(1, "before traffic"), (2, "after clear counters")] {
        let st = w.call(Request::ShowStats {}).get("stats").clone();
        for k in [
            "cycles_per_packet",
            "loop_cycles",
            "busy_loops",
            "busy_cycles",
        ] {
            assert!(st.get(k).is_some(), "{k} missing {when}: {st}");
        }
        assert_eq!(st["cycles_per_packet"], Value::Null, "{when}");
        assert_eq!(st["loop_cycles"], Value::Null, "{when}");
        // Absolute counters: the view shows 10 more since the clear.
        publish(&w, 10 * i);
        let st = w.call(Request::ShowStats {}).get("stats").clone();
        assert!(st["cycles_per_packet"].is_number(), "{st}");
        assert_eq!(st["loop_cycles"]["samples"], 10);
        assert!(w.call(Request::ClearCounters {}).ok);
    }
}

fn show_routes(w: &mut World, q: &str) -> Reply {
    w.call(Request::ShowRoutes {
        prefix: Some(q.into()),
        cursor: None,
    })
}

/// A prefix whose only routes are scoped to other colos is not in this node's table: the
/// query fails (ctl exits non-zero), naming the routes and where they are scoped.
#[test]
fn show_routes_for_a_prefix_scoped_elsewhere_fails_and_says_where() {
    let text = format!(
        "{CFG}\n[[routes]]\nprefix = \"10.83.0.0/16\"\nnexthop = \"T1\"\nscope = {{ colos = [\"ams9\"] }}\n"
    );
    let mut w = World::with(&text);
    let r = show_routes(&mut w, "10.83.0.0/16");
    assert!(!r.ok, "{r:?}");
    let e = r.error.unwrap();
    assert!(
        e.starts_with(
            "10.83.0.0/16 is not in the table here; its routes are via T1: not visible here"
        ) && e.contains("ams9"),
        "{e}"
    );
    let r = show_routes(&mut w, "10.84.0.0/16");
    assert_eq!(r.error.as_deref(), Some("10.84.0.0/16 is not in the table"));
    // The whole table still lists it among the routes scoped elsewhere.
    let all = w.call(Request::ShowRoutes {
        prefix: None,
        cursor: None,
    });
    assert_eq!(all.get("invisible")[0]["prefix"], "10.83.0.0/16");
}

/// Our own /32s are named for what they are: a port's or a tunnel interface's address, or
/// a port subnet's network or broadcast address.
#[test]
fn show_routes_names_our_own_addresses() {
    let mut w = World::new();
    for (q, want) in [
        ("192.0.2.1/32", "own address (port wan0)"),
        ("10.100.0.0/32", "own address (tunnel T1 interface)"),
        (
            "192.0.2.255/32",
            "subnet network or broadcast address, not forwarded",
        ),
        ("203.0.113.10/32", "anycast tunnel endpoint"),
    ] {
        let r = show_routes(&mut w, q);
        assert!(r.ok, "{q}: {r:?}");
        assert_eq!(r.get("routes")[0]["local"], want, "{q}");
    }
}
