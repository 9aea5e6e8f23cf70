//! The health checker, run by the management thread every tick: it probes each tunnel at its
//! rate through the workers' inject rings, matches the answers the workers hand back, times
//! out the rest, feeds each tunnel's state machine, and says which tunnels should change
//! health. It never blocks and does bounded work per tick; time is passed in (TSC cycles), so
//! tests drive it with a fake clock and fake rings.
//!
//! Tunnels are kept by name: a reload keeps their state, figures and override, and their
//! index and generation are re-read from each new snapshot.
use super::probe::{self, ProbeSpec};
use super::state::{Figures, Machine};
use super::{Answer, CheckDirection, CheckType, Inject, WorkerRings, INJECT_MAX};
use crate::config::{Config, Health, HealthCheckConf, HealthChecksConf};
use crate::route::Snapshot;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Probes sent in one tick at most; the rest go out on the next ones.
pub const MAX_SENDS_PER_TICK: usize = 512;
/// Probes awaiting an answer at most; beyond, a probe is not sent (counted).
pub const MAX_OUTSTANDING: usize = 16_384;

/// Who decides a tunnel's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The checks.
    Auto,
    /// `anygate ctl set-health`, until `set-health T auto`.
    Manual(Health),
    /// Checks disabled: the config's `health` key.
    Config,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Auto => "auto",
            Source::Manual(_) => "manual",
            Source::Config => "config",
        }
    }
}

/// A health the running table should take.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub tunnel: String,
    pub index: u16,
    pub from: Health,
    pub to: Health,
    /// Why, for the log: the figures that caused it, or who decided.
    pub reason: String,
}

/// What operators see of one tunnel.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub source: Source,
    /// The checks' own verdict (what `auto` would apply).
    pub checks_say: Health,
    pub sent: u64,
    pub answered: u64,
    pub lost: u64,
    /// Probes not sent: an inject ring or the outstanding table was full.
    pub not_sent: u64,
    pub rtt_us: Option<u64>,
    /// Seconds in the health the table has.
    pub since_s: f64,
    pub figures: Figures,
    pub check: HealthCheckConf,
    pub interval_ms: u64,
}

impl View {
    /// The fields `show tunnels` and the stats give each tunnel besides `name` and `health`;
    /// these names are kept stable.
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::json;
        let c = &self.check;
        let v = json!({
            "health_source": self.source.name(),
            "checks_say": self.checks_say.name(),
            "probes_sent": self.sent,
            "probes_answered": self.answered,
            "probes_lost": self.lost,
            "probes_not_sent": self.not_sent,
            "rtt_us": self.rtt_us,
            "since": (self.since_s * 10.0).round() / 10.0,
            "loss_5m": self.figures.loss_5m(),
            "health_check": {
                "enabled": c.enabled, "type": c.kind, "direction": c.direction,
                "target": std::net::Ipv4Addr::from(c.target).to_string(),
                "rate": c.rate.name(), "interval_ms": self.interval_ms,
            },
        });
        match v {
            serde_json::Value::Object(m) => m,
            _ => Default::default(),
        }
    }
}

/// Answers that matched no outstanding probe, by kind (node-wide).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ignored {
    /// After the timeout, or a second answer to one probe, or a seq never sent.
    pub late_or_unknown: u64,
    /// A bidirectional check answered over the underlay, or a unidirectional one through a
    /// tunnel.
    pub wrong_path: u64,
}

struct Entry {
    id: u32,
    name: String,
    index: u16,
    check: HealthCheckConf,
    config_health: Health,
    /// Inner source and destination of its probes.
    src: u32,
    dst: u32,
    machine: Machine,
    next_due_ms: u64,
    /// Extra probes a failure asked for, not yet sent.
    extras_due: u8,
    manual: Option<Health>,
    /// The health the table has, and since when (ms).
    applied: Health,
    applied_since_ms: u64,
    sent: u64,
    answered: u64,
    lost: u64,
    not_sent: u64,
    rtt_us: Option<u64>,
    /// The last transition's figures, for the log line of the change it causes.
    last_reason: Option<String>,
}

impl Entry {
    fn source(&self) -> Source {
        match (self.manual, self.check.enabled) {
            (Some(h), _) => Source::Manual(h),
            (None, false) => Source::Config,
            (None, true) => Source::Auto,
        }
    }

