//! Periodic stats reports (`run --stats-interval`) written by a thread of their own.
//!
//! The management loop used to print each report itself: when stdout is a pipe whose reader
//! stops reading (a stalled log shipper, a test busy elsewhere), the 64 KiB pipe fills in
//! seconds and the loop sat in `write`, answering no `ctl` request, retiring no table and
//! running no health check. Now the loop offers each report to a writer thread through a
//! channel of `DEPTH`: an offer never waits, and a report the writer has no room for is
//! dropped and counted (the next one carries the same counters, newer).
use crossbeam::channel::{bounded, Sender, TrySendError};
use std::io::Write;
use std::thread::JoinHandle;

/// Reports that may wait for the writer. One being written plus two queued covers a reader
/// that is slow for a moment; a stalled one loses reports, not the loop.
const DEPTH: usize = 2;

pub struct StatsOut {
    tx: Option<Sender<String>>,
    writer: Option<JoinHandle<()>>,
    /// Reports dropped because the writer was behind, since the start.
    dropped: u64,
    /// Whether the last offer was dropped: the warning is logged once per stall, not per report.
    behind: bool,
}

impl StatsOut {
    /// A writer thread over `out` (stdout in `run`).
    pub fn new<W: Write + Send + 'static>(mut out: W) -> std::io::Result<StatsOut> {
        let (tx, rx) = bounded::<String>(DEPTH);
        let writer = std::thread::Builder::new()
            .name("ag-stats".into())
            .spawn(move || {
                for report in rx {
                    // A closed stdout ends the writer; the loop's offers are then dropped.
                    if out
                        .write_all(report.as_bytes())
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        break;
                    }
                }
            })?;
        Ok(StatsOut {
            tx: Some(tx),
            writer: Some(writer),
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

    /// Waits until every queued report is written: for the final report, which follows them.
    /// It waits as long as the reader does, as the final report's own write would.
    pub fn finish(mut self) {
        self.tx = None;
        if let Some(w) = self.writer.take() {
            if w.join().is_err() {
                log::warn!("the stats writer thread panicked");
            }
        }
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
        out.finish();
        lines.push(String::from_utf8(got.recv().unwrap()).unwrap());
        assert_eq!(lines.last().unwrap(), "late\n");
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
        out.finish();
        assert_eq!(*shared.lock().unwrap(), buf);
    }
}
