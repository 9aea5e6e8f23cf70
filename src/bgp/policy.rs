//! The vendor's import policy, pure: a path a peer sent becomes a route at a priority, or is
//! refused with the reason.
//!
//! - Base priority 100. The vendor's communities set it instead: 13335:60010 → 10,
//!   :60050 → 50, :60150 → 150, :60200 → 200, :60901 → 501000, :60902 → 1001000; with several,
//!   the lowest; any other community is ignored.
//! - Each additional occurrence of the peer's ASN in the AS path adds 10: occurrences in
//!   AS_SEQUENCE segments are counted, wherever they stand, and all but one are prepends.
//!   AS_SETs are ignored: a set is an aggregate's unordered origins, never a prepend.
//! - Prefixes outside RFC 1918 are refused unless `[bgp] allow_public_prefixes`; a prefix
//!   covering a tunnel's customer endpoint always is (it would pull the tunnel's own underlay
//!   into a tunnel). `max_prefixes` is `bgp::sync`'s (it needs the peer's other routes).
//! - The next hop: the peer's tunnel, or on a port the gateway the BGP next hop names, which
//!   must be on the port's subnet and not one of our addresses.
//! - A path a fleet route reflector sent is imported as if the peer of the tunnel its next
//!   hop names had sent it (`reflected_peer`); any other next hop is refused.
use super::{AsSegment, ReceivedPath};
use crate::config::{
    BgpPeerConf, Config, PeerAt, RouteConf, RouteOrigin, RouteSource, Via, DEFAULT_WEIGHT,
};

/// The priority of a route no community speaks for (the vendor's BGP default).
pub const BASE_PRIORITY: u32 = 100;
/// Added for each prepend of the peer's ASN.
pub const PER_PREPEND: u32 = 10;
/// The vendor's ASN in the priority communities.
pub const VENDOR_ASN: u32 = 13335;
/// The communities that set the base priority: (value, priority).
pub const PRIORITY_COMMUNITIES: [(u16, u32); 6] = [
    (60010, 10),
    (60050, 50),
    (60150, 150),
    (60200, 200),
    (60901, 501_000),
    (60902, 1_001_000),
];

/// A community as operators write it, `asn:value`.
pub fn community_name(c: u32) -> String {
    format!("{}:{}", c >> 16, c & 0xffff)
}

/// An AS path as operators read it: sequences space-separated, sets in braces.
pub fn as_path_text(path: &[AsSegment]) -> String {
    let seg = |s: &AsSegment| -> String {
        match s {
            AsSegment::Sequence(v) => v.iter().map(u32::to_string).collect::<Vec<_>>().join(" "),
            AsSegment::Set(v) => format!(
                "{{{}}}",
                v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
            ),
        }
    };
    path.iter()
        .map(seg)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A priority and how it came about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priority {
    pub value: u32,
    pub prepends: u32,
    /// `13335:60150 → 150, +20 for 2 prepends = 170`.
    pub explanation: String,
}

/// The priority of a path from a peer of ASN `peer_asn`.
pub fn priority(communities: &[u32], as_path: &[AsSegment], peer_asn: u32) -> Priority {
    let mut known: Vec<(u32, u32)> = communities
        .iter()
        .filter(|c| *c >> 16 == VENDOR_ASN)
        .filter_map(|c| {
            PRIORITY_COMMUNITIES
                .iter()
                .find(|(v, _)| *v as u32 == c & 0xffff)
                .map(|(_, p)| (*c, *p))
        })
        .collect();
    known.sort_unstable();
    known.dedup();
    let (base, mut text) = match known.iter().map(|(_, p)| *p).min() {
        None => (
            BASE_PRIORITY,
            format!("no priority community → {BASE_PRIORITY}"),
        ),
        Some(p) if known.len() == 1 => (p, format!("{} → {p}", community_name(known[0].0))),
        Some(p) => {
            let names: Vec<String> = known.iter().map(|(c, _)| community_name(*c)).collect();
            (p, format!("{} → {p} (the lowest)", names.join(", ")))
        }
    };
    let occurrences: usize = as_path
        .iter()
        .map(|s| match s {
            AsSegment::Sequence(v) => v.iter().filter(|a| **a == peer_asn).count(),
            AsSegment::Set(_) => 0,
        })
        .sum();
    let prepends = u32::try_from(occurrences.saturating_sub(1)).unwrap_or(u32::MAX);
    let value = base.saturating_add(prepends.saturating_mul(PER_PREPEND));
    if prepends > 0 {
        let s = if prepends == 1 { "" } else { "s" };
        text += &format!(
            ", +{} for {prepends} prepend{s} = {value}",
            prepends.saturating_mul(PER_PREPEND)
        );
    }
    Priority {
        value,
        prepends,
        explanation: text,
    }
}

/// Why a path was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Outside RFC 1918 without `allow_public_prefixes`.
    Public,
    /// Covers a tunnel's customer endpoint (named).
    CoversEndpoint(String),
    /// On a port: the BGP next hop is not a usable gateway there (why).
    NextHop(String),
    /// Beyond the peer's `max_prefixes` (decided by `bgp::sync`).
    MaxPrefixes,
    /// From a route reflector: the next hop is no tunnel's BGP peer.
    NoTunnel,
}

