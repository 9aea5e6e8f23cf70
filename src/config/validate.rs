//! Turns the raw schema into a typed config, collecting every error with its key path.
use super::parse::{is_subnet_edge, parse_cidr, parse_ip, Errs};
pub use super::ports::{NeighborConf, PortConf, WorkerConf};
use super::routes;
use super::schema::*;
use super::tunnels::{self, NodeConf, TunnelConf};
use super::{ConfigErrors, Host};
use crate::limits::MAX_PORTS;
use crate::lpm::Prefix;
use crate::route::WIDEST_CONNECTED;
use crate::wire::MacAddr;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub dpdk: DpdkConf,
    pub ports: Vec<PortConf>,
    pub workers: Vec<WorkerConf>,
    pub neighbors: Vec<NeighborConf>,
    pub routes: Vec<RouteConf>,
    pub node: NodeConf,
    pub tunnels: Vec<TunnelConf>,
    pub firewall: super::FirewallConf,
    /// `[health_checks]`: node-wide timing of tunnel health checks.
    pub health_checks: super::HealthChecksConf,
    /// `[metrics]`: the Prometheus endpoint.
    pub metrics: super::MetricsConf,
    /// `[arr]`: the ARR flow table.
    pub arr: super::ArrConf,
    /// `[bgp]` with every peer; None: no BGP.
    pub bgp: Option<super::BgpConf>,
    /// `[punt]`: the exception port toward the kernel.
    pub punt: super::PuntConf,
    /// The schema as read, kept to tell which sections a reload changed.
    pub raw: RawConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DpdkConf {
    pub eal_args: Vec<String>,
    pub main_core: usize,
    pub mempool_size: u32,
    pub mempool_cache: u32,
    /// Longest idle sleep of a worker, microseconds (0: busy-poll).
    pub idle_backoff_us: u32,
}

pub use super::routes::{RouteConf, Via};

