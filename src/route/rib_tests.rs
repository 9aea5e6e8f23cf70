//! Route changes applied in place agree with a full rebuild of the same routes, batches are
//! applied whole or refused whole, and new route sets reach the workers before the FIB
//! names them.
use crate::config::{parse, Config, Host, RawRoute};
use crate::rcu::{self, Publisher};
use crate::route::{ApplyError, Change, Rebuild, Rib, Snapshot};
use crate::wire::MacAddr;
use proptest::prelude::*;
use std::sync::Arc;

const BASE: &str = r#"
[node]
anycast_addresses = ["203.0.113.10"]

[[ports]]
name = "wan0"
device = "net_null0"
mac = "02:00:00:00:00:01"
address = "192.0.2.1/24"

[[workers]]
core = 1
rx = [{ port = "wan0" }]

[[neighbors]]
ip = "192.0.2.254"
mac = "02:00:00:00:00:fe"
port = "wan0"

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[[tunnels]]
name = "T1"
type = "gre"
customer_endpoint = "198.51.100.1"
edge_endpoint = "203.0.113.10"
interface_address = "10.255.0.2/31"

[[tunnels]]
name = "T2"
type = "ipip"
customer_endpoint = "198.51.100.2"
edge_endpoint = "203.0.113.10"
interface_address = "10.255.0.4/31"
"#;

fn route_toml(prefix: &str, nexthop: &str, priority: u32) -> String {
    format!("\n[[routes]]\nprefix = \"{prefix}\"\nnexthop = \"{nexthop}\"\npriority = {priority}\n")
}

fn cfg(routes: &str) -> Result<Config, String> {
    parse(&(BASE.to_owned() + routes), &Host { cores: vec![0, 1] }).map_err(|e| e.to_string())
}

fn macs(c: &Config) -> Vec<MacAddr> {
    c.ports.iter().map(|p| p.mac.unwrap()).collect()
}

fn raw(prefix: &str, nexthop: &str, priority: u32) -> RawRoute {
    RawRoute {
        prefix: prefix.into(),
        nexthop: nexthop.into(),
        priority,
        weight: None,
        description: String::new(),
        scope: None,
        source: Default::default(),
    }
}

fn add(c: &Config, prefix: &str, nexthop: &str, priority: u32) -> Change {
    Change::Add(c.validate_route(&raw(prefix, nexthop, priority)).unwrap())
}

fn del(c: &Config, prefix: &str, nexthop: &str) -> Change {
    let r = c.validate_route(&raw(prefix, nexthop, 0)).unwrap();
    Change::Remove {
        prefix: r.prefix,
        via: r.via,
    }
}

fn start(
    routes: &str,
    readers: usize,
) -> (Config, Rib, Publisher<Snapshot>, Vec<rcu::Reader<Snapshot>>) {
    let c = cfg(routes).unwrap();
    let (snap, rib) = Snapshot::build_with_rib(&c, &macs(&c), 1, None).unwrap();
    let (p, rs) = rcu::new(Arc::new(snap), readers);
    (c, rib, p, rs)
}

/// What a snapshot does with `ip`: the next hops of its group, by name, with weights.
fn route_of(s: &Snapshot, ip: u32) -> Option<Vec<(String, u16)>> {
    let set = s.fib.lookup(ip)?;
    let Some(g) = s.group(set) else {
        return Some(vec![(format!("special {set}"), 0)]);
    };
    let mut v: Vec<(String, u16)> = g
        .members
        .iter()
        .zip(&g.weights)
        .map(|(m, w)| (s.nexthop_name(*m), *w))
        .collect();
    v.sort();
    Some(v)
}

fn ip(s: &str) -> u32 {
    u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
}

#[test]
fn add_and_withdraw_in_place() {
    let (c, mut rib, mut p, _) = start(&route_toml("10.1.0.0/16", "T1", 100), 0);
    let fib = p.current().fib.clone();
    let a = rib
        .apply(&[add(&c, "10.1.2.0/24", "T2", 100)], &mut p)
        .unwrap();
    assert_eq!((a.prefixes, a.entries), (1, 1));
    assert!(
        Arc::ptr_eq(&fib, &p.current().fib),
        "edited in place, not rebuilt"
    );
    let s = p.current().clone();
    assert_eq!(route_of(&s, ip("10.1.2.3")), Some(vec![("T2".into(), 100)]));
    assert_eq!(route_of(&s, ip("10.1.3.3")), Some(vec![("T1".into(), 100)]));
    // A second route at the same priority makes an ECMP group: a new route set.
    let a = rib
        .apply(&[add(&c, "10.1.2.0/24", "T1", 100)], &mut p)
        .unwrap();
    assert_eq!(a.new_sets, 1);
    let s = p.current().clone();
    assert_eq!(
        route_of(&s, ip("10.1.2.3")),
        Some(vec![("T1".into(), 100), ("T2".into(), 100)])
    );
    rib.apply(
        &[del(&c, "10.1.2.0/24", "T1"), del(&c, "10.1.2.0/24", "T2")],
        &mut p,
    )
    .unwrap();
    let s = p.current().clone();
    assert_eq!(
        route_of(&s, ip("10.1.2.3")),
        Some(vec![("T1".into(), 100)]),
        "back to the /16"
    );
    assert_eq!(
        rib.matching_prefix(ip("10.1.2.3")).unwrap().to_string(),
        "10.1.0.0/16"
    );
    assert_eq!(rib.route_count(), 2);
}

