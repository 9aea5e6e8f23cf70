//! The management thread: brings the data plane up, starts the workers, reloads the config on
//! SIGHUP by publishing a new snapshot, reclaims old ones, reports stats, and shuts down
//! cleanly, checking that every mbuf came back.
pub mod bgp;
pub mod control;
pub mod history;
pub mod notify;
pub mod observe;
pub mod punt;
pub mod reload;
pub mod startup;
pub mod stats;
pub mod stats_out;

use crate::config::{self, Config, Host};
use crate::datapath::worker::{Stop, Worker};
use crate::datapath::SharedCounters;
use crate::dpdk;
use crate::health::checker::Checker;
use crate::health::WorkerRings;
use crate::rcu;
use crate::route::{Previous, Snapshot};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the management loop wakes up.
const TICK: Duration = Duration::from_millis(10);
/// How long a rebuild waits for every worker to take the running table (they do within a
/// loop), so that counter slots it no longer maps can go to new rules and tunnels.
const ACK_WAIT: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub config: PathBuf,
    /// Stop after no packet has arrived for this long.
    pub exit_when_idle: Option<Duration>,
    pub stats_interval: Option<Duration>,
    pub stats_json: bool,
}

/// How a run ended, for the process exit code.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    /// Mbufs were missing from the pool at exit.
    Leaked(u32),
}

/// How long a second stop signal waits for the queued log records before it exits.
const SECOND_SIGNAL_LOG_WAIT: Duration = Duration::from_secs(1);

