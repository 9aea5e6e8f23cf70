//! The control socket: a Unix socket (mode 0600) the management thread polls between ticks.
//! One JSON request per connection, one JSON response: `{"ok": true, ...}` or
//! `{"ok": false, "error": "..."}`. Every change is validated whole, then published as a new
//! snapshot by RCU, or refused whole with the reason; the running table is never half-changed.
use crate::config::{self, Config, Health, Host};
use crate::datapath::SharedCounters;
use crate::rcu::Publisher;
use crate::route::select::{self, Lost};
use crate::route::{ApplyError, Change, Rib, Snapshot, NH_ANYCAST, NH_LOCAL};
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
        "show-routes" => Ok(show_routes(plane, req.get("prefix").and_then(Value::as_str))),
        "show-tunnels" => Ok(show_tunnels(plane)),
        "show-firewall" => Ok(show_firewall(plane)),
        "set-health" => {
            let name = arg("tunnel")?;
            let health: Health = serde_json::from_value(json!(arg("health")?))
                .map_err(|_| "health must be healthy, degraded or down".to_owned())?;
            let cur = plane.publisher.current().clone();
            let t = cur.tunnels.iter().position(|t| t.name == name).ok_or_else(|| format!("no tunnel named `{name}`"))?;
            let g = plane.publisher.generation() + 1;
            let next = cur.with_health(t as u16, health, g).ok_or("no such tunnel")?;
            let rebuilt = cur.sets_through(t as u16);
            plane.publisher.publish(Arc::new(next))?;
            log::info!("ctl: tunnel {name} is {}, {rebuilt} route set(s) rebuilt, generation {g}", health.name());
            Ok(json!({"ok": true, "generation": g, "groups_rebuilt": rebuilt}))
        }
        "add-route" => {
            let route: config::RawRoute = serde_json::from_value(req.get("route").cloned().unwrap_or(Value::Null))
                .map_err(|e| format!("route: {e}"))?;
            let change = Change::Add(plane.cfg.validate_route(&route).map_err(|e| e.to_string())?);
            apply_changes(plane, vec![change], "add-route", |_| None)
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
            for (i, a) in req.get("add").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let route: config::RawRoute = serde_json::from_value(a.clone()).map_err(|e| format!("add[{i}]: {e}"))?;
                let rc = plane.cfg.validate_route(&route).map_err(|e| format!("add[{i}]: {e}"))?;
                changes.push(Change::Add(rc));
            }
            let dels = req.get("del").and_then(Value::as_array).map_or(0, Vec::len);
            // Name a bad change as the file does: [[del]] tables first, then [[add]].
            apply_changes(plane, changes, "update-routes", move |i| {
                Some(if i < dels { format!("del[{i}]") } else { format!("add[{}]", i - dels) })
            })
        }
        "reload" => {
            let next = super::load_for_reload(plane.config_path, plane.cfg, plane.host)?;
            publish_config(plane, next, "reload")
        }
        other => Err(format!("unknown command `{other}` (show-routes, show-tunnels, show-firewall, set-health, add-route, del-route, update-routes, reload)")),
    }
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

/// Each prefix with its group, and every candidate with why it won or lost.
fn show_routes(plane: &Plane, only: Option<&str>) -> Value {
    let s = plane.publisher.current();
    let mut out = Vec::new();
    for (prefix, set) in plane.rib.prefixes().iter() {
        if only.is_some_and(|o| o != prefix.to_string()) {
            continue;
        }
        if *set == NH_LOCAL || *set == NH_ANYCAST {
            out.push(json!({"prefix": prefix.to_string(), "local": if *set == NH_LOCAL { "own address" } else { "anycast tunnel endpoint" }}));
            continue;
        }
        let (Some(cands), Some(group)) = (s.sets.get(*set as usize), s.group(*set)) else {
            continue;
        };
        let total: u32 = group.weights.iter().map(|w| *w as u32).sum();
        let selected: Vec<Value> = group
            .members
            .iter()
            .zip(&group.weights)
            .map(|(nh, w)| json!({"nexthop": s.nexthop_name(*nh), "weight": w, "share": *w as f64 / total.max(1) as f64}))
            .collect();
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
                json!({"nexthop": s.nexthop_name(c.nexthop), "priority": c.priority, "effective": c.effective(&s.health),
                       "weight": c.weight, "source": if c.implicit { "implicit".into() } else { format!("{:?}", c.source).to_lowercase() },
                       "health": health, "status": status})
            })
            .collect();
        out.push(json!({"prefix": prefix.to_string(), "effective": group.effective, "group": selected, "candidates": candidates}));
    }
    let invisible: Vec<Value> = plane
        .rib
        .routes()
        .filter(|r| !r.visible(&plane.cfg.node))
        .filter(|r| only.is_none_or(|o| o == r.prefix.to_string()))
        .map(|r| {
            let regions: Vec<&str> = r.regions.iter().map(|g| g.code()).collect();
            json!({"prefix": r.prefix.to_string(), "nexthop": plane.rib.via_name(r.via),
                   "status": format!("not visible here: scoped to regions {regions:?} colos {:?}", r.colos)})
        })
        .collect();
    json!({"ok": true, "generation": s.generation, "routes": out, "invisible": invisible})
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
