//! The management thread's side of BGP: starts the adapter when `[bgp]` is present, takes a
//! bounded number of its events per tick into `bgp::sync` and applies what they change as
//! one route-table batch, and tells it what gobgpd must look like (at start, after each
//! reload, and when the table's prefixes change), never waiting on it.
use super::control::{apply_in_place, Plane};
use crate::bgp::{self, Desired, Event};
use crossbeam::channel::{bounded, Receiver, Sender, TrySendError};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Events taken per tick: a flood of updates is spread over ticks, not one long one.
pub const EVENTS_PER_TICK: usize = 64;
/// Channel depths. The adapter coalesces per peer while the channel is full.
const EVENT_QUEUE: usize = 1024;
const DESIRED_QUEUE: usize = 2;
/// A new `Desired` for table changes at most this often (reloads send one at once).
const DEBOUNCE: Duration = Duration::from_secs(1);
/// Keys the table refused are tried again at most this often.
const RETRY: Duration = Duration::from_secs(1);

pub struct Link {
    desired: Sender<Desired>,
    events: Receiver<Event>,
    /// Asks the adapter to withdraw our routes and end (`Link::stop`).
    stop: Sender<()>,
    /// The adapter's thread: never joined unbounded (it may be waiting on gobgpd); it ends
    /// when the sender goes, or after a stop.
    thread: std::thread::JoinHandle<()>,
    last_sent: Option<Desired>,
    /// The table generation the last `Desired` was built at.
    generation: u64,
    /// Send at the next chance, debounce or not (start, reload).
    urgent: bool,
    last_try: Instant,
    last_retry: Instant,
}

impl Link {
    /// Starts the adapter with `spawn` (its entry point) when `[bgp]` is configured.
    pub fn start(
        cfg: &crate::config::Config,
        spawn: impl FnOnce(
            Receiver<Desired>,
            Sender<Event>,
            Receiver<()>,
        ) -> std::io::Result<std::thread::JoinHandle<()>>,
    ) -> Result<Option<Link>, String> {
        if cfg.bgp.is_none() {
            return Ok(None);
        }
        let (dtx, drx) = bounded(DESIRED_QUEUE);
        let (etx, erx) = bounded(EVENT_QUEUE);
        let (stx, srx) = bounded(1);
        let thread =
            spawn(drx, etx, srx).map_err(|e| format!("bgp: cannot start the adapter: {e}"))?;
        log::info!("bgp: adapter started");
        Ok(Some(Link {
            desired: dtx,
            events: erx,
            stop: stx,
            thread,
            last_sent: None,
            generation: 0,
            urgent: true,
            last_try: Instant::now(),
            last_retry: Instant::now(),
        }))
    }

    /// At a clean stop, before the workers stop: the adapter withdraws everything we announce
    /// and deletes gobgpd's peers (and logs what it did), so that a data plane about to go
    /// stops attracting traffic first. Waits `within` at most: a stuck gobgpd does not hold
    /// the exit. True when the adapter finished in time.
    pub fn stop(self, within: Duration) -> bool {
        if self.stop.try_send(()).is_err() {
            return self.thread.is_finished();
        }
        let until = Instant::now() + within;
        while !self.thread.is_finished() {
            if Instant::now() >= until {
                log::warn!(
                    "bgp: the adapter did not finish withdrawing within {} ms; stopping anyway",
                    within.as_millis()
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// After a reload: the config may have changed peers; tell the adapter at once.
    pub fn reloaded(&mut self) {
        self.urgent = true;
    }

    /// One tick: events in, their batch applied, `Desired` out when due.
    pub fn tick(&mut self, plane: &mut Plane) {
        let mut touched = BTreeSet::new();
        for ev in self.events.try_iter().take(EVENTS_PER_TICK) {
            plane.bgp.event(plane.cfg, ev, &mut touched);
        }
        plane.bgp.expire_held_over(
            plane.cfg,
            Instant::now(),
            std::time::SystemTime::now(),
            &mut touched,
        );
        let retry = plane.bgp.has_pending() && self.last_retry.elapsed() >= RETRY;
        if retry {
            self.last_retry = Instant::now();
        }
        if !touched.is_empty() || retry {
            flush(plane, &touched, retry);
        }
        self.send_desired(plane);
    }

    fn send_desired(&mut self, plane: &Plane) {
        let g = plane.publisher.generation();
        let due = self.urgent || (g != self.generation && self.last_try.elapsed() >= DEBOUNCE);
        if !due {
            return;
        }
        self.last_try = Instant::now();
        let announce = bgp::desired::announced(plane.cfg, plane.rib);
        let Some(d) = bgp::desired::desired(plane.cfg, announce) else {
            // `[bgp]` was removed: no peers, nothing announced.
            let Some(mut d) = self.last_sent.clone() else {
                self.urgent = false;
                return;
            };
            d.peers.clear();
            d.announce.clear();
            self.offer(d, g);
            return;
        };
        self.offer(d, g);
    }

    fn offer(&mut self, d: Desired, g: u64) {
        if self.last_sent.as_ref() == Some(&d) {
            self.generation = g;
            self.urgent = false;
            return;
        }
        match self.desired.try_send(d.clone()) {
            Ok(()) => {
                log::debug!(
                    "bgp: desired sent: {} peer(s), {} prefix(es) announced",
                    d.peers.len(),
                    d.announce.len()
                );
                self.last_sent = Some(d);
                self.generation = g;
                self.urgent = false;
            }
            // Retried at the next debounce: the adapter is busy with the previous one.
            Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => {
                if self.urgent {
                    log::error!(
                        "bgp: the adapter thread has ended; gobgpd is no longer configured"
                    );
                }
                self.urgent = false;
                self.generation = g;
            }
        }
    }
}

/// Applies what the peers changed for `touched` as one batch, in place (or by a rebuild when
/// a port peer names a new gateway). Refused, each key is tried on its own, so that one bad
/// key (say, a 65th route at one priority) holds no other back; the keys still refused are
/// tried again later.
pub fn flush(plane: &mut Plane, touched: &BTreeSet<bgp::sync::Key>, retry: bool) {
    let plan = plane.bgp.plan(plane.rib, touched, retry);
    if plan.conflicts > 0 {
        log::warn!(
            "bgp: {} route(s) not installed: the file holds a `source = \"bgp\"` route for the same prefix and next hop",
            plan.conflicts
        );
    }
    let changes = plan.changes();
    if changes.is_empty() {
        plane.bgp.commit_all(plan);
        return;
    }
    if apply_in_place(plane, changes, "bgp", |i| Some(format!("bgp change {i}"))).is_ok() {
        plane.bgp.commit_all(plan);
        return;
    }
    for step in plan.steps {
        let r = if step.changes.is_empty() {
            Ok(Default::default())
        } else {
            apply_in_place(plane, step.changes.clone(), "bgp", |_| None)
        };
        let (prefix, via) = step.key;
        let via = plane.rib.via_name(via);
        if let Err(e) = &r {
            if plane.bgp.commit(step, false) {
                log::warn!(
                    "bgp: route {prefix} via {via} refused by the table, retried later: {e}"
                );
            }
        } else {
            plane.bgp.commit(step, true);
        }
    }
}
