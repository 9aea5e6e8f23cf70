//! BGP end to end with real daemons, through the data plane (scripts/netns-bgp-test; issue
//! #16's single-node test): gobgpd beside the edge anygate, whose exception port carries its
//! sessions through GRE to BIRD 2 behind a customer-side anygate. The edge's `ctl --json show
//! routes` / `show bgp` prove each step: a wrong MD5 password gives no session; community and
//! prepends select the route (30 over 50); a static route at 30 wins; 13335:60901 gives
//! 501000; a withdrawal removes the route; a gobgpd restart loses no route and no packet; a killed BIRD's
//! routes stay stale for its restart time (10 s here), then go; the edge stopped withdraws our
//! routes from BIRD and leaves gobgpd without peers. About 25 s. Needs root,
//! gobgpd and bird2, as CI and these machines have (scripts/setup).
mod common;

use common::netns_script;

#[test]
fn gobgpd_and_bird_through_the_data_plane() {
    let (ok, text) = netns_script("scripts/netns-bgp-test");
    assert!(ok, "{text}");
    for step in [
        "wrong MD5 password at cust-a: no session (",
        "right password: 10.50.0.0/24: cust-a 30 |",
        "10.51.0.0/24: cust-a 501000 |",
        "static route at 30 via cust-c: cust-c 30 |",
        "cust-a withdrew 10.51.0.0/24: gone from show routes",
        "gobgpd killed: show bgp says disconnected; 10.50.0.0/24: cust-a 30 |",
        "none dropped as no_route, cust-a encapsulated",
        "gobgpd restarted: connected, both sessions established; 10.50.0.0/24 via cust-a in all",
        "BIRD A killed: 10.50.0.0/24: cust-a 30 |",
        "show bgp cust-a: ",
        " running stale 1",
        "(restart time 10 s): 10.50.0.0/24: cust-b 50 |",
        "anygate E stopped: bgp: stopping: withdrew our ",
        "route(s) of ours, none ",
        "gobgpd has no peer",
        "netns bgp test: PASS",
    ] {
        assert!(text.contains(step), "missing `{step}`:\n{text}");
    }
}