pub fn validate(raw: &RawConfig, host: &Host) -> Result<Config, ConfigErrors> {
    let mut e = Errs(Vec::new());

    // [dpdk]
    let d = &raw.dpdk;
    let eal_facts = super::eal::check_eal_args(&d.eal_args, &mut e);
    if !host.cores.contains(&d.main_core) {
        e.push(
            "dpdk.main_core",
            format!(
                "core {} is not available on this machine (cores: {:?})",
                d.main_core, host.cores
            ),
        );
    }
    if d.mempool_size < 1024 {
        e.push(
            "dpdk.mempool_size",
            format!("{} mbufs is too few; at least 1024", d.mempool_size),
        );
    }
    if d.mempool_cache > 512 || d.mempool_cache as u64 * 3 / 2 > d.mempool_size as u64 {
        e.push(
            "dpdk.mempool_cache",
            format!(
                "{} must be at most 512 and at most 2/3 of dpdk.mempool_size",
                d.mempool_cache
            ),
        );
    }

    // [[ports]]
    if raw.ports.is_empty() {
        e.push("ports", "at least one [[ports]] entry is required");
    }
    if raw.ports.len() > MAX_PORTS {
        e.push(
            "ports",
            format!("{} ports; at most {MAX_PORTS}", raw.ports.len()),
        );
    }
    let mut ports = Vec::new();
    let mut port_idx: HashMap<&str, u16> = HashMap::new();
    let mut devices: HashMap<String, usize> = HashMap::new();
    for (i, p) in raw.ports.iter().enumerate() {
        let path = format!("ports[{i}]");
        if p.name.is_empty()
            || p.name.len() > 15
            || !p
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            e.push(
                format!("{path}.name"),
                format!(
                    "`{}` must be 1-15 characters of letters, digits, - _ .",
                    p.name
                ),
            );
        }
        if port_idx.insert(&p.name, i as u16).is_some() {
            e.push(
                format!("{path}.name"),
                format!("duplicate port name `{}`", p.name),
            );
        }
        let dev_name = p.device.split(',').next().unwrap_or("");
        // One PCI device has several spellings; the EAL takes them all for the same one.
        let dev_key = super::eal::normalized_pci(dev_name).unwrap_or_else(|| dev_name.to_owned());
        if dev_name.is_empty() {
            e.push(format!("{path}.device"), "empty device");
        } else if let Some(j) = devices.insert(dev_key, i) {
            e.push(
                format!("{path}.device"),
                format!("device `{dev_name}` is already used by ports[{j}]"),
            );
        } else {
            super::eal::check_device(i, &p.device, &eal_facts, &mut e);
        }
        for (key, v) in [("rx_queues", p.rx_queues), ("tx_queues", p.tx_queues)] {
            if !(1..=64).contains(&v) {
                e.push(format!("{path}.{key}"), format!("{v} is not in 1..=64"));
            }
        }
        for (key, v) in [("rx_desc", p.rx_desc), ("tx_desc", p.tx_desc)] {
            if !(64..=8192).contains(&v) || !v.is_power_of_two() {
                e.push(
                    format!("{path}.{key}"),
                    format!("{v} must be a power of two in 64..=8192"),
                );
            }
        }
        if !(576..=9600).contains(&p.mtu) {
            e.push(
                format!("{path}.mtu"),
                format!("{} is not in 576..=9600", p.mtu),
            );
        }
        let mac = match p.mac.as_deref().map(str::parse::<MacAddr>) {
            Some(Ok(m)) if m.is_multicast() || m == MacAddr::ZERO => {
                e.push(format!("{path}.mac"), format!("{m} is not a unicast MAC"));
                None
            }
            Some(Ok(m)) => {
                // Two ports with one MAC would answer ARP for each other's address.
                if let Some(j) = ports.iter().position(|o: &PortConf| o.mac == Some(m)) {
                    e.push(
                        format!("{path}.mac"),
                        format!("{m} is already ports[{j}].mac"),
                    );
                }
                Some(m)
            }
            Some(Err(msg)) => {
                e.push(format!("{path}.mac"), msg);
                None
            }
            None => None,
        };
        let (addr, prefix_len) = match parse_cidr(&p.address) {
            Ok((a, l)) if !(WIDEST_CONNECTED..=31).contains(&l) => {
                e.push(
                    format!("{path}.address"),
                    format!(
                        "{} needs a prefix length of {WIDEST_CONNECTED}..=31 (the port's subnet is a connected route whose hosts are resolved by ARP; /{WIDEST_CONNECTED} is the widest)",
                        p.address
                    ),
                );
                (a, l)
            }
            Ok((a, l)) if is_subnet_edge(a, l) => {
                e.push(
                    format!("{path}.address"),
                    format!(
                        "{} is the network or broadcast address of its subnet",
                        p.address
                    ),
                );
                (a, l)
            }
            Ok(v) => v,
            Err(msg) => {
                e.push(format!("{path}.address"), msg);
                (0, 0)
            }
        };
        ports.push(PortConf {
            name: p.name.clone(),
            device: p.device.clone(),
            rx_queues: p.rx_queues,
            tx_queues: p.tx_queues,
            rx_desc: p.rx_desc,
            tx_desc: p.tx_desc,
            mac,
            addr,
            prefix_len,
            mtu: p.mtu,
        });
    }
    for i in 0..ports.len() {
        for j in 0..i {
            let (a, b) = (&ports[i], &ports[j]);
            let m = Prefix::mask(a.prefix_len.min(b.prefix_len));
            if a.prefix_len > 0 && b.prefix_len > 0 && a.addr & m == b.addr & m {
                e.push(
                    format!("ports[{i}].address"),
                    format!(
                        "{} overlaps ports[{j}].address {}",
                        raw.ports[i].address, raw.ports[j].address
                    ),
                );
            }
        }
    }

    // [[workers]]
    if raw.workers.is_empty() {
        e.push("workers", "at least one [[workers]] entry is required");
    }
    let mut workers = Vec::new();
    let mut cores = HashMap::new();
    let mut polled: HashMap<(u16, u16), usize> = HashMap::new();
    for (i, w) in raw.workers.iter().enumerate() {
        let path = format!("workers[{i}]");
        if !host.cores.contains(&w.core) {
            e.push(
                format!("{path}.core"),
                format!(
                    "core {} is not available on this machine (cores: {:?})",
                    w.core, host.cores
                ),
            );
        }
        if w.core == d.main_core && d.idle_backoff_us == 0 {
            // The management thread runs there; a worker that never sleeps would take the
            // core from it. With the idle back-off, an idle worker yields it.
            e.push(
                format!("{path}.core"),
                format!(
                    "core {} is dpdk.main_core (a worker may share it only with dpdk.idle_backoff_us set)",
                    w.core
                ),
            );
        }
        if let Some(j) = cores.insert(w.core, i) {
            e.push(
                format!("{path}.core"),
                format!("core {} is already used by workers[{j}]", w.core),
            );
        }
        let mut rx = Vec::new();
        for (k, q) in w.rx.iter().enumerate() {
            let qpath = format!("{path}.rx[{k}]");
            let Some(&pi) = port_idx.get(q.port.as_str()) else {
                e.push(
                    format!("{qpath}.port"),
                    format!("no port named `{}`", q.port),
                );
                continue;
            };
            let nq = raw.ports[pi as usize].rx_queues;
            if q.queue >= nq {
                e.push(
                    format!("{qpath}.queue"),
                    format!(
                        "port `{}` has {nq} rx queue(s); queue {} does not exist",
                        q.port, q.queue
                    ),
                );
                continue;
            }
            if let Some(j) = polled.insert((pi, q.queue), i) {
                e.push(
                    qpath,
                    format!(
                        "port `{}` rx queue {} is already polled by workers[{j}]",
                        q.port, q.queue
                    ),
                );
                continue;
            }
            rx.push((pi, q.queue));
        }
        workers.push(WorkerConf { core: w.core, rx });
    }
    for (pi, p) in raw.ports.iter().enumerate() {
        // rx_queues out of range has its own error; its queues are not listed one by one.
        let rx_queues = if (1..=64).contains(&p.rx_queues) {
            p.rx_queues
        } else {
            0
        };
        for q in 0..rx_queues {
            if !polled.contains_key(&(pi as u16, q)) && !raw.workers.is_empty() {
                e.push(
                    format!("ports[{pi}].rx_queues"),
                    format!("rx queue {q} of port `{}` is polled by no worker", p.name),
                );
            }
        }
        if (p.tx_queues as usize) < raw.workers.len() {
            e.push(
                format!("ports[{pi}].tx_queues"),
                format!(
                    "{} tx queue(s) for {} workers; each worker needs its own",
                    p.tx_queues,
                    raw.workers.len()
                ),
            );
        }
    }

    // [[neighbors]]
    let mut neighbors = Vec::new();
    let mut neigh_ip: HashMap<u32, usize> = HashMap::new();
    for (i, n) in raw.neighbors.iter().enumerate() {
        let path = format!("neighbors[{i}]");
        let ip = parse_ip(&n.ip)
            .map_err(|m| e.push(format!("{path}.ip"), m))
            .ok();
        let mac = match n.mac.as_deref().map(str::parse::<MacAddr>) {
            Some(Ok(m)) if m.is_multicast() || m == MacAddr::ZERO => {
                e.push(format!("{path}.mac"), format!("{m} is not a unicast MAC"));
                None
            }
            Some(Ok(m)) => Some(m),
            Some(Err(msg)) => {
                e.push(format!("{path}.mac"), msg);
                None
            }
            None => None,
        };
        let Some(&port) = port_idx.get(n.port.as_str()) else {
            e.push(
                format!("{path}.port"),
                format!("no port named `{}`", n.port),
            );
            continue;
        };
        let Some(ip) = ip else { continue };
        let pc = &ports[port as usize];
        if !pc.on_link(ip) {
            e.push(
                format!("{path}.ip"),
                format!(
                    "{} is not on port `{}`'s subnet {}",
                    n.ip, n.port, raw.ports[port as usize].address
                ),
            );
        } else if ip == pc.addr {
            e.push(
                format!("{path}.ip"),
                format!("{} is port `{}`'s own address", n.ip, n.port),
            );
        } else if is_subnet_edge(ip, pc.prefix_len) {
            e.push(
                format!("{path}.ip"),
                format!(
                    "{} is the network or broadcast address of port `{}`'s subnet",
                    n.ip, n.port
                ),
            );
        }
        if let Some(j) = neigh_ip.insert(ip, i) {
            e.push(
                format!("{path}.ip"),
                format!("{} is already neighbors[{j}]", n.ip),
            );
        }
        neighbors.push(NeighborConf { ip, mac, port });
    }

    let node = tunnels::validate_node(raw, &ports, &neighbors, &mut e);
    let mut tunnels = tunnels::validate_tunnels(raw, &node, &ports, &mut e);

    let ctx = routes::Context {
        ports: &ports,
        neigh_ip: &neigh_ip,
        port_idx: &port_idx,
        tunnels: &tunnels,
        node: &node,
    };
    let routes = routes::validate_routes(raw, &ctx, &mut e);
    // A tunnel's interface subnet inside a port's would make the connected route and the
    // tunnel fight over the same hosts.
    for (i, t) in tunnels.iter().enumerate() {
        let iface = t.interface_prefix();
        if let Some(j) = ports.iter().position(|p| {
            let m = Prefix::mask(p.prefix_len.min(iface.len));
            p.prefix_len > 0 && p.addr & m == iface.addr & m
        }) {
            e.push(
                format!("tunnels[{i}].interface_address"),
                format!(
                    "{} overlaps ports[{j}].address {}",
                    raw.tunnels
                        .get(i)
                        .map_or("", |t| t.interface_address.as_str()),
                    raw.ports[j].address
                ),
            );
        }
    }
    let firewall = super::firewall::validate_firewall(raw, &mut e);
    let health_checks = super::health::validate_health_checks(&raw.health_checks, &mut e);
    let metrics = super::metrics::validate_metrics(&raw.metrics, &mut e);
    let arr = super::arr::validate_arr(&raw.arr, &mut e);
    let bgp = super::bgp::validate_bgp(raw, &ports, &tunnels, &mut e);
    let punt = super::punt::validate_punt(&raw.punt, raw.ports.len(), &mut e);
    if d.idle_backoff_us > crate::datapath::idle::MAX_SLEEP_US {
        e.push(
            "dpdk.idle_backoff_us",
            format!(
                "{} is above {} (a sleeping worker adds that much latency)",
                d.idle_backoff_us,
                crate::datapath::idle::MAX_SLEEP_US
            ),
        );
    }
    // An explicit authorized_prefixes list also admits the tunnel's interface subnet (the
    // customer router's own address). Without one, the route table decides (see
    // `Snapshot::source_allowed`).
    for t in tunnels.iter_mut() {
        let iface = t.interface_prefix();
        if let Some(list) = t.authorized.as_mut() {
            list.push(iface);
        }
    }

    if !e.0.is_empty() {
        return Err(ConfigErrors(e.0));
    }
    Ok(Config {
        dpdk: DpdkConf {
            eal_args: d.eal_args.clone(),
            main_core: d.main_core,
            mempool_size: d.mempool_size,
            mempool_cache: d.mempool_cache,
            idle_backoff_us: d.idle_backoff_us,
        },
        ports,
        workers,
        neighbors,
        routes,
        node,
        tunnels,
        firewall,
        health_checks,
        metrics,
        arr,
        bgp,
        punt,
        raw: raw.clone(),
    })
}