#[test]
fn refused_batches_change_nothing() {
    let (c, mut rib, mut p, _) = start(&route_toml("10.1.0.0/16", "T1", 100), 0);
    let g = p.generation();
    let cases: Vec<(Vec<Change>, &str)> = vec![
        (
            vec![
                add(&c, "10.2.0.0/16", "T2", 100),
                add(&c, "10.1.0.0/16", "T1", 300),
            ],
            "change 1: duplicate route: 10.1.0.0/16 via T1",
        ),
        (
            vec![del(&c, "10.9.0.0/16", "T1")],
            "no route 10.9.0.0/16 via T1",
        ),
        (
            vec![del(&c, "0.0.0.0/0", "192.0.2.254")],
            "tunnel T1 would lose its route toward customer endpoint 198.51.100.1",
        ),
    ];
    for (changes, want) in cases {
        match rib.apply(&changes, &mut p) {
            Err(e @ (ApplyError::Refused(_) | ApplyError::Invalid { .. })) => {
                let e = e.to_string();
                assert!(e.contains(want), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(p.generation(), g, "nothing published");
    let s = p.current().clone();
    assert_eq!(route_of(&s, ip("10.2.0.1")).unwrap()[0].0, "192.0.2.254");
    assert!(matches!(
        rib.apply(&[add(&c, "10.3.0.0/16", "192.0.2.77", 100)], &mut p),
        Err(ApplyError::NeedsRebuild(Rebuild::NewNextHop))
    ));
    // A new gateway sends the batch to a full rebuild only once every change is valid.
    assert!(matches!(
        rib.apply(
            &[
                add(&c, "10.3.0.0/16", "192.0.2.77", 100),
                del(&c, "10.9.0.0/16", "T1")
            ],
            &mut p
        ),
        Err(ApplyError::Invalid { change: 1, .. })
    ));
}

#[test]
fn sixty_fifth_route_at_one_priority_is_refused() {
    let (c, mut rib, mut p, _) = start("", 0);
    let mut changes = Vec::new();
    // 64 distinct routes for one prefix and priority: vary the scope (the vendor's limit
    // counts routes, whatever their next hop).
    for i in 0..65 {
        let mut r = raw("10.4.0.0/16", if i % 2 == 0 { "T1" } else { "T2" }, 100);
        r.scope = Some(crate::config::RawScope {
            regions: vec![],
            colos: vec![format!("colo{i}")],
        });
        changes.push(Change::Add(c.validate_route(&r).unwrap()));
    }
    match rib.apply(&changes, &mut p) {
        Err(e @ ApplyError::Invalid { change: 64, .. }) => {
            let e = e.to_string();
            assert!(e.contains("change 64: more than 64 routes"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    rib.apply(&changes[..64], &mut p).unwrap();
}

#[test]
fn new_route_sets_reach_every_worker_before_the_fib_names_them() {
    let (c, mut rib, mut p, mut readers) = start(&route_toml("10.1.0.0/16", "T1", 100), 1);
    // A worker that never takes a snapshot: the update must not touch the FIB.
    match rib.apply(&[add(&c, "10.1.0.0/16", "T2", 100)], &mut p) {
        Err(ApplyError::Refused(e)) => assert!(e.contains("did not take"), "{e}"),
        other => panic!("{other:?}"),
    }
    let s = p.current().clone();
    assert_eq!(route_of(&s, ip("10.1.0.1")), Some(vec![("T1".into(), 100)]));
    // A worker polling as real ones do: the update goes through.
    let mut reader = readers.pop().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut bad = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let s = reader.refresh().clone();
                // Every FIB value this worker meets has a group in its own snapshot.
                if let Some(set) = s.fib.lookup(0x0a01_0001) {
                    if s.group(set).is_none() {
                        bad += 1;
                    }
                }
            }
            bad
        })
    };
    // Route set ids beyond the first failed attempt's are still valid here.
    rib.apply(&[add(&c, "10.1.0.0/16", "T2", 100)], &mut p)
        .unwrap();
    rib.apply(&[add(&c, "10.1.0.0/16", "T2", 50)], &mut p)
        .unwrap_err();
    rib.apply(&[add(&c, "10.1.9.0/24", "T2", 50)], &mut p)
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(worker.join().unwrap(), 0);
}

/// A change: add (prefix index, tunnel, priority) or withdraw (prefix index, tunnel).
fn arb_change() -> impl Strategy<Value = (bool, usize, u8, u32)> {
    (
        any::<bool>(),
        0usize..PREFIXES.len(),
        1u8..=2,
        prop_oneof![Just(100u32), Just(200)],
    )
}

const PREFIXES: [&str; 8] = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.128/25",
    "10.1.2.200/32",
    "10.1.3.0/24",
    "172.16.0.0/12",
    // Around T1's and T2's interface subnets (a route inside one is refused: see
    // `a_tunnel_interface_subnet_stays_routed_through_its_tunnel_whatever_the_source`).
    "10.255.0.0/16",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// After any sequence of batches, the table edited in place forwards every probe as a
    /// table rebuilt from the same routes does; a batch the rebuild refuses is refused too.
    #[test]
    fn in_place_edits_match_a_full_rebuild(
        batches in proptest::collection::vec(proptest::collection::vec(arb_change(), 1..4), 1..6),
        probes in proptest::collection::vec(any::<u32>(), 24),
    ) {
        let (c, mut rib, mut p, _) = start("", 0);
        let mut model: Vec<(usize, u8, u32)> = Vec::new();
        for batch in batches {
            let mut next = model.clone();
            let mut changes = Vec::new();
            let mut valid = true;
            for (is_add, pi, t, prio) in batch {
                let (prefix, tun) = (PREFIXES[pi], format!("T{t}"));
                if is_add {
                    valid &= !next.iter().any(|(q, u, _)| (*q, *u) == (pi, t));
                    next.push((pi, t, prio));
                    changes.push(add(&c, prefix, &tun, prio));
                } else {
                    let before = next.len();
                    next.retain(|(q, u, _)| (*q, *u) != (pi, t));
                    valid &= next.len() < before;
                    changes.push(del(&c, prefix, &tun));
                }
            }
            let r = rib.apply(&changes, &mut p);
            prop_assert_eq!(r.is_ok(), valid, "{:?}", r);
            if valid {
                model = next;
            }
            let routes: String = model.iter()
                .map(|(pi, t, prio)| route_toml(PREFIXES[*pi], &format!("T{t}"), *prio)).collect();
            let rc = cfg(&routes).unwrap();
            let (fresh, fresh_rib) = Snapshot::build_with_rib(&rc, &macs(&rc), 1, None).unwrap();
            let live = p.current().clone();
            for a in probes.iter().map(|x| 0x0a01_0200 | (x & 0x3ff)).chain(probes.iter().copied())
                .chain(probes.iter().map(|x| 0x0a00_0000 | (x & 0xffffff))) {
                prop_assert_eq!(route_of(&live, a), route_of(&fresh, a), "{}", std::net::Ipv4Addr::from(a));
                prop_assert_eq!(rib.matching_prefix(a), fresh_rib.matching_prefix(a));
            }
        }
    }
}

/// `n` routes, each at a priority of its own and so a route set of its own: route `i` is
/// 10.(i / 256).(i % 256).0/24 via T1 at priority `1 + i`.
fn one_set_each(n: usize) -> String {
    (0..n)
        .map(|i| {
            route_toml(
                &format!("10.{}.{}.0/24", i >> 8, i & 255),
                "T1",
                1 + i as u32,
            )
        })
        .collect()
}

/// Route sets up to the limit a 2-byte FIB entry allows are taken; one more is refused, at
/// build and by a change, with the limit named, and the table is left as it was.
#[test]
fn route_sets_past_the_limit_are_refused() {
    use crate::limits::MAX_ROUTE_SETS;
    let routes = one_set_each;
    let (_, _, p, _) = start("", 0);
    let own = p.current().sets.len();
    let (c, mut rib, mut p, _) = start(&routes(MAX_ROUTE_SETS - own), 0);
    assert_eq!(p.current().sets.len(), MAX_ROUTE_SETS);
    let g = p.generation();
    let want = format!(
        "routes: the table needs {} route sets (distinct lists of next hops), limit is {MAX_ROUTE_SETS}",
        MAX_ROUTE_SETS + 1
    );
    match rib.apply(&[add(&c, "10.200.0.0/16", "T2", 7)], &mut p) {
        Err(ApplyError::Refused(e)) => assert_eq!(e, want),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.generation(), g, "nothing published");
    assert_eq!(
        route_of(p.current(), ip("10.200.0.1")).unwrap()[0].0,
        "192.0.2.254"
    );
    // A change reusing a set is still applied.
    rib.apply(&[add(&c, "10.200.0.0/16", "T1", 1)], &mut p)
        .unwrap();
    assert_eq!(route_of(p.current(), ip("10.200.0.1")).unwrap()[0].0, "T1");
    let c = cfg(&routes(MAX_ROUTE_SETS - own + 1)).unwrap();
    match Snapshot::build_with_rib(&c, &macs(&c), 1, None) {
        Err(e) => assert_eq!(e, want),
        Ok(_) => panic!("built past the route-set limit"),
    }
}

/// Set ids are not reused between rebuilds: once withdrawn routes have left ids behind and a
/// change needs one past the limit, `apply` asks for a rebuild (which numbers only the live
/// sets) instead of refusing, publishes nothing, and names both figures. With every id live
/// it still refuses (above).
#[test]
fn route_set_ids_run_out_with_dead_sets_asks_for_a_renumbering_rebuild() {
    use crate::limits::MAX_ROUTE_SETS;
    let (_, _, p, _) = start("", 0);
    let own = p.current().sets.len();
    let n = MAX_ROUTE_SETS - own;
    let (c, mut rib, mut p, _) = start(&one_set_each(n), 0);
    // Withdraw 1000 routes: their sets stay held, unused.
    let gone: Vec<Change> = (0..1000)
        .map(|i| del(&c, &format!("10.{}.{}.0/24", i >> 8, i & 255), "T1"))
        .collect();
    rib.apply(&gone, &mut p).unwrap();
    assert_eq!(p.current().sets.len(), MAX_ROUTE_SETS, "ids are held");
    let g = p.generation();
    let fresh = add(&c, "10.200.0.0/16", "T1", 100_000);
    match rib.apply(std::slice::from_ref(&fresh), &mut p) {
        Err(e @ ApplyError::NeedsRebuild(Rebuild::RenumberSets { held, live })) => {
            assert_eq!((held, live), (MAX_ROUTE_SETS, MAX_ROUTE_SETS - 1000 + 1));
            assert_eq!(
                e.to_string(),
                format!(
                    "{MAX_ROUTE_SETS} route-set ids held, {} in use: renumbering them needs a \
                     full rebuild",
                    MAX_ROUTE_SETS - 999
                )
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.generation(), g, "nothing published");
    assert_eq!(
        route_of(p.current(), ip("10.200.0.1")).unwrap()[0].0,
        "192.0.2.254"
    );
    // A change that reuses a held set still goes in place.
    rib.apply(&[add(&c, "10.200.0.0/16", "T1", 1000)], &mut p)
        .unwrap();
    assert_eq!(route_of(p.current(), ip("10.200.0.1")).unwrap()[0].0, "T1");
}

#[test]
fn a_tunnel_interface_subnet_stays_routed_through_its_tunnel_whatever_the_source() {
    // The config and `ctl` refuse such routes; one that comes another way (BGP) is held but
    // never replaces the tunnel's own route.
    let (c, mut rib, mut p, _) = start("", 0);
    let mut r = c.validate_route(&raw("10.1.0.0/16", "T2", 100)).unwrap();
    for prefix in ["10.255.0.2/31", "10.255.0.3/32"] {
        r.prefix = crate::config::parse_prefix(prefix).unwrap();
        r.origin = crate::config::RouteOrigin::Bgp;
        r.source = crate::config::RouteSource::Bgp;
        rib.apply(&[Change::Add(r.clone())], &mut p).unwrap();
        let s = p.current().clone();
        assert_eq!(
            route_of(&s, ip("10.255.0.3")),
            Some(vec![("T1".into(), 1)]),
            "{prefix}"
        );
    }
    // A full rebuild with the same routes agrees.
    let mut c2 = c.clone();
    c2.routes.extend(
        rib.routes()
            .filter(|r| r.origin == crate::config::RouteOrigin::Bgp)
            .cloned(),
    );
    let (s, _) = Snapshot::build_with_rib(&c2, &macs(&c2), 1, None).unwrap();
    assert_eq!(route_of(&s, ip("10.255.0.3")), Some(vec![("T1".into(), 1)]));
}
