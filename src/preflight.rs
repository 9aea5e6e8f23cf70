//! What `check` and `run` both do before DPDK starts: validate the config, then build the
//! route table exactly as `run` does, so whatever the table refuses (a tunnel without an
//! underlay route, more tbl8 groups than the limit) is refused before any device is touched.
//! Port MACs come from the devices; stand-ins serve here, as in `trace`: nothing the table
//! checks depends on them.
use crate::config::{self, Config, ConfigError, ConfigErrors, Host};
use crate::route::{Rib, Snapshot};
use std::path::Path;

/// A config that passed every check, and the table built from it (generation 1).
pub struct Checked {
    pub cfg: Config,
    /// Carries stand-in port MACs until [`Snapshot::with_port_macs`] gives it the real ones.
    pub snapshot: Snapshot,
    pub rib: Rib,
}

/// Loads `path` and checks everything that can be known without the devices.
pub fn preflight(path: &Path, host: &Host) -> Result<Checked, ConfigErrors> {
    let cfg = config::load(path, host)?;
    check(cfg)
}

/// Builds the table for a validated config; its errors are `key: reason` lines.
pub fn check(cfg: Config) -> Result<Checked, ConfigErrors> {
    let macs = crate::trace::port_macs(&cfg);
    let (snapshot, rib) =
        Snapshot::build_with_rib(&cfg, &macs, 1, None).map_err(|e| table_errors(&e))?;
    Ok(Checked { cfg, snapshot, rib })
}

fn table_errors(e: &str) -> ConfigErrors {
    ConfigErrors(
        e.lines()
            .map(|l| match l.split_once(": ") {
                Some((path, msg)) if !path.contains(' ') => ConfigError::new(path, msg),
                _ => ConfigError::new("", l),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
[node]
anycast_addresses = ["203.0.113.10"]

[[ports]]
name = "wan0"
device = "net_null0"
address = "192.0.2.1/24"

[[workers]]
core = 1
rx = [{ port = "wan0" }]

[[neighbors]]
ip = "192.0.2.254"
mac = "02:00:00:00:00:fe"
port = "wan0"

[[tunnels]]
name = "acme"
type = "gre"
customer_endpoint = "198.51.100.20"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"

[[tunnels]]
name = "beta"
type = "ipip"
customer_endpoint = "198.51.100.30"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.2/31"

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"
"#;

    fn errors(text: &str) -> Result<Checked, Vec<String>> {
        let cfg = config::parse(text, &Host { cores: vec![0, 1] }).expect("validates");
        check(cfg).map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn good_config_gets_its_table() {
        let c = match errors(CFG) {
            Ok(c) => c,
            Err(e) => panic!("refused: {e:?}"),
        };
        assert_eq!(c.snapshot.tunnels.len(), 2);
        assert_eq!(c.snapshot.generation, 1);
        let real = crate::wire::MacAddr([2, 0, 0, 0, 9, 9]);
        assert_eq!(c.snapshot.with_port_macs(&[real]).ports[0].mac, real);
    }

    #[test]
    fn every_tunnel_without_underlay_named() {
        let e = errors(&CFG.replace("0.0.0.0/0", "8.0.0.0/8"))
            .err()
            .expect("refused");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("tunnels[0].customer_endpoint: no route toward 198.51.100.20"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("tunnels[1].customer_endpoint: no route toward 198.51.100.30"),
            "{e:?}"
        );
    }

    #[test]
    fn too_many_tbl8_groups_named_with_figures() {
        // One /24 more than the limit: /32s in distinct /24s, plus the /24s of the port's and
        // the neighbour's /32s, the tunnel interfaces' and the anycast address.
        let limit = crate::limits::MAX_TBL8_GROUPS;
        let mut text = CFG.to_owned();
        for i in 0..limit as u32 - 2 {
            let a = std::net::Ipv4Addr::from(0x2000_0000 + (i << 8) + 1);
            text.push_str(&format!(
                "[[routes]]\nprefix = \"{a}/32\"\nnexthop = \"192.0.2.254\"\n"
            ));
        }
        let e = errors(&text).err().expect("refused");
        assert_eq!(
            e,
            vec![format!(
                "routes: the table needs {} tbl8 groups (one per /24 holding longer \
                 prefixes), limit is {limit}",
                limit + 1
            )]
        );
    }
}
