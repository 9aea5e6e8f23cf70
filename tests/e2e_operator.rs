//! What an operator meets first, checked on the real binary: connected routes under traffic,
//! `show routes` for an address or a prefix, reloads that say what they changed and keep the
//! routes added with `ctl`, no-op changes that publish nothing, `ctl` with a broken config
//! file, and the small refusals.
mod common;

use common::*;
use etherparse::PacketBuilder;
use serde_json::Value;
use std::process::{Command, Output};

const IN0_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x4d];

fn config(d: &Dir, routes: &str) -> String {
    format!(
        r#"{live}
[[tunnels]]
name = "T1"
type = "gre"
customer_endpoint = "192.0.2.50"
edge_endpoint = "203.0.113.10"
interface_address = "10.255.0.2/31"
# Unprobed: a probe to an unresolved endpoint is a drop, due at a time that depends on load.
[tunnels.health_check]
enabled = false

[[routes]]
prefix = "172.16.0.0/12"
nexthop = "192.0.2.254"
description = "upstream transit"
{routes}"#,
        live = live_config(d, "ag-oper"),
    )
}

fn ctl_out(d: &Dir, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["ctl", "--socket", d.p("ctl.sock").to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
}

/// `ctl ARGS --json`, with `--json` after the subcommand, as operators type it.
fn ctl(d: &Dir, args: &[&str]) -> (bool, Value, String) {
    let mut a = args.to_vec();
    a.push("--json");
    let out = ctl_out(d, &a);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.success(),
        serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn generation(d: &Dir) -> u64 {
    let (ok, v, e) = ctl(d, &["show", "tunnels"]);
    assert!(ok, "{e}");
    v["generation"].as_u64().unwrap()
}

/// An ARP reply from 10.0.0.77 to our in0 address, then UDP toward 10.0.0.77 from in0's
/// own subnet: the host is only reachable through in0's connected route.
fn traffic() -> Vec<Vec<u8>> {
    let mut arp = vec![0u8; 42];
    arp[..6].copy_from_slice(&IN0_MAC);
    arp[6..12].copy_from_slice(&HOST_MAC);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    arp[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    arp[22..28].copy_from_slice(&HOST_MAC);
    arp[28..32].copy_from_slice(&[10, 0, 0, 77]);
    arp[32..38].copy_from_slice(&IN0_MAC);
    arp[38..42].copy_from_slice(&[10, 0, 0, 1]);
    let mut v = vec![arp];
    for i in 0..16u16 {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 1, 2], IN0_MAC)
            .ipv4([10, 0, 0, 50], [10, 0, 0, 77], 64)
            .udp(1000 + i, 53);
        let mut f = Vec::new();
        b.write(&mut f, &[0u8; 18]).unwrap();
        v.push(f);
    }
    v
}

#[test]
fn connected_routes_lookups_and_reloads_as_an_operator_sees_them() {
    let _g = lock();
    let d = Dir::new();
    write_pcap(&d.p("in.pcap"), &traffic());
    let cfg = d.p("oper.toml");
    std::fs::write(&cfg, config(&d, "")).unwrap();
    let mut r = Running::start(&cfg, "0.2", d.p("stderr.log"));
    let a = r.next_stats();
    let b = r.next_stats();

    // Traffic to a host on in0's own subnet goes back out in0, to the host's MAC; nothing
    // leaves through up0 (the only other way out, where it used to go). The tunnel's
    // customer endpoint needs no route: it is on up0's subnet.
    let tx = |v: &Value, p: usize| v["ports"][p]["tx_packets"].as_u64().unwrap();
    assert!(tx(&b, 0) > tx(&a, 0), "{b}");
    assert_eq!(tx(&b, 1), 0, "{b}");

    // show routes ADDR: the longest prefix covering it.
    let (ok, v, e) = ctl(&d, &["show", "routes", "10.0.0.77"]);
    assert!(ok, "{e}");
    assert_eq!(v["routes"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["routes"][0]["prefix"], "10.0.0.0/24");
    assert_eq!(v["routes"][0]["connected"], "in0");
    assert_eq!(v["routes"][0]["candidates"][0]["source"], "connected");
    let (ok, v, e) = ctl(&d, &["show", "routes", "172.20.1.1"]);
    assert!(ok, "{e}");
    assert_eq!(v["routes"][0]["prefix"], "172.16.0.0/12");
    assert_eq!(
        v["routes"][0]["candidates"][0]["description"],
        "upstream transit"
    );
    let text = ctl_out(&d, &["show", "routes", "172.16.0.0/12"]);
    assert!(text.status.success());
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("\"upstream transit\""),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    // Nothing for it: said, and a non-zero exit.
    for (q, msg) in [
        ("8.8.8.8", "no route for 8.8.8.8"),
        ("172.16.0.0/16", "172.16.0.0/16 is not in the table"),
        (
            "garbage",
            "`garbage` is neither an IPv4 address nor a prefix",
        ),
    ] {
        let out = ctl_out(&d, &["show", "routes", q]);
        assert!(!out.status.success(), "{q}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{q}: {err}");
    }

    // No-op changes publish nothing.
    let g0 = generation(&d);
    let (ok, v, e) = ctl(&d, &["set-health", "T1", "healthy"]);
    assert!(ok, "{e}");
    assert_eq!(v["changed"], false);
    std::fs::write(d.p("empty.toml"), "").unwrap();
    let (ok, v, e) = ctl(&d, &["update-routes", d.p("empty.toml").to_str().unwrap()]);
    assert!(ok, "{e}");
    assert_eq!(v["changed"], false);
    let (ok, v, e) = ctl(&d, &["reload"]);
    assert!(ok, "{e}");
    assert_eq!(v["changed"], false, "{v}");
    assert_eq!(generation(&d), g0, "no-op changes published a table");

    // A route added at run time survives a reload that changes the file, and the reload
    // says what it removed and added.
    let (ok, _, e) = ctl(
        &d,
        &[
            "add-route",
            "--prefix",
            "10.20.0.0/16",
            "--nexthop",
            "T1",
            "--description",
            "from ctl",
        ],
    );
    assert!(ok, "{e}");
    std::fs::write(
        &cfg,
        config(
            &d,
            "\n[[routes]]\nprefix = \"198.18.0.0/15\"\nnexthop = \"192.0.2.254\"\n",
        )
        .replace("prefix = \"172.16.0.0/12\"", "prefix = \"172.16.0.0/16\""),
    )
    .unwrap();
    let (ok, v, e) = ctl(&d, &["reload"]);
    assert!(ok, "{e}");
    assert_eq!(v["changed"], true);
    assert_eq!(v["removed"]["count"], 1, "{v}");
    assert_eq!(
        v["removed"]["routes"][0],
        "172.16.0.0/12 via 192.0.2.254 priority 100"
    );
    assert_eq!(v["added"]["count"], 2, "{v}");
    assert_eq!(v["runtime_kept"], 1);
    let (ok, v, e) = ctl(&d, &["show", "routes", "10.20.0.0/16"]);
    assert!(ok, "{e}");
    assert_eq!(v["routes"][0]["candidates"][0]["origin"], "ctl");
    assert_eq!(v["routes"][0]["candidates"][0]["description"], "from ctl");
    let log = r.wait_stderr("1 route(s) removed (172.16.0.0/12 via 192.0.2.254 priority 100)");
    assert!(log.contains("1 run-time route(s) kept"), "{log}");

    // SIGHUP keeps it too; --discard-runtime drops it and says so.
    r.signal("-HUP");
    r.wait_stderr("reload (SIGHUP): nothing changed");
    let (ok, v, e) = ctl(&d, &["reload", "--discard-runtime"]);
    assert!(ok, "{e}");
    assert_eq!(
        v["removed"]["routes"][0], "10.20.0.0/16 via T1 priority 100",
        "{v}"
    );
    assert_eq!(v["runtime_dropped"][0]["reason"], "discarded by the reload");
    let out = ctl_out(&d, &["show", "routes", "10.20.0.0/16"]);
    assert!(!out.status.success());

    // `ctl --config` finds the socket in a file with an error elsewhere.
    let broken = config(&d, "").replace("nexthop = \"192.0.2.254\"", "nexthop = \"nowhere\"");
    std::fs::write(d.p("broken.toml"), broken).unwrap();
    let out = Command::new(BIN)
        .args([
            "ctl",
            "--config",
            d.p("broken.toml").to_str().unwrap(),
            "show",
            "tunnels",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let last = r.finish();
    assert_eq!(last["mempool"]["available"], last["mempool"]["size"]);
    let drops = &last["drops"];
    // The ARP reply is consumed each time the capture repeats; nothing else is dropped.
    assert_eq!(
        last["drop_total"], drops["arp_consumed"],
        "only the repeated ARP replies are dropped: {last}"
    );
}

#[test]
fn a_stats_interval_of_zero_is_refused() {
    let d = Dir::new();
    write_pcap(&d.p("in.pcap"), &[]);
    std::fs::write(d.p("c.toml"), config(&d, "")).unwrap();
    for iv in ["0", "0.01", "-1", "nan"] {
        let out = Command::new(BIN)
            .args(["run", "--config", d.p("c.toml").to_str().unwrap()])
            .arg(format!("--stats-interval={iv}"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{iv}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--stats-interval"),
            "{iv}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn trace_marks_answered_arp() {
    let d = Dir::new();
    let mut req = vec![0u8; 42];
    req[..6].copy_from_slice(&[0xff; 6]);
    req[6..12].copy_from_slice(&HOST_MAC);
    req[12..14].copy_from_slice(&[0x08, 0x06]);
    req[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    req[22..28].copy_from_slice(&HOST_MAC);
    req[28..32].copy_from_slice(&[10, 0, 0, 77]);
    req[38..42].copy_from_slice(&[10, 0, 0, 1]);
    write_pcap(&d.p("in.pcap"), &[req]);
    std::fs::write(d.p("c.toml"), config(&d, "")).unwrap();
    let lines = trace_json(&d.p("c.toml"), &d.p("in.pcap"), &[]);
    assert_eq!(lines[0]["verdict"], "forward");
    assert_eq!(lines[0]["arp"], "reply");
    assert_eq!(lines[0]["egress_port"], "in0");
}
