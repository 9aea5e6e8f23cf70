//! EAL initialisation and cleanup.
use super::errno::*;
use std::ffi::{CStr, CString};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

static STARTED: AtomicBool = AtomicBool::new(false);

/// A handle on the initialised EAL. Clones share it; `rte_eal_cleanup` runs when the last one
/// drops. Everything that needs the EAL running holds a clone (a mempool, and through it every
/// port and queue using it; a registered lcore), so the EAL is cleaned up after all of them,
/// whatever order the caller drops them in. Only one EAL may ever be started per process.
#[derive(Clone)]
pub struct Eal {
    inner: Arc<EalInner>,
}

struct EalInner {
    /// Threads registered as lcores by [`super::LcoreRegistration`], now alive. Held while
    /// registering, unregistering, and while a mempool decides whether it may be freed.
    lcores: Mutex<usize>,
}

/// Why `rte_eal_init` failed, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitError {
    /// rte_errno (0: DPDK set none, as when the runtime directory is locked).
    pub code: i32,
    /// The EAL's runtime directory (`/var/run/dpdk/<file prefix>`), empty if it got no
    /// further than the arguments.
    pub runtime_dir: String,
    /// The process holding that directory's `config` lock: another primary.
    pub lock_holder: Option<i32>,
}

impl Eal {
    /// Runs `rte_eal_init` with `args` (the first is the program name).
    pub fn init(args: &[String]) -> Result<Eal, InitError> {
        if STARTED.swap(true, Ordering::SeqCst) {
            return Err(InitError {
                code: EALREADY,
                runtime_dir: String::new(),
                lock_holder: None,
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
            // SAFETY: reads this thread's rte_errno, set by the failed call on this thread.
            let code = unsafe { dpdk_sys::ag_errno() };
            // SAFETY: returns a pointer to the EAL's static, NUL-terminated path buffer
            // (empty until the arguments were parsed).
            let dir = unsafe { CStr::from_ptr(dpdk_sys::rte_eal_get_runtime_dir()) }
                .to_string_lossy()
                .into_owned();
            let lock_holder = if dir.is_empty() {
                None
            } else {
                let config = CString::new(format!("{dir}/config")).unwrap_or_default();
                // SAFETY: config is a valid C string; the shim only opens and queries it.
                let pid = unsafe { dpdk_sys::ag_lock_holder(config.as_ptr()) };
                (pid > 0).then_some(pid)
            };
            return Err(InitError {
                code,
                runtime_dir: dir,
                lock_holder,
            });
        }
        Ok(Eal {
            inner: Arc::new(EalInner {
                lcores: Mutex::new(0),
            }),
        })
    }

    /// The count of registered lcores, locked (a panic elsewhere does not poison the count:
    /// every update is a single store).
    pub(super) fn lcores(&self) -> MutexGuard<'_, usize> {
        self.inner
            .lcores
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of CPU sockets, for placing mempools.
    pub fn socket_id(&self) -> i32 {
        // SAFETY: plain query after EAL init.
        unsafe { dpdk_sys::rte_socket_id() as i32 }
    }
}

impl InitError {
    /// The EAL file prefix: the runtime directory's last component.
    fn file_prefix(&self) -> &str {
        self.runtime_dir.rsplit('/').next().unwrap_or("")
    }

    /// What went wrong and what to do, from rte_eal_init's documented rte_errno values.
    pub fn advice(&self) -> String {
        if let Some(pid) = self.lock_holder {
            return format!(
                "another DPDK process (pid {pid}) uses --file-prefix {} (it holds {}/config): \
                 stop it, or give this instance its own --file-prefix in dpdk.eal_args",
                self.file_prefix(),
                self.runtime_dir
            );
        }
        let (what, todo) = match self.code {
            EACCES => (
                "permission denied",
                "run as root, or give this user the hugepages, devices and runtime directory",
            ),
            EAGAIN => (
                "a bus or system resource was not available",
                "try again; check free hugepages (/proc/meminfo) or add --no-huge to dpdk.eal_args",
            ),
            EALREADY => (
                "the EAL was already started in this process",
                "it can be started once per process",
            ),
            EFAULT => (
                "the shared memory configuration is incomplete",
                "a stale DPDK runtime directory? remove it, or use another --file-prefix",
            ),
            EINVAL => (
                "invalid EAL arguments",
                "check dpdk.eal_args against the EAL log above",
            ),
            ENOMEM => (
                "out of memory",
                "reserve more hugepages, or lower -m / --socket-mem in dpdk.eal_args",
            ),
            ENODEV => (
                "memory setup failed",
                "check the hugepage mounts, or add --no-huge to dpdk.eal_args",
            ),
            ENOTSUP => (
                "the EAL cannot run on this system",
                "an unsupported CPU, IOVA mode or VFIO setup; see the EAL log above",
            ),
            EPROTO => (
                "the PCI bus is missing or unreadable",
                "add --no-pci to dpdk.eal_args if every port is a vdev",
            ),
            ENOEXEC => (
                "a service core did not start",
                "check the -s / -S options in dpdk.eal_args",
            ),
            0 => ("DPDK gave no reason", "see the EAL log above"),
            _ => ("", "see the EAL log above"),
        };
        if what.is_empty() {
            format!("{} (rte_errno {}): {todo}", strerror(self.code), self.code)
        } else {
            format!("{what}: {todo}")
        }
    }
}

fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local C string.
    unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(code)) }
        .to_string_lossy()
        .into_owned()
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "the EAL did not start: {}", self.advice())
    }
}

impl std::error::Error for InitError {}

impl Drop for EalInner {
    fn drop(&mut self) {
        // SAFETY: runs once (there is one EalInner per process, and init cannot run again),
        // when the last handle drops: every mempool holds one, every port and queue handle
        // holds its mempool and every registered lcore holds one, so all of them are gone.
        // A mempool that could not be freed leaks a handle, and this never runs.
        unsafe {
            dpdk_sys::rte_eal_cleanup();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: i32, holder: Option<i32>) -> InitError {
        InitError {
            code,
            runtime_dir: "/var/run/dpdk/ag1".into(),
            lock_holder: holder,
        }
    }

    #[test]
    fn a_held_file_prefix_names_the_holder() {
        assert_eq!(
            err(0, Some(4242)).to_string(),
            "the EAL did not start: another DPDK process (pid 4242) uses --file-prefix ag1 (it \
             holds /var/run/dpdk/ag1/config): stop it, or give this instance its own \
             --file-prefix in dpdk.eal_args"
        );
    }

    #[test]
    fn documented_codes_get_advice() {
        assert!(err(EPROTO, None).advice().contains("add --no-pci"));
        assert!(err(ENOMEM, None).advice().starts_with("out of memory: "));
        assert!(err(EINVAL, None).advice().contains("dpdk.eal_args"));
        assert_eq!(
            err(0, None).advice(),
            "DPDK gave no reason: see the EAL log above"
        );
        for c in [
            EACCES, EAGAIN, EALREADY, EFAULT, EINVAL, ENOMEM, ENODEV, ENOTSUP, EPROTO, ENOEXEC,
        ] {
            let a = err(c, None).advice();
            assert!(
                !a.contains("rte_errno") && !a.contains("Success"),
                "{c}: {a}"
            );
        }
    }
}
