//! EAL initialisation and cleanup.
use super::{Error, Result};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};

static STARTED: AtomicBool = AtomicBool::new(false);

/// The initialised EAL; cleaned up on drop. Only one may exist per process, ever.
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Runs `rte_eal_init` with `args` (the first is the program name).
    pub fn init(args: &[String]) -> Result<Eal> {
        if STARTED.swap(true, Ordering::SeqCst) {
            return Err(Error {
                what: "rte_eal_init: the EAL can be initialised once per process".into(),
                code: libc_ealready(),
            });
        }
        let cstrs: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_str()).unwrap_or_default())
            .collect();
        let mut argv: Vec<*mut std::os::raw::c_char> =
            cstrs.iter().map(|c| c.as_ptr() as *mut _).collect();
        argv.push(std::ptr::null_mut());
        // SAFETY: argv holds argc valid NUL-terminated strings that outlive the call plus a
        // terminating null; the EAL may permute argv entries, which we never read again.
        let rc = unsafe { dpdk_sys::rte_eal_init(cstrs.len() as i32, argv.as_mut_ptr()) };
        if rc < 0 {
            return Err(Error::new(format!("rte_eal_init({})", args.join(" ")), -1));
        }
        Ok(Eal { _private: () })
    }

    /// Number of CPU sockets, for placing mempools.
    pub fn socket_id(&self) -> i32 {
        // SAFETY: plain query after EAL init.
        unsafe { dpdk_sys::rte_socket_id() as i32 }
    }
}

fn libc_ealready() -> i32 {
    114 // EALREADY
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: called once, after every port was closed and every worker unregistered.
        unsafe {
            dpdk_sys::rte_eal_cleanup();
        }
    }
}
