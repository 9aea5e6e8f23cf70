//! `ctl trace` and `ctl capture` on the real binary under live traffic (a capture replayed
//! forever on in0): traced verdicts agree with an offline `anygate trace` of the same bytes,
//! captures open in tshark, drops carry their reason as a pcapng comment, a ring that fills
//! reports its loss, and a trace nobody's traffic matches answers after its wait.
mod common;

use common::*;
use etherparse::PacketBuilder;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

const IN0: [u8; 6] = [2, 0, 0, 0, 1, 1];

fn udp(dst: [u8; 4]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 9, 9], IN0)
        .ipv4([10, 0, 0, 7], dst, 64)
        .udp(5000, 53);
    let mut v = Vec::new();
    b.write(&mut v, &[0x33; 40]).unwrap();
    v
}

fn config(d: &Dir) -> String {
    format!(
        r#"{live}
[[tunnels]]
name = "T1"
type = "gre"
customer_endpoint = "192.0.2.50"
edge_endpoint = "203.0.113.10"
interface_address = "10.255.0.2/31"
# Nobody answers probes here: a tunnel gone down would change the verdicts mid-test.
health_check = {{ enabled = false }}

[[neighbors]]
ip = "192.0.2.50"
mac = "02:00:00:00:00:50"
port = "up0"

[[routes]]
prefix = "198.51.100.0/24"
nexthop = "192.0.2.254"

[[routes]]
prefix = "10.9.0.0/16"
nexthop = "T1"
"#,
        live = live_config(d, "ag-tap"),
    )
}

/// Forwarded, dropped (no route), encapsulated into T1: replayed forever.
fn start(d: &Dir) -> Running {
    let frames = [
        udp([198, 51, 100, 7]),
        udp([100, 64, 0, 1]),
        udp([10, 9, 0, 5]),
    ];
    write_pcap(&d.p("in.pcap"), &frames);
    std::fs::write(d.p("tap.toml"), config(d)).unwrap();
    let mut r = Running::start(&d.p("tap.toml"), "0.2", d.p("stderr.log"));
    r.next_stats();
    r
}

