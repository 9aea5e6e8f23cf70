//! Read-copy-update for immutable snapshots, in safe Rust.
//!
//! The management thread publishes a new `Arc<T>` to every worker through a bounded channel.
//! A worker checks its channel once per burst (a couple of plain loads when empty), switches
//! to the newest snapshot, and records the generation it now uses: that store is its
//! quiescent point. The publisher keeps every retired snapshot alive until all workers have
//! moved past it, so the last reference, and the free of a 64 MiB table, is always dropped
//! on the management thread, never on a worker.
use crossbeam::channel::{bounded, Receiver, Sender, TrySendError};
use crossbeam::utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Snapshots that may queue for one worker before publishing reports it stalled.
const DEPTH: usize = 8;

pub struct Publisher<T> {
    senders: Vec<Sender<(u64, Arc<T>)>>,
    acks: Arc<[CachePadded<AtomicU64>]>,
    current: Arc<T>,
    generation: u64,
    /// Snapshots replaced at generation `.0`, freed once every worker acked `.0`.
    retired: Vec<(u64, Arc<T>)>,
}

pub struct Reader<T> {
    rx: Receiver<(u64, Arc<T>)>,
    current: Arc<T>,
    generation: u64,
    acks: Arc<[CachePadded<AtomicU64>]>,
    index: usize,
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
            acks: acks.clone(),
            index,
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

    /// Publishes `next` as the following generation; returns its number. Fails, publishing
    /// nothing new to the stalled worker, when a worker has not drained earlier snapshots.
    pub fn publish(&mut self, next: Arc<T>) -> Result<u64, String> {
        let g = self.generation + 1;
        if let Some(i) = self.senders.iter().position(|s| s.is_full()) {
            return Err(format!(
                "worker {i} has not taken the last {DEPTH} snapshots"
            ));
        }
        for s in &self.senders {
            match s.try_send((g, next.clone())) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => unreachable!("only this thread sends"),
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
            .map(|s| DEPTH - s.len())
            .min()
            .unwrap_or(DEPTH)
    }

    /// The oldest generation any live worker still uses.
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
            self.acks[self.index].store(self.generation, Ordering::Release);
        }
        &self.current
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl<T> Drop for Reader<T> {
    /// A worker that exited holds nothing: it no longer delays reclamation.
    fn drop(&mut self) {
        self.acks[self.index].store(u64::MAX, Ordering::Release);
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

    #[test]
    fn dropped_reader_does_not_block_reclaim() {
        let (mut p, rs) = new(Arc::new(0u32), 1);
        drop(rs);
        p.publish(Arc::new(1)).unwrap();
        assert_eq!(p.reclaim(), 0);
    }
}
