//! BGP with customers. gobgpd is the speaker; anygate is the policy.
//!
//! Two halves meet at the types in this file, and only here:
//! - the **adapter** (`bgp::gobgp`) owns the gRPC connection to gobgpd on a thread of its
//!   own (tokio lives there and nowhere else). It is told what the TOML wants (`Desired`),
//!   makes gobgpd match it (global config, peers added / changed / removed, our prefixes
//!   announced), reads back **every** path each peer sent (never gobgpd's best path) and the
//!   peers' states, and reports them as `Event`s. When gobgpd goes away it says so, keeps
//!   retrying, and on reconnecting configures it again and reports each peer's paths whole.
//! - the **policy** side (`bgp::policy`, `bgp::sync`) runs on the management thread: it turns
//!   paths into routes at the vendor's priorities and applies them as route-table batches.
//!
//! Both directions are bounded channels; neither side ever blocks on the other (a full
//! channel drops the newest `Desired` in favour of the next one, and the adapter coalesces
//! events per peer until the management thread takes them).
pub mod desired;
pub mod gobgp;
pub mod policy;
pub mod sync;

/// The adapter's entry point, as the management thread calls it.
pub use gobgp::spawn as gobgp_spawn;

use crate::lpm::Prefix;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// What gobgpd must look like: sent by the management thread at start and on every reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The gobgpd gRPC API, `[bgp] api` (default 127.0.0.1:50051).
    pub api: SocketAddr,
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Graceful restart time we advertise as a helper (the vendor's 120 s).
    pub graceful_restart: Duration,
    pub peers: Vec<PeerSpec>,
    /// Every prefix we announce to every peer (the route table's, static and BGP).
    pub announce: Vec<Prefix>,
}

/// One neighbour, keyed by its address (unique across peers): an eBGP customer, or an iBGP
/// route reflector of the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// The config's name for it: the tunnel's name, or `port:<port>:<address>`.
    pub name: String,
    pub address: Ipv4Addr,
    pub asn: u32,
    /// Our address on the session (the tunnel's `interface_address`, or the port's).
    pub local_address: Ipv4Addr,
    pub md5_password: Option<String>,
    /// What we offer; the smaller of ours and the peer's is used, keepalive a third of it.
    pub hold_time: Duration,
    /// Prefixes announced to this peer only, beyond `Desired::announce`.
    pub extra_announce: Vec<Prefix>,
    /// A fleet route reflector (iBGP, our ASN): ADD-PATH both ways, customers' paths sent
    /// to it whole, ours and other reflected ones not.
    pub route_reflector: bool,
}

/// One AS_PATH segment, as gobgpd reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsSegment {
    Sequence(Vec<u32>),
    Set(Vec<u32>),
}

/// One path a peer sent us (post-gobgpd, pre-policy: nothing has been filtered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPath {
    pub prefix: Prefix,
    pub next_hop: Ipv4Addr,
    /// Standard communities, `asn << 16 | value` (13335:60150 is `13335 << 16 | 60150`).
    pub communities: Vec<u32>,
    pub as_path: Vec<AsSegment>,
    /// Kept by graceful restart after the session went down.
    pub stale: bool,
    /// The ADD-PATH path identifier (0 without ADD-PATH): a reflector sends several paths
    /// per prefix, one per node and customer.
    pub path_id: u32,
}

/// A peer's session as gobgpd sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub address: Ipv4Addr,
    pub state: SessionState,
    /// Since the session came up (Established) or went down (otherwise).
    pub since: Option<std::time::SystemTime>,
    /// Negotiated, when established.
    pub hold_time: Option<Duration>,
    pub keepalive: Option<Duration>,
    /// The peer advertised graceful restart, and we are keeping its paths (stale) now.
    pub graceful_restart_advertised: bool,
    pub graceful_restart_running: bool,
    pub received: u32,
    pub advertised: u32,
}

/// From the adapter to the management thread.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The API answered and gobgpd has been (re)configured as desired.
    Connected,
    /// The API is unreachable or failed; the last routes stay, the adapter keeps retrying.
    Disconnected(String),
    /// Every path this peer has sent us, whole: replaces what was known for it. Sent after
    /// each (re)connection for every peer, and whenever the adapter prefers it to deltas.
    PeerPaths {
        peer: Ipv4Addr,
        paths: Vec<ReceivedPath>,
    },
    /// Changes since the last report for this peer.
    Update {
        peer: Ipv4Addr,
        announced: Vec<ReceivedPath>,
        withdrawn: Vec<Prefix>,
    },
    /// The states of every configured peer.
    Peers(Vec<PeerStatus>),
}
