//! The peers' paths, turned into route-table batches on the management thread.
//!
//! Per peer: every path it sent (`received`), and what policy made of each (`accepted` or
//! `refused`). `Event::PeerPaths` replaces a peer's paths whole, `Event::Update` changes
//! some; either way only the prefixes whose route changed are touched.
//!
//! In the route table a BGP route is keyed by (prefix, next hop): when two port peers name
//! the same gateway for a prefix, the lower priority is installed (then the lower peer
//! address). A BGP route and a static (or `ctl`) route for the same prefix through the same
//! next hop are two routes, and at equal priority the static one wins (`route::select`).
//! The table removes routes by (prefix, next hop) whatever their source, so a batch that
//! removes a BGP route adds the static ones back in the same batch: they never leave.
//!
//! `max_prefixes`: beyond it, new prefixes are refused (counted in `show bgp`, logged once
//! when the peer first exceeds it); routes already accepted stay, and refused prefixes are
//! admitted, in prefix order, when room frees up. gobgpd is not told to tear the session
//! down: that is the adapter's to configure, if ever.
//!
//! A fleet route reflector's paths (ADD-PATH: every node's, several per prefix) are split by
//! the tunnel peer their next hop names (`policy::reflected_peer`; others are refused and
//! counted) and each group is kept as that peer's would be, under the table of (reflector,
//! tunnel peer): so a path is decided exactly as if the tunnel's peer had sent it, on every
//! node alike. A path this node learned itself and the same path reflected back hold the same
//! key (prefix, tunnel) with the same route: one route. Two reflected paths for one (prefix,
//! tunnel) (the customer peers with two nodes) keep the lower priority.
//!
//! Stale paths (graceful restart) keep their routes, shown stale; gobgpd's helper timer
//! withdraws them when the peer does not come back, and the adapter reports it.
//!
//! A restarted gobgpd knows no paths until its sessions come up again, and the adapter's
//! first listings after the reconnection are empty. So for `[bgp] graceful_restart_time`
//! after a reconnection a listing does not drop what it lacks: those paths are *held over*,
//! stale, until the peer sends them again, withdraws them, has been established for
//! `SETTLE` (it has sent its table by then), or the time is up. Restarting gobgpd loses no
//! forwarding.
use super::policy::{self, Imported, Refusal};
use super::{Event, PeerStatus, ReceivedPath};
use crate::config::{BgpPeerConf, Config, PeerAt, RouteConf, RouteOrigin, RouteSource, Via};
use crate::lpm::Prefix;
use crate::route::{Change, Rib};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

/// A BGP route in the table: its (prefix, next hop).
pub type Key = (Prefix, Via);

/// Whose paths a table holds: (the session they came on, the peer they are taken as).
/// A peer's own are (peer, peer); a reflector's are (reflector, tunnel peer).
type Src = (Ipv4Addr, Ipv4Addr);

/// Paths kept per peer beyond `max_prefixes`, so that refused ones can be admitted later:
/// twice the limit, at least this many. Beyond, paths are dropped (counted as refused).
const MIN_KEPT: usize = 1024;

/// After a reconnection, a peer established this long has sent its table again: what it
/// did not send is dropped (before `graceful_restart_time` is up).
const SETTLE: Duration = Duration::from_secs(30);

/// The adapter's connection to gobgpd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adapter {
    /// No `[bgp]`, or no word from the adapter yet.
    Unknown,
    Connected(SystemTime),
    Disconnected(SystemTime, String),
}

#[derive(Debug, Clone, Default)]
struct PeerTable {
    received: BTreeMap<Prefix, ReceivedPath>,
    accepted: BTreeMap<Prefix, Imported>,
    refused: BTreeMap<Prefix, Refusal>,
    /// Paths not even kept (beyond twice `max_prefixes`).
    dropped: u64,
    /// Logged that `max_prefixes` was exceeded, until it no longer is.
    over_limit: bool,
    /// Paths kept, stale, across a gobgpd restart that the peer has not sent again yet.
    held_over: BTreeSet<Prefix>,
}

