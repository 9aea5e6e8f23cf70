//! The control socket under clients that misbehave, on the real binary: silent, trickling,
//! too many, too big, malformed, slow to read; pages of `show routes` on a big table; the
//! socket path held by a file or by a live instance. Nothing a client does may delay the
//! management thread (stats, other clients).
mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn config(d: &Dir, prefix: &str, extra: &str) -> String {
    format!(
        r#"{live}
[[tunnels]]
name = "T1"
type = "gre"
customer_endpoint = "192.0.2.50"
edge_endpoint = "203.0.113.10"
interface_address = "10.255.0.2/31"
{extra}"#,
        live = live_config(d, prefix),
    )
}

/// Starts anygate on `cfg` (stats every 0.2 s) once its first stats are out, ctl is served.
fn start(d: &Dir, cfg: &str) -> Running {
    // One frame, not for us, replayed forever: the workers stay busy, the run never idles.
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x99]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    write_pcap(&d.p("in.pcap"), &[f]);
    std::fs::write(d.p("ctl.toml"), cfg).unwrap();
    let mut r = Running::start(&d.p("ctl.toml"), "0.2", d.p("stderr.log"));
    r.next_stats();
    r
}

fn connect(d: &Dir) -> UnixStream {
    UnixStream::connect(d.p("ctl.sock")).unwrap()
}

