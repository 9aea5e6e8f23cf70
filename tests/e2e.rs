//! End-to-end tests: the real `anygate` binary on DPDK virtual devices (net_pcap, net_null),
//! no hugepages, no PCI. Inputs and expected outputs are built with etherparse, and outputs
//! are also decoded by tshark, so neither oracle is anygate's own code.
//!
//! DPDK runs spin a core each, so the tests take a lock and run one at a time.
mod common;

use common::*;
use etherparse::PacketBuilder;
use serde_json::Value;
use std::process::Command;

const WAN: [u8; 6] = [2, 0, 0, 0, 0, 1];
const LAN: [u8; 6] = [2, 0, 0, 0, 1, 1];
const UPSTREAM: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const CUST: [u8; 6] = [2, 0, 0, 0, 1, 2];

fn udp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    len: usize,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, ttl)
        .udp(5000, 53);
    let mut v = Vec::new();
    b.write(&mut v, &vec![0x33; len]).unwrap();
    v
}

fn tcp_syn(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], ttl: u8) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, ttl)
        .tcp(40000, 443, 7, 64240)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

fn arp_request(src_mac: [u8; 6], sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut v = vec![0xff; 6];
    v.extend_from_slice(&src_mac);
    v.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    v.extend_from_slice(&src_mac);
    v.extend_from_slice(&sender);
    v.extend_from_slice(&[0; 6]);
    v.extend_from_slice(&target);
    v.resize(60, 0);
    v
}

fn arp_reply(our_mac: [u8; 6], our_ip: [u8; 4], to_mac: [u8; 6], to_ip: [u8; 4]) -> Vec<u8> {
    let mut v = to_mac.to_vec();
    v.extend_from_slice(&our_mac);
    v.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    v.extend_from_slice(&our_mac);
    v.extend_from_slice(&our_ip);
    v.extend_from_slice(&to_mac);
    v.extend_from_slice(&to_ip);
    v.resize(60, 0);
    v
}

/// wan0 and lan0 on net_pcap; no default route, so 8.0.0.0/8 tests the longest match and
/// 9.9.9.9 has no route.
fn forward_config(d: &Dir) -> String {
    format!(
        r#"{eal}
[node]
control_socket = "{sock}"
[[ports]]
name = "wan0"
device = "net_pcap0,rx_pcap={wan_in},tx_pcap={wan_out}"
mac = "02:00:00:00:00:01"
address = "192.0.2.1/24"

[[ports]]
name = "lan0"
device = "net_pcap1,rx_pcap={lan_in},tx_pcap={lan_out}"
mac = "02:00:00:00:01:01"
address = "10.0.0.1/24"
mtu = 1400

[[workers]]
core = {core}
rx = [{{ port = "wan0" }}, {{ port = "lan0" }}]

[[neighbors]]
ip = "192.0.2.254"
mac = "02:00:00:00:00:fe"
port = "wan0"

[[neighbors]]
ip = "10.0.0.2"
mac = "02:00:00:00:01:02"
port = "lan0"

[[routes]]
prefix = "8.0.0.0/8"
nexthop = "192.0.2.254"

[[routes]]
prefix = "172.16.0.0/12"
nexthop = "10.0.0.2"

# No MAC: resolved by ARP.
[[neighbors]]
ip = "10.0.0.3"
port = "lan0"

[[routes]]
prefix = "100.64.0.0/10"
nexthop = "10.0.0.3"
"#,
        eal = eal("ag-fwd"),
        sock = d.p("ctl.sock").display(),
        wan_in = d.p("wan-in.pcap").display(),
        wan_out = d.p("wan-out.pcap").display(),
        lan_in = d.p("lan-in.pcap").display(),
        lan_out = d.p("lan-out.pcap").display(),
        core = cores().1,
    )
}

