//! Health checks fail traffic over by themselves and bring it back: the real binary on DPDK's
//! af_packet PMD over a veth, a raw-socket customer router in a network namespace
//! (scripts/netns-health-test). It needs root, as CI and these machines have.
use std::process::Command;

#[test]
fn a_tunnel_that_stops_answering_loses_its_traffic_and_gets_it_back() {
    let out = Command::new("scripts/netns-health-test")
        .env("ANYGATE_BIN", env!("CARGO_BIN_EXE_anygate"))
        .output()
        .expect("run scripts/netns-health-test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("T1 stopped answering: down after"), "{text}");
    assert!(text.contains("0 missing"), "{text}");
    assert!(text.contains("netns health test: PASS"), "{text}");
}
