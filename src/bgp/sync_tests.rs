//! Fake adapter events against a real route table: the batches they make, exactly, and what
//! the table then forwards.
use super::*;
use crate::bgp::AsSegment;
use crate::config::{parse, Host};
use crate::rcu::Publisher;
use crate::route::Snapshot;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[bgp]
asn = 64512

[[tunnels]]
name = "T1"
type = "gre"
customer_endpoint = "198.51.100.1"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"
[tunnels.bgp]
asn = 65000
max_prefixes = 3

[[tunnels]]
name = "T2"
type = "gre"
customer_endpoint = "198.51.100.2"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.2/31"
[tunnels.bgp]
asn = 65001

[[tunnels]]
name = "T3"
type = "gre"
customer_endpoint = "198.51.100.3"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.4/31"
"#;

const T1: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 1);
const T2: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 3);

struct World {
    cfg: Config,
    rib: Rib,
    publisher: Publisher<Snapshot>,
    bgp: Bgp,
}

impl World {
    fn with(text: &str) -> World {
        let cfg = parse(text, &Host { cores: vec![0, 1] }).unwrap();
        let macs: Vec<crate::wire::MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
        let (snap, rib) = Snapshot::build_with_rib(&cfg, &macs, 1, None).unwrap();
        let (publisher, _) = crate::rcu::new(Arc::new(snap), 0);
        World {
            cfg,
            rib,
            publisher,
            bgp: Bgp::default(),
        }
    }

    fn new() -> World {
        World::with(CFG)
    }

    /// Feeds events, applies their one batch; returns the batch.
    fn feed(&mut self, events: Vec<Event>) -> Vec<Change> {
        let mut touched = BTreeSet::new();
        for e in events {
            self.bgp.event(&self.cfg, e, &mut touched);
        }
        let plan = self.bgp.plan(&self.rib, &touched, false);
        let changes = plan.changes();
        if !changes.is_empty() {
            self.rib
                .apply(&changes, &mut self.publisher)
                .unwrap_or_else(|e| panic!("{e}: {changes:?}"));
        }
        self.bgp.commit_all(plan);
        changes
    }

    /// Runs the held-over expiry at `now`, applies its batch; returns the batch.
    fn expire(&mut self, now: Instant) -> Vec<Change> {
        let mut touched = BTreeSet::new();
        self.bgp
            .expire_held_over(&self.cfg, now, SystemTime::now(), &mut touched);
        let plan = self.bgp.plan(&self.rib, &touched, false);
        let changes = plan.changes();
        if !changes.is_empty() {
            self.rib.apply(&changes, &mut self.publisher).unwrap();
        }
        self.bgp.commit_all(plan);
        changes
    }

    /// The next hops forwarding uses for exactly `prefix` (empty: not in the table).
    fn selected(&self, prefix: &str) -> Vec<String> {
        let p = pfx(prefix);
        let s = self.publisher.current();
        let Some(set) = self.rib.value(p) else {
            return Vec::new();
        };
        let g = s.group(set).unwrap();
        let mut v: Vec<String> = g.members.iter().map(|nh| s.nexthop_name(*nh)).collect();
        v.sort();
        v
    }
}

fn pfx(s: &str) -> Prefix {
    crate::config::parse_prefix(s).unwrap()
}

fn path(prefix: &str, asn: u32, prepends: usize, community: Option<u16>) -> ReceivedPath {
    ReceivedPath {
        prefix: pfx(prefix),
        next_hop: Ipv4Addr::UNSPECIFIED,
        communities: community
            .map(|v| 13335 << 16 | v as u32)
            .into_iter()
            .collect(),
        as_path: vec![AsSegment::Sequence(
            std::iter::repeat_n(asn, prepends + 1)
                .chain([65200])
                .collect(),
        )],
        stale: false,
        path_id: 0,
    }
}

fn paths(peer: Ipv4Addr, paths: Vec<ReceivedPath>) -> Event {
    Event::PeerPaths { peer, paths }
}

fn add(prefix: &str, t: u16, priority: u32) -> String {
    format!("add {prefix} T{} {priority}", t + 1)
}

