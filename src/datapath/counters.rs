//! Per-worker counters. A worker counts in plain integers and publishes them, at most every
//! 10 ms and at exit, with plain stores into its own cache-padded block under a
//! sequence number (a seqlock), so the management thread always reads a consistent set. No
//! atomic read-modify-write is ever done, per packet or per burst.
use super::loop_buckets::LOOP_BUCKETS;
use super::verdict::DropReason;
use crate::limits::{MAX_PORTS, MAX_RULES, MAX_TUNNELS};
use crossbeam::utils::CachePadded;
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// Counter slots for tunnels and rules: twice the most a config has, so that a reload can
/// give new items slots while workers on the old table still count into the old ones
/// (`counter_slots`).
pub const TUNNEL_SLOTS: usize = 2 * MAX_TUNNELS;
pub const RULE_SLOTS: usize = 2 * MAX_RULES;

/// Traffic of one tunnel: what was decapsulated from it, encapsulated into it, and dropped
/// after it was identified (ingress) or chosen (egress).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TunnelCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: [u64; DropReason::COUNT],
    /// ARR: flows learned from this tunnel, refused (table full), and packets sent back
    /// into it by a learned flow instead of a route.
    pub arr_learned: u64,
    pub arr_refused: u64,
    pub arr_returned: u64,
}

impl Default for TunnelCounters {
    fn default() -> Self {
        TunnelCounters {
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: 0,
            tx_bytes: 0,
            drops: [0; DropReason::COUNT],
            arr_learned: 0,
            arr_refused: 0,
            arr_returned: 0,
        }
    }
}

/// The derived form, with the ARR counters only when one is not zero: the pipeline's
/// golden files hash this text, and ARR is off by default.
impl std::fmt::Debug for TunnelCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("TunnelCounters");
        d.field("rx_packets", &self.rx_packets)
            .field("rx_bytes", &self.rx_bytes)
            .field("tx_packets", &self.tx_packets)
            .field("tx_bytes", &self.tx_bytes);
        debug_drops(&mut d, &self.drops);
        let arr = [
            ("arr_learned", self.arr_learned),
            ("arr_refused", self.arr_refused),
            ("arr_returned", self.arr_returned),
        ];
        if arr.iter().any(|(_, v)| *v != 0) {
            arr.iter().for_each(|(k, v)| {
                d.field(k, v);
            });
        }
        d.finish()
    }
}

/// The drop reasons the pipeline's golden files were recorded with: those from punt on are
/// shown apart, and only when one is not zero, so the recorded hashes still hold (as ARR's).
const GOLDEN_DROPS: usize = DropReason::PuntRateLimited as usize;

fn debug_drops(d: &mut std::fmt::DebugStruct<'_, '_>, drops: &[u64; DropReason::COUNT]) {
    d.field("drops", &&drops[..GOLDEN_DROPS]);
    if drops[GOLDEN_DROPS..].iter().any(|v| *v != 0) {
        d.field("later_drops", &&drops[GOLDEN_DROPS..]);
    }
}

impl TunnelCounters {
    pub fn drop_total(&self) -> u64 {
        self.drops.iter().sum()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Counters {
    pub rx_packets: [u64; MAX_PORTS],
    pub rx_bytes: [u64; MAX_PORTS],
    pub tx_packets: [u64; MAX_PORTS],
    pub tx_bytes: [u64; MAX_PORTS],
    pub drops: [u64; DropReason::COUNT],
    /// Packets this process made itself (ARP requests, ICMP errors), also counted in tx.
    pub originated: u64,
    pub arp_replies: u64,
    pub arp_learned: u64,
    pub icmp_errors: u64,
    /// ICMP errors not sent because of the rate limit.
    pub icmp_rate_limited: u64,
    pub mss_clamped: u64,
    /// Health probe answers recognised and consumed: neither forwarded nor dropped.
    pub health_probe: u64,
    /// Health probes sent into the pipeline from the inject ring (also counted in originated).
    pub probes_injected: u64,
    /// Probes not sent: built for another table generation, or no mbuf was free.
    pub inject_stale: u64,
    pub inject_no_mbuf: u64,
    /// Probe answers whose record was lost because the answer ring was full.
    pub probe_ring_full: u64,
    /// Busy loop iterations and their TSC cycles, for cycles per packet.
    pub busy_loops: u64,
    pub busy_cycles: u64,
    /// Busy loops by cycles (`loop_buckets`), copied from the worker's histogram about once a
    /// second: live busy-loop percentiles.
    pub loop_buckets: [u64; LOOP_BUCKETS],
    /// `busy_cycles` when the loop buckets were filled: their sum, for a Prometheus histogram.
    pub loop_buckets_cycles: u64,
    /// ARR: flows learned (new or moved), refreshed, refused (their two buckets full of
    /// established flows), and packets routed by a learned flow.
    pub arr_learned: u64,
    pub arr_refreshed: u64,
    pub arr_refused: u64,
    pub arr_returned: u64,
    /// Packets sent to the kernel through the exception port (`[punt]`), also counted in
    /// that port's tx.
    pub punted: u64,
    /// By tunnel counter slot (the snapshot maps tunnels to slots); TUNNEL_SLOTS long.
    pub tunnels: Vec<TunnelCounters>,
    /// Firewall: [packets, bytes] decided by each rule, by counter slot (RULE_SLOTS long),
    /// and by the default.
    pub rules: Vec<[u64; 2]>,
    pub firewall_default: [u64; 2],
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
            icmp_errors: 0,
            icmp_rate_limited: 0,
            mss_clamped: 0,
            health_probe: 0,
            probes_injected: 0,
            inject_stale: 0,
            inject_no_mbuf: 0,
            probe_ring_full: 0,
            busy_loops: 0,
            busy_cycles: 0,
            loop_buckets: [0; LOOP_BUCKETS],
            loop_buckets_cycles: 0,
            arr_learned: 0,
            arr_refreshed: 0,
            arr_refused: 0,
            arr_returned: 0,
            punted: 0,
            tunnels: vec![TunnelCounters::default(); TUNNEL_SLOTS],
            rules: vec![[0; 2]; RULE_SLOTS],
            firewall_default: [0; 2],
        }
    }
}

