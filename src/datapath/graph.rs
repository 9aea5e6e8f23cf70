//! The stage graph: the order the stages run in over a burst, and where packets go between
//! them. Each stage walks the packets still in the burst; one it drops or forwards early
//! (an ARP reply) leaves the burst there with its verdict set. A stage no packet of the burst
//! needs (tunnel ingress, ICMP errors) is skipped on one test.
//!
//! ```text
//! l2 ─► ipv4_validate ─► lookup (outer) ─┬─────────────────────────────────┬─► route ─► firewall ─► hop_checks
//!                                        └─► tunnel_ingress ─► lookup (inner) ┘
//!   (with ARR on some tunnel: arr::ret ─► route (when no learned flow) ─► firewall ─►
//!    hop_checks ─► arr::learn)
//!   (ARR off: a packet from a port to a one-gateway route set that passes the hop checks
//!    takes the direct way, `stages::direct`: route ─► hop_checks ─► neighbor ─► rewrite in
//!    one step, forwarded there; the rest go on as below)
//! hop_checks ─► icmp_error ─► neighbor ─► rewrite ─► encap ─► (account)
//!                 └─ errors built in place ─► route ─► hop_checks ─┘ (a mini-pass, then rejoin)
//!
//! inside tunnel_ingress: decap ─► inner ipv4 ─► probe_answer ─► gre keepalive ─► source check
//!   (an answer to our health probe leaves here, consumed, before any check or the firewall;
//!    one to an anycast address outside a tunnel, a unidirectional check's, too)
//!
//! lookup (outer or inner) of one of our addresses ─► punt ─► the exception port (kernel);
//! a burst from that port is local (`punt::from_kernel`: no TTL decrement, no firewall)
//!
//! local (`run_local`, the inject ring's probes):
//! originate ─► hop_checks ─► neighbor ─► rewrite ─► encap ─► (account)
//! ```
//!
//! Stages that need no burst-wide step run fused, one pass doing each packet through all of
//! them (l2 + ipv4_validate; route + firewall + hop_checks; neighbor + rewrite + encap): a
//! pass per stage cost the loop, the index and the context reloads per packet (callgrind,
//! issue 14). The per-packet functions stay in their stage files.
use super::context::Live;
use super::pipeline::{count_drop, Burst};
use super::stages::{
    arr, direct, encap, firewall, hop_checks, icmp_error, ipv4_validate, l2, lookup, neighbor,
    originate, punt, rewrite, route, tunnel_ingress,
};
use super::verdict::{DropReason, Verdict};
use super::BURST;
use crate::packet::PacketBuf;
use crate::route::NextHop;

/// Runs the burst through the stages; `verdicts[i]` gets packet `i`'s decision.
#[inline(always)]
pub(super) fn run<B: PacketBuf>(b: &mut Burst<B>, verdicts: &mut [Verdict]) {
    let mut live = Live::first(b.pkts.len());
    // Places past the burst's packets stay 0 (a route), for `lookup::outer`. Filled in
    // place: returned, the array was copied on its way out (callgrind).
    let mut sets = [0u32; BURST];
    ingress(b, &mut live, &mut sets);
    punt::from_kernel(b, &live);
    lookup::outer(b, &mut live, &sets);
    if b.needs.decap {
        let decap = tunnel_ingress::run(b, &live);
        lookup::inner(b, &decap);
        // Drops in either are drops from `live`.
        b.compact(&mut live);
    }
    // ARR off (no tunnel has it): the plain pass, not one more test per packet; the ARR
    // pass is kept out of line so the plain one compiles as before (callgrind).
    let all_direct = match b.snap.arr_table() {
        None => route_pass(b, &mut live, verdicts),
        Some(t) => {
            arr_pass(b, &mut live, t);
            false
        }
    };
    if all_direct {
        // Every packet forwarded directly, its verdict handed out there: no error to
        // build, nothing to send on, no drop to count (the account pass was ~10 a packet).
        return;
    }
    if b.needs.icmp_error {
        icmp_error::run(b, &mut live, |b, errors| {
            each(b, errors, |b, i| route_to_hop_checks(b, i))
        });
    }
    leave(b, &live);
    account(b, verdicts);
}