/// A BGP route the table holds, and the peer it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    pub route: RouteConf,
    /// The peer it is taken as (a tunnel's, for a reflected path).
    pub peer: Ipv4Addr,
    /// The session it came on: `peer`, or a route reflector.
    pub session: Ipv4Addr,
}

/// One key's changes, and what the table holds for it once they are applied.
#[derive(Debug, Clone)]
pub struct Step {
    pub key: Key,
    pub changes: Vec<Change>,
    after: Option<Installed>,
}

/// The changes for some keys, key by key: applied as one batch, or key by key when the
/// batch is refused (so that one bad key does not hold the others back).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Keys a static route of the file holds as `source = "bgp"` already: not added.
    pub conflicts: usize,
}

impl Plan {
    /// Every step's changes, in order: the one batch.
    pub fn changes(&self) -> Vec<Change> {
        self.steps.iter().flat_map(|s| s.changes.clone()).collect()
    }
}

/// Every peer's paths and what the table holds from them.
#[derive(Debug, Clone)]
pub struct Bgp {
    peers: BTreeMap<Src, PeerTable>,
    installed: HashMap<Key, Installed>,
    /// The tables that accepted each prefix, so a key's winner is found among them only.
    index: HashMap<Prefix, Vec<Src>>,
    /// Per route reflector, its paths whose next hop names no tunnel peer (refused).
    no_tunnel: HashMap<Ipv4Addr, u64>,
    /// Keys whose last batch was refused: planned again with the next.
    pending: BTreeSet<Key>,
    status: HashMap<Ipv4Addr, PeerStatus>,
    pub adapter: Adapter,
    /// Until when listings after a reconnection hold over what they lack.
    resync_until: Option<Instant>,
}

impl Default for Bgp {
    fn default() -> Self {
        Bgp {
            peers: BTreeMap::new(),
            installed: HashMap::new(),
            index: HashMap::new(),
            no_tunnel: HashMap::new(),
            pending: BTreeSet::new(),
            status: HashMap::new(),
            adapter: Adapter::Unknown,
            resync_until: None,
        }
    }
}

fn peer_conf(cfg: &Config, addr: Ipv4Addr) -> Option<&BgpPeerConf> {
    cfg.bgp.as_ref()?.peers.iter().find(|p| p.address == addr)
}

impl PeerTable {
    fn cap(peer: &BgpPeerConf) -> usize {
        (peer.max_prefixes as usize).saturating_mul(2).max(MIN_KEPT)
    }

    /// Keeps `path` unless the table is full; false when dropped.
    fn keep(&mut self, peer: &BgpPeerConf, path: ReceivedPath) -> bool {
        if self.received.len() >= Self::cap(peer) && !self.received.contains_key(&path.prefix) {
            self.dropped += 1;
            return false;
        }
        self.received.insert(path.prefix, path);
        true
    }

    /// Decides every received path again (a whole replacement, a reload): accepted ones
    /// first, so that the routes already in the table keep their places under the limit.
    fn decide_all(&mut self, cfg: &Config, peer: &BgpPeerConf, touched: &mut BTreeSet<Key>) {
        let old = std::mem::take(&mut self.accepted);
        self.refused.clear();
        let order: Vec<Prefix> = old
            .keys()
            .filter(|p| self.received.contains_key(p))
            .chain(self.received.keys().filter(|p| !old.contains_key(p)))
            .copied()
            .collect();
        for p in order {
            self.decide(cfg, peer, p);
        }
        for p in old.keys().chain(self.accepted.keys()) {
            let (before, after) = (old.get(p), self.accepted.get(p));
            if before != after {
                touched.extend(before.into_iter().chain(after).map(|i| (*p, i.route.via)));
            }
        }
    }

    /// Decides one received prefix, not accepted now.
    fn decide(&mut self, cfg: &Config, peer: &BgpPeerConf, p: Prefix) {
        let Some(path) = self.received.get(&p) else {
            return;
        };
        match policy::import(cfg, peer, path) {
            Ok(_) if self.accepted.len() >= peer.max_prefixes as usize => {
                self.refused.insert(p, Refusal::MaxPrefixes);
            }
            Ok(i) => {
                self.accepted.insert(p, i);
            }
            Err(r) => {
                self.refused.insert(p, r);
            }
        }
    }

