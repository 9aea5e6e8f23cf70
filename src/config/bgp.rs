//! `[bgp]`, `[tunnels.bgp]` and `[[bgp.peers]]`: our eBGP speaker (gobgpd, driven over its
//! API) and its customer peers. Everything here reloads live: a reload sends gobgpd a new
//! `bgp::Desired`.
use super::parse::{is_subnet_edge, parse_ip, parse_prefix, Errs};
use super::ports::PortConf;
use super::tunnels::TunnelConf;
use crate::lpm::Prefix;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// gobgpd's gRPC API when `[bgp] api` is not given (gobgpd's own default).
pub const DEFAULT_API: &str = "127.0.0.1:50051";
/// The vendor's hold time, offered to every peer unless it says otherwise.
pub const DEFAULT_HOLD_TIME: u64 = 240;
/// The vendor's graceful-restart time (we are a helper).
pub const DEFAULT_GRACEFUL_RESTART: u64 = 120;
/// Prefixes accepted from one peer when it names no `max_prefixes`.
pub const DEFAULT_MAX_PREFIXES: u32 = 10_000;
/// TCP MD5 keys are at most 80 bytes (TCP_MD5SIG_MAXKEYLEN).
pub const MAX_MD5_LEN: usize = 80;
/// `advertised_prefixes` entries per peer, at most.
pub const MAX_ADVERTISED: usize = 1024;

/// `[bgp]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawBgp {
    pub asn: u32,
    /// Default: the first port's address (unique per server; the anycast addresses are not).
    pub router_id: Option<String>,
    /// gobgpd's gRPC API, `address:port`.
    pub api: Option<String>,
    /// Accept prefixes outside RFC 1918 from peers.
    #[serde(default)]
    pub allow_public_prefixes: bool,
    /// Seconds, 1..=4095 (the capability's 12-bit field).
    pub graceful_restart_time: Option<u64>,
    /// Seconds offered to every peer: 0 (no keepalives) or 3..=65535 (RFC 4271).
    pub hold_time: Option<u64>,
    /// Peers on a port subnet (the vendor's direct interconnects).
    #[serde(default)]
    pub peers: Vec<RawBgpPeer>,
    /// The fleet's route reflectors: iBGP (our own `asn`), ADD-PATH both ways.
    #[serde(default)]
    pub route_reflectors: Vec<RawRouteReflector>,
}

/// `[[bgp.route_reflectors]]`: an iBGP session to the fleet's route reflector, which hands
/// every node every path every other node learned from its customers (ADD-PATH).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRouteReflector {
    pub address: String,
    /// Our address on the session. Default: none, the kernel picks it by route.
    pub local_address: Option<String>,
    pub md5_password: Option<String>,
    pub md5_password_file: Option<String>,
    pub hold_time: Option<u64>,
}

/// `[tunnels.bgp]`: the customer router at the other end of the tunnel.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawTunnelBgp {
    pub asn: u32,
    /// Default: the customer side of `interface_address`.
    pub peer: Option<String>,
    pub md5_password: Option<String>,
    pub md5_password_file: Option<String>,
    pub max_prefixes: Option<u32>,
    #[serde(default)]
    pub advertised_prefixes: Vec<String>,
    pub hold_time: Option<u64>,
}

/// `[[bgp.peers]]`: a peer on a port's subnet.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawBgpPeer {
    pub port: String,
    pub address: String,
    pub asn: u32,
    pub md5_password: Option<String>,
    pub md5_password_file: Option<String>,
    pub max_prefixes: Option<u32>,
    #[serde(default)]
    pub advertised_prefixes: Vec<String>,
    pub hold_time: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpConf {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub api: SocketAddr,
    pub allow_public_prefixes: bool,
    pub graceful_restart: Duration,
    pub peers: Vec<BgpPeerConf>,
}

/// Where a peer is, which decides the next hop of its routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerAt {
    /// Inside this tunnel (index into `Config::tunnels`): its routes go into the tunnel.
    Tunnel(u16),
    /// On this port's subnet: its routes go to the gateway each path's next hop names.
    Port(u16),
    /// A route reflector of the fleet (iBGP): each path it reflects is taken as if the peer
    /// of the tunnel its next hop names had sent it (`bgp::sync`).
    Reflector,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpPeerConf {
    /// The tunnel's name, `port:<port>:<address>`, or `reflector:<address>`.
    pub name: String,
    pub at: PeerAt,
    pub address: Ipv4Addr,
    /// 0.0.0.0 (a reflector without `local_address`): the kernel picks it.
    pub local_address: Ipv4Addr,
    pub asn: u32,
    pub md5_password: Option<String>,
    pub max_prefixes: u32,
    pub advertised: Vec<Prefix>,
    pub hold_time: Duration,
}

