//! Real kernel TCP through two anygate instances joined by a GRE tunnel, on DPDK's af_packet
//! PMD over veths, with client and server in network namespaces: scripts/netns-tunnel-test.
//! It needs root, as CI and these machines have.
use std::process::Command;

#[test]
fn tcp_transfer_crosses_the_tunnel_with_the_mss_clamped() {
    let out = Command::new("scripts/netns-tunnel-test")
        .env("ANYGATE_BIN", env!("CARGO_BIN_EXE_anygate"))
        .output()
        .expect("run scripts/netns-tunnel-test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("server counted 2097152"), "{text}");
    assert!(text.contains("server saw SYN MSS 1300"), "{text}");
    assert!(text.contains("netns tunnel test: PASS"), "{text}");
}