/// What each input packet should become: (frame, Some((port, expected bytes)) or Err(reason)).
type Expect = Vec<(Vec<u8>, Result<(&'static str, Vec<u8>), &'static str>)>;

fn forward_cases() -> Expect {
    let mut v: Expect = Vec::new();
    for i in 0..200u32 {
        let dst = [172, 16 + (i % 16) as u8, (i / 7) as u8, (i % 250) as u8 + 1];
        let len = 18 + (i as usize * 7) % 1300;
        let ttl = 2 + (i % 200) as u8;
        let input = udp(UPSTREAM, WAN, [198, 51, 100, 4], dst, ttl, len);
        let out = udp(LAN, CUST, [198, 51, 100, 4], dst, ttl - 1, len);
        v.push((input, Ok(("lan0", out))));
        if i % 20 == 0 {
            let input = tcp_syn(
                UPSTREAM,
                WAN,
                [198, 51, 100, 5],
                [8, 8, (i % 250) as u8, 8],
                64,
            );
            let out = tcp_syn(
                WAN,
                UPSTREAM,
                [198, 51, 100, 5],
                [8, 8, (i % 250) as u8, 8],
                63,
            );
            v.push((input, Ok(("wan0", out))));
        }
    }
    let good = udp(UPSTREAM, WAN, [198, 51, 100, 4], [172, 16, 0, 1], 64, 40);
    let mut f = good.clone();
    f[24] ^= 0xff;
    v.push((f, Err("ipv4_bad_checksum")));
    v.push((good[..30].to_vec(), Err("ipv4_truncated")));
    v.push((good[..10].to_vec(), Err("eth_truncated")));
    let mut f = good.clone();
    f[14] = 0x44;
    v.push((f, Err("ipv4_bad_ihl")));
    let mut f = good.clone();
    f[16..18].copy_from_slice(&1500u16.to_be_bytes());
    v.push((f, Err("ipv4_bad_length")));
    let mut f = good.clone();
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    v.push((f, Err("unsupported_ethertype")));
    v.push((
        udp(
            UPSTREAM,
            [2, 0, 0, 0, 0, 0x77],
            [198, 51, 100, 4],
            [172, 16, 0, 1],
            64,
            40,
        ),
        Err("l2_not_for_us"),
    ));
    v.push((
        udp(UPSTREAM, WAN, [198, 51, 100, 4], [172, 16, 0, 1], 1, 40),
        Err("ttl_exceeded"),
    ));
    v.push((
        udp(UPSTREAM, WAN, [198, 51, 100, 4], [9, 9, 9, 9], 64, 40),
        Err("no_route"),
    ));
    v.push((
        udp(UPSTREAM, WAN, [127, 0, 0, 1], [172, 16, 0, 1], 64, 40),
        Err("ipv4_martian_src"),
    ));
    v.push((
        udp(UPSTREAM, WAN, [198, 51, 100, 4], [192, 0, 2, 1], 64, 40),
        Err("local_destination"),
    ));
    v.push((
        udp(UPSTREAM, WAN, [198, 51, 100, 4], [172, 16, 0, 1], 64, 1400),
        Err("mtu_exceeded"),
    ));
    // The upstream router asks for our address, and gets an answer out of wan0.
    v.push((
        arp_request(UPSTREAM, [192, 0, 2, 254], [192, 0, 2, 1]),
        Ok((
            "wan0",
            arp_reply(WAN, [192, 0, 2, 1], UPSTREAM, [192, 0, 2, 254]),
        )),
    ));
    v.push((
        arp_request(UPSTREAM, [192, 0, 2, 254], [192, 0, 2, 77]),
        Err("arp_consumed"),
    ));
    // Toward a neighbour nobody has resolved yet: dropped, and anygate asks for it.
    for i in 0..3 {
        let f = udp(
            UPSTREAM,
            WAN,
            [198, 51, 100, 4],
            [100, 64, 0, i + 1],
            64,
            40,
        );
        v.push((f, Err("neighbor_unresolved")));
    }
    v
}

/// The who-has anygate sends on lan0 for 10.0.0.3.
fn expected_arp_request() -> Vec<u8> {
    arp_request(LAN, [10, 0, 0, 1], [10, 0, 0, 3])
}

fn is_arp(f: &[u8]) -> bool {
    f.get(12..14) == Some(&[0x08, 0x06][..])
}

#[test]
fn forwards_every_packet_as_expected_and_tshark_agrees() {
    let _g = lock();
    let d = Dir::new();
    let cases = forward_cases();
    let frames: Vec<Vec<u8>> = cases.iter().map(|c| c.0.clone()).collect();
    write_pcap(&d.p("wan-in.pcap"), &frames);
    write_pcap(&d.p("lan-in.pcap"), &[]);
    std::fs::write(d.p("fwd.toml"), forward_config(&d)).unwrap();

    let (code, stats, stderr) = run_to_idle(&d.p("fwd.toml"));
    assert_eq!(code, 0, "anygate failed:\n{stderr}");

    // Packet by packet, in order, byte for byte.
    for (port, file) in [("wan0", "wan-out.pcap"), ("lan0", "lan-out.pcap")] {
        let want: Vec<&Vec<u8>> = cases
            .iter()
            .filter_map(|c| c.1.as_ref().ok().filter(|o| o.0 == port).map(|o| &o.1))
            .collect();
        let mut got = read_pcap(&d.p(file));
        if port == "lan0" {
            // Where the ARP request falls depends on burst boundaries; check it on its own.
            let arps: Vec<Vec<u8>> = got.iter().filter(|f| is_arp(f)).cloned().collect();
            assert_eq!(
                arps,
                vec![expected_arp_request()],
                "one who-has for 10.0.0.3 (rate-limited)"
            );
            got.retain(|f| !is_arp(f));
        }
        assert_eq!(got.len(), want.len(), "{port}: packet count");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, *w, "{port}: output packet {i} differs");
        }
    }

    // Wireshark's dissectors as the independent oracle on the customer side.
    let rows = tshark(
        &d.p("lan-out.pcap"),
        &[
            "ip.checksum.status",
            "ip.ttl",
            "eth.src",
            "eth.dst",
            "arp.opcode",
            "arp.dst.proto_ipv4",
        ],
    );
    let (arp_rows, rows): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| !r[4].is_empty());
    assert_eq!(arp_rows.len(), 1);
    assert_eq!(arp_rows[0][4], "1", "tshark: an ARP request");
    assert_eq!(arp_rows[0][5], "10.0.0.3", "tshark: who-has 10.0.0.3");
    let inputs: Vec<&Vec<u8>> = cases
        .iter()
        .filter(|c| matches!(&c.1, Ok(("lan0", _))))
        .map(|c| &c.0)
        .collect();
    assert_eq!(rows.len(), 200);
    for (r, input) in rows.iter().zip(inputs) {
        assert_eq!(r[0], "1", "tshark: IP checksum status good");
        assert_eq!(
            r[1],
            (input[22] - 1).to_string(),
            "tshark: TTL decremented by one"
        );
        assert_eq!(r[2], "02:00:00:00:01:01");
        assert_eq!(r[3], "02:00:00:00:01:02");
    }
    let wan_rows = tshark(
        &d.p("wan-out.pcap"),
        &["ip.checksum.status", "ip.ttl", "arp.opcode", "eth.dst"],
    );
    assert!(wan_rows.iter().all(|r| r[3] == "02:00:00:00:00:fe"));
    assert_eq!(
        wan_rows.iter().filter(|r| r[2] == "2").count(),
        1,
        "one ARP reply"
    );
    assert!(wan_rows
        .iter()
        .filter(|r| r[2].is_empty())
        .all(|r| r[0] == "1" && r[1] == "63"));

    // Counters: every input accounted for, each drop under its own reason, no mbuf leaked.
    let n = cases.len() as u64;
    assert_eq!(stats["final"], true);
    assert_eq!(stats["rx_total"], n);
    let fwd = cases.iter().filter(|c| c.1.is_ok()).count() as u64;
    assert_eq!(stats["originated"], 1, "one ARP request");
    assert_eq!(stats["tx_total"], fwd + 1);
    assert_eq!(stats["drop_total"], n - fwd);
    for c in &cases {
        if let Err(reason) = c.1 {
            let want = cases.iter().filter(|k| k.1 == Err(reason)).count() as u64;
            assert_eq!(stats["drops"][reason], want, "drop counter {reason}");
        }
    }
    assert_eq!(
        stats["mempool"]["available"], stats["mempool"]["size"],
        "mbufs leaked"
    );
}