    fn wanted(&self) -> Health {
        match self.source() {
            Source::Manual(h) => h,
            Source::Config => self.config_health,
            Source::Auto => self.machine.state(),
        }
    }
}

#[derive(Clone, Copy)]
struct Pending {
    entry: u32,
    sent_tsc: u64,
    deadline_ms: u64,
    extra: bool,
}

pub struct Checker {
    hz: u64,
    start_tsc: u64,
    timing: HealthChecksConf,
    node_id: u32,
    /// The snapshot generation the entries were last synced with.
    generation: u64,
    entries: Vec<Entry>,
    /// Entry id -> position in `entries`, rebuilt by `sync`.
    slots: HashMap<u32, usize>,
    next_id: u32,
    pending: HashMap<u32, Pending>,
    /// (deadline, seq) in send order; answered ones are skipped when they come up.
    deadlines: VecDeque<(u64, u32)>,
    next_seq: u32,
    next_ring: usize,
    /// Where the next tick's send pass starts, so a capped pass is fair.
    cursor: usize,
    pub ignored: Ignored,
}

impl Checker {
    /// `hz`: TSC cycles per second; `now_tsc`: the clock at start.
    pub fn new(hz: u64, now_tsc: u64) -> Checker {
        Checker {
            hz: hz.max(1),
            start_tsc: now_tsc,
            timing: HealthChecksConf::default(),
            node_id: 0,
            generation: u64::MAX,
            entries: Vec::new(),
            slots: HashMap::new(),
            next_id: 0,
            pending: HashMap::new(),
            deadlines: VecDeque::new(),
            next_seq: 1,
            next_ring: 0,
            cursor: 0,
            ignored: Ignored::default(),
        }
    }

    fn ms(&self, tsc: u64) -> u64 {
        (tsc.saturating_sub(self.start_tsc) as u128 * 1000 / self.hz as u128) as u64
    }

