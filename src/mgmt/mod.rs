//! The management thread: brings the data plane up, starts the workers, reloads the config on
//! SIGHUP by publishing a new snapshot, reclaims old ones, reports stats, and shuts down
//! cleanly, checking that every mbuf came back.
pub mod control;
pub mod reload;
pub mod startup;
pub mod stats;

use crate::config::{self, Config, Host};
use crate::datapath::worker::Worker;
use crate::datapath::SharedCounters;
use crate::dpdk;
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
        for sig in [SIGINT, SIGTERM] {
            // A second SIGINT/SIGTERM while shutting down exits at once.
            signal_hook::flag::register_conditional_shutdown(sig, 130, s.term.clone())
                .map_err(|e| format!("signal {sig}: {e}"))?;
        }
        for (sig, flag) in [(SIGHUP, &s.hup), (SIGINT, &s.term), (SIGTERM, &s.term)] {
            signal_hook::flag::register(sig, flag.clone())
                .map_err(|e| format!("signal {sig}: {e}"))?;
        }
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
            "{} changed; these need a restart ([node], [[tunnels]], [[neighbors]], [[routes]] and [firewall] reload live)",
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
        path => Some(
            control::Control::bind(std::path::Path::new(path))
                .map_err(|e| format!("node.control_socket: {e}"))?,
        ),
    };
    let dp = startup::bring_up(&cfg)?;
    let macs = dp.macs();
    let first = checked.snapshot.with_port_macs(&macs);
    log_snapshot(&first);
    let (mut publisher, readers) = rcu::new(Arc::new(first), cfg.workers.len());
    let counters = Arc::new(SharedCounters::new(cfg.workers.len()));
    let stop = Arc::new(AtomicBool::new(false));

    let mut handles = Vec::new();
    for (wi, (w, reader)) in cfg.workers.iter().zip(readers).enumerate() {
        let worker = Worker {
            index: wi,
            core: w.core,
            rx: w
                .rx
                .iter()
                .map(|&(p, q)| (p, dp.ports[p as usize].rx_queue(q)))
                .collect(),
            tx: dp.ports.iter().map(|p| p.tx_queue(wi as u16)).collect(),
            snapshot: reader,
            counters: counters.clone(),
            pool: dp.pool.clone(),
            stop: stop.clone(),
        };
        let h = std::thread::Builder::new()
            .name(format!("ag-worker-{wi}"))
            .spawn(move || worker.run())
            .map_err(|e| format!("workers[{wi}]: cannot start thread: {e}"))?;
        log::info!("worker {wi} on core {} polls {:?}", w.core, w.rx);
        handles.push(h);
    }

    let tsc_hz = dpdk::tsc_hz();
    let started = Instant::now();
    let mut last_stats = Instant::now();
    let mut last_rx = 0u64;
    let mut last_rx_change = Instant::now();
    let report =
        |cfg: &Config, snap: &Snapshot, final_report: bool, mempool: Option<(u32, u32)>| {
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
            };
            if opts.stats_json {
                println!("{}", r.to_json());
            } else {
                print!("{}", r.to_text());
            }
        };

    if let Some(c) = &mut control {
        c.start()?;
    }
    let mut runtime_routes = Vec::new();
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
        };
        if let Some(c) = &control {
            c.poll(&mut plane);
        }
        if signals.term.load(Ordering::Relaxed) {
            log::info!("signal received, stopping");
            break;
        }
        if signals.hup.swap(false, Ordering::Relaxed) {
            if let Err(e) = reload::reload(&mut plane, false, "SIGHUP") {
                log::error!("reload refused, running table unchanged: {e}");
            }
        }
        publisher.reclaim();
        rib.reclaim(publisher.min_acked());
        let rx = counters.total().rx_total();
        if rx != last_rx {
            last_rx = rx;
            last_rx_change = Instant::now();
        }
        if let Some(idle) = opts.exit_when_idle {
            if last_rx_change.elapsed() >= idle {
                log::info!("no packet for {} ms, stopping", idle.as_millis());
                break;
            }
        }
        if let Some(iv) = opts.stats_interval {
            if last_stats.elapsed() >= iv {
                last_stats = Instant::now();
                report(&cfg, publisher.current(), false, None);
            }
        }
    }

    stop.store(true, Ordering::Relaxed);
    let mut latency = crate::datapath::loop_histogram();
    for h in handles {
        match h.join() {
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
    };
    if opts.stats_json {
        println!("{}", r.to_json());
    } else {
        print!("{}", r.to_text());
    }
    drop(pool);
    drop(eal);
    if avail < size {
        log::error!("{} mbufs were not returned to the pool", size - avail);
        return Ok(Outcome::Leaked(size - avail));
    }
    Ok(Outcome::Clean)
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
