//! The control socket: a Unix socket (mode 0600) the management thread polls between ticks.
//! One JSON request per connection, one JSON response: `{"ok": true, ...}` or
//! `{"ok": false, "error": "..."}`. Every change is validated whole, then published as a new
//! snapshot by RCU, or refused whole with the reason; the running table is never half-changed.
use crate::config::{self, Config, Health, Host};
use crate::datapath::SharedCounters;
use crate::lpm::Prefix;
use crate::rcu::Publisher;
use crate::route::select::{self, Lost};
use crate::route::{ApplyError, Change, NextHop, Rib, Snapshot, NH_ANYCAST, NH_LOCAL};
use crate::wire::MacAddr;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub struct Control {
    listener: UnixListener,
    path: PathBuf,
}

impl Control {
    /// Binds the socket. A live socket at the path belongs to another instance and is left
    /// alone; a stale one is replaced.
    pub fn bind(path: &Path) -> Result<Control, String> {
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(format!("{} is in use by another anygate", path.display()));
            }
            std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(Control {
            listener,
            path: path.to_owned(),
        })
    }

    /// Serves the requests waiting, if any.
    pub fn poll(&self, plane: &mut Plane) {
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = serve(stream, plane);
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What the control socket may read and change.
pub struct Plane<'a> {
    pub cfg: &'a mut Config,
    pub host: &'a Host,
    pub macs: &'a [MacAddr],
    pub publisher: &'a mut Publisher<Snapshot>,
    pub rib: &'a mut Rib,
    pub config_path: &'a Path,
    pub counters: &'a SharedCounters,
    /// Routes added with `ctl` since the last reload, as given: kept across reloads.
    pub runtime: &'a mut Vec<config::RawRoute>,
}

fn serve(stream: UnixStream, plane: &mut Plane) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Value>(&line) {
        Ok(req) => handle(&req, plane).unwrap_or_else(|e| json!({"ok": false, "error": e})),
        Err(e) => json!({"ok": false, "error": format!("request is not JSON: {e}")}),
    };
    let mut w = &stream;
    writeln!(w, "{reply}")
}

fn handle(req: &Value, plane: &mut Plane) -> Result<Value, String> {
    let arg = |k: &str| {
        req.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("missing \"{k}\""))
    };
    match req.get("cmd").and_then(Value::as_str).unwrap_or("") {
        "show-routes" => show_routes(plane, req.get("prefix").and_then(Value::as_str)),
        "show-tunnels" => Ok(show_tunnels(plane)),
        "show-firewall" => Ok(show_firewall(plane)),
        "set-health" => {
            let name = arg("tunnel")?;
            let health: Health = serde_json::from_value(json!(arg("health")?))
                .map_err(|_| "health must be healthy, degraded or down".to_owned())?;
            let cur = plane.publisher.current().clone();
            let t = cur.tunnels.iter().position(|t| t.name == name).ok_or_else(|| format!("no tunnel named `{name}`"))?;
            if cur.health.get(t) == Some(&health) {
                return Ok(json!({"ok": true, "changed": false, "generation": cur.generation}));
            }
            let g = plane.publisher.generation() + 1;
            let next = cur.with_health(t as u16, health, g).ok_or("no such tunnel")?;
            let rebuilt = cur.sets_through(t as u16);
            plane.publisher.publish(Arc::new(next))?;
            log::info!("ctl: tunnel {name} is {}, {rebuilt} route set(s) rebuilt, generation {g}", health.name());
            Ok(json!({"ok": true, "changed": true, "generation": g, "groups_rebuilt": rebuilt}))
        }
        "add-route" => {
            let route: config::RawRoute = serde_json::from_value(req.get("route").cloned().unwrap_or(Value::Null))
                .map_err(|e| format!("route: {e}"))?;
            let change = Change::Add(ctl_route(plane.cfg, &route).map_err(|e| e.to_string())?);
            let reply = apply_changes(plane, vec![change], "add-route", |_| None)?;
            plane.runtime.push(route);
            Ok(reply)
        }
        "del-route" => {
            let change = removal(plane.cfg, arg("prefix")?, arg("nexthop")?)?;
            apply_changes(plane, vec![change], "del-route", |_| None)
        }
        "update-routes" => {
            // One batch, applied whole or refused whole: withdrawals first, then additions.
            let mut changes = Vec::new();
            for (i, d) in req.get("del").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let field = |k: &str| d.get(k).and_then(Value::as_str).ok_or_else(|| format!("del[{i}]: missing \"{k}\""));
                changes.push(removal(plane.cfg, field("prefix")?, field("nexthop")?).map_err(|e| format!("del[{i}]: {e}"))?);
            }
            let mut added = Vec::new();
            for (i, a) in req.get("add").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let route: config::RawRoute = serde_json::from_value(a.clone()).map_err(|e| format!("add[{i}]: {e}"))?;
                let rc = ctl_route(plane.cfg, &route).map_err(|e| format!("add[{i}]: {e}"))?;
                changes.push(Change::Add(rc));
                added.push(route);
            }
            if changes.is_empty() {
                return Ok(json!({"ok": true, "changed": false, "changes": 0, "generation": plane.publisher.generation()}));
            }
            let dels = req.get("del").and_then(Value::as_array).map_or(0, Vec::len);
            // Name a bad change as the file does: [[del]] tables first, then [[add]].
            let reply = apply_changes(plane, changes, "update-routes", move |i| {
                Some(if i < dels { format!("del[{i}]") } else { format!("add[{}]", i - dels) })
            })?;
            plane.runtime.extend(added);
            Ok(reply)
        }
        "reload" => {
            let discard = req.get("discard_runtime").and_then(Value::as_bool).unwrap_or(false);
            super::reload::reload(plane, discard, "ctl")
        }
        other => Err(format!("unknown command `{other}` (show-routes, show-tunnels, show-firewall, set-health, add-route, del-route, update-routes, reload)")),
    }
}

