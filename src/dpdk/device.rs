//! Creating devices after the EAL has started, one at a time, so that a refusal names the
//! device that caused it.
use super::{Eal, Error, Result};
use std::ffi::CString;

/// Probes a device from its devargs (`net_pcap0,rx_pcap=in.pcap`). The error code is
/// `rte_dev_probe`'s return value, negated (a driver may return its own `-1`).
pub fn probe(_eal: &Eal, devargs: &str) -> Result<()> {
    let c = CString::new(devargs).map_err(|_| Error {
        what: format!("`{devargs}` holds a NUL byte"),
        code: super::errno::EINVAL,
    })?;
    // SAFETY: c is a valid C string that outlives the call; the EAL is running (we are given a
    // handle).
    let rc = unsafe { dpdk_sys::rte_dev_probe(c.as_ptr()) };
    if rc != 0 {
        // Not `Error::new`: a -1 here is the driver's own code, not a sign to read rte_errno.
        return Err(Error {
            what: format!("rte_dev_probe({devargs})"),
            code: rc.saturating_abs(),
        });
    }
    Ok(())
}
