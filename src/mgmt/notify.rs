//! The systemd readiness protocol (sd_notify(3)): `READY=1` once the workers poll,
//! `RELOADING=1` ... `READY=1` around a reload, `STOPPING=1` at shutdown, each one datagram
//! to the socket `$NOTIFY_SOCKET` names. Without that variable (not started by systemd with
//! `Type=notify`) every call does nothing. Twenty lines of std's `UnixDatagram` rather than a
//! crate: the protocol is one datagram per state, and this keeps a dependency off the
//! management path.
use std::os::unix::net::UnixDatagram;

pub struct Notifier {
    /// None: no `$NOTIFY_SOCKET`, or it could not be used (said once in the log).
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`: a path, or `@name` for an abstract socket.
    pub fn from_env() -> Notifier {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier { socket: None };
        };
        let socket = address(path.as_encoded_bytes())
            .and_then(|a| Ok((UnixDatagram::unbound()?, a)))
            .map_err(|e| log::warn!("NOTIFY_SOCKET={}: {e}", path.to_string_lossy()))
            .ok();
        Notifier { socket }
    }

    /// Sends one state (`READY=1`, `STATUS=...`, newline-separated assignments).
    pub fn send(&self, state: &str) {
        if let Some((s, to)) = &self.socket {
            if let Err(e) = s.send_to_addr(state.as_bytes(), to) {
                log::warn!("NOTIFY_SOCKET: sending {state:?}: {e}");
            }
        }
    }

    /// `RELOADING=1` with the monotonic time systemd asks of it (see sd_notify(3)).
    pub fn reloading(&self) {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000;
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }
}

fn address(raw: &[u8]) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    match raw.strip_prefix(b"@") {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name),
        None => std::os::unix::net::SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(raw)),
    }
}

use std::os::unix::ffi::OsStrExt;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn recv(s: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = s.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn a_path_and_an_abstract_name_both_receive_the_state() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("notify");
        let listener = UnixDatagram::bind(&p).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = Notifier {
            socket: Some((
                UnixDatagram::unbound().unwrap(),
                address(p.as_os_str().as_bytes()).unwrap(),
            )),
        };
        n.send("READY=1");
        assert_eq!(recv(&listener), "READY=1");
        n.reloading();
        let r = recv(&listener);
        assert!(r.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{r}");

        let name = format!("anygate-notify-test-{}", std::process::id());
        let a = address(format!("@{name}").as_bytes()).unwrap();
        let abs = UnixDatagram::bind_addr(&a).unwrap();
        abs.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier {
            socket: Some((UnixDatagram::unbound().unwrap(), a)),
        };
        n.send("STOPPING=1");
        assert_eq!(recv(&abs), "STOPPING=1");
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_nothing_fails() {
        let n = Notifier { socket: None };
        n.send("READY=1");
        n.reloading();
    }
}
