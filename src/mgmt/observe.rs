//! What the management thread keeps for the live views and the event log: when the process
//! and its config started, the `clear counters` baseline, and the link and neighbour states
//! last seen, polled once a second so that changes are logged (one INFO line each). ARP
//! entries are aged here too (`route::arp_cache::ageing`); the workers never log.
use super::stats::live::{self, Baseline, Live};
use crate::config::Config;
use crate::datapath::SharedCounters;
use crate::dpdk::{LinkStatus, Mempool, Port};
use crate::route::arp_cache::ageing::Event;
use crate::route::{ArpCache, Snapshot};
use crate::wire::MacAddr;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

pub struct Observe {
    started: Instant,
    pub started_at: SystemTime,
    /// When the running config file was last read (at start, by a reload).
    pub config_loaded: SystemTime,
    pub baseline: Option<Baseline>,
    /// The NIC counters at the last `clear counters`, by port.
    pub nic_base: Vec<crate::dpdk::PortStats>,
    pub pool: Option<Arc<Mempool>>,
    links: Vec<Option<LinkStatus>>,
    /// Neighbours as last logged, to log what was learned or changed since.
    known: HashMap<(u16, u32), MacAddr>,
    last_second: u32,
}

impl Observe {
    pub fn new(pool: Option<Arc<Mempool>>) -> Observe {
        Observe {
            started: Instant::now(),
            started_at: SystemTime::now(),
            config_loaded: SystemTime::now(),
            baseline: None,
            nic_base: Vec::new(),
            pool,
            links: Vec::new(),
            known: HashMap::new(),
            last_second: 0,
        }
    }

    pub fn uptime_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The ARP clock: whole seconds since start, from 1.
    fn clock(&self) -> u32 {
        self.started.elapsed().as_secs() as u32 + 1
    }

    /// Counters since the last `clear counters`.
    pub fn live(&self, cfg: &Config, snap: &Snapshot, shared: &SharedCounters) -> Live {
        live::read(cfg, snap, shared, self.baseline.as_ref())
    }

    /// Called every management tick; does its work once a second.
    pub fn tick(&mut self, cfg: &Config, snap: &Snapshot, ports: &[Port]) {
        let now = self.clock();
        if now == self.last_second {
            return;
        }
        self.last_second = now;
        self.arp(cfg, &snap.arp, now);
        self.links(cfg, ports.iter().map(Port::link));
    }

    /// Ages the ARP cache at `now` and logs what was learned, changed and expired.
    pub fn arp(&mut self, cfg: &Config, arp: &ArpCache, now: u32) {
        arp.set_clock(now);
        let port = |p: u16| cfg.ports.get(p as usize).map_or("?", |p| p.name.as_str());
        arp.sweep(now, |e| match e {
            Event::Expired {
                port: p,
                ip,
                mac,
                age_s,
            } => {
                log::info!(
                    "arp: {} ({mac}) on port {} expired: not confirmed for {age_s} s",
                    Ipv4Addr::from(ip),
                    port(p)
                );
            }
            Event::Refresh { port: p, ip } => log::debug!(
                "arp: re-resolving {} on port {}, in use and about to expire",
                Ipv4Addr::from(ip),
                port(p)
            ),
        });
        let mut seen = HashMap::with_capacity(self.known.len());
        for n in arp.neighbors(now) {
            let Some(mac) = n.mac else { continue };
            let ip = Ipv4Addr::from(n.ip);
            match self.known.get(&(n.port, n.ip)) {
                None => log::info!("arp: learned {ip} at {mac} on port {}", port(n.port)),
                Some(old) if *old != mac => log::info!(
                    "arp: {ip} on port {} moved from {old} to {mac}",
                    port(n.port)
                ),
                Some(_) => {}
            }
            seen.insert((n.port, n.ip), mac);
        }
        self.known = seen;
    }

    /// Logs each port whose link went up or down since the last poll.
    pub fn links(&mut self, cfg: &Config, now: impl Iterator<Item = LinkStatus>) {
        for (i, l) in now.enumerate() {
            if self.links.len() <= i {
                self.links.resize(i + 1, None);
            }
            let name = cfg.ports.get(i).map_or("?", |p| p.name.as_str());
            match self.links[i] {
                Some(old) if old.up == l.up => {}
                None if l.up => log::info!("link: port {name} is up, {}", speed(&l)),
                None => log::info!("link: port {name} is down"),
                Some(_) if l.up => log::info!("link: port {name} came up, {}", speed(&l)),
                Some(_) => log::info!("link: port {name} went down"),
            }
            self.links[i] = Some(l);
        }
    }
}

/// "10000 Mbps full duplex".
pub fn speed(l: &LinkStatus) -> String {
    format!(
        "{} Mbps {} duplex",
        l.speed_mbps,
        if l.full_duplex { "full" } else { "half" }
    )
}
