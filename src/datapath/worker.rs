//! The poll-mode worker: one per core, pinned, registered as a DPDK lcore. Each loop it picks
//! up the newest snapshot (its RCU quiescent point), then for each of its rx queues receives
//! a burst, runs the pipeline, and sends per-port batches on its own tx queues. It also sends
//! the health probes the management plane left in its inject ring, and hands the probe answers
//! it recognised back through its answer ring.
use super::counters::SharedCounters;
use super::loop_buckets;
use super::pipeline::Pipeline;
use super::tap::{self, Recorder, Tap};
use super::verdict::{DropReason, Verdict};
use super::BURST;
use crate::dpdk::{self, Mbuf, MbufArray, Mempool, RxQueue, TxQueue};
use crate::health::WorkerRings;
use crate::limits::MAX_PORTS;
use crate::rcu;
use crate::route::{ecmp, Snapshot};
use crate::wire::{arp, ethernet};
use crossbeam::utils::CachePadded;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// ARP requests for one address go out at most this often per worker.
const ARP_INTERVAL_MS: u64 = 1000;
/// Rate-limit slots, indexed by a hash of (port, address).
const ARP_SLOTS: usize = 64;
/// Probes taken from the inject ring per loop: at the highest rate with the most tunnels this
/// is far above the arrival rate, and it bounds the time a loop spends on them.
const INJECT_PER_LOOP: usize = 8;

/// The flag that stops the workers, read every loop: on a line of its own (128 bytes with the
/// adjacent-line prefetch), so that nothing the management thread writes shares it.
pub type Stop = Arc<CachePadded<AtomicBool>>;

/// TSC cycles per busy loop (one burst per rx queue that had packets, processed and sent).
pub type LoopHistogram = hdrhistogram::Histogram<u64>;

/// An empty histogram: 1 cycle to 2^40 cycles, 3 significant digits. All of its memory is
/// allocated here, so recording on the fast path allocates nothing.
pub fn loop_histogram() -> LoopHistogram {
    LoopHistogram::new_with_bounds(1, 1 << 40, 3)
        .unwrap_or_else(|_| LoopHistogram::new(3).expect("3 digits is valid"))
}

pub struct Worker {
    pub index: usize,
    pub core: usize,
    /// (port index, queue).
    pub rx: Vec<(u16, RxQueue)>,
    /// This worker's tx queue on each port, by port index.
    pub tx: Vec<TxQueue>,
    pub snapshot: rcu::Reader<Snapshot>,
    pub counters: Arc<SharedCounters>,
    pub pool: Arc<Mempool>,
    pub stop: Stop,
    /// Probes in, probe answers out (see `health`).
    pub rings: Arc<WorkerRings>,
    /// Live trace and capture (see `tap`): its armed word is read once per burst.
    pub tap: Arc<Tap>,
    /// `dpdk.idle_backoff_us`: the longest sleep after empty loops (0: busy-poll).
    pub idle_backoff_us: u32,
}

