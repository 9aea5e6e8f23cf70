use super::ecmp;
use super::select::{self, Candidate};
use super::source_filter::SourceFilter;
use super::ArpCache;
use crate::config::{Config, Health, RouteOrigin, TunnelType, Via};
use crate::datapath::{CounterSlots, Counters, SharedCounters};
use crate::lpm::Dir24_8;
use crate::wire::MacAddr;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// FIB value for our own port and tunnel-interface addresses: never forwarded.
pub const SET_LOCAL: u32 = crate::lpm::MAX_VALUE;
/// Route-set id (the FIB value) for the anycast addresses tunnels end on.
pub const SET_ANYCAST: u32 = crate::lpm::MAX_VALUE - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NhMac {
    Static(MacAddr),
    /// Resolved by ARP into this slot of the snapshot's [`ArpCache`] (u32::MAX: none). A u32,
    /// so that a next hop is 20 bytes and carries a tag of its own.
    Arp(u32),
}

/// A gateway on one of our ports.
#[derive(Debug, Clone, Copy)]
pub struct Gateway {
    pub ip: u32,
    pub port: u16,
    pub mac: NhMac,
}

/// `repr(u8)`: a one-byte tag of its own that a `match` tests with one compare (packed into
/// `NhMac`'s niche it took a subtract, a compare and a conditional move; callgrind).
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub enum NextHop {
    Gateway(Gateway),
    /// Encapsulate into this tunnel (index into `Snapshot::tunnels`).
    Tunnel(u16),
    /// The destination itself, on this port's connected subnet, resolved by ARP.
    Connected(u16),
}

/// A tunnel as the fast path needs it.
#[derive(Debug, Clone)]
pub struct TunnelState {
    pub name: String,
    pub kind: TunnelType,
    /// IP protocol of the outer header: 47 (GRE) or 4 (IP-in-IP).
    pub proto: u8,
    /// Outer source (our anycast endpoint) and destination (the customer's).
    pub local: u32,
    pub remote: u32,
    /// Our side of the interface subnet: the source of ICMP errors about its packets.
    pub iface_local: u32,
    pub ttl: u8,
    /// Largest inner packet.
    pub mtu: u16,
    /// 0: no clamping.
    pub mss_clamp: u16,
    /// Outer header bytes: 24 (GRE) or 20 (IP-in-IP).
    pub overhead: u16,
    /// The outer headers with the fields fixed for the tunnel filled in (encapsulation).
    pub outer: crate::wire::outer::Template,
    /// Its counters' slot (`Snapshot::tunnel_slot`), kept here so that a packet reaches its
    /// tunnel's counters from the state it already holds.
    pub counter_slot: usize,
    /// The route set toward `remote`: gateways only.
    pub underlay: u32,
    /// Inner sources are checked against the route table, not an authorized list.
    pub rpf: bool,
    /// Automatic Return Routing: its flows are learned for their return traffic.
    pub arr: bool,
}

/// (customer endpoint, edge endpoint, protocol) and the tunnel they identify.
pub type TunnelKey = ((u32, u32, u8), u16);

/// The routes selected for one route set: next hops, and the ECMP table over them.
#[derive(Debug, Clone, Default)]
pub struct Group {
    pub members: Vec<u32>,
    pub weights: Vec<u16>,
    /// Indices of the selected candidates in the route set.
    pub selected: Vec<usize>,
    /// The winning effective priority.
    pub effective: u64,
    /// Member index per slot; None for groups of one.
    table: Option<ecmp::Table>,
}

impl Group {
    pub(super) fn build(cands: &[Candidate], health: &[Health]) -> Group {
        let (selected, effective) = select::select(cands, health);
        let members: Vec<u32> = selected.iter().map(|&i| cands[i].nexthop).collect();
        let weights: Vec<u16> = selected.iter().map(|&i| cands[i].weight).collect();
        let table = if members.len() > 1 {
            let m: Vec<(u64, u32)> = selected
                .iter()
                .map(|&i| (cands[i].key, cands[i].weight as u32))
                .collect();
            Some(ecmp::Table::build(&m))
        } else {
            None
        };
        Group {
            members,
            weights,
            selected,
            effective,
            table,
        }
    }

