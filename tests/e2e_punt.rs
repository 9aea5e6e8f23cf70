//! The punt path end to end (scripts/netns-punt-test): two instances of the real binary in
//! network namespaces on DPDK's af_packet PMD, each with its exception port (net_tap) to its
//! namespace's kernel. Ping of our tunnel side through GRE, TCP with MD5 to port 179, ping of
//! a port address, a tshark decode of the capture, the rate limit and the counters. Needs
//! root, as CI and these machines have.
mod common;

use common::netns_script;

#[test]
fn the_kernel_answers_our_addresses_through_the_exception_port() {
    let (ok, text) = netns_script("scripts/netns-punt-test");
    assert!(ok, "{text}");
    assert!(
        text.contains("from the customer router: 5 received,"),
        "{text}"
    );
    assert!(text.contains("from the port subnet: 5 received,"), "{text}");
    assert!(
        text.contains("with TCP MD5 through the tunnel: 'OPEN hello'"),
        "{text}"
    );
    assert!(text.contains("wrong key: no session"), "{text}");
    assert!(text.contains("netns punt test: PASS"), "{text}");
}