/// The keys a tunnel peer and a port peer share.
struct PeerKeys<'a> {
    asn: u32,
    md5_password: &'a Option<String>,
    md5_password_file: &'a Option<String>,
    max_prefixes: Option<u32>,
    advertised_prefixes: &'a [String],
    hold_time: Option<u64>,
}

pub(super) fn validate_bgp(
    raw: &super::RawConfig,
    ports: &[PortConf],
    tunnels: &[TunnelConf],
    e: &mut Errs,
) -> Option<BgpConf> {
    let Some(b) = &raw.bgp else {
        for (i, t) in raw.tunnels.iter().enumerate() {
            if t.bgp.is_some() {
                e.push(
                    format!("tunnels[{i}].bgp"),
                    "a BGP peer needs a [bgp] section (our asn)",
                );
            }
        }
        return None;
    };
    check_asn("bgp.asn", b.asn, e);
    let router_id = match &b.router_id {
        Some(s) => match parse_ip(s) {
            Ok(0) => {
                e.push("bgp.router_id", "0.0.0.0 is not a router id");
                0
            }
            Ok(a) => a,
            Err(m) => {
                e.push("bgp.router_id", m);
                0
            }
        },
        // Validation refuses a config without ports.
        None => ports.first().map_or(0, |p| p.addr),
    };
    let api_s = b.api.as_deref().unwrap_or(DEFAULT_API);
    let api = match api_s.parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => a,
        _ => {
            e.push(
                "bgp.api",
                format!("`{api_s}` is not an address and port, e.g. \"{DEFAULT_API}\""),
            );
            DEFAULT_API.parse().expect("a valid default")
        }
    };
    let gr = b.graceful_restart_time.unwrap_or(DEFAULT_GRACEFUL_RESTART);
    if !(1..=4095).contains(&gr) {
        e.push(
            "bgp.graceful_restart_time",
            format!("{gr} is not in 1..=4095 seconds"),
        );
    }
    let hold = check_hold("bgp.hold_time", b.hold_time, DEFAULT_HOLD_TIME, e);

    let mut peers = Vec::new();
    let mut seen: HashMap<u32, String> = HashMap::new();
    let mut add = |peer: BgpPeerConf, key: String, e: &mut Errs| {
        if let Some(other) = seen.insert(peer.address.into(), key.clone()) {
            e.push(key, format!("peer {} is already {other}", peer.address));
        } else {
            peers.push(peer);
        }
    };
    for (i, t) in raw.tunnels.iter().enumerate() {
        let Some(tb) = &t.bgp else { continue };
        let path = format!("tunnels[{i}].bgp");
        let Some(ti) = tunnels.iter().position(|x| x.name == t.name) else {
            continue; // the tunnel itself is wrong, and says so
        };
        let tc = &tunnels[ti];
        let address = match &tb.peer {
            None => tc.peer_addr,
            Some(s) => match parse_ip(s) {
                Ok(a) if a == tc.local_addr => {
                    e.push(
                        format!("{path}.peer"),
                        format!("{s} is our own side of the tunnel"),
                    );
                    continue;
                }
                Ok(a) if !tc.interface_prefix().contains(a) || is_subnet_edge(a, tc.prefix_len) => {
                    e.push(
                        format!("{path}.peer"),
                        format!(
                            "{s} is not a host of the tunnel's interface subnet {}",
                            tc.interface_prefix()
                        ),
                    );
                    continue;
                }
                Ok(a) => a,
                Err(m) => {
                    e.push(format!("{path}.peer"), m);
                    continue;
                }
            },
        };
        let keys = PeerKeys {
            asn: tb.asn,
            md5_password: &tb.md5_password,
            md5_password_file: &tb.md5_password_file,
            max_prefixes: tb.max_prefixes,
            advertised_prefixes: &tb.advertised_prefixes,
            hold_time: tb.hold_time,
        };
        if let Some(p) = peer(
            &path,
            &keys,
            b.asn,
            hold,
            t.name.clone(),
            PeerAt::Tunnel(ti as u16),
            address,
            tc.local_addr,
            e,
        ) {
            add(p, format!("{path}.peer"), e);
        }
    }
    for (i, p) in b.peers.iter().enumerate() {
        let path = format!("bgp.peers[{i}]");
        let Some(pi) = ports.iter().position(|x| x.name == p.port) else {
            e.push(
                format!("{path}.port"),
                format!("no port named `{}`", p.port),
            );
            continue;
        };
        let pc = &ports[pi];
        let address = match parse_ip(&p.address) {
            Ok(a) if !pc.on_link(a) => {
                e.push(
                    format!("{path}.address"),
                    format!("{} is not on port `{}`'s subnet", p.address, p.port),
                );
                continue;
            }
            Ok(a) if a == pc.addr || is_subnet_edge(a, pc.prefix_len) => {
                e.push(
                    format!("{path}.address"),
                    format!(
                        "{} is port `{}`'s own, network or broadcast address",
                        p.address, p.port
                    ),
                );
                continue;
            }
            Ok(a) => a,
            Err(m) => {
                e.push(format!("{path}.address"), m);
                continue;
            }
        };
        let keys = PeerKeys {
            asn: p.asn,
            md5_password: &p.md5_password,
            md5_password_file: &p.md5_password_file,
            max_prefixes: p.max_prefixes,
            advertised_prefixes: &p.advertised_prefixes,
            hold_time: p.hold_time,
        };
        let name = format!("port:{}:{}", p.port, p.address);
        if let Some(peer) = peer(
            &path,
            &keys,
            b.asn,
            hold,
            name,
            PeerAt::Port(pi as u16),
            address,
            pc.addr,
            e,
        ) {
            add(peer, format!("{path}.address"), e);
        }
    }
    for (i, r) in b.route_reflectors.iter().enumerate() {
        let path = format!("bgp.route_reflectors[{i}]");
        if let Some(p) = reflector(&path, r, b.asn, hold, ports, tunnels, e) {
            add(p, format!("{path}.address"), e);
        }
    }
    Some(BgpConf {
        asn: b.asn,
        router_id: Ipv4Addr::from(router_id),
        api,
        allow_public_prefixes: b.allow_public_prefixes,
        graceful_restart: Duration::from_secs(gr),
        peers,
    })
}