/// A batch as short text: `add 10.1.0.0/16 T1 30`, `del 10.1.0.0/16 T1`, `add ... static`.
fn show(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| match c {
            Change::Add(r) => match (r.via, r.source) {
                (Via::Tunnel(t), RouteSource::Bgp) => add(&r.prefix.to_string(), t, r.priority),
                (Via::Tunnel(t), RouteSource::Static) => {
                    format!("add {} T{} {} static", r.prefix, t + 1, r.priority)
                }
                (v, _) => format!("add {} {v:?}", r.prefix),
            },
            Change::Remove { prefix, via } => match via {
                Via::Tunnel(t) => format!("del {prefix} T{}", t + 1),
                v => format!("del {prefix} {v:?}"),
            },
        })
        .collect()
}

#[test]
fn the_issue_scenario_selects_by_community_and_prepends() {
    let mut w = World::new();
    // T1: 13335:60010 and two prepends (30); T2: 13335:60050 (50).
    let b = w.feed(vec![
        paths(T1, vec![path("10.1.0.0/16", 65000, 2, Some(60010))]),
        paths(T2, vec![path("10.1.0.0/16", 65001, 0, Some(60050))]),
    ]);
    assert_eq!(
        show(&b),
        [add("10.1.0.0/16", 0, 30), add("10.1.0.0/16", 1, 50)],
        "one batch for both peers"
    );
    assert_eq!(w.selected("10.1.0.0/16"), ["T1"]);
    let info = w
        .bgp
        .route_info(&w.cfg, pfx("10.1.0.0/16"), Via::Tunnel(0))
        .unwrap();
    assert_eq!(info["peer"], "T1");
    assert_eq!(info["as_path"], "65000 65000 65000 65200");
    assert_eq!(info["communities"][0], "13335:60010");
    assert_eq!(
        info["priority_explanation"],
        "13335:60010 → 10, +20 for 2 prepends = 30"
    );

    // 13335:60901 on T1: 501000 + 20; T2 takes over. Remove and Add, nothing else.
    let b = w.feed(vec![Event::Update {
        peer: T1,
        announced: vec![path("10.1.0.0/16", 65000, 2, Some(60901))],
        withdrawn: vec![],
    }]);
    assert_eq!(
        show(&b),
        [
            "del 10.1.0.0/16 T1".to_owned(),
            add("10.1.0.0/16", 0, 501_020)
        ]
    );
    assert_eq!(w.selected("10.1.0.0/16"), ["T2"]);

    // The same path again changes nothing: an empty batch.
    let b = w.feed(vec![Event::Update {
        peer: T1,
        announced: vec![path("10.1.0.0/16", 65000, 2, Some(60901))],
        withdrawn: vec![],
    }]);
    assert!(b.is_empty(), "{b:?}");

    // A withdrawal removes the route.
    let b = w.feed(vec![Event::Update {
        peer: T2,
        announced: vec![],
        withdrawn: vec![pfx("10.1.0.0/16")],
    }]);
    assert_eq!(show(&b), ["del 10.1.0.0/16 T2"]);
    assert_eq!(w.selected("10.1.0.0/16"), ["T1"]);
}

#[test]
fn a_lost_session_removes_every_route_of_the_peer_in_one_batch() {
    let mut w = World::new();
    let many: Vec<ReceivedPath> = ["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"]
        .iter()
        .map(|p| path(p, 65001, 0, None))
        .collect();
    w.feed(vec![
        paths(T2, many),
        paths(T1, vec![path("10.1.0.0/16", 65000, 0, None)]),
    ]);
    assert_eq!(
        w.rib
            .routes()
            .filter(|r| r.origin == RouteOrigin::Bgp)
            .count(),
        4
    );
    let b = w.feed(vec![paths(T2, vec![])]);
    assert_eq!(
        show(&b),
        [
            "del 10.1.0.0/16 T2",
            "del 10.2.0.0/16 T2",
            "del 10.3.0.0/16 T2"
        ]
    );
    assert!(
        w.selected("10.2.0.0/16").is_empty(),
        "gone: the default route covers it"
    );
    assert_eq!(
        w.selected("10.1.0.0/16"),
        ["T1"],
        "the other peer's route stays"
    );
}