    /// Re-reads the tunnels from `cfg` and `snap` when the snapshot changed: by name, so
    /// state survives reloads; new tunnels start in the health the table gives them.
    pub fn sync(&mut self, cfg: &Config, snap: &Snapshot, now_tsc: u64) {
        if snap.generation == self.generation && cfg.health_checks == self.timing {
            return;
        }
        let now = self.ms(now_tsc);
        self.generation = snap.generation;
        self.node_id = cfg.node.id;
        self.timing = cfg.health_checks;
        let mut old: HashMap<String, Entry> = self
            .entries
            .drain(..)
            .map(|e| (e.name.clone(), e))
            .collect();
        for (i, t) in cfg.tunnels.iter().enumerate() {
            if snap.tunnels.get(i).map(|s| s.name.as_str()) != Some(t.name.as_str()) {
                continue;
            }
            let health = snap.health.get(i).copied().unwrap_or(t.health);
            let interval = self.timing.interval_ms(t.check.rate);
            let (src, dst) = addresses(t.check, t.local_addr, t.edge_endpoint);
            let e = match old.remove(&t.name) {
                Some(mut e) => {
                    if t.check.enabled && !e.check.enabled {
                        // Checks back on: they start from the health the tunnel has.
                        e.machine.reset(health, now, interval);
                    }
                    e.machine.retime(self.timing.hold_ms, interval);
                    if t.check.rate != e.check.rate {
                        e.next_due_ms = now + spread(&t.name, interval);
                    }
                    e.index = i as u16;
                    e.check = t.check;
                    e.config_health = t.health;
                    e.src = src;
                    e.dst = dst;
                    e
                }
                None => {
                    let id = self.next_id;
                    self.next_id = self.next_id.wrapping_add(1);
                    Entry {
                        id,
                        name: t.name.clone(),
                        index: i as u16,
                        check: t.check,
                        config_health: t.health,
                        src,
                        dst,
                        machine: Machine::new(health, now, self.timing.hold_ms, interval),
                        next_due_ms: now + spread(&t.name, interval),
                        extras_due: 0,
                        manual: None,
                        applied: health,
                        applied_since_ms: now,
                        sent: 0,
                        answered: 0,
                        lost: 0,
                        not_sent: 0,
                        rtt_us: None,
                        last_reason: None,
                    }
                }
            };
            self.entries.push(e);
        }
        self.slots = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id, i))
            .collect();
        // Probes of tunnels gone are forgotten; their answers will count as unknown.
        let slots = &self.slots;
        self.pending.retain(|_, p| slots.contains_key(&p.entry));
    }

    /// Drains the answers, times out the probes past their deadline, advances each state
    /// machine, and returns the tunnels whose health the table should change (at most one
    /// change per tunnel: several transitions in one tick are merged).
    pub fn tick(
        &mut self,
        now_tsc: u64,
        rings: &[Arc<WorkerRings>],
        snap: &Snapshot,
    ) -> Vec<Change> {
        let now = self.ms(now_tsc);
        // Bounded: each ring holds RING_SIZE at most, and only what is there now is taken.
        for r in rings {
            for _ in 0..r.answers.len() {
                let Some(a) = r.answers.pop() else { break };
                self.answer(a, now);
            }
        }
        while let Some(&(deadline, seq)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            let Some(p) = self.pending.remove(&seq) else {
                continue; // answered
            };
            if let Some(&i) = self.slots.get(&p.entry) {
                let e = &mut self.entries[i];
                e.lost += 1;
                let step = e.machine.record(now, false, p.extra);
                note(e, step);
            }
        }
        let mut changes = Vec::new();
        for e in &mut self.entries {
            if let Some(t) = e.machine.tick(now) {
                e.last_reason = Some(t.figures.to_string());
            }
            let current = snap.health.get(e.index as usize).copied();
            if let Some(h) = current.filter(|h| *h != e.applied) {
                e.applied = h;
                e.applied_since_ms = now;
            }
            let want = e.wanted();
            if current.is_some_and(|h| h != want) {
                let reason = match e.source() {
                    Source::Auto => e
                        .last_reason
                        .take()
                        .unwrap_or_else(|| e.machine.figures(now).to_string()),
                    Source::Manual(_) => "manual override (anygate ctl set-health)".into(),
                    Source::Config => "checks disabled: the config's health".into(),
                };
                changes.push(Change {
                    tunnel: e.name.clone(),
                    index: e.index,
                    from: e.applied,
                    to: want,
                    reason,
                });
            }
        }
        changes
    }

    /// Sends the probes due (and the extra ones failures asked for), at most
    /// [`MAX_SENDS_PER_TICK`], tagged with `snap`'s generation: call it after publishing
    /// this tick's changes, once the workers have taken that generation.
    pub fn send(&mut self, now_tsc: u64, rings: &[Arc<WorkerRings>], snap: &Snapshot) {
        let now = self.ms(now_tsc);
        if rings.is_empty() || self.entries.is_empty() {
            return;
        }
        let n = self.entries.len();
        let mut sent = 0;
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let e = &self.entries[i];
            if !e.check.enabled {
                continue;
            }
            let interval = self.timing.interval_ms(e.check.rate);
            let regular = now >= e.next_due_ms;
            let extras = e.extras_due;
            if !regular && extras == 0 {
                continue;
            }
            if sent + extras as usize + regular as usize > MAX_SENDS_PER_TICK {
                self.cursor = i;
                return;
            }
            if regular {
                let e = &mut self.entries[i];
                // Late by more than an interval (a stall): do not send the missed ones.
                e.next_due_ms = (e.next_due_ms + interval).max(now + 1);
                self.probe(i, now_tsc, now, snap.generation, rings, false);
                sent += 1;
            }
            for _ in 0..extras {
                self.probe(i, now_tsc, now, snap.generation, rings, true);
                sent += 1;
            }
            self.entries[i].extras_due = 0;
        }
        self.cursor = 0;
    }

    fn probe(
        &mut self,
        i: usize,
        now_tsc: u64,
        now: u64,
        generation: u64,
        rings: &[Arc<WorkerRings>],
        extra: bool,
    ) {
        let seq = self.fresh_seq();
        let e = &mut self.entries[i];
        let mut item = Inject {
            tunnel: e.index,
            generation,
            len: 0,
            bytes: [0; INJECT_MAX],
        };
        let spec = ProbeSpec {
            kind: e.check.kind,
            src: e.src,
            dst: e.dst,
            seq,
            node_id: self.node_id,
        };
        let len = probe::build(&spec, &mut item.bytes);
        item.len = len as u16;
        let ring = &rings[self.next_ring % rings.len()];
        self.next_ring = self.next_ring.wrapping_add(1);
        if len == 0 || self.pending.len() >= MAX_OUTSTANDING || ring.inject.push(item).is_err() {
            e.not_sent += 1;
            if extra {
                e.machine.extras_not_sent(1);
            }
            return;
        }
        e.sent += 1;
        let deadline_ms = now + self.timing.timeout_ms;
        self.pending.insert(
            seq,
            Pending {
                entry: e.id,
                sent_tsc: now_tsc,
                deadline_ms,
                extra,
            },
        );
        self.deadlines.push_back((deadline_ms, seq));
    }

    /// A sequence number no outstanding probe has (0 is never used).
    fn fresh_seq(&mut self) -> u32 {
        loop {
            let s = self.next_seq;
            self.next_seq = self.next_seq.wrapping_add(1).max(1);
            if !self.pending.contains_key(&s) {
                return s;
            }
        }
    }

    fn answer(&mut self, a: Answer, now: u64) {
        let Some(p) = self.pending.get(&a.seq).copied() else {
            self.ignored.late_or_unknown += 1;
            return;
        };
        let Some(&i) = self.slots.get(&p.entry) else {
            self.pending.remove(&a.seq);
            self.ignored.late_or_unknown += 1;
            return;
        };
        let e = &mut self.entries[i];
        let inside = a.via_tunnel.is_some();
        if inside != (e.check.direction == CheckDirection::Bidirectional) {
            self.ignored.wrong_path += 1;
            return;
        }
        if now > p.deadline_ms {
            // Timed out already, its deadline not yet processed: it is lost, not answered.
            self.ignored.late_or_unknown += 1;
            return;
        }
        let rtt = a.tsc.saturating_sub(p.sent_tsc) as u128 * 1_000_000 / self.hz as u128;
        e.rtt_us = Some(rtt as u64);
        e.answered += 1;
        let extra = p.extra;
        self.pending.remove(&a.seq);
        let step = e.machine.record(now, true, extra);
        note(e, step);
    }

    /// Sets (`Some`) or hands back to the checks (`None`) a tunnel's health. Returns the
    /// health it should now have, or None when there is no such tunnel.
    pub fn set_manual(&mut self, name: &str, h: Option<Health>) -> Option<Health> {
        let e = self.entries.iter_mut().find(|e| e.name == name)?;
        e.manual = h;
        Some(e.wanted())
    }

    pub fn view(&self, name: &str, now_tsc: u64) -> Option<View> {
        let now = self.ms(now_tsc);
        let e = self.entries.iter().find(|e| e.name == name)?;
        Some(View {
            source: e.source(),
            checks_say: e.machine.state(),
            sent: e.sent,
            answered: e.answered,
            lost: e.lost,
            not_sent: e.not_sent,
            rtt_us: e.rtt_us,
            since_s: now.saturating_sub(e.applied_since_ms) as f64 / 1000.0,
            figures: e.machine.figures(now),
            check: e.check,
            interval_ms: self.timing.interval_ms(e.check.rate),
        })
    }

    /// Probes awaiting an answer.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }
}