/// A request on the socket, as it is; the reply as JSON.
fn ask(d: &Dir, req: &str) -> Value {
    let s = UnixStream::connect(d.p("ctl.sock")).unwrap();
    (&s).write_all(format!("{req}\n").as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

/// `anygate ctl ARGS`: success, stdout, stderr.
fn ctl_text(d: &Dir, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["ctl", "--socket", d.p("ctl.sock").to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ip_dsts(rows: &[Vec<String>]) -> BTreeSet<String> {
    rows.iter().map(|r| r[0].clone()).collect()
}

#[test]
fn live_trace_agrees_with_offline_trace_and_captures_open_in_tshark() {
    let _g = lock();
    let d = Dir::new();
    let r = start(&d);
    // Stats keep coming while the test waits on tshark and the ctl client: `Running` reads
    // them all as they come, so no full pipe stalls the management thread on its next print.

    // Five packets, traced; their bytes as received, traced offline, decide the same.
    let v = ask(&d, r#"{"version":1,"cmd":"trace","count":5,"port":"in0"}"#);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        (v["complete"].clone(), v["lost"].clone()),
        (true.into(), 0.into())
    );
    let pkts = v["packets"].as_array().unwrap();
    assert_eq!(pkts.len(), 5, "{v}");
    let frames: Vec<Vec<u8>> = pkts
        .iter()
        .map(|p| anygate::ctl_proto::unhex(p["data"].as_str().unwrap()).unwrap())
        .collect();
    write_pcap(&d.p("traced.pcap"), &frames);
    let offline = trace_json(&d.p("tap.toml"), &d.p("traced.pcap"), &[]);
    assert_eq!(offline.len(), 5);
    for (i, (live, off)) in pkts.iter().zip(&offline).enumerate() {
        assert_eq!(live["port"], "in0");
        let t = &live["trace"];
        for k in [
            "index",
            "verdict",
            "reason",
            "egress_port",
            "route_prefix",
            "nexthop",
            "tunnel",
        ] {
            assert_eq!(t[k], off[k], "packet {i}, {k}: live {t} offline {off}");
        }
        assert!(live["line"]
            .as_str()
            .unwrap()
            .starts_with(&format!("#{i} ")));
    }
    let verdicts: BTreeSet<String> = offline
        .iter()
        .map(|o| format!("{} {}", o["verdict"], o["reason"]))
        .collect();
    assert!(
        verdicts.len() >= 2,
        "a mix of forwards and drops: {verdicts:?}"
    );

    // The CLI prints them as `anygate trace` does; --tunnel keeps only T1's.
    let (ok, out, err) = ctl_text(&d, &["trace", "--count", "3", "--tunnel", "T1"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (i, l) in lines.iter().enumerate() {
        assert!(
            l.starts_with(&format!("#{i} forward port up0 dst 02:00:00:00:00:50 "))
                && l.ends_with(", encap into T1"),
            "{l}"
        );
    }
    assert!(err.contains("3 of 3 packet(s) traced"), "{err}");

    // A capture: the packets as received, read back by tshark.
    let cap = d.p("c.pcap");
    let (ok, _, err) = ctl_text(
        &d,
        &[
            "capture",
            "--count",
            "30",
            "--out",
            cap.to_str().unwrap(),
            "--port",
            "in0",
        ],
    );
    assert!(ok, "{err}");
    let rows = tshark(&cap, &["ip.dst", "eth.dst"]);
    assert_eq!(rows.len(), 30, "{err}");
    let want: BTreeSet<String> = ["198.51.100.7", "100.64.0.1", "10.9.0.5"]
        .map(String::from)
        .into();
    assert_eq!(ip_dsts(&rows), want);
    assert!(
        rows.iter().all(|r| r[1] == "02:00:00:00:01:01"),
        "as received"
    );

    // Drops only, in pcapng, each with its reason.
    let drops = d.p("drops.pcapng");
    let (ok, _, err) = ctl_text(
        &d,
        &[
            "capture",
            "--count",
            "10",
            "--out",
            drops.to_str().unwrap(),
            "--drops-only",
        ],
    );
    assert!(ok, "{err}");
    let rows = tshark(&drops, &["ip.dst", "frame.comment"]);
    assert_eq!(rows.len(), 10, "{err}");
    for row in &rows {
        assert_eq!(row[0], "100.64.0.1");
        assert!(row[1].starts_with("drop no_route ("), "{row:?}");
    }

    // More than a ring holds at once: the rest are lost, and said to be.
    let big = d.p("big.pcap");
    let (ok, _, err) = ctl_text(
        &d,
        &["capture", "--count", "4096", "--out", big.to_str().unwrap()],
    );
    assert!(ok, "{err}\n{}", r.stderr());
    assert!(err.contains("lost to a full capture ring"), "{err}");
    let n = tshark(&big, &["frame.number"]).len();
    assert!(n > 0 && n <= 4096, "{n}");

    // No traffic on up0: the trace answers after its wait, and a second one meanwhile is
    // refused; the management loop keeps answering other requests.
    let t = Instant::now();
    let d2 = d.p("ctl.sock");
    let waiting = std::thread::spawn(move || {
        let s = UnixStream::connect(d2).unwrap();
        (&s).write_all(b"{\"version\":1,\"cmd\":\"trace\",\"count\":2,\"port\":\"up0\"}\n")
            .unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        serde_json::from_str::<Value>(&line).unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    let second = ask(&d, r#"{"version":1,"cmd":"capture","count":2}"#);
    assert!(
        second["error"]
            .as_str()
            .unwrap()
            .contains("already running"),
        "{second}"
    );
    let (ok, _, e) = ctl(&d, &["show", "tunnels"]);
    assert!(ok && t.elapsed() < Duration::from_secs(5), "{e}");
    let late = waiting.join().unwrap();
    assert!(t.elapsed() >= Duration::from_secs(9), "{:?}", t.elapsed());
    assert_eq!(late["ok"], true);
    assert_eq!(late["complete"], false);
    assert_eq!(late["packets"].as_array().unwrap().len(), 0);
    let bad = ask(
        &d,
        r#"{"version":1,"cmd":"trace","count":5,"tunnel":"nope"}"#,
    );
    assert_eq!(bad["error"], "tunnel: no tunnel named `nope`");
    r.finish();
}