    /// More than one member: the caller computes the flow hash.
    #[inline(always)]
    pub fn is_ecmp(&self) -> bool {
        // The table's presence, which `pick` tests too: one test for both.
        self.table.is_some()
    }

    /// The next hop for a flow.
    #[inline(always)]
    pub fn pick(&self, hash: u32) -> Option<u32> {
        match &self.table {
            Some(t) => self.members.get(t.member(hash)).copied(),
            None => self.members.first().copied(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PortState {
    pub mac: MacAddr,
    pub addr: u32,
    pub prefix_len: u8,
    pub mtu: u16,
}

/// Everything a worker needs to forward, immutable once published. The FIB maps a prefix to
/// a route set (the routes for it visible here); each set has a selected group. A change of
/// health rebuilds only the groups of the sets that go through the tunnel, and shares the rest
/// (`with_health`).
#[derive(Clone)]
pub struct Snapshot {
    pub generation: u64,
    pub fib: Arc<Dir24_8>,
    /// Route sets, by FIB value.
    pub sets: Arc<Vec<Vec<Candidate>>>,
    /// The selected group of each set.
    pub groups: Vec<Arc<Group>>,
    /// Health of each tunnel.
    pub health: Vec<Health>,
    /// Sets that contain each tunnel.
    sets_by_tunnel: Arc<Vec<Vec<u32>>>,
    pub nexthops: Arc<Vec<NextHop>>,
    pub ports: Vec<PortState>,
    /// Port names, for operators.
    pub port_names: Arc<Vec<String>>,
    pub arp: Arc<ArpCache>,
    pub tunnels: Arc<Vec<TunnelState>>,
    /// (customer endpoint, edge endpoint, protocol) -> tunnel, sorted for binary search.
    pub tunnel_keys: Arc<Vec<TunnelKey>>,
    /// Which inner sources each tunnel may send.
    pub sources: Arc<SourceFilter>,
    pub icmp_errors_per_second: u32,
    /// `node.id`: carried in health probes, checked in their answers.
    pub node_id: u32,
    /// The firewall's rules, default action and where they apply.
    pub firewall: Arc<crate::config::FirewallConf>,
    /// The rules compiled for per-packet classification.
    pub classifier: Arc<crate::firewall::Classifier>,
    /// The counter slot of each rule and tunnel, kept for them across rebuilds.
    pub counter_slots: Arc<CounterSlots>,
    /// The ARR flow table: made when a tunnel first enables ARR, then kept by every rebuild.
    pub arr: Option<Arc<crate::arr::Table>>,
    /// Some tunnel has ARR: the stage runs (else it is skipped with one test per burst).
    pub arr_active: bool,
    /// Bumped when the tunnel list changes, so entries naming a tunnel by its old index
    /// are no longer found.
    pub arr_epoch: u8,
    /// The exception port toward the kernel (`[punt]`), when on: its port follows the
    /// configured ones in `ports`.
    pub punt: Option<crate::datapath::punt::PuntState>,
}

/// The exception port's place after the configured ports, when `[punt]` is on and every
/// configured port is there: its MAC is the device's (`port_macs` past the ports), or a
/// stand-in until the device exists.
fn punt_port(
    cfg: &Config,
    port_macs: &[MacAddr],
    ports: &mut Vec<PortState>,
) -> Option<crate::datapath::punt::PuntState> {
    let n = cfg.ports.len();
    if !cfg.punt.enabled || ports.len() != n {
        return None;
    }
    ports.push(PortState {
        mac: port_macs
            .get(n)
            .copied()
            .unwrap_or(crate::datapath::punt::PUNT_STANDIN_MAC),
        addr: 0,
        prefix_len: 0,
        mtu: cfg.punt.mtu,
    });
    Some(crate::datapath::punt::PuntState {
        port: n as u16,
        rate: cfg.punt.rate,
        burst: cfg.punt.burst,
    })
}

/// What a rebuild carries over from the running table: ARP, health and counter slots.
#[derive(Clone, Copy)]
pub struct Previous<'a> {
    pub snapshot: &'a Snapshot,
    /// The oldest generation a worker still uses: counter slots freed by then may be reused.
    pub acked: u64,
    /// The totals over workers, read after `acked`: where a reused slot starts from.
    pub counters: &'a Counters,
}

/// Why tunnel `i` has no route toward its customer endpoint through a port, blaming the
/// routes that take it into a tunnel where there are some (`routes[7].prefix`), else the
/// tunnel.
fn no_underlay_error(cfg: &Config, rib: &super::Rib, i: usize) -> String {
    let t = &cfg.tunnels[i];
    let ep = Ipv4Addr::from(t.customer_endpoint);
    let blamed: Vec<String> = rib
        .matching_prefix(t.customer_endpoint)
        .map(|p| rib.routes_of(p))
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .filter(|r| matches!(r.via, Via::Tunnel(_)))
        .map(|r| {
            let via = rib.via_name(r.via);
            match cfg.routes.iter().position(|x| x == r) {
                Some(k) if r.origin == RouteOrigin::Config => format!(
                    "routes[{k}].prefix: {} via {via} would take tunnel `{}`'s outer packets \
                     (to its customer_endpoint {ep}) into a tunnel; a customer endpoint must be \
                     reached through a port (route a prefix that leaves it out)",
                    r.prefix, t.name
                ),
                _ => format!(
                    "{} route {} via {via} would take tunnel `{}`'s outer packets (to its \
                     customer_endpoint {ep}) into a tunnel",
                    r.origin.name(),
                    r.prefix,
                    t.name
                ),
            }
        })
        .collect();
    if !blamed.is_empty() {
        return blamed.join("\n");
    }
    format!(
        "tunnels[{i}].customer_endpoint: no route toward {ep} through a port (a route through a \
         tunnel, or to our own address, cannot carry a tunnel)"
    )
}

impl Snapshot {
    /// Builds a snapshot from a validated config. `port_macs` are the MACs the ports really
    /// have (from DPDK, or from the config in `trace`). Besides the configured routes, the
    /// FIB holds: our port, tunnel-interface and anycast addresses; each port's connected
    /// subnet; a /32 to every neighbour; each tunnel's interface subnet through the tunnel.
    /// Configured routes win over the last two.
    pub fn build(
        cfg: &Config,
        port_macs: &[MacAddr],
        generation: u64,
        previous: Option<Previous>,
    ) -> Result<Snapshot, String> {
        Self::build_with_rib(cfg, port_macs, generation, previous).map(|(s, _)| s)
    }

    /// [`Snapshot::build`], also returning the route table that edits its FIB in place.
    pub fn build_with_rib(
        cfg: &Config,
        port_macs: &[MacAddr],
        generation: u64,
        previous: Option<Previous>,
    ) -> Result<(Snapshot, super::Rib), String> {
        let names: Vec<&str> = cfg.tunnels.iter().map(|t| t.name.as_str()).collect();
        let counter_slots = match previous {
            Some(p) => p.snapshot.counter_slots.next(
                &cfg.firewall.keys,
                &names,
                generation,
                p.acked,
                Some(p.counters),
            ),
            None => CounterSlots::default().next(&cfg.firewall.keys, &names, generation, 0, None),
        }?;
        let previous = previous.map(|p| p.snapshot);
        let mut ports: Vec<PortState> = cfg
            .ports
            .iter()
            .zip(port_macs)
            .map(|(p, mac)| PortState {
                mac: *mac,
                addr: p.addr,
                prefix_len: p.prefix_len,
                mtu: p.mtu,
            })
            .collect();
        let punt = punt_port(cfg, port_macs, &mut ports);

        // Gateways: every neighbour and every gateway a route names, once each.
        let mut gateways: Vec<(u16, u32)> = cfg.neighbors.iter().map(|n| (n.port, n.ip)).collect();
        for r in &cfg.routes {
            if let Via::Gateway { ip, port } = r.via {
                if !gateways.contains(&(port, ip)) {
                    gateways.push((port, ip));
                }
            }
        }
        let static_mac = |ip: u32| {
            cfg.neighbors
                .iter()
                .find(|n| n.ip == ip)
                .and_then(|n| n.mac)
        };
        let subnets: Vec<(u32, u8)> = cfg.ports.iter().map(|p| (p.addr, p.prefix_len)).collect();
        let arp = Arc::new(ArpCache::with_subnets(
            gateways
                .iter()
                .filter(|(_, ip)| static_mac(*ip).is_none())
                .copied()
                .collect(),
            &subnets,
        ));
        if let Some(prev) = previous {
            arp.inherit(&prev.arp);
        }
        for n in &cfg.neighbors {
            if let Some(mac) = n.mac {
                arp.pin_host(n.port, n.ip, mac);
            }
        }
        let mut nexthops: Vec<NextHop> = gateways
            .iter()
            .map(|&(port, ip)| {
                NextHop::Gateway(Gateway {
                    ip,
                    port,
                    mac: match static_mac(ip) {
                        Some(m) => NhMac::Static(m),
                        None => NhMac::Arp(
                            arp.slot(port, ip)
                                .and_then(|s| u32::try_from(s).ok())
                                .unwrap_or(u32::MAX),
                        ),
                    },
                })
            })
            .collect();
        let tunnel_nh0 = nexthops.len() as u32;
        nexthops.extend((0..cfg.tunnels.len()).map(|t| NextHop::Tunnel(t as u16)));
        nexthops.extend((0..cfg.ports.len()).map(|p| NextHop::Connected(p as u16)));

        let (rib, sets) = super::Rib::build(cfg, &gateways, tunnel_nh0)?;
        let fib = rib.fib().clone();

        let health: Vec<Health> = cfg
            .tunnels
            .iter()
            .map(|t| previous_health(previous, &t.name).unwrap_or(t.health))
            .collect();
        let groups: Vec<Arc<Group>> = sets
            .iter()
            .map(|c| Arc::new(Group::build(c, &health)))
            .collect();
        let mut sets_by_tunnel = vec![Vec::new(); cfg.tunnels.len()];
        for (si, cands) in sets.iter().enumerate() {
            for t in cands.iter().filter_map(|c| c.tunnel) {
                if let Some(v) = sets_by_tunnel.get_mut(t as usize) {
                    if v.last() != Some(&(si as u32)) {
                        v.push(si as u32);
                    }
                }
            }
        }

        let mut tunnels = Vec::new();
        // Every tunnel without an underlay is named, one per line.
        let mut no_underlay = Vec::new();
        for (i, t) in cfg.tunnels.iter().enumerate() {
            let underlay = match fib.lookup(t.customer_endpoint) {
                Some(set)
                    if set < SET_ANYCAST
                        && sets[set as usize].iter().all(|c| c.tunnel.is_none()) =>
                {
                    set
                }
                _ => {
                    no_underlay.push(no_underlay_error(cfg, &rib, i));
                    continue;
                }
            };
            tunnels.push(TunnelState {
                name: t.name.clone(),
                kind: t.kind,
                proto: t.protocol(),
                local: t.edge_endpoint,
                remote: t.customer_endpoint,
                iface_local: t.local_addr,
                ttl: t.ttl,
                mtu: t.mtu,
                mss_clamp: t.mss_clamp,
                overhead: t.overhead(),
                outer: crate::wire::outer::Template::new(
                    t.edge_endpoint,
                    t.customer_endpoint,
                    t.ttl,
                    t.kind == TunnelType::Gre,
                ),
                counter_slot: counter_slots.tunnels.slot(i),
                underlay,
                rpf: t.authorized.is_none(),
                arr: t.arr,
            });
        }
        if !no_underlay.is_empty() {
            return Err(no_underlay.join("\n"));
        }
        let mut tunnel_keys: Vec<TunnelKey> = tunnels
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.remote, t.local, t.proto), i as u16))
            .collect();
        tunnel_keys.sort_unstable();
        let sources = SourceFilter::build(
            cfg.tunnels
                .iter()
                .map(|t| t.authorized.clone().unwrap_or_default())
                .collect::<Vec<_>>()
                .as_slice(),
        )?;

        let (arr, arr_epoch) = arr_table(cfg, previous);
        let snap = Snapshot {
            generation,
            fib,
            sets: Arc::new(sets),
            groups,
            health,
            sets_by_tunnel: Arc::new(sets_by_tunnel),
            nexthops: Arc::new(nexthops),
            ports,
            port_names: Arc::new(cfg.ports.iter().map(|p| p.name.clone()).collect()),
            arp,
            tunnels: Arc::new(tunnels),
            tunnel_keys: Arc::new(tunnel_keys),
            sources: Arc::new(sources),
            icmp_errors_per_second: cfg.node.icmp_errors_per_second,
            node_id: cfg.node.id,
            firewall: Arc::new(cfg.firewall.clone()),
            classifier: Arc::new(crate::firewall::Classifier::new(&cfg.firewall.rules)),
            counter_slots: Arc::new(counter_slots),
            arr_active: cfg.tunnels.iter().any(|t| t.arr),
            arr,
            arr_epoch,
            punt,
        };
        Ok((snap, rib))
    }