/// A route added with `ctl`: checked as a `[[routes]]` entry, marked as added at run time.
fn ctl_route(
    cfg: &Config,
    raw: &config::RawRoute,
) -> Result<config::RouteConf, config::ConfigErrors> {
    let mut rc = cfg.validate_route(raw)?;
    rc.origin = config::RouteOrigin::Ctl;
    Ok(rc)
}

/// A withdrawal of every route for `prefix` through `nexthop`.
fn removal(cfg: &Config, prefix: &str, nexthop: &str) -> Result<Change, String> {
    let probe = config::RawRoute {
        prefix: prefix.to_owned(),
        nexthop: nexthop.to_owned(),
        priority: 0,
        weight: None,
        description: String::new(),
        scope: None,
        source: Default::default(),
    };
    let r = cfg.validate_route(&probe).map_err(|e| e.to_string())?;
    Ok(Change::Remove {
        prefix: r.prefix,
        via: r.via,
    })
}

/// Applies route changes in place, or rebuilds the whole table when one needs a next hop the
/// table lacks; refused whole either way when anything is wrong.
/// `label(i)` names change `i` in an error, as the request named it (None: a lone change).
fn apply_changes(
    plane: &mut Plane,
    changes: Vec<Change>,
    what: &str,
    label: impl Fn(usize) -> Option<String>,
) -> Result<Value, String> {
    let removed: Vec<(Prefix, config::Via)> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Remove { prefix, via } => Some((*prefix, *via)),
            Change::Add(_) => None,
        })
        .collect();
    let reply = apply_in_place(plane, changes, what, label)?;
    // Withdrawn routes that were added at run time are no longer kept across reloads.
    let Plane { cfg, runtime, .. } = plane;
    runtime.retain(|raw| {
        cfg.validate_route(raw)
            .is_ok_and(|r| !removed.contains(&(r.prefix, r.via)))
    });
    Ok(reply)
}

