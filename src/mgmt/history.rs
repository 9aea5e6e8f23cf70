//! Per-tunnel traffic over time for `ctl show tunnels --history`: once a second the
//! management thread reads each tunnel's rx/tx packets and bytes (summed over the workers)
//! and keeps what they grew by in a fixed ring per tunnel, keyed by name so that a reload
//! keeps a tunnel's history. Nothing here touches the workers beyond the seqlock reads.
//!
//! Memory: [`SECONDS`] samples of [`Sample`] (40 bytes) per tunnel, 12,000 bytes, allocated
//! when the tunnel first appears and freed when a reload removes it.
use crate::datapath::TunnelCounters;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// How far back the history goes, in one-second samples.
pub const SECONDS: usize = 300;

/// What one tunnel's counters grew by between two readings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Unix seconds of the reading that ended it.
    pub t: u32,
    /// Milliseconds it covers (about 1,000; more when the management thread was late).
    pub dt_ms: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// The four cumulative counters a reading takes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

impl From<&TunnelCounters> for Reading {
    fn from(c: &TunnelCounters) -> Reading {
        Reading {
            rx_packets: c.rx_packets,
            tx_packets: c.tx_packets,
            rx_bytes: c.rx_bytes,
            tx_bytes: c.tx_bytes,
        }
    }
}

/// Growth from `prev` to `cur`. A counter that went back was reset (a tunnel's counters
/// restart when a reload re-creates it): what it counted since is `cur`, never a negative.
fn grew(prev: u64, cur: u64) -> u64 {
    if cur >= prev {
        cur - prev
    } else {
        cur
    }
}

/// One tunnel's last [`SECONDS`] samples, oldest overwritten first.
pub struct Ring {
    samples: Box<[Sample]>,
    /// Where the next sample goes.
    next: usize,
    len: usize,
    last: Option<Reading>,
}

impl Default for Ring {
    fn default() -> Ring {
        Ring {
            samples: vec![Sample::default(); SECONDS].into_boxed_slice(),
            next: 0,
            len: 0,
            last: None,
        }
    }
}

impl Ring {
    /// Records a reading taken at unix second `t`, `dt_ms` after the previous one. The first
    /// reading only sets the starting point.
    pub fn record(&mut self, t: u32, dt_ms: u32, cur: Reading) {
        if let Some(prev) = self.last.replace(cur) {
            self.samples[self.next] = Sample {
                t,
                dt_ms: dt_ms.max(1),
                rx_packets: grew(prev.rx_packets, cur.rx_packets),
                tx_packets: grew(prev.tx_packets, cur.tx_packets),
                rx_bytes: grew(prev.rx_bytes, cur.rx_bytes),
                tx_bytes: grew(prev.tx_bytes, cur.tx_bytes),
            };
            self.next = (self.next + 1) % self.samples.len();
            self.len = (self.len + 1).min(self.samples.len());
        }
    }

    /// The samples held, oldest first.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        let n = self.samples.len();
        (0..self.len).map(move |i| &self.samples[(self.next + n - self.len + i) % n])
    }

    /// Per-second rates as `show tunnels --history --json` gives them.
    pub fn to_json(&self, name: &str) -> Value {
        let rate = |n: u64, s: &Sample| (n as f64 * 1000.0 / s.dt_ms as f64 * 10.0).round() / 10.0;
        let col = |f: &dyn Fn(&Sample) -> f64| self.samples().map(f).collect::<Vec<f64>>();
        json!({
            "name": name,
            "interval_s": 1,
            "t": self.samples().map(|s| s.t).collect::<Vec<u32>>(),
            "rx_pps": col(&|s| rate(s.rx_packets, s)),
            "tx_pps": col(&|s| rate(s.tx_packets, s)),
            "rx_bps": col(&|s| rate(s.rx_bytes * 8, s)),
            "tx_bps": col(&|s| rate(s.tx_bytes * 8, s)),
        })
    }
}

