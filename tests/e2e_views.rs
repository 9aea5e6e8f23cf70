//! The live views on the real binary under traffic: `show stats` agrees with the final
//! `--stats-json`, `clear counters` zeroes the views but not the raw counters, `show ports`
//! carries the NIC counters, `show neighbors` a learned and a static entry, `show status`
//! the instance; with `--log-format json` every log line is a JSON object and the event log
//! names the ARP entry learned and the counters cleared.
mod common;

use common::*;
use etherparse::PacketBuilder;
use serde_json::Value;
use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 5];
const IN0_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const PACKETS: u64 = 1000;

/// An ARP request from host 10.0.0.5 for our address, then UDP from it to the world.
fn frames() -> Vec<Vec<u8>> {
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&HOST_MAC);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&HOST_MAC);
    arp.extend_from_slice(&[10, 0, 0, 5, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1]);
    arp.resize(60, 0);
    let mut out = vec![arp];
    for i in 1..PACKETS {
        let b = PacketBuilder::ethernet2(HOST_MAC, IN0_MAC)
            .ipv4([10, 0, 0, 5], [198, 51, 100, (i % 200) as u8 + 1], 64)
            .udp(5000, 53);
        let mut v = Vec::new();
        b.write(&mut v, &[0x33; 32]).unwrap();
        out.push(v);
    }
    out
}

fn ctl_ok(d: &Dir, args: &[&str]) -> Value {
    let (ok, v, err) = ctl(d, args);
    assert!(ok, "ctl {args:?}: {err}");
    v
}

/// The figures both the view and the final stats carry, for comparing them.
fn figures(s: &Value) -> Value {
    let mut f = serde_json::Map::new();
    for k in [
        "drops",
        "rx_total",
        "tx_total",
        "drop_total",
        "originated",
        "arp_replies",
        "arp_learned",
        "busy_loops",
        "busy_cycles",
    ] {
        f.insert(k.into(), s[k].clone());
    }
    let ports: Vec<Value> = s["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            serde_json::json!([
                p["name"],
                p["rx_packets"],
                p["rx_bytes"],
                p["tx_packets"],
                p["tx_bytes"],
                p["nic"]["ipackets"],
                p["nic"]["imissed"]
            ])
        })
        .collect();
    f.insert("ports".into(), ports.into());
    f.into()
}

