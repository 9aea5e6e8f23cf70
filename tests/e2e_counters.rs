//! Per-rule and per-tunnel counters follow their rule and their tunnel, not their position,
//! across reloads under live traffic: a rule inserted above another starts from zero while the
//! other counts on, and reordered tunnels keep their traffic under their names.
mod common;

use common::*;
use etherparse::PacketBuilder;
use serde_json::Value;
use std::process::Command;

/// Tunnel `name`, the `n`th customer (198.51.100.n, interface 10.255.0.2n/31). Unprobed: a
/// health probe is tunnel traffic no rule counts, and when one is due depends on the machine's
/// load (a loaded run lasted past T1's first probe).
fn tunnel(name: &str, n: u8) -> String {
    format!(
        "\n[[tunnels]]\nname = \"{name}\"\ntype = \"gre\"\ncustomer_endpoint = \"198.51.100.{n}\"\n\
         edge_endpoint = \"203.0.113.10\"\ninterface_address = \"10.255.0.{}/31\"\n\
         [tunnels.health_check]\nenabled = false\n",
        2 * n
    )
}

const DNS: &str = r#"{ expression = "udp.dstport eq 53", action = "allow", description = "dns" }"#;
const WEB: &str =
    r#"{ id = "web", expression = "udp.dstport eq 80", action = "allow", description = "web" }"#;

/// T1 and T2 in this order (or the other), a /24 through each, and these firewall rules.
fn config(d: &Dir, swapped: bool, rules: &[&str]) -> String {
    let (t1, t2) = (tunnel("T1", 1), tunnel("T2", 2));
    let tunnels = if swapped { [t2, t1] } else { [t1, t2] };
    format!(
        r#"{live}{}{}
[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[[routes]]
prefix = "10.10.1.0/24"
nexthop = "T1"

[[routes]]
prefix = "10.10.2.0/24"
nexthop = "T2"

[firewall]
rules = [{}]
"#,
        tunnels[0],
        tunnels[1],
        rules.join(", "),
        live = live_config(d, "ag-counters"),
    )
}

/// `anygate ctl --json ARGS`, which must succeed.
fn ctl_ok(d: &Dir, args: &[&str]) -> Value {
    let (ok, v, err) = ctl(d, args);
    assert!(ok, "ctl {args:?}: {err}");
    v
}

/// The entry of `list` whose `key` is `value`.
fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x[key] == value)
        .unwrap_or_else(|| panic!("no {key} {value} in {list}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Reads stats until the table generation reaches `g`; returns the next report.
fn after(r: &mut Running, g: u64) -> Value {
    while u(&r.next_stats()["generation"]) < g {}
    r.next_stats()
}

#[test]
fn counters_follow_rules_and_tunnels_across_reloads() {
    let _g = lock();
    let d = Dir::new();
    // From in0: DNS (udp/53) toward T1's prefix, web (udp/80) toward T2's, alternating.
    let frames: Vec<Vec<u8>> = (0..64u16)
        .map(|i| {
            let (dst, port) = if i % 2 == 0 {
                ([10, 10, 1, (i % 200) as u8 + 1], 53)
            } else {
                ([10, 10, 2, (i % 200) as u8 + 1], 80)
            };
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 1, 2], [2, 0, 0, 0, 1, 1])
                .ipv4([10, 0, 0, 50], dst, 64)
                .udp(2000 + i, port);
            let mut v = Vec::new();
            b.write(&mut v, &[0u8; 18]).unwrap();
            v
        })
        .collect();
    write_pcap(&d.p("in.pcap"), &frames);
    let cfg = d.p("counters.toml");
    std::fs::write(&cfg, config(&d, false, &[DNS])).unwrap();
    let mut r = Running::start(&cfg, "0.2", d.p("stderr.log"));
    let mut s = r.next_stats();
    while u(&s["firewall"]["rules"][0]["packets"]) == 0 {
        s = r.next_stats();
    }
    let dns_before = u(&s["firewall"]["rules"][0]["packets"]);

    // A rule inserted above the DNS rule (SIGHUP): it starts from zero, the DNS rule counts on.
    std::fs::write(&cfg, config(&d, false, &[WEB, DNS])).unwrap();
    r.signal("-HUP");
    r.wait_stderr("table generation 2 published");
    let s = after(&mut r, 2);
    let fw = ctl_ok(&d, &["show", "firewall"]);
    let rules = &fw["firewall"]["rules"];
    let (web, dns) = (&rules[0], &rules[1]);
    assert_eq!(
        (&web["id"], &web["description"]),
        (&"web".into(), &"web".into()),
        "{fw}"
    );
    assert_eq!(
        (&dns["id"], &dns["description"]),
        (&Value::Null, &"dns".into())
    );
    assert!(u(&dns["packets"]) >= u(&s["firewall"]["rules"][1]["packets"]));
    assert!(u(&s["firewall"]["rules"][1]["packets"]) > dns_before, "{s}");
    assert!(
        u(&web["packets"]) < u(&dns["packets"]) - dns_before,
        "web only since the reload, DNS since the start: {fw}"
    );
    let text = Command::new(BIN)
        .args(["ctl", "--socket", d.p("ctl.sock").to_str().unwrap()])
        .args(["show", "firewall"])
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("udp.dstport eq 80  [web]  # web")
            && text.contains("udp.dstport eq 53  # dns"),
        "{text}"
    );

    // The tunnels swapped (`ctl reload`): each keeps its traffic under its name.
    let before = ctl_ok(&d, &["show", "tunnels"]);
    std::fs::write(&cfg, config(&d, true, &[WEB, DNS])).unwrap();
    let reply = ctl_ok(&d, &["reload"]);
    let s = after(&mut r, u(&reply["generation"]));
    let now = ctl_ok(&d, &["show", "tunnels"]);
    assert_eq!(now["tunnels"][0]["name"], "T2", "{now}");
    for t in ["T1", "T2"] {
        let (b, n) = (
            find(&before["tunnels"], "name", t),
            find(&now["tunnels"], "name", t),
        );
        assert!(
            u(&n["tx_packets"]) > u(&b["tx_packets"]),
            "{t}: {b} then {n}"
        );
    }
    assert_eq!(s["tunnels"][0]["name"], "T2");
    assert!(
        u(&s["tunnels"][0]["tx_packets"]) <= u(&find(&now["tunnels"], "name", "T2")["tx_packets"])
    );

    // Exact at the end: the DNS rule decided every packet into T1, since the start; web
    // packets went by the default before the web rule existed, by it after.
    let last = r.finish();
    let fw = &last["firewall"];
    let tx = |t: &str| u(&find(&last["tunnels"], "name", t)["tx_packets"]);
    assert_eq!(u(&last["drop_total"]), 0, "{last}");
    assert_eq!(u(&fw["rules"][1]["packets"]), tx("T1"), "{last}");
    assert_eq!(
        u(&fw["rules"][0]["packets"]) + u(&fw["default"]["packets"]),
        tx("T2"),
        "{last}"
    );
    assert_eq!(tx("T1") + tx("T2"), u(&last["tx_total"]));
    assert_eq!(last["mempool"]["available"], last["mempool"]["size"]);
}
