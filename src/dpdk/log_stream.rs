//! DPDK's own log (the EAL, drivers, mempool: `rte_log`) through anygate's. From before
//! `rte_eal_init` on, DPDK writes to a stream (`rte_openlog_stream`) whose write function hands
//! each line to the `log` crate, with DPDK's level and log type: it gets anygate's format, the
//! RUST_LOG filter (target `dpdk::<log type>`, e.g. `dpdk::pmd.net.null`) and the log's
//! bounded queue (`log_pipe`), instead of a direct write to fd 2 that an unread stderr blocks
//! (and EAL's copy of each line to syslog). On DPDK 22.11 the stream may be set before
//! `rte_eal_init`: `rte_log` writes to the stream set (`rte_logs.file`) whenever there is one,
//! and the EAL's `eal_log_init` only replaces its default stream (stderr and syslog), used when
//! none is set.
//!
//! The write function runs on whatever thread logged (the management thread, a `ctl`
//! client's, DPDK's interrupt thread, a worker): it copies the text into a line buffer of
//! [`LINE_MAX`] bytes reserved once, and for each complete line logs one record, which the
//! logger queues or drops without waiting. A line longer than [`LINE_MAX`] is cut there (the
//! record says so) and its rest, up to its newline, dropped. A piece without a newline waits
//! for the rest of its line from the same thread; another thread's text first ends it.
use super::{Error, Result};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, Once, OnceLock};
use std::time::Duration;

/// The longest DPDK line kept whole, in bytes (DPDK's own lines are under 200).
pub const LINE_MAX: usize = 1024;

/// The line being assembled (pieces without a newline yet) and the log types' targets,
/// shared by every thread that logs.
static LINE: Mutex<Stream> = Mutex::new(Stream {
    joiner: Joiner::new(),
    targets: Targets(Vec::new()),
});
static INSTALLED: Once = Once::new();
/// Waits, bounded, for the records queued so far to be written (`log_format::flush`).
static FLUSH: OnceLock<fn(Duration) -> bool> = OnceLock::new();
/// Lines still to be flushed one by one after a critical one.
static AFTER_CRITICAL: Tail = Tail(AtomicU32::new(0));
/// How many lines after a critical one (`rte_panic`'s backtrace follows it) are flushed.
const CRITICAL_TAIL: u32 = 64;
/// The longest a critical line (and each of its tail) waits for stderr.
const CRITICAL_WAIT: Duration = Duration::from_millis(500);

struct Stream {
    joiner: Joiner,
    targets: Targets,
}

/// Points DPDK's log at anygate's logger, once per process (later calls do nothing). Called
/// before `rte_eal_init`, it takes the EAL's start-up lines too (its argument errors
/// included); lines DPDK wrote before it went to stderr as DPDK writes them.
///
/// `flush(limit)` waits at most `limit` for the log's queue: a CRIT, ALERT or EMERG line
/// (`rte_panic`, `rte_exit`'s cause, before DPDK aborts or exits without our final flush)
/// and the [`CRITICAL_TAIL`] lines after it (the backtrace) are written before DPDK goes on.
pub fn log_through_logger(flush: fn(Duration) -> bool) -> Result<()> {
    let _ = FLUSH.set(flush);
    let mut result = Ok(());
    INSTALLED.call_once(|| result = install());
    result
}

fn install() -> Result<()> {
    let mut stream = line();
    // Types registered later (drivers loaded by `rte_eal_init`) are read when first used.
    stream.targets.refresh(&registered_types());
    // The write function copies into this buffer and never grows it.
    stream.joiner.buf.reserve_exact(LINE_MAX);
    drop(stream);
    // SAFETY: `write` is an `extern "C"` function with the shim's sink signature that stays
    // valid for the process; the shim only stores it and opens a stream calling it.
    let stream = unsafe { dpdk_sys::ag_log_stream(Some(write)) };
    if stream.is_null() {
        return Err(Error {
            what: "fopencookie for DPDK's log".into(),
            code: super::errno::ENOMEM,
        });
    }
    // SAFETY: `stream` is a valid FILE that is never closed (DPDK's cleanup closes only its
    // default stream), so DPDK may write to it from any thread for the rest of the process;
    // glibc locks a FILE around each call.
    let rc = unsafe { dpdk_sys::rte_openlog_stream(stream) };
    if rc != 0 {
        return Err(Error::new("rte_openlog_stream", rc));
    }
    Ok(())
}

