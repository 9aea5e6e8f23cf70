//! What `show routes`, `show tunnels` and `show firewall` answer.
use super::handlers::Plane;
use crate::config;
use crate::ctl_proto::PAGE;
use crate::lpm::Prefix;
use crate::route::select::{self, Lost};
use crate::route::{NextHop, SET_ANYCAST, SET_LOCAL};
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashSet};
use std::net::Ipv4Addr;

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
/// when the table has nothing for it. Without either, one page of at most [`PAGE`] prefixes
/// from `cursor` on, with the `cursor` of the next page when there is one: a reply, and the
/// time the management thread spends on it, stay bounded whatever the size of the table.
pub fn routes(plane: &Plane, query: Option<&str>, cursor: Option<&str>) -> Result<Value, String> {
    let s = plane.publisher.current();
    let query = RouteQuery::parse(query)?;
    let cursor = cursor
        .map(|c| config::parse_prefix(c).map_err(|e| format!("cursor: {e}")))
        .transpose()?;
    if cursor.is_some() && !matches!(query, RouteQuery::All) {
        return Err("a cursor pages the whole table: give it without a prefix or address".into());
    }
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
    let invisible_here = |r: &&config::RouteConf| !r.visible(&plane.cfg.node);
    let (listed, next) = match only {
        Some(p) => (vec![p], None),
        None => page(
            plane
                .rib
                .prefixes()
                .map(|(p, _)| p)
                .chain(plane.rib.routes().filter(invisible_here).map(|r| r.prefix)),
            cursor,
            PAGE,
        ),
    };
    let in_page: HashSet<Prefix> = listed.iter().copied().collect();
    let mut out = Vec::new();
    for (prefix, set) in listed
        .iter()
        .filter_map(|p| Some((*p, plane.rib.value(*p)?)))
    {
        if set == SET_LOCAL || set == SET_ANYCAST {
            out.push(
                json!({"prefix": prefix.to_string(), "local": local_label(plane.cfg, prefix, set)}),
            );
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
                let mut v = json!({"nexthop": s.nexthop_name(c.nexthop), "priority": c.priority, "effective": c.effective(&s.health),
                       "weight": c.weight, "source": source, "origin": route.map(|r| r.origin.name()),
                       "description": route.map(|r| r.description.as_str()), "health": health, "status": status});
                // A learned route: its peer, communities, AS path and how its priority came about.
                if let Some(info) = route
                    .filter(|r| r.origin == config::RouteOrigin::Bgp)
                    .and_then(|r| plane.bgp.route_info(plane.cfg, prefix, r.via))
                {
                    v["bgp"] = info;
                }
                v
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
        .filter(invisible_here)
        .filter(|r| in_page.contains(&r.prefix))
        .map(|r| {
            let regions: Vec<&str> = r.regions.iter().map(|g| g.code()).collect();
            json!({"prefix": r.prefix.to_string(), "nexthop": plane.rib.via_name(r.via), "description": r.description,
                   "origin": r.origin.name(),
                   "status": format!("not visible here: scoped to regions {regions:?} colos {:?}", r.colos)})
        })
        .collect();
    if let (Some(p), true) = (only, out.is_empty()) {
        // Routes scoped to other regions or colos are not in this node's table: say which,
        // and still fail, as for a prefix nobody configured.
        let scoped: Vec<String> = invisible
            .iter()
            .map(|r| {
                format!(
                    "via {}: {}",
                    r["nexthop"].as_str().unwrap_or("?"),
                    r["status"].as_str().unwrap_or("")
                )
            })
            .collect();
        if scoped.is_empty() {
            return Err(format!("{p} is not in the table"));
        }
        return Err(format!(
            "{p} is not in the table here; its routes are {}",
            scoped.join("; ")
        ));
    }
    let mut reply = json!({"generation": s.generation, "routes": out, "invisible": invisible});
    if let RouteQuery::Address(a) = query {
        reply["for"] = json!(Ipv4Addr::from(a).to_string());
    }
    if let Some(n) = next {
        reply["cursor"] = json!(n.to_string());
    }
    Ok(reply)
}

/// What a local /32 is: an address of ours (a port's, a tunnel interface's, an anycast
/// endpoint) or a subnet's network or broadcast address.
fn local_label(cfg: &config::Config, prefix: Prefix, set: u32) -> String {
    if set == SET_ANYCAST {
        return "anycast tunnel endpoint".into();
    }
    if let Some(p) = cfg.ports.iter().find(|p| p.addr == prefix.addr) {
        return format!("own address (port {})", p.name);
    }
    if let Some(t) = cfg.tunnels.iter().find(|t| t.local_addr == prefix.addr) {
        return format!("own address (tunnel {} interface)", t.name);
    }
    "subnet network or broadcast address, not forwarded".into()
}

/// Listing order: longest prefix first, then by address.
type Key = (Reverse<u8>, u32);

fn key(p: Prefix) -> Key {
    (Reverse(p.len), p.addr)
}

/// The first `n` distinct prefixes at or after `from` in listing order, and the one after
/// them, where the next page starts. Keeps `n + 1` at most: O(m log n) for m prefixes, so a
/// page of a table of millions costs milliseconds and no copy of the table.
fn page(
    all: impl Iterator<Item = Prefix>,
    from: Option<Prefix>,
    n: usize,
) -> (Vec<Prefix>, Option<Prefix>) {
    let from = from.map(key);
    let mut best: BTreeSet<Key> = BTreeSet::new();
    for k in all.map(key) {
        if from.is_some_and(|f| k < f) || best.len() > n && best.last().is_some_and(|l| k >= *l) {
            continue;
        }
        if best.insert(k) && best.len() > n + 1 {
            best.pop_last();
        }
    }
    let next = if best.len() > n {
        best.pop_last()
    } else {
        None
    };
    let prefix = |(Reverse(len), addr): Key| Prefix { addr, len };
    (best.into_iter().map(prefix).collect(), next.map(prefix))
}

pub fn tunnels(plane: &Plane) -> Value {
    let s = plane.publisher.current();
    // Since the last `clear counters`.
    let c = plane.obs.live(plane.cfg, s, plane.counters).total;
    let now = crate::dpdk::tsc();
    let list: Vec<Value> = s
        .tunnels
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let tc = c.tunnels.get(i).copied().unwrap_or_default();
            let mut v = json!({"name": t.name, "type": format!("{:?}", t.kind).to_lowercase(),
                   "edge_endpoint": Ipv4Addr::from(t.local).to_string(), "customer_endpoint": Ipv4Addr::from(t.remote).to_string(),
                   "health": s.health.get(i).map(|h| h.name()), "mtu": t.mtu, "mss_clamp": t.mss_clamp,
                   "rx_packets": tc.rx_packets, "tx_packets": tc.tx_packets, "drops": tc.drop_total()});
            if let (Some(h), Value::Object(m)) = (plane.checker.view(&t.name, now), &mut v) {
                m.extend(h.fields());
            }
            v
        })
        .collect();
    json!({"generation": s.generation, "tunnels": list})
}

