//! The forwarding state workers read: a FIB over next-hop ids, the next hops themselves and
//! the ports' L2/L3 identity, built by the management thread into an immutable [`Snapshot`].
pub mod arp_cache;
pub mod ecmp;
mod rib;
pub mod select;
mod snapshot;
mod source_filter;

pub use arp_cache::{ArpCache, WIDEST_CONNECTED};
pub use rib::{Applied, ApplyError, Change, Rebuild, Rib, MAX_TBL8_GROUPS};
pub use snapshot::{
    Gateway, NextHop, NhMac, PortState, Previous, Snapshot, TunnelState, SET_ANYCAST, SET_LOCAL,
};
pub use source_filter::SourceFilter;

#[cfg(test)]
mod rib_tests;
#[cfg(test)]
mod routing_tests;
