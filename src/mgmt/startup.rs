//! Bringing DPDK up from a config: EAL arguments, mempool, ports.
use crate::config::{is_pci, Config, PortConf};
use crate::dpdk::{self, Eal, Mempool, Port, PortSettings};
use crate::wire::MacAddr;

/// The name the EAL gives the device: the vdev name, or the full PCI address.
pub fn eal_device_name(device: &str) -> String {
    let name = device.split(',').next().unwrap_or("");
    if is_pci(device) && name.matches(':').count() == 1 {
        format!("0000:{name}")
    } else {
        name.to_owned()
    }
}

/// The EAL command line: main lcore, the operator's extra arguments, then one `-a` per PCI
/// port. Virtual devices are probed one by one once the EAL runs (see [`create_vdevs`]).
pub fn eal_args(cfg: &Config) -> Vec<String> {
    let mut a = vec![
        "anygate".to_owned(),
        "-l".to_owned(),
        cfg.dpdk.main_core.to_string(),
    ];
    a.extend(cfg.dpdk.eal_args.iter().cloned());
    for p in cfg.ports.iter().filter(|p| is_pci(&p.device)) {
        a.push("-a".to_owned());
        a.push(p.device.clone());
    }
    a
}

/// Why DPDK did not create a port's device: `ports[i] (name): device "..." was not created
/// by DPDK: <reason>`.
pub fn not_created(i: usize, p: &PortConf, reason: &str) -> String {
    format!(
        "ports[{i}] ({}): device \"{}\" was not created by DPDK: {reason}",
        p.name, p.device
    )
}

/// What `rte_dev_probe`'s return code (negated) says about a vdev.
fn probe_refusal(code: i32) -> String {
    use dpdk::errno::{EEXIST, EINVAL, ENODEV, ENOTSUP};
    match code {
        EINVAL => "DPDK could not parse it (unknown driver or bad syntax; see the EAL log above)"
            .to_owned(),
        ENODEV => "no bus found the device (see the EAL log above)".to_owned(),
        EEXIST => "a device of that name exists already".to_owned(),
        ENOTSUP => "its bus cannot add devices at run time".to_owned(),
        c => format!(
            "the driver refused its arguments (rte_dev_probe returned -{c}; see the EAL log above)"
        ),
    }
}

/// Probes every virtual port's device, in config order, naming the first one refused.
fn create_vdevs(eal: &Eal, cfg: &Config) -> Result<(), String> {
    for (i, p) in cfg.ports.iter().enumerate() {
        if !is_pci(&p.device) {
            dpdk::probe_device(eal, &p.device)
                .map_err(|e| not_created(i, p, &probe_refusal(e.code)))?;
        }
    }
    Ok(())
}

/// The EAL, the pool and the ports. The drop order is enforced by the types whatever order
/// they are dropped in: a port (and each of its queue handles) holds the pool, and the pool
/// holds the EAL, so a port closes before its pool is freed and the EAL is cleaned up last.
pub struct Dataplane {
    /// Ports in config order.
    pub ports: Vec<Port>,
    pub pool: std::sync::Arc<Mempool>,
    pub eal: Eal,
}

fn settings(p: &PortConf) -> PortSettings {
    PortSettings {
        rx_queues: p.rx_queues,
        tx_queues: p.tx_queues,
        rx_desc: p.rx_desc,
        tx_desc: p.tx_desc,
        mtu: p.mtu,
        mac: p.mac,
    }
}

