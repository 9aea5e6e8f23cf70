//! The route table on the management thread: every route, visible here or not, and the
//! editor of the published FIB. Route changes (`anygate ctl`, later BGP) are applied here
//! incrementally: only the prefixes they touch are recomputed, and only the FIB entries those
//! prefixes cover are rewritten, in place, while workers forward.
//!
//! Order of an update, so that no worker ever meets a value it cannot resolve:
//! 1. every change is checked and staged; anything wrong refuses the whole batch untouched;
//! 2. route sets the FIB does not have yet are published in a snapshot, and the updater
//!    waits until every worker holds it (one burst: workers poll the RCU channel per loop);
//! 3. FIB entries are rewritten (each a single 16-bit store);
//! 4. a final snapshot publishes the new generation (and any changed tunnel underlay).
use super::ecmp;
use super::select::Candidate;
use super::snapshot::{Snapshot, SET_ANYCAST, SET_LOCAL};
use crate::config::{Config, NodeConf, RouteConf, RouteSource, Via, MAX_SAME_PRIORITY};
use crate::limits::MAX_ROUTE_SETS;
use crate::lpm::{BuildError, Editor, Prefix};
use crate::rcu::Publisher;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::limits::MAX_TBL8_GROUPS;
/// How long an update waits for every worker to take new route sets.
const SYNC_TIMEOUT: Duration = Duration::from_secs(1);

/// One route change.
#[derive(Debug, Clone)]
pub enum Change {
    Add(RouteConf),
    /// Every route for `prefix` through `via`.
    Remove {
        prefix: Prefix,
        via: Via,
    },
}

#[derive(Debug)]
pub enum ApplyError {
    /// Refused whole, with the reason; nothing changed.
    Refused(String),
    /// Change `change` (0-based, in the batch) is wrong; nothing changed. The caller names
    /// the change as its user wrote it (`del[2]`, `add[0]`).
    Invalid { change: usize, reason: String },
    /// Every change is valid, but the whole table must be rebuilt with the changes applied.
    NeedsRebuild(Rebuild),
}

/// Why a batch needs a full rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// A change names a gateway that is no next hop yet: it needs a next-hop id.
    NewNextHop,
    /// The batch would take route-set ids past the limit, but fewer sets than that are in
    /// use: ids are not reused between rebuilds, and a rebuild numbers only the live ones.
    RenumberSets {
        /// Ids the running table has handed out.
        held: usize,
        /// Sets the table needs after the batch.
        live: usize,
    },
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            ApplyError::Refused(e) => f.write_str(e),
            ApplyError::Invalid { change, reason } => write!(f, "change {change}: {reason}"),
            ApplyError::NeedsRebuild(Rebuild::NewNextHop) => {
                f.write_str("a new next hop needs a full rebuild")
            }
            ApplyError::NeedsRebuild(Rebuild::RenumberSets { held, live }) => write!(
                f,
                "{held} route-set ids held, {live} in use: renumbering them needs a full rebuild"
            ),
        }
    }
}

impl From<String> for ApplyError {
    fn from(s: String) -> Self {
        ApplyError::Refused(s)
    }
}

/// What an applied batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub generation: u64,
    /// Prefixes whose FIB value changed.
    pub prefixes: usize,
    /// FIB entries rewritten.
    pub entries: usize,
    /// Route sets created (each published before the FIB pointed to it).
    pub new_sets: usize,
}

pub struct Rib {
    fib: Editor,
    /// Configured and runtime routes by prefix, in the order they came.
    routes: HashMap<Prefix, Vec<RouteConf>>,
    /// Routes anygate adds itself (port subnets, tunnel interface subnets, neighbour /32s):
    /// used where no configured route for the same prefix is visible. Configured routes for a
    /// port's own subnet, or inside a tunnel's, are refused by validation, so connected and
    /// tunnel interface routes always stand.
    implicit: HashMap<Prefix, Vec<Candidate>>,
    /// Our own addresses: never overridden by a route.
    special: HashMap<Prefix, u32>,
    /// Tunnels' interface subnets: routed through their tunnel, whatever a route says (the
    /// config and `ctl` refuse such routes; this keeps BGP's out too).
    tunnel_subnets: Vec<Prefix>,
    set_ids: HashMap<Vec<Candidate>, u32>,
    node: NodeConf,
    gateways: HashMap<(u16, u32), u32>,
    tunnel_nh0: u32,
    tunnel_names: Vec<String>,
    /// Next-hop id of port 0's connected subnet; the other ports follow.
    connected_nh0: u32,
    port_names: Vec<String>,
    route_count: usize,
}

