//! The vendor's health state machine for one tunnel, pure and in virtual time: the caller
//! passes the time (milliseconds on any monotonic clock) with every call.
//!
//! - A failed probe from a healthy tunnel asks for up to 2 more at once (also from a degraded
//!   one: at one probe a second, without them the down rule could never see 3 samples).
//! - Down: every probe of the last second failed, at least 3 of them.
//! - Degraded: at least 0.1% of the probes of the last 5 minutes failed, at least 2 of them.
//! - Down -> degraded after 3 consecutive successes; degraded -> healthy when under 0.1% of
//!   the last 30 probes failed (none); a better state only once the current one was held for
//!   the hold time. Worse states are never delayed. Down never jumps to healthy.
//!
//! Failures count toward a worse state only if they came after the tunnel last improved: the
//! earlier ones were already acted on, and with a hold time shorter than the 5-minute window
//! they would otherwise throw a recovered tunnel straight back to degraded.
use crate::config::Health;
use std::collections::VecDeque;
use std::fmt;

pub const WINDOW_MS: u64 = 300_000;
pub const DOWN_WINDOW_MS: u64 = 1_000;
pub const DOWN_MIN_SAMPLES: u32 = 3;
pub const DEGRADED_MIN_FAILURES: u32 = 2;
/// 0.1%, in failures per million probes.
pub const LOSS_PPM: u64 = 1_000;
pub const UP_SUCCESSES: usize = 3;
pub const RECOVERY_PROBES: usize = 30;
pub const EXTRA_PROBES: u8 = 2;
/// The most samples a tunnel keeps, whatever its rate.
pub const MAX_SAMPLES: usize = 16_384;

/// The figures behind a decision, for the log and for operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Probes with a result, and failures, over the last 5 minutes.
    pub sent_5m: u32,
    pub failed_5m: u32,
    /// The same over the last second.
    pub sent_1s: u32,
    pub failed_1s: u32,
    /// Failures among the last 30 probes, and how many of them there are.
    pub failed_last30: u32,
    pub last30: u32,
    /// Successes since the last failure.
    pub consecutive_ok: u32,
}

impl Figures {
    pub fn loss_5m(&self) -> f64 {
        if self.sent_5m == 0 {
            0.0
        } else {
            self.failed_5m as f64 / self.sent_5m as f64
        }
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}/{} probes failed in the last second, {}/{} in 5 minutes ({:.2}%), {}/{} of the last 30, {} consecutive successes",
            self.failed_1s,
            self.sent_1s,
            self.failed_5m,
            self.sent_5m,
            self.loss_5m() * 100.0,
            self.failed_last30,
            self.last30,
            self.consecutive_ok
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: Health,
    pub to: Health,
    pub figures: Figures,
}

/// What a probe result asks of the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    /// Probes to send at once.
    pub extra_probes: u8,
    pub change: Option<Transition>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    t: u64,
    ok: bool,
}

pub struct Machine {
    state: Health,
    since: u64,
    /// Samples from this one on (by number, counting from 0) count toward a worse state.
    evidence_from: u64,
    /// Samples recorded so far: the newest is number `pushed - 1`.
    pushed: u64,
    hold_ms: u64,
    samples: VecDeque<Sample>,
    cap: usize,
    /// Results and failures in the 5-minute window (all, and those after `evidence_from`).
    sent: u32,
    failed: u32,
    ev_sent: u32,
    ev_failed: u32,
    consecutive_ok: u32,
    /// Extra probes asked for whose results have not come.
    burst: u8,
}

impl Machine {
    /// A tunnel starting in `start` at `now`, probed every `interval_ms`.
    pub fn new(start: Health, now: u64, hold_ms: u64, interval_ms: u64) -> Machine {
        let cap = Self::capacity(interval_ms);
        Machine {
            state: start,
            since: now,
            evidence_from: 0,
            pushed: 0,
            hold_ms,
            samples: VecDeque::with_capacity(cap),
            cap,
            sent: 0,
            failed: 0,
            ev_sent: 0,
            ev_failed: 0,
            consecutive_ok: 0,
            burst: 0,
        }
    }

    /// Room for 5 minutes of probes at this interval, twice over for extra probes.
    pub fn capacity(interval_ms: u64) -> usize {
        ((WINDOW_MS / interval_ms.max(1)) as usize * 2 + 64).min(MAX_SAMPLES)
    }

    pub fn state(&self) -> Health {
        self.state
    }

    /// When the current state was entered.
    pub fn since(&self) -> u64 {
        self.since
    }