/// Starts the EAL, creates the mempool and configures and starts every port.
pub fn bring_up(cfg: &Config) -> Result<Dataplane, String> {
    let args = eal_args(cfg);
    log::info!("EAL arguments: {}", args[1..].join(" "));
    // From here DPDK's own lines (the EAL's start-up and argument errors, drivers probed
    // below, port set-up, link changes) go through the log's queue in its format, not
    // straight to stderr.
    if let Err(e) = dpdk::log_through_logger(crate::log_format::flush) {
        log::warn!("DPDK's log stays on stderr: {e}");
    }
    let eal = Eal::init(&args).map_err(|e| e.to_string())?;
    // The EAL pinned this thread to the main lcore; the log's writer joins it there.
    if let Some(&core) = core_affinity::get_core_ids().unwrap_or_default().first() {
        crate::log_format::pin_writer(core.id);
    }
    create_vdevs(&eal, cfg)?;
    let pool = Mempool::new(
        &eal,
        "anygate_pkt",
        cfg.dpdk.mempool_size,
        cfg.dpdk.mempool_cache,
        eal.socket_id(),
    )
    .map_err(|e| format!("dpdk.mempool_size: {e}"))?;
    let pool = std::sync::Arc::new(pool);
    let mut ports = Vec::new();
    for (i, p) in cfg.ports.iter().enumerate() {
        let id = dpdk::port_id_by_name(&eal, &eal_device_name(&p.device)).map_err(|_| {
            let why = if is_pci(&p.device) {
                "no driver took it (is it bound to vfio-pci or igb_uio? see the EAL log above)"
            } else {
                "it was probed but made no ethdev port (not a network driver?)"
            };
            not_created(i, p, why)
        })?;
        let mut port = Port::configure(id, &p.name, &settings(p), &pool)
            .map_err(|e| format!("ports[{i}]: {e}"))?;
        port.start().map_err(|e| format!("ports[{i}]: {e}"))?;
        let link = port.link();
        log::info!(
            "port {} ({}) id {id}: mac {} {} rx / {} tx queues, mtu {}, link {} {} Mb/s",
            p.name,
            eal_device_name(&p.device),
            port.mac(),
            p.rx_queues,
            p.tx_queues,
            p.mtu,
            if link.up { "up" } else { "down" },
            link.speed_mbps
        );
        ports.push(port);
    }
    if cfg.punt.enabled {
        ports.push(punt_port(&eal, cfg, &pool)?);
    }
    Ok(Dataplane { ports, pool, eal })
}

/// The exception port (`[punt]`), after the configured ports: one rx and one tx queue per
/// worker, so that each worker sends to and receives from the kernel on its own queues.
fn punt_port(eal: &Eal, cfg: &Config, pool: &std::sync::Arc<Mempool>) -> Result<Port, String> {
    let p = &cfg.punt;
    let dev = super::punt::vdev_args(p);
    let refused = |why: String| format!("punt.interface {}: device \"{dev}\": {why}", p.interface);
    dpdk::probe_device(eal, &dev).map_err(|e| refused(probe_refusal(e.code)))?;
    let id = dpdk::port_id_by_name(eal, super::punt::VDEV)
        .map_err(|_| refused("it was probed but made no ethdev port".to_owned()))?;
    let n = cfg.workers.len().max(1) as u16;
    let s = PortSettings {
        rx_queues: n,
        tx_queues: n,
        rx_desc: 512,
        tx_desc: 512,
        mtu: p.mtu,
        mac: None,
    };
    let mut port =
        Port::configure(id, &p.interface, &s, pool).map_err(|e| refused(e.to_string()))?;
    port.start().map_err(|e| refused(e.to_string()))?;
    log::info!(
        "punt: exception port {} id {id}: mac {}, {n} queues, mtu {}",
        p.interface,
        port.mac(),
        p.mtu
    );
    Ok(port)
}

impl Dataplane {
    pub fn macs(&self) -> Vec<MacAddr> {
        self.ports.iter().map(|p| p.mac()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_or_vdev() {
        assert_eq!(eal_device_name("01:00.1"), "0000:01:00.1");
        assert_eq!(
            eal_device_name("net_pcap0,rx_pcap=/tmp/a:b.pcap"),
            "net_pcap0"
        );
    }

    #[test]
    fn only_pci_ports_go_on_the_eal_command_line() {
        let text = r#"
[dpdk]
eal_args = ["--no-huge"]
main_core = 0
[[ports]]
name = "nic0"
device = "01:00.0"
address = "192.0.2.1/24"
[[ports]]
name = "in0"
device = "net_null0"
address = "10.0.0.1/24"
[[workers]]
core = 1
rx = [{ port = "nic0" }, { port = "in0" }]
"#;
        let cfg = crate::config::parse(text, &crate::config::Host { cores: vec![0, 1] }).unwrap();
        assert_eq!(
            eal_args(&cfg),
            ["anygate", "-l", "0", "--no-huge", "-a", "01:00.0"]
        );
        assert_eq!(
            not_created(1, &cfg.ports[1], &probe_refusal(1)),
            "ports[1] (in0): device \"net_null0\" was not created by DPDK: the driver refused \
             its arguments (rte_dev_probe returned -1; see the EAL log above)"
        );
    }
}
