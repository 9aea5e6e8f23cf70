//! Reloading the config file into the running table (SIGHUP or `anygate ctl reload`).
//!
//! The file is the truth for its own routes: they are installed as written, so a file route
//! withdrawn with `ctl` comes back. Routes added with `ctl` are kept across reloads, checked
//! again against the new file (one whose tunnel or gateway is gone, or that the file now
//! holds itself, is dropped and named), unless the reload discards them. Nothing is published
//! when nothing changed. The reply and the log say which routes went and came. Routes
//! learned by BGP are kept too: `bgp::sync` decides them again under the new file.
use super::control::Plane;
use crate::config::{
    Config, RawRoute, RouteConf, RouteOrigin, RouteSource, Via, MAX_SAME_PRIORITY,
};
use crate::lpm::Prefix;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// Routes listed by name in a reply or a log line; beyond this, only counted.
const LISTED: usize = 10;

/// What makes two routes the same for an operator: everything but where they came from.
type RouteKey = (
    Prefix,
    String,
    u32,
    u16,
    RouteSource,
    Vec<String>,
    Vec<String>,
    String,
);

fn key(r: &RouteConf, via: &str) -> RouteKey {
    (
        r.prefix,
        via.to_owned(),
        r.priority,
        r.weight,
        r.source,
        r.regions.iter().map(|g| g.code().to_owned()).collect(),
        r.colos.clone(),
        r.description.clone(),
    )
}

fn show(k: &RouteKey) -> String {
    format!("{} via {} priority {}", k.0, k.1, k.2)
}

/// The new config's routes plus the run-time routes still valid against it.
struct Merged {
    kept: Vec<RawRoute>,
    /// Run-time routes that did not survive, with why.
    dropped: Vec<(String, String)>,
}

fn merge_runtime(next: &mut Config, runtime: &[RawRoute], discard: bool) -> Merged {
    let mut m = Merged {
        kept: Vec::new(),
        dropped: Vec::new(),
    };
    type Same = (
        Prefix,
        Via,
        RouteSource,
        Vec<crate::config::Region>,
        Vec<String>,
    );
    let same = |r: &RouteConf| -> Same {
        (
            r.prefix,
            r.via,
            r.source,
            r.regions.clone(),
            r.colos.clone(),
        )
    };
    let mut present: HashSet<Same> = next.routes.iter().map(same).collect();
    let mut per_priority: HashMap<(Prefix, u32), usize> = HashMap::new();
    for r in &next.routes {
        *per_priority.entry((r.prefix, r.priority)).or_default() += 1;
    }
    for raw in runtime {
        let name = format!(
            "{} via {} priority {}",
            raw.prefix, raw.nexthop, raw.priority
        );
        if discard {
            m.dropped.push((name, "discarded by the reload".into()));
            continue;
        }
        let mut rc = match next.validate_route(raw) {
            Ok(rc) => rc,
            Err(e) => {
                m.dropped.push((name, e.to_string()));
                continue;
            }
        };
        if !present.insert(same(&rc)) {
            m.dropped.push((name, "the file now has this route".into()));
            continue;
        }
        let n = per_priority.entry((rc.prefix, rc.priority)).or_default();
        if *n >= MAX_SAME_PRIORITY {
            m.dropped.push((
                name,
                format!("more than {MAX_SAME_PRIORITY} routes at this priority"),
            ));
            continue;
        }
        *n += 1;
        rc.origin = RouteOrigin::Ctl;
        next.routes.push(rc);
        m.kept.push(raw.clone());
    }
    m
}

fn listing(keys: &[&RouteKey]) -> Value {
    let mut v: Vec<String> = keys.iter().take(LISTED).map(|k| show(k)).collect();
    v.sort();
    json!({"count": keys.len(), "routes": v})
}

fn summary(what: &str, keys: &[&RouteKey]) -> String {
    let mut s = format!("{} {what}", keys.len());
    if !keys.is_empty() && keys.len() <= LISTED {
        let mut names: Vec<String> = keys.iter().map(|k| show(k)).collect();
        names.sort();
        s += &format!(" ({})", names.join(", "));
    }
    s
}

