//! Ethernet ports: configuration, queues, start/stop, link, statistics.
use super::mbuf::MbufArray;
use super::{Error, Mempool, Result};
use crate::wire::MacAddr;
use std::ffi::{CStr, CString};

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

/// Finds a probed device by its EAL name: the PCI address or the vdev name (`net_pcap0`).
pub fn port_id_by_name(name: &str) -> Result<u16> {
    let c = CString::new(name).unwrap_or_default();
    let mut id = 0u16;
    // SAFETY: c is a valid C string and id a valid out-pointer.
    let rc = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    if rc != 0 {
        return Err(Error::new(
            format!("no DPDK port named `{name}` (was the device probed?)"),
            rc,
        ));
    }
    Ok(id)
}

/// A configured port. Stopped and closed on drop.
pub struct Port {
    id: u16,
    name: String,
    started: bool,
    /// The configured MAC, when the device could not be given it.
    soft_mac: Option<MacAddr>,
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
    pub fn configure(id: u16, name: &str, s: &PortSettings, pool: &Mempool) -> Result<Port> {
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: id names a probed port; info is a valid out-pointer.
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
        // SAFETY: id is a probed, stopped port; conf is fully initialised.
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
        // SAFETY: plain query.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) }.max(0) as u32;
        for q in 0..s.rx_queues {
            // SAFETY: the port is configured with this many queues; the pool outlives the port
            // (the caller closes ports before dropping the pool); null rx_conf means defaults.
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
            id,
            name: name.to_owned(),
            started: false,
            soft_mac,
        })
    }

    pub fn id(&self) -> u16 {
        self.id
    }
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn start(&mut self) -> Result<()> {
        // SAFETY: configured port with queues set up.
        check(unsafe { dpdk_sys::rte_eth_dev_start(self.id) }, || {
            format!("{}: rte_eth_dev_start", self.name)
        })?;
        self.started = true;
        Ok(())
    }

    /// Stops the port; for pcap vdevs this flushes the output file.
    pub fn stop(&mut self) {
        if self.started {
            // SAFETY: started port; no worker polls it any more (workers are joined first).
            let rc = unsafe { dpdk_sys::rte_eth_dev_stop(self.id) };
            if rc < 0 {
                log::warn!(
                    "{}",
                    Error::new(format!("{}: rte_eth_dev_stop", self.name), rc)
                );
            }
            self.started = false;
        }
    }

    /// The port's MAC: the device's, or the configured one it could not take.
    pub fn mac(&self) -> MacAddr {
        if let Some(m) = self.soft_mac {
            return m;
        }
        let mut a = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid out-pointer.
        unsafe { dpdk_sys::rte_eth_macaddr_get(self.id, &mut a) };
        MacAddr(a.addr_bytes)
    }

    pub fn link(&self) -> LinkStatus {
        let mut l = dpdk_sys::rte_eth_link::default();
        // SAFETY: valid out-pointer; the nowait variant never blocks.
        unsafe { dpdk_sys::rte_eth_link_get_nowait(self.id, &mut l) };
        LinkStatus {
            up: l.link_status() != 0,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() != 0,
        }
    }

    pub fn stats(&self) -> PortStats {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: valid out-pointer.
        unsafe { dpdk_sys::rte_eth_stats_get(self.id, &mut s) };
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
        let n = unsafe { dpdk_sys::rte_eth_xstats_get_names(self.id, std::ptr::null_mut(), 0) };
        if n <= 0 {
            return Vec::new();
        }
        let mut names = vec![dpdk_sys::rte_eth_xstat_name::default(); n as usize];
        let mut vals = vec![dpdk_sys::rte_eth_xstat::default(); n as usize];
        // SAFETY: both arrays have room for n entries.
        let got_n =
            unsafe { dpdk_sys::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), n as u32) };
        // SAFETY: as above.
        let got_v = unsafe { dpdk_sys::rte_eth_xstats_get(self.id, vals.as_mut_ptr(), n as u32) };
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

    pub fn rx_queue(&self, queue: u16) -> RxQueue {
        RxQueue {
            port: self.id,
            queue,
        }
    }
    pub fn tx_queue(&self, queue: u16) -> TxQueue {
        TxQueue {
            port: self.id,
            queue,
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.stop();
        // SAFETY: stopped port; closing releases its queues and the mbufs they held.
        unsafe { dpdk_sys::rte_eth_dev_close(self.id) };
    }
}

/// One rx queue; owned by exactly one worker.
pub struct RxQueue {
    port: u16,
    queue: u16,
}

impl RxQueue {
    /// Receives up to N packets into an empty array.
    #[inline]
    pub fn rx<const N: usize>(&mut self, into: &mut MbufArray<N>) -> usize {
        into.rx_from(self.port, self.queue)
    }
}

/// One tx queue; owned by exactly one worker.
pub struct TxQueue {
    port: u16,
    queue: u16,
}

impl TxQueue {
    /// Transmits everything in `from`, freeing what the NIC refused. Returns (sent, bytes).
    #[inline]
    pub fn tx<const N: usize>(&mut self, from: &mut MbufArray<N>) -> (usize, u64) {
        from.tx_to(self.port, self.queue)
    }
}
