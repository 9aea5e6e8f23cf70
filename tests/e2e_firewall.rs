//! A firewall rule added by reload takes effect under traffic, and drops nothing else.
mod common;

use common::*;
use etherparse::PacketBuilder;
use serde_json::Value;

fn config(d: &Dir, firewall: &str) -> String {
    format!(
        r#"{live}
[[tunnels]]
name = "acme"
type = "gre"
customer_endpoint = "198.51.100.1"
edge_endpoint = "203.0.113.10"
interface_address = "10.255.0.2/31"
# Unprobed: a probe is a packet out (or a drop) that the identities below do not count.
health_check = {{ enabled = false }}

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[[routes]]
prefix = "192.168.10.0/24"
nexthop = "acme"
{firewall}"#,
        live = live_config(d, "ag-fw"),
    )
}

fn block(v: &Value) -> u64 {
    v["drops"]["firewall_block"].as_u64().unwrap()
}
fn encap(v: &Value) -> u64 {
    v["tunnels"][0]["tx_packets"].as_u64().unwrap()
}

#[test]
fn a_rule_added_by_reload_blocks_only_what_it_names() {
    let _g = lock();
    let d = Dir::new();
    // Toward the customer: half DNS (udp/53), half web (udp/80).
    let frames: Vec<Vec<u8>> = (0..64u16)
        .map(|i| {
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 1, 2], [2, 0, 0, 0, 1, 1])
                .ipv4([10, 0, 0, 50], [192, 168, 10, (i % 200) as u8 + 1], 64)
                .udp(2000 + i, if i % 2 == 0 { 53 } else { 80 });
            let mut v = Vec::new();
            b.write(&mut v, &[0u8; 18]).unwrap();
            v
        })
        .collect();
    write_pcap(&d.p("in.pcap"), &frames);
    let cfg = d.p("fw.toml");
    std::fs::write(&cfg, config(&d, "")).unwrap();
    let mut r = Running::start(&cfg, "0.2", d.p("stderr.log"));
    let s = r.next_stats();
    let s = if encap(&s) == 0 { r.next_stats() } else { s };
    assert!(encap(&s) > 0);
    assert_eq!(block(&s), 0, "no rules, nothing blocked");

    let rule = "\n[firewall]\nrules = [{ expression = \"udp.dstport eq 53\", action = \"block\", description = \"no DNS\" }]\n";
    std::fs::write(&cfg, config(&d, rule)).unwrap();
    r.signal("-HUP");
    r.wait_stderr("table generation 2 published");
    let mut s = r.next_stats();
    while s["generation"] != 2 {
        s = r.next_stats();
    }
    let (a, b) = (r.next_stats(), r.next_stats());
    let (blocked, passed) = (block(&b) - block(&a), encap(&b) - encap(&a));
    assert!(
        blocked > 0 && passed > 0,
        "DNS blocked ({blocked}), web still encapsulated ({passed})"
    );
    let share = blocked as f64 / (blocked + passed) as f64;
    assert!(
        (0.4..0.6).contains(&share),
        "half the flows are DNS: {share}"
    );

    // `ctl show firewall`: the rules in order with their counters, as JSON and as text.
    let show = |json: bool| {
        let mut c = std::process::Command::new(BIN);
        c.args(["ctl", "--socket", d.p("ctl.sock").to_str().unwrap()]);
        if json {
            c.arg("--json");
        }
        let out = c.args(["show", "firewall"]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let v: Value = serde_json::from_str(show(true).trim()).unwrap();
    let rule = &v["firewall"]["rules"][0];
    assert_eq!(rule["expression"], "udp.dstport eq 53");
    assert_eq!(rule["action"], "block");
    assert!(rule["packets"].as_u64().unwrap() >= blocked, "{v}");
    assert!(v["firewall"]["default"]["packets"].as_u64().unwrap() > 0);
    let text = show(false);
    assert!(
        text.contains("block")
            && text.contains("udp.dstport eq 53")
            && text.contains("(default action)"),
        "{text}"
    );

    let last = r.finish();
    // Nothing but the named traffic was dropped, across the reload.
    assert_eq!(
        last["drop_total"], last["drops"]["firewall_block"],
        "{last}"
    );
    assert_eq!(
        last["rx_total"].as_u64().unwrap(),
        last["tx_total"].as_u64().unwrap() + block(&last)
    );
    assert_eq!(
        last["firewall"]["rules"][0]["packets"],
        block(&last),
        "rule 0 decided every block"
    );
    assert_eq!(last["firewall"]["rules"][0]["description"], "no DNS");
    assert_eq!(last["mempool"]["available"], last["mempool"]["size"]);
}