impl Rib {
    /// The table for `cfg`: `gateways[i]` is next hop `i`, tunnels follow from `tunnel_nh0`.
    /// Returns the route sets by id, for the snapshot.
    pub(super) fn build(
        cfg: &Config,
        gateways: &[(u16, u32)],
        tunnel_nh0: u32,
    ) -> Result<(Rib, Vec<Vec<Candidate>>), String> {
        // The real FIB needs the candidates, which need the rest of `rib`: start from an
        // empty table (its memory is calloc'd and never touched) and replace it below.
        let mut rib = Rib {
            fib: Editor::build(&[], 0).map_err(|e| format!("routes: {e}"))?,
            routes: HashMap::new(),
            implicit: HashMap::new(),
            special: HashMap::new(),
            tunnel_subnets: cfg.tunnels.iter().map(|t| t.interface_prefix()).collect(),
            set_ids: HashMap::new(),
            node: cfg.node.clone(),
            gateways: gateways
                .iter()
                .enumerate()
                .map(|(i, g)| (*g, i as u32))
                .collect(),
            tunnel_nh0,
            tunnel_names: cfg.tunnels.iter().map(|t| t.name.clone()).collect(),
            connected_nh0: tunnel_nh0 + cfg.tunnels.len() as u32,
            port_names: cfg.ports.iter().map(|p| p.name.clone()).collect(),
            route_count: cfg.routes.len(),
        };
        let host = |addr: u32| Prefix { addr, len: 32 };
        for (i, p) in cfg.ports.iter().enumerate() {
            let mask = Prefix::mask(p.prefix_len);
            let net = p.addr & mask;
            rib.implicit.insert(
                Prefix {
                    addr: net,
                    len: p.prefix_len,
                },
                vec![rib.connected_candidate(i as u16)],
            );
            // A subnet's network and broadcast addresses are never forwarded to (RFC 2644:
            // no directed broadcasts); a /31 has neither (RFC 3021).
            if p.prefix_len <= 30 {
                rib.special.insert(host(net), SET_LOCAL);
                rib.special.insert(host(net | !mask), SET_LOCAL);
            }
        }
        for (i, t) in cfg.tunnels.iter().enumerate() {
            let c = rib.implicit_candidate(Via::Tunnel(i as u16));
            rib.implicit
                .insert(t.interface_prefix(), c.into_iter().collect());
            rib.special.insert(host(t.local_addr), SET_LOCAL);
        }
        for p in &cfg.ports {
            rib.special.insert(host(p.addr), SET_LOCAL);
        }
        for a in &cfg.node.anycast {
            rib.special.insert(host(*a), SET_ANYCAST);
        }
        for n in &cfg.neighbors {
            let c = rib.implicit_candidate(Via::Gateway {
                ip: n.ip,
                port: n.port,
            });
            rib.implicit.insert(host(n.ip), c.into_iter().collect());
        }
        for r in &cfg.routes {
            rib.routes.entry(r.prefix).or_default().push(r.clone());
        }

        // Identical candidate lists share one set (and one group).
        let mut prefixes: Vec<Prefix> = rib.routes.keys().copied().collect();
        prefixes.extend(rib.implicit.keys().filter(|p| !rib.routes.contains_key(p)));
        prefixes.sort_unstable();
        let mut sets: Vec<Vec<Candidate>> = Vec::new();
        let mut fib: Vec<(Prefix, u32)> = Vec::with_capacity(prefixes.len() + rib.special.len());
        for p in prefixes {
            let cands = rib.candidates(p, rib.routes.get(&p).map_or(&[], Vec::as_slice));
            if cands.is_empty() {
                continue;
            }
            let id = *rib.set_ids.entry(cands.clone()).or_insert_with(|| {
                sets.push(cands);
                (sets.len() - 1) as u32
            });
            fib.push((p, id));
        }
        // Checked before any id reaches the FIB: past the limit an id would be taken for
        // SET_ANYCAST or SET_LOCAL, or not fit the entry.
        check_route_sets(sets.len())?;
        // Our own addresses last: nothing overrides them.
        fib.extend(rib.special.iter().map(|(p, v)| (*p, *v)));
        rib.fib = Editor::build(&fib, MAX_TBL8_GROUPS).map_err(|e| format!("routes: {e}"))?;
        Ok((rib, sets))
    }

