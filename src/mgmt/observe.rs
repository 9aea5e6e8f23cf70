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
    /// Per-tunnel rates over the last minutes (`show tunnels --history`).
    pub history: super::history::History,
    /// When `history` last sampled.
    last_sample: Option<Instant>,
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
            history: Default::default(),
            last_sample: None,
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
    pub fn tick(&mut self, cfg: &Config, snap: &Snapshot, ports: &[Port], shared: &SharedCounters) {
        let now = self.clock();
        if now == self.last_second {
            return;
        }
        self.last_second = now;
        self.arp(cfg, &snap.arp, now);
        self.links(cfg, ports.iter().map(Port::link));
        self.sample_history(snap, shared);
    }

    /// Each tunnel's raw counters (not since `clear counters`, which would look like a
    /// reset) into its history ring, with the time since the last sample.
    fn sample_history(&mut self, snap: &Snapshot, shared: &SharedCounters) {
        let at = Instant::now();
        let dt_ms = self
            .last_sample
            .replace(at)
            .map_or(1000, |l| at.duration_since(l).as_millis() as u32);
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        let c = snap.counters(shared);
        let tunnels = snap.tunnels.iter().zip(&c.tunnels);
        self.history.sample(
            t,
            dt_ms,
            tunnels.map(|(t, tc)| (t.name.as_str(), tc.into())),
        );
    }

    /// Ages the ARP cache at `now` and logs what was learned, changed and expired.
    pub fn arp(&mut self, cfg: &Config, arp: &ArpCache, now: u32) {
        for line in self.arp_events(cfg, arp, now) {
            log::info!("{line}");
        }
    }

    /// The event log lines of one ARP sweep.
    fn arp_events(&mut self, cfg: &Config, arp: &ArpCache, now: u32) -> Vec<String> {
        let mut out = Vec::new();
        arp.set_clock(now);
        let port = |p: u16| cfg.ports.get(p as usize).map_or("?", |p| p.name.as_str());
        arp.sweep(now, |e| match e {
            Event::Expired {
                port: p,
                ip,
                mac,
                age_s,
            } => out.push(format!(
                "arp: {} ({mac}) on port {} expired: not confirmed for {age_s} s",
                Ipv4Addr::from(ip),
                port(p)
            )),
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
                None => out.push(format!(
                    "arp: learned {ip} at {mac} on port {}",
                    port(n.port)
                )),
                Some(old) if *old != mac => out.push(format!(
                    "arp: {ip} on port {} moved from {old} to {mac}",
                    port(n.port)
                )),
                Some(_) => {}
            }
            seen.insert((n.port, n.ip), mac);
        }
        self.known = seen;
        out
    }

    /// Logs each port whose link went up or down since the last poll.
    pub fn links(&mut self, cfg: &Config, now: impl Iterator<Item = LinkStatus>) {
        for line in self.link_events(cfg, now) {
            log::info!("{line}");
        }
    }

    fn link_events(&mut self, cfg: &Config, now: impl Iterator<Item = LinkStatus>) -> Vec<String> {
        let mut out = Vec::new();
        for (i, l) in now.enumerate() {
            if self.links.len() <= i {
                self.links.resize(i + 1, None);
            }
            // The punt path's exception port follows the configured ones.
            let name = match cfg.ports.get(i) {
                Some(p) => p.name.clone(),
                None if cfg.punt.enabled && i == cfg.ports.len() => {
                    format!("{} (punt exception port)", cfg.punt.interface)
                }
                None => format!("#{i}"),
            };
            match self.links[i] {
                Some(old) if old.up == l.up => {}
                None if l.up => out.push(format!("link: port {name} is up, {}", speed(&l))),
                None => out.push(format!("link: port {name} is down")),
                Some(_) if l.up => out.push(format!("link: port {name} came up, {}", speed(&l))),
                Some(_) => out.push(format!("link: port {name} went down")),
            }
            self.links[i] = Some(l);
        }
        out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Host};
    use crate::route::arp_cache::ageing::REACHABLE_S;

    const CFG: &str = r#"
[[ports]]
name = "wan0"
device = "net_null0"
mac = "02:00:00:00:00:01"
address = "192.0.2.1/24"

[[workers]]
core = 1
rx = [{ port = "wan0" }]

[node]
anycast_addresses = ["203.0.113.10"]
"#;

    fn cfg() -> Config {
        parse(CFG, &Host { cores: vec![0, 1] }).unwrap()
    }

    #[test]
    fn link_changes_are_logged_once_each() {
        let cfg = cfg();
        let mut o = Observe::new(None);
        let up = LinkStatus {
            up: true,
            speed_mbps: 25_000,
            full_duplex: true,
        };
        let down = LinkStatus::default();
        let mut poll = |l: LinkStatus| o.link_events(&cfg, [l].into_iter());
        assert_eq!(poll(up), ["link: port wan0 is up, 25000 Mbps full duplex"]);
        assert!(poll(up).is_empty());
        assert_eq!(poll(down), ["link: port wan0 went down"]);
        assert!(poll(down).is_empty());
        assert_eq!(
            poll(up),
            ["link: port wan0 came up, 25000 Mbps full duplex"]
        );
    }

    /// The punt path's exception port comes after the configured ports: named, not "?".
    #[test]
    fn the_punt_exception_port_is_named_in_link_events() {
        let cfg = parse(
            &format!("{CFG}\n[punt]\nenabled = true\ninterface = \"ag-punt\"\n"),
            &Host { cores: vec![0, 1] },
        )
        .unwrap();
        let mut o = Observe::new(None);
        let up = LinkStatus {
            up: true,
            speed_mbps: 10_000,
            full_duplex: true,
        };
        assert_eq!(
            o.link_events(&cfg, [up, up].into_iter()),
            [
                "link: port wan0 is up, 10000 Mbps full duplex",
                "link: port ag-punt (punt exception port) is up, 10000 Mbps full duplex"
            ]
        );
    }

    #[test]
    fn arp_learned_moved_and_expired_are_logged_under_virtual_time() {
        let cfg = cfg();
        let mut o = Observe::new(None);
        let arp = ArpCache::with_subnets(vec![], &[(0xc000_0201, 24)]);
        let (a, b) = (MacAddr([2, 0, 0, 0, 0, 0xa]), MacAddr([2, 0, 0, 0, 0, 0xb]));
        arp.set_clock(1);
        arp.set_host(0, 0xc000_0205, a);
        assert_eq!(
            o.arp_events(&cfg, &arp, 2),
            ["arp: learned 192.0.2.5 at 02:00:00:00:00:0a on port wan0"]
        );
        assert!(o.arp_events(&cfg, &arp, 3).is_empty());
        arp.set_host(0, 0xc000_0205, b);
        assert_eq!(
            o.arp_events(&cfg, &arp, 4),
            ["arp: 192.0.2.5 on port wan0 moved from 02:00:00:00:00:0a to 02:00:00:00:00:0b"]
        );
        for t in 5..3 + REACHABLE_S {
            assert!(o.arp_events(&cfg, &arp, t).is_empty(), "at {t}");
        }
        assert_eq!(
            o.arp_events(&cfg, &arp, 3 + REACHABLE_S),
            ["arp: 192.0.2.5 (02:00:00:00:00:0b) on port wan0 expired: not confirmed for 300 s"]
        );
        // Learned again after it expired: logged as new.
        arp.set_host(0, 0xc000_0205, b);
        assert_eq!(
            o.arp_events(&cfg, &arp, 4 + REACHABLE_S),
            ["arp: learned 192.0.2.5 at 02:00:00:00:00:0b on port wan0"]
        );
    }
}