    /// New timing (a reload): the window is resized, keeping the newest samples.
    pub fn retime(&mut self, hold_ms: u64, interval_ms: u64) {
        self.hold_ms = hold_ms;
        self.cap = Self::capacity(interval_ms);
        while self.samples.len() > self.cap {
            self.pop_front();
        }
    }

    /// Starts over in `state` (checks switched back on): no samples, held from `now`.
    pub fn reset(&mut self, state: Health, now: u64, interval_ms: u64) {
        *self = Machine::new(state, now, self.hold_ms, interval_ms);
    }

    /// Extra probes asked for that could not be sent: no result will come for them.
    pub fn extras_not_sent(&mut self, n: u8) {
        self.burst = self.burst.saturating_sub(n);
    }

    /// A probe's result at `now`: answered (`ok`) or timed out. `extra`: it was one of the
    /// probes a failure asked for.
    pub fn record(&mut self, now: u64, ok: bool, extra: bool) -> Step {
        self.expire(now);
        if self.samples.len() >= self.cap {
            self.pop_front();
        }
        self.samples.push_back(Sample { t: now, ok });
        self.pushed += 1;
        self.sent += 1;
        self.ev_sent += 1;
        if ok {
            self.consecutive_ok += 1;
        } else {
            self.failed += 1;
            self.ev_failed += 1;
            self.consecutive_ok = 0;
        }
        if extra {
            self.burst = self.burst.saturating_sub(1);
        }
        let change = if ok {
            self.better(now)
        } else {
            self.worse(now)
        };
        let mut step = Step {
            extra_probes: 0,
            change,
        };
        if !ok && self.state != Health::Down && self.burst == 0 {
            self.burst = EXTRA_PROBES;
            step.extra_probes = EXTRA_PROBES;
        }
        step
    }

    /// Time passing with no result: a better state may be due once the hold time is over.
    pub fn tick(&mut self, now: u64) -> Option<Transition> {
        self.expire(now);
        if self.state == Health::Healthy {
            return None;
        }
        self.better(now)
    }

    pub fn figures(&self, now: u64) -> Figures {
        let last_second = self
            .samples
            .iter()
            .rev()
            .take_while(|s| s.t + DOWN_WINDOW_MS > now);
        let (sent_1s, failed_1s) = last_second.fold((0, 0), |(n, f), s| (n + 1, f + !s.ok as u32));
        let last30 = self.samples.iter().rev().take(RECOVERY_PROBES);
        let (n30, f30) = last30.fold((0, 0), |(n, f), s| (n + 1, f + !s.ok as u32));
        let old = self
            .samples
            .iter()
            .take_while(|s| s.t + WINDOW_MS <= now)
            .fold((0, 0), |(n, f), s| (n + 1, f + !s.ok as u32));
        Figures {
            sent_5m: self.sent - old.0,
            failed_5m: self.failed - old.1,
            sent_1s,
            failed_1s,
            failed_last30: f30,
            last30: n30,
            consecutive_ok: self.consecutive_ok,
        }
    }

    fn worse(&mut self, now: u64) -> Option<Transition> {
        let evidence = (self.pushed - self.evidence_from) as usize;
        let recent = self
            .samples
            .iter()
            .rev()
            .take(evidence)
            .take_while(|s| s.t + DOWN_WINDOW_MS > now);
        let (n, failed) = recent.fold((0u32, 0u32), |(n, f), s| (n + 1, f + !s.ok as u32));
        let to = if self.state != Health::Down && n >= DOWN_MIN_SAMPLES && failed == n {
            Health::Down
        } else if self.state == Health::Healthy
            && self.ev_failed >= DEGRADED_MIN_FAILURES
            && self.ev_failed as u64 * 1_000_000 >= LOSS_PPM * self.ev_sent as u64
        {
            Health::Degraded
        } else {
            return None;
        };
        Some(self.enter(to, now, false))
    }

    fn better(&mut self, now: u64) -> Option<Transition> {
        if now < self.since + self.hold_ms {
            return None;
        }
        let to = match self.state {
            Health::Down if self.consecutive_ok as usize >= UP_SUCCESSES => Health::Degraded,
            Health::Degraded
                if self.samples.len() >= RECOVERY_PROBES
                    && self
                        .samples
                        .iter()
                        .rev()
                        .take(RECOVERY_PROBES)
                        .all(|s| s.ok) =>
            {
                Health::Healthy
            }
            _ => return None,
        };
        Some(self.enter(to, now, true))
    }