/// The derived form, with the ARR counters only when one is not zero (see
/// `TunnelCounters`).
impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Counters");
        d.field("rx_packets", &self.rx_packets)
            .field("rx_bytes", &self.rx_bytes)
            .field("tx_packets", &self.tx_packets)
            .field("tx_bytes", &self.tx_bytes);
        debug_drops(&mut d, &self.drops);
        d.field("originated", &self.originated)
            .field("arp_replies", &self.arp_replies)
            .field("arp_learned", &self.arp_learned)
            .field("icmp_errors", &self.icmp_errors)
            .field("icmp_rate_limited", &self.icmp_rate_limited)
            .field("mss_clamped", &self.mss_clamped)
            .field("health_probe", &self.health_probe)
            .field("probes_injected", &self.probes_injected)
            .field("inject_stale", &self.inject_stale)
            .field("inject_no_mbuf", &self.inject_no_mbuf)
            .field("probe_ring_full", &self.probe_ring_full)
            .field("busy_loops", &self.busy_loops)
            .field("busy_cycles", &self.busy_cycles);
        // Only when recorded (by a worker): the pipeline's golden files hash this text.
        if self.loop_buckets.iter().any(|n| *n != 0) {
            d.field("loop_buckets", &self.loop_buckets)
                .field("loop_buckets_cycles", &self.loop_buckets_cycles);
        }
        let arr = [
            ("arr_learned", self.arr_learned),
            ("arr_refreshed", self.arr_refreshed),
            ("arr_refused", self.arr_refused),
            ("arr_returned", self.arr_returned),
        ];
        if arr.iter().any(|(_, v)| *v != 0) {
            arr.iter().for_each(|(k, v)| {
                d.field(k, v);
            });
        }
        // Only when punt did something, as ARR: punt is off by default.
        if self.punted != 0 {
            d.field("punted", &self.punted);
        }
        d.field("tunnels", &self.tunnels)
            .field("rules", &self.rules)
            .field("firewall_default", &self.firewall_default)
            .finish()
    }
}

const SCALARS: usize = 19;
const PER_TUNNEL: usize = 7 + DropReason::COUNT;
/// Number of u64 values a worker publishes.
const N: usize = 4 * MAX_PORTS
    + DropReason::COUNT
    + SCALARS
    + LOOP_BUCKETS
    + TUNNEL_SLOTS * PER_TUNNEL
    + 2 * RULE_SLOTS
    + 2;

impl Counters {
    #[inline(always)]
    pub fn drop(&mut self, r: DropReason) {
        self.drops[r as usize] += 1;
    }