struct Signals {
    hup: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

impl Signals {
    fn register() -> Result<Signals, String> {
        let s = Signals {
            hup: Arc::new(AtomicBool::new(false)),
            term: Arc::new(AtomicBool::new(false)),
        };
        // The stop flags first: a signal that the counting thread below sees has set them.
        for (sig, flag) in [(SIGHUP, &s.hup), (SIGINT, &s.term), (SIGTERM, &s.term)] {
            signal_hook::flag::register(sig, flag.clone())
                .map_err(|e| format!("signal {sig}: {e}"))?;
        }
        // A second SIGINT/SIGTERM while shutting down exits at once, after the log records
        // queued so far (for `SECOND_SIGNAL_LOG_WAIT` at most); a third exits without them.
        let second = Arc::new(AtomicBool::new(false));
        for sig in [SIGINT, SIGTERM] {
            signal_hook::flag::register_conditional_shutdown(sig, 130, second.clone())
                .map_err(|e| format!("signal {sig}: {e}"))?;
        }
        let mut stops = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .map_err(|e| format!("signals: {e}"))?;
        std::thread::Builder::new()
            .name("ag-signal".into())
            .spawn(move || {
                // Two signals that come before this thread wakes count once: the next one
                // exits, and the third at the latest.
                for (n, _) in stops.forever().enumerate() {
                    if n >= 1 {
                        second.store(true, Ordering::SeqCst);
                        log::warn!("second stop signal: exiting at once, without a clean stop");
                        crate::log_format::flush(SECOND_SIGNAL_LOG_WAIT);
                        signal_hook::low_level::exit(130);
                    }
                }
            })
            .map_err(|e| format!("cannot start the signal thread: {e}"))?;
        Ok(s)
    }
}

/// Loads `path` for a reload: refused when invalid, or when it changes what needs a restart.
/// `host` is read before the EAL pins the main thread, so it lists every core.
pub fn load_for_reload(
    path: &std::path::Path,
    running: &Config,
    host: &Host,
) -> Result<Config, String> {
    let next = config::load(path, host).map_err(|e| e.to_string())?;
    let fixed = next.restart_required(running);
    if !fixed.is_empty() {
        return Err(format!(
            "{} changed; these need a restart ([node] but control_socket and control_group, [[tunnels]], [[neighbors]], [[routes]], [firewall], [health_checks], [bgp], punt.rate and punt.burst reload live; [arr] until the ARR table is made)",
            fixed.join(", ")
        ));
    }
    Ok(next)
}

pub fn run(opts: &RunOptions) -> Result<Outcome, String> {
    // Read the usable cores now: once the EAL runs, this thread is pinned to the main lcore.
    let host = Host::current();
    // Everything `check` refuses is refused here, before the EAL starts.
    let checked = crate::preflight::preflight(&opts.config, &host).map_err(|e| e.to_string())?;
    let mut cfg = checked.cfg;
    let mut rib = checked.rib;
    let signals = Signals::register()?;
    // Before the EAL: a socket that cannot be ours refuses the start at once.
    let mut control = match cfg.node.control_socket.as_str() {
        "" => {
            log::info!("node.control_socket is \"\": no control socket, `anygate ctl` is off");
            None
        }
        path => Some(control::Control::bind(
            std::path::Path::new(path),
            cfg.node.control_group.as_deref(),
        )?),
    };
    let metrics_listener = cfg.metrics.listen.map(crate::metrics::bind).transpose()?;
    let mut dp = startup::bring_up(&cfg)?;
    let macs = dp.macs();
    let first = checked.snapshot.with_port_macs(&macs);
    log_snapshot(&first);
    let (mut publisher, readers) = rcu::new(Arc::new(first), cfg.workers.len());
    let counters = Arc::new(SharedCounters::new(cfg.workers.len()));
    let stop: Stop = Default::default();

    // The exception port's kernel side, before any worker can send to it.
    let punt_port = cfg.punt.enabled.then_some(cfg.ports.len());
    let mut kernel = match punt_port.and_then(|p| macs.get(p)) {
        Some(mac) => Some(punt::KernelSide::start(&cfg.punt, *mac, &cfg)?),
        None => None,
    };
    let queues = worker_queues(&mut dp.ports, &cfg.workers, punt_port)?;
    // Each worker's inject (probes) and answer rings, for the health checker.
    let rings: Vec<Arc<WorkerRings>> = cfg.workers.iter().map(|_| Arc::default()).collect();
    // Each worker's tap, for `ctl trace` and `ctl capture`.
    let taps: Vec<Arc<crate::datapath::tap::Tap>> =
        cfg.workers.iter().map(|_| Arc::default()).collect();
    let jobs: Vec<Worker> = cfg
        .workers
        .iter()
        .zip(queues)
        .zip(readers)
        .enumerate()
        .map(|(wi, ((w, (rx, tx)), reader))| Worker {
            index: wi,
            core: w.core,
            rx,
            tx,
            snapshot: reader,
            counters: counters.clone(),
            pool: dp.pool.clone(),
            stop: stop.clone(),
            rings: rings[wi].clone(),
            tap: taps[wi].clone(),
            idle_backoff_us: cfg.dpdk.idle_backoff_us,
        })
        .collect();
    // Declared after `dp`: an early return drops (stops and joins) the workers first.
    let workers = Workers::start(jobs, stop.clone(), |wi, worker: Worker| {
        let core = worker.core;
        let h = std::thread::Builder::new()
            .name(format!("ag-worker-{wi}"))
            .spawn(move || worker.run())?;
        log::info!("worker {wi} on core {core} polls {:?}", cfg.workers[wi].rx);
        Ok(h)
    })?;

    let tsc_hz = dpdk::tsc_hz();
    let mut checker = Checker::new(tsc_hz, dpdk::tsc());
    let started = Instant::now();
    // The Prometheus endpoint: its own thread, fed a view from this loop (metrics::feed).
    let mut metrics_feed = None;
    let _metrics = match metrics_listener {
        Some(l) => {
            let shared = Arc::new(crate::metrics::Shared::new(counters.clone(), started));
            metrics_feed = Some(crate::metrics::feed::Feed::new(shared.clone()));
            Some(crate::metrics::Server::start(l, shared)?)
        }
        None => None,
    };
    let mut last_stats = Instant::now();
    let mut last_rx = 0u64;
    let mut last_rx_change = Instant::now();
    let report = |cfg: &Config,
                  snap: &Snapshot,
                  checker: &Checker,
                  final_report: bool,
                  mempool: Option<(u32, u32)>| {
        let r = stats::Report {
            cfg,
            counters: snap.counters(&counters),
            nic: dp.ports.iter().map(|p| p.stats()).collect(),
            uptime_s: started.elapsed().as_secs_f64(),
            generation: snap.generation,
            mempool,
            tsc_hz,
            final_report,
            xstats: Vec::new(),
            latency: None,
            health: tunnel_health(cfg, snap, checker),
        };
        if opts.stats_json {
            format!("{}\n", r.to_json())
        } else {
            r.to_text()
        }
    };
    // Periodic reports go through a writer thread: a reader that stops reading stdout costs
    // reports, never the loop's time.
    let mut stats_out = match opts.stats_interval {
        Some(_) => Some(
            stats_out::StatsOut::new(std::io::stdout())
                .map_err(|e| format!("cannot start the stats writer thread: {e}"))?,
        ),
        None => None,
    };

    if let Some(c) = &mut control {
        c.attach_taps(taps);
        c.start()?;
    }
    // Every worker thread is running and the control socket answers: ready for systemd. The
    // start-up log goes first (its records wait on the log's writer thread), for a second at
    // most: a stderr nobody reads does not hold readiness up.
    crate::log_format::flush(std::time::Duration::from_secs(1));
    let notify = notify::Notifier::from_env();
    notify.send(&format!(
        "READY=1\nSTATUS=forwarding with {} workers",
        cfg.workers.len()
    ));
    let mut runtime_routes = Vec::new();
    let mut obs = observe::Observe::new(Some(dp.pool.clone()));
    let mut bgp_state = crate::bgp::sync::Bgp::default();
    let mut bgp_link = bgp::Link::start(&cfg, crate::bgp::gobgp_spawn)?;
    let mut config_loaded = obs.config_loaded;
    loop {
        std::thread::sleep(TICK);
        let mut plane = control::Plane {
            cfg: &mut cfg,
            host: &host,
            macs: &macs,
            publisher: &mut publisher,
            rib: &mut rib,
            config_path: &opts.config,
            counters: &counters,
            runtime: &mut runtime_routes,
            checker: &mut checker,
            ports: &dp.ports,
            obs: &mut obs,
            bgp: &mut bgp_state,
        };
        if let Some(c) = &mut control {
            c.poll(&mut plane);
        }
        if signals.term.load(Ordering::Relaxed) {
            log::info!("signal received, stopping");
            break;
        }
        if signals.hup.swap(false, Ordering::Relaxed) {
            notify.reloading();
            if let Err(e) = reload::reload(&mut plane, false, "SIGHUP") {
                log::error!("reload refused, running table unchanged: {e}");
            }
            notify.send("READY=1");
        }
        // A reload (SIGHUP or ctl) may have changed the peers, or brought [bgp] in.
        if plane.obs.config_loaded != config_loaded {
            config_loaded = plane.obs.config_loaded;
            match &mut bgp_link {
                Some(l) => l.reloaded(),
                None => match bgp::Link::start(plane.cfg, crate::bgp::gobgp_spawn) {
                    Ok(l) => bgp_link = l,
                    Err(e) => log::error!("{e}"),
                },
            }
        }
        if let Some(l) = &mut bgp_link {
            l.tick(&mut plane);
        }
        run_checks(&mut plane, &rings);
        if let Some(k) = kernel.as_mut() {
            k.sync_if_changed(plane.cfg, plane.publisher.current().generation);
        }
        plane.obs.tick(
            plane.cfg,
            plane.publisher.current(),
            plane.ports,
            plane.counters,
        );
        if let Some(f) = metrics_feed.as_mut().filter(|f| f.due()) {
            f.publish(crate::metrics::feed::Parts {
                cfg: &cfg,
                snap: publisher.current(),
                rib: &rib,
                checker: &checker,
                nic: dp.ports.iter().map(|p| p.stats()).collect(),
                mempool: (dp.pool.size(), dp.pool.available()),
                tsc_hz,
                now_tsc: dpdk::tsc(),
            });
        }
        if let Some(t) = publisher.current().arr.as_deref() {
            crate::arr::tick(t);
        }
        publisher.reclaim();
        rib.reclaim(publisher.min_acked());
        if let Some(idle) = opts.exit_when_idle {
            // The rx cells alone: a whole read of every worker's block (~190 KB each, copied
            // and summed) every tick took this thread's time on a core a worker may share,
            // and pulled every line the workers publish into this core's cache.
            let rx = counters.rx_total();
            if rx != last_rx {
                last_rx = rx;
                last_rx_change = Instant::now();
            }
            if last_rx_change.elapsed() >= idle {
                log::info!("no packet for {} ms, stopping", idle.as_millis());
                break;
            }
        }
        if let Some(iv) = opts.stats_interval {
            if last_stats.elapsed() >= iv {
                last_stats = Instant::now();
                let r = report(&cfg, publisher.current(), &checker, false, None);
                if let Some(out) = &mut stats_out {
                    out.offer(r);
                }
            }
        }
    }

    // First of all, while the workers still forward: stop attracting traffic (our BGP
    // announcements withdrawn, gobgpd's peers deleted), bounded in time.
    if let Some(l) = bgp_link.take() {
        l.stop(crate::bgp::gobgp::STOP_WITHIN + std::time::Duration::from_millis(500));
    }
    // It holds the pool: let the pool go when the ports do.
    drop(obs);
    if let Some(out) = &stats_out {
        if out.dropped() > 0 {
            log::warn!(
                "{} periodic stats reports dropped: stdout was not read",
                out.dropped()
            );
        }
    }
    notify.send("STOPPING=1");
    let mut latency = crate::datapath::loop_histogram();
    for r in workers.join() {
        match r {
            Ok(hist) => {
                if latency.add(&hist).is_err() {
                    log::warn!("a worker's latency histogram could not be merged");
                }
            }
            Err(_) => log::error!("a worker thread panicked"),
        }
    }
    let left = publisher.reclaim();
    debug_assert_eq!(left, 0);
    let last = publisher.current().clone();
    drop(publisher);

    let startup::Dataplane { ports, pool, eal } = dp;
    let nic: Vec<dpdk::PortStats> = ports.iter().map(|p| p.stats()).collect();
    let xstats: Vec<Vec<(String, u64)>> = ports
        .iter()
        .map(|p| p.xstats().into_iter().filter(|(_, v)| *v != 0).collect())
        .collect();
    // Closing the ports flushes pcap outputs and returns the mbufs their rx rings held.
    drop(ports);
    let (size, avail) = (pool.size(), pool.available());
    let r = stats::Report {
        cfg: &cfg,
        counters: last.counters(&counters),
        nic,
        uptime_s: started.elapsed().as_secs_f64(),
        generation: last.generation,
        mempool: Some((size, avail)),
        tsc_hz,
        final_report: true,
        xstats,
        latency: Some(latency),
        health: tunnel_health(&cfg, &last, &checker),
    };
    let text = if opts.stats_json {
        format!("{}\n", r.to_json())
    } else {
        r.to_text()
    };
    // Behind the periodic reports still queued, by the writer thread: a reader that went
    // quiet holds the stop up for `FINAL_WAIT`, not until it reads (`print!` would wait, and
    // panic on a closed stdout).
    let out = match stats_out.take() {
        Some(out) => Ok(out),
        None => stats_out::StatsOut::new(std::io::stdout()),
    };
    match out.map(|out| out.finish(text, stats_out::FINAL_WAIT)) {
        Ok(stats_out::Finished::Written) => {}
        Ok(stats_out::Finished::NotRead) => log::warn!(
            "the final stats report was not written: stdout was not read within {} s",
            stats_out::FINAL_WAIT.as_secs()
        ),
        Ok(stats_out::Finished::Failed(e)) => {
            log::warn!("the final stats report could not be written to stdout: {e}")
        }
        Err(e) => log::warn!("the final stats report could not be written: no writer thread: {e}"),
    }
    drop(pool);
    drop(eal);
    if avail < size {
        log::error!("{} mbufs were not returned to the pool", size - avail);
        return Ok(Outcome::Leaked(size - avail));
    }
    Ok(Outcome::Clean)
}

/// Each worker's queues: its configured rx queues, and its own tx queue (its index) on every
/// port; with punt on, also its own rx queue (its index) of the exception port `punt`. Validation makes every (port, queue) pair exist and belong to one worker; a pair
/// that does not is refused here rather than shared.
type WorkerQueues = (Vec<(u16, dpdk::RxQueue)>, Vec<dpdk::TxQueue>);

fn worker_queues(
    ports: &mut [dpdk::Port],
    workers: &[crate::config::WorkerConf],
    punt: Option<usize>,
) -> Result<Vec<WorkerQueues>, String> {
    let mut all = Vec::new();
    for p in ports.iter_mut() {
        let (rx, tx) = p
            .take_queues()
            .ok_or_else(|| format!("port {}: queues already taken", p.name()))?;
        all.push((
            rx.into_iter().map(Some).collect::<Vec<_>>(),
            tx.into_iter().map(Some).collect::<Vec<_>>(),
        ));
    }
    let mut out = Vec::new();
    for (wi, w) in workers.iter().enumerate() {
        let mut rx = Vec::new();
        let from_kernel = punt.map(|p| (p as u16, wi as u16));
        for &(p, q) in w.rx.iter().chain(from_kernel.iter()) {
            let queue = all
                .get_mut(p as usize)
                .and_then(|(rx, _)| rx.get_mut(q as usize))
                .and_then(Option::take)
                .ok_or_else(|| format!("workers[{wi}]: rx queue {q} of port {p} is not free"))?;
            rx.push((p, queue));
        }
        let mut tx = Vec::new();
        for (p, (_, txs)) in all.iter_mut().enumerate() {
            let queue = txs
                .get_mut(wi)
                .and_then(Option::take)
                .ok_or_else(|| format!("workers[{wi}]: port {p} has no tx queue {wi}"))?;
            tx.push(queue);
        }
        out.push((rx, tx));
    }
    Ok(out)
}

/// The running worker threads. Dropped without [`Workers::join`] (an early return), it still
/// sets `stop` and joins them, so the ports, pool and EAL are never torn down under a running
/// burst.
struct Workers<T> {
    stop: Stop,
    handles: Vec<std::thread::JoinHandle<T>>,
}

impl<T> Workers<T> {
    /// Starts one thread per job with `spawn` (which fails as `thread::Builder::spawn` does,
    /// e.g. EAGAIN under a pids limit). When job `k` cannot start, the threads of jobs
    /// `0..k` are stopped and joined before the error returns.
    fn start<J>(
        jobs: impl IntoIterator<Item = J>,
        stop: Stop,
        mut spawn: impl FnMut(usize, J) -> std::io::Result<std::thread::JoinHandle<T>>,
    ) -> Result<Workers<T>, String> {
        let mut workers = Workers {
            stop,
            handles: Vec::new(),
        };
        for (i, job) in jobs.into_iter().enumerate() {
            // On error, `workers` drops here: stop, then join 0..i.
            let h = spawn(i, job).map_err(|e| format!("workers[{i}]: cannot start thread: {e}"))?;
            workers.handles.push(h);
        }
        Ok(workers)
    }

