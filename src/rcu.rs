//! Read-copy-update for immutable snapshots, in safe Rust.
//!
//! The management thread publishes a new `Arc<T>` to every worker through a bounded channel.
//! A worker checks its channel once per burst (a couple of plain loads when empty), switches
//! to the newest snapshot, and records the generation it now uses: that store is its
//! quiescent point. The publisher keeps every retired snapshot alive until all workers have
//! moved past it, so the last reference, and the free of a 32 MiB table, is always dropped
//! on the management thread, never on a worker.
//!
//! Why the last reference is the publisher's: a reader's ack is the generation of the snapshot
//! it holds, and every snapshot it holds (its current one and those queued in its channel) is
//! of that generation or newer. The publisher holds each snapshot until every ack reaches the
//! generation that *replaced* it, which is above the reader's ack for all of them. A reader
//! that goes away releases everything it holds first and only then stores its "gone" mark
//! (`u64::MAX`, see [`Departure`]): the mark is what lets the publisher free the snapshot the
//! reader held, so the publisher's reference is the last one. A gone reader is skipped by
//! `publish` and `room`, and `min_acked` ignores it, so a worker that exited or panicked with
//! a full channel does not stop publication.
use crossbeam::channel::{bounded, Receiver, Sender, TrySendError};
use crossbeam::utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Snapshots that may queue for one worker before publishing reports it stalled.
const DEPTH: usize = 8;
/// The ack of a reader that no longer exists.
const GONE: u64 = u64::MAX;

pub struct Publisher<T> {
    senders: Vec<Sender<(u64, Arc<T>)>>,
    acks: Arc<[CachePadded<AtomicU64>]>,
    current: Arc<T>,
    generation: u64,
    /// Snapshots replaced at generation `.0`, freed once every worker acked `.0`.
    retired: Vec<(u64, Arc<T>)>,
}

pub struct Reader<T> {
    // Fields drop in declaration order, and `Reader` has no `Drop` of its own: the channel and
    // the current snapshot are released before `departure` stores the gone mark.
    rx: Receiver<(u64, Arc<T>)>,
    current: Arc<T>,
    generation: u64,
    /// Must stay the last field.
    departure: Departure,
}

/// A reader's place in the ack array. Dropped last of the reader's fields, it marks the reader
/// gone once the reader holds no snapshot any more.
struct Departure {
    acks: Arc<[CachePadded<AtomicU64>]>,
    index: usize,
}

impl Departure {
    #[inline]
    fn ack(&self, generation: u64) {
        self.acks[self.index].store(generation, Ordering::Release);
    }
}

impl Drop for Departure {
    /// A reader that is gone holds nothing: it no longer delays reclamation, and publishing
    /// skips it. Release: the reader's reference drops (sequenced before) happen before the
    /// publisher's, which it makes only after seeing this store (Acquire).
    fn drop(&mut self) {
        self.ack(GONE);
    }
}

/// Creates a publisher and one reader per worker, all on generation 1.
pub fn new<T>(initial: Arc<T>, readers: usize) -> (Publisher<T>, Vec<Reader<T>>) {
    let acks: Arc<[CachePadded<AtomicU64>]> = (0..readers)
        .map(|_| CachePadded::new(AtomicU64::new(1)))
        .collect();
    let mut senders = Vec::new();
    let mut rs = Vec::new();
    for index in 0..readers {
        let (tx, rx) = bounded(DEPTH);
        senders.push(tx);
        rs.push(Reader {
            rx,
            current: initial.clone(),
            generation: 1,
            departure: Departure {
                acks: acks.clone(),
                index,
            },
        });
    }
    let p = Publisher {
        senders,
        acks,
        current: initial,
        generation: 1,
        retired: Vec::new(),
    };
    (p, rs)
}

impl<T> Publisher<T> {
    pub fn current(&self) -> &Arc<T> {
        &self.current
    }
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether reader `i` is gone (its `Reader` was dropped, e.g. its thread exited).
    fn gone(&self, i: usize) -> bool {
        self.acks[i].load(Ordering::Acquire) == GONE
    }

