//! The punt path's per-worker pieces: where punted packets go (`PuntState`, in the snapshot)
//! and the token bucket that limits them. The stage is `stages::punt`; the device and its
//! kernel side are made by `mgmt::punt`.
use crate::wire::MacAddr;

/// The source MAC of frames handed to the kernel (its side never ARPs: the address only
/// tells our frames from its own in a capture). Locally administered.
pub const PUNT_SRC_MAC: MacAddr = MacAddr([0x02, 0x61, 0x67, 0x00, 0x00, 0x01]);
/// The tap's MAC before the device exists (`trace`, tests): DPDK's real one replaces it.
pub const PUNT_STANDIN_MAC: MacAddr = MacAddr([0x02, 0x61, 0x67, 0x00, 0x00, 0x02]);

/// The exception port as workers see it: its port index (after the configured ports) and
/// the per-worker rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PuntState {
    pub port: u16,
    /// Packets per second, and the bucket's depth.
    pub rate: u32,
    pub burst: u32,
}

/// A token bucket on the TSC: `rate` packets per second, at most `burst` at once. Holds its
/// level in TSC ticks, so no fraction of a token is lost between calls; no syscall, no
/// division per packet (one when the rate or clock changes).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bucket {
    /// Ticks of credit, at most `burst * cost`.
    level: u64,
    last: u64,
    /// Ticks per packet, for (rate, hz).
    cost: u64,
    key: (u32, u64),
    started: bool,
}

impl Bucket {
    /// Takes one packet's worth at time `now` (ticks of `hz` per second); false: over the
    /// rate, the packet is not sent.
    pub fn take(&mut self, now: u64, hz: u64, rate: u32, burst: u32) -> bool {
        if rate == 0 || hz == 0 {
            return false;
        }
        if self.key != (rate, hz) {
            self.key = (rate, hz);
            self.cost = (hz / rate as u64).max(1);
        }
        let cap = self.cost.saturating_mul(burst.max(1) as u64);
        if !self.started {
            self.started = true;
            self.level = cap;
        } else {
            let add = now.saturating_sub(self.last);
            self.level = self.level.saturating_add(add).min(cap);
        }
        self.last = now.max(self.last);
        self.level = self.level.min(cap);
        if self.level < self.cost {
            return false;
        }
        self.level -= self.cost;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 1_000_000;

    #[test]
    fn a_full_burst_then_the_rate() {
        let mut b = Bucket::default();
        let sent = (0..50).filter(|_| b.take(0, HZ, 100, 10)).count();
        assert_eq!(sent, 10, "the burst, at once");
        // 100/s: one token per 10,000 ticks. Over one second in 1 ms steps: 100 more.
        let more = (1..=1000u64)
            .filter(|ms| b.take(ms * 1000, HZ, 100, 10))
            .count();
        assert_eq!(more, 100);
    }

    #[test]
    fn fractions_are_kept_and_idle_time_is_capped() {
        let mut b = Bucket::default();
        assert!(b.take(0, HZ, 3, 1));
        // 1/3 s per token: at 0.2 s none, at 0.34 s one (the 0.2 s were not lost).
        assert!(!b.take(200_000, HZ, 3, 1));
        assert!(b.take(340_000, HZ, 3, 1));
        // A long idle time gives the burst, never more.
        let n = (0..10).filter(|_| b.take(100 * HZ, HZ, 3, 1)).count();
        assert_eq!(n, 1);
    }

    #[test]
    fn zero_rate_or_clock_sends_nothing_and_a_clock_going_back_gives_nothing() {
        let mut b = Bucket::default();
        assert!(!b.take(0, HZ, 0, 10));
        assert!(!b.take(0, 0, 10, 10));
        let mut b = Bucket::default();
        assert!(b.take(HZ, HZ, 1, 1));
        assert!(!b.take(0, HZ, 1, 1), "earlier time: no credit");
        assert!(!b.take(HZ + HZ / 2, HZ, 1, 1));
        assert!(b.take(2 * HZ + 1, HZ, 1, 1));
    }
}
