//! ECMP over two tunnels under live traffic, steered through `anygate ctl`: a tunnel marked
//! down gives all its flows to the other, recovery restores the split, and nothing is lost.
mod common;

use common::*;
use etherparse::PacketBuilder;
use serde_json::Value;
use std::process::Command;

fn config(d: &Dir) -> String {
    format!(
        r#"{live}
[[tunnels]]
name = "T1"
type = "gre"
customer_endpoint = "198.51.100.1"
edge_endpoint = "203.0.113.10"
interface_address = "10.255.0.2/31"
# Nothing answers probes here: health is set by hand in these tests.
health_check = {{ enabled = false }}

[[tunnels]]
name = "T2"
type = "gre"
customer_endpoint = "198.51.100.2"
edge_endpoint = "203.0.113.10"
interface_address = "10.255.0.4/31"
# Nothing answers probes here: health is set by hand in these tests.
health_check = {{ enabled = false }}

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[[routes]]
prefix = "10.10.10.0/24"
nexthop = "T1"
priority = 1

[[routes]]
prefix = "10.10.10.0/24"
nexthop = "T2"
priority = 1
"#,
        live = live_config(d, "ag-ecmp"),
    )
}

/// `n` UDP flows from 10.0.0.50 on in0, flow `i` from source port 1000 + i toward `dst(i)`.
fn flows(n: u16, dst: impl Fn(u16) -> [u8; 4]) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 1, 2], [2, 0, 0, 0, 1, 1])
                .ipv4([10, 0, 0, 50], dst(i), 64)
                .udp(1000 + i, 53);
            let mut v = Vec::new();
            b.write(&mut v, &[0u8; 18]).unwrap();
            v
        })
        .collect()
}

fn tunnel_tx(v: &Value, t: usize) -> u64 {
    v["tunnels"][t]["tx_packets"].as_u64().unwrap()
}

/// Reads stats until the table generation reaches `g`, then returns the next two reports.
fn two_after(r: &mut Running, g: u64) -> (Value, Value) {
    loop {
        let s = r.next_stats();
        if s["generation"].as_u64().unwrap() >= g {
            return (r.next_stats(), r.next_stats());
        }
    }
}

