//! The fleet with real daemons (scripts/netns-fleet-test; issue #16's last test): three
//! anygate nodes, each with its gobgpd, behind a gobgpd route reflector with ADD-PATH;
//! customer A (BIRD) peers with node 1 only, B with node 2 only. Every node holds the same
//! routes at the same priorities, each of 10,000 flows of one capture leaves through the same
//! tunnel on every node (`anygate trace` over each node's table), and A's withdrawal moves
//! exactly its flows, alike everywhere. BIRD reaches each node's gobgpd over a veth (the punt
//! path is e2e_bgp_daemons'); anygate runs on net_null with the idle back-off. About 15 s.
//! Needs root, gobgpd and bird2, as CI and these machines have (scripts/setup).
use std::process::Command;

#[test]
fn three_nodes_behind_a_route_reflector_forward_alike() {
    let out = Command::new("scripts/netns-fleet-test")
        .env("ANYGATE_BIN", env!("CARGO_BIN_EXE_anygate"))
        .output()
        .expect("run scripts/netns-fleet-test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{text}");
    for step in [
        "all three nodes hold the same routes: 10.50.0.0/24 cust-a 30 selected",
        "no customer hears another's paths",
        "10,000 flows leave through the same tunnel on all three nodes: cust-a 5000, cust-b 5000,",
        "on every node exactly its 2500 flows moved cust-a -> cust-b, no other",
        "netns fleet test: PASS",
    ] {
        assert!(text.contains(step), "missing `{step}`:\n{text}");
    }
}