    /// Stops every worker and waits for each; their results in order (`Err`: it panicked).
    fn join(mut self) -> Vec<std::thread::Result<T>> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Vec<std::thread::Result<T>> {
        self.stop.store(true, Ordering::Relaxed);
        self.handles.drain(..).map(|h| h.join()).collect()
    }
}

impl<T> Drop for Workers<T> {
    fn drop(&mut self) {
        if self.handles.is_empty() {
            return;
        }
        let panicked = self.stop_and_join().iter().filter(|r| r.is_err()).count();
        if panicked > 0 {
            log::error!("{panicked} worker thread(s) panicked");
        }
    }
}

/// Builds the next table generation from `cfg` over the running one, keeping its ARP
/// entries, tunnel health and counter slots.
pub(super) fn rebuild(
    cfg: &Config,
    macs: &[crate::wire::MacAddr],
    publisher: &rcu::Publisher<Snapshot>,
    counters: &SharedCounters,
) -> Result<(Snapshot, crate::route::Rib), String> {
    let t = Instant::now();
    while publisher.min_acked() < publisher.generation() && t.elapsed() < ACK_WAIT {
        std::thread::sleep(Duration::from_micros(20));
    }
    // Acks first: a worker publishes its counters before it acks (`Reader::refresh_with`).
    let acked = publisher.min_acked();
    let raw = counters.total();
    let previous = Previous {
        snapshot: publisher.current(),
        acked,
        counters: &raw,
    };
    Snapshot::build_with_rib(cfg, macs, publisher.generation() + 1, Some(previous))
}

/// One tick of the health checks: answers and timeouts in, health changes published through
/// the same path as `set-health` (logged with the figures that caused them), then the probes
/// due out, once every worker has the generation they are tagged with.
fn run_checks(plane: &mut control::Plane, rings: &[Arc<WorkerRings>]) {
    let now = dpdk::tsc();
    plane
        .checker
        .sync(plane.cfg, plane.publisher.current(), now);
    let changes = plane.checker.tick(now, rings, plane.publisher.current());
    // All of a tick's changes in one generation: a mass failure is one publish, not one per
    // tunnel. Refused (a worker behind), they are found again and retried next tick.
    let batch: Vec<(u16, config::Health)> = changes.iter().map(|c| (c.index, c.to)).collect();
    match control::publish_health(plane.publisher, &batch) {
        Ok(Some((g, rebuilt))) => {
            for c in &changes {
                log::info!(
                    "health: tunnel {} {} -> {}: {}; generation {g}",
                    c.tunnel,
                    c.from.name(),
                    c.to.name(),
                    c.reason
                );
            }
            log::debug!("health: {rebuilt} route set(s) rebuilt for generation {g}");
        }
        Ok(None) => {}
        Err(e) => log::warn!(
            "health: {} change(s) not published, retried next tick: {e}",
            changes.len()
        ),
    }
    let current = plane.publisher.current();
    plane.checker.sync(plane.cfg, current, now);
    if plane.publisher.min_acked() >= plane.publisher.generation() {
        plane.checker.send(now, rings, current);
    }
}

/// Each tunnel's health in `snap` and its checks' figures, for the stats.
pub(crate) fn tunnel_health(
    cfg: &Config,
    snap: &Snapshot,
    checker: &Checker,
) -> Vec<(Option<config::Health>, Option<crate::health::checker::View>)> {
    let now = dpdk::tsc();
    cfg.tunnels
        .iter()
        .enumerate()
        .map(|(i, t)| (snap.health.get(i).copied(), checker.view(&t.name, now)))
        .collect()
}

fn log_snapshot(s: &Snapshot) {
    log::info!(
        "table generation {}: {} prefixes, {} next hops ({} by ARP), {} tbl8 groups, {:.1} MiB",
        s.generation,
        s.fib.len(),
        s.nexthops.len(),
        s.arp.len(),
        s.fib.tbl8_groups(),
        s.fib.memory_bytes() as f64 / (1 << 20) as f64
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A stand-in worker: polls `stop` as a worker does, counts itself out when it returns.
    fn poller(
        stop: &Stop,
        exited: &Arc<AtomicUsize>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let (stop, exited) = (stop.clone(), exited.clone());
        std::thread::Builder::new().spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
            exited.fetch_add(1, Ordering::SeqCst);
        })
    }

