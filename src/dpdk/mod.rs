//! Safe wrappers over DPDK: the only unsafe code outside `dpdk-sys`. Every `unsafe` block
//! carries a `SAFETY:` line saying why the call is sound.
mod device;
mod eal;
pub mod errno;
mod lcore;
mod log_stream;
mod mbuf;
mod mempool;
mod port;

/// Kept for `lpm` until its branch (issue 14, wt-lpm) moves to `crate::cpu::prefetch`.
pub use device::probe as probe_device;
pub use eal::{Eal, InitError};
pub use lcore::{tsc, tsc_hz, LcoreRegistration};
pub use log_stream::log_through_logger;
pub use mbuf::{Drain, Mbuf, MbufArray};
pub use mempool::Mempool;
pub use port::{port_id_by_name, LinkStatus, Port, PortSettings, PortStats, RxQueue, TxQueue};

use std::fmt;

/// A failed DPDK call: what was attempted and DPDK's own explanation.
#[derive(Debug, Clone)]
pub struct Error {
    pub what: String,
    pub code: i32,
}

impl Error {
    /// Builds an error from a negative return code or, when `code` is -1, from rte_errno.
    pub fn new(what: impl Into<String>, code: i32) -> Self {
        let code = if code == -1 {
            // SAFETY: reads this thread's rte_errno; no pointers involved.
            unsafe { dpdk_sys::ag_errno() }
        } else {
            code.abs()
        };
        Error {
            what: what.into(),
            code,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        // SAFETY: rte_strerror returns a pointer to a static or thread-local C string.
        let msg = unsafe { std::ffi::CStr::from_ptr(dpdk_sys::rte_strerror(self.code)) };
        write!(
            f,
            "{}: {} (errno {})",
            self.what,
            msg.to_string_lossy(),
            self.code
        )
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// The DPDK release this process runs on (`rte_version()`), e.g. "DPDK 23.11.0".
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string; no EAL needed.
    let v = unsafe { std::ffi::CStr::from_ptr(dpdk_sys::ag_version()) };
    v.to_string_lossy().into_owned()
}
