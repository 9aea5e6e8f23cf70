//! Soak test, not part of `scripts/test` (it runs for minutes): 10,000 table swaps under
//! full-rate traffic — health flaps, route batches, single route changes and reloads of the
//! file, interleaved — with no packet lost, duplicated or leaked, and RSS flat.
//!
//!     cargo test --release --test soak -- --ignored --nocapture
//!
//! `SOAK_SWAPS=N` changes the number of swaps. Figures go to stdout (record them in the
//! README's fuzzing and soak section).
mod common;

use common::*;
use etherparse::PacketBuilder;
use std::time::Instant;

fn config(d: &Dir, variant: u32) -> String {
    format!(
        r#"{live}
[[tunnels]]
name = "T1"
type = "gre"
customer_endpoint = "192.0.2.61"
edge_endpoint = "203.0.113.10"
interface_address = "10.255.0.2/31"
# Nothing answers probes here: health is set by hand in these tests.
health_check = {{ enabled = false }}

[[tunnels]]
name = "T2"
type = "gre"
customer_endpoint = "192.0.2.62"
edge_endpoint = "203.0.113.10"
interface_address = "10.255.0.4/31"
# Nothing answers probes here: health is set by hand in these tests.
health_check = {{ enabled = false }}

[[neighbors]]
ip = "192.0.2.61"
mac = "02:00:00:00:00:61"
port = "up0"

[[neighbors]]
ip = "192.0.2.62"
mac = "02:00:00:00:00:62"
port = "up0"

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

[[routes]]
prefix = "10.30.{variant}.0/24"
nexthop = "T2"

[firewall]
rules = [{{ expression = "udp.dstport == {port}", action = "block", description = "never matches" }}]
"#,
        live = live_config(d, "ag-soak"),
        port = 9000 + variant,
    )
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "minutes long; run by hand (see the module comment)"]
fn ten_thousand_swaps_under_traffic_lose_nothing() {
    let swaps: u32 = std::env::var("SOAK_SWAPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let _g = lock();
    let d = Dir::new();
    // 512 UDP flows: half over the T1/T2 group, half toward routes that come and go (the
    // default route carries them in between).
    let frames: Vec<Vec<u8>> = (0..512u16)
        .map(|i| {
            let dst = if i < 256 {
                [10, 10, 10, (i % 250) as u8 + 1]
            } else {
                [10, 20, (i % 8) as u8, (i / 2) as u8]
            };
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 1, 2], [2, 0, 0, 0, 1, 1])
                .ipv4([10, 0, 0, 50], dst, 64)
                .udp(1000 + i, 53);
            let mut v = Vec::new();
            b.write(&mut v, &[0u8; 18]).unwrap();
            v
        })
        .collect();
    write_pcap(&d.p("in.pcap"), &frames);
    let cfg = d.p("soak.toml");
    std::fs::write(&cfg, config(&d, 0)).unwrap();
    // Stats only at exit: nobody reads stdout while the soak runs.
    let r = Running::start(&cfg, "100000", d.p("stderr.log"));
    let pid = r.child.id();
    let prefixes: Vec<String> = (0..8).map(|k| format!("10.20.{k}.0/24")).collect();
    let mut add = String::new();
    let mut del = String::new();
    for p in &prefixes {
        add += &format!("[[add]]\nprefix = \"{p}\"\nnexthop = \"T1\"\n\n");
        del += &format!("[[del]]\nprefix = \"{p}\"\nnexthop = \"T1\"\n\n");
    }
    for h in 0..16 {
        add += &format!("[[add]]\nprefix = \"10.20.0.{h}/32\"\nnexthop = \"T2\"\n\n");
        del += &format!("[[del]]\nprefix = \"10.20.0.{h}/32\"\nnexthop = \"T2\"\n\n");
    }
    std::fs::write(d.p("add.toml"), add).unwrap();
    std::fs::write(d.p("del.toml"), del).unwrap();
    let (add, del) = (d.p("add.toml"), d.p("del.toml"));
    let (add, del) = (add.to_str().unwrap(), del.to_str().unwrap());

    std::thread::sleep(std::time::Duration::from_millis(500));
    let t = Instant::now();
    let mut rss = Vec::new();
    for i in 0..swaps {
        let args: Vec<String> = match i % 8 {
            0 => vec!["set-health".into(), "T2".into(), "down".into()],
            1 => vec!["update-routes".into(), add.into()],
            2 => vec!["set-health".into(), "T2".into(), "healthy".into()],
            3 => vec!["update-routes".into(), del.into()],
            4 => vec![
                "add-route".into(),
                "--prefix".into(),
                "10.40.0.0/16".into(),
                "--nexthop".into(),
                "T1".into(),
            ],
            5 => vec![
                "del-route".into(),
                "--prefix".into(),
                "10.40.0.0/16".into(),
                "--nexthop".into(),
                "T1".into(),
            ],
            6 => {
                std::fs::write(&cfg, config(&d, 1 + i / 8 % 2)).unwrap();
                vec!["reload".into()]
            }
            _ => vec![
                "set-health".into(),
                "T1".into(),
                if i / 8 % 2 == 0 {
                    "degraded"
                } else {
                    "healthy"
                }
                .into(),
            ],
        };
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, v, e) = ctl(&d, &a);
        assert!(ok && v["changed"] != false, "swap {i} ({a:?}): {v} {e}");
        if i % 500 == 0 {
            rss.push(rss_kib(pid));
        }
    }
    let secs = t.elapsed().as_secs_f64();
    rss.push(rss_kib(pid));
    let last = r.finish();
    println!(
        "soak: {swaps} swaps in {secs:.0} s ({:.0}/s); rx {} tx {} dropped {}; RSS KiB every 500 swaps: {rss:?}",
        swaps as f64 / secs,
        last["rx_total"],
        last["tx_total"],
        last["drop_total"]
    );
    assert_eq!(last["drop_total"], 0, "{last}");
    assert_eq!(last["rx_total"], last["tx_total"]);
    assert_eq!(
        last["mempool"]["available"], last["mempool"]["size"],
        "mbufs leaked"
    );
    // Flat: after the first 500 swaps, RSS stays within 10% (and 32 MiB) of where it was.
    let base = rss[1.min(rss.len() - 1)];
    let max = *rss.iter().skip(1).max().unwrap();
    assert!(
        max <= base + (base / 10).max(32 * 1024),
        "RSS grew from {base} KiB to {max} KiB: {rss:?}"
    );
}