#[test]
fn stale_paths_keep_their_routes_and_show_it() {
    let mut w = World::new();
    w.feed(vec![paths(T1, vec![path("10.1.0.0/16", 65000, 0, None)])]);
    let mut stale = path("10.1.0.0/16", 65000, 0, None);
    stale.stale = true;
    let b = w.feed(vec![paths(T1, vec![stale])]);
    assert!(
        b.is_empty(),
        "graceful restart: the route stays as it was: {b:?}"
    );
    assert_eq!(w.selected("10.1.0.0/16"), ["T1"]);
    let info = w
        .bgp
        .route_info(&w.cfg, pfx("10.1.0.0/16"), Via::Tunnel(0))
        .unwrap();
    assert_eq!(info["stale"], true);
    let v = w.bgp.peers_view(&w.cfg, SystemTime::now());
    assert_eq!(v[0]["stale"], 1);
    // gobgpd's timer ran out: the adapter reports the peer empty; the route goes.
    let b = w.feed(vec![paths(T1, vec![])]);
    assert_eq!(show(&b), ["del 10.1.0.0/16 T1"]);
}

fn established(peer: Ipv4Addr, ago: Duration) -> PeerStatus {
    PeerStatus {
        address: peer,
        state: crate::bgp::SessionState::Established,
        since: Some(SystemTime::now() - ago),
        hold_time: None,
        keepalive: None,
        graceful_restart_advertised: true,
        graceful_restart_running: false,
        received: 0,
        advertised: 0,
    }
}

#[test]
fn a_restarted_gobgpd_loses_no_route_until_the_peers_are_back() {
    let mut w = World::new();
    w.feed(vec![
        paths(
            T1,
            vec![
                path("10.1.0.0/16", 65000, 0, None),
                path("10.2.0.0/16", 65000, 0, None),
            ],
        ),
        paths(T2, vec![path("10.3.0.0/16", 65001, 0, None)]),
    ]);
    // gobgpd killed and started again: its first listings are empty (no session is up yet).
    let b = w.feed(vec![
        Event::Disconnected("killed".into()),
        Event::Connected,
        paths(T1, vec![]),
        paths(T2, vec![]),
    ]);
    assert!(b.is_empty(), "held over, no route leaves: {b:?}");
    assert_eq!(w.selected("10.2.0.0/16"), ["T1"]);
    assert_eq!(w.selected("10.3.0.0/16"), ["T2"]);
    let info = w
        .bgp
        .route_info(&w.cfg, pfx("10.1.0.0/16"), Via::Tunnel(0))
        .unwrap();
    assert_eq!(info["stale"], true, "held over is shown stale");
    assert_eq!(w.bgp.peers_view(&w.cfg, SystemTime::now())[0]["stale"], 2);
    // T1 is back and sends 10.1.0.0/16 again, but not 10.2.0.0/16: held until it has been
    // established for SETTLE.
    let b = w.feed(vec![Event::Update {
        peer: T1,
        announced: vec![path("10.1.0.0/16", 65000, 0, None)],
        withdrawn: vec![],
    }]);
    assert!(b.is_empty(), "{b:?}");
    let info = w
        .bgp
        .route_info(&w.cfg, pfx("10.1.0.0/16"), Via::Tunnel(0))
        .unwrap();
    assert_eq!(info["stale"], false);
    w.feed(vec![Event::Peers(vec![established(
        T1,
        Duration::from_secs(1),
    )])]);
    assert!(w.expire(Instant::now()).is_empty(), "not settled yet");
    w.feed(vec![Event::Peers(vec![established(T1, SETTLE)])]);
    assert_eq!(show(&w.expire(Instant::now())), ["del 10.2.0.0/16 T1"]);
    assert_eq!(w.selected("10.1.0.0/16"), ["T1"]);
    // T2 never comes back: its paths go when graceful_restart_time (120 s) is up.
    assert!(w
        .expire(Instant::now() + Duration::from_secs(119))
        .is_empty());
    assert_eq!(
        show(&w.expire(Instant::now() + Duration::from_secs(121))),
        ["del 10.3.0.0/16 T2"]
    );
    // The window is over: an empty listing removes at once again.
    assert_eq!(
        show(&w.feed(vec![paths(T1, vec![])])),
        ["del 10.1.0.0/16 T1"]
    );
}

#[test]
fn a_first_connection_holds_nothing_over() {
    let mut w = World::new();
    w.feed(vec![
        Event::Connected,
        paths(T1, vec![path("10.1.0.0/16", 65000, 0, None)]),
    ]);
    assert_eq!(
        show(&w.feed(vec![paths(T1, vec![])])),
        ["del 10.1.0.0/16 T1"]
    );
}