#[test]
fn health_changes_through_ctl_move_flows_without_loss() {
    let _g = lock();
    let d = Dir::new();
    // 256 flows: distinct source ports toward 10.10.10.0/24.
    let frames = flows(256, |i| [10, 10, 10, (i % 250) as u8 + 1]);
    write_pcap(&d.p("in.pcap"), &frames);
    std::fs::write(d.p("ecmp.toml"), config(&d)).unwrap();
    let mut r = Running::start(&d.p("ecmp.toml"), "0.2", d.p("stderr.log"));

    // Both tunnels carry traffic.
    let (a, b) = (r.next_stats(), r.next_stats());
    let (a, b) = if tunnel_tx(&a, 0) == 0 {
        (b, r.next_stats())
    } else {
        (a, b)
    };
    assert!(
        tunnel_tx(&b, 0) > tunnel_tx(&a, 0) && tunnel_tx(&b, 1) > tunnel_tx(&a, 1),
        "{b}"
    );
    let share = |x: &Value, y: &Value| {
        let (t1, t2) = (
            tunnel_tx(y, 0) - tunnel_tx(x, 0),
            tunnel_tx(y, 1) - tunnel_tx(x, 1),
        );
        t1 as f64 / (t1 + t2) as f64
    };
    let before = share(&a, &b);
    assert!((0.3..0.7).contains(&before), "T1's share {before}");

    // The control socket is for root (or the owner) only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.p("ctl.sock"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "control socket mode {mode:o}");

    // T2 down: every flow to T1, T2 idle. Only T2's groups were rebuilt.
    let (ok, reply, err) = ctl(&d, &["set-health", "T2", "down"]);
    assert!(ok, "{err}");
    assert_eq!(
        reply["groups_rebuilt"], 2,
        "the /24's set and T2's interface subnet"
    );
    let g = reply["generation"].as_u64().unwrap();
    let (x, y) = two_after(&mut r, g);
    assert_eq!(
        tunnel_tx(&y, 1),
        tunnel_tx(&x, 1),
        "nothing to T2 while it is down"
    );
    assert!(tunnel_tx(&y, 0) > tunnel_tx(&x, 0));
    let (ok, routes, _) = ctl(&d, &["show", "routes", "10.10.10.0/24"]);
    assert!(ok);
    let cands = &routes["routes"][0]["candidates"];
    let t2 = cands
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["nexthop"] == "T2")
        .unwrap();
    assert_eq!(t2["status"], "lost: effective priority 1000001 > 1");
    assert_eq!(t2["health"], "down");

    // Recovery restores the split.
    let (ok, reply, err) = ctl(&d, &["set-health", "T2", "healthy"]);
    assert!(ok, "{err}");
    let (x, y) = two_after(&mut r, reply["generation"].as_u64().unwrap());
    let after = share(&x, &y);
    assert!(
        (after - before).abs() < 0.05,
        "split {before} before, {after} after recovery"
    );

    // A change that breaks a rule is refused whole and the table stays; a good one applies.
    let (ok, _, err) = ctl(
        &d,
        &["add-route", "--prefix", "8.8.8.0/24", "--nexthop", "T1"],
    );
    assert!(
        !ok && err.contains("8.8.8.0/24 is not RFC 1918 space"),
        "{err}"
    );
    let (ok, reply, err) = ctl(
        &d,
        &[
            "add-route",
            "--prefix",
            "10.10.20.0/24",
            "--nexthop",
            "T2",
            "--weight",
            "50",
        ],
    );
    assert!(ok, "{err}");
    assert!(reply["generation"].as_u64().unwrap() > g);
    let (ok, _, err) = ctl(
        &d,
        &["del-route", "--prefix", "10.99.0.0/16", "--nexthop", "T2"],
    );
    assert!(!ok && err.contains("no route 10.99.0.0/16 via T2"), "{err}");

    let last = r.finish();
    // No packet lost, duplicated or leaked across three table swaps.
    assert_eq!(last["drop_total"], 0, "{last}");
    assert_eq!(last["rx_total"], last["tx_total"]);
    assert_eq!(last["mempool"]["available"], last["mempool"]["size"]);
    assert!(!d.p("ctl.sock").exists(), "the socket is removed at exit");

    // trace names the prefix, the group and the tunnel each flow takes; both get some.
    let lines = trace_json(&d.p("ecmp.toml"), &d.p("in.pcap"), &[]);
    assert_eq!(lines.len(), 256);
    for l in &lines {
        assert_eq!(l["route_prefix"], "10.10.10.0/24");
        assert_eq!(l["group"], serde_json::json!(["T1", "T2"]));
    }
    let t1 = lines.iter().filter(|l| l["tunnel"] == "T1").count();
    assert!((64..192).contains(&t1), "T1 takes {t1} of 256 flows");
    assert_eq!(
        lines.iter().filter(|l| l["tunnel"] == "T2").count(),
        256 - t1
    );
}

