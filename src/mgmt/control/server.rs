//! The ctl threads: one accepts, one per client (at most `max_clients`) reads the request
//! within a deadline and a size bound, hands it to the management thread through a bounded
//! channel, and writes the reply within a deadline. The management thread never touches a
//! socket, so no client can delay stats, reloads or anything else it does.
use crate::ctl_proto::{self, Reply, Request};
use crossbeam::channel::{bounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A request for the management thread, with where its reply goes.
pub struct Job {
    pub request: Request,
    /// The client's uid (SO_PEERCRED), for the log.
    pub uid: Option<u32>,
    pub reply: Sender<Reply>,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_request: usize,
    /// For the whole request, and again for the whole reply.
    pub deadline: Duration,
    pub max_clients: usize,
    /// How long a client waits for the management thread (a reload of a big table takes
    /// seconds); past it the client is told so, and a change still queued is still applied.
    pub management_wait: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_request: ctl_proto::MAX_REQUEST,
            deadline: ctl_proto::DEADLINE,
            max_clients: ctl_proto::MAX_CLIENTS,
            management_wait: Duration::from_secs(30),
        }
    }
}

/// Starts accepting on `listener`; requests arrive on the returned receiver.
pub fn start(listener: UnixListener, limits: Limits) -> Result<Receiver<Job>, String> {
    let (tx, rx) = bounded(limits.max_clients);
    listener
        .set_nonblocking(false)
        .map_err(|e| format!("control socket: {e}"))?;
    std::thread::Builder::new()
        .name("ag-ctl".into())
        .spawn(move || accept_loop(listener, tx, limits))
        .map_err(|e| format!("control socket: cannot start its thread: {e}"))?;
    Ok(rx)
}

/// Decrements the count of clients served when a client's thread ends, however it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn accept_loop(listener: UnixListener, jobs: Sender<Job>, limits: Limits) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                log::warn!("control socket: accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let uid = peer_uid(&stream);
        if active.load(Ordering::Relaxed) >= limits.max_clients {
            log::warn!("ctl ({}): refused: too many clients", who(uid));
            let msg = format!("too many clients (at most {} at once)", limits.max_clients);
            // A fresh socket's buffer takes one line at once; never wait on it here.
            let _ = stream.set_nonblocking(true);
            let _ = (&stream).write_all(&Reply::error(msg).to_line());
            continue;
        }
        active.fetch_add(1, Ordering::Relaxed);
        let slot = Slot(active.clone());
        let jobs = jobs.clone();
        let spawned = std::thread::Builder::new()
            .name("ag-ctl-client".into())
            .spawn(move || {
                let _slot = slot;
                serve(stream, uid, &jobs, &limits)
            });
        if let Err(e) = spawned {
            log::warn!("control socket: cannot start a client's thread: {e}");
        }
    }
}

/// "uid N" for the log.
pub fn who(uid: Option<u32>) -> String {
    uid.map_or("uid ?".into(), |u| format!("uid {u}"))
}

/// Root and our own user may change things; anyone else reaching the socket (through
/// `node.control_group`), or a peer whose uid is unknown, may only look.
fn may_change(uid: Option<u32>) -> bool {
    uid.is_some_and(|u| u == 0 || u == nix::unistd::geteuid().as_raw())
}

/// The requests that change nothing. A request added later is refused to the group until it
/// is listed here.
fn read_only(r: &Request) -> bool {
    matches!(
        r,
        Request::ShowRoutes { .. }
            | Request::ShowTunnels { .. }
            | Request::ShowFirewall {}
            | Request::ShowStats {}
            | Request::ShowPorts {}
            | Request::ShowNeighbors {}
            | Request::ShowStatus {}
            | Request::ShowArr {}
            | Request::ShowBgp {}
    )
}

fn peer_uid(s: &UnixStream) -> Option<u32> {
    rustix::net::sockopt::socket_peercred(s)
        .ok()
        .map(|c| c.uid.as_raw())
}

fn serve(stream: UnixStream, uid: Option<u32>, jobs: &Sender<Job>, limits: &Limits) {
    let line = match read_request(&stream, limits) {
        Ok(Some(line)) => line,
        // Connected and closed without a word (another instance checking the socket).
        Ok(None) => return,
        Err(e) => {
            log::warn!("ctl ({}): request refused: {e}", who(uid));
            return write_reply(&stream, &Reply::error(e), uid, limits);
        }
    };
    let reply = match Request::parse(&line) {
        Ok(request) if !may_change(uid) && !read_only(&request) => {
            log::warn!("{}", refused_line(uid, &request));
            Reply::error(format!(
                "{} may only run show requests (node.control_group is read-only; changes need root or anygate's own user)",
                who(uid)
            ))
        }
        Ok(request) => submit(request, uid, jobs, limits),
        Err(e) => {
            log::warn!("ctl ({}): request refused: {e}", who(uid));
            Reply::error(e)
        }
    };
    write_reply(&stream, &reply, uid, limits)
}

