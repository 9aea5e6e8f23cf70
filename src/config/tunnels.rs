//! Validation of `[node]` and `[[tunnels]]`.
use super::parse::{is_subnet_edge, parse_cidr, parse_ip, parse_prefix, Errs};
use super::ports::{NeighborConf, PortConf};
use super::schema::{Health, RawConfig, TunnelType};
use crate::limits::MAX_TUNNELS;
use crate::lpm::Prefix;
use std::collections::HashMap;

/// GRE over IPv4 adds 24 bytes (20 IPv4 + 4 GRE), IP-in-IP 20.
pub const GRE_OVERHEAD: u16 = 24;
pub const IPIP_OVERHEAD: u16 = 20;

#[derive(Debug, Clone, PartialEq)]
pub struct NodeConf {
    pub anycast: Vec<u32>,
    pub icmp_errors_per_second: u32,
    pub region: Option<Region>,
    pub colo: Option<String>,
    pub allow_public_prefixes: bool,
    pub control_socket: String,
    /// `node.id`, or a hash of the host name.
    pub id: u32,
    /// `node.control_group`; resolved to a gid when the socket is bound (at start).
    pub control_group: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TunnelConf {
    pub name: String,
    pub kind: TunnelType,
    pub customer_endpoint: u32,
    pub edge_endpoint: u32,
    /// Our side of the interface subnet, and the customer's.
    pub local_addr: u32,
    pub peer_addr: u32,
    pub prefix_len: u8,
    pub mtu: u16,
    pub ttl: u8,
    /// 0: no clamping.
    pub mss_clamp: u16,
    /// None: sources the route table sends into the tunnel (a reverse-path check).
    pub authorized: Option<Vec<Prefix>>,
    pub health: Health,
    /// `health_check`: how the tunnel is probed.
    pub check: super::health::HealthCheckConf,
    /// `automatic_return_routing`: learn this tunnel's flows for their return traffic.
    pub arr: bool,
}

impl TunnelConf {
    pub fn overhead(&self) -> u16 {
        match self.kind {
            TunnelType::Gre => GRE_OVERHEAD,
            TunnelType::Ipip => IPIP_OVERHEAD,
        }
    }
    pub fn protocol(&self) -> u8 {
        match self.kind {
            TunnelType::Gre => crate::wire::ipv4::PROTO_GRE,
            TunnelType::Ipip => crate::wire::ipv4::PROTO_IPIP,
        }
    }
    pub fn interface_prefix(&self) -> Prefix {
        Prefix {
            addr: self.local_addr & Prefix::mask(self.prefix_len),
            len: self.prefix_len,
        }
    }
}

/// The vendor's nine region codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(u8);

impl Region {
    pub const CODES: [&'static str; 9] = [
        "AFR", "APAC", "EEUR", "ENAM", "ME", "OC", "SAM", "WEUR", "WNAM",
    ];
    pub fn parse(s: &str) -> Option<Region> {
        Self::CODES
            .iter()
            .position(|c| *c == s)
            .map(|i| Region(i as u8))
    }
    pub fn code(self) -> &'static str {
        Self::CODES[self.0 as usize % Self::CODES.len()]
    }
}

/// RFC 1918 space.
pub fn is_rfc1918(p: Prefix) -> bool {
    [(0x0a00_0000, 8), (0xac10_0000, 12), (0xc0a8_0000, 16)]
        .iter()
        .any(|&(a, l)| p.len >= l && p.addr & Prefix::mask(l) == a)
}

fn interface_range_ok(addr: u32) -> bool {
    let in_p = |a: u32, p: u32, l: u8| a & Prefix::mask(l) == p;
    in_p(addr, 0x0a00_0000, 8)
        || in_p(addr, 0xac10_0000, 12)
        || in_p(addr, 0xc0a8_0000, 16)
        || in_p(addr, 0xa9fe_f000, 20)
}

/// A group name as useradd/groupadd accept it, and a socket for it to open.
fn control_group(raw: &RawConfig, e: &mut Errs) -> Option<String> {
    let g = raw.node.control_group.as_ref()?;
    let valid = !g.is_empty()
        && g.len() <= 32
        && !g.starts_with('-')
        && g.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !valid {
        e.push(
            "node.control_group",
            format!("`{g}` is not a group name (1-32 of letters, digits, `_ . -`)"),
        );
    } else if raw.node.control_socket.is_empty() {
        e.push(
            "node.control_group",
            "set, but node.control_socket is \"\" (no socket to share)",
        );
    }
    Some(g.clone())
}