    /// Publishes `next` as the following generation; returns its number. Fails, publishing
    /// nothing new, when a live worker has not drained earlier snapshots. Readers that are
    /// gone are skipped, whatever their channel holds.
    pub fn publish(&mut self, next: Arc<T>) -> Result<u64, String> {
        let g = self.generation + 1;
        if let Some(i) =
            (0..self.senders.len()).find(|&i| self.senders[i].is_full() && !self.gone(i))
        {
            return Err(format!(
                "worker {i} has not taken the last {DEPTH} snapshots"
            ));
        }
        for (i, s) in self.senders.iter().enumerate() {
            match s.try_send((g, next.clone())) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                // Only this thread sends, so a channel found not full above is not full now;
                // a full one belongs to a gone reader (its receiver was dropped before the
                // mark, so this is normally `Disconnected`).
                Err(TrySendError::Full(_)) => debug_assert!(self.gone(i)),
            }
        }
        let old = std::mem::replace(&mut self.current, next);
        self.retired.push((g, old));
        self.generation = g;
        Ok(g)
    }

    /// Snapshots that can still be published before some worker's queue is full.
    pub fn room(&self) -> usize {
        self.senders
            .iter()
            .enumerate()
            .filter(|&(i, _)| !self.gone(i))
            .map(|(_, s)| DEPTH - s.len())
            .min()
            .unwrap_or(DEPTH)
    }

    /// The oldest generation any live worker still uses (a gone reader's `u64::MAX` never
    /// wins the minimum).
    pub fn min_acked(&self) -> u64 {
        self.acks
            .iter()
            .map(|a| a.load(Ordering::Acquire))
            .min()
            .unwrap_or(self.generation)
            .min(self.generation)
    }

    /// Frees the snapshots every worker has moved past; returns how many are still waiting.
    pub fn reclaim(&mut self) -> usize {
        let min = self.min_acked();
        self.retired.retain(|(g, _)| *g > min);
        self.retired.len()
    }
}

impl<T> Reader<T> {
    /// Switches to the newest published snapshot, if any, and returns it. Call once per burst.
    #[inline]
    pub fn refresh(&mut self) -> &Arc<T> {
        self.refresh_with(|| {})
    }