/// The ARR flow table is made once, with `[arr]` as it was then (see README, `[arr]`): once it
/// exists, a changed `[arr]` would be ignored, so the reload is refused, as `[metrics]` is.
fn arr_unchanged(next: &Config, running: &Config) -> Result<(), String> {
    if next.raw.arr == running.raw.arr {
        return Ok(());
    }
    Err(
        "[arr] changed; the ARR flow table already exists with the old [arr] (made when a \
         tunnel first had automatic_return_routing): this needs a restart"
            .into(),
    )
}

/// Keys read at start only keep their running value in `next` (and its raw copy, so that
/// such a change alone publishes nothing); a change is logged, against what actually runs.
fn keep_start_only(next: &mut Config, running: &Config, who: &str) {
    let (file, live) = (&next.node.control_socket, &running.node.control_socket);
    if file != live {
        log::warn!(
            "reload ({who}): node.control_socket changed to `{file}`; the socket stays `{live}` until a restart"
        );
    }
    let (file, live) = (&next.node.control_group, &running.node.control_group);
    if file != live {
        log::warn!(
            "reload ({who}): node.control_group changed to {}; the socket keeps {} until a restart",
            file.as_deref().map_or("none".into(), |g| format!("`{g}`")),
            live.as_deref().map_or("none".into(), |g| format!("`{g}`"))
        );
    }
    next.node.control_socket = running.node.control_socket.clone();
    next.node.control_group = running.node.control_group.clone();
    next.raw.node.control_socket = running.raw.node.control_socket.clone();
    next.raw.node.control_group = running.raw.node.control_group.clone();
}

