//! Route lookups over the burst: the outer destinations eight at a time as the first pass
//! reads them (`first`), the inner ones all at once through `lookup_bulk` (eight at a time,
//! the next eight's table entries prefetched while these resolve).
use crate::datapath::context::Live;
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::DropReason;
use crate::datapath::BURST;
use crate::lpm::View;
use crate::packet::PacketBuf;
use crate::route::{SET_ANYCAST, SET_LOCAL};

/// Above every FIB value: no route (what the FIB's lookups answer for a miss).
const MISS: u32 = u32::MAX;

/// Packets the first pass reads before it looks their destinations up: the eight table loads
/// in flight together (`View::lookup8`).
pub const AT_ONCE: usize = 8;

/// The FIB values of the (outer) destinations of packets `start..` (as many as `sets` holds)
/// into `sets` and the packets' contexts (`Ctx::set`), which the first pass has just read.
/// A packet that left there gets a value too, from whatever its context holds: never read.
/// Stored here, eight at a time, where `outer` stored each route's set again from `sets` in a
/// loop of its own (~3 a packet, callgrind).
#[inline(always)]
pub fn first<B>(b: &mut Burst<B>, start: usize, sets: &mut [u32]) {
    let cx = b.cx.get_mut(start..).unwrap_or_default();
    match <&mut [u32; AT_ONCE]>::try_from(&mut *sets) {
        Ok(sets) => {
            if let Some(cx) = cx.first_chunk_mut::<AT_ONCE>() {
                *sets = b.fib.lookup8(&std::array::from_fn(|k| cx[k].ip.dst));
                for (c, &set) in cx.iter_mut().zip(sets.iter()) {
                    c.set = set;
                }
            }
        }
        Err(_) => {
            for (s, c) in sets.iter_mut().zip(cx) {
                *s = b.fib.value(c.ip.dst);
                c.set = *s;
            }
        }
    }
}

/// What the route set of each packet's (outer) destination asks: a route (nothing more
/// here), our anycast endpoints (tunnel ingress), ourselves (punt) or no route (a drop).
/// `by_pos[i]` is packet `i`'s FIB value, in its context already (`first`); 0 past the
/// burst's packets.
pub fn outer<B: PacketBuf>(b: &mut Burst<B>, live: &mut Live, by_pos: &[u32; BURST]) {
    // Mostly every set is a route: then nothing is left to do, which a test of the whole
    // burst at once says (the per-packet match was ~15 instructions a packet on the plain
    // path, callgrind, issue 14). A left packet's place may hold anything, and sends the
    // burst the long way (never wrong: the loop walks the packets still in).
    if at_least(by_pos, SET_ANYCAST) {
        special(b, live, by_pos);
    }
    // Earlier passes' leavers (the kernel's packets, `punt::from_kernel`) go out here.
    b.compact(live);
}

/// `outer` for a burst with a set that is not a route. Out of line, one call per such burst:
/// inlined beside the plain path's test, its loop cost that path ~3 instructions a packet
/// (callgrind). A customer's tunnelled traffic is routes and our anycast endpoints only:
/// then no match per packet (~13 instructions a packet on the full path, callgrind, issue
/// 14); a decap pass with no anycast packet among those still in finds none to take.
#[inline(never)]
fn special<B: PacketBuf>(b: &mut Burst<B>, live: &Live, by_pos: &[u32; BURST]) {
    if !at_least(by_pos, SET_LOCAL) {
        b.needs.decap = true;
        return;
    }
    // Gathered in a register, stored once: the burst's flags live in memory.
    let mut decap = false;
    for i in live.iter() {
        match by_pos[i] {
            MISS => b.drop(i, DropReason::NoRoute),
            SET_LOCAL => super::punt::one(b, i),
            set => decap |= set == SET_ANYCAST,
        }
    }
    b.needs.decap |= decap;
}

/// The FIB values from SET_ANYCAST up are not routes: ours (anycast, local) or none (MISS);
/// SET_ANYCAST is the only one below SET_LOCAL (`at_least`).
const _: () = assert!(SET_ANYCAST + 1 == SET_LOCAL && SET_LOCAL < MISS);

