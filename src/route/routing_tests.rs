//! The routing table's rules, table-driven, after seed 003: priorities, weights, longest
//! prefix, static over BGP, regions, health failover and recovery, and what moves when.
use crate::config::{parse, Health, Host};
use crate::route::{ecmp, NextHop, Snapshot};
use crate::wire::MacAddr;
use std::collections::HashMap;
use std::sync::Arc;

/// Five GRE tunnels T1..T5 whose customer endpoints sit behind the default route.
fn config(node: &str, routes: &str) -> String {
    let mut s = format!(
        r#"
[node]
anycast_addresses = ["203.0.113.10"]
{node}

[[ports]]
name = "wan0"
device = "net_null0"
mac = "02:00:00:00:00:01"
address = "192.0.2.1/24"

[[workers]]
core = 1
rx = [{{ port = "wan0" }}]

[[neighbors]]
ip = "192.0.2.254"
mac = "02:00:00:00:00:fe"
port = "wan0"

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"
"#
    );
    for t in 1..=5 {
        s += &format!(
            "\n[[tunnels]]\nname = \"T{t}\"\ntype = \"gre\"\ncustomer_endpoint = \"198.51.100.{t}\"\nedge_endpoint = \"203.0.113.10\"\ninterface_address = \"10.255.0.{}/31\"\n",
            2 * t
        );
    }
    s + routes
}

fn route(prefix: &str, t: u32, priority: u32, extra: &str) -> String {
    format!(
        "\n[[routes]]\nprefix = \"{prefix}\"\nnexthop = \"T{t}\"\npriority = {priority}\n{extra}\n"
    )
}

fn build(node: &str, routes: &str) -> Snapshot {
    let cfg =
        parse(&config(node, routes), &Host { cores: vec![0, 1] }).unwrap_or_else(|e| panic!("{e}"));
    let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
    Snapshot::build(&cfg, &macs, 1, None).unwrap()
}

/// Where flow `i` toward `dst` goes: a tunnel name, or "-" for a gateway.
fn pick(s: &Snapshot, dst: u32, i: u32) -> String {
    let src = 0xc633_6400 | (i.wrapping_mul(2_654_435_761) >> 8);
    let ports = i.wrapping_mul(40_503);
    let set = s.fib.lookup(dst).expect("a route");
    let nh = s
        .group(set)
        .unwrap()
        .pick(ecmp::flow_hash(src, dst, ports))
        .unwrap();
    match s.nexthops[nh as usize] {
        NextHop::Tunnel(t) => s.tunnels[t as usize].name.clone(),
        NextHop::Gateway(_) | NextHop::Connected(_) => "-".into(),
    }
}

const FLOWS: u32 = 20_000;
const DST: u32 = 0x0a0a_0a05; // 10.10.10.5

fn shares(s: &Snapshot, dst: u32) -> HashMap<String, f64> {
    let mut m: HashMap<String, f64> = HashMap::new();
    for i in 0..FLOWS {
        *m.entry(pick(s, dst, i)).or_default() += 1.0 / FLOWS as f64;
    }
    m
}

fn set_of(s: &Snapshot, dst: u32) -> Vec<String> {
    let mut v: Vec<String> = shares(s, dst).into_keys().collect();
    v.sort();
    v
}

fn health(s: &Snapshot, changes: &[(&str, Health)]) -> Snapshot {
    let mut s = s.clone();
    for (name, h) in changes {
        let t = s.tunnels.iter().position(|t| t.name == *name).unwrap() as u16;
        s = s.with_health(t, *h, s.generation + 1).unwrap();
    }
    s
}

#[test]
fn priority_100_beats_200() {
    let r = [
        route("10.10.10.0/24", 1, 200, ""),
        route("10.10.10.0/24", 2, 200, ""),
        route("10.10.10.0/24", 3, 100, ""),
        route("10.10.10.0/24", 4, 100, ""),
    ]
    .concat();
    let s = build("", &r);
    assert_eq!(set_of(&s, DST), ["T3", "T4"]);
    let sh = shares(&s, DST);
    assert!((sh["T3"] - 0.5).abs() < 0.03, "{sh:?}");
}

