//! Ethernet ports: configuration, queues, start/stop, link, statistics.
//!
//! Ownership, enforced by the types:
//! - one `Port` per device: `configure` claims the port id until the device is closed;
//! - the port holds an `Arc` of the mempool its rx queues fill from, so the pool outlives it;
//! - each rx and tx queue handle is handed out once (`take_queues`), for a queue that exists,
//!   and holds an `Arc` of the port's state: the device is stopped and closed when the `Port`
//!   and every handle are gone, so never under a running burst;
//! - `Port` is not `Sync`: its control calls (stats, link, MAC) come from one thread at a time.
use super::mbuf::MbufArray;
use super::{Eal, Error, Mempool, Result};
use crate::wire::MacAddr;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Port ids a `Port` (or its queue handles) holds.
static CLAIMED: [AtomicBool; dpdk_sys::RTE_MAX_ETHPORTS as usize] =
    [const { AtomicBool::new(false) }; dpdk_sys::RTE_MAX_ETHPORTS as usize];

/// An exclusive claim on a port id, released on drop.
struct Claim(u16);

impl Claim {
    fn take(id: u16, name: &str) -> Result<Claim> {
        let slot = CLAIMED.get(id as usize).ok_or_else(|| Error {
            what: format!("{name}: port id {id} is out of range"),
            code: super::errno::EINVAL,
        })?;
        if slot.swap(true, Ordering::AcqRel) {
            return Err(Error {
                what: format!("{name}: port id {id} is already configured"),
                code: super::errno::EEXIST,
            });
        }
        Ok(Claim(id))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        CLAIMED[self.0 as usize].store(false, Ordering::Release);
    }
}