impl Worker {
    /// Runs until `stop` is set. Every mbuf received is transmitted or freed before return.
    /// Returns the busy-loop latency histogram.
    pub fn run(mut self) -> LoopHistogram {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: self.core }) {
            log::warn!("worker {}: could not pin to core {}", self.index, self.core);
        }
        let _lcore = match dpdk::LcoreRegistration::register(self.pool.eal()) {
            Ok(r) => r,
            Err(e) => {
                log::error!("worker {}: {e}; mempool caches disabled", self.index);
                return self.poll();
            }
        };
        self.poll()
    }

    fn poll(&mut self) -> LoopHistogram {
        // Split the borrows: the snapshot is borrowed from the reader for one loop while the
        // queues are used mutably, so there is no Arc clone (an atomic RMW) per loop.
        let Worker {
            index,
            rx,
            tx,
            snapshot,
            counters,
            pool,
            stop,
            rings,
            tap,
            idle_backoff_us,
            ..
        } = self;
        // The queue handles are read every loop: into memory this thread allocates, off the
        // management thread's heap, where whatever it writes next to them would be its.
        *rx = on_this_thread(rx);
        *tx = on_this_thread(tx);
        let mut idle = super::idle::Backoff::new(*idle_backoff_us);
        let mut recorder = Recorder::default();
        let mut pipeline = Pipeline::new();
        let mut burst: MbufArray<BURST> = MbufArray::new();
        let mut drops: MbufArray<BURST> = MbufArray::new();
        let mut txb: Vec<MbufArray<BURST>> = (0..tx.len()).map(|_| MbufArray::new()).collect();
        let mut verdicts = [Verdict::Drop(DropReason::NoRoute); BURST];
        let hz = dpdk::tsc_hz();
        let mut arp = ArpLimiter::new(hz / 1000 * ARP_INTERVAL_MS);
        // Counters go out at most every 10 ms, and on a table switch: the block is large
        // (per-tunnel and per-rule counter slots, ~220 KB); the final publish at exit is exact.
        let publish_gap = hz / 100;
        let mut published = 0u64;
        // Counts made since the last publish: an idle worker still publishes them within
        // the gap, so that live views (`ctl show stats`, /metrics) see the end of traffic.
        let mut unpublished = false;
        let mut latency = loop_histogram();
        // The histogram goes into the published loop buckets about once a second (a scan of
        // its counts, too long for every publish), once traffic stops, and at exit.
        let mut bucketed = 0u64;
        let mut unbucketed = false;

        while !stop.load(Ordering::Relaxed) {
            // Counts made on the old table go out before the ack that lets the management
            // give that table's freed counter slots to new rules and tunnels.
            let snap: &Snapshot =
                snapshot.refresh_with(|| counters.publish(*index, &mut pipeline.counters));
            let start = dpdk::tsc();
            pipeline.set_clock(start, hz);
            let mut busy = false;
            let injected = inject(rings, snap, pool, &mut pipeline, &mut txb, &mut drops);
            if injected {
                arp.send_requests(snap, pool, &mut pipeline, &mut txb);
                flush(tx, &mut txb, &mut pipeline, snap);
            }
            for (port, rxq) in rx.iter_mut() {
                let n = rxq.rx(&mut burst);
                if n == 0 {
                    continue;
                }
                busy = true;
                let (pkts, v) = (burst.as_mut_slice(), &mut verdicts[..n]);
                let rec = &mut recorder;
                tap::process(&mut pipeline, snap, *port, pkts, v, tap, rec, start);
                dispatch(&mut burst, &verdicts, &mut txb, &mut drops, &mut pipeline);
                hand_answers(rings, &mut pipeline);
                arp.send_requests(snap, pool, &mut pipeline, &mut txb);
                flush(tx, &mut txb, &mut pipeline, snap);
            }
            unpublished |= busy || injected;
            if busy {
                let end = dpdk::tsc();
                pipeline.counters.busy_loops += 1;
                pipeline.counters.busy_cycles += end - start;
                latency.saturating_record(end - start);
                unbucketed = true;
                if end.wrapping_sub(published) >= publish_gap {
                    if end.wrapping_sub(bucketed) >= hz {
                        loop_buckets::publish_into(&latency, &mut pipeline.counters);
                        (bucketed, unbucketed) = (end, false);
                    }
                    counters.publish(*index, &mut pipeline.counters);
                    published = end;
                    unpublished = false;
                }
            } else if (unpublished || unbucketed) && start.wrapping_sub(published) >= publish_gap {
                // Once traffic stops, the counts of its last few milliseconds (and the probes
                // an idle worker sends) still go out.
                if unbucketed {
                    loop_buckets::publish_into(&latency, &mut pipeline.counters);
                    (bucketed, unbucketed) = (start, false);
                }
                counters.publish(*index, &mut pipeline.counters);
                published = start;
                unpublished = false;
            }
            // Off the packet path: only after a loop that had nothing to do.
            let sleep = idle.after_loop(busy || injected);
            if sleep > 0 {
                std::thread::sleep(std::time::Duration::from_micros(sleep.into()));
            }
        }
        loop_buckets::publish_into(&latency, &mut pipeline.counters);
        counters.publish(*index, &mut pipeline.counters);
        latency
    }
}

