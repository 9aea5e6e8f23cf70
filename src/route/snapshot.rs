use super::ArpCache;
use crate::config::Config;
use crate::lpm::{BuildError, Dir24_8, Prefix};
use crate::wire::MacAddr;
use std::collections::HashMap;
use std::sync::Arc;

/// FIB value for our own port addresses: delivered locally, never forwarded.
pub const NH_LOCAL: u32 = crate::lpm::MAX_VALUE;

/// Upper bound on /24s holding longer prefixes: 64 MiB of tbl8, as much as tbl24 itself.
const MAX_TBL8_GROUPS: usize = 1 << 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NhMac {
    Static(MacAddr),
    /// Resolved by ARP into this slot of the snapshot's [`ArpCache`].
    Arp(usize),
}

#[derive(Debug, Clone, Copy)]
pub struct NextHop {
    pub ip: u32,
    pub port: u16,
    pub mac: NhMac,
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
    /// The prefix each FIB entry came from, for `trace` and `show`.
    pub prefixes: Vec<(Prefix, u32)>,
}

impl Snapshot {
    /// Builds a snapshot from a validated config. `port_macs` are the MACs the ports really
    /// have (from DPDK, or from the config in `trace`). Host routes to every configured
    /// neighbour and local routes to our own addresses are added unless a route says otherwise.
    pub fn build(
        cfg: &Config,
        port_macs: &[MacAddr],
        generation: u64,
        previous: Option<&Snapshot>,
    ) -> Result<Snapshot, BuildError> {
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

        let static_mac: HashMap<u32, MacAddr> = cfg
            .neighbors
            .iter()
            .filter_map(|n| n.mac.map(|m| (n.ip, m)))
            .collect();
        // Every next hop without a static MAC gets an ARP slot.
        let mut wanted: Vec<(u16, u32)> = Vec::new();
        let mut order: Vec<(u16, u32)> = Vec::new();
        for (port, ip) in cfg
            .neighbors
            .iter()
            .map(|n| (n.port, n.ip))
            .chain(cfg.routes.iter().map(|r| (r.port, r.nexthop)))
        {
            if !order.contains(&(port, ip)) {
                order.push((port, ip));
                if !static_mac.contains_key(&ip) {
                    wanted.push((port, ip));
                }
            }
        }
        let arp = Arc::new(ArpCache::new(wanted));
        if let Some(prev) = previous {
            arp.inherit(&prev.arp);
        }
        let nexthops: Vec<NextHop> = order
            .iter()
            .map(|&(port, ip)| NextHop {
                ip,
                port,
                mac: match static_mac.get(&ip) {
                    Some(m) => NhMac::Static(*m),
                    None => NhMac::Arp(arp.slot(port, ip).unwrap_or(usize::MAX)),
                },
            })
            .collect();
        let nh_id =
            |port: u16, ip: u32| order.iter().position(|k| *k == (port, ip)).unwrap_or(0) as u32;

        let mut routes: Vec<(Prefix, u32)> = Vec::new();
        for p in &cfg.ports {
            routes.push((
                Prefix {
                    addr: p.addr,
                    len: 32,
                },
                NH_LOCAL,
            ));
        }
        for n in &cfg.neighbors {
            routes.push((
                Prefix {
                    addr: n.ip,
                    len: 32,
                },
                nh_id(n.port, n.ip),
            ));
        }
        // Configured routes come last, so they win over the implicit ones.
        for r in &cfg.routes {
            routes.push((r.prefix, nh_id(r.port, r.nexthop)));
        }
        let fib = Dir24_8::build(&routes, MAX_TBL8_GROUPS)?;
        let mut prefixes = routes;
        prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len));
        Ok(Snapshot {
            generation,
            fib,
            nexthops,
            ports,
            arp,
            prefixes,
        })
    }

    /// The most specific configured prefix covering `ip` (slow: for tracing, not forwarding).
    pub fn matching_prefix(&self, ip: u32) -> Option<Prefix> {
        self.prefixes
            .iter()
            .find(|(p, _)| p.contains(ip))
            .map(|(p, _)| *p)
    }
}
