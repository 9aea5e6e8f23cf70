//! The anygate command line: run, check, trace.
use anygate::config::{self, Host};
use anygate::log_format::LogFormat;
use anygate::mgmt::{self, Outcome, RunOptions};
use anygate::trace::{self, TraceOptions};
use clap::{CommandFactory, Parser, Subcommand};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (DPDK ",
    env!("ANYGATE_DPDK_VERSION"),
    ")"
);

/// anygate(8)'s description (and `--help`'s): what the subcommands leave out.
const LONG_ABOUT: &str = "DPDK data plane for an anycast tunnel edge: GRE and IP-in-IP tunnels, \
a DIR-24-8 route table swapped by read-copy-update, a stateless firewall, one pinned poll-mode \
worker per [[workers]] entry. The configuration is described in anygate.toml(5).

Signals: SIGHUP reloads the config file (as `anygate ctl reload`); SIGINT and SIGTERM stop \
cleanly, a second one at once (status 130).

Exit status: 0 on success; 2 when a config, an argument or a request is refused; 3 when mbufs \
did not come back to the pool at exit; 130 after a second stop signal; 141 when `check`, `ctl` \
or `trace` finds its standard output closed (`| head`): it stops there quietly, as a command \
killed by SIGPIPE does.

Environment: RUST_LOG sets the log level (default info; logs go to stderr). NOTIFY_SOCKET, set \
by systemd for Type=notify, receives READY=1 once the workers poll, RELOADING=1 and READY=1 \
around a SIGHUP reload, and STOPPING=1 at shutdown.";

/// Stats reports come at most this often: each is a full report of every counter.
const MIN_STATS_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Parser)]
#[command(
    name = "anygate",
    version = VERSION,
    about = "DPDK data plane for an anycast tunnel edge",
    long_about = LONG_ABOUT
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the data plane until SIGINT or SIGTERM. SIGHUP reloads the config file: [node]
    /// (control_socket and control_group keep their values until a restart), [[tunnels]], [[neighbors]], [[routes]],
    /// [firewall], [health_checks], [bgp], punt.rate and punt.burst change live; a file that
    /// changes anything else ([dpdk], [[ports]], [[workers]], [metrics], [arr] once its table
    /// exists) is refused, and so is an invalid one.
    Run {
        /// The config file (see anygate.toml(5)).
        #[arg(long)]
        config: PathBuf,
        /// Stop once no packet has arrived for this many milliseconds.
        #[arg(long, value_name = "MS")]
        exit_when_idle: Option<u64>,
        /// Print counters every S seconds, at least 0.1 (they are always printed on exit).
        /// A periodic report that stdout is not ready to take is dropped, not waited for;
        /// the final one is waited for at most 5 s.
        #[arg(long, value_name = "S", allow_negative_numbers = true)]
        stats_interval: Option<f64>,
        /// Print counters as one JSON object per line.
        #[arg(long)]
        stats_json: bool,
        /// The log on stderr: text lines, or one JSON object per line with the fields ts,
        /// level, target and msg.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Validate a config and build its route table, as `run` does before starting DPDK.
    Check {
        /// The config file (see anygate.toml(5)).
        #[arg(long)]
        config: PathBuf,
    },
    /// Talk to a running anygate through its control socket.
    Ctl {
        /// The socket; default: node.control_socket of --config, else /run/anygate.sock.
        #[arg(long, global = true)]
        socket: Option<PathBuf>,
        /// Read the socket path from this config file (only `node.control_socket` is read,
        /// so a file with an error elsewhere still works).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        /// Print the reply as JSON (before or after the subcommand).
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        action: CtlCmd,
    },
    /// Say what the data plane would do with each packet of a capture, without DPDK.
    Trace {
        /// The config file (see anygate.toml(5)).
        #[arg(long)]
        config: PathBuf,
        /// The capture to trace: pcap or pcapng, of Ethernet frames or raw IPv4 packets
        /// (LINKTYPE_RAW, given an Ethernet header to the port); other link types are refused.
        #[arg(long)]
        pcap: PathBuf,
        /// Write the forwarded packets, as rewritten, to this capture (pcap; not --pcap's file).
        #[arg(long)]
        out: Option<PathBuf>,
        /// One JSON object per packet.
        #[arg(long)]
        json: bool,
        /// The port the capture arrives on (default: the first port).
        #[arg(long)]
        port: Option<String>,
    },
    /// Write the man pages anygate.8, anygate-ctl.8 and anygate.toml.5 into DIR (packaging).
    #[command(hide = true)]
    Man { dir: PathBuf },
}

