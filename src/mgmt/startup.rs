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
/// port and one `--vdev` per virtual one.
pub fn eal_args(cfg: &Config) -> Vec<String> {
    let mut a = vec![
        "anygate".to_owned(),
        "-l".to_owned(),
        cfg.dpdk.main_core.to_string(),
    ];
    a.extend(cfg.dpdk.eal_args.iter().cloned());
    for p in &cfg.ports {
        a.push(if is_pci(&p.device) { "-a" } else { "--vdev" }.to_owned());
        a.push(p.device.clone());
    }
    a
}

pub struct Dataplane {
    /// Ports in config order. Declared before the pool: ports close first on drop.
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
    let eal = Eal::init(&args).map_err(|e| e.to_string())?;
    let pool = Mempool::new(
        "anygate_pkt",
        cfg.dpdk.mempool_size,
        cfg.dpdk.mempool_cache,
        eal.socket_id(),
    )
    .map_err(|e| format!("dpdk.mempool_size: {e}"))?;
    let pool = std::sync::Arc::new(pool);
    let mut ports = Vec::new();
    for (i, p) in cfg.ports.iter().enumerate() {
        let id = dpdk::port_id_by_name(&eal_device_name(&p.device))
            .map_err(|e| format!("ports[{i}].device: {e}"))?;
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
    Ok(Dataplane { ports, pool, eal })
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
}
