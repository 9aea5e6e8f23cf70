//! The worker's idle back-off (`dpdk.idle_backoff_us`): a worker that keeps finding its queues
//! empty sleeps a little, so that several instances (or a test's daemons) can share cores
//! that busy-polling workers would each take whole. The sleep is a syscall, made only after a
//! loop that received, injected and sent nothing: never with a packet in hand. Off (0) by
//! default: busy-polling gives the lowest latency.

/// The largest `dpdk.idle_backoff_us`: a packet arriving just after the worker fell asleep
/// waits at most this long (plus the kernel's timer slack, about 50 µs).
pub const MAX_SLEEP_US: u32 = 1000;
/// Empty loops in a row before the first sleep: a short gap between bursts costs nothing.
pub const SPIN_LOOPS: u32 = 256;

/// Microseconds to sleep after `empty` empty loops in a row (counted up to this one), with
/// `max_us` the configured cap: 0 while off or still spinning, then 1, 2, 4, ... doubling on
/// each further empty loop up to `max_us`.
pub fn sleep_us(empty: u32, max_us: u32) -> u32 {
    if max_us == 0 || empty < SPIN_LOOPS {
        return 0;
    }
    let doublings = (empty - SPIN_LOOPS).min(20);
    (1u32 << doublings).min(max_us.min(MAX_SLEEP_US))
}

/// A worker's count of empty loops in a row.
#[derive(Debug, Default)]
pub struct Backoff {
    empty: u32,
    max_us: u32,
}

impl Backoff {
    pub fn new(max_us: u32) -> Self {
        Backoff { empty: 0, max_us }
    }

    /// After each loop: `busy` when it did anything. Returns the sleep to take now, in
    /// microseconds (0: none); any work starts the count again.
    #[inline(always)]
    pub fn after_loop(&mut self, busy: bool) -> u32 {
        if busy || self.max_us == 0 {
            self.empty = 0;
            return 0;
        }
        self.empty = self.empty.saturating_add(1);
        sleep_us(self.empty, self.max_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_never_sleeps() {
        for n in [0, 1, SPIN_LOOPS, SPIN_LOOPS + 30, u32::MAX] {
            assert_eq!(sleep_us(n, 0), 0);
        }
    }

    #[test]
    fn spins_first_then_doubles_up_to_the_cap() {
        assert_eq!(sleep_us(SPIN_LOOPS - 1, 1000), 0);
        let seq: Vec<u32> = (0..12).map(|k| sleep_us(SPIN_LOOPS + k, 1000)).collect();
        assert_eq!(seq, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1000]);
        assert_eq!(sleep_us(u32::MAX, 1000), 1000, "no overflow far out");
        assert_eq!(sleep_us(SPIN_LOOPS + 3, 5), 5, "a small cap holds");
        assert_eq!(
            sleep_us(SPIN_LOOPS + 30, 50_000),
            MAX_SLEEP_US,
            "never above the hard cap"
        );
    }

    #[test]
    fn work_resets_the_count() {
        let mut b = Backoff::new(100);
        for _ in 0..SPIN_LOOPS - 1 {
            assert_eq!(b.after_loop(false), 0);
        }
        assert_eq!(b.after_loop(false), 1);
        assert_eq!(b.after_loop(false), 2);
        assert_eq!(b.after_loop(true), 0);
        assert_eq!(b.after_loop(false), 0, "spinning again after work");
        let mut off = Backoff::new(0);
        assert!((0..10 * SPIN_LOOPS).all(|_| off.after_loop(false) == 0));
    }
}