fn apply_in_place(
    plane: &mut Plane,
    changes: Vec<Change>,
    what: &str,
    label: impl Fn(usize) -> Option<String>,
) -> Result<Value, String> {
    let t = std::time::Instant::now();
    match plane.rib.apply(&changes, plane.publisher) {
        Ok(a) => {
            log::info!(
                "ctl {what}: {} change(s), {} prefix(es), {} FIB entries rewritten in place, generation {} ({:.1} ms)",
                changes.len(), a.prefixes, a.entries, a.generation, t.elapsed().as_secs_f64() * 1e3
            );
            Ok(
                json!({"ok": true, "generation": a.generation, "changes": changes.len(), "prefixes_changed": a.prefixes,
                      "entries": a.entries, "new_sets": a.new_sets, "rebuilt": false, "routes": plane.rib.route_count(),
                      "apply_us": t.elapsed().as_micros() as u64}),
            )
        }
        Err(ApplyError::Refused(e)) => Err(e),
        Err(ApplyError::Invalid { change, reason }) => Err(match label(change) {
            Some(l) => format!("{l}: {reason}"),
            None => reason,
        }),
        Err(ApplyError::NeedsRebuild) => {
            // A new gateway: it needs a next-hop id (and maybe an ARP slot), so rebuild.
            let mut next = plane.cfg.clone();
            next.routes = plane.rib.routes().cloned().collect();
            for c in &changes {
                match c {
                    Change::Add(r) => next.routes.push(r.clone()),
                    Change::Remove { prefix, via } => next
                        .routes
                        .retain(|r| !(r.prefix == *prefix && r.via == *via)),
                }
            }
            publish_config(plane, next, what)
        }
    }
}

fn publish_config(plane: &mut Plane, next: Config, what: &str) -> Result<Value, String> {
    let (snap, rib) = super::rebuild(&next, plane.macs, plane.publisher, plane.counters)?;
    let g = snap.generation;
    let prefixes = snap.fib.len();
    plane.publisher.publish(Arc::new(snap))?;
    *plane.rib = rib;
    *plane.cfg = next;
    log::info!("ctl {what}: table generation {g} published ({prefixes} prefixes)");
    Ok(json!({"ok": true, "generation": g, "prefixes": prefixes}))
}

/// Which prefixes `show routes` shows.
enum RouteQuery {
    All,
    /// Exactly this prefix.
    Prefix(Prefix),
    /// The longest prefix covering this address, as forwarding would find it.
    Address(u32),
}

impl RouteQuery {
    fn parse(q: Option<&str>) -> Result<RouteQuery, String> {
        match q {
            None => Ok(RouteQuery::All),
            Some(q) if q.contains('/') => config::parse_prefix(q).map(RouteQuery::Prefix),
            Some(q) => q
                .parse::<Ipv4Addr>()
                .map(|a| RouteQuery::Address(a.into()))
                .map_err(|_| format!("`{q}` is neither an IPv4 address nor a prefix")),
        }
    }
}