/// Each packet's FIB value `sets[k]` (the `k`th of `live`) into its context. `all`: `live`
/// is every packet of the burst, which is then walked by position (no index to load per
/// packet).
#[inline(always)]
fn store<B>(b: &mut Burst<B>, live: &Live, all: bool, sets: &[u32; BURST]) {
    if all {
        for (c, &set) in b.cx.iter_mut().zip(sets).take(live.len()) {
            c.set = set;
        }
    } else {
        for (i, &set) in live.iter().zip(sets) {
            b.cx[i].set = set;
        }
    }
}

/// Whether any of a burst's lookups found a value from `v` up (from SET_ANYCAST: something
/// other than a route; from SET_LOCAL: something other than a route or our anycast
/// endpoints). Over the whole fixed-size array, without an early exit, so that it compiles
/// to a few vector compares; the callers leave the places past the burst's packets at 0 (a
/// route).
#[inline(always)]
fn at_least(sets: &[u32; BURST], v: u32) -> bool {
    sets.iter().fold(0u32, |a, &s| a | u32::from(s >= v)) != 0
}

/// The route set of each decapsulated packet's inner destination: ourselves only to punt. The
/// caller takes the packets dropped here out of its own list.
pub fn inner<B: PacketBuf>(b: &mut Burst<B>, decap: &Live) {
    let sets = bulk(b, decap);
    // Mostly every inner destination is a route: stored with no match per packet (~10
    // instructions a packet on the full path, callgrind, issue 14).
    if !at_least(&sets, SET_ANYCAST) {
        store(b, decap, decap.is_all(b.pkts.len()), &sets);
        return;
    }
    for (i, &set) in decap.iter().zip(&sets) {
        match set {
            MISS => b.drop(i, DropReason::NoRoute),
            SET_LOCAL => super::punt::one(b, i),
            SET_ANYCAST => b.drop(i, DropReason::LocalDestination),
            set => b.cx[i].set = set,
        }
    }
}

#[inline(always)]
fn bulk<B>(b: &Burst<B>, live: &Live) -> [u32; BURST] {
    let mut dst = [0u32; BURST];
    if live.is_all(b.pkts.len()) {
        // Every packet still in (plain traffic): read by position, no index per packet.
        for (d, c) in dst.iter_mut().zip(b.cx.iter()).take(live.len()) {
            *d = c.ip.dst;
        }
    } else {
        for (k, i) in live.iter().enumerate() {
            dst[k] = b.cx[i].ip.dst;
        }
    }
    sets_of(b.fib, &dst, live.len())
}

/// The FIB values of `dst[..n]`, 0 past them (a route, for `at_least`). Eight at a time as
/// the first pass looks up, not `lookup_bulk`, whose prefetching blocks pay on a table bigger
/// than the cache and cost ~20 instructions a packet over a burst's few cached inner
/// destinations (callgrind, lpm5). Out of line: inlined, it cost the plain and encap paths,
/// which never call it, ~3 instructions a packet (callgrind).
#[inline(never)]
fn sets_of(fib: View<'_>, dst: &[u32; BURST], n: usize) -> [u32; BURST] {
    let mut sets = [0; BURST];
    let n = n.min(BURST);
    let whole = n - n % AT_ONCE;
    let groups = sets[..whole]
        .chunks_exact_mut(AT_ONCE)
        .zip(dst[..whole].chunks_exact(AT_ONCE));
    for (s, d) in groups {
        if let (Ok(s), Ok(d)) = (
            <&mut [u32; AT_ONCE]>::try_from(s),
            <&[u32; AT_ONCE]>::try_from(d),
        ) {
            *s = fib.lookup8(d);
        }
    }
    for (s, d) in sets[whole..n].iter_mut().zip(&dst[whole..n]) {
        *s = fib.value(*d);
    }
    sets
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The burst-wide test that lets `outer` and `inner` store every set without the
        /// per-packet match answers as a search for a value from `v` up would, for sets
        /// drawn around the values that decide (routes, SET_ANYCAST, SET_LOCAL, MISS).
        #[test]
        fn at_least_is_any_from_v_up(
            sets in proptest::array::uniform32(prop_oneof![
                0u32..16,
                Just(SET_ANYCAST - 1),
                Just(SET_ANYCAST),
                Just(SET_LOCAL),
                Just(MISS),
            ]),
            v in prop_oneof![Just(SET_ANYCAST), Just(SET_LOCAL), Just(MISS), any::<u32>()],
        ) {
            prop_assert_eq!(at_least(&sets, v), sets.iter().any(|&s| s >= v));
        }
    }
}