/// l2 ─► ipv4_validate over the whole burst, every packet of which is still in (positions,
/// not the live list), summing the received bytes on the way: one read of each buffer's
/// bounds where there were three (callgrind, issue 14). Eight packets at a time, each eight's
/// (outer) destinations looked up as they are read: the route sets by position, for
/// `lookup::outer` (a lookup is pure, so made early it answers as made later; a packet that
/// left here has its place's answer ignored). Was a pass of its own over the contexts, with
/// prefetches ahead.
#[inline(always)]
fn ingress<B: PacketBuf>(b: &mut Burst<B>, live: &mut Live, sets: &mut [u32; BURST]) {
    let port = l2::port(b);
    let mut bytes = 0u64;
    // The buffers held apart from the burst for the pass: `b.pkts`, in memory, may change
    // (for all the compiler knows) at each ARP frame's call, so every `b.pkts[i]` loaded
    // its length and tested the index again (3 a packet; callgrind).
    let pkts = std::mem::take(&mut b.pkts);
    let n = pkts.len().min(BURST);
    let mut start = 0;
    while start < n {
        let end = (start + lookup::AT_ONCE).min(n);
        for i in start..end {
            bytes += first(b, pkts, i, port);
        }
        lookup::first(b, start, &mut sets[start..end]);
        start = end;
    }
    b.pkts = pkts;
    l2::count_rx(b, bytes);
    b.compact(live);
}

/// Packet `i`'s first checks (l2, ipv4_validate); its length in bytes. `pkts` is the
/// burst's buffers, taken out of `b` for the pass.
#[inline(always)]
fn first<B: PacketBuf>(b: &mut Burst<B>, pkts: &mut [B], i: usize, port: l2::Port) -> u64 {
    b.cx[i].reset();
    let Some(pkt) = pkts.get_mut(i) else {
        return 0;
    };
    let frame = pkt.as_ref();
    let len = frame.len() as u64;
    let contiguous = pkt.is_contiguous();
    // Plain IPv4 on a first look at its 34 bytes; anything else through `kind`.
    let r = if let Some(h) = l2::ipv4_plain(frame, contiguous, port) {
        ipv4_validate::one_plain(h, frame.len(), &mut b.cx[i], b.in_port)
    } else {
        match l2::kind(frame, contiguous, port) {
            l2::Kind::Ipv4 => ipv4_validate::one(frame, &mut b.cx[i], b.in_port),
            l2::Kind::Drop(r) => Err(r),
            l2::Kind::Arp => {
                let v = l2::arp(b, pkt, i);
                b.leave(i, v);
                return len;
            }
        }
    };
    if let Err(r) = r {
        b.drop(i, r);
    }
    len
}

/// Packets anygate made, each into the tunnel `tunnels[i]`: the route's place is taken by
/// the sender's choice, and the firewall and ICMP errors never apply to them.
pub(super) fn run_local<B: PacketBuf>(b: &mut Burst<B>, tunnels: &[u16], verdicts: &mut [Verdict]) {
    let mut live = Live::first(b.pkts.len());
    originate::run(b, &mut live, tunnels);
    each(b, &mut live, |b, i| hop_checks::one(b, i));
    leave(b, &live);
    account(b, verdicts);
}

/// route ─► hop_checks over the burst, each packet that may go on directly through
/// neighbor and rewrite (`direct`). True when every packet of the burst went directly: their
/// verdicts are handed out here, and nothing is left to compact, send on or account.
#[inline(always)]
fn route_pass<B: PacketBuf>(b: &mut Burst<B>, live: &mut Live, verdicts: &mut [Verdict]) -> bool {
    let mut way = direct::Way::new();
    let mut general = 0;
    // The direct way's verdicts by position: no bounds test a packet, as `verdicts` needs.
    // (Filled with `Consumed`, a tag byte a place: `Forward(0)` took two stores a place,
    // the tag and the port, padding between; callgrind.)
    let mut out = [Verdict::Consumed; BURST];
    for i in live.iter() {
        let direct = if direct_on() {
            direct::one(b, i, &mut way)
        } else {
            None
        };
        match direct {
            Some(port) => out[i] = Verdict::Forward(port),
            None => {
                general += 1;
                route_to_hop_checks(b, i);
            }
        }
    }
    if general == 0 {
        // Every packet left, once each.
        let all = live.is_all(b.pkts.len());
        if all {
            for (v, o) in verdicts.iter_mut().zip(&out) {
                *v = *o;
            }
        }
        live.clear();
        b.left = 0;
        all
    } else {
        // The direct way's leavers, counted here rather than one by one (`rewrite::direct`).
        b.left += live.len() - general;
        b.compact(live);
        false
    }
}

/// Whether packets may go the direct way: always, but in tests that compare it with the
/// general way.
#[inline(always)]
fn direct_on() -> bool {
    #[cfg(test)]
    return !GENERAL_ONLY.with(|g| g.get());
    #[cfg(not(test))]
    true
}

