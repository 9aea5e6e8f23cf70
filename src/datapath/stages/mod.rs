//! The stages, one file each, each one function over the packets still in a burst. Their
//! order is in `graph`.
pub mod arr;
pub mod direct;
pub mod encap;
pub mod firewall;
pub mod hop_checks;
pub mod icmp_error;
pub mod ipv4_validate;
pub mod l2;
pub mod lookup;
pub mod neighbor;
pub mod originate;
pub mod probe_answer;
pub mod punt;
pub mod rewrite;
pub mod route;
pub mod tunnel_ingress;