#[test]
fn live_views_agree_with_the_final_stats_and_clear_counters_resets_only_the_views() {
    let _g = lock();
    let d = Dir::new();
    write_pcap(&d.p("in.pcap"), &frames());
    // The capture is replayed once, so the counters settle and can be compared exactly.
    let cfg = live_config(&d, "ag-views").replace("infinite_rx=1,", "")
        + "\n[[routes]]\nprefix = \"0.0.0.0/0\"\nnexthop = \"192.0.2.254\"\n";
    std::fs::write(d.p("views.toml"), cfg).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_anygate"))
        .args(["run", "--config", d.p("views.toml").to_str().unwrap()])
        .args(["--stats-json", "--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(File::create(d.p("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let r = Running::from_child(child, d.p("stderr.log"));
    // Served once the socket answers; settled once every frame was counted.
    let t = Instant::now();
    let mut v = Value::Null;
    let live = loop {
        assert!(t.elapsed() < Duration::from_secs(30), "{v}\n{}", r.stderr());
        std::thread::sleep(Duration::from_millis(100));
        let ok;
        (ok, v, _) = ctl(&d, &["show", "stats"]);
        if ok && v["stats"]["rx_total"] == PACKETS {
            // Published every 10 ms: one more read to be sure nothing moved.
            std::thread::sleep(Duration::from_millis(200));
            break ctl_ok(&d, &["show", "stats"]);
        }
    };
    assert_eq!(live["schema"], 1);
    assert!(
        live.get("text").is_none(),
        "--json leaves the rendering out"
    );
    let s = &live["stats"];
    assert_eq!(s["ports"][0]["name"], "in0");
    assert_eq!(
        s["ports"][1]["tx_packets"],
        PACKETS - 1,
        "forwarded upstream"
    );
    assert_eq!(s["arp_learned"], 1);
    assert_eq!(s["workers"][0]["core"], cores().1 as u64);
    assert!(s["workers"][0]["busy_loops"].as_u64().unwrap() > 0);
    assert!(s["mempool"]["size"].as_u64().unwrap() > 0);
    // The text view renders the same figures.
    let out = Command::new(env!("CARGO_BIN_EXE_anygate"))
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
    assert!(text.contains(&format!("total    rx {PACKETS}")), "{text}");
    assert!(text.contains("worker 0 core"), "{text}");

    let ports = ctl_ok(&d, &["show", "ports"]);
    let in0 = &ports["ports"][0];
    assert_eq!(in0["name"], "in0");
    assert_eq!(in0["mac"], "02:00:00:00:01:01");
    assert_eq!(in0["address"], "10.0.0.1/24");
    assert_eq!(in0["nic"]["ipackets"], PACKETS, "the NIC's own count");
    for k in ["imissed", "ierrors", "oerrors", "rx_nombuf", "opackets"] {
        assert!(in0["nic"][k].is_u64(), "{k}: {in0}");
    }
    assert!(in0["link"]["up"].is_boolean(), "{in0}");

    let n = ctl_ok(&d, &["show", "neighbors"]);
    let list = n["neighbors"].as_array().unwrap();
    let find = |a: &str| {
        list.iter()
            .find(|e| e["address"] == a)
            .unwrap_or_else(|| panic!("{a}: {n}"))
    };
    let host = find("10.0.0.5");
    assert_eq!(
        (&host["mac"], &host["state"], &host["port"]),
        (
            &"02:00:00:00:00:05".into(),
            &"learned".into(),
            &"in0".into()
        )
    );
    assert!(host["age_s"].as_u64().unwrap() < 60);
    let gw = find("192.0.2.254");
    assert_eq!(
        (&gw["state"], &gw["mac"]),
        (&"static".into(), &"02:00:00:00:00:fe".into())
    );

    let st = ctl_ok(&d, &["show", "status"]);
    assert!(
        st["dpdk_version"].as_str().unwrap().starts_with("DPDK "),
        "{st}"
    );
    assert_eq!(st["config_file"], d.p("views.toml").to_str().unwrap());
    assert_eq!(st["generation"], 1);
    assert_eq!(st["workers"][0]["core"], cores().1 as u64);
    assert!(st["uptime_s"].as_f64().unwrap() > 0.0);

    let c = ctl_ok(&d, &["clear", "counters"]);
    assert!(c["cleared_at"].as_str().unwrap().ends_with('Z'));
    let after = ctl_ok(&d, &["show", "stats"]);
    let z = &after["stats"];
    assert_eq!(
        (&z["rx_total"], &z["tx_total"], &z["drop_total"]),
        (&0.into(), &0.into(), &0.into())
    );
    assert_eq!(
        z["ports"][0]["nic"]["ipackets"], 0,
        "the NIC view is cleared too"
    );
    assert_eq!(
        ctl_ok(&d, &["show", "ports"])["ports"][0]["nic"]["ipackets"],
        PACKETS,
        "show ports is raw"
    );

    let log = r.wait_stderr("clear-counters");
    let last = r.finish();
    // The raw counters kept counting through the clear.
    assert_eq!(last["rx_total"], PACKETS);
    let (mut f, l) = (figures(s), figures(&last));
    // The busy loops that polled nothing after the view was read are not compared.
    for k in ["busy_loops", "busy_cycles"] {
        assert!(f[k].as_u64() <= l[k].as_u64());
        f[k] = l[k].clone();
    }
    assert_eq!(f, l, "show stats against the final --stats-json");

    // Every log line is one JSON object with the documented fields.
    let mut msgs = Vec::new();
    for line in log.lines() {
        // DPDK writes its own messages to stderr as "SUBSYSTEM: ...".
        let dpdk = line.split_once(": ").is_some_and(|(p, _)| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        });
        if dpdk && !line.starts_with('{') {
            continue;
        }
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for k in ["ts", "level", "target", "msg"] {
            assert!(v[k].is_string(), "{k}: {line}");
        }
        msgs.push((
            v["level"].as_str().unwrap().to_owned(),
            v["msg"].as_str().unwrap().to_owned(),
        ));
    }
    let has = |want: &str| msgs.iter().any(|(l, m)| l == "INFO" && m.contains(want));
    assert!(
        has("arp: learned 10.0.0.5 at 02:00:00:00:00:05 on port in0"),
        "{log}"
    );
    assert!(has("clear-counters: done"), "{log}");
    assert!(has("link: port in0 is "), "{log}");
}
