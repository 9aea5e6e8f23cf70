//! The management thread's side of the control socket: each request, already parsed, is
//! answered here between ticks. Every change is validated whole, then published as a new
//! snapshot by RCU, or refused whole with the reason; the running table is never half-changed.
use crate::config::{self, Config, Health, Host};
use crate::ctl_proto::{HealthSetting, Reply, Request, Withdrawal};
use crate::datapath::SharedCounters;
use crate::lpm::Prefix;
use crate::rcu::Publisher;
use crate::route::{ApplyError, Change, Rib, Snapshot};
use crate::wire::MacAddr;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

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
    /// The health checks: `set-health` overrides them, `show tunnels` reports them.
    pub checker: &'a mut crate::health::checker::Checker,
    /// The DPDK ports, by config position (empty in tests without an EAL).
    pub ports: &'a [crate::dpdk::Port],
    /// Uptime, the counters baseline, link and neighbour states.
    pub obs: &'a mut crate::mgmt::observe::Observe,
    /// The BGP peers' paths and the routes the table holds from them.
    pub bgp: &'a mut crate::bgp::sync::Bgp,
}

/// Answers one request. Every change, and every refused one, is logged with the client's uid.
pub fn handle(req: Request, uid: Option<u32>, plane: &mut Plane) -> Reply {
    let change = req.change();
    let who = super::server::who(uid);
    let result = dispatch(req, &who, plane);
    match (&change, &result) {
        (Some(c), Ok(v)) => log::info!("ctl ({who}): {c}: done, generation {}", v["generation"]),
        (Some(c), Err(e)) => log::warn!("ctl ({who}): {c}: refused: {e}"),
        (None, _) => {}
    }
    match result {
        Ok(v) => Reply::ok(v),
        Err(e) => Reply::error(e),
    }
}

fn dispatch(req: Request, who: &str, plane: &mut Plane) -> Result<Value, String> {
    match req {
        Request::ShowRoutes { prefix, cursor } => {
            super::show::routes(plane, prefix.as_deref(), cursor.as_deref())
        }
        Request::ShowTunnels {
            history: true,
            tunnel,
        } => super::show::history(plane, tunnel.as_deref()),
        Request::ShowTunnels {
            tunnel: Some(_), ..
        } => Err("a tunnel is given with `history` only".into()),
        Request::ShowTunnels { .. } => {
            // A tunnel added by a reload this tick is shown with its checks.
            let now = crate::dpdk::tsc();
            plane
                .checker
                .sync(plane.cfg, plane.publisher.current(), now);
            Ok(super::show::tunnels(plane))
        }
        Request::ShowFirewall {} => Ok(super::show::firewall(plane)),
        Request::ShowArr {} => Ok(super::show_arr::arr(plane)),
        Request::ShowBgp {} => Ok(super::show_bgp::bgp(plane)),
        Request::SetHealth { tunnel, health } => set_health(plane, &tunnel, health),
        Request::AddRoute { route } => {
            let change = Change::Add(ctl_route(plane.cfg, &route).map_err(|e| e.to_string())?);
            let reply = apply_changes(plane, vec![change], "ctl add-route", |_| None)?;
            plane.runtime.push(route);
            Ok(reply)
        }
        Request::DelRoute { prefix, nexthop } => {
            let change = removal(plane.cfg, &prefix, &nexthop)?;
            apply_changes(plane, vec![change], "ctl del-route", |_| None)
        }
        Request::UpdateRoutes { add, del } => update_routes(plane, add, del),
        Request::Reload { discard_runtime } => {
            crate::mgmt::reload::reload(plane, discard_runtime, &format!("ctl, {who}"))
        }
        Request::ShowStats {} => Ok(super::views::stats(plane)),
        Request::ShowPorts {} => Ok(super::views::ports(plane)),
        Request::ShowNeighbors {} => Ok(super::views::neighbors(plane)),
        Request::ShowStatus {} => Ok(super::views::status(plane)),
        Request::ClearCounters {} => Ok(super::views::clear(plane)),
        // Answered later, by `Control::poll` (see `tap`).
        Request::Trace { .. } | Request::Capture { .. } => {
            Err("trace and capture are answered by the control loop".into())
        }
    }
}

/// A manual health (the checks leave it alone until `auto`), or `auto`: the checks' verdict,
/// or the config's health where checks are disabled.
fn set_health(plane: &mut Plane, name: &str, setting: HealthSetting) -> Result<Value, String> {
    let t = plane
        .publisher
        .current()
        .tunnels
        .iter()
        .position(|t| t.name == name)
        .ok_or_else(|| format!("no tunnel named `{name}`"))?;
    let now = crate::dpdk::tsc();
    plane
        .checker
        .sync(plane.cfg, plane.publisher.current(), now);
    let health = plane
        .checker
        .set_manual(name, setting.manual())
        .ok_or_else(|| format!("tunnel `{name}` is not known to the health checks yet"))?;
    let source = plane
        .checker
        .view(name, now)
        .map_or("?", |v| v.source.name());
    let Some((g, rebuilt)) = publish_health(plane.publisher, &[(t as u16, health)])? else {
        return Ok(
            json!({"changed": false, "generation": plane.publisher.generation(),
                         "health": health.name(), "health_source": source}),
        );
    };
    log::info!(
        "ctl: tunnel {name} is {} ({source}), {rebuilt} route set(s) rebuilt, generation {g}",
        health.name()
    );
    Ok(
        json!({"changed": true, "generation": g, "groups_rebuilt": rebuilt,
                 "health": health.name(), "health_source": source}),
    )
}

