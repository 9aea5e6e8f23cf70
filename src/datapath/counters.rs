//! Per-worker counters. A worker counts in plain integers and publishes them once per busy
//! loop with plain stores into its own cache-padded block, under a sequence number (a
//! seqlock), so the management thread always reads a consistent set. No atomic
//! read-modify-write is ever done, per packet or per burst.
use super::verdict::DropReason;
use crate::config::MAX_PORTS;
use crossbeam::utils::CachePadded;
use std::sync::atomic::{fence, AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub rx_packets: [u64; MAX_PORTS],
    pub rx_bytes: [u64; MAX_PORTS],
    pub tx_packets: [u64; MAX_PORTS],
    pub tx_bytes: [u64; MAX_PORTS],
    pub drops: [u64; DropReason::COUNT],
    /// Packets this process made itself (ARP requests), also counted in tx.
    pub originated: u64,
    pub arp_replies: u64,
    pub arp_learned: u64,
    /// Busy loop iterations and their TSC cycles, for cycles per packet.
    pub busy_loops: u64,
    pub busy_cycles: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            rx_packets: [0; MAX_PORTS],
            rx_bytes: [0; MAX_PORTS],
            tx_packets: [0; MAX_PORTS],
            tx_bytes: [0; MAX_PORTS],
            drops: [0; DropReason::COUNT],
            originated: 0,
            arp_replies: 0,
            arp_learned: 0,
            busy_loops: 0,
            busy_cycles: 0,
        }
    }
}

const N: usize = 4 * MAX_PORTS + DropReason::COUNT + 5;

impl Counters {
    #[inline(always)]
    pub fn drop(&mut self, r: DropReason) {
        self.drops[r as usize] += 1;
    }

    fn to_array(self) -> [u64; N] {
        let mut a = [0u64; N];
        let tail = [
            self.originated,
            self.arp_replies,
            self.arp_learned,
            self.busy_loops,
            self.busy_cycles,
        ];
        let all = self
            .rx_packets
            .iter()
            .chain(&self.rx_bytes)
            .chain(&self.tx_packets)
            .chain(&self.tx_bytes)
            .chain(&self.drops)
            .chain(&tail);
        for (dst, v) in a.iter_mut().zip(all) {
            *dst = *v;
        }
        a
    }

    fn from_array(a: &[u64; N]) -> Self {
        let mut c = Counters::default();
        let mut it = a.iter().copied();
        for dst in c
            .rx_packets
            .iter_mut()
            .chain(c.rx_bytes.iter_mut())
            .chain(c.tx_packets.iter_mut())
            .chain(c.tx_bytes.iter_mut())
            .chain(c.drops.iter_mut())
        {
            *dst = it.next().unwrap_or(0);
        }
        c.originated = it.next().unwrap_or(0);
        c.arp_replies = it.next().unwrap_or(0);
        c.arp_learned = it.next().unwrap_or(0);
        c.busy_loops = it.next().unwrap_or(0);
        c.busy_cycles = it.next().unwrap_or(0);
        c
    }

    /// Adds another worker's counters into this one.
    pub fn add(&mut self, o: &Counters) {
        let mut a = self.to_array();
        for (x, y) in a.iter_mut().zip(o.to_array()) {
            *x += y;
        }
        *self = Counters::from_array(&a);
    }

    pub fn rx_total(&self) -> u64 {
        self.rx_packets.iter().sum()
    }
    pub fn tx_total(&self) -> u64 {
        self.tx_packets.iter().sum()
    }
    pub fn drop_total(&self) -> u64 {
        self.drops.iter().sum()
    }
}

struct Block {
    /// Odd while the worker is writing.
    seq: AtomicU64,
    values: [AtomicU64; N],
}

/// One cache-padded block of counters per worker.
pub struct SharedCounters {
    blocks: Vec<CachePadded<Block>>,
}

impl SharedCounters {
    pub fn new(workers: usize) -> Self {
        SharedCounters {
            blocks: (0..workers)
                .map(|_| {
                    CachePadded::new(Block {
                        seq: AtomicU64::new(0),
                        values: std::array::from_fn(|_| AtomicU64::new(0)),
                    })
                })
                .collect(),
        }
    }

    /// Called by worker `w` only (a single writer): plain stores, no read-modify-write.
    pub fn publish(&self, w: usize, c: &Counters) {
        let Some(b) = self.blocks.get(w) else { return };
        let s = b.seq.load(Ordering::Relaxed);
        b.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (cell, v) in b.values.iter().zip(c.to_array()) {
            cell.store(v, Ordering::Relaxed);
        }
        b.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// A consistent copy of worker `w`'s counters: retried while the worker is mid-publish.
    pub fn read(&self, w: usize) -> Counters {
        let mut a = [0u64; N];
        let Some(b) = self.blocks.get(w) else {
            return Counters::default();
        };
        loop {
            let s1 = b.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            for (v, cell) in a.iter_mut().zip(b.values.iter()) {
                *v = cell.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if b.seq.load(Ordering::Relaxed) == s1 {
                return Counters::from_array(&a);
            }
        }
    }

    pub fn workers(&self) -> usize {
        self.blocks.len()
    }

    pub fn total(&self) -> Counters {
        let mut t = Counters::default();
        for w in 0..self.blocks.len() {
            t.add(&self.read(w));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_read_sum() {
        let s = SharedCounters::new(2);
        let mut c = Counters::default();
        c.rx_packets[3] = 5;
        c.drop(DropReason::NoRoute);
        c.busy_cycles = 77;
        s.publish(0, &c);
        s.publish(1, &c);
        assert_eq!(s.read(1), c);
        let t = s.total();
        assert_eq!(t.rx_packets[3], 10);
        assert_eq!(t.drops[DropReason::NoRoute as usize], 2);
        assert_eq!(t.busy_cycles, 154);
        assert_eq!(t.rx_total(), 10);
    }

    #[test]
    fn reads_are_never_torn() {
        // A writer keeps rx == tx at every publish; a reader must never see them differ.
        let s = std::sync::Arc::new(SharedCounters::new(1));
        let w = s.clone();
        let writer = std::thread::spawn(move || {
            let mut c = Counters::default();
            for i in 0..200_000u64 {
                c.rx_packets[0] = i;
                c.tx_packets[0] = i;
                w.publish(0, &c);
            }
        });
        while !writer.is_finished() {
            let c = s.read(0);
            assert_eq!(c.rx_packets[0], c.tx_packets[0]);
        }
        writer.join().unwrap();
    }
}