    /// Applies a delta; the keys whose accepted route changed go to `touched`.
    fn update(
        &mut self,
        cfg: &Config,
        peer: &BgpPeerConf,
        announced: Vec<ReceivedPath>,
        withdrawn: Vec<Prefix>,
        touched: &mut BTreeSet<Key>,
    ) {
        for p in withdrawn {
            self.received.remove(&p);
            self.refused.remove(&p);
            if let Some(i) = self.accepted.remove(&p) {
                touched.insert((p, i.route.via));
            }
        }
        for path in announced {
            let p = path.prefix;
            if !self.keep(peer, path) {
                continue;
            }
            let before = self.accepted.remove(&p);
            self.refused.remove(&p);
            self.decide(cfg, peer, p);
            let after = self.accepted.get(&p);
            if before.as_ref() != after {
                touched.extend(before.iter().chain(after).map(|i| (p, i.route.via)));
            }
        }
        // Room freed: admit refused prefixes in prefix order.
        let room = (peer.max_prefixes as usize).saturating_sub(self.accepted.len());
        if room > 0 {
            let waiting: Vec<Prefix> = self
                .refused
                .iter()
                .filter(|(_, r)| **r == Refusal::MaxPrefixes)
                .map(|(p, _)| *p)
                .take(room)
                .collect();
            for p in waiting {
                self.refused.remove(&p);
                self.decide(cfg, peer, p);
                if let Some(i) = self.accepted.get(&p) {
                    touched.insert((p, i.route.via));
                }
            }
        }
    }

    fn refused_count(&self, r: &str) -> u64 {
        let n = self.refused.values().filter(|x| x.key() == r).count() as u64;
        if r == "max_prefixes" {
            n + self.dropped
        } else {
            n
        }
    }
}

impl Bgp {
    /// Takes one event from the adapter; the table keys it changed go to `touched`.
    pub fn event(&mut self, cfg: &Config, ev: Event, touched: &mut BTreeSet<Key>) {
        match ev {
            Event::Connected => {
                log::info!("bgp: gobgpd API connected and configured");
                if matches!(self.adapter, Adapter::Disconnected(..)) {
                    let gr = cfg
                        .bgp
                        .as_ref()
                        .map_or(Duration::ZERO, |b| b.graceful_restart);
                    self.resync_until = Some(Instant::now() + gr);
                }
                self.adapter = Adapter::Connected(SystemTime::now());
            }
            Event::Disconnected(why) => {
                if !matches!(self.adapter, Adapter::Disconnected(..)) {
                    log::warn!(
                        "bgp: gobgpd API unreachable ({why}); forwarding with the last routes, retrying"
                    );
                }
                self.adapter = Adapter::Disconnected(SystemTime::now(), why);
            }
            Event::Peers(list) => {
                self.status = list.into_iter().map(|s| (s.address, s)).collect();
            }
            Event::PeerPaths { peer, paths } => {
                let Some(pc) = peer_conf(cfg, peer) else {
                    log::debug!("bgp: paths from {peer}, which is not configured: ignored");
                    return;
                };
                if pc.at == PeerAt::Reflector {
                    self.reflected(cfg, peer, paths, touched);
                } else {
                    self.replace(cfg, (peer, peer), pc, paths, touched);
                }
            }
            Event::Update {
                peer,
                announced,
                withdrawn,
            } => {
                let Some(pc) = peer_conf(cfg, peer) else {
                    log::debug!("bgp: an update from {peer}, which is not configured: ignored");
                    return;
                };
                if pc.at == PeerAt::Reflector {
                    // The adapter lists a reflector whole (ADD-PATH); a delta cannot say
                    // which of a prefix's paths it means.
                    log::debug!("bgp: a per-prefix update from reflector {peer}: ignored");
                    return;
                }
                let peer = (peer, peer);
                let t = self.peers.entry(peer).or_default();
                for p in announced.iter().map(|a| &a.prefix).chain(&withdrawn) {
                    t.held_over.remove(p);
                }
                let mut mine = BTreeSet::new();
                t.update(cfg, pc, announced, withdrawn, &mut mine);
                self.reindex(peer, &mine);
                touched.extend(mine);
                self.log_limit(peer, pc);
            }
        }
    }