#[test]
fn trace_gives_the_same_verdicts_without_dpdk() {
    let d = Dir::new();
    let cases = forward_cases();
    let frames: Vec<Vec<u8>> = cases.iter().map(|c| c.0.clone()).collect();
    write_pcap(&d.p("in.pcap"), &frames);
    std::fs::write(d.p("fwd.toml"), forward_config(&d)).unwrap();
    let out_pcap = d.p("out.pcap");
    let extra = ["--port", "wan0", "--out", out_pcap.to_str().unwrap()];
    let lines = trace_json(&d.p("fwd.toml"), &d.p("in.pcap"), &extra);
    assert_eq!(lines.len(), cases.len());
    for (i, (l, c)) in lines.iter().zip(&cases).enumerate() {
        assert_eq!(l["index"], i as u64);
        match &c.1 {
            Ok((port, _)) => {
                assert_eq!(l["verdict"], "forward", "packet {i}");
                assert_eq!(l["egress_port"], *port, "packet {i}");
                assert!(l.get("reason").is_none());
            }
            Err(reason) => {
                assert_eq!(l["verdict"], "drop", "packet {i}");
                assert_eq!(l["reason"], *reason, "packet {i}");
                assert!(l.get("egress_port").is_none());
            }
        }
    }
    assert_eq!(lines[0]["route_prefix"], "172.16.0.0/12");
    assert_eq!(lines[0]["nexthop"], "10.0.0.2");
    let want: Vec<Vec<u8>> = cases
        .iter()
        .filter_map(|c| c.1.as_ref().ok().map(|o| o.1.clone()))
        .collect();
    assert_eq!(
        read_pcap(&d.p("out.pcap")),
        want,
        "trace --out holds the rewritten packets"
    );
}