/// The rings of the configured tunnels, by name.
#[derive(Default)]
pub struct History {
    rings: HashMap<String, Ring>,
}

impl History {
    /// One reading of every configured tunnel (`now` in unix seconds). Rings of tunnels no
    /// longer configured are dropped, so memory follows the config.
    pub fn sample<'a>(
        &mut self,
        t: u32,
        dt_ms: u32,
        tunnels: impl Iterator<Item = (&'a str, Reading)>,
    ) {
        let mut seen = HashSet::new();
        for (name, r) in tunnels {
            match self.rings.get_mut(name) {
                Some(ring) => ring.record(t, dt_ms, r),
                None => {
                    let mut ring = Ring::default();
                    ring.record(t, dt_ms, r);
                    self.rings.insert(name.to_owned(), ring);
                }
            }
            seen.insert(name);
        }
        // Every name seen has a ring: more rings than names means some were removed.
        if self.rings.len() > seen.len() {
            self.rings.retain(|n, _| seen.contains(n.as_str()));
        }
    }

    pub fn get(&self, name: &str) -> Option<&Ring> {
        self.rings.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(rx: u64, tx: u64) -> Reading {
        Reading {
            rx_packets: rx,
            tx_packets: tx,
            rx_bytes: rx * 100,
            tx_bytes: tx * 100,
        }
    }

    #[test]
    fn rates_are_counter_deltas_per_second() {
        let mut r = Ring::default();
        r.record(1000, 1000, reading(5, 0));
        assert_eq!(
            r.samples().count(),
            0,
            "the first reading is the starting point"
        );
        r.record(1001, 1000, reading(15, 3));
        r.record(1002, 2000, reading(35, 3));
        let j = r.to_json("T1");
        assert_eq!(j["t"], json!([1001, 1002]));
        assert_eq!(j["rx_pps"], json!([10.0, 10.0]), "20 packets over 2 s");
        assert_eq!(j["tx_pps"], json!([3.0, 0.0]));
        assert_eq!(j["rx_bps"], json!([8000.0, 8000.0]));
        assert_eq!(j["tx_bps"], json!([2400.0, 0.0]));
    }

    #[test]
    fn the_ring_keeps_the_last_seconds_oldest_first() {
        let mut r = Ring::default();
        for i in 0..=(SECONDS as u64 + 10) {
            r.record(i as u32, 1000, reading(i * i, 0));
        }
        let s: Vec<&Sample> = r.samples().collect();
        assert_eq!(s.len(), SECONDS);
        assert_eq!(s[0].t, 11);
        assert_eq!(s[SECONDS - 1].t, SECONDS as u32 + 10);
        // i*i - (i-1)*(i-1) = 2i - 1
        assert!(s.iter().all(|x| x.rx_packets == 2 * x.t as u64 - 1));
    }

    #[test]
    fn a_counter_reset_is_not_a_negative_rate() {
        let mut r = Ring::default();
        r.record(1, 1000, reading(1_000, 500));
        r.record(2, 1000, reading(7, 2));
        let s = *r.samples().last().unwrap();
        assert_eq!((s.rx_packets, s.tx_packets), (7, 2));
        assert_eq!((s.rx_bytes, s.tx_bytes), (700, 200));
    }

    #[test]
    fn history_follows_tunnels_by_name_across_reloads() {
        let mut h = History::default();
        h.sample(
            1,
            1000,
            [("A", reading(0, 0)), ("B", reading(0, 0))].into_iter(),
        );
        // A reload reorders the tunnels and removes B.
        h.sample(
            2,
            1000,
            [("C", reading(0, 0)), ("A", reading(4, 0))].into_iter(),
        );
        assert_eq!(h.get("A").unwrap().samples().next().unwrap().rx_packets, 4);
        assert!(h.get("B").is_none(), "a removed tunnel's ring is freed");
        assert_eq!(h.get("C").unwrap().samples().count(), 0);
    }
}
