//! `ctl trace` and `ctl capture` on the management thread: arms every worker's tap, drains
//! their rings each tick, and answers the client (a deferred reply: the request does not hold
//! the management loop) once `count` packets came or after `WAIT`, with what it has.
use super::Plane;
use crate::ctl_proto::{hex, Reply, Request};
use crate::datapath::tap::{Filter, Mode, Record, Tap};
use crate::datapath::Verdict;
use crossbeam::channel::Sender;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a trace or capture waits for its packets before answering with those it has.
pub const WAIT: Duration = Duration::from_secs(10);
/// The most packets one `ctl trace` asks for.
pub const MAX_TRACE: u32 = 1000;
/// The most packets one `ctl capture` asks for (a reply of up to ~16 MB of hex).
pub const MAX_CAPTURE: u32 = 4096;

pub struct Taps {
    taps: Vec<Arc<Tap>>,
    active: Option<Session>,
    next: u16,
}

struct Session {
    reply: Sender<Reply>,
    trace: bool,
    want: usize,
    deadline: Instant,
    id: u16,
    got: Vec<(usize, Box<Record>)>,
    lost: u64,
}

impl Taps {
    pub fn new(taps: Vec<Arc<Tap>>) -> Taps {
        Taps {
            taps,
            active: None,
            next: 1,
        }
    }

    /// Starts a trace or capture; the reply goes to `reply` later. Another request, or one
    /// refused, is answered at once.
    pub fn start(&mut self, req: &Request, who: &str, reply: Sender<Reply>, plane: &Plane) {
        match self.arm(req, plane, &reply) {
            Ok(s) => log::info!("ctl ({who}): {s}"),
            Err(e) => {
                let _ = reply.try_send(Reply::error(e));
            }
        }
    }

    fn arm(
        &mut self,
        req: &Request,
        plane: &Plane,
        reply: &Sender<Reply>,
    ) -> Result<String, String> {
        if self.active.is_some() {
            return Err("a trace or capture is already running; try again when it ends".into());
        }
        if self.taps.is_empty() {
            return Err("no worker to trace".into());
        }
        let (count, port, tunnel, mode, trace, max) = match req {
            Request::Trace {
                count,
                port,
                tunnel,
            } => (*count, port, tunnel.as_deref(), Mode::All, true, MAX_TRACE),
            Request::Capture {
                count,
                port,
                drops_only,
            } => {
                let mode = if *drops_only { Mode::Drops } else { Mode::All };
                (*count, port, None, mode, false, MAX_CAPTURE)
            }
            _ => return Err("not a trace or capture".into()),
        };
        if count == 0 || count > max {
            return Err(format!("count: {count} is not within 1..={max}"));
        }
        let port = match port.as_deref() {
            None => None,
            Some(p) => Some(
                plane
                    .cfg
                    .ports
                    .iter()
                    .position(|c| c.name == p)
                    .ok_or_else(|| format!("port: no port named `{p}`"))? as u16,
            ),
        };
        let tunnel = match tunnel {
            None => None,
            Some(t) => Some(
                plane
                    .publisher
                    .current()
                    .tunnels
                    .iter()
                    .position(|c| c.name == t)
                    .ok_or_else(|| format!("tunnel: no tunnel named `{t}`"))?
                    as u16,
            ),
        };
        let id = self.next;
        self.next = (self.next + 1) & 0x3fff;
        let f = Filter {
            mode,
            port,
            tunnel,
            count: count as u16,
            session: id,
        };
        for t in &self.taps {
            // Records of an earlier session, and its losses, are not this one's.
            while t.ring.pop().is_some() {}
            t.take_lost();
            t.arm(f);
        }
        self.active = Some(Session {
            reply: reply.clone(),
            trace,
            want: count as usize,
            deadline: Instant::now() + WAIT,
            id,
            got: Vec::new(),
            lost: 0,
        });
        Ok(format!(
            "{} of {count} packet(s) armed",
            if trace { "trace" } else { "capture" }
        ))
    }

    /// Drains the rings; answers and disarms when the session is complete or its wait ended.
    pub fn poll(&mut self, plane: &Plane) {
        let Some(s) = &mut self.active else { return };
        for (w, t) in self.taps.iter().enumerate() {
            s.lost += t.take_lost();
            while let Some(r) = t.ring.pop() {
                if r.session == s.id && s.got.len() < s.want {
                    s.got.push((w, Box::new(r)));
                }
            }
        }
        let complete = s.got.len() >= s.want;
        if !complete && Instant::now() < s.deadline {
            return;
        }
        for t in &self.taps {
            t.disarm();
        }
        let Some(mut s) = self.active.take() else {
            return;
        };
        // In the order the workers received them (their TSCs are one clock).
        s.got.sort_by_key(|(_, r)| r.tsc);
        let packets: Vec<Value> = s
            .got
            .iter()
            .enumerate()
            .map(|(i, (w, r))| packet(plane, i as u64, *w, r, s.trace))
            .collect();
        let _ = s.reply.try_send(Reply::ok(json!({
            "packets": packets,
            "complete": complete,
            "lost": s.lost,
            "wait_s": WAIT.as_secs(),
            "trace": s.trace,
        })));
    }
}

/// One packet of the reply: where it came, the bytes as received, and its trace (the text and
/// JSON `anygate trace` prints) or, for a capture, the drop reason.
fn packet(plane: &Plane, index: u64, worker: usize, r: &Record, trace: bool) -> Value {
    let port = plane.cfg.port_label(r.port);
    // TSC to wall clock, by the offset between them now.
    let hz = crate::dpdk::tsc_hz().max(1);
    let ago = crate::dpdk::tsc().saturating_sub(r.tsc) as u128 * 1_000_000_000 / hz as u128;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut o = json!({"worker": worker, "port": port, "len": r.orig_len,
                       "time_ns": now.saturating_sub(ago) as u64, "data": hex(r.data())});
    let reason = match (r.verdict, r.note.answered) {
        (_, Some(a)) => Some(a),
        (Verdict::Drop(d), None) => Some(d),
        _ => None,
    };
    if let Some(d) = reason {
        o["reason"] = json!(d.name());
        o["comment"] = json!(format!("drop {} ({})", d.name(), d.description()));
    }
    if trace {
        let snap = plane.publisher.current();
        if snap.generation != r.generation {
            o["generation"] = json!(r.generation);
        }
        let describe = |j| {
            crate::trace::describe(
                plane.cfg,
                (snap, plane.rib),
                index,
                r.verdict,
                &r.note,
                &r.out_eth,
                j,
            )
        };
        o["line"] = json!(describe(false));
        o["trace"] = serde_json::from_str(&describe(true)).unwrap_or(Value::Null);
    }
    o
}