#[derive(Subcommand)]
enum CtlCmd {
    /// Show the route table, tunnels, firewall, stats, ports, neighbours, status, ARR flows
    /// or BGP (read-only: also for node.control_group).
    Show {
        #[command(subcommand)]
        what: ShowWhat,
    },
    /// Set a tunnel's health by hand: healthy, degraded (+500000) or down (+1000000), which the
    /// health checks then leave alone; or auto, which hands it back to them.
    SetHealth {
        /// The tunnel's name.
        tunnel: String,
        /// healthy, degraded, down or auto.
        health: String,
    },
    /// Add a route; validated with the whole table, applied or refused whole.
    AddRoute {
        /// The destination prefix (CIDR, no host bits), as `[[routes]] prefix`.
        #[arg(long)]
        prefix: String,
        /// A tunnel name, a tunnel's customer-side address, a `[[neighbors]]` entry or an
        /// address on a port's subnet, as `[[routes]] nexthop`.
        #[arg(long)]
        nexthop: String,
        /// Lower wins (default 100, the priority BGP routes enter with).
        #[arg(long, value_name = "N", allow_negative_numbers = true,
              value_parser = clap::value_parser!(u32).range(0..=i64::from(u32::MAX)))]
        priority: Option<u32>,
        /// The ECMP share, 1 to 256 (absent counts as 100).
        #[arg(long, value_name = "W", allow_negative_numbers = true,
              value_parser = clap::value_parser!(u16).range(1..=256))]
        weight: Option<u16>,
        /// static (the default) or bgp: at equal priority static wins.
        #[arg(long)]
        source: Option<String>,
        /// Visible only in this region (repeatable; with --colo: either matches).
        #[arg(long)]
        region: Vec<String>,
        /// Visible only in this colo (repeatable).
        #[arg(long)]
        colo: Vec<String>,
        /// Free text, shown by `show routes`.
        #[arg(long)]
        description: Option<String>,
    },
    /// Remove the routes with this prefix and next hop, as written in the config.
    DelRoute {
        /// The route's prefix, as added.
        #[arg(long)]
        prefix: String,
        /// The route's next hop, as added (a tunnel name or an address).
        #[arg(long)]
        nexthop: String,
    },
    /// Apply a batch of route changes from a TOML file, whole or not at all: `[[del]]`
    /// tables (`prefix`, `nexthop`) are withdrawn, then `[[add]]` tables (the `[[routes]]`
    /// keys) added. The FIB is edited in place.
    UpdateRoutes { file: PathBuf },
    /// Reset what the views count: `clear counters` (show stats, tunnels and firewall count
    /// from now; the raw counters, the final stats and --stats-json keep counting).
    Clear {
        #[command(subcommand)]
        what: ClearWhat,
    },
    /// Reload the config file, as SIGHUP does; says which routes it removed and added.
    /// Routes added with ctl are kept (when still valid) unless --discard-runtime.
    Reload {
        /// Drop the routes added with ctl since the last reload.
        #[arg(long)]
        discard_runtime: bool,
    },
    /// Trace the next packets the workers see, as `anygate trace` does offline (at most 1000;
    /// answered when they came, or after 10 s with those that did).
    Trace {
        #[arg(long, default_value_t = 10)]
        count: u32,
        /// Only packets received on this port.
        #[arg(long)]
        port: Option<String>,
        /// Only packets decapsulated from or encapsulated into this tunnel.
        #[arg(long)]
        tunnel: Option<String>,
    },
    /// Copy the next packets the workers receive, as received, into a capture file (at most
    /// 4096; the first 2048 bytes of each; after 10 s, those that came).
    Capture {
        #[arg(long)]
        count: u32,
        /// The file to write (pcap; pcapng with --drops-only). Opened before the capture is
        /// asked for: a path that cannot be written fails at once.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Only packets received on this port.
        #[arg(long)]
        port: Option<String>,
        /// Only dropped packets, each with its drop reason as a pcapng comment.
        #[arg(long)]
        drops_only: bool,
    },
}