/// One reply line, read within `wait`.
fn reply(s: &UnixStream, wait: Duration) -> Value {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

/// Sends `raw` as it is (as much as the server takes) and reads the reply.
fn raw(d: &Dir, raw: &[u8], wait: Duration) -> Value {
    let s = connect(d);
    let _ = (&s).write_all(raw);
    reply(&s, wait)
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `ctl show tunnels` works and answers within `limit`.
fn answers_within(d: &Dir, limit: Duration) {
    let t = Instant::now();
    let (ok, v, e) = ctl(d, &["show", "tunnels"]);
    assert!(ok, "{e}");
    assert_eq!(v["tunnels"][0]["name"], "T1");
    assert!(t.elapsed() < limit, "show tunnels took {:?}", t.elapsed());
}

/// Under traffic, `show stats` gives each worker's busy-loop percentiles live (the workers
/// publish their loop buckets about once a second), ordered and plausible.
fn live_loop_percentiles(d: &Dir) {
    let (ok, v, e) = ctl(d, &["show", "stats"]);
    assert!(ok, "{e}");
    let st = &v["stats"];
    let ordered = |l: &Value| {
        let p =
            ["p50", "p99", "p99_9"].map(|k| l[k].as_u64().unwrap_or_else(|| panic!("{k}: {l}")));
        // A busy loop takes more than a few cycles and less than a second (~2^32 cycles).
        assert!(
            p[0] >= 8 && p[0] <= p[1] && p[1] <= p[2] && p[2] < 1 << 32,
            "{l}"
        );
        p
    };
    let w = &st["workers"][0];
    let p = ordered(&w["loop_cycles"]);
    // The mean of the same loops the buckets hold (`cycles_per_loop` is newer by up to a
    // second, and early, cold loops can make the two windows differ eightfold under load).
    let samples = w["loop_cycles"]["samples"].as_u64().unwrap();
    assert!(samples > 0);
    let mean = w["loop_cycles"]["cycles"].as_u64().unwrap() as f64 / samples as f64;
    // Half the loops take at least the median, so the mean is at least half of it; the
    // median is read as the top of its bucket, up to 1/8 high.
    assert!(p[0] as f64 <= 2.25 * mean + 1.0, "mean {mean} vs {p:?}");
    assert!(w["cycles_per_loop"].as_u64().is_some());
    ordered(&st["loop_cycles"]);
    let out = Command::new(BIN)
        .args([
            "ctl",
            "--socket",
            d.p("ctl.sock").to_str().unwrap(),
            "show",
            "stats",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("p50/p99/p99.9 "), "{text}");
    assert!(
        text.contains("busy loop (a burst received, processed, sent): p50 "),
        "{text}"
    );
}

#[test]
fn silent_and_trickling_clients_delay_neither_other_clients_nor_stats() {
    let _g = lock();
    let d = Dir::new();
    let mut r = start(&d, &config(&d, "ag-ctl1", ""));
    let idle: Vec<UnixStream> = (0..3).map(|_| connect(&d)).collect();
    let trickle = connect(&d);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let t = std::thread::spawn(move || {
        // A byte every 0.3 s, never a newline.
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            if (&trickle).write_all(b" ").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    answers_within(&d, Duration::from_secs(1));
    live_loop_percentiles(&d);
    // Stats keep their 0.2 s pace: 5 reports in well under 2 s.
    let t0 = Instant::now();
    let mut periodic = Value::Null;
    for _ in 0..5 {
        periodic = r.next_stats();
    }
    // The periodic --stats-json reports carry the live percentiles too.
    let p = ["p50", "p99", "p99_9"].map(|k| periodic["loop_cycles"][k].as_u64().unwrap_or(0));
    assert!(
        p[0] > 0 && p[0] <= p[1] && p[1] <= p[2],
        "{}",
        periodic["loop_cycles"]
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    answers_within(&d, Duration::from_secs(1));
    // The silent ones are told, once their 5 s are up.
    let v = reply(&idle[0], Duration::from_secs(6));
    assert_eq!(v["error"], "no complete request within 5 s");
    // Over 6 s in, the management thread has sampled each tunnel's history every second.
    let (ok, v, e) = ctl(&d, &["show", "tunnels", "--history", "--tunnel", "T1"]);
    assert!(ok, "{e}");
    let h = &v["history"][0];
    assert_eq!((&h["name"], &h["interval_s"]), (&json!("T1"), &json!(1)));
    let n = h["t"].as_array().unwrap().len();
    assert!((4..=300).contains(&n), "{n} samples: {h}");
    for k in ["rx_pps", "tx_pps", "rx_bps", "tx_bps"] {
        assert_eq!(h[k].as_array().unwrap().len(), n, "{k}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    t.join().unwrap();
    r.finish();
}

#[test]
fn the_seventeenth_client_is_turned_away_and_an_oversized_request_refused() {
    let _g = lock();
    let d = Dir::new();
    let r = start(&d, &config(&d, "ag-ctl2", ""));
    let pid = r.child.id();
    let idle: Vec<UnixStream> = (0..20).map(|_| connect(&d)).collect();
    for s in &idle[16..] {
        let v = reply(s, Duration::from_secs(2));
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"], "too many clients (at most 16 at once)");
    }
    drop(idle);
    std::thread::sleep(Duration::from_millis(200));
    answers_within(&d, Duration::from_secs(1));

    // 32 MB without a newline: refused after the first MiB; memory does not follow.
    let before = rss_kib(pid);
    let v = raw(&d, &vec![b'x'; 32 << 20], Duration::from_secs(5));
    assert_eq!(v["error"], "request longer than 1048576 bytes");
    let after = rss_kib(pid);
    assert!(after < before + 8 * 1024, "RSS {before} -> {after} KiB");
    answers_within(&d, Duration::from_secs(1));
    assert!(r.stderr().contains("request refused: request longer than"));
    r.finish();
}

#[test]
fn malformed_requests_are_refused_and_changes_are_logged_with_the_uid() {
    let _g = lock();
    let d = Dir::new();
    let r = start(&d, &config(&d, "ag-ctl3", ""));
    let uid = std::fs::metadata(d.0.path()).unwrap().uid();
    let w = Duration::from_secs(2);
    let generation = |d: &Dir| ctl(d, &["show", "tunnels"]).1["generation"].clone();
    let g0 = generation(&d);
    let cases: [(&[u8], &str); 8] = [
        (
            br#"{"version":1,"cmd":"update-routes","add":5,"del":"x"}"#,
            "invalid type: integer `5`, expected a sequence",
        ),
        (
            br#"{"version":1,"cmd":"show-routes","cmd":"reload"}"#,
            "duplicate key `cmd`",
        ),
        (
            br#"{"version":1,"cmd":"show-routes","prefix":5}"#,
            "invalid type: integer `5`, expected a string",
        ),
        (
            br#"{"version":1,"cmd":"show-routes","prefix":"garbage"}"#,
            "`garbage` is neither an IPv4 address nor a prefix",
        ),
        (
            b"{\"version\":1,\"cmd\":\"show-\xff\"}",
            "request is not UTF-8",
        ),
        (
            br#"{"version":1,"cmd":"reload","discard":true}"#,
            "unknown field `discard`",
        ),
        (br#"{"cmd":"show-tunnels"}"#, "missing \"version\""),
        (
            br#"{"version":1,"cmd":"set-health","tunnel":"T9","health":"down"}"#,
            "no tunnel named `T9`",
        ),
    ];
    for (req, want) in cases {
        let mut line = req.to_vec();
        line.push(b'\n');
        let v = raw(&d, &line, w);
        assert_eq!(v["ok"], false, "{v}");
        assert_eq!(v["version"], 1, "{v}");
        let e = v["error"].as_str().unwrap();
        assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(req));
    }
    assert_eq!(generation(&d), g0, "a refused request published a table");
    assert!(!r.stderr().contains("reload (ctl"), "{}", r.stderr());

    let (ok, _, e) = ctl(&d, &["set-health", "T1", "down"]);
    assert!(ok, "{e}");
    let log = r.wait_stderr("set-health T1 down: done");
    assert!(
        log.contains(&format!(
            "ctl (uid {uid}): set-health T1 down: done, generation"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "ctl (uid {uid}): set-health T9 down: refused: no tunnel named `T9`"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "ctl (uid {uid}): request refused: bad request: invalid type: integer `5`"
        )),
        "{log}"
    );
    r.finish();
}

#[test]
fn show_routes_on_a_big_table_comes_in_pages_and_a_slow_reader_blocks_nothing() {
    let _g = lock();
    let d = Dir::new();
    let mut routes = String::new();
    for i in 0..5000u32 {
        routes += &format!(
            "[[routes]]\nprefix = \"20.{}.{}.0/24\"\nnexthop = \"192.0.2.254\"\n",
            i / 256,
            i % 256
        );
    }
    let mut r = start(&d, &config(&d, "ag-ctl4", &routes));

    // A client asks for the table and never reads: nobody else waits on it.
    let slow = connect(&d);
    (&slow)
        .write_all(b"{\"version\":1,\"cmd\":\"show-routes\"}\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    answers_within(&d, Duration::from_secs(1));
    r.next_stats();

    let (ok, first, e) = ctl(&d, &["show", "routes"]);
    assert!(ok, "{e}");
    assert_eq!(first["routes"].as_array().unwrap().len(), 1000);
    let cursor = first["cursor"].as_str().unwrap().to_owned();
    let (ok, second, e) = ctl(&d, &["show", "routes", "--cursor", &cursor]);
    assert!(ok, "{e}");
    assert_eq!(second["routes"][0]["prefix"], cursor);

    let t = Instant::now();
    let (ok, all, e) = ctl(&d, &["show", "routes", "--all"]);
    assert!(ok, "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let listed: Vec<&str> = all["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["prefix"].as_str().unwrap())
        .collect();
    let unique: std::collections::HashSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a prefix listed twice");
    assert!(listed.len() > 5000, "{}", listed.len());
    assert!(unique.contains("20.19.135.0/24"));
    assert!(all.get("cursor").is_none());
    // One prefix or one address: as before, no paging.
    let (ok, one, e) = ctl(&d, &["show", "routes", "20.0.7.9"]);
    assert!(ok, "{e}");
    assert_eq!(one["routes"][0]["prefix"], "20.0.7.0/24");
    assert!(one.get("cursor").is_none());

    // The slow reader's page (more than the socket buffers hold) is dropped after its 5 s.
    r.wait_stderr("reply not read within 5 s, dropped");
    drop(slow);
    r.finish();
}

/// A config that runs until idle, on `sock`.
fn idle_config(prefix: &str, sock: &str) -> String {
    format!(
        r#"{eal}
[node]
control_socket = "{sock}"

[[ports]]
name = "up0"
device = "net_null0,no-rx=1"
address = "192.0.2.1/24"

[[workers]]
core = {core}
rx = [{{ port = "up0" }}]
"#,
        eal = eal(prefix),
        core = cores().1,
    )
}

#[test]
fn a_socket_path_that_is_not_a_stale_socket_refuses_the_start() {
    let _g = lock();
    let d = Dir::new();
    // A regular file: left as it is, and named.
    let file = d.p("precious");
    std::fs::write(&file, "keep me").unwrap();
    let cfg = d.p("file.toml");
    std::fs::write(&cfg, idle_config("ag-ctl5", file.to_str().unwrap())).unwrap();
    let (code, err, _) = anygate("run", &cfg);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "node.control_socket: {} exists and is not a socket",
            file.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

    // A live instance's socket: the second refuses, before its EAL, and the first serves on.
    let r = start(&d, &config(&d, "ag-ctl6", ""));
    let cfg2 = d.p("second.toml");
    std::fs::write(
        &cfg2,
        idle_config("ag-ctl7", d.p("ctl.sock").to_str().unwrap()),
    )
    .unwrap();
    let (code, err, took) = anygate("run", &cfg2);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("is in use: another anygate answers on it"),
        "{err}"
    );
    assert!(err.contains(d.p("ctl.sock").to_str().unwrap()), "{err}");
    assert!(
        !err.contains("EAL"),
        "refused after the EAL started:\n{err}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    answers_within(&d, Duration::from_secs(1));
    r.finish();

    // A directory it cannot create the socket in.
    let cfg3 = d.p("third.toml");
    std::fs::write(&cfg3, idle_config("ag-ctl8", "/proc/anygate.sock")).unwrap();
    let (code, err, _) = anygate("run", &cfg3);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("node.control_socket: /proc/anygate.sock: "),
        "{err}"
    );

    // "" turns the socket off: it runs, and ctl --config says why it cannot talk to it.
    std::fs::write(&cfg3, idle_config("ag-ctl8", "")).unwrap();
    let (code, err, _) = anygate("run", &cfg3);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("no control socket, `anygate ctl` is off"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["ctl", "--config", cfg3.to_str().unwrap(), "show", "tunnels"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the control socket is disabled"), "{err}");
}