/// Tolerance: shares within 2.5 percentage points of weight / total, over 20000 flows.
#[test]
fn weights_64_128_192_255_split_in_proportion() {
    let r = [
        route("10.10.10.0/24", 1, 100, "weight = 64"),
        route("10.10.10.0/24", 2, 100, "weight = 128"),
        route("10.10.10.0/24", 3, 100, "weight = 192"),
        route("10.10.10.0/24", 4, 100, "weight = 255"),
    ]
    .concat();
    let sh = shares(&build("", &r), DST);
    for (t, w) in [("T1", 64.0), ("T2", 128.0), ("T3", 192.0), ("T4", 255.0)] {
        let want = w / 639.0;
        assert!((sh[t] - want).abs() < 0.025, "{t}: {} vs {want}", sh[t]);
    }
}

#[test]
fn a_30_beats_a_29_regardless_of_priority() {
    let r = [
        route("10.10.10.0/29", 1, 1, ""),
        route("10.10.10.4/30", 2, 1_000_000, ""),
    ]
    .concat();
    let s = build("", &r);
    assert_eq!(set_of(&s, 0x0a0a_0a05), ["T2"], "inside the /30");
    assert_eq!(set_of(&s, 0x0a0a_0a01), ["T1"], "in the /29 only");
}

#[test]
fn static_beats_bgp_at_same_prefix_and_priority() {
    let r = [
        route("10.10.10.0/24", 1, 100, ""),
        route("10.10.10.0/24", 2, 100, "source = \"bgp\""),
    ]
    .concat();
    assert_eq!(set_of(&build("", &r), DST), ["T1"]);
    // BGP routes among themselves still share.
    let r = [
        route("10.10.10.0/24", 1, 100, "source = \"bgp\""),
        route("10.10.10.0/24", 2, 100, "source = \"bgp\""),
    ]
    .concat();
    assert_eq!(set_of(&build("", &r), DST), ["T1", "T2"]);
    // A better BGP route still beats a worse static one.
    let r = [
        route("10.10.10.0/24", 1, 150, ""),
        route("10.10.10.0/24", 2, 100, "source = \"bgp\""),
    ]
    .concat();
    assert_eq!(set_of(&build("", &r), DST), ["T2"]);
}

#[test]
fn region_scoping_as_in_the_seed() {
    // The seed's table: one prefix, priority 100, tunnels scoped to regions.
    let scoped = |t, reg: &str| {
        route(
            "10.10.10.0/24",
            t,
            100,
            &format!("scope = {{ regions = [\"{reg}\"] }}"),
        )
    };
    let r = [
        scoped(1, "AFR"),
        scoped(2, "EEUR"),
        scoped(3, "ENAM"),
        scoped(4, "ME"),
        scoped(5, "WNAM"),
        scoped(4, "ENAM"),
    ]
    .concat();
    assert_eq!(
        set_of(&build("region = \"WNAM\"", &r), DST),
        ["T5"],
        "WNAM uses only WNAM routes"
    );
    assert_eq!(set_of(&build("region = \"ENAM\"", &r), DST), ["T3", "T4"]);
    // Global routes are seen everywhere, and share with the region's.
    let with_global = format!("{r}{}", route("10.10.10.0/24", 1, 100, ""));
    assert_eq!(
        set_of(&build("region = \"WNAM\"", &with_global), DST),
        ["T1", "T5"]
    );
    // A data center can be named too.
    let colo = route("10.10.10.0/24", 2, 100, "scope = { colos = [\"sjc01\"] }");
    assert_eq!(
        set_of(
            &build("region = \"WNAM\"\ncolo = \"sjc01\"", &format!("{r}{colo}")),
            DST
        ),
        ["T2", "T5"]
    );
    // Where no route covers the prefix, it is not in the table: the default route takes it.
    assert_eq!(set_of(&build("region = \"OC\"", &r), DST), ["-"]);
}

fn failover_table() -> Snapshot {
    let r = [
        route("10.10.10.0/24", 1, 1, ""),
        route("10.10.10.0/24", 2, 1, ""),
        route("10.10.10.0/24", 3, 2, ""),
    ]
    .concat();
    build("", &r)
}

#[test]
fn failover_scenario_1_tunnel_2_down() {
    let s = failover_table();
    let sh = shares(&s, DST);
    assert_eq!(set_of(&s, DST), ["T1", "T2"]);
    assert!((sh["T1"] - 0.5).abs() < 0.03);
    let down = health(&s, &[("T2", Health::Down)]);
    assert_eq!(set_of(&down, DST), ["T1"], "all traffic to tunnel 1");
}