#[allow(clippy::too_many_arguments)]
fn peer(
    path: &str,
    k: &PeerKeys,
    our_asn: u32,
    default_hold: u64,
    name: String,
    at: PeerAt,
    address: u32,
    local: u32,
    e: &mut Errs,
) -> Option<BgpPeerConf> {
    let before = e.0.len();
    check_asn(&format!("{path}.asn"), k.asn, e);
    if k.asn == our_asn && at != PeerAt::Reflector {
        e.push(
            format!("{path}.asn"),
            format!(
                "{} is our own bgp.asn; only eBGP peers are supported",
                k.asn
            ),
        );
    }
    let md5_password = match (k.md5_password, k.md5_password_file) {
        (Some(_), Some(_)) => {
            e.push(
                format!("{path}.md5_password_file"),
                "give md5_password or md5_password_file, not both",
            );
            None
        }
        (Some(p), None) => check_md5(&format!("{path}.md5_password"), p.clone(), e),
        (None, Some(f)) => {
            let key = format!("{path}.md5_password_file");
            read_password(f)
                .map_err(|m| e.push(&key, m))
                .ok()
                .and_then(|p| check_md5(&key, p, e))
        }
        (None, None) => None,
    };
    let max_prefixes = k.max_prefixes.unwrap_or(DEFAULT_MAX_PREFIXES);
    if max_prefixes == 0 {
        e.push(
            format!("{path}.max_prefixes"),
            "0 would accept nothing; at least 1",
        );
    }
    if k.advertised_prefixes.len() > MAX_ADVERTISED {
        e.push(
            format!("{path}.advertised_prefixes"),
            format!(
                "{} prefixes; at most {MAX_ADVERTISED}",
                k.advertised_prefixes.len()
            ),
        );
    }
    let advertised: Vec<Prefix> = k
        .advertised_prefixes
        .iter()
        .enumerate()
        .filter_map(|(j, s)| {
            parse_prefix(s)
                .map_err(|m| e.push(format!("{path}.advertised_prefixes[{j}]"), m))
                .ok()
        })
        .collect();
    let hold = check_hold(&format!("{path}.hold_time"), k.hold_time, default_hold, e);
    (e.0.len() == before).then(|| BgpPeerConf {
        name,
        at,
        address: Ipv4Addr::from(address),
        local_address: Ipv4Addr::from(local),
        asn: k.asn,
        md5_password,
        max_prefixes,
        advertised,
        hold_time: Duration::from_secs(hold),
    })
}