#[test]
fn max_prefixes_refuses_the_excess_and_admits_it_when_room_frees() {
    let mut w = World::new();
    // T1 allows 3.
    let four: Vec<ReceivedPath> = (1..=4)
        .map(|i| path(&format!("10.{i}.0.0/16"), 65000, 0, None))
        .collect();
    let b = w.feed(vec![paths(T1, four)]);
    assert_eq!(b.len(), 3);
    assert!(
        w.selected("10.4.0.0/16").is_empty(),
        "the fourth is refused"
    );
    let v = w.bgp.peers_view(&w.cfg, SystemTime::now());
    assert_eq!(
        (v[0]["received"].as_u64(), v[0]["accepted"].as_u64()),
        (Some(4), Some(3))
    );
    assert_eq!(v[0]["refused"]["max_prefixes"], 1);
    // A newcomer does not push an accepted route out.
    let b = w.feed(vec![Event::Update {
        peer: T1,
        announced: vec![path("10.0.0.0/16", 65000, 0, None)],
        withdrawn: vec![],
    }]);
    assert!(b.is_empty(), "{b:?}");
    // A withdrawal makes room: the first refused prefix, in prefix order, comes in.
    let b = w.feed(vec![Event::Update {
        peer: T1,
        announced: vec![],
        withdrawn: vec![pfx("10.2.0.0/16")],
    }]);
    assert_eq!(
        show(&b),
        [add("10.0.0.0/16", 0, 100), "del 10.2.0.0/16 T1".to_owned()]
    );
    let v = w.bgp.peers_view(&w.cfg, SystemTime::now());
    assert_eq!(v[0]["refused"]["max_prefixes"], 1, "10.4/16 still waits");
}

#[test]
fn public_prefixes_are_counted_as_refused_and_never_installed() {
    let mut w = World::new();
    let b = w.feed(vec![paths(
        T2,
        vec![
            path("8.8.8.0/24", 65001, 0, None),
            path("10.9.0.0/16", 65001, 0, None),
        ],
    )]);
    assert_eq!(show(&b), [add("10.9.0.0/16", 1, 100)]);
    let v = w.bgp.peers_view(&w.cfg, SystemTime::now());
    assert_eq!(v[1]["refused"]["public_prefix"], 1);
}

#[test]
fn a_static_route_through_the_same_tunnel_survives_the_bgp_route_leaving() {
    let text = CFG.replace(
        "[bgp]",
        "[[routes]]\nprefix = \"10.1.0.0/16\"\nnexthop = \"T1\"\npriority = 100\n\n[bgp]",
    );
    let mut w = World::with(&text);
    let b = w.feed(vec![paths(T1, vec![path("10.1.0.0/16", 65000, 0, None)])]);
    assert_eq!(show(&b), [add("10.1.0.0/16", 0, 100)]);
    assert_eq!(
        w.rib.routes_for(pfx("10.1.0.0/16")).len(),
        2,
        "two routes: static and BGP"
    );
    // At equal priority static wins: the group is the static route (both go into T1).
    assert_eq!(w.selected("10.1.0.0/16"), ["T1"]);
    let b = w.feed(vec![paths(T1, vec![])]);
    assert_eq!(
        show(&b),
        ["del 10.1.0.0/16 T1", "add 10.1.0.0/16 T1 100 static"],
        "the table removes by (prefix, next hop): the static route comes back in the same batch"
    );
    let left = w.rib.routes_for(pfx("10.1.0.0/16"));
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].source, left[0].origin),
        (RouteSource::Static, RouteOrigin::Config)
    );
}

#[test]
fn a_static_route_at_a_lower_priority_wins_over_bgp() {
    let text = CFG.replace(
        "[bgp]",
        "[[routes]]\nprefix = \"10.1.0.0/16\"\nnexthop = \"T3\"\npriority = 30\n\n[bgp]",
    );
    let mut w = World::with(&text);
    w.feed(vec![paths(
        T1,
        vec![path("10.1.0.0/16", 65000, 2, Some(60010))],
    )]);
    // Both at 30: the static one is preferred.
    assert_eq!(w.selected("10.1.0.0/16"), ["T3"]);
    w.feed(vec![paths(
        T1,
        vec![path("10.1.0.0/16", 65000, 0, Some(60010))],
    )]);
    assert_eq!(w.selected("10.1.0.0/16"), ["T1"], "10 beats the static 30");
}

