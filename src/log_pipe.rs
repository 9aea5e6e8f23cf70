//! The log's way to stderr: the logger hands each formatted record to a writer thread through
//! a bounded queue and never waits. When stderr is a pipe nobody reads (a stalled log
//! shipper, a supervisor that stopped draining it), the 64 KiB pipe fills and a direct write
//! would block the thread that logged: the management loop, a `ctl` client's thread, the
//! health checker. Here a record with no room is dropped and counted, and the writer logs the
//! count when stderr takes records again. The exit waits a bounded time for the queue.
use crossbeam::channel::{bounded, Receiver, Sender};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records that may wait for stderr: a burst of start-up or reload lines fits.
pub const DEPTH: usize = 4096;

enum Msg {
    Record(Vec<u8>),
    /// Moves the writer onto this core (the main lcore, once the EAL has pinned main there).
    Pin(usize),
    /// Answered once every record queued before it is written.
    Flush(Sender<()>),
}

/// The writer thread and the way to it.
pub struct Pipe {
    tx: Sender<Msg>,
    dropped: Arc<AtomicU64>,
}

/// The logger's end: `write` queues the record whole, or drops and counts it.
pub struct PipeEnd {
    tx: Sender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl Pipe {
    /// A writer thread over `out` holding up to `depth` records; `on_drops(n)` runs on it
    /// before the first record written after `n` were dropped (`log::warn!` in `run`, whose
    /// line is queued like any other).
    pub fn new<W, F>(mut out: W, depth: usize, on_drops: F) -> std::io::Result<Pipe>
    where
        W: Write + Send + 'static,
        F: Fn(u64) + Send + 'static,
    {
        let (tx, rx): (Sender<Msg>, Receiver<Msg>) = bounded(depth);
        let dropped = Arc::new(AtomicU64::new(0));
        let seen = dropped.clone();
        std::thread::Builder::new()
            .name("ag-log".into())
            .spawn(move || {
                for m in rx {
                    match m {
                        Msg::Record(r) => {
                            let n = seen.swap(0, Ordering::Relaxed);
                            if n > 0 {
                                on_drops(n);
                            }
                            // Nowhere to report a failed write to stderr; the next may pass.
                            let _ = out.write_all(&r);
                        }
                        Msg::Pin(core) => {
                            core_affinity::set_for_current(core_affinity::CoreId { id: core });
                        }
                        Msg::Flush(done) => {
                            let _ = out.flush();
                            let _ = done.send(());
                        }
                    }
                }
            })?;
        Ok(Pipe { tx, dropped })
    }

    pub fn end(&self) -> PipeEnd {
        PipeEnd {
            tx: self.tx.clone(),
            dropped: self.dropped.clone(),
        }
    }

    /// Moves the writer thread onto `core`: it is made before the EAL pins the main thread
    /// and would otherwise be free to run on a worker's core.
    pub fn pin(&self, core: usize) {
        let _ = self
            .tx
            .send_timeout(Msg::Pin(core), Duration::from_millis(100));
    }

    /// Waits until every record queued so far is written, at most `limit`; false if not.
    pub fn flush(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let (done_tx, done) = bounded(1);
        if self.tx.send_timeout(Msg::Flush(done_tx), limit).is_err() {
            return false;
        }
        done.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

impl Write for PipeEnd {
    fn write(&mut self, record: &[u8]) -> std::io::Result<usize> {
        // No copy for a record that will not fit.
        if self.tx.is_full() || self.tx.try_send(Msg::Record(record.to_vec())).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(record.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A sink that writes only when the test lets it: each write waits for a token.
    struct Gate {
        entered: Sender<()>,
        tokens: Receiver<()>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.entered.try_send(());
            self.tokens
                .recv()
                .map_err(|_| std::io::Error::other("closed"))?;
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_stderr_costs_records_not_time_and_the_count_is_told() {
        let (token_tx, tokens) = bounded(10_000);
        let (entered, entered_rx) = bounded(1000);
        let written = Arc::new(Mutex::new(Vec::new()));
        let notes = Arc::new(Mutex::new(Vec::new()));
        let n2 = notes.clone();
        let pipe = Pipe::new(
            Gate {
                entered,
                tokens,
                written: written.clone(),
            },
            4,
            move |n| n2.lock().unwrap().push(n),
        )
        .unwrap();
        let mut end = pipe.end();
        end.write_all(b"r0\n").unwrap();
        // The writer takes it and waits in its write (after its drop-count swap).
        entered_rx.recv().unwrap();
        let t = Instant::now();
        for i in 1..100 {
            end.write_all(format!("r{i}\n").as_bytes()).unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        // The writer holds one, the queue four: the other 95 were dropped.
        let dropped = pipe.dropped.load(Ordering::Relaxed);
        assert_eq!(dropped, 95);
        assert!(!pipe.flush(Duration::from_millis(200)));

        // Stderr comes back: the kept records in order, then the count, then new ones.
        for _ in 0..100 {
            token_tx.send(()).unwrap();
        }
        assert!(pipe.flush(Duration::from_secs(5)));
        end.write_all(b"after\n").unwrap();
        assert!(pipe.flush(Duration::from_secs(5)));
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.first(), Some(&"r0"), "{lines:?}");
        assert_eq!(lines.last(), Some(&"after"), "{lines:?}");
        assert_eq!(lines.len() as u64, 100 - dropped + 1, "{lines:?}");
        assert_eq!(*notes.lock().unwrap(), vec![dropped]);
    }

    #[test]
    fn flush_waits_for_every_record_queued_before_it() {
        let written = Arc::new(Mutex::new(Vec::new()));
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_millis(1));
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let pipe = Pipe::new(Shared(written.clone()), DEPTH, |_| {}).unwrap();
        let mut end = pipe.end();
        let mut want = Vec::new();
        for i in 0..200 {
            let r = format!("record {i}\n");
            end.write_all(r.as_bytes()).unwrap();
            want.extend_from_slice(r.as_bytes());
        }
        assert!(pipe.flush(Duration::from_secs(10)));
        assert_eq!(*written.lock().unwrap(), want);
        assert_eq!(pipe.dropped.load(Ordering::Relaxed), 0);
    }
}