#[test]
fn failover_scenario_2_tunnels_1_and_2_down() {
    let s = health(
        &failover_table(),
        &[("T1", Health::Down), ("T2", Health::Down)],
    );
    assert_eq!(set_of(&s, DST), ["T3"], "all traffic to tunnel 3");
    // Routes are never removed for health: everything down still routes to the lowest.
    let all = health(&s, &[("T3", Health::Down)]);
    assert_eq!(set_of(&all, DST), ["T1", "T2"]);
    // Degraded (+500000) beats down (+1000000).
    let mixed = health(
        &failover_table(),
        &[
            ("T1", Health::Degraded),
            ("T2", Health::Down),
            ("T3", Health::Down),
        ],
    );
    assert_eq!(set_of(&mixed, DST), ["T1"]);
}

#[test]
fn recovery_restores_the_original_split_flow_for_flow() {
    let s = failover_table();
    let before: Vec<String> = (0..FLOWS).map(|i| pick(&s, DST, i)).collect();
    let down = health(&s, &[("T2", Health::Down)]);
    let during: Vec<String> = (0..FLOWS).map(|i| pick(&down, DST, i)).collect();
    // Only T2's flows moved.
    let moved = before.iter().zip(&during).filter(|(b, d)| b != d).count();
    assert!(before.iter().zip(&during).all(|(b, d)| b == d || b == "T2"));
    let t2 = before.iter().filter(|b| *b == "T2").count();
    assert_eq!(moved, t2, "every T2 flow moved, and nothing else");
    let back = health(&down, &[("T2", Health::Healthy)]);
    let after: Vec<String> = (0..FLOWS).map(|i| pick(&back, DST, i)).collect();
    assert_eq!(after, before, "recovery returns every flow to its tunnel");
}

#[test]
fn only_the_failed_tunnels_flows_move_in_a_weighted_group() {
    let r = [
        route("10.10.10.0/24", 1, 100, "weight = 64"),
        route("10.10.10.0/24", 2, 100, "weight = 128"),
        route("10.10.10.0/24", 3, 100, "weight = 192"),
        route("10.10.10.0/24", 4, 100, "weight = 255"),
    ]
    .concat();
    let s = build("", &r);
    let down = health(&s, &[("T3", Health::Down)]);
    let mut moved = 0;
    for i in 0..FLOWS {
        let (b, d) = (pick(&s, DST, i), pick(&down, DST, i));
        if b != d {
            assert_eq!(b, "T3", "flow {i} moved off a healthy tunnel");
            moved += 1;
        }
    }
    // The fraction that moves is T3's share (192/639 = 0.30).
    let frac = moved as f64 / FLOWS as f64;
    assert!((frac - 192.0 / 639.0).abs() < 0.03, "moved {frac}");
    // The vendor's plain "hash mod n" over the same flows, 4 members then 3, moves far more.
    let naive_moved = (0..FLOWS)
        .filter(|i| {
            let h = ecmp::flow_hash(
                0xc633_6400 | (i.wrapping_mul(2_654_435_761) >> 8),
                DST,
                i.wrapping_mul(40_503),
            );
            let before = ["T1", "T2", "T3", "T4"][(h % 4) as usize];
            let after = ["T1", "T2", "T4"][(h % 3) as usize];
            before != after
        })
        .count() as f64
        / FLOWS as f64;
    eprintln!("flows moved when T3 goes down: rendezvous {frac:.3}, hash mod n {naive_moved:.3}");
    assert!(naive_moved > 0.6 && naive_moved > 2.0 * frac);
}

#[test]
fn every_server_with_the_same_table_sends_a_flow_the_same_way() {
    let r = [
        route("10.10.10.0/24", 1, 100, ""),
        route("10.10.10.0/24", 2, 100, ""),
        route("10.10.10.0/24", 3, 100, ""),
    ]
    .concat();
    let (a, b) = (build("", &r), build("", &r));
    assert!((0..FLOWS).all(|i| pick(&a, DST, i) == pick(&b, DST, i)));
}

#[test]
fn a_health_change_rebuilds_only_its_groups() {
    let r = [
        route("10.10.10.0/24", 1, 1, ""),
        route("10.10.10.0/24", 2, 1, ""),
        route("10.20.0.0/16", 3, 1, ""),
    ]
    .concat();
    let s = build("", &r);
    let t2 = s.tunnels.iter().position(|t| t.name == "T2").unwrap() as u16;
    let next = s.with_health(t2, Health::Down, 2).unwrap();
    assert!(
        Arc::ptr_eq(&s.fib, &next.fib),
        "the 2^24 table is shared, not rebuilt"
    );
    let set_10 = s.fib.lookup(DST).unwrap() as usize;
    let set_20 = s.fib.lookup(0x0a14_0001).unwrap() as usize;
    assert!(
        !Arc::ptr_eq(&s.groups[set_10], &next.groups[set_10]),
        "T2's group is rebuilt"
    );
    assert!(
        Arc::ptr_eq(&s.groups[set_20], &next.groups[set_20]),
        "T3's group is untouched"
    );
    assert_eq!(
        s.sets_through(t2),
        2,
        "its route set and its interface subnet"
    );
}

