//! TOML configuration: `schema` is what serde reads (unknown keys refused), `validate` turns it
//! into a typed [`Config`] or a list of errors that each name the key path.
mod arr;
mod bgp;
mod eal;
mod firewall;
mod health;
mod metrics;
mod parse;
mod ports;
mod punt;
mod routes;
mod schema;
#[cfg(test)]
mod test_support;
mod tunnels;
mod validate;

pub use arr::{ArrConf, DEFAULT_MAX_FLOWS};
pub use bgp::{BgpConf, BgpPeerConf, PeerAt, RawBgp, RawBgpPeer, RawRouteReflector, RawTunnelBgp};
pub use eal::{is_pci, VDEV_DRIVERS};
pub use firewall::FirewallConf;
pub use health::{HealthCheckConf, HealthChecksConf, Rate};
pub use metrics::{MetricsConf, RawMetrics};
pub use parse::parse_prefix;
pub use punt::{PuntConf, RawPunt};
pub use routes::{RouteOrigin, DEFAULT_WEIGHT, MAX_SAME_PRIORITY};
pub use schema::{
    default_control_socket, Health, RawArr, RawConfig, RawHealthCheck, RawHealthChecks, RawRoute,
    RawScope, RouteSource, TunnelType,
};
pub use tunnels::{is_rfc1918, NodeConf, Region, TunnelConf, GRE_OVERHEAD, IPIP_OVERHEAD};
pub use validate::{
    validate, Config, DpdkConf, NeighborConf, PortConf, RouteConf, Via, WorkerConf,
};

use std::fmt;
use std::path::Path;

/// One problem in a config, tied to the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub msg: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, msg: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "{}: {}", self.path, self.msg)
        }
    }
}

/// All the reasons a config was refused, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// What the machine offers, checked against the config. Tests pass a fixed one.
#[derive(Debug, Clone)]
pub struct Host {
    pub cores: Vec<usize>,
}

impl Host {
    /// The cores this process may run on.
    pub fn current() -> Host {
        let mut cores: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        if cores.is_empty() {
            cores = (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        Host { cores }
    }
}

/// Parses TOML text and validates it.
pub fn parse(text: &str, host: &Host) -> Result<Config, ConfigErrors> {
    validate(&deserialize(text)?, host)
}

/// Reads the schema. A value of the wrong type or out of its type's range is named by its
/// key (`ports[0].mtu`) with the range the README documents; every such error is reported,
/// one per section or array element, before validation (which would only repeat them).
fn deserialize(text: &str) -> Result<RawConfig, ConfigErrors> {
    // The whole file at once: the common case, and the only one paid for by a full table.
    if let Ok(raw) = serde_path_to_error::deserialize(toml::Deserializer::new(text)) {
        return Ok(raw);
    }
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigErrors(vec![ConfigError::new(
            "",
            format!("invalid TOML: {}", e.to_string().trim_end()),
        )])
    })?;
    let mut errors = Vec::new();
    for (key, value) in &table {
        let one = |v: toml::Value| toml::Table::from_iter([(key.clone(), v)]);
        match value {
            toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
                for (i, item) in items.iter().enumerate() {
                    if let Err(e) = from_table(one(toml::Value::Array(vec![item.clone()]))) {
                        let path = e.path().to_string();
                        let path = match path.strip_prefix(&format!("{key}[0]")) {
                            Some(rest) => format!("{key}[{i}]{rest}"),
                            None => path,
                        };
                        errors.push(type_error(path, e.inner().message()));
                    }
                }
            }
            v => {
                if let Err(e) = from_table(one(v.clone())) {
                    errors.push(type_error(e.path().to_string(), e.inner().message()));
                }
            }
        }
    }
    if errors.is_empty() {
        // Not expected: each part read alone, so the whole should too.
        let e = serde_path_to_error::deserialize::<_, RawConfig>(toml::Deserializer::new(text))
            .err()
            .map(|e| type_error(e.path().to_string(), e.inner().message()))
            .unwrap_or_else(|| ConfigError::new("", "invalid config"));
        errors.push(e);
    }
    Err(ConfigErrors(errors))
}

fn from_table(t: toml::Table) -> Result<RawConfig, serde_path_to_error::Error<toml::de::Error>> {
    serde_path_to_error::deserialize(toml::Value::Table(t))
}

/// A deserialisation error under its key, an integer's range said as the README does.
fn type_error(path: String, msg: &str) -> ConfigError {
    let path = if path == "." { String::new() } else { path };
    let Some(range) = documented_range(&path).or_else(|| type_range(msg)) else {
        return ConfigError::new(path, msg);
    };
    // serde: "invalid value: integer `99999`, expected u16"
    if let Some(n) = msg
        .strip_prefix("invalid value: integer `")
        .and_then(|r| r.split_once('`'))
        .map(|(n, _)| n)
    {
        return ConfigError::new(path, format!("{n} is not in {range}"));
    }
    // "invalid type: string \"1500\", expected u16"
    match msg.rsplit_once(", expected ") {
        Some((head, _)) if msg.starts_with("invalid type:") => {
            ConfigError::new(path, format!("{head}, expected an integer in {range}"))
        }
        _ => ConfigError::new(path, msg),
    }
}

/// The range of an integer type serde names (`expected u16`).
fn type_range(msg: &str) -> Option<&'static str> {
    Some(match msg.rsplit_once("expected ")?.1 {
        "u8" => "0..=255",
        "u16" => "0..=65535",
        "u32" => "0..=4294967295",
        "u64" | "usize" => "0..=18446744073709551615",
        _ => return None,
    })
}

