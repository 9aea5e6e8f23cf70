//! Raw bindings to the system DPDK, generated at build time. Nothing here is safe to call
//! directly: anygate's `dpdk` module is the only user, and wraps each call.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::all
)]
include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