    /// Replaces the paths of `src`, taken as `pc`'s, whole.
    fn replace(
        &mut self,
        cfg: &Config,
        src: Src,
        pc: &BgpPeerConf,
        paths: Vec<ReceivedPath>,
        touched: &mut BTreeSet<Key>,
    ) {
        let holding = self.resync_until.is_some_and(|u| Instant::now() < u);
        let t = self.peers.entry(src).or_default();
        let old = std::mem::take(&mut t.received);
        t.dropped = 0;
        for path in paths {
            t.keep(pc, path);
        }
        t.held_over.clear();
        if holding {
            for (p, mut path) in old {
                if !t.received.contains_key(&p) {
                    path.stale = true;
                    if t.keep(pc, path) {
                        t.held_over.insert(p);
                    }
                }
            }
        }
        let mut mine = BTreeSet::new();
        t.decide_all(cfg, pc, &mut mine);
        self.reindex(src, &mine);
        touched.extend(mine);
        self.log_limit(src, pc);
    }

    /// A route reflector's every path, whole: grouped by the tunnel peer each next hop names,
    /// each group replacing that (reflector, peer) table.
    fn reflected(
        &mut self,
        cfg: &Config,
        rr: Ipv4Addr,
        paths: Vec<ReceivedPath>,
        touched: &mut BTreeSet<Key>,
    ) {
        let mut groups: BTreeMap<Ipv4Addr, BTreeMap<Prefix, (u32, ReceivedPath)>> = BTreeMap::new();
        let mut refused = 0u64;
        for path in paths {
            let Ok(pc) = policy::reflected_peer(cfg, &path) else {
                refused += 1;
                continue;
            };
            let prio = policy::priority(&path.communities, &path.as_path, pc.asn).value;
            let g = groups.entry(pc.address).or_default();
            // One path per (prefix, tunnel): the lower priority, then the lower path (any
            // order every node shares), never the order gobgpd listed them in.
            let better = g.get(&path.prefix).is_none_or(|(p, old)| {
                (prio, &path.communities, format!("{:?}", path.as_path))
                    < (*p, &old.communities, format!("{:?}", old.as_path))
            });
            if better {
                g.insert(path.prefix, (prio, path));
            }
        }
        if refused > 0 && self.no_tunnel.get(&rr) != Some(&refused) {
            log::warn!(
                "bgp: reflector {rr}: {refused} path(s) whose next hop is no tunnel's peer: refused"
            );
        }
        self.no_tunnel.insert(rr, refused);
        let tunnel_peers: Vec<&BgpPeerConf> = cfg
            .bgp
            .iter()
            .flat_map(|b| &b.peers)
            .filter(|p| matches!(p.at, PeerAt::Tunnel(_)))
            .collect();
        for pc in tunnel_peers {
            let src = (rr, pc.address);
            let paths: Vec<ReceivedPath> = groups
                .remove(&pc.address)
                .map(|g| g.into_values().map(|(_, p)| p).collect())
                .unwrap_or_default();
            if paths.is_empty() && !self.peers.contains_key(&src) {
                continue;
            }
            self.replace(cfg, src, pc, paths, touched);
        }
    }

