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

/// Reloads the config file; `who` names the trigger in the log.
pub fn reload(plane: &mut Plane, discard_runtime: bool, who: &str) -> Result<Value, String> {
    let t = Instant::now();
    let mut next = super::load_for_reload(plane.config_path, plane.cfg, plane.host)?;
    if next.node.control_socket != plane.cfg.node.control_socket {
        log::warn!(
            "reload ({who}): node.control_socket changed to `{}`; the socket stays `{}` until a restart",
            next.node.control_socket,
            plane.cfg.node.control_socket
        );
    }
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
}
