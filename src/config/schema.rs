//! The TOML schema as serde reads it. Addresses stay strings here so that `validate` can say
//! exactly which key holds a bad one.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub dpdk: RawDpdk,
    #[serde(default)]
    pub ports: Vec<RawPort>,
    #[serde(default)]
    pub workers: Vec<RawWorker>,
    #[serde(default)]
    pub neighbors: Vec<RawNeighbor>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub node: RawNode,
    #[serde(default)]
    pub tunnels: Vec<RawTunnel>,
    #[serde(default)]
    pub firewall: RawFirewall,
    /// Node-wide timing of tunnel health checks (what tests shorten).
    #[serde(default)]
    pub health_checks: RawHealthChecks,
    /// `[metrics]`: the Prometheus endpoint (off unless `listen` is set).
    #[serde(default)]
    pub metrics: super::RawMetrics,
    /// `[arr]`: the Automatic Return Routing flow table (size, timeouts).
    #[serde(default)]
    pub arr: RawArr,
    /// `[bgp]`: our eBGP speaker (gobgpd) and its port-subnet peers; absent: no BGP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<super::bgp::RawBgp>,
    /// `[punt]`: the exception port toward the kernel (off by default).
    #[serde(default)]
    pub punt: super::punt::RawPunt,
}

/// The stateless firewall: one ordered rule list, first enabled match decides.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawFirewall {
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// Named lists for `$name` in expressions.
    #[serde(default)]
    pub lists: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default = "default_allow")]
    pub default_action: String,
    /// Where the rules apply: "ingress" (decapsulated, from tunnels) and/or "egress" (toward
    /// tunnels, before encapsulation).
    #[serde(default = "both_directions")]
    pub apply: Vec<String>,
    /// Named phases in evaluation order; a `skip` rule passes over the rest of its phase.
    /// Empty: one phase holding every rule.
    #[serde(default)]
    pub phases: Vec<String>,
    #[serde(default = "default_max_rules")]
    pub max_rules: usize,
    #[serde(default = "default_max_list_entries")]
    pub max_list_entries: usize,
    #[serde(default = "default_max_expression_len")]
    pub max_expression_len: usize,
}

impl Default for RawFirewall {
    fn default() -> Self {
        RawFirewall {
            rules: Vec::new(),
            lists: Default::default(),
            default_action: default_allow(),
            apply: both_directions(),
            phases: Vec::new(),
            max_rules: default_max_rules(),
            max_list_entries: default_max_list_entries(),
            max_expression_len: default_max_expression_len(),
        }
    }
}

fn default_allow() -> String {
    "allow".to_owned()
}
fn both_directions() -> Vec<String> {
    vec!["ingress".to_owned(), "egress".to_owned()]
}
fn default_max_rules() -> usize {
    200
}
fn default_max_list_entries() -> usize {
    10_000
}
fn default_max_expression_len() -> usize {
    4096
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Names the rule for its counters across reloads (else its phase, action and expression).
    #[serde(default)]
    pub id: Option<String>,
    pub expression: String,
    pub action: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub description: String,
    /// One of `firewall.phases` (needed when there are two or more).
    #[serde(default)]
    pub phase: Option<String>,
}

fn yes() -> bool {
    true
}

/// This server's identity in the fleet.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// The anycast addresses tunnels end on; every server of the fleet has the same ones.
    #[serde(default)]
    pub anycast_addresses: Vec<String>,
    /// ICMP errors (time exceeded, fragmentation needed) each worker may send per second.
    #[serde(default = "default_icmp_rate")]
    pub icmp_errors_per_second: u32,
    /// This server's region code (AFR APAC EEUR ENAM ME OC SAM WEUR WNAM) and data center:
    /// routes scoped elsewhere are invisible here.
    pub region: Option<String>,
    pub colo: Option<String>,
    /// Allow routes toward tunnels outside RFC 1918.
    #[serde(default)]
    pub allow_public_prefixes: bool,
    /// The Unix socket `anygate ctl` talks to (mode 0600).
    #[serde(default = "default_control_socket")]
    pub control_socket: String,
    /// This server's id in the fleet, carried in every health probe so that an answer that
    /// reaches another server of the anycast fleet is recognised as not ours. Default: a hash
    /// of the host name.
    pub id: Option<u32>,
    /// A group whose members may run `show` requests on the control socket (mode 0660).
    pub control_group: Option<String>,
}

pub fn default_control_socket() -> String {
    "/run/anygate.sock".to_owned()
}

impl Default for RawNode {
    fn default() -> Self {
        RawNode {
            anycast_addresses: Vec::new(),
            icmp_errors_per_second: default_icmp_rate(),
            region: None,
            colo: None,
            allow_public_prefixes: false,
            control_socket: default_control_socket(),
            id: None,
            control_group: None,
        }
    }
}

fn default_icmp_rate() -> u32 {
    1000
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum TunnelType {
    Gre,
    Ipip,
}

/// A customer tunnel. Key names follow the vendor's API.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawTunnel {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: TunnelType,
    pub customer_endpoint: String,
    /// One of `node.anycast_addresses`.
    #[serde(alias = "cloudflare_endpoint")]
    pub edge_endpoint: String,
    /// Our side of the tunnel's /31 or /30, as a CIDR.
    pub interface_address: String,
    pub mtu: Option<u16>,
    pub ttl: Option<u8>,
    pub mss_clamp: Option<u16>,
    /// Inner sources accepted from this tunnel (plus its interface subnet); default: sources
    /// the route table sends into the tunnel (reverse-path check).
    pub authorized_prefixes: Option<Vec<String>>,
    /// The health to start with, until checks (or `anygate ctl`) say otherwise.
    #[serde(default)]
    pub health: Health,
    /// This tunnel's health check (checked with the defaults when absent).
    #[serde(default)]
    pub health_check: RawHealthCheck,
    /// Learn flows arriving on this tunnel and send their return traffic back into it
    /// (Automatic Return Routing; the vendor's name).
    #[serde(default)]
    pub automatic_return_routing: bool,
    /// `[tunnels.bgp]`: an eBGP session with the customer router inside this tunnel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<super::bgp::RawTunnelBgp>,
}