/// Reloads the config file; `who` names the trigger in the log.
pub fn reload(plane: &mut Plane, discard_runtime: bool, who: &str) -> Result<Value, String> {
    let t = Instant::now();
    let mut next = super::load_for_reload(plane.config_path, plane.cfg, plane.host)?;
    if plane.publisher.current().arr.is_some() {
        arr_unchanged(&next, plane.cfg)?;
    }
    keep_start_only(&mut next, plane.cfg, who);
    let merged = merge_runtime(&mut next, plane.runtime, discard_runtime);
    // Learned routes stay, decided again under the new file (peers gone take theirs along).
    let (bgp_next, bgp_routes) = plane.bgp.reloaded(&next);
    next.routes.extend(bgp_routes);

    let old: HashSet<RouteKey> = plane
        .rib
        .routes()
        .map(|r| key(r, &plane.rib.via_name(r.via)))
        .collect();
    let via_name = |v: Via| match v {
        Via::Tunnel(t) => next
            .tunnels
            .get(t as usize)
            .map_or("?".into(), |t| t.name.clone()),
        Via::Gateway { ip, .. } => std::net::Ipv4Addr::from(ip).to_string(),
    };
    let new: HashSet<RouteKey> = next
        .routes
        .iter()
        .map(|r| key(r, &via_name(r.via)))
        .collect();
    let removed: Vec<&RouteKey> = old.difference(&new).collect();
    let added: Vec<&RouteKey> = new.difference(&old).collect();
    let dropped: Vec<Value> = merged
        .dropped
        .iter()
        .map(|(r, why)| json!({"route": r, "reason": why}))
        .collect();
    for (r, why) in &merged.dropped {
        log::warn!("reload ({who}): run-time route {r} not kept: {why}");
    }

    if next.raw == plane.cfg.raw && removed.is_empty() && added.is_empty() {
        log::info!(
            "reload ({who}): nothing changed, table generation {} stays",
            plane.publisher.generation()
        );
        *plane.runtime = merged.kept;
        *plane.bgp = bgp_next;
        plane.obs.config_loaded = std::time::SystemTime::now();
        return Ok(
            json!({"changed": false, "generation": plane.publisher.generation(),
                         "runtime_kept": plane.runtime.len(), "runtime_dropped": dropped}),
        );
    }
    let (snap, rib) = super::rebuild(&next, plane.macs, plane.publisher, plane.counters)?;
    let g = snap.generation;
    let prefixes = snap.fib.len();
    plane.publisher.publish(Arc::new(snap))?;
    *plane.rib = rib;
    *plane.cfg = next;
    *plane.runtime = merged.kept;
    *plane.bgp = bgp_next;
    plane.obs.config_loaded = std::time::SystemTime::now();
    log::info!(
        "reload ({who}): table generation {g} published ({prefixes} prefixes, built in {:.1} ms): {}, {}; {} run-time route(s) kept, {} dropped",
        t.elapsed().as_secs_f64() * 1e3,
        summary("route(s) removed", &removed),
        summary("added", &added),
        plane.runtime.len(),
        dropped.len()
    );
    Ok(
        json!({"changed": true, "generation": g, "prefixes": prefixes,
              "removed": listing(&removed), "added": listing(&added),
              "runtime_kept": plane.runtime.len(), "runtime_dropped": dropped}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Host};

    const CFG: &str = r#"
[[ports]]
name = "wan0"
device = "net_null0"
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

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[[routes]]
prefix = "10.1.0.0/16"
nexthop = "T1"
"#;

    fn raw(prefix: &str, nexthop: &str) -> RawRoute {
        RawRoute {
            prefix: prefix.into(),
            nexthop: nexthop.into(),
            priority: 100,
            weight: None,
            description: String::new(),
            scope: None,
            source: RouteSource::Static,
        }
    }

    #[test]
    fn runtime_routes_are_kept_checked_again_or_dropped_with_the_reason() {
        let host = Host { cores: vec![0, 1] };
        let mut next = parse(CFG, &host).unwrap();
        let runtime = vec![
            raw("10.2.0.0/16", "T1"),
            raw("10.3.0.0/16", "T9"),
            raw("10.1.0.0/16", "T1"),
            raw("10.4.0.0/16", "192.0.2.7"),
        ];
        let m = merge_runtime(&mut next, &runtime, false);
        let kept: Vec<&str> = m.kept.iter().map(|r| r.prefix.as_str()).collect();
        assert_eq!(kept, vec!["10.2.0.0/16", "10.4.0.0/16"]);
        assert_eq!(m.dropped.len(), 2);
        assert!(
            m.dropped[0].0.starts_with("10.3.0.0/16 via T9"),
            "{:?}",
            m.dropped
        );
        assert!(m.dropped[0].1.contains("route.nexthop"), "{:?}", m.dropped);
        assert_eq!(m.dropped[1].1, "the file now has this route");
        assert_eq!(next.routes.len(), 4);
        assert!(next.routes[2..]
            .iter()
            .all(|r| r.origin == RouteOrigin::Ctl));
        assert!(next.routes[..2]
            .iter()
            .all(|r| r.origin == RouteOrigin::Config));

        let mut next = parse(CFG, &host).unwrap();
        let m = merge_runtime(&mut next, &runtime, true);
        assert!(m.kept.is_empty());
        assert_eq!(m.dropped.len(), 4);
        assert_eq!(next.routes.len(), 2);
    }

    #[test]
    fn start_only_keys_keep_the_running_value_and_change_nothing() {
        let host = Host { cores: vec![0, 1] };
        let sock = |p: &str| {
            CFG.replace(
                "[node]\n",
                &format!(
                    "[node]\ncontrol_socket = \"{p}\"\ncontrol_group = \"g{}\"\n",
                    p.len()
                ),
            )
        };
        let running = parse(&sock("/run/a.sock"), &host).unwrap();
        let mut next = parse(&sock("/run/ab.sock"), &host).unwrap();
        assert_ne!(next.raw, running.raw);
        keep_start_only(&mut next, &running, "test");
        // The live socket stays in the running config, so a reload back to the file's first
        // value is no change, and one that changed only this publishes nothing.
        assert_eq!(next.node.control_socket, "/run/a.sock");
        assert_eq!(next.node.control_group.as_deref(), Some("g11"));
        assert_eq!(next.raw, running.raw);
    }

    #[test]
    fn arr_changes_refused_once_the_table_exists() {
        let host = Host { cores: vec![0, 1] };
        let running = parse(CFG, &host).unwrap();
        let next = parse(&format!("{CFG}\n[arr]\nudp_timeout = 5\n"), &host).unwrap();
        assert!(arr_unchanged(&running, &running).is_ok());
        let e = arr_unchanged(&next, &running).unwrap_err();
        assert!(e.starts_with("[arr] changed; "), "{e}");
    }

    /// Reloads `files` in turn into a running table made from the first, as SIGHUP does;
    /// returns each reply.
    fn reload_in_turn(files: &[String]) -> Vec<Result<Value, String>> {
        use crate::route::Snapshot;
        let host = Host { cores: vec![0, 1] };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anygate.toml");
        let mut cfg = parse(&files[0], &host).unwrap();
        let macs: Vec<crate::wire::MacAddr> =
            cfg.ports.iter().map(|_| Default::default()).collect();
        let (snap, mut rib) = Snapshot::build_with_rib(&cfg, &macs, 1, None).unwrap();
        let (mut publisher, _) = crate::rcu::new(Arc::new(snap), 0);
        let counters = crate::datapath::SharedCounters::new(1);
        let mut runtime = Vec::new();
        let mut checker =
            crate::health::checker::Checker::new(crate::dpdk::tsc_hz().max(1), crate::dpdk::tsc());
        let mut obs = crate::mgmt::observe::Observe::new(None);
        let mut bgp: crate::bgp::sync::Bgp = Default::default();
        files[1..]
            .iter()
            .map(|text| {
                std::fs::write(&path, text).unwrap();
                let mut plane = Plane {
                    cfg: &mut cfg,
                    host: &host,
                    macs: &macs,
                    publisher: &mut publisher,
                    rib: &mut rib,
                    config_path: &path,
                    counters: &counters,
                    runtime: &mut runtime,
                    checker: &mut checker,
                    ports: &[],
                    obs: &mut obs,
                    bgp: &mut bgp,
                };
                reload(&mut plane, false, "test")
            })
            .collect()
    }

    #[test]
    fn a_start_only_change_alone_publishes_nothing_and_the_live_value_stays() {
        let sock =
            |p: &str| CFG.replace("[node]\n", &format!("[node]\ncontrol_socket = \"{p}\"\n"));
        let r = reload_in_turn(&[
            sock("/run/a.sock"),
            sock("/run/b.sock"),
            sock("/run/a.sock"),
        ]);
        for v in &r {
            let v = v.as_ref().unwrap();
            assert_eq!(v["changed"], false, "{v}");
            assert_eq!(v["generation"], 1, "{v}");
        }
    }

    #[test]
    fn an_arr_change_is_refused_once_the_flow_table_exists() {
        let arr = CFG.replace(
            "interface_address = \"10.100.0.0/31\"\n",
            "interface_address = \"10.100.0.0/31\"\nautomatic_return_routing = true\n",
        );
        assert_ne!(arr, CFG);
        let r = reload_in_turn(&[
            CFG.to_owned(),
            // No table yet: [arr] is read when the first ARR tunnel makes it.
            format!("{CFG}\n[arr]\nmax_flows = 2048\n"),
            format!("{arr}\n[arr]\nmax_flows = 2048\n"),
            format!("{arr}\n[arr]\nmax_flows = 4096\n"),
            format!("{arr}\n[arr]\nmax_flows = 2048\nudp_timeout = 5\n"),
        ]);
        assert!(r[0].is_ok() && r[1].is_ok(), "{r:?}");
        for e in &r[2..] {
            assert!(
                e.as_ref()
                    .unwrap_err()
                    .starts_with("[arr] changed; the ARR flow table already exists"),
                "{e:?}"
            );
        }
    }
}