impl Config {
    /// Checks one route given at run time (`anygate ctl add-route`) against this config:
    /// the same rules as a `[[routes]]` entry, errors under the key `route`. Rules across
    /// routes (duplicates, the per-priority limit) are the route table's to check.
    pub fn validate_route(&self, r: &super::RawRoute) -> Result<RouteConf, ConfigErrors> {
        let neigh_ip: HashMap<u32, usize> = self
            .raw
            .neighbors
            .iter()
            .enumerate()
            .filter_map(|(i, n)| parse_ip(&n.ip).ok().map(|ip| (ip, i)))
            .collect();
        let port_idx: HashMap<&str, u16> = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i as u16))
            .collect();
        let cx = routes::Context {
            ports: &self.ports,
            neigh_ip: &neigh_ip,
            port_idx: &port_idx,
            tunnels: &self.tunnels,
            node: &self.node,
        };
        let mut e = Errs(Vec::new());
        match routes::check_route("route", r, &self.raw, &cx, &mut e) {
            Some(rc) if e.0.is_empty() => Ok(rc),
            _ => Err(ConfigErrors(e.0)),
        }
    }

    /// Names of the sections that differ from `other` and cannot change while running.
    pub fn restart_required(&self, other: &Config) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.raw.dpdk != other.raw.dpdk {
            v.push("[dpdk]");
        }
        if self.raw.ports != other.raw.ports {
            v.push("[[ports]]");
        }
        if self.raw.workers != other.raw.workers {
            v.push("[[workers]]");
        }
        if self.raw.metrics != other.raw.metrics {
            v.push("[metrics]");
        }
        if self.raw.punt.device_part() != other.raw.punt.device_part() {
            v.push("punt.enabled, punt.interface, punt.mtu");
        }
        v
    }

    /// Port indices by name.
    pub fn port_index(&self, name: &str) -> Option<u16> {
        self.ports
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Host};

    fn host() -> Host {
        Host { cores: vec![0, 1] }
    }

    const GOOD: &str = r#"