/// Puts each packet of a processed burst in its port's tx batch, or frees it (dropped, or
/// consumed as a probe answer).
#[inline(always)]
fn dispatch<const N: usize>(
    pkts: &mut MbufArray<N>,
    verdicts: &[Verdict],
    txb: &mut [MbufArray<BURST>],
    drops: &mut MbufArray<BURST>,
    pipeline: &mut Pipeline,
) {
    let n_ports = txb.len().min(MAX_PORTS);
    for (m, v) in pkts.drain().zip(verdicts.iter()) {
        match *v {
            // A burst holds at most BURST packets, so the push never fails.
            Verdict::Forward(p) if (p as usize) < n_ports => {
                if let Err(m) = txb[p as usize].push(m) {
                    pipeline.counters.drop(DropReason::TxQueueFull);
                    push_or_free(drops, m);
                }
            }
            Verdict::Forward(_) => {
                pipeline.counters.drop(DropReason::NoRoute);
                push_or_free(drops, m);
            }
            Verdict::Drop(_) | Verdict::Consumed => push_or_free(drops, m),
        }
    }
    drops.free_all();
}

/// Hands the probe answers of the last burst to the management plane; a full ring loses the
/// record (counted), never blocks.
#[inline(always)]
fn hand_answers(rings: &WorkerRings, pipeline: &mut Pipeline) {
    let mut lost = 0;
    for a in pipeline.take_probe_answers() {
        if rings.answers.push(a).is_err() {
            lost += 1;
        }
    }
    pipeline.counters.probe_ring_full += lost;
}

/// Sends up to INJECT_PER_LOOP probes from the inject ring into their tunnels: each is copied
/// behind an Ethernet placeholder into a fresh mbuf and goes through the pipeline's local
/// entry (encapsulation, underlay next hop, MACs) into the tx batches. A probe built for
/// another table generation is dropped: its tunnel index may name another tunnel here.
/// Returns whether anything was sent into the pipeline.
fn inject(
    rings: &WorkerRings,
    snap: &Snapshot,
    pool: &Mempool,
    pipeline: &mut Pipeline,
    txb: &mut [MbufArray<BURST>],
    drops: &mut MbufArray<BURST>,
) -> bool {
    // The common case, every loop: two loads, nothing built.
    if rings.inject.is_empty() {
        return false;
    }
    let mut pkts: MbufArray<INJECT_PER_LOOP> = MbufArray::new();
    let mut tunnels = [0u16; INJECT_PER_LOOP];
    while !pkts.is_full() {
        let Some(item) = rings.inject.pop() else {
            break;
        };
        if item.generation != snap.generation {
            pipeline.counters.inject_stale += 1;
            continue;
        }
        let p = item.packet();
        let Some(mut m) = pool.alloc() else {
            pipeline.counters.inject_no_mbuf += 1;
            continue;
        };
        let Some(f) = m.append(ethernet::HEADER_LEN + p.len()) else {
            pipeline.counters.inject_no_mbuf += 1;
            continue;
        };
        let (eth, ip) = f.split_at_mut(ethernet::HEADER_LEN);
        eth[..12].fill(0);
        eth[12..].copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
        ip.copy_from_slice(p);
        tunnels[pkts.len()] = item.tunnel;
        if let Err(m) = pkts.push(m) {
            drop(m);
        }
    }
    let n = pkts.len();
    if n == 0 {
        return false;
    }
    let mut verdicts = [Verdict::Drop(DropReason::NoRoute); INJECT_PER_LOOP];
    pipeline.inject(snap, pkts.as_mut_slice(), &tunnels[..n], &mut verdicts[..n]);
    dispatch(&mut pkts, &verdicts[..n], txb, drops, pipeline);
    true
}