    #[test]
    fn a_worker_that_cannot_start_stops_and_joins_those_started() {
        const K: usize = 3;
        let stop: Stop = Default::default();
        let exited = Arc::new(AtomicUsize::new(0));
        let mut tried = 0;
        let r = Workers::start(0..6, stop.clone(), |i, _| {
            tried += 1;
            if i == K {
                // What a pids limit gives: EAGAIN.
                return Err(std::io::Error::from_raw_os_error(11));
            }
            poller(&stop, &exited)
        });
        let Err(e) = r else {
            panic!("worker {K} could not start, yet start succeeded")
        };
        assert!(e.starts_with("workers[3]: cannot start thread: "), "{e}");
        assert_eq!(tried, K + 1, "nothing is started after the failure");
        assert!(
            stop.load(Ordering::Relaxed),
            "the started workers were told to stop"
        );
        assert_eq!(
            exited.load(Ordering::SeqCst),
            K,
            "workers 0..{K} were joined before the error returned"
        );
    }

    #[test]
    fn workers_dropped_without_join_are_stopped_and_joined() {
        let stop: Stop = Default::default();
        let exited = Arc::new(AtomicUsize::new(0));
        let w = Workers::start(0..2, stop.clone(), |_, _| poller(&stop, &exited)).unwrap();
        assert_eq!(exited.load(Ordering::SeqCst), 0);
        drop(w); // as on an early return after the workers started
        assert!(stop.load(Ordering::Relaxed));
        assert_eq!(exited.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn join_returns_each_result_in_order() {
        let stop: Stop = Default::default();
        let w = Workers::start(0..3, stop.clone(), |i, _| {
            let stop = stop.clone();
            std::thread::Builder::new().spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                i * 10
            })
        })
        .unwrap();
        let got: Vec<usize> = w.join().into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(got, [0, 10, 20]);
    }
}