    /// The FIB workers read.
    pub fn fib(&self) -> &Arc<crate::lpm::Dir24_8> {
        self.fib.table()
    }

    /// Routes held (configured and added at run time), visible here or not.
    pub fn route_count(&self) -> usize {
        self.route_count
    }

    /// Every route, visible here or not.
    pub fn routes(&self) -> impl Iterator<Item = &RouteConf> {
        self.routes.values().flatten()
    }

    /// The routes held for exactly `p`, visible here or not, in the order they came.
    pub fn routes_for(&self, p: Prefix) -> &[RouteConf] {
        self.routes.get(&p).map_or(&[], Vec::as_slice)
    }

    /// Each prefix in the FIB with its value, in no order (`show routes` pages through them).
    pub fn prefixes(&self) -> impl Iterator<Item = (Prefix, u32)> + '_ {
        self.fib.iter().map(|(p, v)| (*p, *v))
    }

    /// The FIB value of exactly this prefix, if it is in the table.
    pub fn value(&self, p: Prefix) -> Option<u32> {
        self.fib.get(&p)
    }

    /// The most specific prefix covering `ip` (for `trace`, not forwarding).
    pub fn matching_prefix(&self, ip: u32) -> Option<Prefix> {
        self.fib.longest_match(ip).map(|(p, _)| p)
    }

    /// Makes tbl8 groups that every worker has moved past reusable.
    pub fn reclaim(&mut self, acked: u64) {
        self.fib.reclaim(acked);
    }

    /// The candidates for a prefix: its configured routes visible here, or else its
    /// implicit one.
    fn candidates(&self, p: Prefix, routes: &[RouteConf]) -> Vec<Candidate> {
        self.candidates_with_routes(p, routes)
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    }

    /// [`Rib::candidates`], each with the route it comes from (None: an implicit one).
    fn candidates_with_routes<'a>(
        &self,
        p: Prefix,
        routes: &'a [RouteConf],
    ) -> Vec<(Candidate, Option<&'a RouteConf>)> {
        let reserved = self
            .tunnel_subnets
            .iter()
            .any(|s| s.len <= p.len && s.contains(p.addr));
        let configured: Vec<(Candidate, Option<&RouteConf>)> = routes
            .iter()
            .filter(|r| !reserved && r.visible(&self.node))
            .filter_map(|r| Some((self.candidate(r)?, Some(r))))
            .collect();
        if configured.is_empty() {
            let implicit = self.implicit.get(&p).map_or(&[][..], Vec::as_slice);
            implicit.iter().map(|c| (c.clone(), None)).collect()
        } else {
            configured
        }
    }

    /// The route behind each candidate of `p`'s route set, in the set's order (None for an
    /// implicit route), for `show routes`.
    pub fn routes_of(&self, p: Prefix) -> Vec<Option<&RouteConf>> {
        let routes = self.routes.get(&p).map_or(&[][..], Vec::as_slice);
        self.candidates_with_routes(p, routes)
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    }

    fn candidate(&self, r: &RouteConf) -> Option<Candidate> {
        let mut c = self.implicit_candidate(r.via)?;
        c.priority = r.priority;
        c.weight = r.weight;
        c.source = r.source;
        c.implicit = false;
        Some(c)
    }

    /// The route to port `port`'s own subnet: hosts on it are resolved by ARP.
    fn connected_candidate(&self, port: u16) -> Candidate {
        let name = self
            .port_names
            .get(port as usize)
            .map_or("", String::as_str);
        Candidate {
            nexthop: self.connected_nh0 + port as u32,
            tunnel: None,
            priority: 0,
            weight: 1,
            source: RouteSource::Static,
            key: ecmp::member_key(format!("connected {name}").as_bytes()),
            implicit: true,
        }
    }

    fn implicit_candidate(&self, via: Via) -> Option<Candidate> {
        let (nexthop, tunnel, key) = match via {
            Via::Gateway { ip, port } => (
                *self.gateways.get(&(port, ip))?,
                None,
                ecmp::member_key(&ip.to_be_bytes()),
            ),
            Via::Tunnel(t) => (
                self.tunnel_nh0 + t as u32,
                Some(t),
                ecmp::member_key(self.tunnel_names.get(t as usize)?.as_bytes()),
            ),
        };
        Some(Candidate {
            nexthop,
            tunnel,
            priority: 0,
            weight: 1,
            source: RouteSource::Static,
            key,
            implicit: true,
        })
    }

    /// A next hop as operators name it.
    pub fn via_name(&self, via: Via) -> String {
        match via {
            Via::Gateway { ip, .. } => Ipv4Addr::from(ip).to_string(),
            Via::Tunnel(t) => self
                .tunnel_names
                .get(t as usize)
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// Applies a batch of changes whole, or refuses it whole (see the module comment).
    pub fn apply(
        &mut self,
        changes: &[Change],
        publisher: &mut Publisher<Snapshot>,
    ) -> Result<Applied, ApplyError> {
        let staged = self.stage(changes)?;
        let cur = publisher.current().clone();

        // The FIB value each touched prefix ends with; route sets to create.
        let base = cur.sets.len() as u32;
        let mut new_sets: Vec<Vec<Candidate>> = Vec::new();
        let mut new_ids: HashMap<Vec<Candidate>, u32> = HashMap::new();
        let mut edits: HashMap<Prefix, Option<u32>> = HashMap::new();
        for (p, list) in &staged {
            if self.special.contains_key(p) {
                continue;
            }
            let cands = self.candidates(*p, list);
            let value = if cands.is_empty() {
                None
            } else if let Some(id) = self.set_ids.get(&cands).or(new_ids.get(&cands)) {
                Some(*id)
            } else {
                let id = base + new_sets.len() as u32;
                new_ids.insert(cands.clone(), id);
                new_sets.push(cands);
                Some(id)
            };
            if self.fib.get(p) != value {
                edits.insert(*p, value);
            }
        }
        if base as usize + new_sets.len() > MAX_ROUTE_SETS {
            let live = self.live_sets(&edits);
            check_route_sets(live)?;
            return Err(ApplyError::NeedsRebuild(Rebuild::RenumberSets {
                held: base as usize,
                live,
            }));
        }
        self.check_capacity(&edits)?;
        let set = |id: u32| {
            cur.sets
                .get(id as usize)
                .or_else(|| new_sets.get(id.wrapping_sub(base) as usize))
        };

        // Each tunnel must keep a route toward its customer endpoint through a port.
        let mut tunnels = (*cur.tunnels).clone();
        for t in tunnels.iter_mut() {
            let value = (0..=32u8).rev().find_map(|len| {
                let q = Prefix {
                    addr: t.remote & Prefix::mask(len),
                    len,
                };
                match edits.get(&q) {
                    Some(v) => *v,
                    None => self.fib.get(&q),
                }
            });
            match value {
                Some(s)
                    if s < SET_ANYCAST
                        && set(s).is_some_and(|c| c.iter().all(|c| c.tunnel.is_none())) =>
                {
                    t.underlay = s
                }
                _ => {
                    return Err(ApplyError::Refused(format!(
                        "tunnel {} would lose its route toward customer endpoint {} through a port",
                        t.name,
                        Ipv4Addr::from(t.remote)
                    )))
                }
            }
        }
        if publisher.room() < 2 {
            return Err(ApplyError::Refused(
                "a worker is not taking new tables; nothing changed".into(),
            ));
        }

        // New sets reach every worker before any FIB entry names them.
        let created = new_sets.len();
        let mut next = (*cur).clone();
        if !new_sets.is_empty() {
            next = next.with_sets(new_sets, publisher.generation() + 1);
            let g = publisher.publish(Arc::new(next.clone()))?;
            wait_acked(publisher, g)?;
        }
        self.fib.set_epoch(publisher.generation() + 1);
        let mut entries = 0;
        let changed = edits.len();
        for (p, v) in edits {
            entries += match v {
                Some(v) => match self.fib.insert(p, v) {
                    Ok(e) => e.entries,
                    // Capacity was checked above; a failure here leaves p at its old value.
                    Err(e) => {
                        log::error!("route {p}: {e}");
                        0
                    }
                },
                None => self.fib.remove(p).entries,
            };
        }
        for (p, list) in staged {
            self.route_count =
                self.route_count + list.len() - self.routes.get(&p).map_or(0, Vec::len);
            if list.is_empty() {
                self.routes.remove(&p);
            } else {
                self.routes.insert(p, list);
            }
        }
        self.set_ids.extend(new_ids);
        next.generation = publisher.generation() + 1;
        next.tunnels = Arc::new(tunnels);
        let generation = publisher.publish(Arc::new(next))?;
        Ok(Applied {
            generation,
            prefixes: changed,
            entries,
            new_sets: created,
        })
    }

    /// The route lists of the prefixes the changes touch, after the changes, in order.
    fn stage(&self, changes: &[Change]) -> Result<HashMap<Prefix, Vec<RouteConf>>, ApplyError> {
        let mut staged: HashMap<Prefix, Vec<RouteConf>> = HashMap::new();
        let mut needs_rebuild = false;
        for (i, c) in changes.iter().enumerate() {
            let prefix = match c {
                Change::Add(r) => r.prefix,
                Change::Remove { prefix, .. } => *prefix,
            };
            let list = staged
                .entry(prefix)
                .or_insert_with(|| self.routes.get(&prefix).cloned().unwrap_or_default());
            let invalid = |reason: String| ApplyError::Invalid { change: i, reason };
            match c {
                Change::Add(r) => {
                    if let Via::Gateway { ip, port } = r.via {
                        // Checked like the rest, so the rebuild applies a valid batch.
                        needs_rebuild |= !self.gateways.contains_key(&(port, ip));
                    }
                    if list.iter().any(|x| {
                        (x.via, x.source, &x.regions, &x.colos)
                            == (r.via, r.source, &r.regions, &r.colos)
                    }) {
                        return Err(invalid(format!(
                            "duplicate route: {prefix} via {} already exists",
                            self.via_name(r.via)
                        )));
                    }
                    if list.iter().filter(|x| x.priority == r.priority).count() >= MAX_SAME_PRIORITY
                    {
                        return Err(invalid(format!(
                            "more than {MAX_SAME_PRIORITY} routes for {prefix} at priority {}",
                            r.priority
                        )));
                    }
                    list.push(r.clone());
                }
                Change::Remove { via, .. } => {
                    let before = list.len();
                    list.retain(|x| x.via != *via);
                    if list.len() == before {
                        return Err(invalid(format!(
                            "no route {prefix} via {}",
                            self.via_name(*via)
                        )));
                    }
                }
            }
        }
        if needs_rebuild {
            return Err(ApplyError::NeedsRebuild(Rebuild::NewNextHop));
        }
        Ok(staged)
    }

    /// Distinct route sets the FIB names once `edits` are made: what a rebuild would number.
    /// Our own addresses are told by prefix, not value: a new id may equal their values.
    /// A walk over every prefix, taken only when ids run out.
    fn live_sets(&self, edits: &HashMap<Prefix, Option<u32>>) -> usize {
        let kept = self
            .fib
            .iter()
            .filter(|(p, _)| !edits.contains_key(p) && !self.special.contains_key(p))
            .map(|(_, v)| *v);
        let edited = edits.values().flatten().copied();
        kept.chain(edited).collect::<HashSet<u32>>().len()
    }

    /// Refuses a batch whose long prefixes need more tbl8 groups than are free.
    fn check_capacity(&self, edits: &HashMap<Prefix, Option<u32>>) -> Result<(), ApplyError> {
        let needed: HashSet<u32> = edits
            .iter()
            .filter(|(p, v)| p.len > 24 && v.is_some() && !self.fib.has_group(p.addr))
            .map(|(p, _)| p.addr >> 8)
            .collect();
        let free = self.fib.groups_free();
        if needed.len() > free {
            return Err(ApplyError::Refused(format!(
                "routes: {}",
                BuildError::Tbl8Exhausted {
                    needed: needed.len(),
                    limit: free
                }
            )));
        }
        Ok(())
    }
}

/// Refuses a table of more than [`MAX_ROUTE_SETS`] route sets.
fn check_route_sets(n: usize) -> Result<(), String> {
    if n > MAX_ROUTE_SETS {
        return Err(format!(
            "routes: the table needs {n} route sets (distinct lists of next hops), limit is \
             {MAX_ROUTE_SETS}"
        ));
    }
    Ok(())
}

/// Waits until every worker has taken generation `g`.
fn wait_acked(publisher: &Publisher<Snapshot>, g: u64) -> Result<(), String> {
    let t = Instant::now();
    while publisher.min_acked() < g {
        if t.elapsed() > SYNC_TIMEOUT {
            return Err(format!(
                "workers did not take generation {g} within {} ms; the FIB is unchanged",
                SYNC_TIMEOUT.as_millis()
            ));
        }
        std::thread::sleep(Duration::from_micros(20));
    }
    Ok(())
}