    fn enter(&mut self, to: Health, now: u64, better: bool) -> Transition {
        let t = Transition {
            from: self.state,
            to,
            figures: self.figures(now),
        };
        self.state = to;
        self.since = now;
        if better {
            self.evidence_from = self.pushed;
            self.ev_sent = 0;
            self.ev_failed = 0;
        }
        t
    }

    /// Drops samples older than the 5-minute window.
    fn expire(&mut self, now: u64) {
        while self.samples.front().is_some_and(|s| s.t + WINDOW_MS <= now) {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        let number = self.pushed - self.samples.len() as u64;
        let Some(s) = self.samples.pop_front() else {
            return;
        };
        self.sent -= 1;
        self.failed -= !s.ok as u32;
        if number >= self.evidence_from {
            self.ev_sent -= 1;
            self.ev_failed -= !s.ok as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::*;

    const HOLD: u64 = 2_000;
    const IV: u64 = 100;

    fn m(start: Health) -> Machine {
        Machine::new(start, 0, HOLD, IV)
    }

    /// Records `n` results `ok` from `t`, one per interval; returns the time after them.
    fn run(m: &mut Machine, mut t: u64, n: usize, ok: bool) -> (u64, Vec<Transition>) {
        let mut changes = Vec::new();
        for _ in 0..n {
            changes.extend(m.record(t, ok, false).change);
            t += IV;
        }
        (t, changes)
    }

    #[test]
    fn one_failure_from_healthy_asks_for_two_more_at_once_and_only_once() {
        let mut m = m(Healthy);
        let s = m.record(10, false, false);
        assert_eq!(s.extra_probes, 2);
        assert_eq!(s.change, None, "one failure is not yet degraded");
        // A regular probe failing while the two are out asks for no more.
        assert_eq!(m.record(20, false, false).extra_probes, 0);
        // Successes ask for nothing.
        assert_eq!(m.record(30, true, false).extra_probes, 0);
    }

    #[test]
    fn a_failure_then_two_failed_extras_is_down_at_once_even_right_after_start() {
        let mut m = m(Healthy);
        assert_eq!(m.record(5, false, false).extra_probes, 2);
        let s = m.record(300, false, true);
        assert_eq!(s.change.map(|c| c.to), Some(Degraded), "2 failures of 2");
        let s = m.record(300, false, true);
        let c = s.change.unwrap();
        assert_eq!((c.from, c.to), (Degraded, Down));
        assert_eq!((c.figures.sent_1s, c.figures.failed_1s), (3, 3));
        assert_eq!(s.extra_probes, 0, "down asks for no extra probes");
        assert_eq!(m.since(), 300);
    }

    #[test]
    fn down_needs_three_samples_in_the_last_second_all_failed() {
        let mut m = m(Healthy);
        // Failures spread over more than a second are degraded, not down.
        m.record(0, false, false);
        m.record(1_000, false, true);
        m.record(2_000, false, true);
        assert_eq!(m.state(), Degraded);
        // A success among the last second's samples keeps it from down.
        let mut m = super::Machine::new(Degraded, 0, HOLD, IV);
        m.record(100, false, false);
        m.record(200, true, false);
        m.record(300, false, true);
        m.record(400, false, true);
        assert_eq!(m.state(), Degraded);
        m.record(1_250, false, false);
        assert_eq!(m.state(), Down, "the success at 200 left the window");
    }

    #[test]
    fn degraded_needs_two_failures_and_a_tenth_of_a_percent() {
        let mut m = m(Healthy);
        let (t, _) = run(&mut m, 0, 2_000, true);
        assert_eq!(m.record(t, false, false).change, None);
        // 2 failures of 2002 is 0.0999%: under 0.1%.
        let (t, _) = run(&mut m, t + IV, 0, true);
        assert_eq!(m.record(t + 10_000, false, false).change, None);
        let s = m.record(t + 10_100, false, true);
        let c = s.change.expect("3 failures of 2003 is 0.15%");
        assert_eq!((c.from, c.to), (Healthy, Degraded));
        assert_eq!(c.figures.failed_5m, 3);
    }

    #[test]
    fn down_goes_to_degraded_after_three_successes_once_held() {
        let mut m = m(Down);
        let (t, ch) = run(&mut m, 0, 5, true);
        assert!(ch.is_empty(), "held: down was entered at 0, hold {HOLD}");
        let (t, _) = run(&mut m, t, 20, false);
        let (t, ch) = run(&mut m, t, 2, true);
        assert!(ch.is_empty(), "2 successes are not 3");
        let (_, ch) = run(&mut m, t, 1, true);
        assert_eq!(ch.len(), 1);
        assert_eq!((ch[0].from, ch[0].to), (Down, Degraded));
        assert_eq!(ch[0].figures.consecutive_ok, 3);
    }

    #[test]
    fn degraded_goes_healthy_after_thirty_clean_probes_once_held() {
        let mut m = m(Degraded);
        let (t, ch) = run(&mut m, 0, 29, true);
        assert!(ch.is_empty());
        m.record(t, false, false);
        let (t, ch) = run(&mut m, t + IV, 29, true);
        assert!(ch.is_empty(), "a failure among the last 30");
        let (_, ch) = run(&mut m, t, 1, true);
        assert_eq!(ch.iter().map(|c| c.to).collect::<Vec<_>>(), [Healthy]);
    }

    #[test]
    fn the_hold_time_delays_a_better_state_and_tick_applies_it() {
        let mut m = Machine::new(Degraded, 0, 10_000, IV);
        let (t, ch) = run(&mut m, 0, 40, true);
        assert!(ch.is_empty());
        assert_eq!(m.tick(t), None);
        assert_eq!(m.tick(9_999), None);
        let c = m.tick(10_000).expect("held 10 s with 30 clean probes");
        assert_eq!((c.from, c.to), (Degraded, Healthy));
        assert_eq!(m.since(), 10_000);
    }

    #[test]
    fn worse_states_are_never_held() {
        let mut m = Machine::new(Healthy, 0, 1_000_000, IV);
        m.record(1, false, false);
        m.record(2, false, true);
        m.record(3, false, true);
        assert_eq!(m.state(), Down);
    }

    #[test]
    fn down_passes_through_degraded_on_the_way_back() {
        let mut m = m(Down);
        let (t, ch) = run(&mut m, HOLD, 10, true);
        let path: Vec<(Health, Health)> = ch.iter().map(|c| (c.from, c.to)).collect();
        assert_eq!(path, [(Down, Degraded)]);
        let degraded_at = m.since();
        assert_eq!(degraded_at, HOLD + 2 * IV, "the third success");
        let (_, ch) = run(&mut m, t, 100, true);
        assert_eq!(ch.iter().map(|c| c.to).collect::<Vec<_>>(), [Healthy]);
        // Held from 2200 to 4200, and the 30th probe since down came at 2000 + 29 * 100.
        assert_eq!(
            m.since(),
            4_900,
            "healthy once held and 30 probes are clean"
        );
    }

    #[test]
    fn flapping_stays_degraded_until_it_stops_for_the_hold_time() {
        let mut m = m(Healthy);
        let mut t = 0;
        let mut seen = Vec::new();
        // Every fifth probe lost for 20 s: never 3 failures within a second.
        for i in 0..200 {
            seen.extend(m.record(t, i % 5 != 4, false).change.map(|c| c.to));
            t += IV;
        }
        assert_eq!(seen, [Degraded], "one change, no flapping back and forth");
        let (t, ch) = run(&mut m, t, 29, true);
        assert!(ch.is_empty());
        let (_, ch) = run(&mut m, t, 1, true);
        assert_eq!(ch.iter().map(|c| c.to).collect::<Vec<_>>(), [Healthy]);
    }

    #[test]
    fn a_recovered_tunnel_is_not_thrown_back_by_failures_it_already_paid_for() {
        let mut m = m(Healthy);
        run(&mut m, 0, 3, false);
        assert_eq!(m.state(), Down);
        let (t, _) = run(&mut m, 300, 25, true);
        assert_eq!(m.state(), Degraded);
        let (t, _) = run(&mut m, t, 40, true);
        assert_eq!(m.state(), Healthy);
        // One new failure within 5 minutes of the old ones: not degraded (1 < 2).
        assert_eq!(m.record(t, false, false).change, None);
        assert_eq!(m.figures(t).failed_5m, 4, "the 5-minute figures keep them");
    }

    #[test]
    fn memory_is_bounded_by_the_rate() {
        assert_eq!(Machine::capacity(1_000), 664);
        assert_eq!(Machine::capacity(50), 12_064);
        assert_eq!(Machine::capacity(10), MAX_SAMPLES);
        let mut m = Machine::new(Healthy, 0, HOLD, 1_000);
        let (t, _) = run(&mut m, 0, 5_000, true);
        assert!(m.samples.len() <= 664);
        let f = m.figures(t);
        assert_eq!(f.sent_5m as usize, m.samples.len());
        // Samples older than 5 minutes leave the figures.
        let mut m = Machine::new(Healthy, 0, HOLD, 1_000);
        m.record(0, true, false);
        m.record(1, false, false);
        assert_eq!(m.figures(WINDOW_MS + 1).sent_5m, 0);
    }
}