/// Each prefix with its group, and every candidate with why it won or lost. With a prefix,
/// that prefix only; with an address, the prefix forwarding uses for it. Either is an error
/// when the table has nothing for it.
fn show_routes(plane: &Plane, query: Option<&str>) -> Result<Value, String> {
    let s = plane.publisher.current();
    let query = RouteQuery::parse(query)?;
    let only = match query {
        RouteQuery::All => None,
        RouteQuery::Prefix(p) => Some(p),
        RouteQuery::Address(a) => Some(plane.rib.matching_prefix(a).ok_or_else(|| {
            format!(
                "no route for {}: no prefix covers it and there is no default route",
                Ipv4Addr::from(a)
            )
        })?),
    };
    let prefixes = match only {
        None => plane.rib.prefixes(),
        Some(p) => plane.rib.value(p).map(|v| vec![(p, v)]).unwrap_or_default(),
    };
    let mut out = Vec::new();
    for (prefix, set) in prefixes {
        if set == NH_LOCAL || set == NH_ANYCAST {
            let what = if set == NH_ANYCAST {
                "anycast tunnel endpoint"
            } else if plane.cfg.ports.iter().any(|p| p.addr == prefix.addr) {
                "own address"
            } else {
                "subnet network or broadcast address, not forwarded"
            };
            out.push(json!({"prefix": prefix.to_string(), "local": what}));
            continue;
        }
        let (Some(cands), Some(group)) = (s.sets.get(set as usize), s.group(set)) else {
            continue;
        };
        let total: u32 = group.weights.iter().map(|w| *w as u32).sum();
        let selected: Vec<Value> = group
            .members
            .iter()
            .zip(&group.weights)
            .map(|(nh, w)| json!({"nexthop": s.nexthop_name(*nh), "weight": w, "share": *w as f64 / total.max(1) as f64}))
            .collect();
        let routes = plane.rib.routes_of(prefix);
        let candidates: Vec<Value> = cands
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let status = match select::why_lost(cands, &s.health, i) {
                    None => "selected".to_owned(),
                    Some(Lost::Priority { effective, winner }) => format!("lost: effective priority {effective} > {winner}"),
                    Some(Lost::StaticPreferred) => "lost: a static route is preferred at this priority".to_owned(),
                };
                let health = c.tunnel.and_then(|t| s.health.get(t as usize)).map(|h| h.name());
                let route = routes.get(i).copied().flatten();
                let source = match (route, s.nexthops.get(c.nexthop as usize)) {
                    (Some(r), _) => format!("{:?}", r.source).to_lowercase(),
                    (None, Some(NextHop::Connected(_))) => "connected".into(),
                    (None, _) => "implicit".into(),
                };
                json!({"nexthop": s.nexthop_name(c.nexthop), "priority": c.priority, "effective": c.effective(&s.health),
                       "weight": c.weight, "source": source, "origin": route.map(|r| r.origin.name()),
                       "description": route.map(|r| r.description.as_str()), "health": health, "status": status})
            })
            .collect();
        let connected = cands
            .iter()
            .find_map(|c| match s.nexthops.get(c.nexthop as usize) {
                Some(NextHop::Connected(p)) => {
                    plane.cfg.ports.get(*p as usize).map(|p| p.name.as_str())
                }
                _ => None,
            });
        out.push(
            json!({"prefix": prefix.to_string(), "effective": group.effective, "group": selected,
                        "candidates": candidates, "connected": connected}),
        );
    }
    let invisible: Vec<Value> = plane
        .rib
        .routes()
        .filter(|r| !r.visible(&plane.cfg.node))
        .filter(|r| only.is_none_or(|o| o == r.prefix))
        .map(|r| {
            let regions: Vec<&str> = r.regions.iter().map(|g| g.code()).collect();
            json!({"prefix": r.prefix.to_string(), "nexthop": plane.rib.via_name(r.via), "description": r.description,
                   "origin": r.origin.name(),
                   "status": format!("not visible here: scoped to regions {regions:?} colos {:?}", r.colos)})
        })
        .collect();
    if let (Some(p), true, true) = (only, out.is_empty(), invisible.is_empty()) {
        return Err(format!("{p} is not in the table"));
    }
    let mut reply =
        json!({"ok": true, "generation": s.generation, "routes": out, "invisible": invisible});
    if let RouteQuery::Address(a) = query {
        reply["for"] = json!(Ipv4Addr::from(a).to_string());
    }
    Ok(reply)
}

fn show_tunnels(plane: &Plane) -> Value {
    let s = plane.publisher.current();
    let c = s.counters(plane.counters);
    let list: Vec<Value> = s
        .tunnels
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let tc = c.tunnels.get(i).copied().unwrap_or_default();
            json!({"name": t.name, "type": format!("{:?}", t.kind).to_lowercase(),
                   "edge_endpoint": Ipv4Addr::from(t.local).to_string(), "customer_endpoint": Ipv4Addr::from(t.remote).to_string(),
                   "health": s.health.get(i).map(|h| h.name()), "mtu": t.mtu, "mss_clamp": t.mss_clamp,
                   "rx_packets": tc.rx_packets, "tx_packets": tc.tx_packets, "drops": tc.drop_total()})
        })
        .collect();
    json!({"ok": true, "generation": s.generation, "tunnels": list})
}

/// The rules in order with what each decided since it was configured (counters follow a
/// rule's identity across reloads), and the default action's count.
fn show_firewall(plane: &Plane) -> Value {
    let c = plane.publisher.current().counters(plane.counters);
    let fw = &plane.cfg.raw.firewall;
    let rules: Vec<Value> = fw
        .rules
        .iter()
        .zip(&c.rules)
        .enumerate()
        .map(|(i, (r, n))| {
            json!({"index": i, "id": r.id, "action": r.action, "enabled": r.enabled, "expression": r.expression,
                   "description": r.description, "phase": r.phase.as_ref().or(fw.phases.first()),
                   "packets": n[0], "bytes": n[1]})
        })
        .collect();
    json!({"ok": true, "generation": plane.publisher.generation(), "firewall": {
        "default_action": fw.default_action, "rules": rules,
        "default": {"packets": c.firewall_default[0], "bytes": c.firewall_default[1]}}})
}