/// The longest path a Unix socket binds to (Linux: 108 bytes of `sun_path`, NUL included).
const MAX_SOCKET_PATH: usize = 107;

pub fn validate_node(
    raw: &RawConfig,
    ports: &[PortConf],
    neighbors: &[NeighborConf],
    e: &mut Errs,
) -> NodeConf {
    let mut anycast = Vec::new();
    for (i, a) in raw.node.anycast_addresses.iter().enumerate() {
        let path = format!("node.anycast_addresses[{i}]");
        match parse_ip(a) {
            Ok(ip) if anycast.contains(&ip) => e.push(path, format!("{a} is listed twice")),
            Ok(ip) if ports.iter().any(|p| p.addr == ip) => e.push(
                path,
                format!("{a} is a port address; anycast addresses are not"),
            ),
            // Packets for it would be taken for tunnel traffic instead of reaching the host.
            Ok(ip) if neighbors.iter().any(|n| n.ip == ip) => e.push(
                path,
                format!("{a} is a neighbour's address; anycast addresses are not"),
            ),
            Ok(ip) if crate::wire::ipv4::is_martian_dst(ip) => {
                e.push(path, format!("{a} is not a unicast address"))
            }
            Ok(ip) => anycast.push(ip),
            Err(m) => e.push(path, m),
        }
    }
    let region = raw
        .node
        .region
        .as_deref()
        .and_then(|r| match Region::parse(r) {
            Some(r) => Some(r),
            None => {
                e.push(
                    "node.region",
                    format!("`{r}` is not a region code ({})", Region::CODES.join(" ")),
                );
                None
            }
        });
    let sock = &raw.node.control_socket;
    if sock.len() > MAX_SOCKET_PATH {
        // bind() would refuse it at start (sockaddr_un.sun_path is 108 bytes with its NUL).
        e.push(
            "node.control_socket",
            format!(
                "`{sock}` is {} bytes; a Unix socket path is at most {MAX_SOCKET_PATH}",
                sock.len()
            ),
        );
    } else if sock.contains('\0') {
        e.push("node.control_socket", "contains a NUL byte");
    }
    if raw.node.colo.as_deref() == Some("") {
        // As a route's `scope.colos` entry: a name that no scope can list.
        e.push(
            "node.colo",
            "empty data center name (leave the key out for none)",
        );
    }
    NodeConf {
        anycast,
        icmp_errors_per_second: raw.node.icmp_errors_per_second,
        region,
        colo: raw.node.colo.clone(),
        allow_public_prefixes: raw.node.allow_public_prefixes,
        control_socket: raw.node.control_socket.clone(),
        id: raw.node.id.unwrap_or_else(host_node_id),
        control_group: control_group(raw, e),
    }
}