/// What anygate asks of a port.
#[derive(Debug, Clone)]
pub struct PortSettings {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub mtu: u16,
    pub mac: Option<MacAddr>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct LinkStatus {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

/// The offloads worth naming in the start-up log (rte_ethdev.h, DPDK 22.11: bindgen cannot
/// expand RTE_BIT64), whether or not anygate uses them: see docs/bare-metal.md.
const RX_OFFLOADS: &[(u64, &str)] = &[
    (1 << 1, "ipv4-cksum"),
    (1 << 2, "udp-cksum"),
    (1 << 3, "tcp-cksum"),
    (1 << 4, "tcp-lro"),
    (1 << 6, "outer-ipv4-cksum"),
    (1 << 13, "scatter"),
    (1 << 18, "outer-udp-cksum"),
    (1 << 19, "rss-hash"),
];
const TX_OFFLOADS: &[(u64, &str)] = &[
    (1 << 1, "ipv4-cksum"),
    (1 << 2, "udp-cksum"),
    (1 << 3, "tcp-cksum"),
    (1 << 5, "tcp-tso"),
    (1 << 7, "outer-ipv4-cksum"),
    (1 << 10, "gre-tnl-tso"),
    (1 << 11, "ipip-tnl-tso"),
    (1 << 15, "multi-segs"),
    (1 << 16, "mbuf-fast-free"),
];

/// "a, b" for the bits of `capa` the table names; "none" when it names none of them.
fn offload_names(capa: u64, table: &[(u64, &str)]) -> String {
    let names: Vec<&str> = table
        .iter()
        .filter(|(bit, _)| capa & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Finds a probed device by its EAL name: the PCI address or the vdev name (`net_pcap0`).
pub fn port_id_by_name(_eal: &Eal, name: &str) -> Result<u16> {
    let c = CString::new(name).unwrap_or_default();
    let mut id = 0u16;
    // SAFETY: the EAL is running; c is a valid C string and id a valid out-pointer.
    let rc = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    if rc != 0 {
        return Err(Error::new(
            format!("no DPDK port named `{name}` (was the device probed?)"),
            rc,
        ));
    }
    Ok(id)
}

/// A configured port. Stopped and closed when it and every queue handle it gave are dropped.
pub struct Port {
    inner: Arc<PortInner>,
    queues_taken: bool,
    /// Not `Sync`: DPDK's control calls on a port are not thread-safe.
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

/// What the port and its queue handles share. Immutable once shared: `started` changes only
/// through `Arc::get_mut`, that is while no queue handle exists.
struct PortInner {
    id: u16,
    name: String,
    rx_queues: u16,
    tx_queues: u16,
    started: bool,
    /// The configured MAC, when the device could not be given it.
    soft_mac: Option<MacAddr>,
    /// The pool the rx queues fill from. Dropped after the device is closed (fields drop after
    /// `drop`), which returns the mbufs the rings held.
    _pool: Arc<Mempool>,
    /// Dropped last: the port id is free again once the device is closed.
    _claim: Claim,
}

fn check(rc: i32, what: impl FnOnce() -> String) -> Result<()> {
    if rc < 0 {
        Err(Error::new(what(), rc))
    } else {
        Ok(())
    }
}

impl Port {
    /// Configures queues, RSS (when more than one rx queue), MTU and MAC; does not start.
    /// The rx queues fill from `pool`, which the port keeps.
    pub fn configure(id: u16, name: &str, s: &PortSettings, pool: &Arc<Mempool>) -> Result<Port> {
        let claim = Claim::take(id, name)?;
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: the EAL is running (the pool holds it); DPDK checks that id names a device
        // and returns ENODEV otherwise; info is a valid out-pointer.
        check(
            unsafe { dpdk_sys::rte_eth_dev_info_get(id, &mut info) },
            || format!("{name}: rte_eth_dev_info_get"),
        )?;
        if s.rx_queues > info.max_rx_queues || s.tx_queues > info.max_tx_queues {
            return Err(Error {
                what: format!(
                    "{name}: asks {} rx / {} tx queues, device has at most {} / {}",
                    s.rx_queues, s.tx_queues, info.max_rx_queues, info.max_tx_queues
                ),
                code: 22,
            });
        }
        let mut conf = dpdk_sys::rte_eth_conf::default();
        if s.rx_queues > 1 {
            conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            // SAFETY: pure function.
            let want = unsafe { dpdk_sys::ag_rss_hf_ip_l4() };
            conf.rx_adv_conf.rss_conf.rss_hf = want & info.flow_type_rss_offloads;
        }
        // SAFETY: id is a device (checked above) and ours alone (the claim), so nothing else
        // configures, starts or polls it: it is stopped; conf is fully initialised.
        check(
            unsafe { dpdk_sys::rte_eth_dev_configure(id, s.rx_queues, s.tx_queues, &conf) },
            || format!("{name}: rte_eth_dev_configure"),
        )?;
        let (mut nrx, mut ntx) = (s.rx_desc, s.tx_desc);
        // SAFETY: valid out-pointers.
        check(
            unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nrx, &mut ntx) },
            || format!("{name}: rte_eth_dev_adjust_nb_rx_tx_desc"),
        )?;
        // SAFETY: plain query; -1 (SOCKET_ID_ANY) for devices on no NUMA node (vdevs).
        let numa = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        let socket = numa.max(0) as u32;
        let driver = if info.driver_name.is_null() {
            "?".into()
        } else {
            // SAFETY: DPDK sets driver_name to the PMD's static NUL-terminated name.
            unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy()
        };
        // What an operator checks on real hardware first: driver, NUMA node, ring sizes as
        // the driver adjusted them, RSS, and the offloads offered (anygate enables none).
        log::info!(
            "{name}: driver {driver}, NUMA socket {}, {} rx queues x {nrx} descriptors, {} tx x {ntx}, RSS {}; offloads enabled: none; device offers rx [{}] tx [{}]",
            if numa < 0 { "any".to_owned() } else { numa.to_string() },
            s.rx_queues,
            s.tx_queues,
            match (s.rx_queues, conf.rx_adv_conf.rss_conf.rss_hf) {
                (1, _) => "off (one rx queue)".to_owned(),
                (_, 0) => "unavailable: the device hashes none of IPv4/TCP/UDP, queue 0 gets all".to_owned(),
                (_, hf) => format!("hf {hf:#x} (device offers {:#x})", info.flow_type_rss_offloads),
            },
            offload_names(info.rx_offload_capa, RX_OFFLOADS),
            offload_names(info.tx_offload_capa, TX_OFFLOADS),
        );
        for q in 0..s.rx_queues {
            // SAFETY: the port is configured with this many queues; the pool outlives the port
            // (the port holds an Arc of it); null rx_conf means defaults.
            check(
                unsafe {
                    dpdk_sys::rte_eth_rx_queue_setup(
                        id,
                        q,
                        nrx,
                        socket,
                        std::ptr::null(),
                        pool.as_ptr(),
                    )
                },
                || format!("{name}: rte_eth_rx_queue_setup(queue {q})"),
            )?;
        }
        for q in 0..s.tx_queues {
            // SAFETY: as above; null tx_conf means defaults.
            check(
                unsafe { dpdk_sys::rte_eth_tx_queue_setup(id, q, ntx, socket, std::ptr::null()) },
                || format!("{name}: rte_eth_tx_queue_setup(queue {q})"),
            )?;
        }
        // SAFETY: plain call on a configured port.
        let rc = unsafe { dpdk_sys::rte_eth_dev_set_mtu(id, s.mtu) };
        if rc == -95 {
            log::warn!(
                "{name}: device cannot set its MTU; anygate still enforces mtu = {}",
                s.mtu
            );
        } else {
            check(rc, || format!("{name}: rte_eth_dev_set_mtu({})", s.mtu))?;
        }
        let mut soft_mac = None;
        if let Some(mac) = s.mac {
            let mut a = dpdk_sys::rte_ether_addr { addr_bytes: mac.0 };
            // SAFETY: a is a valid address struct.
            let rc = unsafe { dpdk_sys::rte_eth_dev_default_mac_addr_set(id, &mut a) };
            if rc == -95 {
                // Virtual devices such as net_pcap cannot change their MAC. anygate checks and
                // writes MACs in software, so it keeps the configured one and listens
                // promiscuously to receive frames sent to it.
                log::warn!(
                    "{name}: device cannot take MAC {mac}; using it in software, promiscuous"
                );
                // SAFETY: plain call on a configured port; ENOTSUP is harmless here.
                unsafe { dpdk_sys::rte_eth_promiscuous_enable(id) };
                soft_mac = Some(mac);
            } else {
                check(rc, || format!("{name}: setting MAC {mac}"))?;
            }
        }
        Ok(Port {
            inner: Arc::new(PortInner {
                id,
                name: name.to_owned(),
                rx_queues: s.rx_queues,
                tx_queues: s.tx_queues,
                started: false,
                soft_mac,
                _pool: pool.clone(),
                _claim: claim,
            }),
            queues_taken: false,
            _not_sync: PhantomData,
        })
    }

    pub fn id(&self) -> u16 {
        self.inner.id
    }
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Starts the port. Refused while queue handles exist: starting swaps the burst functions
    /// their bursts call.
    pub fn start(&mut self) -> Result<()> {
        let Some(inner) = Arc::get_mut(&mut self.inner) else {
            return Err(Error {
                what: format!("{}: cannot start while its queues are in use", self.name()),
                code: super::errno::EBUSY,
            });
        };
        // SAFETY: configured port with queues set up; no queue handle exists, so no burst
        // runs on it.
        check(unsafe { dpdk_sys::rte_eth_dev_start(inner.id) }, || {
            format!("{}: rte_eth_dev_start", inner.name)
        })?;
        inner.started = true;
        Ok(())
    }

    /// Every rx and every tx queue of the port, each handle the only one for its queue;
    /// `None` after the first call. The device stays open while any handle lives.
    pub fn take_queues(&mut self) -> Option<(Vec<RxQueue>, Vec<TxQueue>)> {
        if std::mem::replace(&mut self.queues_taken, true) {
            return None;
        }
        let queue = |queue| Queue {
            port: self.inner.id,
            queue,
            _port: self.inner.clone(),
        };
        let rx = (0..self.inner.rx_queues)
            .map(|q| RxQueue(queue(q)))
            .collect();
        let tx = (0..self.inner.tx_queues)
            .map(|q| TxQueue(queue(q)))
            .collect();
        Some((rx, tx))
    }

    /// The port's MAC: the device's, or the configured one it could not take.
    pub fn mac(&self) -> MacAddr {
        if let Some(m) = self.inner.soft_mac {
            return m;
        }
        let mut a = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid out-pointer.
        unsafe { dpdk_sys::rte_eth_macaddr_get(self.id(), &mut a) };
        MacAddr(a.addr_bytes)
    }

    pub fn link(&self) -> LinkStatus {
        let mut l = dpdk_sys::rte_eth_link::default();
        // SAFETY: valid out-pointer; the nowait variant never blocks.
        unsafe { dpdk_sys::rte_eth_link_get_nowait(self.id(), &mut l) };
        LinkStatus {
            up: l.link_status() != 0,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() != 0,
        }
    }

    pub fn stats(&self) -> PortStats {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: valid out-pointer.
        unsafe { dpdk_sys::rte_eth_stats_get(self.id(), &mut s) };
        PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }

    /// The driver's extended statistics, by name.
    pub fn xstats(&self) -> Vec<(String, u64)> {
        // SAFETY: a null array asks for the count only.
        let n = unsafe { dpdk_sys::rte_eth_xstats_get_names(self.id(), std::ptr::null_mut(), 0) };
        if n <= 0 {
            return Vec::new();
        }
        let mut names = vec![dpdk_sys::rte_eth_xstat_name::default(); n as usize];
        let mut vals = vec![dpdk_sys::rte_eth_xstat::default(); n as usize];
        // SAFETY: both arrays have room for n entries.
        let got_n =
            unsafe { dpdk_sys::rte_eth_xstats_get_names(self.id(), names.as_mut_ptr(), n as u32) };
        // SAFETY: as above.
        let got_v = unsafe { dpdk_sys::rte_eth_xstats_get(self.id(), vals.as_mut_ptr(), n as u32) };
        let k = got_n.min(got_v).max(0) as usize;
        vals[..k]
            .iter()
            .filter_map(|v| {
                let name = names.get(v.id as usize)?;
                // SAFETY: DPDK NUL-terminates every name within its fixed-size array.
                let s = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                Some((s.to_string_lossy().into_owned(), v.value))
            })
            .collect()
    }
}

impl Drop for PortInner {
    /// Runs when the `Port` and every queue handle are gone: no burst can be running.
    fn drop(&mut self) {
        if self.started {
            // SAFETY: started port that nothing polls any more (see above); for pcap vdevs
            // stopping flushes the output file.
            let rc = unsafe { dpdk_sys::rte_eth_dev_stop(self.id) };
            if rc < 0 {
                log::warn!(
                    "{}",
                    Error::new(format!("{}: rte_eth_dev_stop", self.name), rc)
                );
            }
        }
        // SAFETY: stopped port nothing uses; closing releases its queues and returns the mbufs
        // they held to the pool, which is still alive (a field, dropped after this).
        unsafe { dpdk_sys::rte_eth_dev_close(self.id) };
    }
}

/// A queue of a port, the only handle for it (see [`Port::take_queues`]).
struct Queue {
    port: u16,
    queue: u16,
    /// Keeps the device open (and its pool alive) while the handle lives.
    _port: Arc<PortInner>,
}

/// One rx queue of a port, the only handle for it (see [`Port::take_queues`]). Sending it to
/// another thread moves the queue there; `rx` takes `&mut self`, so one burst at a time.
pub struct RxQueue(Queue);

impl RxQueue {
    /// Receives up to N packets into an empty array (what it holds is freed first).
    #[inline]
    pub fn rx<const N: usize>(&mut self, into: &mut MbufArray<N>) -> usize {
        // SAFETY: this handle is the only one for (port, queue), which exists (take_queues
        // made handles for the configured queues only) and stays set up while the handle
        // holds the port open; &mut self makes this the only burst on it.
        unsafe { into.rx_from(self.0.port, self.0.queue) }
    }
}

/// One tx queue of a port, the only handle for it (see [`Port::take_queues`]).
pub struct TxQueue(Queue);

impl TxQueue {
    /// Transmits everything in `from`, freeing what the NIC refused. Returns (sent, bytes).
    #[inline]
    pub fn tx<const N: usize>(&mut self, from: &mut MbufArray<N>) -> (usize, u64) {
        // SAFETY: as in RxQueue::rx.
        unsafe { from.tx_to(self.0.port, self.0.queue) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offloads_are_named_from_the_capability_bits() {
        assert_eq!(offload_names(0, RX_OFFLOADS), "none");
        assert_eq!(offload_names(1 << 9, RX_OFFLOADS), "none");
        assert_eq!(
            offload_names((1 << 1) | (1 << 3) | (1 << 19), RX_OFFLOADS),
            "ipv4-cksum, tcp-cksum, rss-hash"
        );
        assert_eq!(
            offload_names((1 << 7) | (1 << 16), TX_OFFLOADS),
            "outer-ipv4-cksum, mbuf-fast-free"
        );
    }
}