/// `rte_log_dump`'s text: the registered log types.
fn registered_types() -> String {
    let mut len = 0usize;
    // SAFETY: `len` is a valid place for the length; the shim returns a malloc'd buffer of
    // `len` bytes, or NULL.
    let p = unsafe { dpdk_sys::ag_log_types(&mut len) };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the shim's buffer holds `len` initialised bytes until it is freed below.
    let text = String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
        .into_owned();
    // SAFETY: `p` came from the shim's malloc and is freed once, after its last use above.
    unsafe { dpdk_sys::ag_free(p.cast()) };
    text
}

/// The target of each log type id, `dpdk::<name>`, from `rte_log_dump` lines (`id 3: lib.eal,
/// level is info`); ids with no line get "dpdk".
struct Targets(Vec<String>);

impl Targets {
    /// Ids at or past this are not kept: DPDK's type table is small, and a corrupt id does not
    /// make a huge vector.
    const MAX: usize = 4096;

    /// The target of type `id`. An id not seen yet (a type registered since the last read,
    /// as by a driver `rte_eal_init` loads) reads the table again from `dump`, once: it
    /// allocates then, never for an id already known.
    fn get(&mut self, id: i32, dump: impl FnOnce() -> String) -> &str {
        let Some(id) = usize::try_from(id).ok().filter(|&i| i < Self::MAX) else {
            return "dpdk";
        };
        if id >= self.0.len() {
            self.refresh(&dump());
            // Still unknown (no name in DPDK's table): "dpdk", without reading it again.
            if self.0.len() <= id {
                self.0.resize(id + 1, "dpdk".into());
            }
        }
        &self.0[id]
    }

    fn refresh(&mut self, dump: &str) {
        for l in dump.lines() {
            let Some((id, rest)) = l.strip_prefix("id ").and_then(|r| r.split_once(": ")) else {
                continue;
            };
            let (Ok(id), Some((name, _))) = (id.parse::<usize>(), rest.rsplit_once(", level is "))
            else {
                continue;
            };
            if id >= Self::MAX {
                continue;
            }
            if self.0.len() <= id {
                self.0.resize(id + 1, "dpdk".into());
            }
            self.0[id] = format!("dpdk::{name}");
        }
    }
}

fn line() -> MutexGuard<'static, Stream> {
    // A panic while holding it leaves at worst a partial line.
    LINE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The stream's write function: `text` is DPDK's, `level` and `logtype` those of the
/// `rte_log` call that wrote it (`rte_log_cur_msg_*`, set on this thread).
unsafe extern "C" fn write(
    level: std::os::raw::c_int,
    logtype: std::os::raw::c_int,
    thread: std::os::raw::c_int,
    text: *const std::os::raw::c_char,
    len: usize,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: glibc passes the stream's write function `len` readable bytes at `text`, valid
    // for the call.
    let text = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len) };
    let mut stream = line();
    let Stream { joiner, targets } = &mut *stream;
    joiner.write(
        thread,
        level,
        logtype,
        text,
        &mut |level, logtype, text, cut| emit(targets, level, logtype, text, cut),
    );
}

/// Logs one DPDK line.
fn emit(targets: &mut Targets, level: i32, logtype: i32, text: &[u8], cut: bool) {
    let critical = (1..=3).contains(&level);
    let level = level_of(level);
    if level > log::max_level() {
        return;
    }
    let target = targets.get(logtype, registered_types);
    let name = target.strip_prefix("dpdk::").unwrap_or(target);
    let text = String::from_utf8_lossy(text);
    let text = text.trim_end();
    if cut {
        log::log!(target: target, level, "{name}: {text} [cut at {LINE_MAX} bytes]");
    } else {
        log::log!(target: target, level, "{name}: {text}");
    }
    // DPDK may abort or exit right after: the line must be out first (bounded).
    if AFTER_CRITICAL.flush_now(critical) {
        if let Some(flush) = FLUSH.get() {
            flush(CRITICAL_WAIT);
        }
    }
}