fn note(e: &mut Entry, step: super::state::Step) {
    e.extras_due = e.extras_due.saturating_add(step.extra_probes);
    if let Some(t) = step.change {
        e.last_reason = Some(t.figures.to_string());
    }
}

/// Inner source and destination of a tunnel's probes.
/// - reply, bidirectional: from the target (the customer side) to our side; the customer
///   router routes it back into the tunnel;
/// - request, bidirectional: from our side to the target, which answers through the tunnel;
/// - reply, unidirectional: from the target to our anycast endpoint, which the customer
///   routes back over the Internet;
/// - request, unidirectional: from our anycast endpoint to the target, answered over the
///   Internet.
pub fn addresses(c: HealthCheckConf, our_side: u32, edge_endpoint: u32) -> (u32, u32) {
    match (c.kind, c.direction) {
        (CheckType::Reply, CheckDirection::Bidirectional) => (c.target, our_side),
        (CheckType::Request, CheckDirection::Bidirectional) => (our_side, c.target),
        (CheckType::Reply, CheckDirection::Unidirectional) => (c.target, edge_endpoint),
        (CheckType::Request, CheckDirection::Unidirectional) => (edge_endpoint, c.target),
    }
}

/// A tunnel's first probe, spread over its interval by its name, so that 512 tunnels do not
/// all fire in the same tick.
fn spread(name: &str, interval_ms: u64) -> u64 {
    let h = name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    h as u64 % interval_ms.max(1)
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