/// `[tunnels.health_check]`, named as the vendor names them. Strings stay strings here so
/// that a bad value is refused with its key and the values allowed.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    /// Default true.
    pub enabled: Option<bool>,
    /// `reply` (default) or `request`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `bidirectional` (default) or `unidirectional`.
    pub direction: Option<String>,
    /// The inner address probed; default the customer side of `interface_address`.
    pub target: Option<String>,
    /// `low`, `mid` (default) or `high`.
    pub rate: Option<String>,
}

/// `[health_checks]`: node-wide timing, in milliseconds except `hold_time` (seconds, as the
/// vendor states it). Defaults are the vendor's; tests shorten them.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawHealthChecks {
    /// Seconds a state is held before a better one may follow (default 300). Fractions allowed.
    pub hold_time: Option<f64>,
    /// Milliseconds a probe may take before it counts as failed.
    pub probe_timeout_ms: Option<u64>,
    /// Milliseconds between probes at each rate.
    pub interval_low_ms: Option<u64>,
    pub interval_mid_ms: Option<u64>,
    pub interval_high_ms: Option<u64>,
}

/// `[arr]`: node-wide settings of the ARR flow table; timeouts in seconds.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawArr {
    pub max_flows: Option<u64>,
    pub tcp_established_timeout: Option<u64>,
    pub tcp_syn_timeout: Option<u64>,
    pub tcp_closing_timeout: Option<u64>,
    pub udp_timeout: Option<u64>,
    pub icmp_timeout: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawDpdk {
    /// Extra EAL arguments; anygate adds `-l`, `--vdev` and `-a` itself.
    #[serde(default)]
    pub eal_args: Vec<String>,
    /// The core of the management thread (the EAL main lcore).
    #[serde(default)]
    pub main_core: usize,
    /// Mbufs in the packet pool; 2^n - 1 is the most memory-efficient size.
    #[serde(default = "default_mempool_size")]
    pub mempool_size: u32,
    /// Per-lcore mbuf cache.
    #[serde(default = "default_mempool_cache")]
    pub mempool_cache: u32,
    /// Longest sleep, in microseconds, of a worker that keeps finding nothing to do (see
    /// `datapath::idle`); 0 (the default): workers busy-poll.
    #[serde(default)]
    pub idle_backoff_us: u32,
}

impl Default for RawDpdk {
    fn default() -> Self {
        RawDpdk {
            eal_args: Vec::new(),
            main_core: 0,
            mempool_size: default_mempool_size(),
            mempool_cache: default_mempool_cache(),
            idle_backoff_us: 0,
        }
    }
}

fn default_mempool_size() -> u32 {
    16383
}
fn default_mempool_cache() -> u32 {
    256
}
fn one() -> u16 {
    1
}
fn default_mtu() -> u16 {
    1500
}
fn default_desc() -> u16 {
    1024
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPort {
    pub name: String,
    /// A PCI address (0000:01:00.0) or a vdev string (net_pcap0,rx_pcap=in.pcap,...).
    pub device: String,
    #[serde(default = "one")]
    pub rx_queues: u16,
    #[serde(default = "one")]
    pub tx_queues: u16,
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
    /// Set on the device at start; when absent the device's own MAC is used.
    pub mac: Option<String>,
    /// The port's IPv4 address and subnet, as a CIDR: 192.0.2.1/24.
    pub address: String,
    #[serde(default = "default_mtu")]
    pub mtu: u16,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawWorker {
    pub core: usize,
    /// The (port, rx queue) pairs this worker polls.
    pub rx: Vec<RawQueue>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    pub port: String,
    #[serde(default)]
    pub queue: u16,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawNeighbor {
    pub ip: String,
    /// Static MAC; when absent the neighbour is resolved by ARP.
    pub mac: Option<String>,
    pub port: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub prefix: String,
    pub nexthop: String,
    /// Lower wins; 100 by default, the priority BGP routes enter with.
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// ECMP share, 1..=256; routes without one count as 100.
    pub weight: Option<u16>,
    #[serde(default)]
    pub description: String,
    pub scope: Option<RawScope>,
    #[serde(default)]
    pub source: RouteSource,
}

fn default_priority() -> u32 {
    100
}

/// Where a route is visible: in these regions and/or data centers; everywhere when absent.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawScope {
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub colos: Vec<String>,
}

#[derive(
    Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum RouteSource {
    #[default]
    Static,
    Bgp,
}

/// A tunnel's health, which adds a penalty to the priority of every route through it.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    #[default]
    Healthy,
    Degraded,
    Down,
}

impl Health {
    /// +500000 when degraded, +1000000 when down (the vendor's penalties).
    pub fn penalty(self) -> u64 {
        match self {
            Health::Healthy => 0,
            Health::Degraded => 500_000,
            Health::Down => 1_000_000,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }
}
