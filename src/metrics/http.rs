//! A small blocking HTTP/1.1 responder: one request per connection, the request head at most
//! [`MAX_REQUEST`] bytes, read and write timeouts, at most [`MAX_CONNECTIONS`] at once (more
//! are closed at once). Each connection has a short-lived thread of its own, so a slow
//! client holds only its own; none ever touches the management loop or the workers.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const MAX_REQUEST: usize = 8192;
pub const MAX_CONNECTIONS: usize = 8;

/// What a request is answered with: (status line, content type, body).
pub type Response = (&'static str, &'static str, String);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For the whole request head, and for writing the answer.
    pub timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(5),
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Accepts until `stop` is set (then one more connection wakes the loop, see [`wake`]).
/// `handle(path)` answers a GET; other methods get 405.
pub fn serve(
    listener: TcpListener,
    limits: Limits,
    stop: Arc<AtomicBool>,
    handle: Arc<dyn Fn(&str) -> Response + Send + Sync>,
) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Ok(stream) = conn else { continue };
        if active.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
            active.fetch_sub(1, Ordering::AcqRel);
            let _ = stream.set_write_timeout(Some(limits.timeout));
            let _ = respond(
                &stream,
                ("503 Service Unavailable", "text/plain", "busy\n".into()),
            );
            continue;
        }
        let (active2, handle) = (active.clone(), handle.clone());
        let spawned = std::thread::Builder::new()
            .name("ag-metrics-conn".into())
            .spawn(move || {
                connection(stream, limits, &*handle);
                active2.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Unblocks `serve`'s accept after `stop` was set.
pub fn wake(addr: std::net::SocketAddr) {
    let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(200));
}

fn connection(stream: TcpStream, limits: Limits, handle: &dyn Fn(&str) -> Response) {
    let _ = stream.set_write_timeout(Some(limits.timeout));
    let head = read_head(&stream, limits.timeout);
    let refused = head.is_err();
    let answer = match head {
        Ok(head) => route(&head, handle),
        Err(Refused::TooLarge) => (
            "431 Request Header Fields Too Large",
            "text/plain",
            format!("request larger than {MAX_REQUEST} bytes\n"),
        ),
        Err(Refused::Malformed) => ("400 Bad Request", "text/plain", "bad request\n".into()),
        // Timed out or gone: nothing worth writing to.
        Err(Refused::Io) => return,
    };
    let _ = respond(&stream, answer);
    if refused {
        drain(&stream);
    }
}

/// After refusing a request still arriving: stop writing and read a little of what is left,
/// so that closing does not reset the connection before the client reads the refusal.
fn drain(mut s: &TcpStream) {
    let _ = s.shutdown(std::net::Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        if matches!(s.read(&mut sink), Ok(0) | Err(_)) {
            break;
        }
    }
}

enum Refused {
    TooLarge,
    Malformed,
    Io,
}

/// Reads up to the blank line ending the head; the whole head has `timeout`, not each read,
/// so a client trickling bytes is cut off too.
fn read_head(mut s: &TcpStream, timeout: Duration) -> Result<String, Refused> {
    let deadline = std::time::Instant::now() + timeout;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return Err(Refused::Io);
        }
        let n = s.read(&mut chunk).map_err(|_| Refused::Io)?;
        if n == 0 {
            return Err(Refused::Io);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if end + 4 > MAX_REQUEST {
                return Err(Refused::TooLarge);
            }
            buf.truncate(end);
            return String::from_utf8(buf).map_err(|_| Refused::Malformed);
        }
        if buf.len() > MAX_REQUEST {
            return Err(Refused::TooLarge);
        }
    }
}

fn route(head: &str, handle: &dyn Fn(&str) -> Response) -> Response {
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return ("400 Bad Request", "text/plain", "bad request line\n".into());
    };
    if !version.starts_with("HTTP/1.") {
        return ("400 Bad Request", "text/plain", "HTTP/1.x only\n".into());
    }
    if method != "GET" {
        return ("405 Method Not Allowed", "text/plain", "GET only\n".into());
    }
    // The query string (Prometheus sends none, a browser may) does not change the answer.
    handle(target.split('?').next().unwrap_or(target))
}

fn respond(mut s: &TcpStream, (status, ctype, body): Response) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    s.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A server answering "ok" on /metrics, with the given limits; its address and stop flag.
    fn server(limits: Limits) -> (std::net::SocketAddr, Arc<AtomicBool>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            serve(
                l,
                limits,
                s,
                Arc::new(|p: &str| match p {
                    "/metrics" => ("200 OK", "text/plain", "ok\n".into()),
                    _ => ("404 Not Found", "text/plain", "not found\n".into()),
                }),
            )
        });
        (addr, stop)
    }

    fn ask(addr: std::net::SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(req);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    fn quick() -> Limits {
        Limits {
            timeout: Duration::from_millis(300),
            max_connections: 2,
        }
    }

    #[test]
    fn answers_metrics_and_404_elsewhere() {
        let (a, stop) = server(Limits::default());
        let r = ask(a, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(
            r.contains("Content-Length: 3\r\n") && r.ends_with("\r\n\r\nok\n"),
            "{r}"
        );
        let r = ask(a, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        let r = ask(a, b"GET /other HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
        let r = ask(a, b"POST /metrics HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
        let r = ask(a, b"nonsense\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
        stop.store(true, Ordering::Relaxed);
        wake(a);
    }

    #[test]
    fn oversized_requests_are_refused() {
        let (a, _) = server(Limits::default());
        let mut req = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
        req.extend(std::iter::repeat_n(b'a', MAX_REQUEST));
        req.extend_from_slice(b"\r\n\r\n");
        let r = ask(a, &req);
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
        // Without an end of head at all: refused once past the limit, not read forever.
        let r = ask(a, &vec![b'a'; 3 * MAX_REQUEST]);
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    }

    #[test]
    fn a_slow_client_is_cut_off_at_the_timeout() {
        let (a, _) = server(quick());
        let mut s = TcpStream::connect(a).unwrap();
        let t = Instant::now();
        // Trickles a byte at a time: the timeout is for the whole head, not each read.
        for _ in 0..20 {
            if s.write_all(b"G").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(
            out.is_empty(),
            "nothing is answered to a request never finished"
        );
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }

    #[test]
    fn clients_that_send_nothing_do_not_block_others() {
        let (a, _) = server(quick());
        // As many silent clients as the cap allows, and more: the cap answers 503 at once,
        // and a real request is served once the silent ones time out, never held forever.
        let idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(a).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(50));
        let busy = ask(a, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(busy.starts_with("HTTP/1.1 503 "), "over the cap: {busy}");
        std::thread::sleep(Duration::from_millis(500));
        let t = Instant::now();
        let r = ask(a, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        drop(idle);
    }

    #[test]
    fn one_silent_client_does_not_delay_another() {
        let (a, _) = server(Limits::default());
        let _silent = TcpStream::connect(a).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let t = Instant::now();
        let r = ask(a, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "served while the silent client waits out its 5 s: {:?}",
            t.elapsed()
        );
    }
}
