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
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            "",
            format!("invalid TOML: {}", e.to_string().trim_end()),
        )])
    })?;
    validate(&raw, host)
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
