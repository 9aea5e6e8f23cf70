//! The stage graph: the order the stages run in over a burst, and where packets go between
//! them. Each stage walks the packets still in the burst; one it drops or forwards early
//! (an ARP reply) leaves the burst there with its verdict set. A stage no packet of the burst
//! needs (tunnel ingress, firewall, ICMP errors, encapsulation) is skipped on one test.
//!
//! ```text
//! l2 ─► ipv4_validate ─► lookup (outer) ─┬─────────────────────────────────┬─► route ─► firewall ─► hop_checks
//!                                        └─► tunnel_ingress ─► lookup (inner) ┘
//! hop_checks ─► icmp_error ─► neighbor ─► rewrite ─► encap ─► (account)
//!                 └─ errors built in place ─► route ─► hop_checks ─┘ (a mini-pass, then rejoin)
//!
//! inside tunnel_ingress: decap ─► inner ipv4 ─► probe_answer ─► gre keepalive ─► source check
//!   (an answer to our health probe leaves here, consumed, before any check or the firewall;
//!    one to an anycast address outside a tunnel, a unidirectional check's, too)
//!
//! local (`run_local`, the inject ring's probes):
//! originate ─► hop_checks ─► neighbor ─► rewrite ─► encap ─► (account)
//! ```
use super::context::Live;
use super::pipeline::Burst;
use super::stages::{
    encap, firewall, hop_checks, icmp_error, ipv4_validate, l2, lookup, neighbor, originate,
    rewrite, route, tunnel_ingress,
};
use super::verdict::{DropReason, Verdict};
use crate::packet::PacketBuf;

#[inline(always)]
pub(super) fn run<B: PacketBuf>(b: &mut Burst<B>) {
    let mut live = Live::first(b.pkts.len());
    l2::run(b, &mut live);
    ipv4_validate::run(b, &mut live);
    lookup::outer(b, &mut live);
    if b.needs.decap {
        let mut decap = tunnel_ingress::run(b, &live);
        lookup::inner(b, &mut decap);
        // Drops in either list are drops from `live`.
        live.retain_pending(b.cx);
        b.left = 0;
    }
    route::run(b, &mut live);
    if b.needs.decap || b.needs.encap {
        firewall::run(b, &mut live);
    }
    hop_checks::run(b, &mut live);
    if b.needs.icmp_error {
        icmp_error::run(b, &mut live, |b, errors| {
            route::run(b, errors);
            hop_checks::run(b, errors);
        });
    }
    neighbor::run(b, &mut live);
    rewrite::run(b, &mut live);
    if b.needs.encap {
        encap::run(b, &mut live);
    }
    account(b);
}

/// Packets anygate made, each into the tunnel `tunnels[i]`: the route's place is taken by
/// the sender's choice, and the firewall and ICMP errors never apply to them.
pub(super) fn run_local<B: PacketBuf>(b: &mut Burst<B>, tunnels: &[u16]) {
    let mut live = Live::first(b.pkts.len());
    originate::run(b, &mut live, tunnels);
    hop_checks::run(b, &mut live);
    neighbor::run(b, &mut live);
    rewrite::run(b, &mut live);
    encap::run(b, &mut live);
    account(b);
}

/// Settles the ICMP errors' fate, then counts every drop under its reason. A packet no stage
/// decided (never, by construction) is dropped as `no_route` here, so it is counted too and
/// the accounting identity holds whatever a future stage forgets.
#[inline(always)]
fn account<B>(b: &mut Burst<B>) {
    icmp_error::settle(b);
    for i in 0..b.cx.len() {
        let v = *b.cx[i]
            .verdict
            .get_or_insert(Verdict::Drop(DropReason::NoRoute));
        if let Verdict::Drop(r) = v {
            let n = b.cx[i].note;
            b.count_drop(r, (n.ingress_tunnel, n.egress_tunnel));
        }
    }
}