/// The ranges README.md documents, by key with its indices left out.
fn documented_range(path: &str) -> Option<&'static str> {
    let mut key = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                key.push_str("[]");
            }
            ']' => in_index = false,
            c if !in_index => key.push(c),
            _ => {}
        }
    }
    Some(match key.as_str() {
        "ports[].mtu" | "punt.mtu" => "576..=9600",
        "ports[].rx_queues" | "ports[].tx_queues" => "1..=64",
        "ports[].rx_desc" | "ports[].tx_desc" => "64..=8192 (a power of two)",
        "tunnels[].mtu" => "576..=9576 (GRE) or 576..=9580 (IPIP)",
        "tunnels[].ttl" => "1..=255",
        "tunnels[].mss_clamp" => "88..=mtu - 40, or 0",
        "routes[].weight" => "1..=256",
        "dpdk.mempool_size" => "1024..=4294967295",
        "dpdk.mempool_cache" => "0..=512",
        "dpdk.idle_backoff_us" => "0..=1000",
        "health_checks.probe_timeout_ms" => "10..=900",
        "health_checks.interval_low_ms"
        | "health_checks.interval_mid_ms"
        | "health_checks.interval_high_ms" => "50..=60000",
        "arr.max_flows" => "1024..=67108864",
        "arr.tcp_established_timeout"
        | "arr.tcp_syn_timeout"
        | "arr.tcp_closing_timeout"
        | "arr.udp_timeout"
        | "arr.icmp_timeout" => "1..=86400 seconds",
        "bgp.asn" => "1..=4294967294",
        "bgp.graceful_restart_time" => "1..=4095 seconds",
        "bgp.hold_time"
        | "tunnels[].bgp.hold_time"
        | "bgp.peers[].hold_time"
        | "bgp.route_reflectors[].hold_time" => "0 or 3..=65535 seconds",
        "punt.rate" => "1..=1000000",
        "punt.burst" => "1..=100000",
        _ => return None,
    })
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path, host: &Host) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            "",
            format!("cannot read {}: {e}", path.display()),
        )])
    })?;
    parse(&text, host)
}

#[cfg(test)]
mod type_error_tests {
    use super::{parse, Host};

    const BASE: &str = r#"
[[ports]]
name = "wan0"
device = "net_null0"
address = "192.0.2.1/24"

[[ports]]
name = "lan0"
device = "net_null1"
address = "10.0.0.1/24"

[[workers]]
core = 1
rx = [{ port = "wan0" }, { port = "lan0" }]
"#;

    fn errors(text: &str) -> Vec<String> {
        match parse(text, &Host { cores: vec![0, 1] }) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn an_integer_out_of_its_type_is_named_by_key_with_the_documented_range() {
        assert!(errors(BASE).is_empty());
        let t = BASE.replace(
            "address = \"10.0.0.1/24\"",
            "address = \"10.0.0.1/24\"\nmtu = 99999",
        );
        assert_eq!(errors(&t), ["ports[1].mtu: 99999 is not in 576..=9600"]);
        let t = BASE.replace(
            "address = \"10.0.0.1/24\"",
            "address = \"10.0.0.1/24\"\nmtu = -1",
        );
        assert_eq!(errors(&t), ["ports[1].mtu: -1 is not in 576..=9600"]);
        let t = BASE.replace(
            "address = \"10.0.0.1/24\"",
            "address = \"10.0.0.1/24\"\nmtu = \"1500\"",
        );
        assert_eq!(
            errors(&t),
            ["ports[1].mtu: invalid type: string \"1500\", expected an integer in 576..=9600"]
        );
        // Without a documented range, the type's.
        let t = format!("{BASE}\n[node]\nid = 4294967296\n");
        assert_eq!(errors(&t), ["node.id: 4294967296 is not in 0..=4294967295"]);
    }

    #[test]
    fn every_type_error_is_reported_each_with_its_key() {
        let t = format!(
            "{}\n[dpdk]\nmempool_size = \"big\"\n\n[[routes]]\nprefix = \"0.0.0.0/0\"\nnexthop = \"192.0.2.254\"\n\n\
             [[routes]]\nprefix = \"10.1.0.0/16\"\nnexthop = \"10.0.0.2\"\nweight = 1000000\n",
            BASE.replace(
                "rx = [{ port = \"wan0\" }, { port = \"lan0\" }]",
                "rx = [\n  { port = \"wan0\" },\n  5,\n]"
            )
        );
        let mut e = errors(&t);
        e.sort();
        assert_eq!(
            e,
            [
                "dpdk.mempool_size: invalid type: string \"big\", expected an integer in 1024..=4294967295",
                "routes[1].weight: 1000000 is not in 1..=256",
                "workers[0].rx[1]: invalid type: integer `5`, expected struct RawQueue",
            ]
        );
    }

    #[test]
    fn unknown_keys_are_named_where_they_are() {
        let t = BASE.replace("core = 1", "core = 1\nspeed = 3");
        let e = errors(&format!("{t}\n[bogus]\nx = 1\n"));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e.contains(&"workers[0].speed: unknown field `speed`, expected `core` or `rx`".into()),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("bogus: unknown field `bogus`")),
            "{e:?}"
        );
    }

    #[test]
    fn a_syntax_error_keeps_its_line() {
        let e = errors(&format!("{BASE}\n[node\n"));
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("invalid TOML: TOML parse error at line"),
            "{e:?}"
        );
    }
}
