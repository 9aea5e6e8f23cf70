//! The EAL's own lines, written during `rte_eal_init` (start-up facts, argument errors), come
//! through anygate's log like DPDK's later lines: in its format, under `RUST_LOG`. They used to
//! go to stderr raw, ahead of the first record, so a JSON log began with lines no shipper
//! could parse.
mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Output};

/// One net_null port and a worker, the EAL's INFO lines and net_null's on, plus `extra` EAL
/// arguments.
fn config(d: &Dir, extra: &str) -> String {
    let eal = eal("ag-eal-log").replace(
        r#""lib.eal:warning"]"#,
        &format!(r#""lib.eal:info", "--log-level", "pmd.net.null:info"{extra}]"#),
    );
    assert!(eal.contains("lib.eal:info"), "{eal}");
    format!(
        r#"{eal}
[node]
anycast_addresses = ["203.0.113.10"]
control_socket = "{sock}"

[[ports]]
name = "up0"
device = "net_null0,no-rx=1"
address = "192.0.2.1/24"

[[workers]]
core = {core}
rx = [{{ port = "up0" }}]

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[[neighbors]]
ip = "192.0.2.254"
mac = "02:00:00:00:00:fe"
port = "up0"
"#,
        sock = d.p("ctl.sock").display(),
        core = cores().1,
    )
}

/// Runs the config (until idle) with `args` and `RUST_LOG`; its exit and stderr.
fn run(cfg: &str, args: &[&str], rust_log: &str) -> (Output, String) {
    let d = Dir::new();
    std::fs::write(d.p("eal-log.toml"), cfg).unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config", d.p("eal-log.toml").to_str().unwrap()])
        .args(["--exit-when-idle", "300"])
        .args(args)
        .env("RUST_LOG", rust_log)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, log)
}

/// The line every EAL start prints (INFO, log type lib.eal), early in `rte_eal_init`.
const LCORES: &str = "EAL: Detected CPU lcores: ";

/// Positive control for the tests below: the EAL prints the line at all (on the text log,
/// whichever way it reaches stderr).
#[test]
fn the_eal_prints_its_lcores_line_at_start() {
    let _g = lock();
    let d = Dir::new();
    let (out, log) = run(&config(&d, ""), &[], "info");
    assert!(out.status.success(), "{:?}\n{log}", out.status);
    assert_eq!(log.matches(LCORES).count(), 1, "{log}");
}

/// With the JSON format every stderr line is a record, the EAL's start-up lines included: the
/// lcores line arrives once, as an INFO record of target `dpdk::lib.eal`, before the port's
/// record; net_null's log type, registered while `rte_eal_init` loads the driver (after the
/// stream was installed), still gets its own target.
#[test]
fn the_eal_start_up_lines_are_json_records_with_the_json_format() {
    let _g = lock();
    let d = Dir::new();
    let (out, log) = run(&config(&d, ""), &["--log-format", "json"], "info");
    assert!(out.status.success(), "{:?}\n{log}", out.status);
    let records: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l:?}\n{log}")))
        .collect();
    let msg = |r: &Value| r["msg"].as_str().unwrap_or("").to_owned();
    let at = |want: &dyn Fn(&Value) -> bool| {
        records
            .iter()
            .position(want)
            .unwrap_or_else(|| panic!("no such record\n{log}"))
    };
    let lcores = at(&|r| msg(r).contains(LCORES));
    let r = &records[lcores];
    assert_eq!(r["target"], "dpdk::lib.eal", "{r}");
    assert_eq!(r["level"], "INFO", "{r}");
    assert!(msg(r).starts_with(&format!("lib.eal: {LCORES}")), "{r}");
    assert_eq!(log.matches(LCORES).count(), 1, "{log}");
    let null = at(&|r| msg(r).contains("Initializing pmd_null for net_null0"));
    assert_eq!(records[null]["target"], "dpdk::pmd.net.null", "{log}");
    let port = at(&|r| msg(r).starts_with("port up0 "));
    assert!(lcores < null && null < port, "{log}");
}

/// `RUST_LOG` filters the EAL's start-up lines as any target: `dpdk::lib.eal=warn` holds the
/// lcores line back (anygate's own INFO records still come).
#[test]
fn rust_log_filters_the_eal_start_up_lines() {
    let _g = lock();
    let d = Dir::new();
    let (out, log) = run(&config(&d, ""), &[], "info,dpdk::lib.eal=warn");
    assert!(out.status.success(), "{:?}\n{log}", out.status);
    assert!(log.contains("EAL arguments: "), "{log}");
    assert!(log.contains("port up0 "), "{log}");
    assert!(!log.contains(LCORES), "{log}");
}

/// A bad EAL argument (`--iova-mode bogus`, which the config check leaves to DPDK): DPDK's
/// error arrives as an ERROR record of `dpdk::lib.eal`, before anygate's own error (the last
/// line) and a plain exit with status 2. The one line not a record is the EAL's
/// `EAL: FATAL: ...`, which it writes to stderr with `fprintf`, not through its log.
#[test]
fn a_bad_eal_argument_is_reported_in_the_log_format_before_a_clean_exit() {
    let _g = lock();
    let d = Dir::new();
    let cfg = config(&d, r#", "--iova-mode", "bogus""#);
    let (out, log) = run(&cfg, &["--log-format", "json"], "info");
    assert_eq!(out.status.code(), Some(2), "{:?}\n{log}", out.status);
    let lines: Vec<&str> = log.lines().collect();
    let last = lines.last().copied().unwrap_or("");
    assert!(
        last.starts_with("anygate: the EAL did not start: invalid EAL arguments"),
        "{log}"
    );
    let mut records = Vec::new();
    for l in &lines[..lines.len() - 1] {
        match serde_json::from_str::<Value>(l) {
            Ok(r) => records.push(r),
            Err(_) => assert!(l.starts_with("EAL: FATAL: "), "not JSON: {l:?}\n{log}"),
        }
    }
    let bad = records
        .iter()
        .find(|r| {
            r["msg"]
                .as_str()
                .is_some_and(|m| m.contains("invalid parameters for --iova-mode"))
        })
        .unwrap_or_else(|| panic!("no record of the bad argument\n{log}"));
    assert_eq!(bad["target"], "dpdk::lib.eal", "{log}");
    assert_eq!(bad["level"], "ERROR", "{log}");
    assert_eq!(
        log.matches("invalid parameters for --iova-mode").count(),
        1,
        "{log}"
    );
}