/// The log line of a request refused to a read-only peer: who, and what it asked.
fn refused_line(uid: Option<u32>, r: &Request) -> String {
    let asked = r.change().unwrap_or_else(|| {
        serde_json::to_value(r)
            .ok()
            .and_then(|v| v["cmd"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "?".into())
    });
    format!("ctl ({}): {asked}: refused: only show requests", who(uid))
}

fn submit(request: Request, uid: Option<u32>, jobs: &Sender<Job>, limits: &Limits) -> Reply {
    let (tx, rx) = bounded(1);
    let job = Job {
        request,
        uid,
        reply: tx,
    };
    match jobs.send_timeout(job, limits.management_wait) {
        Ok(()) => {}
        Err(SendTimeoutError::Timeout(_)) => return Reply::error("anygate is busy; try again"),
        Err(SendTimeoutError::Disconnected(_)) => return Reply::error("anygate is stopping"),
    }
    match rx.recv_timeout(limits.management_wait) {
        Ok(r) => r,
        Err(RecvTimeoutError::Timeout) => Reply::error(format!(
            "no answer from the management thread within {} s; the request may still be applied (see the log)",
            limits.management_wait.as_secs()
        )),
        Err(RecvTimeoutError::Disconnected) => Reply::error("anygate is stopping"),
    }
}

/// One line, without its newline: at most `max_request` bytes, all within the deadline.
/// A request cut short by the end of the stream is taken as it is. None: nothing was sent.
fn read_request(mut s: &UnixStream, limits: &Limits) -> Result<Option<Vec<u8>>, String> {
    let deadline = Instant::now() + limits.deadline;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return Err(format!(
                "no complete request within {} s",
                limits.deadline.as_secs_f64()
            ));
        }
        match s.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) => return Ok(Some(buf)),
            Ok(n) => {
                let new = &chunk[..n];
                let end = new.iter().position(|b| *b == b'\n');
                buf.extend_from_slice(&new[..end.unwrap_or(n)]);
                if buf.len() > limits.max_request {
                    return Err(format!("request longer than {} bytes", limits.max_request));
                }
                if end.is_some() {
                    return Ok(Some(buf));
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(format!("reading the request: {e}")),
        }
    }
}

