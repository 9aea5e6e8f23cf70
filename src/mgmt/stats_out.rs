//! Periodic stats reports (`run --stats-interval`) written by a thread of their own.
//!
//! The management loop used to print each report itself: when stdout is a pipe whose reader
//! stops reading (a stalled log shipper, a test busy elsewhere), the 64 KiB pipe fills in
//! seconds and the loop sat in `write`, answering no `ctl` request, retiring no table and
//! running no health check. Now the loop offers each report to a writer thread through a
//! channel of `DEPTH`: an offer never waits, and a report the writer has no room for is
//! dropped and counted (the next one carries the same counters, newer). The final report
//! goes the same way, behind the queued ones, and the exit waits for it only `FINAL_WAIT`:
//! a stop (SIGTERM from systemd, say) is not held up by a reader that went quiet.
use crossbeam::channel::{bounded, Receiver, SendTimeoutError, Sender, TrySendError};
use std::io::Write;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Reports that may wait for the writer. One being written plus two queued covers a reader
/// that is slow for a moment; a stalled one loses reports, not the loop.
const DEPTH: usize = 2;

/// How long the exit waits for stdout to take the queued reports and the final one.
pub const FINAL_WAIT: Duration = Duration::from_secs(5);

/// What became of the final report.
#[derive(Debug, PartialEq, Eq)]
pub enum Finished {
    /// It and every report queued before it were written.
    Written,
    /// Stdout did not take them within the wait: the writer is left blocked (the process exit
    /// ends it) and the report is lost.
    NotRead,
    /// Stdout refused a write (a closed pipe): the error.
    Failed(String),
}

pub struct StatsOut {
    tx: Option<Sender<String>>,
    writer: Option<JoinHandle<()>>,
    /// The writer's outcome, sent once when its channel ends or a write fails.
    done: Receiver<Result<(), String>>,
    /// Reports dropped because the writer was behind, since the start.
    dropped: u64,
    /// Whether the last offer was dropped: the warning is logged once per stall, not per report.
    behind: bool,
}