#[derive(Subcommand)]
enum ShowWhat {
    /// For each prefix: the selected group, every candidate with its priority, effective
    /// priority, health, description and why it lost, and routes scoped elsewhere.
    Routes {
        /// A prefix (exactly that prefix) or an address (the longest prefix covering it, as
        /// forwarding finds it). Exits non-zero when the table has nothing for it.
        #[arg(value_name = "PREFIX|ADDRESS", conflicts_with_all = ["all", "cursor"])]
        query: Option<String>,
        /// Every prefix: the client asks page after page (a page is at most 1000 prefixes;
        /// without --all, a reply ends with the `cursor` of the next page).
        #[arg(long, conflicts_with = "cursor")]
        all: bool,
        /// Start the page at this prefix (the `cursor` a previous page gave).
        #[arg(long, value_name = "PREFIX")]
        cursor: Option<String>,
    },
    /// Tunnels with their endpoints, health, MTU, MSS clamp and counters.
    Tunnels {
        /// Instead, each tunnel's per-second ingress and egress rates (packets and bits per
        /// second) over the last 300 seconds, newest last.
        #[arg(long)]
        history: bool,
        /// Only this tunnel's history.
        #[arg(long, value_name = "NAME", requires = "history")]
        tunnel: Option<String>,
    },
    /// The firewall's rules in order, each with the packets and bytes it decided.
    Firewall,
    /// Live counters as the final stats print them (ports, drops by reason, tunnels, workers,
    /// mempool), since the last `clear counters`.
    Stats,
    /// Each port: link state and speed, MAC, address, MTU, queues, NIC counters.
    Ports,
    /// The ARP cache and static neighbours: address, MAC, port, state, age.
    Neighbors,
    /// Versions, uptime, table generation, config file, workers and their cores.
    Status,
    /// The ARR flow table: entries, capacity, learned/expired/refused, top tunnels by flows.
    Arr,
    /// BGP: the gobgpd adapter's connection and each peer's state, uptime, negotiated hold
    /// and keepalive, graceful restart, prefixes received / accepted / refused / advertised.
    Bgp,
}

#[derive(Subcommand)]
enum ClearWhat {
    /// The counters the views show.
    Counters,
}

fn ctl(socket: Option<PathBuf>, config: Option<PathBuf>, json: bool, action: CtlCmd) -> ExitCode {
    let path = match (socket, config) {
        (Some(s), _) => s,
        (None, Some(c)) => match anygate::ctl::socket_from_config(&c) {
            Ok(p) => p,
            Err(e) => return fail(&e),
        },
        (None, None) => PathBuf::from(config::default_control_socket()),
    };
    use anygate::ctl_proto::Request;
    if path.as_os_str().is_empty() {
        return fail("node.control_socket is \"\": the control socket is disabled");
    }
    let req = match action {
        CtlCmd::Trace {
            count,
            port,
            tunnel,
        } => {
            return ctl_trace(
                &path,
                json,
                Request::Trace {
                    count,
                    port,
                    tunnel,
                },
            )
        }
        CtlCmd::Capture {
            count,
            out,
            port,
            drops_only,
        } => {
            let req = Request::Capture {
                count,
                port,
                drops_only,
            };
            return ctl_capture(&path, &req, &out, drops_only);
        }
        CtlCmd::Show {
            what: ShowWhat::Routes { all: true, .. },
        } => None,
        CtlCmd::Show {
            what: ShowWhat::Routes { query, cursor, .. },
        } => Some(Request::ShowRoutes {
            prefix: query,
            cursor,
        }),
        CtlCmd::Show {
            what: ShowWhat::Tunnels { history, tunnel },
        } => Some(Request::ShowTunnels { history, tunnel }),
        CtlCmd::Show {
            what: ShowWhat::Firewall,
        } => Some(Request::ShowFirewall {}),
        CtlCmd::Show {
            what: ShowWhat::Arr,
        } => Some(Request::ShowArr {}),
        CtlCmd::Show {
            what: ShowWhat::Bgp,
        } => Some(Request::ShowBgp {}),
        CtlCmd::SetHealth { tunnel, health } => match anygate::ctl::health(&health) {
            Ok(health) => Some(Request::SetHealth { tunnel, health }),
            Err(e) => return fail(&e),
        },
        CtlCmd::AddRoute {
            prefix,
            nexthop,
            priority,
            weight,
            source,
            region,
            colo,
            description,
        } => match anygate::ctl::route(
            &prefix,
            &nexthop,
            priority,
            weight,
            source.as_deref(),
            &region,
            &colo,
            description.as_deref(),
        ) {
            Ok(route) => Some(Request::AddRoute { route }),
            Err(e) => return fail(&e),
        },
        CtlCmd::DelRoute { prefix, nexthop } => Some(Request::DelRoute { prefix, nexthop }),
        CtlCmd::UpdateRoutes { file } => match anygate::ctl::update_request(&file) {
            Ok(r) => Some(r),
            Err(e) => return fail(&e),
        },
        CtlCmd::Reload { discard_runtime } => Some(Request::Reload { discard_runtime }),
        CtlCmd::Show {
            what: ShowWhat::Stats,
        } => Some(Request::ShowStats {}),
        CtlCmd::Show {
            what: ShowWhat::Ports,
        } => Some(Request::ShowPorts {}),
        CtlCmd::Show {
            what: ShowWhat::Neighbors,
        } => Some(Request::ShowNeighbors {}),
        CtlCmd::Show {
            what: ShowWhat::Status,
        } => Some(Request::ShowStatus {}),
        CtlCmd::Clear {
            what: ClearWhat::Counters,
        } => Some(Request::ClearCounters {}),
    };
    let reply = match req {
        Some(req) => anygate::ctl::request(&path, &req),
        None => anygate::ctl::show_all_routes(&path),
    };
    match reply {
        Ok(mut reply) if reply.ok => {
            let text = if json {
                // The views' `text` is their rendering, not a figure.
                reply.body.remove("text");
                format!("{}\n", reply.to_value())
            } else {
                anygate::ctl::render(&reply.to_value())
            };
            match print(&text) {
                Ok(()) => ExitCode::SUCCESS,
                Err(code) => code,
            }
        }
        Ok(reply) => {
            if json {
                if let Err(code) = print(&format!("{}\n", reply.to_value())) {
                    return code;
                }
            }
            fail(&format!(
                "refused: {}",
                reply.error.as_deref().unwrap_or("?")
            ))
        }
        Err(e) => fail(&e),
    }
}