    /// Every value, in a fixed order, for publishing and summing.
    fn fields_mut(&mut self) -> impl Iterator<Item = &mut u64> {
        let scalars: [&mut u64; SCALARS] = [
            &mut self.originated,
            &mut self.arp_replies,
            &mut self.arp_learned,
            &mut self.icmp_errors,
            &mut self.icmp_rate_limited,
            &mut self.mss_clamped,
            &mut self.health_probe,
            &mut self.probes_injected,
            &mut self.inject_stale,
            &mut self.inject_no_mbuf,
            &mut self.probe_ring_full,
            &mut self.busy_loops,
            &mut self.busy_cycles,
            &mut self.loop_buckets_cycles,
            &mut self.arr_learned,
            &mut self.arr_refreshed,
            &mut self.arr_refused,
            &mut self.arr_returned,
            &mut self.punted,
        ];
        self.rx_packets
            .iter_mut()
            .chain(self.rx_bytes.iter_mut())
            .chain(self.tx_packets.iter_mut())
            .chain(self.tx_bytes.iter_mut())
            .chain(self.drops.iter_mut())
            .chain(scalars)
            .chain(self.loop_buckets.iter_mut())
            .chain(self.tunnels.iter_mut().flat_map(|t| {
                [
                    &mut t.rx_packets,
                    &mut t.rx_bytes,
                    &mut t.tx_packets,
                    &mut t.tx_bytes,
                    &mut t.arr_learned,
                    &mut t.arr_refused,
                    &mut t.arr_returned,
                ]
                .into_iter()
                .chain(t.drops.iter_mut())
            }))
            .chain(self.rules.iter_mut().flatten())
            .chain(self.firewall_default.iter_mut())
    }

    /// Adds another worker's counters into this one.
    pub fn add(&mut self, o: &Counters) {
        let mut o = o.clone();
        for (x, y) in self.fields_mut().zip(o.fields_mut()) {
            *x += *y;
        }
    }

    /// What was counted since `base` was read (a `clear counters` baseline). Saturating: a
    /// counter slot handed to a new tunnel or rule since reads from zero.
    pub fn since(&self, base: &Counters) -> Counters {
        let mut d = self.clone();
        let mut b = base.clone();
        for (x, y) in d.fields_mut().zip(b.fields_mut()) {
            *x = x.saturating_sub(*y);
        }
        d
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

/// The block of lines the published counters start on and end in: 128 bytes, a cache line
/// and the one the adjacent-line prefetcher pairs with it.
const LINE: usize = 128;
const PER_LINE: usize = LINE / std::mem::size_of::<u64>();

/// One worker's published counters. They start on a LINE boundary and the allocation runs
/// past the LINE they end in, so no other allocation shares a line with them.
struct Block {
    /// Odd while the worker is writing.
    seq: AtomicU64,
    cells: Box<[AtomicU64]>,
    /// Index of the first counter in `cells`.
    at: usize,
}

impl Block {
    fn new() -> Self {
        let cells: Box<[AtomicU64]> = (0..N + 2 * PER_LINE).map(|_| AtomicU64::new(0)).collect();
        let misaligned = cells.as_ptr() as usize % LINE;
        let at = (LINE - misaligned) % LINE / std::mem::size_of::<u64>();
        Block {
            seq: AtomicU64::new(0),
            cells,
            at,
        }
    }

    fn cells(&self) -> &[AtomicU64] {
        &self.cells[self.at..self.at + N]
    }

    /// `f` over the cells as one consistent publish: retried while the worker is mid-publish
    /// (`seq` odd) or published meanwhile.
    fn consistent<T>(&self, mut f: impl FnMut(&[AtomicU64]) -> T) -> T {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let v = f(self.cells());
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return v;
            }
        }
    }
}

/// One cache-padded block of counters per worker.
pub struct SharedCounters {
    blocks: Vec<CachePadded<Block>>,
}

impl SharedCounters {
    pub fn new(workers: usize) -> Self {
        SharedCounters {
            blocks: (0..workers)
                .map(|_| CachePadded::new(Block::new()))
                .collect(),
        }
    }

