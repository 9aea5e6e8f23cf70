//! Zero-copy views over packet bytes. Each view checks its length once in `new_checked`; after
//! that no accessor can panic. Getters need `AsRef<[u8]>`, setters `AsMut<[u8]>`.
pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod gre;
pub mod icmp;
pub mod ipv4;
pub mod outer;
pub mod tcp;
pub mod udp;

pub use ethernet::MacAddr;