#[cfg(test)]
thread_local! {
    /// Set by tests: every packet goes the general way.
    pub(super) static GENERAL_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// route ─► firewall ─► hop_checks for packet `i` (the firewall passes packets that cross no
/// tunnel, and the ICMP errors, which are ours, on one test).
#[inline(always)]
fn route_to_hop_checks<B: PacketBuf>(b: &mut Burst<B>, i: usize) {
    if route::one(b, i) && firewall::one(b, i) {
        hop_checks::one(b, i);
    }
}

#[inline(never)]
fn arr_pass<B: PacketBuf>(b: &mut Burst<B>, live: &mut Live, t: &crate::arr::Table) {
    each(b, live, |b, i| arr_route_to_hop_checks(b, i, t));
}

/// `route_to_hop_checks` with ARR: a learned flow's return packet takes its tunnel instead
/// of the route; a packet from a tunnel with ARR leaving through a port teaches its flow.
#[inline(always)]
fn arr_route_to_hop_checks<B: PacketBuf>(b: &mut Burst<B>, i: usize, t: &crate::arr::Table) {
    if (arr::ret(b, i, t) || route::one(b, i)) && firewall::one(b, i) {
        hop_checks::one(b, i);
        arr::learn(b, i, t);
    }
}

/// neighbor ─► rewrite ─► encap: every packet leaves here, so no compaction after. The link
/// layer goes from `neighbor` to `rewrite` in registers; a packet for a tunnel goes with its
/// underlay (`neighbor::underlay_of`) to `encap`, which makes `rewrite`'s edits too (one look
/// at its buffer). Out of line, as `tunnel_ingress::run`: one call per burst. The tunnels'
/// tx counters are summed per underlay slot and added once at the end.
#[inline(never)]
fn leave<B: PacketBuf>(b: &mut Burst<B>, live: &Live) {
    let mut it = live.iter();
    // Up to the first packet for a tunnel, which makes the underlays' slots: a burst with
    // none never makes them, and the rest of the burst finds them made.
    while let Some(i) = it.next() {
        if let Some(NextHop::Tunnel(t)) = b.cx[i].nexthop {
            let mut known = neighbor::Underlays::new();
            to_tunnel(b, i, t, &mut known);
            for i in it.by_ref() {
                match b.cx[i].nexthop {
                    Some(NextHop::Tunnel(t)) => to_tunnel(b, i, t, &mut known),
                    _ => to_port(b, i),
                }
            }
            known.flush(b.counters);
            return;
        }
        to_port(b, i);
    }
}

/// neighbor ─► encap for packet `i`, toward tunnel `t`.
#[inline(always)]
fn to_tunnel<B: PacketBuf>(b: &mut Burst<B>, i: usize, t: u16, known: &mut neighbor::Underlays) {
    if let Some(u) = neighbor::underlay_of(b, i, t, known) {
        encap::one(b, i, u);
    }
}

/// neighbor ─► rewrite for packet `i`, toward a gateway or host.
#[inline(always)]
fn to_port<B: PacketBuf>(b: &mut Burst<B>, i: usize) {
    if let Some(l2) = neighbor::one(b, i) {
        rewrite::one(b, i, &l2);
    }
}

/// Runs `f` over the packets still in the burst, then takes out those that left.
#[inline(always)]
fn each<B>(b: &mut Burst<B>, live: &mut Live, mut f: impl FnMut(&mut Burst<B>, usize)) {
    for i in live.iter() {
        f(b, i);
    }
    b.compact(live);
}

/// Settles the ICMP errors' fate, then hands out the verdicts and counts every drop under
/// its reason. A packet no stage decided (never, by construction) is dropped as `no_route`
/// here, so it is counted too and the accounting identity holds whatever a future stage
/// forgets. Out of line, one call per burst: inlined into the pipeline its loop kept the
/// verdicts' address and its bound on the stack (callgrind, issue 14).
#[inline(never)]
fn account<B>(b: &mut Burst<B>, verdicts: &mut [Verdict]) {
    if b.needs.icmp_error {
        icmp_error::settle(b);
    }
    let (snap, counters) = (b.snap, &mut *b.counters);
    for (c, v) in b.cx.iter().zip(verdicts) {
        // Read, not written back: nothing reads a context's verdict after this. A forward
        // is rebuilt from its port, one word stored: copied whole, the verdict went as its
        // three parts, tag, reason and port (the byte between them is padding; callgrind).
        if let Some(Verdict::Forward(port)) = c.verdict {
            *v = Verdict::Forward(port);
            continue;
        }
        *v = c.verdict.unwrap_or(Verdict::Drop(DropReason::NoRoute));
        if let Verdict::Drop(r) = *v {
            count_drop(
                counters,
                snap,
                r,
                (c.note.ingress_tunnel, c.note.egress_tunnel),
            );
        }
    }
}