#[test]
fn a_reload_keeps_learned_routes_and_drops_a_removed_peers() {
    let mut w = World::new();
    w.feed(vec![
        paths(T1, vec![path("10.1.0.0/16", 65000, 0, None)]),
        paths(T2, vec![path("10.2.0.0/16", 65001, 0, None)]),
    ]);
    // The same file: both kept.
    let (b, routes) = w.bgp.reloaded(&w.cfg);
    assert_eq!(routes.len(), 2);
    assert_eq!(b.installed.len(), 2);
    // T2's session removed from the file, and T1 moved (a tunnel inserted before it).
    let text = CFG
        .replace("[tunnels.bgp]\nasn = 65001\n", "")
        .replace(
            "[[tunnels]]\nname = \"T1\"",
            "[[tunnels]]\nname = \"T0\"\ntype = \"gre\"\ncustomer_endpoint = \"198.51.100.9\"\nedge_endpoint = \"203.0.113.10\"\ninterface_address = \"10.100.0.8/31\"\n\n[[tunnels]]\nname = \"T1\"",
        );
    let next = parse(&text, &Host { cores: vec![0, 1] }).unwrap();
    let (b, routes) = w.bgp.reloaded(&next);
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].prefix, pfx("10.1.0.0/16"));
    assert_eq!(routes[0].via, Via::Tunnel(1), "T1 is now the second tunnel");
    assert!(b
        .route_info(&next, pfx("10.1.0.0/16"), Via::Tunnel(1))
        .is_some());
    assert_eq!(b.peers.len(), 1);
}

#[test]
fn events_from_unknown_peers_are_ignored() {
    let mut w = World::new();
    let b = w.feed(vec![paths(
        Ipv4Addr::new(10, 100, 0, 5),
        vec![path("10.1.0.0/16", 65002, 0, None)],
    )]);
    assert!(b.is_empty());
}

#[test]
fn the_adapter_state_follows_its_events() {
    let mut w = World::new();
    assert_eq!(w.bgp.adapter, Adapter::Unknown);
    w.feed(vec![Event::Disconnected("refused".into())]);
    assert!(matches!(&w.bgp.adapter, Adapter::Disconnected(_, e) if e == "refused"));
    w.feed(vec![Event::Connected]);
    assert!(matches!(w.bgp.adapter, Adapter::Connected(_)));
}

/// Figures for perf/RESULTS.md (release build):
/// `cargo test --release --lib bgp::sync::tests::measure -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_a_peer_with_many_prefixes() {
    const N: u32 = 50_000;
    let mut w = World::with(&CFG.replace("max_prefixes = 3", "max_prefixes = 100000"));
    let all: Vec<ReceivedPath> = (0..N)
        .map(|i| {
            let mut p = path("10.0.0.0/24", 65000, (i % 3) as usize, Some(60150));
            p.prefix = Prefix {
                addr: 0x0a00_0000 + (i << 8),
                len: 24,
            };
            p
        })
        .collect();
    let t = std::time::Instant::now();
    let mut touched = BTreeSet::new();
    w.bgp.event(&w.cfg, paths(T1, all), &mut touched);
    let policy = t.elapsed();
    let t = std::time::Instant::now();
    let plan = w.bgp.plan(&w.rib, &touched, false);
    let planned = t.elapsed();
    let changes = plan.changes();
    let t = std::time::Instant::now();
    w.rib.apply(&changes, &mut w.publisher).unwrap();
    let applied = t.elapsed();
    w.bgp.commit_all(plan);
    println!(
        "{N} paths from one peer: policy {:.1} ms, plan {:.1} ms, table {:.1} ms ({} changes)",
        policy.as_secs_f64() * 1e3,
        planned.as_secs_f64() * 1e3,
        applied.as_secs_f64() * 1e3,
        changes.len()
    );
    let t = std::time::Instant::now();
    let b = w.feed(vec![Event::Update {
        peer: T1,
        announced: vec![path("10.0.5.0/24", 65000, 0, Some(60010))],
        withdrawn: vec![],
    }]);
    println!(
        "one update beside {N} routes: {:.3} ms end to end ({} changes)",
        t.elapsed().as_secs_f64() * 1e3,
        b.len()
    );
    let t = std::time::Instant::now();
    let b = w.feed(vec![paths(T1, vec![])]);
    println!(
        "session loss, {N} routes removed in one batch: {:.1} ms ({} changes)",
        t.elapsed().as_secs_f64() * 1e3,
        b.len()
    );
    assert_eq!(b.len(), N as usize);
}