[dpdk]
eal_args = ["--no-huge", "-m", "256"]

[[ports]]
name = "wan0"
device = "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"
mac = "02:00:00:00:00:01"
address = "192.0.2.1/24"

[[ports]]
name = "lan0"
device = "net_null0"
address = "10.0.0.1/24"

[[workers]]
core = 1
rx = [{ port = "wan0", queue = 0 }, { port = "lan0" }]

[[neighbors]]
ip = "192.0.2.254"
mac = "02:00:00:00:00:fe"
port = "wan0"

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[[routes]]
prefix = "172.16.0.0/12"
nexthop = "10.0.0.2"
"#;

    fn errors(text: &str) -> Vec<String> {
        match parse(text, &host()) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn good_config_parses() {
        let c = parse(GOOD, &host()).unwrap();
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.ports[0].mtu, 1500);
        assert_eq!(c.workers[0].rx, vec![(0, 0), (1, 0)]);
        assert_eq!(
            c.routes[1].via,
            super::Via::Gateway {
                ip: 0x0a00_0002,
                port: 1
            },
            "on-link gateway resolves to lan0"
        );
        assert_eq!(
            c.routes[0].via,
            super::Via::Gateway {
                ip: 0xc000_02fe,
                port: 0
            }
        );
        assert!(c.neighbors[0].mac.is_some());
    }

    #[test]
    fn host_bits_named_by_key() {
        let t = GOOD.replace("172.16.0.0/12", "10.0.0.1/24");
        assert_eq!(
            errors(&t),
            vec!["routes[1].prefix: host bits set in 10.0.0.1/24"]
        );
    }

    #[test]
    fn unknown_key_refused() {
        let t = GOOD.replace("[[workers]]\n", "[[workers]]\nspeed = 3\n");
        let e = errors(&t);
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("unknown field `speed`"), "{e:?}");
        let t = format!("{GOOD}\n[bogus]\nx = 1\n");
        assert!(errors(&t)[0].contains("unknown field `bogus`"));
    }

    #[test]
    fn wrong_type_refused() {
        let t = GOOD.replace("core = 1", "core = \"one\"");
        let e = errors(&t);
        assert!(
            e[0].contains("core") && e[0].contains("invalid type"),
            "{e:?}"
        );
    }

    #[test]
    fn duplicate_route_refused() {
        // Another next hop for the same prefix is an ECMP candidate, not a duplicate.
        let ecmp =
            format!("{GOOD}\n[[routes]]\nprefix = \"172.16.0.0/12\"\nnexthop = \"192.0.2.254\"\n");
        assert!(errors(&ecmp).is_empty());
        let t = format!("{GOOD}\n[[routes]]\nprefix = \"172.16.0.0/12\"\nnexthop = \"10.0.0.2\"\npriority = 5\n");
        assert_eq!(
            errors(&t),
            vec!["routes[2]: duplicate route: 172.16.0.0/12 via 10.0.0.2 is already routes[1]"]
        );
    }

    #[test]
    fn route_to_nowhere_refused() {
        let t = GOOD.replace("nexthop = \"10.0.0.2\"", "nexthop = \"203.0.113.1\"");
        assert_eq!(errors(&t), vec!["routes[1].nexthop: 203.0.113.1 is on no port's subnet and is no [[neighbors]] entry or tunnel"]);
    }

    #[test]
    fn missing_core_refused() {
        let t = GOOD.replace("core = 1", "core = 7");
        assert_eq!(
            errors(&t),
            vec!["workers[0].core: core 7 is not available on this machine (cores: [0, 1])"]
        );
    }

    #[test]
    fn unknown_port_and_queue_refused() {
        let t = GOOD.replace("{ port = \"lan0\" }", "{ port = \"lan9\" }");
        let e = errors(&t);
        assert!(
            e.contains(&"workers[0].rx[1].port: no port named `lan9`".to_string()),
            "{e:?}"
        );
        assert!(
            e.contains(
                &"ports[1].rx_queues: rx queue 0 of port `lan0` is polled by no worker".to_string()
            ),
            "{e:?}"
        );
        let t = GOOD.replace("{ port = \"lan0\" }", "{ port = \"lan0\", queue = 3 }");
        assert!(errors(&t)[0].starts_with("workers[0].rx[1].queue: port `lan0` has 1 rx queue(s)"));
    }

    #[test]
    fn bad_addresses_named() {
        let t = GOOD
            .replace("02:00:00:00:00:fe", "02:00:00:00:fe")
            .replace("192.0.2.1/24", "192.0.2.1/33");
        let e = errors(&t);
        assert!(
            e.iter()
                .any(|m| m.starts_with("neighbors[0].mac: `02:00:00:00:fe` is not a MAC")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("ports[0].address: `192.0.2.1/33` is not a CIDR")),
            "{e:?}"
        );
    }

    #[test]
    fn a_port_subnet_is_a_connected_route_no_configured_route_may_replace() {
        let t =
            format!("{GOOD}\n[[routes]]\nprefix = \"10.0.0.0/24\"\nnexthop = \"192.0.2.254\"\n");
        assert_eq!(
            errors(&t),
            vec!["routes[2].prefix: 10.0.0.0/24 is port `lan0`'s connected subnet (ports[1].address): its hosts are reached directly, by ARP; route a longer prefix inside it instead"]
        );
        // A longer prefix inside it is an ordinary route.
        let t =
            format!("{GOOD}\n[[routes]]\nprefix = \"10.0.0.128/25\"\nnexthop = \"192.0.2.254\"\n");
        assert!(errors(&t).is_empty());
        let c = parse(GOOD, &host()).unwrap();
        let r = crate::config::RawRoute {
            prefix: "10.0.0.0/24".into(),
            nexthop: "192.0.2.254".into(),
            priority: 1,
            weight: None,
            description: String::new(),
            scope: None,
            source: Default::default(),
        };
        assert!(c
            .validate_route(&r)
            .unwrap_err()
            .to_string()
            .starts_with("route.prefix: 10.0.0.0/24 is port `lan0`'s connected subnet"));
    }

    #[test]
    fn subnet_edges_and_wide_subnets_refused() {
        let e = errors(&GOOD.replace("10.0.0.1/24", "10.0.0.1/8"));
        assert!(
            e[0].starts_with("ports[1].address: 10.0.0.1/8 needs a prefix length of 16..=31"),
            "{e:?}"
        );
        let e = errors(
            &GOOD
                .replace("10.0.0.1/24", "10.0.0.255/24")
                .replace("10.0.0.2\"", "10.0.0.3\""),
        );
        assert_eq!(
            e,
            vec![
                "ports[1].address: 10.0.0.255/24 is the network or broadcast address of its subnet"
            ]
        );
        let e = errors(&GOOD.replace("192.0.2.254", "192.0.2.255"));
        assert!(e.contains(&"neighbors[0].ip: 192.0.2.255 is the network or broadcast address of port `wan0`'s subnet".to_string()), "{e:?}");
        let e = errors(&GOOD.replace("10.0.0.2", "10.0.0.0"));
        assert_eq!(e, vec!["routes[1].nexthop: 10.0.0.0 is the network or broadcast address of port `lan0`'s subnet"]);
        // A /31 has no network or broadcast address (RFC 3021).
        let t = GOOD
            .replace("10.0.0.1/24", "10.0.0.0/31")
            .replace("10.0.0.2", "10.0.0.1");
        assert!(errors(&t).is_empty(), "{:?}", errors(&t));
    }

    #[test]
    fn a_tunnel_interface_inside_a_port_subnet_refused() {
        let t = format!(
            "{}\n[node]\nanycast_addresses = [\"203.0.113.10\"]\n\n[[tunnels]]\nname = \"T1\"\ntype = \"gre\"\ncustomer_endpoint = \"192.0.2.77\"\nedge_endpoint = \"203.0.113.10\"\ninterface_address = \"10.0.0.100/31\"\n",
            GOOD.replace("\n[[routes]]\nprefix = \"172.16.0.0/12\"\nnexthop = \"10.0.0.2\"\n", "")
        );
        assert_eq!(
            errors(&t),
            vec![
                "tunnels[0].interface_address: 10.0.0.100/31 overlaps ports[1].address 10.0.0.1/24"
            ]
        );
    }

    /// GOOD with one anycast address and one GRE tunnel to it, `tunnel` completing the table.
    fn with_tunnel(tunnel: &str) -> String {
        format!(
            "{GOOD}\n[node]\nanycast_addresses = [\"203.0.113.10\"]\n\n[[tunnels]]\nname = \"T1\"\n\
             type = \"gre\"\nedge_endpoint = \"203.0.113.10\"\n{tunnel}\n"
        )
    }

    #[test]
    fn two_ports_with_one_mac_refused() {
        let t = GOOD.replace(
            "device = \"net_null0\"\n",
            "device = \"net_null0\"\nmac = \"02:00:00:00:00:01\"\n",
        );
        assert_eq!(
            errors(&t),
            ["ports[1].mac: 02:00:00:00:00:01 is already ports[0].mac"]
        );
    }

    #[test]
    fn a_worker_on_the_main_core_refused() {
        assert_eq!(
            errors(&GOOD.replace("core = 1", "core = 0")),
            ["workers[0].core: core 0 is dpdk.main_core (a worker may share it only with dpdk.idle_backoff_us set)"]
        );
        let t = GOOD.replace("[dpdk]\n", "[dpdk]\nmain_core = 1\n");
        assert_eq!(
            errors(&t),
            ["workers[0].core: core 1 is dpdk.main_core (a worker may share it only with dpdk.idle_backoff_us set)"]
        );
        // With the back-off an idle worker sleeps, and the two may share the core.
        let t = GOOD.replace("[dpdk]\n", "[dpdk]\nmain_core = 1\nidle_backoff_us = 200\n");
        assert_eq!(errors(&t), Vec::<String>::new());
    }

    #[test]
    fn an_anycast_address_is_no_neighbour_nor_tunnel_interface() {
        let t = with_tunnel(
            "customer_endpoint = \"198.51.100.20\"\ninterface_address = \"10.100.0.0/31\"",
        );
        assert!(errors(&t).is_empty(), "{:?}", errors(&t));
        let e = errors(&t.replace(
            "anycast_addresses = [\"203.0.113.10\"]",
            "anycast_addresses = [\"203.0.113.10\", \"192.0.2.254\"]",
        ));
        assert_eq!(
            e,
            ["node.anycast_addresses[1]: 192.0.2.254 is a neighbour's address; anycast addresses are not"]
        );
        // Either side of the tunnel's interface subnet.
        for (ip, side) in [("10.100.0.0", "10.100.0.0"), ("10.100.0.1", "10.100.0.1")] {
            let e = errors(&t.replace(
                "anycast_addresses = [\"203.0.113.10\"]",
                &format!("anycast_addresses = [\"203.0.113.10\", \"{ip}\"]"),
            ));
            assert_eq!(
                e,
                [format!(
                    "tunnels[0].interface_address: 10.100.0.0/31: {side} is one of node.anycast_addresses"
                )]
            );
        }
    }

    #[test]
    fn a_customer_endpoint_is_none_of_our_addresses_nor_a_broadcast() {
        let t = |c: &str| {
            errors(&with_tunnel(&format!(
                "customer_endpoint = \"{c}\"\ninterface_address = \"10.100.0.0/31\""
            )))
        };
        assert!(t("198.51.100.20").is_empty());
        for (c, why) in [
            ("192.0.2.1", "192.0.2.1 is port `wan0`'s own address"),
            ("10.0.0.1", "10.0.0.1 is port `lan0`'s own address"),
            (
                "192.0.2.255",
                "192.0.2.255 is the network or broadcast address of port `wan0`'s subnet",
            ),
            (
                "10.0.0.0",
                "10.0.0.0 is the network or broadcast address of port `lan0`'s subnet",
            ),
            (
                "255.255.255.255",
                "255.255.255.255 cannot be a customer endpoint",
            ),
            ("203.0.113.10", "203.0.113.10 cannot be a customer endpoint"),
            (
                "10.100.0.0",
                "10.100.0.0 is in the interface subnet of tunnel `T1`",
            ),
            (
                "10.100.0.1",
                "10.100.0.1 is in the interface subnet of tunnel `T1`",
            ),
        ] {
            assert_eq!(
                t(c),
                [format!("tunnels[0].customer_endpoint: {why}")],
                "{c}"
            );
        }
        // Another tunnel's interface address, that tunnel listed later.
        let two =
            format!(
            "{}\n[[tunnels]]\nname = \"T2\"\ntype = \"ipip\"\nedge_endpoint = \"203.0.113.10\"\n\
             customer_endpoint = \"198.51.100.30\"\ninterface_address = \"10.100.0.2/31\"\n",
            with_tunnel("customer_endpoint = \"10.100.0.2\"\ninterface_address = \"10.100.0.0/31\"")
        );
        assert_eq!(
            errors(&two),
            ["tunnels[0].customer_endpoint: 10.100.0.2 is in the interface subnet of tunnel `T2`"]
        );
    }

    #[test]
    fn mss_clamp_above_mtu_minus_40_refused() {
        let t = |extra: &str| {
            errors(&with_tunnel(&format!(
                "customer_endpoint = \"198.51.100.20\"\ninterface_address = \"10.100.0.0/31\"\n{extra}"
            )))
        };
        assert!(t("mss_clamp = 1436").is_empty(), "GRE's mtu is 1476");
        assert!(t("mss_clamp = 0").is_empty());
        assert!(t("mtu = 1400\nmss_clamp = 1360").is_empty());
        assert_eq!(
            t("mss_clamp = 1437"),
            ["tunnels[0].mss_clamp: 1437 is above mtu - 40 (1436); 0 disables clamping"]
        );
        assert_eq!(
            t("mss_clamp = 65535"),
            ["tunnels[0].mss_clamp: 65535 is above mtu - 40 (1436); 0 disables clamping"]
        );
        assert_eq!(
            t("mtu = 1400\nmss_clamp = 1361"),
            ["tunnels[0].mss_clamp: 1361 is above mtu - 40 (1360); 0 disables clamping"]
        );
    }

    #[test]
    fn managed_eal_args_refused() {
        let t = GOOD.replace("\"-m\", \"256\"", "\"-l\", \"0-1\"");
        assert!(errors(&t)[0].starts_with("dpdk.eal_args[1]: `-l` is set by anygate"));
    }

    #[test]
    fn too_few_tx_queues_for_workers() {
        let t = format!("{GOOD}\n[[workers]]\ncore = 0\nrx = []\n");
        let e = errors(&t);
        assert!(
            e.iter().any(|m| m
                == "ports[0].tx_queues: 1 tx queue(s) for 2 workers; each worker needs its own"),
            "{e:?}"
        );
    }

    #[test]
    fn restart_sections_detected() {
        let a = parse(GOOD, &host()).unwrap();
        let b = parse(&GOOD.replace("172.16.0.0/12", "172.16.0.0/16"), &host()).unwrap();
        assert!(a.restart_required(&b).is_empty());
        let c = parse(
            &GOOD.replace(
                "address = \"10.0.0.1/24\"",
                "address = \"10.0.0.1/24\"\nmtu = 9000",
            ),
            &host(),
        )
        .unwrap();
        assert_eq!(a.restart_required(&c), vec!["[[ports]]"]);
    }

    /// GOOD plus tunnel T1 (interface 10.100.0.0/31) and one more route.
    fn with_route(prefix: &str, nexthop: &str) -> String {
        format!(
            "{}\n[[routes]]\nprefix = \"{prefix}\"\nnexthop = \"{nexthop}\"\n",
            with_tunnel(
                "customer_endpoint = \"198.51.100.20\"\ninterface_address = \"10.100.0.0/31\""
            )
        )
    }

    fn ctl_route(prefix: &str, nexthop: &str) -> Result<(), String> {
        let c = parse(&with_route("10.9.0.0/16", "T1"), &host()).unwrap();
        let r = crate::config::RawRoute {
            prefix: prefix.into(),
            nexthop: nexthop.into(),
            priority: 100,
            weight: None,
            description: String::new(),
            scope: None,
            source: Default::default(),
        };
        c.validate_route(&r).map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_tunnel_interface_subnet_stays_routed_through_its_tunnel() {
        let why =
            "tunnel `T1`'s interface subnet 10.100.0.0/31 (tunnels[0].interface_address): it \
                   is routed through that tunnel implicitly and no route may take its addresses \
                   elsewhere";
        for (p, nh, what) in [
            ("10.100.0.0/31", "192.0.2.254", "is"),
            ("10.100.0.0/31", "T1", "is"),
            ("10.100.0.1/32", "10.0.0.2", "is inside"),
            ("10.100.0.0/32", "T1", "is inside"),
        ] {
            assert_eq!(
                errors(&with_route(p, nh)),
                [format!("routes[2].prefix: {p} {what} {why}")],
                "{p} via {nh}"
            );
            // `ctl add-route` checks a route the same way, under the key `route`.
            assert_eq!(
                ctl_route(p, nh).unwrap_err(),
                format!("route.prefix: {p} {what} {why}")
            );
        }
        // A prefix around it leaves the subnet to the tunnel (longest match).
        assert!(errors(&with_route("10.100.0.0/16", "10.0.0.2")).is_empty());
        assert!(ctl_route("10.100.0.0/16", "10.0.0.2").is_ok());
    }

    #[test]
    fn routes_that_could_never_carry_a_packet_refused() {
        for (p, why) in [
            (
                "192.0.2.1/32",
                "192.0.2.1 is port `wan0`'s own address (ports[0].address): packets to it are ours, never routed",
            ),
            (
                "203.0.113.10/32",
                "203.0.113.10 is one of node.anycast_addresses: packets to it end tunnels here, never routed",
            ),
            (
                "10.0.0.255/32",
                "10.0.0.255 is the network or broadcast address of port `lan0`'s subnet: never forwarded to",
            ),
            (
                "224.0.0.0/3",
                "224.0.0.0/3 holds only destinations never forwarded (0/8, 127/8, multicast, reserved)",
            ),
            (
                "127.0.0.0/8",
                "127.0.0.0/8 holds only destinations never forwarded (0/8, 127/8, multicast, reserved)",
            ),
        ] {
            assert_eq!(
                errors(&with_route(p, "10.0.0.2")),
                [format!("routes[2].prefix: {why}")],
                "{p}"
            );
            assert_eq!(
                ctl_route(p, "10.0.0.2").unwrap_err(),
                format!("route.prefix: {why}")
            );
        }
        // Neighbour host routes and prefixes holding some forwardable space stay allowed.
        for p in ["192.0.2.254/32", "10.0.0.7/32", "192.0.0.0/2", "0.0.0.0/0"] {
            assert!(ctl_route(p, "10.0.0.2").is_ok(), "{p}");
        }
    }

    #[test]
    fn a_tunnel_named_like_an_address_refused() {
        let t = with_tunnel(
            "customer_endpoint = \"198.51.100.20\"\ninterface_address = \"10.100.0.0/31\"",
        )
        .replace("name = \"T1\"", "name = \"10.0.0.2\"");
        assert_eq!(
            errors(&t),
            ["tunnels[0].name: `10.0.0.2` is an IPv4 address; a route's nexthop could not tell the tunnel from the address"]
        );
    }

    #[test]
    fn tunnel_names_are_ascii() {
        let t = with_tunnel(
            "customer_endpoint = \"198.51.100.20\"\ninterface_address = \"10.100.0.0/31\"",
        );
        for name in ["туннель", "a b", "tab\\t"] {
            let e = errors(&t.replace("name = \"T1\"", &format!("name = \"{name}\"")));
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(
                e[0].starts_with("tunnels[0].name: `")
                    && e[0].ends_with(
                        "` must be 1-15 ASCII letters, digits or punctuation (no spaces)"
                    ),
                "{e:?}"
            );
        }
    }

    #[test]
    fn routes_through_a_refused_tunnel_add_no_errors_of_their_own() {
        let t = with_route("10.9.0.0/16", "T1").replace("198.51.100.20", "198.51.100");
        assert_eq!(
            errors(&t),
            ["tunnels[0].customer_endpoint: `198.51.100` is not an IPv4 address"]
        );
    }

    #[test]
    fn an_out_of_range_queue_count_is_one_error() {
        let e = errors(&GOOD.replace(
            "device = \"net_null0\"\n",
            "device = \"net_null0\"\nrx_queues = 65\n",
        ));
        assert_eq!(e, ["ports[1].rx_queues: 65 is not in 1..=64"]);
    }

    #[test]
    fn one_pci_device_in_two_spellings_refused() {
        let two = |a: &str, b: &str| {
            errors(&format!(
                "{GOOD}\n[[ports]]\nname = \"p1\"\ndevice = \"{a}\"\naddress = \"10.1.0.1/24\"\n\
                 [[ports]]\nname = \"p2\"\ndevice = \"{b}\"\naddress = \"10.2.0.1/24\"\n"
            ))
            .into_iter()
            .filter(|m| m.contains(".device"))
            .collect::<Vec<_>>()
        };
        for (a, b) in [
            ("0000:01:00.0", "01:00.0"),
            ("0000:0a:00.1", "0000:0A:00.1"),
            ("01:00.0,rxq_cqe_comp_en=1", "0000:01:00.0"),
        ] {
            let name = b.split(',').next().unwrap();
            assert_eq!(
                two(a, b),
                [format!(
                    "ports[3].device: device `{name}` is already used by ports[2]"
                )],
                "{a} {b}"
            );
        }
        assert!(two("0000:01:00.0", "0000:01:00.1").is_empty());
        assert_eq!(
            two("0000:01:00.0", "1:2:3:4.0"),
            ["ports[3].device: `1:2:3:4.0` is not a PCI address (DDDD:BB:DD.F or BB:DD.F, in hex)"]
        );
    }

    #[test]
    fn a_control_socket_too_long_to_bind_refused() {
        let node = |sock: &str| errors(&format!("{GOOD}\n[node]\ncontrol_socket = \"{sock}\"\n"));
        let ok = format!("/run/{}", "s".repeat(102));
        assert_eq!(ok.len(), 107);
        assert!(node(&ok).is_empty());
        let long = format!("{ok}x");
        assert_eq!(
            node(&long),
            [format!(
                "node.control_socket: `{long}` is 108 bytes; a Unix socket path is at most 107"
            )]
        );
    }

    #[test]
    fn an_empty_colo_refused() {
        assert_eq!(
            errors(&format!("{GOOD}\n[node]\ncolo = \"\"\n")),
            ["node.colo: empty data center name (leave the key out for none)"]
        );
        assert!(errors(&format!("{GOOD}\n[node]\ncolo = \"ams01\"\n")).is_empty());
    }
}