/// Writes the reply within the deadline; a client that does not read it in time loses it.
fn write_reply(mut s: &UnixStream, reply: &Reply, uid: Option<u32>, limits: &Limits) {
    // What the request logged (a reload's summary, say) reaches stderr before the client
    // hears back, as when the log was written in place; for a moment at most, on this
    // client's thread only, so a stderr nobody reads delays this reply and stalls nothing.
    crate::log_format::flush(std::time::Duration::from_millis(200));
    let bytes = reply.to_line();
    let deadline = Instant::now() + limits.deadline;
    let mut sent = 0;
    while sent < bytes.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_write_timeout(Some(left)).is_err() {
            log::warn!(
                "ctl ({}): reply not read within {} s, dropped",
                who(uid),
                limits.deadline.as_secs_f64()
            );
            return;
        }
        match s.write(&bytes[sent..]) {
            Ok(n) => sent += n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::TimedOut
                ) => {}
            // The client went away: nothing to tell it.
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    fn limits() -> Limits {
        Limits {
            max_request: 64,
            deadline: Duration::from_millis(300),
            max_clients: 2,
            management_wait: Duration::from_secs(2),
        }
    }

    /// A server on a temporary socket whose "management thread" answers every request with
    /// its command's name.
    fn server(l: Limits) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.sock");
        let jobs = start(UnixListener::bind(&p).unwrap(), l).unwrap();
        std::thread::spawn(move || {
            for j in jobs {
                let cmd = serde_json::to_value(&j.request).unwrap()["cmd"].clone();
                let _ = j.reply.send(Reply::ok(serde_json::json!({ "cmd": cmd })));
            }
        });
        (d, p)
    }

    fn reply(s: &UnixStream) -> Reply {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        Reply::parse(&line).unwrap()
    }

    fn ask(p: &std::path::Path, req: &[u8]) -> Reply {
        let s = UnixStream::connect(p).unwrap();
        (&s).write_all(req).unwrap();
        reply(&s)
    }

    #[test]
    fn only_root_and_our_user_may_change_others_only_show() {
        let me = nix::unistd::geteuid().as_raw();
        assert!(may_change(Some(0)) && may_change(Some(me)));
        assert!(!may_change(None));
        assert!(!may_change(Some(me.wrapping_add(4242).max(1))));
        for (line, ro) in [
            (r#"{"version":1,"cmd":"show-routes"}"#, true),
            (r#"{"version":1,"cmd":"show-tunnels"}"#, true),
            (r#"{"version":1,"cmd":"show-firewall"}"#, true),
            (r#"{"version":1,"cmd":"show-arr"}"#, true),
            (r#"{"version":1,"cmd":"reload"}"#, false),
            (r#"{"version":1,"cmd":"show-stats"}"#, true),
            (r#"{"version":1,"cmd":"show-ports"}"#, true),
            (r#"{"version":1,"cmd":"show-neighbors"}"#, true),
            (r#"{"version":1,"cmd":"show-status"}"#, true),
            (r#"{"version":1,"cmd":"clear-counters"}"#, false),
            (
                r#"{"version":1,"cmd":"del-route","prefix":"10.0.0.0/8","nexthop":"x"}"#,
                false,
            ),
            (
                r#"{"version":1,"cmd":"set-health","tunnel":"t","health":"down"}"#,
                false,
            ),
        ] {
            let r = Request::parse(line.as_bytes()).unwrap();
            assert_eq!(read_only(&r), ro, "{line}");
        }
    }

    /// A refused request is logged with what it asked, as changes are.
    #[test]
    fn a_refused_request_is_logged_with_what_it_asked() {
        for (line, want) in [
            (
                r#"{"version":1,"cmd":"set-health","tunnel":"t","health":"down"}"#,
                "ctl (uid 1000): set-health t down: refused: only show requests",
            ),
            (
                r#"{"version":1,"cmd":"trace","count":5}"#,
                "ctl (uid 1000): trace: refused: only show requests",
            ),
        ] {
            let r = Request::parse(line.as_bytes()).unwrap();
            assert_eq!(refused_line(Some(1000), &r), want);
        }
    }

    /// A member of node.control_group, as another uid: `show` is answered, a change refused
    /// before it reaches the management thread. Needs root (to run the client as nobody).
    #[test]
    fn a_peer_of_another_uid_may_show_but_not_change() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to connect as another uid");
            return;
        }
        let (d, p) = server(limits());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let ask_as_nobody = |req: &str| {
            let out = std::process::Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c"])
                .arg(
                    "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); \
                     s.sendall(sys.argv[2].encode()+b'\\n'); print(s.makefile().readline(), end='')",
                )
                .arg(&p)
                .arg(req)
                .output()
                .expect("setpriv and python3 (util-linux, scripts/setup)");
            assert!(out.status.success(), "{out:?}");
            Reply::parse(&String::from_utf8_lossy(&out.stdout)).unwrap()
        };
        let r = ask_as_nobody(r#"{"version":1,"cmd":"show-tunnels"}"#);
        assert!(r.ok, "{r:?}");
        assert_eq!(r.get("cmd"), "show-tunnels");
        let r = ask_as_nobody(r#"{"version":1,"cmd":"reload"}"#);
        assert_eq!(
            r.error.as_deref(),
            Some("uid 65534 may only run show requests (node.control_group is read-only; changes need root or anygate's own user)")
        );
    }

    #[test]
    fn a_request_goes_through_the_channel_and_back() {
        let (_d, p) = server(limits());
        let r = ask(&p, b"{\"version\":1,\"cmd\":\"show-tunnels\"}\n");
        assert!(r.ok, "{r:?}");
        assert_eq!(r.get("cmd"), "show-tunnels");
        let r = ask(&p, b"{\"version\":1,\"cmd\":\"nope\"}\n");
        assert!(r.error.unwrap().contains("unknown variant `nope`"));
    }

    #[test]
    fn a_slow_client_is_cut_off_at_the_deadline_while_others_are_served() {
        let (_d, p) = server(limits());
        let slow = UnixStream::connect(&p).unwrap();
        (&slow).write_all(b"{\"version\":1,").unwrap();
        let t = Instant::now();
        assert!(ask(&p, b"{\"version\":1,\"cmd\":\"show-firewall\"}\n").ok);
        assert!(t.elapsed() < Duration::from_millis(200));
        let r = reply(&slow);
        assert_eq!(r.error.unwrap(), "no complete request within 0.3 s");
    }

    #[test]
    fn an_oversized_request_and_a_client_too_many_are_refused() {
        let (_d, p) = server(limits());
        let r = ask(&p, &[b' '; 100]);
        assert_eq!(r.error.unwrap(), "request longer than 64 bytes");
        let held: Vec<UnixStream> = (0..2).map(|_| UnixStream::connect(&p).unwrap()).collect();
        let extra = UnixStream::connect(&p).unwrap();
        assert_eq!(
            reply(&extra).error.unwrap(),
            "too many clients (at most 2 at once)"
        );
        drop(held);
        std::thread::sleep(Duration::from_millis(100));
        assert!(ask(&p, b"{\"version\":1,\"cmd\":\"show-tunnels\"}\n").ok);
    }
}