pub fn validate_tunnels(
    raw: &RawConfig,
    node: &NodeConf,
    ports: &[PortConf],
    e: &mut Errs,
) -> Vec<TunnelConf> {
    if raw.tunnels.len() > MAX_TUNNELS {
        e.push(
            "tunnels",
            format!("{} tunnels; at most {MAX_TUNNELS}", raw.tunnels.len()),
        );
    }
    let mut out: Vec<TunnelConf> = Vec::new();
    // The index in `raw.tunnels` of each of `out`.
    let mut raw_index: Vec<usize> = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut endpoints: HashMap<(u32, u32, TunnelType), usize> = HashMap::new();
    for (i, t) in raw.tunnels.iter().enumerate() {
        let path = format!("tunnels[{i}]");
        let before = e.0.len();
        // ASCII only: names are metric labels, log fields and ECMP hash input, and a name
        // must read the same on every terminal and in every tool.
        if t.name.is_empty() || t.name.len() > 15 || !t.name.chars().all(|c| c.is_ascii_graphic()) {
            e.push(
                format!("{path}.name"),
                format!(
                    "`{}` must be 1-15 ASCII letters, digits or punctuation (no spaces)",
                    t.name.escape_debug()
                ),
            );
        } else if t.name.parse::<std::net::Ipv4Addr>().is_ok() {
            // A route's nexthop names a tunnel or an address; this one would be both.
            e.push(
                format!("{path}.name"),
                format!(
                    "`{}` is an IPv4 address; a route's nexthop could not tell the tunnel from \
                     the address",
                    t.name
                ),
            );
        }
        if let Some(j) = names.insert(&t.name, i) {
            e.push(
                format!("{path}.name"),
                format!("duplicate tunnel name `{}`: already tunnels[{j}]", t.name),
            );
        }
        let customer = parse_ip(&t.customer_endpoint)
            .map_err(|m| e.push(format!("{path}.customer_endpoint"), m))
            .ok();
        let edge = parse_ip(&t.edge_endpoint)
            .map_err(|m| e.push(format!("{path}.edge_endpoint"), m))
            .ok();
        if let Some(edge) = edge {
            if !node.anycast.contains(&edge) {
                e.push(
                    format!("{path}.edge_endpoint"),
                    format!("{} is not one of node.anycast_addresses", t.edge_endpoint),
                );
            }
        }
        if let Some(c) = customer {
            if crate::wire::ipv4::is_martian_src(c) || node.anycast.contains(&c) {
                e.push(
                    format!("{path}.customer_endpoint"),
                    format!("{} cannot be a customer endpoint", t.customer_endpoint),
                );
            } else if let Some(p) = ports.iter().find(|p| p.addr == c) {
                e.push(
                    format!("{path}.customer_endpoint"),
                    format!("{} is port `{}`'s own address", t.customer_endpoint, p.name),
                );
            } else if let Some(p) = ports
                .iter()
                .find(|p| p.on_link(c) && is_subnet_edge(c, p.prefix_len))
            {
                e.push(
                    format!("{path}.customer_endpoint"),
                    format!(
                        "{} is the network or broadcast address of port `{}`'s subnet",
                        t.customer_endpoint, p.name
                    ),
                );
            }
        }
        if let (Some(c), Some(d)) = (customer, edge) {
            if let Some(j) = endpoints.insert((c, d, t.kind), i) {
                e.push(
                    format!("{path}.customer_endpoint"),
                    format!(
                        "tunnels[{j}] already joins {} and {} with the same type",
                        t.customer_endpoint, t.edge_endpoint
                    ),
                );
            }
        }
        let (local, len) = match parse_cidr(&t.interface_address) {
            Ok((a, l)) if l != 30 && l != 31 => {
                e.push(
                    format!("{path}.interface_address"),
                    format!("{} must be a /31 or a /30", t.interface_address),
                );
                (a, l)
            }
            Ok((a, l)) if !interface_range_ok(a) => {
                e.push(
                    format!("{path}.interface_address"),
                    format!(
                        "{} must be in RFC 1918 space or 169.254.240.0/20",
                        t.interface_address
                    ),
                );
                (a, l)
            }
            Ok((a, 30)) if a & 3 == 0 || a & 3 == 3 => {
                e.push(
                    format!("{path}.interface_address"),
                    format!(
                        "{} is the network or broadcast address of its /30",
                        t.interface_address
                    ),
                );
                (a, 30)
            }
            Ok(v) => v,
            Err(m) => {
                e.push(format!("{path}.interface_address"), m);
                (0, 31)
            }
        };
        // The customer's side: the other address of a /31, the other host of a /30.
        let peer = if len == 31 {
            local ^ 1
        } else {
            (local & !3) | if local & 3 == 1 { 2 } else { 1 }
        };
        let (def_mtu, overhead) = match t.kind {
            TunnelType::Gre => (1500 - GRE_OVERHEAD, GRE_OVERHEAD),
            TunnelType::Ipip => (1500 - IPIP_OVERHEAD, IPIP_OVERHEAD),
        };
        let mtu = t.mtu.unwrap_or(def_mtu);
        if !(576..=9600 - overhead).contains(&mtu) {
            e.push(
                format!("{path}.mtu"),
                format!("{mtu} is not in 576..={}", 9600 - overhead),
            );
        }
        let ttl = t.ttl.unwrap_or(64);
        if ttl == 0 {
            e.push(format!("{path}.ttl"), "0 is not a usable TTL; 1..=255");
        }
        let mss_clamp = t.mss_clamp.unwrap_or(mtu.saturating_sub(40));
        if mss_clamp != 0 && mss_clamp < 88 {
            e.push(
                format!("{path}.mss_clamp"),
                format!("{mss_clamp} is below the smallest useful MSS (88); 0 disables clamping"),
            );
        } else if mss_clamp > mtu.saturating_sub(40) {
            // A segment of that MSS plus 40 bytes of IPv4 and TCP headers would not fit.
            e.push(
                format!("{path}.mss_clamp"),
                format!(
                    "{mss_clamp} is above mtu - 40 ({}); 0 disables clamping",
                    mtu.saturating_sub(40)
                ),
            );
        }
        let authorized = t.authorized_prefixes.as_ref().map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(k, s)| {
                    parse_prefix(s)
                        .map_err(|m| e.push(format!("{path}.authorized_prefixes[{k}]"), m))
                        .ok()
                })
                .collect()
        });
        let check = super::health::validate_check(
            &t.health_check,
            &format!("{path}.health_check"),
            peer,
            e,
        );
        if e.0.len() > before {
            continue;
        }
        let tc = TunnelConf {
            name: t.name.clone(),
            kind: t.kind,
            customer_endpoint: customer.unwrap_or(0),
            edge_endpoint: edge.unwrap_or(0),
            local_addr: local,
            peer_addr: peer,
            prefix_len: len,
            mtu,
            ttl,
            mss_clamp,
            authorized,
            health: t.health,
            check,
            arr: t.automatic_return_routing,
        };
        if let Some(a) = [local, peer].into_iter().find(|a| node.anycast.contains(a)) {
            e.push(
                format!("{path}.interface_address"),
                format!(
                    "{}: {} is one of node.anycast_addresses",
                    t.interface_address,
                    std::net::Ipv4Addr::from(a)
                ),
            );
            continue;
        }
        if let Some(j) = out.iter().position(|o| {
            let m = Prefix::mask(o.prefix_len.min(tc.prefix_len));
            o.local_addr & m == tc.local_addr & m
        }) {
            e.push(
                format!("{path}.interface_address"),
                format!(
                    "{} overlaps the interface address of tunnel `{}`",
                    t.interface_address, out[j].name
                ),
            );
            continue;
        }
        out.push(tc);
        raw_index.push(i);
    }
    // A customer endpoint inside an interface subnet (ours or the customer's side) would be
    // routed into that tunnel: the outer packet would loop.
    for (k, t) in out.iter().enumerate() {
        if let Some(o) = out
            .iter()
            .find(|o| o.interface_prefix().contains(t.customer_endpoint))
        {
            e.push(
                format!("tunnels[{}].customer_endpoint", raw_index[k]),
                format!(
                    "{} is in the interface subnet of tunnel `{}`",
                    std::net::Ipv4Addr::from(t.customer_endpoint),
                    o.name
                ),
            );
        }
    }
    out
}