#[test]
fn route_rules_refused_by_key() {
    let bad = |node: &str, routes: &str| match parse(
        &config(node, routes),
        &Host { cores: vec![0, 1] },
    ) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    assert!(bad("", &route("8.8.8.0/24", 1, 100, ""))
        .contains("routes[1].prefix: 8.8.8.0/24 is not RFC 1918 space"));
    parse(
        &config(
            "allow_public_prefixes = true",
            &route("8.8.8.0/24", 1, 100, ""),
        ),
        &Host { cores: vec![0, 1] },
    )
    .unwrap();
    assert!(bad("", &route("10.1.0.0/16", 1, 100, "weight = 0"))
        .contains("routes[1].weight: 0 is not in 1..=256"));
    assert!(
        bad("", &route("10.1.0.0/16", 1, 100, "weight = 257")).contains("routes[1].weight: 257")
    );
    assert!(bad(
        "",
        &route("10.1.0.0/16", 1, 100, "scope = { regions = [\"MARS\"] }")
    )
    .contains("routes[1].scope.regions[0]: `MARS` is not a region code"));
    assert!(bad("region = \"EU\"", "").contains("node.region: `EU` is not a region code"));
    assert!(
        bad("", &route("10.1.0.0/16", 9, 100, "")).contains("routes[1].nexthop: `T9` is neither")
    );
    assert!(bad(
        "",
        &[
            route("10.1.0.0/16", 1, 100, ""),
            route("10.1.0.0/16", 1, 100, "")
        ]
        .concat()
    )
    .contains("routes[2]: duplicate route"));
    // 65 routes with one prefix and priority: scoped apart so none is a duplicate.
    let many: String = (0..65)
        .map(|i| {
            route(
                "10.1.0.0/16",
                1 + i % 5,
                7,
                &format!("scope = {{ colos = [\"c{i}\"] }}"),
            )
        })
        .collect();
    assert!(bad("", &many)
        .contains("routes[65].priority: more than 64 routes for 10.1.0.0/16 at priority 7"));
}

#[test]
fn prefixes_with_the_same_routes_share_a_route_set() {
    // 200 prefixes, each via T1 and T2: one set for all of them, so a health change rebuilds
    // one group however large the table.
    let r: String = (0..200u32)
        .map(|i| {
            [
                route(&format!("10.{}.{}.0/24", 100 + i / 250, i % 250), 1, 1, ""),
                route(&format!("10.{}.{}.0/24", 100 + i / 250, i % 250), 2, 1, ""),
            ]
            .concat()
        })
        .collect();
    let s = build("", &r);
    // The default route, the upstream neighbour's /32, the five tunnels' interface subnets,
    // the port's connected subnet, and one set for all 200 prefixes.
    assert_eq!(s.sets.len(), 9);
    let t1 = s.tunnels.iter().position(|t| t.name == "T1").unwrap() as u16;
    assert_eq!(
        s.sets_through(t1),
        2,
        "the shared set and T1's interface subnet"
    );
}

#[test]
fn a_route_taking_a_customer_endpoint_into_a_tunnel_is_blamed_by_its_key() {
    let text = config(
        "allow_public_prefixes = true",
        &route("198.51.100.0/24", 2, 100, ""),
    );
    let cfg = parse(&text, &Host { cores: vec![0, 1] }).unwrap();
    let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
    let e = Snapshot::build(&cfg, &macs, 1, None).err().unwrap();
    let lines: Vec<&str> = e.lines().collect();
    // Every tunnel's endpoint is in the /24: the one route is named once per tunnel.
    assert_eq!(lines.len(), 5, "{e}");
    assert_eq!(
        lines[0],
        "routes[1].prefix: 198.51.100.0/24 via T2 would take tunnel `T1`'s outer packets (to its \
         customer_endpoint 198.51.100.1) into a tunnel; a customer endpoint must be reached \
         through a port (route a prefix that leaves it out)"
    );
}
