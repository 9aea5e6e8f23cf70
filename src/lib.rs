//! anygate: a DPDK data plane for an anycast GRE / IP-in-IP tunnel edge.
//!
//! Everything but `dpdk`, `cpu` (one prefetch intrinsic) and `datapath::worker` is plain safe
//! Rust over byte slices, so the
//! pipeline is unit-tested, benchmarked and traced without the EAL.
#![deny(unsafe_code)]

pub mod arr;
pub mod bgp;
pub mod config;
/// CPU hints (prefetch); `unsafe` only for the intrinsic, as documented there.
#[allow(unsafe_code)]
pub mod cpu;
pub mod ctl;
pub mod ctl_proto;
pub mod ctl_tap;
pub mod datapath;
#[allow(unsafe_code)]
pub mod dpdk;
pub mod firewall;
pub mod health;
pub mod limits;
pub mod log_format;
pub mod log_pipe;
pub mod lpm;
pub mod man;
pub mod metrics;
pub mod mgmt;
pub mod packet;
pub mod pci;
pub mod preflight;
pub mod rcu;
pub mod route;
pub mod trace;
pub mod wire;
