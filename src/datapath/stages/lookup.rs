//! Route lookups over the burst: every destination at once through `lookup_bulk` (eight at a
//! time, the next eight's table entries prefetched while these resolve).
use crate::datapath::context::Live;
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::DropReason;
use crate::datapath::BURST;
use crate::packet::PacketBuf;
use crate::route::{SET_ANYCAST, SET_LOCAL};

/// Above every FIB value: no route.
const MISS: u32 = u32::MAX;

/// The route set of each packet's (outer) destination: a route, our anycast endpoints (for
/// tunnel ingress), or ourselves (punt).
pub fn outer<B: PacketBuf>(b: &mut Burst<B>, live: &mut Live) {
    let sets = bulk(b, live);
    // Gathered in a register, stored once: the burst's flags live in memory.
    let mut decap = false;
    for (k, i) in live.iter().enumerate() {
        match sets[k] {
            MISS => b.drop(i, DropReason::NoRoute),
            SET_LOCAL => super::punt::one(b, i),
            set => {
                decap |= set == SET_ANYCAST;
                b.cx[i].set = set;
            }
        }
    }
    b.needs.decap |= decap;
    b.compact(live);
}

/// The route set of each decapsulated packet's inner destination: ourselves only to punt. The
/// caller takes the packets dropped here out of its own list.
pub fn inner<B: PacketBuf>(b: &mut Burst<B>, decap: &Live) {
    let sets = bulk(b, decap);
    for (k, i) in decap.iter().enumerate() {
        match sets[k] {
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
    for (k, i) in live.iter().enumerate() {
        dst[k] = b.cx[i].ip.dst;
    }
    let mut sets = [MISS; BURST];
    let n = live.len();
    b.fib.lookup_bulk(&dst[..n], &mut sets[..n], MISS);
    sets
}