/// A node id from the host name (FNV-1a), so that servers of a fleet differ without
/// configuration; `node.id` sets it explicitly.
pub fn host_node_id() -> u32 {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    fnv1a(name.trim().as_bytes())
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod control_group_tests {
    use crate::config::{parse, Host};

    fn errors(node: &str) -> String {
        let text = format!("[node]\n{node}\n[[ports]]\nname = \"p\"\ndevice = \"net_null0\"\naddress = \"192.0.2.1/24\"\n[[workers]]\ncore = 1\nrx = [{{ port = \"p\" }}]\n");
        match parse(&text, &Host { cores: vec![0, 1] }) {
            Ok(c) => format!("ok {:?}", c.node.control_group),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_group_name_is_checked_and_needs_a_socket() {
        assert_eq!(errors(""), "ok None");
        assert_eq!(
            errors("control_group = \"anygate\""),
            "ok Some(\"anygate\")"
        );
        assert_eq!(
            errors("control_group = \"bad name\""),
            "node.control_group: `bad name` is not a group name (1-32 of letters, digits, `_ . -`)"
        );
        assert_eq!(
            errors("control_group = \"ops\"\ncontrol_socket = \"\""),
            "node.control_group: set, but node.control_socket is \"\" (no socket to share)"
        );
    }
}