/// Transmits every per-port batch on this worker's tx queues; what the exception port's
/// queue refuses is counted as `punt_tx_full`, not `tx_queue_full`.
fn flush(
    tx: &mut [TxQueue],
    txb: &mut [MbufArray<BURST>],
    pipeline: &mut Pipeline,
    snap: &Snapshot,
) {
    let punt = snap.punt.map(|p| p.port as usize);
    for (p, (q, b)) in tx.iter_mut().zip(txb.iter_mut()).enumerate() {
        let n = b.len();
        if n == 0 {
            continue;
        }
        let (sent, bytes) = q.tx(b);
        let c = &mut pipeline.counters;
        c.tx_packets[p] += sent as u64;
        c.tx_bytes[p] += bytes;
        let full = if punt == Some(p) {
            DropReason::PuntTxFull
        } else {
            DropReason::TxQueueFull
        };
        c.drops[full as usize] += (n - sent) as u64;
    }
}

/// Sends a who-has for each address the pipeline could not resolve (a gateway, or a host on a
/// connected subnet), at most once per interval per address per worker, each in a fresh mbuf
/// from the pool.
struct ArpLimiter {
    last: [u64; ARP_SLOTS],
    gap: u64,
}

impl ArpLimiter {
    fn new(gap: u64) -> Self {
        ArpLimiter {
            last: [0; ARP_SLOTS],
            gap,
        }
    }

    fn send_requests(
        &mut self,
        snap: &Snapshot,
        pool: &Mempool,
        pipeline: &mut Pipeline,
        txb: &mut [MbufArray<BURST>],
    ) {
        let mut wants = [None; 8];
        // Unresolved next hops first, then those the management thread re-resolves before
        // they age out (one load when none is pending).
        let refresh = snap.arp.take_refresh();
        let mut n = 0;
        for (slot, w) in wants
            .iter_mut()
            .zip(pipeline.take_arp_wants().chain(refresh))
        {
            *slot = Some(w);
            n += 1;
        }
        // The common case, after every burst: nothing to ask (the walk below cost ~180
        // instructions a burst, callgrind).
        if n == 0 {
            return;
        }
        let now = dpdk::tsc();
        for (p, ip) in wants.into_iter().flatten() {
            let Some(port) = snap.ports.get(p as usize) else {
                continue;
            };
            // Addresses sharing a limiter slot share its interval; a collision only delays.
            let h = ecmp::flow_hash(ip, p as u32, 0) as usize;
            let last = &mut self.last[h % ARP_SLOTS];
            if *last != 0 && now.wrapping_sub(*last) < self.gap {
                continue;
            }
            let Some(b) = txb.get_mut(p as usize).filter(|b| !b.is_full()) else {
                continue;
            };
            let Some(mut m) = pool.alloc() else { continue };
            let built = m
                .append(60)
                .and_then(|f| arp::write_request(f, port.mac, port.addr, ip));
            if built.is_some() && b.push(m).is_ok() {
                *last = now;
                pipeline.counters.originated += 1;
            }
        }
    }
}

/// `v`'s items moved into an allocation made by the calling thread.
fn on_this_thread<T>(v: &mut Vec<T>) -> Vec<T> {
    let mut own = Vec::with_capacity(v.len());
    own.append(v);
    own
}

fn push_or_free<const N: usize>(a: &mut MbufArray<N>, m: Mbuf) {
    if let Err(m) = a.push(m) {
        drop(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_handles_move_to_a_new_allocation_in_order() {
        let mut v: Vec<(u16, u32)> = (0..5).map(|i| (i, 10 * i as u32)).collect();
        let before = v.as_ptr();
        let own = on_this_thread(&mut v);
        assert_ne!(own.as_ptr(), before, "a fresh allocation");
        assert!(v.is_empty());
        assert_eq!(own, (0..5).map(|i| (i, 10 * i as u32)).collect::<Vec<_>>());
    }

    #[test]
    fn the_stop_flag_has_a_line_of_its_own() {
        assert!(std::mem::size_of::<CachePadded<AtomicBool>>() >= 128);
        assert!(std::mem::align_of::<CachePadded<AtomicBool>>() >= 128);
    }
}