    /// The same table for ports whose MACs are `macs`: a table built before the devices
    /// existed (with stand-ins) gets the ones they really have.
    pub fn with_port_macs(mut self, macs: &[MacAddr]) -> Snapshot {
        for (p, m) in self.ports.iter_mut().zip(macs) {
            p.mac = *m;
        }
        self
    }

    /// This snapshot with route sets appended (ids from `sets.len()` on), their groups
    /// selected under the current health.
    pub(super) fn with_sets(&self, added: Vec<Vec<Candidate>>, generation: u64) -> Snapshot {
        let mut next = self.clone();
        next.generation = generation;
        let mut sets = (*self.sets).clone();
        let mut by_tunnel = (*self.sets_by_tunnel).clone();
        for cands in added {
            let id = sets.len() as u32;
            next.groups
                .push(Arc::new(Group::build(&cands, &next.health)));
            for t in cands.iter().filter_map(|c| c.tunnel) {
                if let Some(v) = by_tunnel.get_mut(t as usize) {
                    if v.last() != Some(&id) {
                        v.push(id);
                    }
                }
            }
            sets.push(cands);
        }
        next.sets = Arc::new(sets);
        next.sets_by_tunnel = Arc::new(by_tunnel);
        next
    }

    /// May tunnel `t` send a packet from `src`? With an `authorized_prefixes` list, the
    /// source must fall in it; otherwise the route table must send `src` into `t`: some
    /// route (selected or not) for the longest prefix covering `src` goes through the tunnel
    /// (feasible-path reverse-path forwarding, RFC 3704 section 2.3).
    #[inline]
    pub fn source_allowed(&self, t: u16, src: u32, fib: crate::lpm::View) -> bool {
        self.tunnels
            .get(t as usize)
            .is_some_and(|tun| self.source_allowed_in(t, tun, src, fib))
    }