/// A route reflector: iBGP with our own ASN (the one exception to eBGP only), never one of
/// our own addresses or a tunnel's customer side (whose paths it would carry as next hops).
#[allow(clippy::too_many_arguments)]
fn reflector(
    path: &str,
    r: &RawRouteReflector,
    our_asn: u32,
    hold: u64,
    ports: &[PortConf],
    tunnels: &[TunnelConf],
    e: &mut Errs,
) -> Option<BgpPeerConf> {
    let before = e.0.len();
    let ours = |a: u32| {
        ports.iter().any(|p| p.addr == a)
            || tunnels
                .iter()
                .any(|t| t.local_addr == a || t.peer_addr == a)
    };
    let address = match parse_ip(&r.address) {
        Ok(0) => {
            e.push(format!("{path}.address"), "0.0.0.0 is not a peer");
            0
        }
        Ok(a) if ours(a) => {
            e.push(
                format!("{path}.address"),
                format!("{} is a port's or a tunnel's address", r.address),
            );
            0
        }
        Ok(a) => a,
        Err(m) => {
            e.push(format!("{path}.address"), m);
            0
        }
    };
    let local = match r.local_address.as_deref().map(parse_ip) {
        None => 0,
        Some(Ok(a)) if a != 0 => a,
        Some(Ok(_)) => {
            e.push(format!("{path}.local_address"), "0.0.0.0 is not an address");
            0
        }
        Some(Err(m)) => {
            e.push(format!("{path}.local_address"), m);
            0
        }
    };
    let keys = PeerKeys {
        asn: our_asn,
        md5_password: &r.md5_password,
        md5_password_file: &r.md5_password_file,
        max_prefixes: None,
        advertised_prefixes: &[],
        hold_time: r.hold_time,
    };
    let p = peer(
        path,
        &keys,
        our_asn,
        hold,
        format!("reflector:{}", r.address),
        PeerAt::Reflector,
        address,
        local,
        e,
    );
    (e.0.len() == before).then_some(p).flatten()
}

/// 0, AS_TRANS (23456) and the last ASNs of the 2- and 4-byte ranges are reserved.
fn check_asn(key: &str, asn: u32, e: &mut Errs) {
    if matches!(asn, 0 | 23456 | 65535 | u32::MAX) {
        e.push(key, format!("{asn} is a reserved ASN"));
    }
}

fn check_hold(key: &str, v: Option<u64>, default: u64, e: &mut Errs) -> u64 {
    let v = v.unwrap_or(default);
    if v != 0 && !(3..=65535).contains(&v) {
        e.push(
            key,
            format!("{v} seconds: a hold time is 0 or 3..=65535 (RFC 4271)"),
        );
    }
    v
}

fn check_md5(key: &str, p: String, e: &mut Errs) -> Option<String> {
    if p.is_empty() || p.len() > MAX_MD5_LEN {
        e.push(
            key,
            format!(
                "a TCP MD5 password is 1..={MAX_MD5_LEN} bytes; this one has {}",
                p.len()
            ),
        );
        return None;
    }
    Some(p)
}

/// The file's content less one trailing newline; read at load, never more than a key's size.
fn read_password(path: &str) -> Result<String, String> {
    let f = std::fs::File::open(path).map_err(|err| format!("cannot read {path}: {err}"))?;
    let mut b = Vec::new();
    f.take(MAX_MD5_LEN as u64 + 3)
        .read_to_end(&mut b)
        .map_err(|err| format!("cannot read {path}: {err}"))?;
    let b = b
        .strip_suffix(b"\n")
        .map(|s| s.strip_suffix(b"\r").unwrap_or(s))
        .unwrap_or(&b);
    // The size first: a file far too long is most likely the wrong file, text or not.
    if b.len() > MAX_MD5_LEN {
        return Err(format!(
            "{path} holds more than {MAX_MD5_LEN} bytes; a TCP MD5 password is 1..={MAX_MD5_LEN} bytes"
        ));
    }
    String::from_utf8(b.to_vec()).map_err(|_| format!("{path} is not UTF-8 text"))
}

#[cfg(test)]
#[path = "bgp_tests.rs"]
mod tests;