/// The world with a fleet route reflector at 172.16.0.1.
const RR: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);

fn fleet() -> World {
    World::with(&CFG.replace(
        "asn = 64512\n",
        "asn = 64512\n[[bgp.route_reflectors]]\naddress = \"172.16.0.1\"\n",
    ))
}

/// A path as a reflector hands it over: the customer's next hop, an ADD-PATH id.
fn via(mut p: ReceivedPath, next_hop: Ipv4Addr, id: u32) -> ReceivedPath {
    p.next_hop = next_hop;
    p.path_id = id;
    p
}

#[test]
fn reflected_paths_are_taken_as_their_tunnel_peers_and_the_rest_refused() {
    let mut w = fleet();
    // Two nodes' customers for one prefix (ADD-PATH: both), T1's with 2 prepends of its own
    // AS 65000 (30), T2's at 50; a path naming a port gateway and one naming nothing.
    let b = w.feed(vec![paths(
        RR,
        vec![
            via(path("10.1.0.0/16", 65000, 2, Some(60010)), T1, 1),
            via(path("10.1.0.0/16", 65001, 0, Some(60050)), T2, 2),
            via(
                path("10.2.0.0/16", 65001, 0, None),
                Ipv4Addr::new(192, 0, 2, 9),
                3,
            ),
            via(
                path("10.3.0.0/16", 65001, 0, None),
                Ipv4Addr::new(10, 9, 9, 9),
                4,
            ),
        ],
    )]);
    assert_eq!(
        show(&b),
        [add("10.1.0.0/16", 0, 30), add("10.1.0.0/16", 1, 50)]
    );
    assert_eq!(w.selected("10.1.0.0/16"), ["T1"]);
    assert!(w.selected("10.2.0.0/16").is_empty() && w.selected("10.3.0.0/16").is_empty());
    let info = w
        .bgp
        .route_info(&w.cfg, pfx("10.1.0.0/16"), Via::Tunnel(0))
        .unwrap();
    assert_eq!(info["peer"], "T1");
    assert_eq!(info["reflector"], "172.16.0.1");
    assert_eq!(
        info["priority_explanation"],
        "13335:60010 → 10, +20 for 2 prepends = 30"
    );
    let v = w.bgp.peers_view(&w.cfg, SystemTime::now());
    let rr = v
        .iter()
        .find(|p| p["name"] == "reflector:172.16.0.1")
        .unwrap();
    assert_eq!(rr["asn"], 64512);
    assert_eq!(
        (rr["received"].clone(), rr["accepted"].clone()),
        (4.into(), 2.into())
    );
    assert_eq!(rr["installed"], 2);
    assert_eq!(rr["refused"]["next_hop_no_tunnel"], 2);
    // The tunnel peers' own figures do not count the reflected paths.
    let t1 = v.iter().find(|p| p["name"] == "T1").unwrap();
    assert_eq!(
        (t1["received"].clone(), t1["installed"].clone()),
        (0.into(), 0.into())
    );
}

#[test]
fn a_path_learned_here_and_reflected_back_is_one_route() {
    let mut w = fleet();
    let own = path("10.1.0.0/16", 65000, 1, None);
    let b = w.feed(vec![
        paths(T1, vec![via(own.clone(), T1, 0)]),
        paths(RR, vec![via(own.clone(), T1, 9)]),
    ]);
    assert_eq!(
        show(&b),
        [add("10.1.0.0/16", 0, 110)],
        "one route, added once"
    );
    // The reflector withdraws its copy: the node's own keeps the route, nothing changes.
    assert!(w.feed(vec![paths(RR, vec![])]).is_empty());
    assert_eq!(w.selected("10.1.0.0/16"), ["T1"]);
    // And the other way round: the own path goes, the reflected one (back again) holds it.
    w.feed(vec![paths(RR, vec![via(own.clone(), T1, 9)])]);
    assert!(w.feed(vec![paths(T1, vec![])]).is_empty());
    assert_eq!(w.selected("10.1.0.0/16"), ["T1"]);
    // Both gone: removed.
    assert_eq!(
        show(&w.feed(vec![paths(RR, vec![])])),
        ["del 10.1.0.0/16 T1"]
    );
}