/// `ctl trace`: the packets as `anygate trace` prints them, the summary on stderr.
fn ctl_trace(path: &Path, json: bool, req: anygate::ctl_proto::Request) -> ExitCode {
    let want = match req {
        anygate::ctl_proto::Request::Trace { count, .. } => count,
        _ => 0,
    };
    match anygate::ctl::request(path, &req) {
        Ok(reply) if reply.ok => {
            if let Err(code) = print(&anygate::ctl_tap::render_trace(&reply, json)) {
                return code;
            }
            anygate::log_format::flush(LOG_WAIT);
            note(&anygate::ctl_tap::summary(&reply, "traced", want));
            ExitCode::SUCCESS
        }
        Ok(reply) => fail(&format!(
            "refused: {}",
            reply.error.as_deref().unwrap_or("?")
        )),
        Err(e) => fail(&e),
    }
}

/// `ctl capture`: the daemon sends the packets, this writes the file.
fn ctl_capture(
    path: &Path,
    req: &anygate::ctl_proto::Request,
    out: &Path,
    pcapng: bool,
) -> ExitCode {
    let want = match req {
        anygate::ctl_proto::Request::Capture { count, .. } => *count,
        _ => 0,
    };
    // Opened before asking: a path that cannot be written fails now, not after the wait.
    let (file, created) = match anygate::ctl_tap::open_out(out) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let reply = match anygate::ctl::request(path, req) {
        Ok(r) if r.ok => Ok(r),
        Ok(r) => Err(format!("refused: {}", r.error.as_deref().unwrap_or("?"))),
        Err(e) => Err(e),
    };
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            // Leave no empty file behind a capture that did not happen.
            if created {
                let _ = std::fs::remove_file(out);
            }
            return fail(&e);
        }
    };
    let written = anygate::ctl_tap::captured(&reply)
        .and_then(|p| anygate::ctl_tap::write_to(file, out, &p, pcapng));
    if let Err(e) = written {
        return fail(&e);
    }
    let what = format!("captured into {}", out.display());
    anygate::log_format::flush(LOG_WAIT);
    note(&anygate::ctl_tap::summary(&reply, &what, want));
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let code = cli_main();
    // The log's writer thread may still hold records: let them out, for a bounded time.
    anygate::log_format::flush(LOG_WAIT);
    code
}

