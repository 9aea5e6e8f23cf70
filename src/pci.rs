//! What `check` can say about PCI ports without starting DPDK, from sysfs: whether the device
//! exists on this machine, which driver holds it, and whether the workers polling it sit on
//! its NUMA node. Notes, never refusals: a config is often checked on another machine than
//! the server it is for (the package's example is checked on the build host).
use crate::config::is_pci;
use crate::config::Config;
use crate::mgmt::startup::eal_device_name;
use std::path::Path;

/// Drivers DPDK drives a PCI port through; mlx4/5 keep their kernel driver (bifurcated).
const DPDK_DRIVERS: &[&str] = &[
    "vfio-pci",
    "uio_pci_generic",
    "igb_uio",
    "mlx5_core",
    "mlx4_core",
];

/// One line per finding, `ports[i].device: ...` or `workers[j]: ...`. `sysfs`: normally
/// `/sys`.
pub fn notes(cfg: &Config, sysfs: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (i, p) in cfg.ports.iter().enumerate() {
        if !is_pci(&p.device) {
            continue;
        }
        let addr = eal_device_name(&p.device);
        let dev = sysfs.join("bus/pci/devices").join(&addr);
        if !dev.exists() {
            out.push(format!(
                "ports[{i}].device: no PCI device {addr} on this machine ({} is missing); `run` \
                 refuses it here: check on the server itself, see `lspci -D` or `dpdk-devbind.py --status`",
                dev.display()
            ));
            continue;
        }
        let driver = std::fs::read_link(dev.join("driver"))
            .ok()
            .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()));
        match driver.as_deref() {
            None => out.push(format!(
                "ports[{i}].device: {addr} has no driver; bind it: dpdk-devbind.py -b vfio-pci {addr}"
            )),
            Some(d) if !DPDK_DRIVERS.contains(&d) => out.push(format!(
                "ports[{i}].device: {addr} is held by the kernel driver {d}; DPDK cannot use it \
                 until it is bound to vfio-pci: dpdk-devbind.py -b vfio-pci {addr}"
            )),
            Some(d) => out.push(format!("ports[{i}].device: {addr} is bound to {d}")),
        }
        let Some(node) = read_node(&dev.join("numa_node")) else {
            continue;
        };
        for (wi, w) in cfg.workers.iter().enumerate() {
            let polls = w.rx.iter().any(|&(port, _)| port as usize == i);
            match core_node(sysfs, w.core) {
                Some(c) if polls && c != node => out.push(format!(
                    "workers[{wi}]: core {} is on NUMA node {c}, ports[{i}] ({addr}) on node {node}: \
                     every packet it polls crosses the interconnect; pick a core of node {node}",
                    w.core
                )),
                _ => {}
            }
        }
    }
    out
}

/// A device's `numa_node`; None when the machine has one node (-1) or it cannot be read.
fn read_node(path: &Path) -> Option<u32> {
    let n: i32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    u32::try_from(n).ok()
}

/// The node of `core`: the `nodeN` entry in its sysfs directory.
fn core_node(sysfs: &Path, core: usize) -> Option<u32> {
    let dir = sysfs.join(format!("devices/system/cpu/cpu{core}"));
    std::fs::read_dir(dir).ok()?.find_map(|e| {
        let name = e.ok()?.file_name();
        name.to_str()?.strip_prefix("node")?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Host};

    const CFG: &str = r#"
[[ports]]
name = "a"
device = "0000:3b:00.0"
address = "192.0.2.1/24"
tx_queues = 2
[[ports]]
name = "b"
device = "3b:00.1"
address = "10.0.0.1/24"
tx_queues = 2
[[ports]]
name = "c"
device = "0000:af:00.0"
address = "10.1.0.1/24"
tx_queues = 2
[[ports]]
name = "v"
device = "net_null0"
address = "10.2.0.1/24"
tx_queues = 2
[[workers]]
core = 1
rx = [{ port = "a" }, { port = "b" }, { port = "v" }]
[[workers]]
core = 9
rx = [{ port = "c" }]
"#;

    fn fake_sysfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let s = d.path();
        let pci = s.join("bus/pci/devices");
        let drivers = s.join("bus/pci/drivers");
        for (addr, driver, node) in [
            ("0000:3b:00.0", Some("vfio-pci"), "0"),
            ("0000:3b:00.1", Some("ice"), "1"),
        ] {
            std::fs::create_dir_all(pci.join(addr)).unwrap();
            std::fs::write(pci.join(addr).join("numa_node"), format!("{node}\n")).unwrap();
            if let Some(drv) = driver {
                std::fs::create_dir_all(drivers.join(drv)).unwrap();
                std::os::unix::fs::symlink(drivers.join(drv), pci.join(addr).join("driver"))
                    .unwrap();
            }
        }
        for (core, node) in [(1, 0), (9, 1)] {
            let c = s.join(format!("devices/system/cpu/cpu{core}/node{node}"));
            std::fs::create_dir_all(c).unwrap();
        }
        d
    }

    #[test]
    fn missing_devices_kernel_drivers_and_far_workers_are_named() {
        let cfg = parse(
            CFG,
            &Host {
                cores: vec![0, 1, 9],
            },
        )
        .unwrap();
        let s = fake_sysfs();
        let notes = notes(&cfg, s.path());
        let root = s.path().display();
        assert_eq!(
            notes,
            [
                "ports[0].device: 0000:3b:00.0 is bound to vfio-pci".to_owned(),
                "ports[1].device: 0000:3b:00.1 is held by the kernel driver ice; DPDK cannot use it until it is bound to vfio-pci: dpdk-devbind.py -b vfio-pci 0000:3b:00.1".to_owned(),
                "workers[0]: core 1 is on NUMA node 0, ports[1] (0000:3b:00.1) on node 1: every packet it polls crosses the interconnect; pick a core of node 1".to_owned(),
                format!("ports[2].device: no PCI device 0000:af:00.0 on this machine ({root}/bus/pci/devices/0000:af:00.0 is missing); `run` refuses it here: check on the server itself, see `lspci -D` or `dpdk-devbind.py --status`"),
            ]
        );
    }
}