#[test]
fn two_reflected_paths_for_one_tunnel_keep_the_lower_priority_in_any_order() {
    let (a, b) = (
        via(path("10.1.0.0/16", 65000, 3, None), T1, 1),
        via(path("10.1.0.0/16", 65000, 0, Some(60150)), T1, 2),
    );
    for list in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
        let mut w = fleet();
        // 100 + 30 for 3 prepends = 130 beats 150.
        assert_eq!(
            show(&w.feed(vec![paths(RR, list)])),
            [add("10.1.0.0/16", 0, 130)]
        );
    }
}

#[test]
fn withdrawing_one_customers_reflected_path_moves_only_its_tunnel() {
    let mut w = fleet();
    let t1 = via(path("10.1.0.0/16", 65000, 0, Some(60010)), T1, 1);
    let t2 = via(path("10.1.0.0/16", 65001, 0, Some(60050)), T2, 2);
    let t2b = via(path("10.5.0.0/16", 65001, 0, None), T2, 3);
    w.feed(vec![paths(RR, vec![t1.clone(), t2.clone(), t2b.clone()])]);
    assert_eq!(w.selected("10.1.0.0/16"), ["T1"]);
    let b = w.feed(vec![paths(RR, vec![t2, t2b])]);
    assert_eq!(show(&b), ["del 10.1.0.0/16 T1"], "T2's routes untouched");
    assert_eq!(w.selected("10.1.0.0/16"), ["T2"]);
    assert_eq!(w.selected("10.5.0.0/16"), ["T2"]);
}

#[test]
fn a_reload_keeps_reflected_routes_while_the_reflector_stays() {
    let mut w = fleet();
    w.feed(vec![paths(
        RR,
        vec![via(path("10.1.0.0/16", 65000, 0, None), T1, 1)],
    )]);
    let (b, routes) = w.bgp.reloaded(&w.cfg);
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].via, Via::Tunnel(0));
    assert!(b
        .route_info(&w.cfg, pfx("10.1.0.0/16"), Via::Tunnel(0))
        .is_some());
    // Without the reflector: its paths are gone.
    let (_, routes) = w.bgp.reloaded(&World::new().cfg);
    assert!(routes.is_empty());
}

/// A reflector is listed whole on every change (ADD-PATH): what one more path costs beside
/// N reflected ones, split over two tunnels. `cargo test --release --lib
/// measure_a_reflector -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_a_reflector_with_many_paths() {
    const N: u32 = 40_000;
    let mut w = World::with(
        &CFG.replace("max_prefixes = 3", "max_prefixes = 100000")
            .replace("asn = 65001\n", "asn = 65001\nmax_prefixes = 100000\n")
            .replace(
                "asn = 64512\n",
                "asn = 64512\n[[bgp.route_reflectors]]\naddress = \"172.16.0.1\"\n",
            ),
    );
    let mut all: Vec<ReceivedPath> = (0..N)
        .map(|i| {
            let (asn, nh) = if i % 2 == 0 { (65000, T1) } else { (65001, T2) };
            let mut p = via(
                path("10.0.0.0/24", asn, (i % 3) as usize, Some(60150)),
                nh,
                i,
            );
            p.prefix = Prefix {
                addr: 0x0a00_0000 + ((i / 2) << 8),
                len: 24,
            };
            p
        })
        .collect();
    let t = std::time::Instant::now();
    let b = w.feed(vec![paths(RR, all.clone())]);
    assert_eq!(b.len(), N as usize);
    println!(
        "{N} reflected paths, first listing: {:.1} ms end to end ({} changes)",
        t.elapsed().as_secs_f64() * 1e3,
        b.len()
    );
    all.push(via(path("10.200.0.0/24", 65000, 0, Some(60010)), T1, N));
    let t = std::time::Instant::now();
    let b = w.feed(vec![paths(RR, all)]);
    println!(
        "one more path, the reflector listed whole again: {:.1} ms end to end ({} changes)",
        t.elapsed().as_secs_f64() * 1e3,
        b.len()
    );
    assert_eq!(b.len(), 1);
}