fn swap_config(d: &Dir, prefix_b: &str, nexthop: &str) -> String {
    format!(
        r#"{eal}
[node]
control_socket = "{sock}"
[[ports]]
name = "in0"
device = "net_pcap0,rx_pcap={input},infinite_rx=1,tx_pcap=/dev/null"
mac = "02:00:00:00:01:01"
address = "10.0.0.1/24"

[[ports]]
name = "a0"
device = "net_null0,no-rx=1"
address = "192.0.2.1/24"

[[ports]]
name = "b0"
device = "net_null1,no-rx=1"
address = "198.51.100.1/24"

[[workers]]
core = {core}
rx = [{{ port = "in0" }}, {{ port = "a0" }}, {{ port = "b0" }}]

[[neighbors]]
ip = "192.0.2.2"
mac = "02:00:00:00:00:02"
port = "a0"

[[neighbors]]
ip = "198.51.100.2"
mac = "02:00:00:00:00:03"
port = "b0"

[[routes]]
prefix = "203.0.113.0/24"
nexthop = "{nexthop}"

[[routes]]
prefix = "{prefix_b}"
nexthop = "192.0.2.2"
"#,
        eal = eal("ag-swap"),
        sock = d.p("ctl.sock").display(),
        input = d.p("in.pcap").display(),
        core = cores().1,
    )
}

fn tx(v: &Value, port: usize) -> u64 {
    v["ports"][port]["tx_packets"].as_u64().unwrap()
}

