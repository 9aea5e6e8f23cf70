//! The forwarding state workers read: a FIB over next-hop ids, the next hops themselves and
//! the ports' L2/L3 identity, built by the management thread into an immutable [`Snapshot`].
mod arp_cache;
mod snapshot;

pub use arp_cache::ArpCache;
pub use snapshot::{NextHop, NhMac, PortState, Snapshot, NH_LOCAL};