impl Refusal {
    /// The counter it is counted under in `show bgp`.
    pub fn key(&self) -> &'static str {
        match self {
            Refusal::Public => "public_prefix",
            Refusal::CoversEndpoint(_) => "covers_tunnel_endpoint",
            Refusal::NextHop(_) => "bad_next_hop",
            Refusal::MaxPrefixes => "max_prefixes",
            Refusal::NoTunnel => "next_hop_no_tunnel",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Refusal::Public => {
                f.write_str("outside RFC 1918 and [bgp] allow_public_prefixes is off")
            }
            Refusal::CoversEndpoint(t) => write!(f, "covers tunnel {t}'s customer endpoint"),
            Refusal::NextHop(why) => write!(f, "next hop {why}"),
            Refusal::MaxPrefixes => f.write_str("beyond the peer's max_prefixes"),
            Refusal::NoTunnel => f.write_str("reflected, and its next hop is no tunnel's peer"),
        }
    }
}

/// The peer a reflected path is taken from: the tunnel peer (`[tunnels.bgp] peer`) its next
/// hop names. Tunnels are the same on every node (anycast), so every node maps it alike and
/// counts its prepends against that peer's ASN. A port peer's next hop is a gateway on one
/// server's subnet, meaningless elsewhere: refused, as is any other next hop.
pub fn reflected_peer<'a>(
    cfg: &'a Config,
    path: &ReceivedPath,
) -> Result<&'a BgpPeerConf, Refusal> {
    cfg.bgp
        .iter()
        .flat_map(|b| &b.peers)
        .find(|p| matches!(p.at, PeerAt::Tunnel(_)) && p.address == path.next_hop)
        .ok_or(Refusal::NoTunnel)
}

/// A path imported: the route, and its priority's explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub route: RouteConf,
    pub explanation: String,
}

/// Imports one path from `peer` under `cfg` (whose `bgp` is `Some`).
pub fn import(cfg: &Config, peer: &BgpPeerConf, path: &ReceivedPath) -> Result<Imported, Refusal> {
    let allow_public = cfg.bgp.as_ref().is_some_and(|b| b.allow_public_prefixes);
    if !allow_public && !crate::config::is_rfc1918(path.prefix) {
        return Err(Refusal::Public);
    }
    if let Some(t) = cfg
        .tunnels
        .iter()
        .find(|t| path.prefix.contains(t.customer_endpoint))
    {
        return Err(Refusal::CoversEndpoint(t.name.clone()));
    }
    let via = match peer.at {
        PeerAt::Tunnel(t) => Via::Tunnel(t),
        // `bgp::sync` imports a reflected path as its tunnel peer's, never as the reflector's.
        PeerAt::Reflector => return Err(Refusal::NoTunnel),
        PeerAt::Port(p) => {
            let nh = u32::from(path.next_hop);
            let port = cfg
                .ports
                .get(p as usize)
                .ok_or_else(|| Refusal::NextHop("names a port that is gone".into()))?;
            let ours = cfg.ports.iter().any(|q| q.addr == nh)
                || cfg.node.anycast.contains(&nh)
                || cfg.tunnels.iter().any(|t| t.local_addr == nh);
            let host = !crate::lpm::Prefix::mask(port.prefix_len);
            let edge = port.prefix_len <= 30 && (nh & host == 0 || nh & host == host);
            if !port.on_link(nh) || ours || edge {
                return Err(Refusal::NextHop(format!(
                    "{} is not a gateway on port {}'s subnet",
                    path.next_hop, port.name
                )));
            }
            Via::Gateway { ip: nh, port: p }
        }
    };
    let pr = priority(&path.communities, &path.as_path, peer.asn);
    Ok(Imported {
        route: RouteConf {
            prefix: path.prefix,
            via,
            priority: pr.value,
            weight: DEFAULT_WEIGHT,
            source: RouteSource::Bgp,
            regions: Vec::new(),
            colos: Vec::new(),
            description: format!("bgp from {}", peer.name),
            origin: RouteOrigin::Bgp,
        },
        explanation: pr.explanation,
    })
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