    /// `source_allowed` for a caller that holds tunnel `t`'s state already.
    #[inline(always)]
    pub fn source_allowed_in(
        &self,
        t: u16,
        tun: &TunnelState,
        src: u32,
        fib: crate::lpm::View,
    ) -> bool {
        if tun.rpf {
            self.set_has_tunnel(fib.lookup(src), t)
        } else {
            self.sources.allows(t, src)
        }
    }

    /// Whether route set `set` (a FIB lookup's answer) has a route through tunnel `t`: the
    /// reverse-path check of a source routed there.
    #[inline(always)]
    pub fn set_has_tunnel(&self, set: Option<u32>, t: u16) -> bool {
        set.and_then(|set| self.sets.get(set as usize))
            .is_some_and(|c| c.iter().any(|c| c.tunnel == Some(t)))
    }

    /// The same table with tunnel `t` in health `h`: only the groups of the route sets that
    /// contain the tunnel are rebuilt; the FIB and everything else are shared.
    pub fn with_health(&self, t: u16, h: Health, generation: u64) -> Option<Snapshot> {
        self.health.get(t as usize)?;
        let mut next = self.clone();
        next.generation = generation;
        next.health[t as usize] = h;
        for &set in self.sets_by_tunnel.get(t as usize)? {
            if let (Some(cands), Some(g)) = (
                self.sets.get(set as usize),
                next.groups.get_mut(set as usize),
            ) {
                *g = Arc::new(Group::build(cands, &next.health));
            }
        }
        Some(next)
    }