    /// [`Reader::refresh`], calling `before_ack` when it switches, before the ack: what it
    /// publishes (the worker's counters) is visible to whoever sees the ack.
    #[inline]
    pub fn refresh_with(&mut self, before_ack: impl FnOnce()) -> &Arc<T> {
        if !self.rx.is_empty() {
            while let Ok((g, s)) = self.rx.try_recv() {
                self.current = s;
                self.generation = g;
            }
            before_ack();
            // Quiescent point: nothing from older generations is referenced past here.
            self.departure.ack(self.generation);
        }
        &self.current
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tracked(Arc<AtomicU64>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn old_snapshot_freed_only_after_every_reader_moved() {
        let freed = Arc::new(AtomicU64::new(0));
        let (mut p, mut rs) = new(Arc::new(Tracked(freed.clone())), 2);
        p.publish(Arc::new(Tracked(freed.clone()))).unwrap();
        assert_eq!(p.reclaim(), 1);
        rs[0].refresh();
        assert_eq!(p.reclaim(), 1, "reader 1 still on generation 1");
        assert_eq!(freed.load(Ordering::SeqCst), 0);
        rs[1].refresh();
        assert_eq!(rs[1].generation(), 2);
        assert_eq!(p.reclaim(), 0);
        assert_eq!(freed.load(Ordering::SeqCst), 1, "freed by the publisher");
    }

    #[test]
    fn reader_skips_to_newest() {
        let (mut p, mut rs) = new(Arc::new(1u32), 1);
        p.publish(Arc::new(2)).unwrap();
        p.publish(Arc::new(3)).unwrap();
        assert_eq!(**rs[0].refresh(), 3);
        assert_eq!(p.min_acked(), 3);
        assert_eq!(p.reclaim(), 0);
    }

    #[test]
    fn before_ack_runs_once_per_switch_and_before_the_ack() {
        let (mut p, mut rs) = new(Arc::new(0u32), 1);
        let mut calls = 0;
        rs[0].refresh_with(|| calls += 1);
        assert_eq!(calls, 0, "nothing new");
        p.publish(Arc::new(1)).unwrap();
        let acked_then = std::cell::Cell::new(0);
        rs[0].refresh_with(|| {
            calls += 1;
            acked_then.set(p.min_acked());
        });
        assert_eq!((calls, acked_then.get(), p.min_acked()), (1, 1, 2));
    }

    #[test]
    fn stalled_reader_reported() {
        let (mut p, _rs) = new(Arc::new(0u32), 1);
        for i in 0..DEPTH {
            p.publish(Arc::new(i as u32)).unwrap();
        }
        assert!(p.publish(Arc::new(99)).unwrap_err().contains("worker 0"));
    }

    /// Records the thread that drops it.
    struct DroppedOn(Arc<std::sync::Mutex<Vec<std::thread::ThreadId>>>);
    impl Drop for DroppedOn {
        fn drop(&mut self) {
            self.0.lock().unwrap().push(std::thread::current().id());
        }
    }

    #[test]
    fn a_reader_exiting_while_the_publisher_reclaims_never_frees_a_snapshot() {
        // The reader's thread exits holding generation 1 (retired, so only the reader's ack
        // keeps it) while the publisher reclaims as fast as it can. Whatever the interleaving,
        // generation 1's last reference drops here: the gone mark comes after the reader let go.
        // With the mark stored first, about one trial in four freed it on the reader's thread.
        const TRIALS: usize = 300;
        let me = std::thread::current().id();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        for _ in 0..TRIALS {
            let (mut p, mut rs) = new(Arc::new(DroppedOn(seen.clone())), 1);
            p.publish(Arc::new(DroppedOn(seen.clone()))).unwrap();
            let reader = rs.pop().unwrap();
            let go = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let go2 = go.clone();
            let t = std::thread::spawn(move || {
                while !go2.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
                drop(reader);
            });
            go.store(true, Ordering::Release);
            while p.reclaim() > 0 {
                std::hint::spin_loop();
            }
            t.join().unwrap();
            assert_eq!(p.min_acked(), 2, "the gone reader no longer counts");
            p.publish(Arc::new(DroppedOn(seen.clone()))).unwrap();
            assert_eq!(p.reclaim(), 0);
            drop(p);
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3 * TRIALS);
        assert!(
            seen.iter().all(|t| *t == me),
            "{} of {} snapshots were freed on the reader's thread",
            seen.iter().filter(|t| **t != me).count(),
            seen.len()
        );
    }

    #[test]
    fn a_dead_reader_with_a_full_channel_does_not_stop_publication() {
        let (mut p, mut rs) = new(Arc::new(0u32), 2);
        let dead = rs.pop().unwrap();
        for i in 0..DEPTH {
            p.publish(Arc::new(i as u32)).unwrap();
            rs[0].refresh();
        }
        assert_eq!(p.room(), 0, "reader 1 took nothing");
        // Its worker panics (or exits) without draining its channel.
        let died = std::thread::spawn(move || {
            let _holds = dead;
            panic!("worker died");
        })
        .join();
        assert!(died.is_err());
        for i in 0..3 * DEPTH {
            p.publish(Arc::new(100 + i as u32)).unwrap();
            assert_eq!(**rs[0].refresh(), 100 + i as u32);
        }
        assert_eq!(p.room(), DEPTH);
        assert_eq!(p.min_acked(), p.generation());
        assert_eq!(p.reclaim(), 0);
        // The live reader still stalls publication when it stops taking snapshots.
        for i in 0..DEPTH {
            p.publish(Arc::new(i as u32)).unwrap();
        }
        assert!(p.publish(Arc::new(99)).unwrap_err().contains("worker 0"));
    }

    #[test]
    fn dropped_reader_does_not_block_reclaim() {
        let (mut p, rs) = new(Arc::new(0u32), 1);
        drop(rs);
        p.publish(Arc::new(1)).unwrap();
        assert_eq!(p.reclaim(), 0);
    }
}
