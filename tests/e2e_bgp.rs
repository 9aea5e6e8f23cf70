//! BGP on the real binary, with the adapter's stand-in (the gobgpd adapter is built on its own
//! branch; with it, the real-daemon test comes at merge): `check` refuses an iBGP peer naming
//! the key, `run` starts the adapter and `ctl show bgp` reports it and the peers, and a SIGHUP
//! that removes a peer's section is taken live.
mod common;

use common::*;
use std::process::Command;

fn config(d: &Dir, peer: &str) -> String {
    format!(
        r#"{head}
[[tunnels]]
name = "T1"
type = "gre"
customer_endpoint = "192.0.2.77"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"
{peer}

[bgp]
asn = 64512
"#,
        head = live_config(d, "bgp"),
    )
}

const PEER: &str = "[tunnels.bgp]\nasn = 65000\nmax_prefixes = 100\n";

#[test]
fn bgp_config_ctl_show_bgp_and_a_live_reload() {
    let _g = lock();
    let d = Dir::new();
    // Anything: the port replays it to keep the worker busy; it is dropped.
    write_pcap(&d.p("in.pcap"), &[vec![0xff; 60]]);

    std::fs::write(d.p("ibgp.toml"), config(&d, "[tunnels.bgp]\nasn = 64512\n")).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config", d.p("ibgp.toml").to_str().unwrap()])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("tunnels[0].bgp.asn"), "{text}");

    let cfg = d.p("anygate.toml");
    std::fs::write(&cfg, config(&d, PEER)).unwrap();
    let run = Running::start(&cfg, "1", d.p("stderr"));
    run.wait_stderr("bgp: adapter started");
    // The stand-in says it configures nothing: logged once at WARN, the routes stay.
    run.wait_stderr("gobgpd API unreachable");

    let (ok, v, err) = ctl(&d, &["show", "bgp"]);
    assert!(ok, "{err}");
    assert_eq!(v["schema"], 1);
    assert_eq!(v["configured"], true);
    assert_eq!(v["asn"], 64512);
    assert_eq!(v["router_id"], "10.0.0.1", "the first port's address");
    assert_eq!(v["adapter"]["state"], "disconnected");
    let p = &v["peers"][0];
    assert_eq!(p["name"], "T1");
    assert_eq!(p["address"], "10.100.0.1");
    assert_eq!(
        (p["asn"].as_u64(), p["max_prefixes"].as_u64()),
        (Some(65000), Some(100))
    );
    assert_eq!(p["state"], "unknown");
    let text = Command::new(BIN)
        .args([
            "ctl",
            "--socket",
            d.p("ctl.sock").to_str().unwrap(),
            "show",
            "bgp",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.starts_with("bgp: AS 64512, router id 10.0.0.1"),
        "{text}"
    );
    assert!(text.contains("T1"), "{text}");

    // The peer's section removed, live.
    std::fs::write(&cfg, config(&d, "")).unwrap();
    run.signal("-HUP");
    run.wait_stderr("reload (SIGHUP)");
    let (ok, v, err) = ctl(&d, &["show", "bgp"]);
    assert!(ok, "{err}");
    assert_eq!(v["peers"], serde_json::json!([]));
    let stderr = run.stderr();
    assert_eq!(
        stderr.matches("gobgpd API unreachable").count(),
        1,
        "logged once:\n{stderr}"
    );
    run.finish();
}