/// Each tunnel's per-second rates over the last [`SECONDS`](crate::mgmt::history::SECONDS)
/// seconds, oldest first, in config order; only `only`'s when given.
pub fn history(plane: &Plane, only: Option<&str>) -> Result<Value, String> {
    let s = plane.publisher.current();
    if let Some(n) = only.filter(|n| !s.tunnels.iter().any(|t| t.name == *n)) {
        return Err(format!("no tunnel named `{n}`"));
    }
    let list: Vec<Value> = s
        .tunnels
        .iter()
        .filter(|t| only.is_none_or(|n| t.name == n))
        .map(|t| match plane.obs.history.get(&t.name) {
            Some(ring) => ring.to_json(&t.name),
            // Configured since the last sample: nothing yet.
            None => crate::mgmt::history::Ring::default().to_json(&t.name),
        })
        .collect();
    Ok(
        json!({"generation": s.generation, "window_s": crate::mgmt::history::SECONDS, "history": list}),
    )
}

/// The rules in order with what each decided since it was configured (counters follow a
/// rule's identity across reloads), and the default action's count.
pub fn firewall(plane: &Plane) -> Value {
    let c = plane
        .obs
        .live(plane.cfg, plane.publisher.current(), plane.counters)
        .total;
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
    json!({"generation": plane.publisher.generation(), "firewall": {
        "default_action": fw.default_action, "rules": rules,
        "default": {"packets": c.firewall_default[0], "bytes": c.firewall_default[1]}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        config::parse_prefix(s).unwrap()
    }

    #[test]
    fn pages_cover_every_prefix_once_in_listing_order() {
        let all: Vec<Prefix> = (0..25u32)
            .map(|i| Prefix {
                addr: i << 24,
                len: 8,
            })
            .chain((0..10u32).map(|i| Prefix {
                addr: 10 << 24 | i << 8,
                len: 24,
            }))
            .collect();
        // Duplicates (a prefix both in the FIB and scoped elsewhere) are listed once.
        let input = || all.iter().rev().copied().chain(all.iter().copied().take(5));
        let (mut seen, mut cursor, mut pages) = (Vec::new(), None, 0);
        loop {
            let (page, next) = page(input(), cursor, 7);
            assert!(page.len() <= 7);
            seen.extend(page);
            pages += 1;
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(pages, 5);
        let mut want = all.clone();
        want.sort_by_key(|p| key(*p));
        assert_eq!(seen, want);
        assert_eq!(seen[0], p("10.0.0.0/24"));
        // A table that fits one page has no cursor.
        assert_eq!(page(input(), None, 100).1, None);
    }
}
