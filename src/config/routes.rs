//! Validation of `[[routes]]`: next hops, priorities, weights, scopes and the vendor's rules
//! (RFC 1918 toward tunnels, at most 64 routes per prefix and priority).
use super::parse::{is_subnet_edge, parse_ip, parse_prefix, Errs};
use super::ports::PortConf;
use super::schema::{RawConfig, RawRoute, RouteSource};
use super::tunnels::{is_rfc1918, NodeConf, Region, TunnelConf};
use crate::lpm::Prefix;
use std::collections::HashMap;

/// Routes with one prefix and one priority, at most (the vendor's limit).
pub const MAX_SAME_PRIORITY: usize = 64;
/// The weight of a route that names none.
pub const DEFAULT_WEIGHT: u16 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Via {
    /// A gateway on a port's subnet.
    Gateway { ip: u32, port: u16 },
    /// A tunnel, by index into `Config::tunnels`.
    Tunnel(u16),
}

/// Where a route came from: the config file, or `anygate ctl` at run time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RouteOrigin {
    #[default]
    Config,
    Ctl,
    /// Learned from a BGP peer (`bgp::sync`), kept across reloads while the peer is.
    Bgp,
}

impl RouteOrigin {
    pub fn name(self) -> &'static str {
        match self {
            RouteOrigin::Config => "config",
            RouteOrigin::Ctl => "ctl",
            RouteOrigin::Bgp => "bgp",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConf {
    pub prefix: Prefix,
    pub via: Via,
    pub priority: u32,
    pub weight: u16,
    pub source: RouteSource,
    /// Empty: every region (and then `colos` decides, or the route is global).
    pub regions: Vec<Region>,
    pub colos: Vec<String>,
    pub description: String,
    pub origin: RouteOrigin,
}

impl RouteConf {
    /// Is the route in this server's table? Unscoped routes are everywhere; scoped ones where
    /// the region or the data center is listed.
    pub fn visible(&self, node: &NodeConf) -> bool {
        (self.regions.is_empty() && self.colos.is_empty())
            || node.region.is_some_and(|r| self.regions.contains(&r))
            || node.colo.as_ref().is_some_and(|c| self.colos.contains(c))
    }
}

pub(super) struct Context<'a> {
    pub ports: &'a [PortConf],
    pub neigh_ip: &'a HashMap<u32, usize>,
    pub port_idx: &'a HashMap<&'a str, u16>,
    pub tunnels: &'a [TunnelConf],
    pub node: &'a NodeConf,
}

pub(super) fn validate_routes(raw: &RawConfig, cx: &Context, e: &mut Errs) -> Vec<RouteConf> {
    let mut routes: Vec<RouteConf> = Vec::new();
    // Duplicates and per-priority counts by hash: full tables have ~500k routes.
    type Key = (Prefix, Via, RouteSource, Vec<Region>, Vec<String>);
    let mut seen: HashMap<Key, usize> = HashMap::new();
    let mut per_priority: HashMap<(Prefix, u32), usize> = HashMap::new();
    for (i, r) in raw.routes.iter().enumerate() {
        let path = format!("routes[{i}]");
        let Some(rc) = check_route(&path, r, raw, cx, e) else {
            continue;
        };
        let key = (
            rc.prefix,
            rc.via,
            rc.source,
            rc.regions.clone(),
            rc.colos.clone(),
        );
        if let Some(j) = seen.get(&key) {
            e.push(
                path,
                format!(
                    "duplicate route: {} via {} is already routes[{j}]",
                    r.prefix, r.nexthop
                ),
            );
            continue;
        }
        let same = per_priority.entry((rc.prefix, rc.priority)).or_default();
        if *same == MAX_SAME_PRIORITY {
            e.push(
                format!("{path}.priority"),
                format!(
                    "more than {MAX_SAME_PRIORITY} routes for {} at priority {}",
                    r.prefix, r.priority
                ),
            );
            continue;
        }
        *same += 1;
        seen.insert(key, i);
        routes.push(rc);
    }
    routes
}

/// One route on its own: every rule but those across routes (duplicates, the per-priority
/// limit). Errors are pushed under `path`.
pub(super) fn check_route(
    path: &str,
    r: &RawRoute,
    raw: &RawConfig,
    cx: &Context,
    e: &mut Errs,
) -> Option<RouteConf> {
    {
        let before = e.0.len();
        let prefix = parse_prefix(&r.prefix)
            .map_err(|m| e.push(format!("{path}.prefix"), m))
            .ok();
        // A tunnel refused for its own keys has its error already: the routes through it
        // are left out rather than each reported as naming no tunnel.
        let mut refused_tunnel = false;
        let via = match route_via(&r.nexthop, raw, cx) {
            Ok(v) => Some(v),
            Err(_) if raw.tunnels.iter().any(|t| t.name == r.nexthop) => {
                refused_tunnel = true;
                None
            }
            Err(m) => {
                e.push(format!("{path}.nexthop"), m);
                None
            }
        };
        if let Some(why) = prefix.and_then(|p| unusable(p, raw, cx)) {
            e.push(format!("{path}.prefix"), why);
        }
        if let Some((j, port)) = prefix.and_then(|p| {
            cx.ports
                .iter()
                .enumerate()
                .find(|(_, port)| port.prefix_len > 0 && port.subnet() == p)
        }) {
            e.push(
                format!("{path}.prefix"),
                format!(
                    "{} is port `{}`'s connected subnet (ports[{j}].address): its hosts are reached directly, by ARP; route a longer prefix inside it instead",
                    r.prefix, port.name
                ),
            );
        }
        if let (Some(p), Some(Via::Tunnel(_))) = (prefix, via) {
            if !cx.node.allow_public_prefixes && !is_rfc1918(p) {
                e.push(format!("{path}.prefix"), format!("{p} is not RFC 1918 space; routes toward tunnels need node.allow_public_prefixes = true for it"));
            }
        }
        let weight = match r.weight {
            None => DEFAULT_WEIGHT,
            Some(w) if (1..=256).contains(&w) => w,
            Some(w) => {
                e.push(format!("{path}.weight"), format!("{w} is not in 1..=256"));
                DEFAULT_WEIGHT
            }
        };
        let scope = r.scope.clone().unwrap_or_default();
        let mut regions = Vec::new();
        for (k, code) in scope.regions.iter().enumerate() {
            match Region::parse(code) {
                Some(reg) if !regions.contains(&reg) => regions.push(reg),
                Some(_) => e.push(
                    format!("{path}.scope.regions[{k}]"),
                    format!("{code} is listed twice"),
                ),
                None => e.push(
                    format!("{path}.scope.regions[{k}]"),
                    format!(
                        "`{code}` is not a region code ({})",
                        Region::CODES.join(" ")
                    ),
                ),
            }
        }
        regions.sort();
        let mut colos = scope.colos.clone();
        if let Some(k) = colos.iter().position(|c| c.is_empty()) {
            e.push(format!("{path}.scope.colos[{k}]"), "empty data center name");
        }
        colos.sort();
        colos.dedup();
        if e.0.len() > before || refused_tunnel {
            return None;
        }
        let (Some(prefix), Some(via)) = (prefix, via) else {
            return None;
        };
        Some(RouteConf {
            prefix,
            via,
            priority: r.priority,
            weight,
            source: r.source,
            regions,
            colos,
            description: r.description.clone(),
            origin: RouteOrigin::Config,
        })
    }
}

/// Why a route for `p` could never carry a packet (None: it can).
/// - Inside a tunnel's interface subnet: that subnet is routed through its tunnel implicitly
///   (the customer router's address, and the inner sources the tunnel accepts); a route
///   there would send it elsewhere or, through the same tunnel, only repeat it.
/// - One of our own addresses (a port's, an anycast one) or a port subnet's network or
///   broadcast address: those are answered or dropped here, before any route is looked at.
/// - Only destinations never forwarded (0/8, 127/8, multicast, reserved).
fn unusable(p: Prefix, raw: &RawConfig, cx: &Context) -> Option<String> {
    if let Some(t) = cx
        .tunnels
        .iter()
        .find(|t| t.interface_prefix().len <= p.len && t.interface_prefix().contains(p.addr))
    {
        let iface = t.interface_prefix();
        let key = raw
            .tunnels
            .iter()
            .position(|r| r.name == t.name)
            .map_or(String::new(), |j| {
                format!(" (tunnels[{j}].interface_address)")
            });
        let what = if iface == p { "is" } else { "is inside" };
        return Some(format!(
            "{p} {what} tunnel `{}`'s interface subnet {iface}{key}: it is routed through that \
             tunnel implicitly and no route may take its addresses elsewhere",
            t.name
        ));
    }
    if p.len == 32 {
        let a = p.addr;
        let ip = std::net::Ipv4Addr::from(a);
        if let Some((j, port)) = cx.ports.iter().enumerate().find(|(_, q)| q.addr == a) {
            return Some(format!(
                "{ip} is port `{}`'s own address (ports[{j}].address): packets to it are ours, \
                 never routed",
                port.name
            ));
        }
        if cx.node.anycast.contains(&a) {
            return Some(format!(
                "{ip} is one of node.anycast_addresses: packets to it end tunnels here, never \
                 routed"
            ));
        }
        if let Some(port) = cx
            .ports
            .iter()
            .find(|q| q.on_link(a) && is_subnet_edge(a, q.prefix_len))
        {
            return Some(format!(
                "{ip} is the network or broadcast address of port `{}`'s subnet: never forwarded \
                 to",
                port.name
            ));
        }
    }
    let first = (p.addr >> 24) as u8;
    let last = ((p.addr | !Prefix::mask(p.len)) >> 24) as u8;
    if (first..=last).all(|o| crate::wire::ipv4::is_martian_dst(u32::from(o) << 24)) {
        return Some(format!(
            "{p} holds only destinations never forwarded (0/8, 127/8, multicast, reserved)"
        ));
    }
    None
}

/// Resolves a route's `nexthop`: a tunnel name, a tunnel's customer-side interface address,
/// a `[[neighbors]]` entry, or an address on a port's subnet.
fn route_via(nexthop: &str, raw: &RawConfig, cx: &Context) -> Result<Via, String> {
    if let Some(t) = cx.tunnels.iter().position(|t| t.name == nexthop) {
        return Ok(Via::Tunnel(t as u16));
    }
    let ip = parse_ip(nexthop)
        .map_err(|_| format!("`{nexthop}` is neither a tunnel name nor an IPv4 address"))?;
    if let Some(t) = cx.tunnels.iter().position(|t| t.peer_addr == ip) {
        return Ok(Via::Tunnel(t as u16));
    }
    if cx.ports.iter().any(|p| p.addr == ip) {
        return Err(format!("{nexthop} is one of our own port addresses"));
    }
    if let Some(p) = cx
        .ports
        .iter()
        .find(|p| p.on_link(ip) && is_subnet_edge(ip, p.prefix_len))
    {
        return Err(format!(
            "{nexthop} is the network or broadcast address of port `{}`'s subnet",
            p.name
        ));
    }
    let port = match cx.neigh_ip.get(&ip) {
        Some(&ni) => raw
            .neighbors
            .get(ni)
            .and_then(|n| cx.port_idx.get(n.port.as_str()).copied()),
        None => cx
            .ports
            .iter()
            .position(|p| p.on_link(ip))
            .map(|p| p as u16),
    };
    port.map(|port| Via::Gateway { ip, port }).ok_or_else(|| {
        format!("{nexthop} is on no port's subnet and is no [[neighbors]] entry or tunnel")
    })
}