#[test]
fn sighup_swaps_the_table_under_traffic_without_loss() {
    let _g = lock();
    let d = Dir::new();
    let frames: Vec<Vec<u8>> = (0..64u8)
        .map(|i| {
            udp(
                CUST,
                LAN,
                [10, 0, 0, 50],
                [203, 0, 113, i + 1],
                64,
                64 + i as usize,
            )
        })
        .collect();
    write_pcap(&d.p("in.pcap"), &frames);
    let cfg = d.p("swap.toml");
    std::fs::write(&cfg, swap_config(&d, "172.16.0.0/12", "192.0.2.2")).unwrap();
    let mut r = Running::start(&cfg, "0.2", d.p("stderr.log"));

    let s = r.next_stats();
    let s = if tx(&s, 1) == 0 { r.next_stats() } else { s };
    assert!(tx(&s, 1) > 0, "traffic flows to a0 first");
    assert_eq!(tx(&s, 2), 0);

    // An invalid config is refused whole, with the key named, and traffic keeps its path.
    std::fs::write(&cfg, swap_config(&d, "172.16.0.1/12", "198.51.100.2")).unwrap();
    r.signal("-HUP");
    let log = r.wait_stderr("reload refused");
    assert!(
        log.contains("routes[1].prefix: host bits set in 172.16.0.1/12"),
        "{log}"
    );
    let a = r.next_stats();
    let b = r.next_stats();
    assert_eq!(b["generation"], 1);
    assert!(tx(&b, 1) > tx(&a, 1), "still forwarding to a0");
    assert_eq!(tx(&b, 2), 0);

    // A valid change moves the traffic to b0 while it flows.
    std::fs::write(&cfg, swap_config(&d, "172.16.0.0/12", "198.51.100.2")).unwrap();
    r.signal("-HUP");
    r.wait_stderr("table generation 2 published");
    let mut s = r.next_stats();
    while s["generation"] != 2 {
        s = r.next_stats();
    }
    let s1 = r.next_stats();
    let s2 = r.next_stats();
    assert_eq!(tx(&s2, 1), tx(&s1, 1), "nothing goes to a0 after the swap");
    assert!(tx(&s2, 2) > tx(&s1, 2), "b0 carries the traffic");

    let last = r.finish();
    // No packet lost, duplicated or leaked across two reloads.
    assert_eq!(last["drop_total"], 0, "{last}");
    assert_eq!(last["rx_total"], last["tx_total"]);
    assert!(last["rx_total"].as_u64().unwrap() > 100_000);
    assert_eq!(
        last["mempool"]["available"], last["mempool"]["size"],
        "mbufs leaked"
    );
}

#[test]
fn check_and_run_refuse_a_bad_config_naming_the_key() {
    let d = Dir::new();
    write_pcap(&d.p("wan-in.pcap"), &[]);
    write_pcap(&d.p("lan-in.pcap"), &[]);
    let good = forward_config(&d);
    std::fs::write(d.p("good.toml"), &good).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config", d.p("good.toml").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("OK (2 ports, 1 worker, 3 neighbors, 3 routes)"));

    let cases = [
        (
            good.replace("172.16.0.0/12", "172.16.0.1/12"),
            "routes[1].prefix: host bits set in 172.16.0.1/12",
        ),
        (
            good.replace("mtu = 1400", "mtu = 1400\nspeed = 10"),
            "unknown field `speed`",
        ),
        (good.replace("mtu = 1400", "mtu = \"big\""), "invalid type"),
        (
            good.replace("nexthop = \"10.0.0.2\"", "nexthop = \"100.64.0.1\""),
            "routes[1].nexthop: 100.64.0.1 is on no port",
        ),
        (
            format!("{good}\n[[routes]]\nprefix = \"8.0.0.0/8\"\nnexthop = \"192.0.2.254\"\n"),
            "routes[3]: duplicate route: 8.0.0.0/8 via 192.0.2.254 is already routes[0]",
        ),
        (
            good.replace(&format!("core = {}", cores().1), "core = 4096"),
            "workers[0].core: core 4096 is not available",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(d.p("bad.toml"), &text).unwrap();
        for cmd in ["check", "run"] {
            let out = Command::new(BIN)
                .args([cmd, "--config", d.p("bad.toml").to_str().unwrap()])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
            assert!(err.contains(want), "{cmd}: want `{want}` in:\n{err}");
            assert!(
                !err.contains("EAL"),
                "{cmd} must refuse before starting DPDK"
            );
        }
    }
}