impl StatsOut {
    /// A writer thread over `out` (stdout in `run`).
    pub fn new<W: Write + Send + 'static>(mut out: W) -> std::io::Result<StatsOut> {
        let (tx, rx) = bounded::<String>(DEPTH);
        let (done_tx, done) = bounded(1);
        let writer = std::thread::Builder::new()
            .name("ag-stats".into())
            .spawn(move || {
                let mut outcome = Ok(());
                for report in rx {
                    // A closed stdout ends the writer; the loop's offers are then dropped.
                    if let Err(e) = out.write_all(report.as_bytes()).and_then(|()| out.flush()) {
                        outcome = Err(e.to_string());
                        break;
                    }
                }
                let _ = done_tx.send(outcome);
            })?;
        Ok(StatsOut {
            tx: Some(tx),
            writer: Some(writer),
            done,
            dropped: 0,
            behind: false,
        })
    }

    /// Hands `report` to the writer without waiting; false when it was dropped.
    pub fn offer(&mut self, report: String) -> bool {
        let Some(tx) = &self.tx else { return false };
        match tx.try_send(report) {
            Ok(()) => {
                if self.behind {
                    log::info!(
                        "stats output caught up ({} reports dropped in all)",
                        self.dropped
                    );
                }
                self.behind = false;
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped += 1;
                if !self.behind {
                    log::warn!(
                        "stats output is not being read (or was closed): dropping periodic reports until it is \
                         (the management loop does not wait for it)"
                    );
                }
                self.behind = true;
                false
            }
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Queues `last` behind every queued report and waits until all are written, or `limit`
    /// has passed, or stdout refused one.
    pub fn finish(mut self, last: String, limit: Duration) -> Finished {
        let deadline = Instant::now() + limit;
        if let Some(tx) = self.tx.take() {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(SendTimeoutError::Timeout(_)) = tx.send_timeout(last, left) {
                return Finished::NotRead;
            }
            // A disconnected channel: the writer stopped on an error, which `done` holds.
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let outcome = match self.done.recv_timeout(left) {
            Ok(Ok(())) => Finished::Written,
            Ok(Err(e)) => Finished::Failed(e),
            Err(e) if e.is_timeout() => return Finished::NotRead,
            Err(_) => Finished::Failed("the stats writer thread panicked".into()),
        };
        // It has sent its outcome, so the join is immediate.
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam::channel::Receiver;
    use std::time::{Duration, Instant};

    /// A sink that writes only when the test lets it: each write waits for a token.
    struct Gate {
        tokens: Receiver<()>,
        written: Sender<Vec<u8>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.tokens
                .recv()
                .map_err(|_| std::io::Error::other("closed"))?;
            self.written.send(buf.to_vec()).unwrap();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_reader_costs_reports_not_time() {
        let (token_tx, tokens) = bounded(1000);
        let (written, got) = crossbeam::channel::unbounded();
        let mut out = StatsOut::new(Gate { tokens, written }).unwrap();
        let t = Instant::now();
        let mut kept = 0;
        for i in 0..100 {
            kept += usize::from(out.offer(format!("report {i}\n")));
        }
        // Nothing was written, nothing waited: the writer holds one, the channel DEPTH.
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert!(kept <= DEPTH + 1, "{kept}");
        assert_eq!(out.dropped(), 100 - kept as u64);
        assert!(got.try_recv().is_err());

        // The reader comes back: what was kept is written in order, and offers pass again.
        for _ in 0..100 {
            token_tx.send(()).unwrap();
        }
        let mut lines: Vec<String> = (0..kept)
            .map(|_| String::from_utf8(got.recv_timeout(Duration::from_secs(5)).unwrap()).unwrap())
            .collect();
        let n: Vec<u32> = lines
            .iter()
            .map(|l| l.trim_end().trim_start_matches("report ").parse().unwrap())
            .collect();
        assert_eq!(n[0], 0);
        assert!(n.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
        assert!(out.offer("late\n".into()));
        assert_eq!(out.finish("final\n".into(), FINAL_WAIT), Finished::Written);
        lines.push(String::from_utf8(got.recv().unwrap()).unwrap());
        lines.push(String::from_utf8(got.recv().unwrap()).unwrap());
        assert_eq!(lines[lines.len() - 2..], ["late\n", "final\n"]);
    }

    /// A reader that never comes back holds the exit up for the wait, not longer, whether
    /// the final report found room in the queue or not.
    #[test]
    fn a_stalled_reader_holds_the_exit_only_for_the_wait() {
        for queued in [0, 10] {
            let (_token_tx, tokens) = bounded(1);
            let (written, _got) = crossbeam::channel::unbounded();
            let mut out = StatsOut::new(Gate { tokens, written }).unwrap();
            for i in 0..queued {
                out.offer(format!("report {i}\n"));
            }
            let t = Instant::now();
            let limit = Duration::from_millis(300);
            assert_eq!(out.finish("final\n".into(), limit), Finished::NotRead);
            assert!(t.elapsed() >= limit, "{:?}", t.elapsed());
            assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        }
    }

    /// A refused write (a closed pipe) is reported with its error, at once.
    #[test]
    fn a_closed_output_fails_the_final_report() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        for queued in [0, 1] {
            let mut out = StatsOut::new(Closed).unwrap();
            for i in 0..queued {
                out.offer(format!("report {i}\n"));
            }
            let t = Instant::now();
            match out.finish("final\n".into(), FINAL_WAIT) {
                Finished::Failed(e) => assert!(e.contains("broken pipe"), "{e}"),
                other => panic!("{other:?}"),
            }
            assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        }
    }

    #[test]
    fn finish_writes_every_queued_report() {
        let mut buf = Vec::new();
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut out = StatsOut::new(Shared(shared.clone())).unwrap();
        for i in 0..3 {
            // A free writer drains as fast as the loop offers; retry a full channel.
            while !out.offer(format!("{i}\n")) {
                std::thread::sleep(Duration::from_millis(1));
            }
            buf.extend_from_slice(format!("{i}\n").as_bytes());
        }
        assert_eq!(out.finish("final\n".into(), FINAL_WAIT), Finished::Written);
        buf.extend_from_slice(b"final\n");
        assert_eq!(*shared.lock().unwrap(), buf);
    }
}
