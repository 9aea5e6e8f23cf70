use super::source_filter::SourceFilter;
use super::ArpCache;
use crate::config::{Config, TunnelType, Via};
use crate::lpm::{Dir24_8, Prefix};
use crate::wire::MacAddr;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// FIB value for our own port and tunnel-interface addresses: never forwarded.
pub const NH_LOCAL: u32 = crate::lpm::MAX_VALUE;
/// FIB value for the anycast addresses tunnels end on.
pub const NH_ANYCAST: u32 = crate::lpm::MAX_VALUE - 1;

/// Upper bound on /24s holding longer prefixes: 64 MiB of tbl8, as much as tbl24 itself.
const MAX_TBL8_GROUPS: usize = 1 << 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NhMac {
    Static(MacAddr),
    /// Resolved by ARP into this slot of the snapshot's [`ArpCache`].
    Arp(usize),
}

/// A gateway on one of our ports.
#[derive(Debug, Clone, Copy)]
pub struct Gateway {
    pub ip: u32,
    pub port: u16,
    pub mac: NhMac,
}

#[derive(Debug, Clone, Copy)]
pub enum NextHop {
    Gateway(Gateway),
    /// Encapsulate into this tunnel (index into `Snapshot::tunnels`).
    Tunnel(u16),
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
    /// The gateway next hop toward `remote`.
    pub underlay: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct PortState {
    pub mac: MacAddr,
    pub addr: u32,
    pub prefix_len: u8,
    pub mtu: u16,
}

/// Everything a worker needs to forward, immutable once published.
pub struct Snapshot {
    pub generation: u64,
    pub fib: Dir24_8,
    pub nexthops: Vec<NextHop>,
    pub ports: Vec<PortState>,
    pub arp: Arc<ArpCache>,
    pub tunnels: Vec<TunnelState>,
    /// (customer endpoint, edge endpoint, protocol) -> tunnel, sorted for binary search.
    pub tunnel_keys: Vec<((u32, u32, u8), u16)>,
    /// Which inner sources each tunnel may send.
    pub sources: SourceFilter,
    pub icmp_errors_per_second: u32,
    /// The prefix each FIB entry came from, for `trace` and `show`.
    pub prefixes: Vec<(Prefix, u32)>,
}

impl Snapshot {
    /// Builds a snapshot from a validated config. `port_macs` are the MACs the ports really
    /// have (from DPDK, or from the config in `trace`). Besides the configured routes, the
    /// FIB holds: our port, tunnel-interface and anycast addresses; a /32 to every neighbour;
    /// each tunnel's interface subnet through the tunnel. Configured routes win over these.
    pub fn build(
        cfg: &Config,
        port_macs: &[MacAddr],
        generation: u64,
        previous: Option<&Snapshot>,
    ) -> Result<Snapshot, String> {
        let ports: Vec<PortState> = cfg
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
        let arp = Arc::new(ArpCache::new(
            gateways
                .iter()
                .filter(|(_, ip)| static_mac(*ip).is_none())
                .copied()
                .collect(),
        ));
        if let Some(prev) = previous {
            arp.inherit(&prev.arp);
        }
        let mut nexthops: Vec<NextHop> = gateways
            .iter()
            .map(|&(port, ip)| {
                NextHop::Gateway(Gateway {
                    ip,
                    port,
                    mac: match static_mac(ip) {
                        Some(m) => NhMac::Static(m),
                        None => NhMac::Arp(arp.slot(port, ip).unwrap_or(usize::MAX)),
                    },
                })
            })
            .collect();
        let tunnel_nh0 = nexthops.len() as u32;
        nexthops.extend((0..cfg.tunnels.len()).map(|t| NextHop::Tunnel(t as u16)));
        let gw_id =
            |port: u16, ip: u32| gateways.iter().position(|k| *k == (port, ip)).unwrap_or(0) as u32;

        let host = |addr: u32| Prefix { addr, len: 32 };
        let mut routes: Vec<(Prefix, u32)> = Vec::new();
        for (i, t) in cfg.tunnels.iter().enumerate() {
            routes.push((t.interface_prefix(), tunnel_nh0 + i as u32));
            routes.push((host(t.local_addr), NH_LOCAL));
        }
        for p in &cfg.ports {
            routes.push((host(p.addr), NH_LOCAL));
        }
        for a in &cfg.node.anycast {
            routes.push((host(*a), NH_ANYCAST));
        }
        for n in &cfg.neighbors {
            routes.push((host(n.ip), gw_id(n.port, n.ip)));
        }
        // Configured routes come last, so they win over the implicit ones.
        for r in &cfg.routes {
            let id = match r.via {
                Via::Gateway { ip, port } => gw_id(port, ip),
                Via::Tunnel(t) => tunnel_nh0 + t as u32,
            };
            routes.push((r.prefix, id));
        }
        let fib = Dir24_8::build(&routes, MAX_TBL8_GROUPS).map_err(|e| format!("routes: {e}"))?;

        let mut tunnels = Vec::new();
        for (i, t) in cfg.tunnels.iter().enumerate() {
            let underlay = match fib
                .lookup(t.customer_endpoint)
                .and_then(|id| nexthops.get(id as usize))
            {
                Some(NextHop::Gateway(_)) => fib.lookup(t.customer_endpoint).unwrap_or(0),
                _ => {
                    return Err(format!(
                    "tunnels[{i}].customer_endpoint: no route toward {} through a port (a route \
                         through a tunnel, or to our own address, cannot carry a tunnel)",
                    Ipv4Addr::from(t.customer_endpoint)
                ))
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
                underlay,
            });
        }
        let mut tunnel_keys: Vec<((u32, u32, u8), u16)> = tunnels
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

        let mut prefixes = routes;
        prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len));
        Ok(Snapshot {
            generation,
            fib,
            nexthops,
            ports,
            arp,
            tunnels,
            tunnel_keys,
            sources,
            icmp_errors_per_second: cfg.node.icmp_errors_per_second,
            prefixes,
        })
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

    /// The most specific prefix covering `ip` (slow: for tracing, not forwarding).
    pub fn matching_prefix(&self, ip: u32) -> Option<Prefix> {
        self.prefixes
            .iter()
            .find(|(p, _)| p.contains(ip))
            .map(|(p, _)| *p)
    }
}