    /// Route sets rebuilt by a health change of tunnel `t`.
    pub fn sets_through(&self, t: u16) -> usize {
        self.sets_by_tunnel.get(t as usize).map_or(0, Vec::len)
    }

    /// A next hop as operators name it: the tunnel's name or the gateway's address.
    pub fn nexthop_name(&self, id: u32) -> String {
        match self.nexthops.get(id as usize) {
            Some(NextHop::Gateway(g)) => Ipv4Addr::from(g.ip).to_string(),
            Some(NextHop::Tunnel(t)) => self
                .tunnels
                .get(*t as usize)
                .map_or("?".into(), |t| t.name.clone()),
            Some(NextHop::Connected(p)) => format!(
                "connected ({})",
                self.port_names.get(*p as usize).map_or("?", String::as_str)
            ),
            None => "?".into(),
        }
    }

    /// The totals over workers, with the rule and tunnel counters by position in this
    /// snapshot's config, each since that rule or tunnel was configured.
    pub fn counters(&self, shared: &SharedCounters) -> Counters {
        self.counter_slots.by_position(&shared.total())
    }

    /// Raw (per counter slot) totals read by this table's positions: tunnels and rules in
    /// config order.
    pub fn counters_of(&self, raw: &Counters) -> Counters {
        self.counter_slots.by_position(raw)
    }