/// How long the exit, or an error printed after logged lines, waits for queued log records.
const LOG_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn cli_main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = match &cli.cmd {
        Cmd::Run { log_format, .. } => *log_format,
        _ => LogFormat::Text,
    };
    anygate::log_format::init(log_format);
    match cli.cmd {
        Cmd::Run {
            config,
            exit_when_idle,
            stats_interval,
            stats_json,
            ..
        } => {
            let interval = match stats_interval.map(|s| (s, Duration::try_from_secs_f64(s))) {
                Some((_, Ok(d))) if d >= MIN_STATS_INTERVAL => Some(d),
                // `{:?}`: 1e300 as written, not as 301 digits.
                Some((s, _)) => {
                    return fail(&format!(
                        "--stats-interval: {s:?} is not a number of seconds from {} to {:.1e}",
                        MIN_STATS_INTERVAL.as_secs_f64(),
                        u64::MAX as f64
                    ))
                }
                None => None,
            };
            let opts = RunOptions {
                config,
                exit_when_idle: exit_when_idle.map(Duration::from_millis),
                stats_interval: interval,
                stats_json,
            };
            match mgmt::run(&opts) {
                Ok(Outcome::Clean) => ExitCode::SUCCESS,
                Ok(Outcome::Leaked(_)) => ExitCode::from(3),
                Err(e) => fail(&e),
            }
        }
        Cmd::Check { config } => match anygate::preflight::preflight(&config, &Host::current()) {
            Ok(anygate::preflight::Checked { cfg: c, .. }) => {
                let mut text = format!(
                    "{}: OK ({}, {}, {}, {})\n",
                    config.display(),
                    count(c.ports.len(), "port"),
                    count(c.workers.len(), "worker"),
                    count(c.neighbors.len(), "neighbor"),
                    count(c.routes.len(), "route")
                );
                // What sysfs tells about the PCI ports: present, bound, on the workers' node.
                for n in anygate::pci::notes(&c, std::path::Path::new("/sys")) {
                    text += &format!("note: {n}\n");
                }
                match print(&text) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(code) => code,
                }
            }
            Err(e) => fail(&format!("{}: config refused\n{e}", config.display())),
        },
        Cmd::Ctl {
            socket,
            config,
            json,
            action,
        } => ctl(socket, config, json, action),
        Cmd::Man { dir } => match anygate::man::write_all(&dir, Cli::command()) {
            Ok(pages) => {
                let list: String = pages.iter().map(|p| format!("{}\n", p.display())).collect();
                match print(&list) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(code) => code,
                }
            }
            Err(e) => fail(&format!("{}: {e}", dir.display())),
        },
        Cmd::Trace {
            config,
            pcap,
            out,
            json,
            port,
        } => {
            let cfg = match config::load(&config, &Host::current()) {
                Ok(c) => c,
                Err(e) => return fail(&format!("{}: config refused\n{e}", config.display())),
            };
            let in_port = match port.as_deref().map(|n| cfg.port_index(n).ok_or(n)) {
                None => 0,
                Some(Ok(i)) => i,
                Some(Err(n)) => return fail(&format!("--port: no port named `{n}`")),
            };
            let opts = TraceOptions {
                pcap: &pcap,
                out: out.as_deref(),
                json,
                in_port,
            };
            let mut stdout = Stdout::default();
            match trace::trace(&cfg, &opts, &mut stdout) {
                Ok(s) => {
                    anygate::log_format::flush(LOG_WAIT);
                    note(&format!(
                        "{} packets: {} forwarded, {} dropped ({} answered with an ICMP error), \
                         {} health probe answers",
                        s.packets, s.forwarded, s.dropped, s.answered, s.probes
                    ));
                    ExitCode::SUCCESS
                }
                Err(_) if stdout.closed => ExitCode::from(STDOUT_CLOSED),
                Err(e) => fail(&e),
            }
        }
    }
}

/// "1 route", "2 routes".
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn fail(msg: &str) -> ExitCode {
    // After the records logged before it, not among them; and not at all into a stderr
    // that does not take them (the write would block).
    if anygate::log_format::flush(LOG_WAIT) {
        note(&format!("anygate: {msg}"));
    }
    ExitCode::from(2)
}

/// The exit status when stdout was closed under us (`| head`): 128 + SIGPIPE, what a shell
/// reports for a command the signal ended, as it ends most Unix tools (Rust ignores it).
const STDOUT_CLOSED: u8 = 141;

/// Stdout, remembering that its reader went away (the write failed with EPIPE).
#[derive(Default)]
struct Stdout {
    closed: bool,
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = std::io::stdout().lock().write(buf);
        self.closed |= r.as_ref().is_err_and(|e| e.kind() == ErrorKind::BrokenPipe);
        r
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let r = std::io::stdout().lock().flush();
        self.closed |= r.as_ref().is_err_and(|e| e.kind() == ErrorKind::BrokenPipe);
        r
    }
}

/// Prints `text` on stdout; Err: the exit status, quietly STDOUT_CLOSED when nobody reads
/// it any more, else after the error on stderr. `print!` would panic (and abort) instead.
fn print(text: &str) -> Result<(), ExitCode> {
    let mut out = Stdout::default();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(_) if out.closed => Err(ExitCode::from(STDOUT_CLOSED)),
        Err(e) => Err(fail(&format!("writing to stdout: {e}"))),
    }
}

/// A line on stderr; lost, rather than a panic, when stderr is closed.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