/// Publishes tunnels in new healths as one generation, rebuilding only the route sets
/// through them: the one path for `set-health` and the health checks. None when every tunnel
/// already has its health; otherwise the new generation and the route sets rebuilt.
pub fn publish_health(
    publisher: &mut Publisher<Snapshot>,
    changes: &[(u16, Health)],
) -> Result<Option<(u64, usize)>, String> {
    let cur = publisher.current().clone();
    let g = publisher.generation() + 1;
    let mut next: Option<Snapshot> = None;
    let mut rebuilt = 0;
    for &(t, h) in changes {
        let base = next.as_ref().unwrap_or(&cur);
        if base.health.get(t as usize) == Some(&h) {
            continue;
        }
        rebuilt += cur.sets_through(t);
        next = Some(base.with_health(t, h, g).ok_or("no such tunnel")?);
    }
    let Some(next) = next else { return Ok(None) };
    publisher.publish(Arc::new(next))?;
    Ok(Some((g, rebuilt)))
}

/// One batch, applied whole or refused whole: withdrawals first, then additions.
fn update_routes(
    plane: &mut Plane,
    add: Vec<config::RawRoute>,
    del: Vec<Withdrawal>,
) -> Result<Value, String> {
    let mut changes = Vec::new();
    for (i, d) in del.iter().enumerate() {
        changes
            .push(removal(plane.cfg, &d.prefix, &d.nexthop).map_err(|e| format!("del[{i}]: {e}"))?);
    }
    for (i, route) in add.iter().enumerate() {
        let rc = ctl_route(plane.cfg, route).map_err(|e| format!("add[{i}]: {e}"))?;
        changes.push(Change::Add(rc));
    }
    if changes.is_empty() {
        return Ok(
            json!({"changed": false, "changes": 0, "generation": plane.publisher.generation()}),
        );
    }
    let dels = del.len();
    // Name a bad change as the file does: [[del]] tables first, then [[add]].
    let reply = apply_changes(plane, changes, "ctl update-routes", move |i| {
        Some(if i < dels {
            format!("del[{i}]")
        } else {
            format!("add[{}]", i - dels)
        })
    })?;
    plane.runtime.extend(add);
    Ok(reply)
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

/// `what` names the change in the log (`ctl add-route`, `bgp`).
pub(crate) fn apply_in_place(
    plane: &mut Plane,
    changes: Vec<Change>,
    what: &str,
    label: impl Fn(usize) -> Option<String>,
) -> Result<Value, String> {
    let t = std::time::Instant::now();
    match plane.rib.apply(&changes, plane.publisher) {
        Ok(a) => {
            log::info!(
                "{what}: {} change(s), {} prefix(es), {} FIB entries rewritten in place, generation {} ({:.1} ms)",
                changes.len(), a.prefixes, a.entries, a.generation, t.elapsed().as_secs_f64() * 1e3
            );
            Ok(
                json!({"generation": a.generation, "changes": changes.len(), "prefixes_changed": a.prefixes,
                      "entries": a.entries, "new_sets": a.new_sets, "rebuilt": false, "routes": plane.rib.route_count(),
                      "apply_us": t.elapsed().as_micros() as u64}),
            )
        }
        Err(ApplyError::Refused(e)) => Err(e),
        Err(ApplyError::Invalid { change, reason }) => Err(match label(change) {
            Some(l) => format!("{l}: {reason}"),
            None => reason,
        }),
        Err(ApplyError::NeedsRebuild(why)) => {
            // A new gateway needs a next-hop id (and maybe an ARP slot); route-set ids that
            // ran out are numbered afresh. Either way the whole table is built again.
            let reason = ApplyError::NeedsRebuild(why).to_string();
            log::info!("{what}: {reason}");
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
            let mut reply = publish_config(plane, next, what)?;
            reply["rebuilt"] = true.into();
            reply["rebuild_reason"] = reason.into();
            Ok(reply)
        }
    }
}

fn publish_config(plane: &mut Plane, next: Config, what: &str) -> Result<Value, String> {
    let (snap, rib) = crate::mgmt::rebuild(&next, plane.macs, plane.publisher, plane.counters)?;
    let g = snap.generation;
    let prefixes = snap.fib.len();
    plane.publisher.publish(Arc::new(snap))?;
    *plane.rib = rib;
    *plane.cfg = next;
    log::info!("{what}: table generation {g} published ({prefixes} prefixes)");
    Ok(json!({"generation": g, "prefixes": prefixes}))
}

#[cfg(test)]
#[path = "handlers_tests.rs"]
mod tests;