    /// The counter slot of rule `i`.
    #[inline(always)]
    pub fn rule_slot(&self, i: usize) -> usize {
        self.counter_slots.rules.slot(i)
    }

    /// The counter slot of tunnel `t`.
    #[inline(always)]
    pub fn tunnel_slot(&self, t: u16) -> usize {
        self.counter_slots.tunnels.slot(t as usize)
    }

    /// The ARR table, when some tunnel has ARR.
    #[inline(always)]
    pub fn arr_table(&self) -> Option<&crate::arr::Table> {
        self.arr.as_deref().filter(|_| self.arr_active)
    }

    /// The group a FIB value selects.
    #[inline]
    pub fn group(&self, set: u32) -> Option<&Group> {
        self.groups.get(set as usize).map(|g| &**g)
    }

    /// The tunnel that outer (source, destination, protocol) belongs to.
    #[inline]
    pub fn tunnel_by_endpoints(&self, remote: u32, local: u32, proto: u8) -> Option<u16> {
        self.tunnel_keys
            .binary_search_by(|(k, _)| k.cmp(&(remote, local, proto)))
            .ok()
            .and_then(|i| self.tunnel_keys.get(i))
            .map(|(_, t)| *t)
    }

    /// True when some tunnel joins these endpoints, whatever its protocol.
    pub fn has_tunnel_endpoints(&self, remote: u32, local: u32) -> bool {
        let i = self
            .tunnel_keys
            .partition_point(|(k, _)| (k.0, k.1) < (remote, local));
        self.tunnel_keys
            .get(i)
            .is_some_and(|(k, _)| (k.0, k.1) == (remote, local))
    }
}

/// The running ARR table (made at the configured size when a tunnel first has ARR, kept
/// after: a later change of `arr.max_flows` needs a restart) and its epoch: the previous
/// one, bumped when the tunnels' names or order changed.
fn arr_table(cfg: &Config, previous: Option<&Snapshot>) -> (Option<Arc<crate::arr::Table>>, u8) {
    let table = previous.and_then(|p| p.arr.clone()).or_else(|| {
        cfg.tunnels
            .iter()
            .any(|t| t.arr)
            .then(|| Arc::new(crate::arr::Table::new(cfg.arr.max_flows, cfg.arr.timeouts)))
    });
    let epoch = match previous {
        Some(p)
            if p.tunnels
                .iter()
                .map(|t| &t.name)
                .eq(cfg.tunnels.iter().map(|t| &t.name)) =>
        {
            p.arr_epoch
        }
        Some(p) => p.arr_epoch.wrapping_add(1),
        None => 0,
    };
    (table, epoch)
}

/// A tunnel's health in the previous snapshot, so a reload keeps what was set at run time.
fn previous_health(previous: Option<&Snapshot>, name: &str) -> Option<Health> {
    let prev = previous?;
    let i = prev.tunnels.iter().position(|t| t.name == name)?;
    prev.health.get(i).copied()
}