    /// Drops the paths held over across a gobgpd restart (see the module's notes) of each
    /// peer established for `SETTLE`, and of every peer once `graceful_restart_time` is up.
    pub fn expire_held_over(
        &mut self,
        cfg: &Config,
        now: Instant,
        wall: SystemTime,
        touched: &mut BTreeSet<Key>,
    ) {
        let Some(until) = self.resync_until else {
            return;
        };
        let timed_out = now >= until;
        let holding: Vec<Src> = self
            .peers
            .iter()
            .filter(|(_, t)| !t.held_over.is_empty())
            .map(|(a, _)| *a)
            .collect();
        for src in holding {
            let a = src.1;
            let settled = self.status.get(&src.0).is_some_and(|s| {
                s.state == super::SessionState::Established
                    && s.since
                        .and_then(|t| wall.duration_since(t).ok())
                        .is_some_and(|d| d >= SETTLE)
            });
            let (Some(pc), Some(t)) = (peer_conf(cfg, a), self.peers.get_mut(&src)) else {
                continue;
            };
            if !(timed_out || settled) {
                continue;
            }
            let gone: Vec<Prefix> = std::mem::take(&mut t.held_over).into_iter().collect();
            log::info!(
                "bgp: peer {} ({a}) did not send {} path(s) again since gobgpd reconnected: dropped",
                pc.name,
                gone.len()
            );
            let mut mine = BTreeSet::new();
            t.update(cfg, pc, Vec::new(), gone, &mut mine);
            self.reindex(src, &mine);
            touched.extend(mine);
        }
        if timed_out {
            self.resync_until = None;
        }
    }

    /// Brings the index up to date for `peer`'s changed keys.
    fn reindex(&mut self, peer: Src, keys: &BTreeSet<Key>) {
        let Some(t) = self.peers.get(&peer) else {
            return;
        };
        for (p, _) in keys {
            let list = self.index.entry(*p).or_default();
            list.retain(|a| *a != peer);
            if t.accepted.contains_key(p) {
                list.push(peer);
            }
            if list.is_empty() {
                self.index.remove(p);
            }
        }
    }

    fn log_limit(&mut self, src: Src, pc: &BgpPeerConf) {
        let peer = src.0;
        let Some(t) = self.peers.get_mut(&src) else {
            return;
        };
        let over = t.refused_count("max_prefixes");
        if over > 0 && !t.over_limit {
            log::warn!(
                "bgp: peer {} ({peer}) sent more than max_prefixes = {}: {over} prefix(es) refused",
                pc.name,
                pc.max_prefixes
            );
        } else if over == 0 && t.over_limit {
            log::info!(
                "bgp: peer {} ({peer}) is within max_prefixes again",
                pc.name
            );
        }
        t.over_limit = over > 0;
    }

    /// The route for `key` that should be in the table: the lowest priority any table has
    /// for it, then the lowest (session, peer) address.
    fn winner(&self, key: Key) -> Option<Installed> {
        self.index
            .get(&key.0)?
            .iter()
            .filter_map(|a| {
                let i = self.peers.get(a)?.accepted.get(&key.0)?;
                (i.route.via == key.1).then_some((i.route.priority, *a, i))
            })
            .min_by_key(|(prio, a, _)| (*prio, *a))
            .map(|(_, a, i)| Installed {
                route: i.route.clone(),
                peer: a.1,
                session: a.0,
            })
    }

    /// The batch that brings the table's BGP routes for `touched` (and, with `retry`, the
    /// keys the table refused before) to what the peers say. Nothing changes until
    /// [`Bgp::commit`].
    pub fn plan(&self, rib: &Rib, touched: &BTreeSet<Key>, retry: bool) -> Plan {
        let mut plan = Plan::default();
        let none = BTreeSet::new();
        let again = if retry { &self.pending } else { &none };
        for key in touched.iter().chain(again.difference(touched)) {
            let (prefix, via) = *key;
            let mut want = self.winner(*key);
            let have = self.installed.get(key);
            let held = rib.routes_for(prefix);
            let ours_held = held
                .iter()
                .any(|r| r.via == via && r.origin == RouteOrigin::Bgp);
            // A file route declared `source = "bgp"` through the same next hop holds the key.
            if held.iter().any(|r| {
                r.via == via
                    && r.origin != RouteOrigin::Bgp
                    && r.source == RouteSource::Bgp
                    && r.regions.is_empty()
                    && r.colos.is_empty()
            }) && want.is_some()
            {
                plan.conflicts += 1;
                want = None;
            }
            let want_route = want.as_ref().map(|w| &w.route);
            let held_route = held
                .iter()
                .find(|r| r.via == via && r.origin == RouteOrigin::Bgp);
            let mut changes = Vec::new();
            if want_route == held_route && have.map(|h| &h.route) == held_route {
                if have != want.as_ref() {
                    // Another peer, the same route: nothing to change in the table.
                    plan.steps.push(Step {
                        key: *key,
                        changes,
                        after: want,
                    });
                }
                continue;
            }
            if ours_held {
                changes.push(Change::Remove { prefix, via });
                // The table removes by (prefix, next hop): the others come back at once.
                changes.extend(
                    held.iter()
                        .filter(|r| r.via == via && r.origin != RouteOrigin::Bgp)
                        .cloned()
                        .map(Change::Add),
                );
            }
            if let Some(w) = &want {
                changes.push(Change::Add(w.route.clone()));
            }
            plan.steps.push(Step {
                key: *key,
                changes,
                after: want,
            });
        }
        plan
    }