    /// Copies worker `w`'s counts out. A value that did not change since the last publish
    /// is not stored again: most of the block (idle tunnel and rule slots) stays clean, so
    /// its lines are neither written back nor taken from the readers' caches every 10 ms.
    pub fn publish(&self, w: usize, c: &mut Counters) {
        let Some(b) = self.blocks.get(w) else { return };
        let s = b.seq.load(Ordering::Relaxed);
        b.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        // Only this worker stores into its block, so a cell holds what it last published:
        // storing only what changed leaves idle slots' lines clean. `for_each` (the chain's
        // own fold: a tight loop per part) rather than `zip`, which steps the chained
        // iterator one call per value: ~37 instructions per value, about 1M per publish of
        // these ~26k values, 100 times a second (callgrind, issue 14).
        let mut cells = b.cells().iter();
        c.fields_mut().for_each(|v| {
            if let Some(cell) = cells.next() {
                if cell.load(Ordering::Relaxed) != *v {
                    cell.store(*v, Ordering::Relaxed);
                }
            }
        });
        b.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// A consistent copy of worker `w`'s counters.
    pub fn read(&self, w: usize) -> Counters {
        let mut c = Counters::default();
        if let Some(b) = self.blocks.get(w) {
            b.consistent(|cells| {
                for (v, cell) in c.fields_mut().zip(cells) {
                    *v = cell.load(Ordering::Relaxed);
                }
            });
        }
        c
    }

    /// Packets received by every worker: the rx cells alone (the first MAX_PORTS of each
    /// block), for the management tick, which must not read (and so share) whole blocks
    /// every 10 ms.
    pub fn rx_total(&self) -> u64 {
        let rx = |cells: &[AtomicU64]| -> u64 {
            cells[..MAX_PORTS]
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum()
        };
        self.blocks.iter().map(|b| b.consistent(rx)).sum()
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
        c.health_probe = 3;
        c.probe_ring_full = 1;
        c.tunnels[MAX_TUNNELS - 1].drops[DropReason::TunnelUnknown as usize] = 4;
        c.tunnels[2].tx_bytes = 9;
        c.loop_buckets[40] = 6;
        s.publish(0, &mut c);
        s.publish(1, &mut c);
        assert_eq!(s.read(1), c);
        let t = s.total();
        assert_eq!(t.rx_packets[3], 10);
        assert_eq!(t.drops[DropReason::NoRoute as usize], 2);
        assert_eq!(t.busy_cycles, 154);
        assert_eq!((t.health_probe, t.probe_ring_full), (6, 2));
        assert_eq!(t.tunnels[2].tx_bytes, 18);
        assert_eq!(t.loop_buckets[40], 12, "loop buckets add up over workers");
        assert_eq!(
            t.tunnels[MAX_TUNNELS - 1].drops[DropReason::TunnelUnknown as usize],
            8
        );
        assert_eq!(t.rx_total(), 10);
        let d = t.since(&c);
        assert_eq!(
            (d.rx_packets[3], d.busy_cycles, d.tunnels[2].tx_bytes),
            (5, 77, 9)
        );
        assert_eq!(c.since(&t).rx_packets[3], 0, "never below zero");
    }

    #[test]
    fn rx_total_reads_only_the_rx_cells_and_matches_a_full_read() {
        let s = SharedCounters::new(2);
        let mut c = Counters::default();
        c.rx_packets[0] = 7;
        c.rx_packets[MAX_PORTS - 1] = 3;
        c.tx_packets[0] = 1000;
        s.publish(0, &mut c);
        c.rx_packets[0] = 8;
        s.publish(1, &mut c);
        assert_eq!(s.rx_total(), 21);
        assert_eq!(s.rx_total(), s.total().rx_total());
    }

    #[test]
    fn a_value_that_goes_back_is_published() {
        // Publishing skips unchanged cells: a cell must still follow every change, to zero
        // too (`counters reset` on a reload's fresh slots).
        let s = SharedCounters::new(1);
        let mut c = Counters::default();
        c.tunnels[5].rx_bytes = 9;
        c.rules[RULE_SLOTS - 1][1] = 4;
        s.publish(0, &mut c);
        assert_eq!(s.read(0), c);
        s.publish(0, &mut c);
        assert_eq!(s.read(0), c);
        c.tunnels[5].rx_bytes = 0;
        c.firewall_default[1] = 2;
        s.publish(0, &mut c);
        assert_eq!(s.read(0), c);
    }

    #[test]
    fn each_workers_values_sit_in_lines_of_their_own() {
        let s = SharedCounters::new(3);
        for b in &s.blocks {
            let first = b.cells().as_ptr() as usize;
            let end = first + N * 8;
            assert_eq!(first % LINE, 0, "the counters start a line");
            let alloc_end = b.cells.as_ptr() as usize + b.cells.len() * 8;
            assert!(
                alloc_end >= end.next_multiple_of(LINE),
                "their last line is theirs"
            );
        }
    }

    #[test]
    fn reads_are_never_torn() {
        // A writer keeps rx == tx at every publish; a reader must never see them differ.
        let s = std::sync::Arc::new(SharedCounters::new(1));
        let w = s.clone();
        let writer = std::thread::spawn(move || {
            let mut c = Counters::default();
            for i in 0..20_000u64 {
                c.rx_packets[0] = i;
                c.tx_packets[0] = i;
                w.publish(0, &mut c);
            }
        });
        while !writer.is_finished() {
            let c = s.read(0);
            assert_eq!(c.rx_packets[0], c.tx_packets[0]);
        }
        writer.join().unwrap();
    }
}