/// Writes an `update-routes` batch: `verb` is "add" or "del", every route through `via`.
fn batch(d: &Dir, name: &str, verb: &str, prefixes: &[String], via: &str) -> String {
    let mut s = String::new();
    for p in prefixes {
        s += &format!("[[{verb}]]\nprefix = \"{p}\"\nnexthop = \"{via}\"\n\n");
    }
    let path = d.p(name);
    std::fs::write(&path, s).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn route_updates_in_place_under_traffic_lose_nothing() {
    let _g = lock();
    let d = Dir::new();
    // 256 flows over the T1/T2 group, 256 toward 10.20.0.0/16 (default route at first).
    let frames = flows(512, |i| {
        if i < 256 {
            [10, 10, 10, (i % 250) as u8 + 1]
        } else {
            [10, 20, (i % 8) as u8, (i / 2) as u8]
        }
    });
    write_pcap(&d.p("in.pcap"), &frames);
    std::fs::write(d.p("ecmp.toml"), config(&d)).unwrap();
    let mut r = Running::start(&d.p("ecmp.toml"), "0.2", d.p("stderr.log"));
    r.next_stats();

    // A /16, 8 /24s and 64 /32s (8 tbl8 groups: one per /24 holding /32s) via T2,
    // added and withdrawn 20 times while traffic flows.
    let mut prefixes = vec!["10.20.0.0/16".to_owned()];
    prefixes.extend((0..8).map(|k| format!("10.20.{k}.0/24")));
    prefixes.extend((0..64).map(|k| format!("10.20.{}.{}/32", k % 8, k * 3)));
    let add = batch(&d, "add.toml", "add", &prefixes, "T2");
    let del = batch(&d, "del.toml", "del", &prefixes, "T2");
    let mut apply_us = Vec::new();
    for _ in 0..20 {
        for f in [&add, &del] {
            let (ok, reply, err) = ctl(&d, &["update-routes", f]);
            assert!(ok, "{err}");
            assert_eq!(reply["rebuilt"], false, "{reply}");
            assert_eq!(reply["prefixes_changed"], 73, "{reply}");
            apply_us.push(reply["apply_us"].as_u64().unwrap());
        }
    }
    apply_us.sort();
    eprintln!(
        "73-route batches applied in {} us (median), {} us (max)",
        apply_us[apply_us.len() / 2],
        apply_us[apply_us.len() - 1]
    );

    // Finally a /16 via T1 alone: its 256 flows join T1's half of the group's.
    let one = batch(&d, "one.toml", "add", &["10.20.0.0/16".to_owned()], "T1");
    let (ok, reply, err) = ctl(&d, &["update-routes", &one]);
    assert!(ok, "{err}");
    let (x, y) = two_after(&mut r, reply["generation"].as_u64().unwrap());
    let (t1, t2) = (
        tunnel_tx(&y, 0) - tunnel_tx(&x, 0),
        tunnel_tx(&y, 1) - tunnel_tx(&x, 1),
    );
    let share = t1 as f64 / (t1 + t2) as f64;
    assert!((0.65..0.85).contains(&share), "T1's share {share}");
    let (ok, routes, _) = ctl(&d, &["show", "routes", "10.20.0.0/16"]);
    assert!(ok);
    assert_eq!(routes["routes"][0]["group"][0]["nexthop"], "T1", "{routes}");

    // A batch with one bad change is refused whole: the good withdrawal in it stays undone.
    std::fs::write(
        d.p("bad.toml"),
        "[[del]]\nprefix = \"10.20.0.0/16\"\nnexthop = \"T1\"\n\n[[add]]\nprefix = \"10.30.0.0/16\"\nnexthop = \"T9\"\n",
    )
    .unwrap();
    let (ok, _, err) = ctl(&d, &["update-routes", d.p("bad.toml").to_str().unwrap()]);
    assert!(!ok && err.contains("add[0]: route.nexthop"), "{err}");
    // A change the route table refuses is named as the file names it.
    std::fs::write(
        d.p("bad2.toml"),
        "[[del]]\nprefix = \"10.20.0.0/16\"\nnexthop = \"T1\"\n\n[[del]]\nprefix = \"10.99.0.0/16\"\nnexthop = \"T2\"\n",
    )
    .unwrap();
    let (ok, _, err) = ctl(&d, &["update-routes", d.p("bad2.toml").to_str().unwrap()]);
    assert!(
        !ok && err.contains("del[1]: no route 10.99.0.0/16 via T2"),
        "{err}"
    );
    let (_, routes, _) = ctl(&d, &["show", "routes", "10.20.0.0/16"]);
    assert_eq!(routes["routes"][0]["group"][0]["nexthop"], "T1");

    let last = r.finish();
    // 41 batches edited the FIB under full-rate traffic: nothing lost, duplicated or leaked.
    assert_eq!(last["drop_total"], 0, "{last}");
    assert_eq!(last["rx_total"], last["tx_total"]);
    assert_eq!(last["mempool"]["available"], last["mempool"]["size"]);
}

/// The same health change, seen packet by packet in the output capture: up0 writes a pcap into
/// a FIFO this test reads as it flows (an infinite-rx run would fill a disk). Input is 256
/// flows replayed in a fixed cycle, so any packet lost, duplicated or reordered by the change
/// breaks the cycle in the output.
#[test]
fn health_change_seen_in_the_output_capture() {
    let _g = lock();
    let d = Dir::new();
    let frames = flows(256, |i| [10, 10, 10, (i % 250) as u8 + 1]);
    write_pcap(&d.p("in.pcap"), &frames);
    write_pcap(&d.p("empty.pcap"), &[]);
    let fifo = d.p("out.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let cfg = config(&d).replace(
        "net_null0,no-rx=1",
        &format!(
            "net_pcap1,rx_pcap={},tx_pcap={}",
            d.p("empty.pcap").display(),
            fifo.display()
        ),
    );
    std::fs::write(d.p("ecmp.toml"), cfg).unwrap();
    // (inner UDP source port, last byte of the outer destination: 1 = T1, 2 = T2)
    let reader = std::thread::spawn(move || {
        let f = std::fs::File::open(&fifo).unwrap();
        let mut r = pcap_file::pcap::PcapReader::new(std::io::BufReader::new(f)).unwrap();
        let mut seq: Vec<(u16, u8)> = Vec::new();
        while let Some(p) = r.next_packet() {
            let p = p.unwrap();
            assert_eq!(p.data.len(), 14 + 24 + 20 + 8 + 18, "GRE-encapsulated");
            seq.push((u16::from_be_bytes([p.data[58], p.data[59]]), p.data[33]));
        }
        seq
    });
    let mut r = Running::start(&d.p("ecmp.toml"), "0.2", d.p("stderr.log"));
    r.next_stats();
    r.next_stats();
    let (ok, reply, err) = ctl(&d, &["set-health", "T2", "down"]);
    assert!(ok, "{err}");
    two_after(&mut r, reply["generation"].as_u64().unwrap());
    let (ok, _, err) = ctl(&d, &["set-health", "T2", "healthy"]);
    assert!(ok, "{err}");
    r.next_stats();
    r.next_stats();
    let last = r.finish();
    let seq = reader.join().unwrap();

    assert_eq!(seq.len() as u64, last["tx_total"].as_u64().unwrap());
    assert_eq!(last["drop_total"], 0, "{last}");
    for (k, w) in seq.windows(2).enumerate() {
        assert_eq!(
            w[1].0,
            1000 + (w[0].0 - 1000 + 1) % 256,
            "packet {k}: the cycle breaks, a packet was lost, duplicated or reordered"
        );
    }
    // Before: each flow keeps one tunnel, both tunnels carry some.
    let init: std::collections::HashMap<u16, u8> = seq[..256].iter().copied().collect();
    let on_t2 = init.values().filter(|t| **t == 2).count();
    assert!((64..192).contains(&on_t2), "{on_t2} of 256 flows on T2");
    // The change: from the first packet that left its tunnel, everything goes to T1 for many
    // cycles; from the first packet back on T2, every flow is on its original tunnel again.
    let a = seq
        .iter()
        .position(|(p, t)| init[p] != *t)
        .expect("flows moved");
    assert!(seq[a].1 == 1, "flows move only from T2 to T1");
    let c = a + seq[a..]
        .iter()
        .position(|(_, t)| *t == 2)
        .expect("T2 came back");
    assert!(c - a >= 4 * 256, "T2 down for only {} packets", c - a);
    assert!(
        seq[c..].iter().all(|(p, t)| init[p] == *t),
        "after recovery every flow is back on its original tunnel"
    );
    eprintln!(
        "{} packets captured: {a} before, {} while T2 was down, {} after recovery",
        seq.len(),
        c - a,
        seq.len() - c
    );
}

/// The engine on 16 flows, ten JSON stats reports a second into a pipe the test holds (or
/// closes).
fn stats_piped() -> (Dir, std::process::Child) {
    let d = Dir::new();
    write_pcap(&d.p("in.pcap"), &flows(16, |_| [10, 10, 10, 1]));
    std::fs::write(d.p("ecmp.toml"), config(&d)).unwrap();
    let child = Command::new(BIN)
        .args(["run", "--config", d.p("ecmp.toml").to_str().unwrap()])
        .args(["--stats-interval", "0.1", "--stats-json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(d.p("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    (d, child)
}

/// Waits (at most 30 s) until the engine answers `ctl`.
fn wait_for_ctl(d: &Dir) {
    let t0 = std::time::Instant::now();
    while !ctl(d, &["show", "stats"]).0 {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "no control socket"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn sigint(engine: &Engine) {
    let ok = Command::new("kill")
        .args(["-INT", &engine.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// Kills the engine when a test ends, passed or not.
struct Engine(std::process::Child);

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A stats reader that stops reading costs reports, not answers: with stdout a pipe nobody
/// reads (full after ~25 reports of ~2.5 KB), `ctl` is answered as before, and the log says
/// why reports go missing. Before the stats writer thread, the management loop blocked in
/// `write` and every request waited out the client's 30 s.
#[test]
fn an_unread_stats_pipe_stalls_no_ctl_answer() {
    use std::time::{Duration, Instant};
    let _g = lock();
    let (d, child) = stats_piped();
    let _engine = Engine(child);
    let t0 = Instant::now();
    loop {
        let (ok, _, err) = ctl(&d, &["show", "stats"]);
        if ok {
            break;
        }
        let log = std::fs::read_to_string(d.p("stderr.log")).unwrap_or_default();
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no answer: {err}\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Ten reports a second fill the pipe in under 3 s.
    std::thread::sleep(Duration::from_secs(6));
    for _ in 0..5 {
        let t = Instant::now();
        let (ok, reply, err) = ctl(&d, &["show", "tunnels"]);
        assert!(ok, "{err}");
        assert!(reply.is_object(), "{reply}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(d.p("stderr.log")).unwrap();
    assert!(log.contains("stats output is not being read"), "{log}");
}

/// A stats reader that goes away (stdout closed) ends nothing early and crashes nothing: the
/// periodic reports stop, the final one is refused by the pipe, and a SIGINT still stops the
/// engine cleanly (exit 0; `print!` used to panic there).
#[test]
fn a_closed_stats_pipe_is_not_a_crash() {
    use std::time::Duration;
    let _g = lock();
    let (d, mut child) = stats_piped();
    drop(child.stdout.take());
    let engine = Engine(child);
    wait_for_ctl(&d);
    std::thread::sleep(Duration::from_millis(500));
    sigint(&engine);
    let mut engine = engine;
    let status = engine.0.wait().unwrap();
    let log = std::fs::read_to_string(d.p("stderr.log")).unwrap();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("final stats report could not be written"),
        "{log}"
    );
}

/// A stats reader that stops reading does not hold a stop up: after SIGINT the engine waits
/// `FINAL_WAIT` (5 s) for stdout to take the final report, says it gave up, and exits cleanly
/// (it used to wait in the writer's join, and then in the final `print!`, as long as the
/// reader did).
#[test]
fn an_unread_stats_pipe_does_not_hold_up_the_stop() {
    use std::time::Duration;
    let _g = lock();
    let (d, mut engine) = stopping_with_stdout_full();
    let status = exited_within(&mut engine, &d, Duration::from_secs(30));
    let log = std::fs::read_to_string(d.p("stderr.log")).unwrap();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        log.contains("final stats report was not written: stdout was not read within 5 s"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

/// An engine printing stats into a pipe nobody reads, sent SIGINT once the pipe is full: its
/// stop waits for the reader (`FINAL_WAIT`, 5 s).
fn stopping_with_stdout_full() -> (Dir, Engine) {
    let (d, child) = stats_piped();
    let engine = Engine(child);
    wait_for_ctl(&d);
    // Ten reports a second fill the pipe in under 3 s.
    std::thread::sleep(std::time::Duration::from_secs(5));
    sigint(&engine);
    (d, engine)
}

/// Waits for the engine's exit, at most `limit` (then fails with its stderr log in `d`).
fn exited_within(
    engine: &mut Engine,
    d: &Dir,
    limit: std::time::Duration,
) -> std::process::ExitStatus {
    let t = std::time::Instant::now();
    loop {
        if let Some(s) = engine.0.try_wait().unwrap() {
            return s;
        }
        let log = std::fs::read_to_string(d.p("stderr.log")).unwrap_or_default();
        assert!(
            t.elapsed() < limit,
            "still running {:?} after SIGINT\n{log}",
            t.elapsed()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A log reader that stops reading does not stall the management loop: with stderr a pipe
/// nobody reads, 140 reloads (`ctl reload` of a file that gains and loses ten routes, ~700
/// bytes of log each) overfill the 64 KiB pipe by half, and every `ctl` is answered in
/// time (the loop used to wait in `write(2)`, and these requests with it); read again, every
/// record queued meanwhile comes out (the queue holds 4,096; dropping past it is unit-tested).
#[test]
fn an_unread_stderr_stalls_no_ctl_answer() {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let _g = lock();
    let d = Dir::new();
    write_pcap(&d.p("in.pcap"), &flows(16, |_| [10, 10, 10, 1]));
    let base = config(&d);
    let more: String = (0..10)
        .map(|i| format!("\n[[routes]]\nprefix = \"10.77.{i}.0/24\"\nnexthop = \"T1\"\n"))
        .collect();
    std::fs::write(d.p("ecmp.toml"), &base).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config", d.p("ecmp.toml").to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let engine = Engine(child);
    wait_for_ctl(&d);
    let reloads = |n: usize| {
        for i in 0..n {
            let body = if i % 2 == 0 {
                base.clone() + &more
            } else {
                base.clone()
            };
            std::fs::write(d.p("ecmp.toml"), body).unwrap();
            let t = Instant::now();
            let (ok, reply, err) = ctl(&d, &["reload"]);
            assert!(ok, "reload {i}: {err}");
            assert_eq!(reply["changed"], true, "{reply}");
            assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        }
    };
    reloads(140);
    // Read again: the records kept come out, in order.
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        let _ = stderr.read_to_string(&mut log);
        log
    });
    reloads(2);
    sigint(&engine);
    let mut engine = engine;
    assert!(engine.0.wait().unwrap().success());
    let log = reader.join().unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("reload (ctl")).collect();
    assert_eq!(lines.len(), 142, "{log}");
    assert!(lines.iter().all(|l| l.len() > 200), "{log}");
    assert!(!log.contains("log records dropped"), "{log}");
    assert!(log.contains("signal received, stopping"), "{log}");
}

/// DPDK's own lines come through anygate's log: with the null and pcap drivers' INFO lines
/// turned on (`--log-level`), the lines net_null writes when it is probed (after the EAL
/// started) and closed (at exit) are JSON records with DPDK's level and log type, in their
/// place among anygate's records (before the port's line; the last after the stop), RUST_LOG
/// filters them as any target (pcap's INFO lines are held back), and every line on stderr is a
/// record (the EAL's start-up lines too: `tests/e2e_eal_log.rs`). They used to be written to
/// fd 2 directly, unformatted and unfiltered.
#[test]
fn dpdk_lines_come_through_the_log_in_its_format() {
    let _g = lock();
    let d = Dir::new();
    write_pcap(&d.p("in.pcap"), &flows(16, |_| [10, 10, 10, 1]));
    let cfg = config(&d).replace(",infinite_rx=1", "").replace(
        r#""lib.eal:warning"]"#,
        r#""lib.eal:warning", "--log-level", "pmd.net.null:info", "--log-level", "pmd.net.pcap:info"]"#,
    );
    assert!(cfg.contains("pmd.net.null:info"), "{cfg}");
    std::fs::write(d.p("dpdk-log.toml"), &cfg).unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config", d.p("dpdk-log.toml").to_str().unwrap()])
        .args(["--exit-when-idle", "400", "--log-format", "json"])
        .env("RUST_LOG", "info,dpdk::pmd.net.pcap=warn")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{:?}\n{log}", out.status);
    // (line number, record) for the JSON lines; the others are raw.
    let (records, raw): (Vec<_>, Vec<_>) = log
        .lines()
        .enumerate()
        .map(|(i, l)| (i, serde_json::from_str::<Value>(l).map_err(|_| l)))
        .partition(|(_, r)| r.is_ok());
    let records: Vec<(usize, Value)> = records.into_iter().map(|(i, r)| (i, r.unwrap())).collect();
    let at = |want: &dyn Fn(&Value) -> bool| {
        records
            .iter()
            .find(|(_, r)| want(r))
            .map(|(i, _)| *i)
            .unwrap_or_else(|| panic!("no such record\n{log}"))
    };
    let null = |r: &Value, what: &str| {
        r["target"] == "dpdk::pmd.net.null"
            && r["level"] == "INFO"
            && r["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("pmd.net.null: ") && m.contains(what))
    };
    let probe = at(&|r| null(r, "Initializing pmd_null for net_null0"));
    let port = at(&|r| {
        r["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("port up0 "))
    });
    let idle = at(&|r| r["msg"].as_str().is_some_and(|m| m.contains("stopping")));
    let close = at(&|r| null(r, "Closing null ethdev"));
    assert!(probe < port && idle < close, "{log}");
    assert!(raw.is_empty(), "{log}");
    assert!(!log.contains("pmd_pcap"), "{log}");
}

/// A second SIGINT during a stop that waits (here up to 5 s for a stats reader that stopped
/// reading) exits at once with status 130, after the records queued before it and a line
/// saying so (it used to `_exit` in the signal handler, past the log's queue).
#[test]
fn a_second_sigint_exits_at_once_after_the_queued_records() {
    use std::time::{Duration, Instant};
    let _g = lock();
    let (d, mut engine) = stopping_with_stdout_full();
    let read = || std::fs::read_to_string(d.p("stderr.log")).unwrap_or_default();
    let t = Instant::now();
    while !read().contains("signal received, stopping") {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", read());
        std::thread::sleep(Duration::from_millis(20));
    }
    sigint(&engine);
    let t = Instant::now();
    let status = exited_within(&mut engine, &d, Duration::from_secs(10));
    let log = read();
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "{:?}\n{log}",
        t.elapsed()
    );
    assert!(
        log.contains("second stop signal: exiting at once, without a clean stop"),
        "{log}"
    );
    assert!(!log.contains("final stats report"), "{log}");
}