    /// The step's changes were applied (`ok`), or refused: its key is planned again later.
    /// True when a refused key was not pending already (worth a warning).
    pub fn commit(&mut self, step: Step, ok: bool) -> bool {
        if ok {
            self.pending.remove(&step.key);
            match step.after {
                Some(i) => self.installed.insert(step.key, i),
                None => self.installed.remove(&step.key),
            };
            false
        } else {
            self.pending.insert(step.key)
        }
    }

    /// Every step of the plan applied.
    pub fn commit_all(&mut self, plan: Plan) {
        for step in plan.steps {
            self.commit(step, true);
        }
    }

    /// Whether a refused batch left keys to plan again.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The state under `next` (a reload): peers no longer configured are forgotten, every
    /// path is decided again (tunnels may have moved, limits changed), and the BGP routes
    /// the new table must hold, which the caller adds to `next.routes` before rebuilding.
    pub fn reloaded(&self, next: &Config) -> (Bgp, Vec<RouteConf>) {
        let mut b = Bgp {
            adapter: self.adapter.clone(),
            status: self.status.clone(),
            resync_until: self.resync_until,
            ..Bgp::default()
        };
        for (src, t) in &self.peers {
            // A reflector's tables live on while it and the tunnel peer are configured.
            let (Some(session), Some(pc)) = (peer_conf(next, src.0), peer_conf(next, src.1)) else {
                continue;
            };
            let reflected = src.0 != src.1;
            if reflected != (session.at == PeerAt::Reflector)
                || (reflected && !matches!(pc.at, PeerAt::Tunnel(_)))
            {
                continue;
            }
            // Decided afresh: nothing of the old table's decisions carries over but the order.
            let mut t = t.clone();
            let mut ignored = BTreeSet::new();
            t.decide_all(next, pc, &mut ignored);
            b.peers.insert(*src, t);
        }
        b.no_tunnel = self
            .no_tunnel
            .iter()
            .filter(|(a, _)| peer_conf(next, **a).is_some())
            .map(|(a, n)| (*a, *n))
            .collect();
        let file: HashSet<Key> = next
            .routes
            .iter()
            .filter(|r| r.source == RouteSource::Bgp && r.regions.is_empty() && r.colos.is_empty())
            .map(|r| (r.prefix, r.via))
            .collect();
        let keys: BTreeSet<Key> = b
            .peers
            .values()
            .flat_map(|t| t.accepted.iter().map(|(p, i)| (*p, i.route.via)))
            .filter(|k| !file.contains(k))
            .collect();
        for (a, t) in &b.peers {
            for p in t.accepted.keys() {
                b.index.entry(*p).or_default().push(*a);
            }
        }
        let mut routes = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(w) = b.winner(k) {
                routes.push(w.route.clone());
                b.installed.insert(k, w);
            }
        }
        (b, routes)
    }

    /// What `show routes` adds to a BGP route: the peer, its path and the priority's story.
    pub fn route_info(&self, cfg: &Config, prefix: Prefix, via: Via) -> Option<serde_json::Value> {
        let inst = self.installed.get(&(prefix, via))?;
        let t = self.peers.get(&(inst.session, inst.peer))?;
        let path = t.received.get(&prefix)?;
        let imported = t.accepted.get(&prefix)?;
        let name = peer_conf(cfg, inst.peer).map_or(String::new(), |p| p.name.clone());
        let reflector = (inst.session != inst.peer).then(|| inst.session.to_string());
        let communities: Vec<String> = path
            .communities
            .iter()
            .map(|c| policy::community_name(*c))
            .collect();
        Some(serde_json::json!({
            "peer": name, "peer_address": inst.peer.to_string(),
            "communities": communities, "as_path": policy::as_path_text(&path.as_path),
            "next_hop": path.next_hop.to_string(), "stale": path.stale,
            "priority_explanation": imported.explanation,
            "reflector": reflector,
        }))
    }

    /// `show bgp`'s per-peer figures, in config order.
    pub fn peers_view(&self, cfg: &Config, now: SystemTime) -> Vec<serde_json::Value> {
        let Some(b) = &cfg.bgp else { return Vec::new() };
        let mut installed: HashMap<Ipv4Addr, usize> = HashMap::new();
        for i in self.installed.values() {
            *installed.entry(i.session).or_default() += 1;
        }
        b.peers
            .iter()
            .map(|pc| {
                // A peer's own table; a reflector's, summed over its tunnel peers.
                let tables: Vec<&PeerTable> = self
                    .peers
                    .range((pc.address, Ipv4Addr::UNSPECIFIED)..=(pc.address, Ipv4Addr::BROADCAST))
                    .map(|(_, t)| t)
                    .collect();
                let sum = |f: &dyn Fn(&PeerTable) -> usize| tables.iter().map(|t| f(t)).sum::<usize>();
                let no_tunnel = self.no_tunnel.get(&pc.address).copied().unwrap_or(0);
                let st = self.status.get(&pc.address);
                let state = st.map_or("unknown".to_owned(), |s| format!("{:?}", s.state).to_lowercase());
                let since_s = st
                    .and_then(|s| s.since)
                    .and_then(|s| now.duration_since(s).ok())
                    .map(|d| d.as_secs());
                let refused: serde_json::Map<String, serde_json::Value> = [
                    "public_prefix",
                    "covers_tunnel_endpoint",
                    "bad_next_hop",
                    "max_prefixes",
                ]
                .into_iter()
                .map(|k| (k.to_owned(), tables.iter().map(|t| t.refused_count(k)).sum::<u64>().into()))
                .chain([("next_hop_no_tunnel".to_owned(), no_tunnel.into())])
                .collect();
                serde_json::json!({
                    "name": pc.name, "address": pc.address.to_string(), "asn": pc.asn,
                    "local_address": pc.local_address.to_string(),
                    "state": state,
                    "uptime_s": since_s.filter(|_| st.is_some_and(|s| s.state == super::SessionState::Established)),
                    "down_s": since_s.filter(|_| st.is_some_and(|s| s.state != super::SessionState::Established)),
                    "hold_time_s": st.and_then(|s| s.hold_time).map(|d| d.as_secs()),
                    "keepalive_s": st.and_then(|s| s.keepalive).map(|d| d.as_secs()),
                    "hold_time_configured_s": pc.hold_time.as_secs(),
                    "graceful_restart": {
                        "advertised": st.is_some_and(|s| s.graceful_restart_advertised),
                        "running": st.is_some_and(|s| s.graceful_restart_running),
                    },
                    "md5": pc.md5_password.is_some(),
                    "max_prefixes": pc.max_prefixes,
                    "received": sum(&|t| t.received.len()) + no_tunnel as usize,
                    "accepted": sum(&|t| t.accepted.len()),
                    "stale": sum(&|t| t.received.values().filter(|p| p.stale).count()),
                    "installed": installed.get(&pc.address).copied().unwrap_or(0),
                    "advertised": st.map(|s| s.advertised),
                    "refused": refused,
                })
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