/// Counts down the lines flushed after a critical one.
struct Tail(AtomicU32);

impl Tail {
    /// Whether the line just logged is flushed: a critical one, and the
    /// [`CRITICAL_TAIL`] lines after the last critical one.
    fn flush_now(&self, critical: bool) -> bool {
        if critical {
            self.0.store(CRITICAL_TAIL, Ordering::Relaxed);
            return true;
        }
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// DPDK's level (RTE_LOG_EMERG 1 .. RTE_LOG_DEBUG 8) as the `log` crate's.
pub fn level_of(rte: i32) -> log::Level {
    match rte {
        1..=4 => log::Level::Error,
        5 | 6 => log::Level::Warn,
        8 => log::Level::Debug,
        // INFO, and text written with no rte_log call before it on this thread.
        _ => log::Level::Info,
    }
}

/// Joins the pieces DPDK writes into lines of at most `LINE_MAX` bytes.
struct Joiner {
    buf: Vec<u8>,
    /// The thread whose line `buf` holds, with that line's level and type.
    owner: Option<(i32, i32, i32)>,
    /// The line went past `LINE_MAX`: the rest of it is dropped.
    cut: bool,
}

impl Joiner {
    const fn new() -> Joiner {
        Joiner {
            buf: Vec::new(),
            owner: None,
            cut: false,
        }
    }

    /// Takes a piece of text thread `thread` (its kernel id) wrote; `emit(level, logtype, line, cut)` gets each line
    /// it completes (without its newline; empty lines are skipped).
    fn write(
        &mut self,
        thread: i32,
        level: i32,
        logtype: i32,
        mut text: &[u8],
        emit: &mut impl FnMut(i32, i32, &[u8], bool),
    ) {
        if matches!(self.owner, Some((t, ..)) if t != thread) {
            self.end(emit);
        }
        while !text.is_empty() {
            if self.owner.is_none() {
                self.owner = Some((thread, level, logtype));
            }
            let (piece, rest, newline) = match text.iter().position(|&b| b == b'\n') {
                Some(i) => (&text[..i], &text[i + 1..], true),
                None => (text, &[][..], false),
            };
            let room = LINE_MAX.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&piece[..piece.len().min(room)]);
            self.cut |= piece.len() > room;
            if newline {
                self.end(emit);
            }
            text = rest;
        }
    }

    /// Emits the line held, if any, and starts a new one.
    fn end(&mut self, emit: &mut impl FnMut(i32, i32, &[u8], bool)) {
        if let Some((_, level, logtype)) = self.owner.take() {
            if !self.buf.iter().all(u8::is_ascii_whitespace) {
                emit(level, logtype, &self.buf, self.cut);
            }
        }
        self.buf.clear();
        self.cut = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Lines = Vec<(i32, i32, String, bool)>;

    fn feed(j: &mut Joiner, out: &mut Lines, thread: i32, level: i32, text: &str) {
        j.write(
            thread,
            level,
            3,
            text.as_bytes(),
            &mut |l, t, b: &[u8], c| out.push((l, t, String::from_utf8_lossy(b).into_owned(), c)),
        );
    }

    #[test]
    fn pieces_are_joined_into_lines_and_several_lines_split() {
        let me = 101;
        let (mut j, mut out) = (Joiner::new(), Vec::new());
        feed(&mut j, &mut out, me, 7, "EAL: one ");
        feed(&mut j, &mut out, me, 7, "line\nsecond\n\nthird");
        assert_eq!(
            out,
            vec![
                (7, 3, "EAL: one line".into(), false),
                (7, 3, "second".into(), false)
            ]
        );
        // The line's level is its first piece's.
        feed(&mut j, &mut out, me, 4, " ends\n");
        assert_eq!(out[2], (7, 3, "third ends".into(), false));
        assert_eq!(out.len(), 3);
        assert!(j.buf.is_empty() && j.owner.is_none());
    }

    #[test]
    fn another_threads_text_ends_a_pending_piece_and_is_not_joined_to_it() {
        let (me, other) = (101, 102);
        let (mut j, mut out) = (Joiner::new(), Vec::new());
        feed(&mut j, &mut out, me, 7, "half");
        feed(&mut j, &mut out, other, 5, "whole\n");
        assert_eq!(
            out,
            vec![(7, 3, "half".into(), false), (5, 3, "whole".into(), false)]
        );
    }

    #[test]
    fn a_line_past_the_cap_is_cut_and_its_rest_dropped_without_growing_the_buffer() {
        let me = 101;
        let (mut j, mut out) = (Joiner::new(), Vec::new());
        j.buf.reserve_exact(LINE_MAX);
        let cap = j.buf.capacity();
        let long = "x".repeat(LINE_MAX - 10);
        feed(&mut j, &mut out, me, 7, &long);
        feed(&mut j, &mut out, me, 7, &"y".repeat(5000));
        feed(&mut j, &mut out, me, 7, "z\nnext\n");
        assert_eq!(j.buf.capacity(), cap);
        assert_eq!(out.len(), 2);
        let (_, _, first, cut) = &out[0];
        assert!(*cut);
        assert_eq!(first.len(), LINE_MAX);
        assert_eq!(*first, long + &"y".repeat(10));
        assert_eq!(out[1], (7, 3, "next".into(), false));
    }

    #[test]
    fn a_critical_line_and_the_lines_after_it_are_flushed() {
        let t = Tail(AtomicU32::new(0));
        assert!(!t.flush_now(false), "no critical line yet");
        assert!(t.flush_now(true));
        for i in 0..CRITICAL_TAIL {
            assert!(t.flush_now(false), "line {i} of the tail");
        }
        assert!(!t.flush_now(false), "past the tail");
        assert!(t.flush_now(true), "a new critical line starts it again");
        assert!(t.flush_now(false));
    }

    #[test]
    fn levels_map_to_the_log_crates() {
        use log::Level::*;
        let want = [
            Info, Error, Error, Error, Error, Warn, Warn, Info, Debug, Info,
        ];
        for (rte, l) in want.iter().enumerate() {
            assert_eq!(level_of(rte as i32), *l, "{rte}");
        }
    }

    #[test]
    fn log_types_are_read_from_the_dump() {
        let dump = "global log level is debug\nid 0: lib.eal, level is info\n\
                    id 2: pmd.net.null, level is notice\nid 99999: x, level is info\n";
        let mut t = Targets(Vec::new());
        t.refresh(dump);
        assert_eq!(t.0, vec!["dpdk::lib.eal", "dpdk", "dpdk::pmd.net.null"]);
    }

    #[test]
    fn a_type_registered_after_the_first_read_is_found_by_reading_again_once() {
        let first = "id 0: lib.eal, level is info\n";
        let later = "id 0: lib.eal, level is info\nid 1: pmd.net.null, level is info\n";
        let mut t = Targets(Vec::new());
        t.refresh(first);
        let reads = std::cell::Cell::new(0);
        let dump = || {
            reads.set(reads.get() + 1);
            later.to_owned()
        };
        assert_eq!(t.get(0, dump), "dpdk::lib.eal");
        assert_eq!(reads.get(), 0, "a known id reads nothing");
        assert_eq!(t.get(1, dump), "dpdk::pmd.net.null");
        assert_eq!(t.get(1, dump), "dpdk::pmd.net.null");
        assert_eq!(reads.get(), 1, "a new id reads the table once");
        // An id DPDK has no name for is read once, then known as "dpdk".
        assert_eq!(t.get(7, dump), "dpdk");
        assert_eq!(t.get(7, dump), "dpdk");
        assert_eq!(reads.get(), 2);
        // Negative and huge ids read nothing.
        assert_eq!(t.get(-1, dump), "dpdk");
        assert_eq!(t.get(i32::MAX, dump), "dpdk");
        assert_eq!(reads.get(), 2);
    }
}
