//! The checker under a fake clock (TSC at 1 GHz: cycles are nanoseconds) with fake rings: the
//! test plays the workers, taking what the checker injects and answering it.
use super::*;
use crate::config::{parse, Host};
use crate::datapath::SharedCounters;
use crate::route::Previous;
use crate::wire::MacAddr;
use Health::*;

const HZ: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;

fn cfg_text(tunnels: &[(&str, &str)], timing: &str) -> String {
    let mut s = String::from(
        r#"
[[ports]]
name = "wan0"
device = "net_null0"
mac = "02:00:00:00:00:01"
address = "192.0.2.1/24"

[[workers]]
core = 1
rx = [{ port = "wan0" }]

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[node]
anycast_addresses = ["203.0.113.10"]
id = 77
"#,
    );
    s += &format!("\n[health_checks]\n{timing}\n");
    for (k, (name, extra)) in tunnels.iter().enumerate() {
        s += &format!(
            "\n[[tunnels]]\nname = \"{name}\"\ntype = \"gre\"\ncustomer_endpoint = \"198.51.100.{}\"\n\
             edge_endpoint = \"203.0.113.10\"\ninterface_address = \"10.100.0.{}/31\"\n{extra}\n",
            k + 1,
            2 * k
        );
    }
    s
}

/// 100 ms probes at every rate, a 200 ms timeout, a 1 s hold.
const FAST: &str = "hold_time = 1\nprobe_timeout_ms = 200\ninterval_low_ms = 100\ninterval_mid_ms = 100\ninterval_high_ms = 100";

struct Rig {
    cfg: Config,
    snap: Snapshot,
    rings: Vec<Arc<WorkerRings>>,
    ck: Checker,
    now: u64,
    /// Every change applied, in order.
    log: Vec<Change>,
    shared: SharedCounters,
}

impl Rig {
    fn new(tunnels: &[(&str, &str)]) -> Rig {
        Rig::with(tunnels, FAST)
    }

    fn with(tunnels: &[(&str, &str)], timing: &str) -> Rig {
        let cfg = parse(&cfg_text(tunnels, timing), &Host { cores: vec![0, 1] }).unwrap();
        let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
        let snap = Snapshot::build(&cfg, &macs, 1, None).unwrap();
        let now = 5 * HZ;
        Rig {
            cfg,
            snap,
            rings: (0..2).map(|_| Arc::new(WorkerRings::new())).collect(),
            ck: Checker::new(HZ, now),
            now,
            log: Vec::new(),
            shared: SharedCounters::new(1),
        }
    }

    /// What the management loop does each tick: sync, tick, publish the changes, send.
    fn step(&mut self, ms: u64) -> Vec<Change> {
        self.now += ms * MS;
        self.ck.sync(&self.cfg, &self.snap, self.now);
        let changes = self.ck.tick(self.now, &self.rings, &self.snap);
        for c in &changes {
            assert_eq!(self.snap.health[c.index as usize], c.from);
            self.snap = self
                .snap
                .with_health(c.index, c.to, self.snap.generation + 1)
                .unwrap();
        }
        self.ck.sync(&self.cfg, &self.snap, self.now);
        self.ck.send(self.now, &self.rings, &self.snap);
        self.log.extend(changes.clone());
        changes
    }

    /// The workers take every probe injected: (tunnel index, generation) of each.
    fn take(&mut self) -> Vec<(u16, u64)> {
        let mut v = Vec::new();
        for r in &self.rings {
            while let Some(i) = r.inject.pop() {
                v.push((i.tunnel, i.generation));
            }
        }
        v
    }

    /// Every outstanding probe of `name` answered, `rtt_ms` after it was sent, through the
    /// tunnel.
    fn answer(&mut self, name: &str, rtt_ms: u64) -> Vec<u32> {
        let index = self
            .ck
            .entries
            .iter()
            .find(|e| e.name == name)
            .unwrap()
            .index;
        let mine: Vec<(u32, u64)> = self
            .ck
            .pending
            .iter()
            .filter(|(_, p)| {
                self.ck
                    .entries
                    .iter()
                    .any(|e| e.id == p.entry && e.name == name)
            })
            .map(|(s, p)| (*s, p.sent_tsc))
            .collect();
        for (k, (seq, sent)) in mine.iter().enumerate() {
            let a = Answer {
                seq: *seq,
                via_tunnel: Some(index),
                tsc: sent + rtt_ms * MS,
            };
            self.rings[k % 2].answers.push(a).unwrap();
        }
        mine.iter().map(|m| m.0).collect()
    }

    fn view(&self, name: &str) -> View {
        self.ck.view(name, self.now).unwrap()
    }

    fn health(&self, name: &str) -> Health {
        let i = self
            .snap
            .tunnels
            .iter()
            .position(|t| t.name == name)
            .unwrap();
        self.snap.health[i]
    }
}

#[test]
fn a_probe_is_sent_answered_and_timed() {
    let mut r = Rig::new(&[("T1", ""), ("T2", "")]);
    let mut injected = Vec::new();
    for _ in 0..10 {
        r.step(10);
        injected.extend(r.take());
    }
    // One probe per tunnel within its first interval, for this generation, to each index.
    injected.sort();
    assert_eq!(injected, [(0, 1), (1, 1)]);
    let seqs = r.answer("T1", 3);
    assert_eq!(seqs.len(), 1);
    r.step(10);
    let v = r.view("T1");
    assert_eq!((v.sent, v.answered, v.lost), (1, 1, 0));
    assert_eq!(v.rtt_us, Some(3_000));
    assert_eq!(v.source, Source::Auto);
    // A second answer to the same probe, and one to a probe never sent, are ignored.
    r.rings[0]
        .answers
        .push(Answer {
            seq: seqs[0],
            via_tunnel: Some(0),
            tsc: r.now,
        })
        .unwrap();
    r.rings[1]
        .answers
        .push(Answer {
            seq: 999_999,
            via_tunnel: Some(0),
            tsc: r.now,
        })
        .unwrap();
    r.step(10);
    assert_eq!(r.ck.ignored.late_or_unknown, 2);
    assert_eq!(r.view("T1").answered, 1);
}

#[test]
fn a_timeout_sends_two_more_at_once_and_the_tunnel_goes_down() {
    // Probes every 500 ms: only the first probe and the 2 it asks for fail in the window.
    let mut r = Rig::with(
        &[("T1", "")],
        "hold_time = 1\nprobe_timeout_ms = 200\ninterval_mid_ms = 500\ninterval_high_ms = 500",
    );
    let mut t = 0;
    let mut burst_at = None;
    let mut down_at = None;
    while t < 2_000 && down_at.is_none() {
        let changes = r.step(10);
        t += 10;
        let sent = r.take().len();
        if r.view("T1").lost == 1 && burst_at.is_none() {
            let extras = r.ck.pending.values().filter(|p| p.extra).count();
            assert_eq!(
                extras, 2,
                "the 2 extra probes go out in the tick the first timed out"
            );
            assert!(sent >= 2, "{sent}");
            burst_at = Some(t);
        }
        if let Some(c) = changes.first() {
            assert_eq!((c.from, c.to), (Healthy, Down), "{c:?}");
            assert!(
                c.reason.starts_with("3/3 probes failed in the last second"),
                "{}",
                c.reason
            );
            down_at = Some(t);
        }
    }
    let (burst, down) = (burst_at.unwrap(), down_at.unwrap());
    // First probe within 500 ms, lost 200 ms later; the two extras 200 ms after that.
    assert!(burst <= 700, "{burst}");
    assert_eq!(down, burst + 200, "down as the extras time out");
    assert_eq!(r.health("T1"), Down);
    assert_eq!(
        r.log.len(),
        1,
        "healthy -> degraded -> down in one tick is one change"
    );
}

/// Runs `ms` of ticks, every probe answered (or none), returning the changes.
fn run(r: &mut Rig, ms: u64, answer: bool) -> Vec<(Health, Health, u64)> {
    let mut out = Vec::new();
    for k in 0..ms / 10 {
        for c in r.step(10) {
            out.push((c.from, c.to, k * 10));
        }
        r.take();
        if answer {
            r.answer("T1", 1);
        }
    }
    out
}

#[test]
fn at_a_fast_rate_a_second_lost_probe_degrades_before_the_extras_bring_it_down() {
    let mut r = Rig::new(&[("T1", "")]);
    let ch = run(&mut r, 1_000, false);
    let path: Vec<(Health, Health)> = ch.iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(path, [(Healthy, Degraded), (Degraded, Down)]);
    // First probe within 100 ms, lost at 300 at the latest, its extras at 500.
    assert!(ch[1].2 <= 500, "{ch:?}");
}

#[test]
fn recovery_goes_through_degraded_after_the_hold_time() {
    let mut r = Rig::new(&[("T1", "")]);
    run(&mut r, 1_000, false);
    assert_eq!(r.health("T1"), Down);
    let down_since = r.view("T1").since_s;
    let ch = run(&mut r, 10_000, true);
    let path: Vec<(Health, Health)> = ch.iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(path, [(Down, Degraded), (Degraded, Healthy)]);
    // Down was entered at most 1 s before answers resumed: degraded once held 1 s and 3 answered.
    assert!(ch[0].2 <= 1_000, "{ch:?} (down for {down_since} s)");
    // Healthy: held 1 s, and 30 clean probes at 100 ms (3 s).
    assert!(ch[1].2 - ch[0].2 >= 1_000, "{ch:?}");
    assert!(ch[1].2 <= 4_500, "{ch:?}");
    assert_eq!(r.health("T1"), Healthy);
    let v = r.view("T1");
    assert!(v.lost >= 3 && v.answered >= 30, "{v:?}");
    assert!(v.figures.loss_5m() > 0.0);
}

#[test]
fn a_manual_health_is_left_alone_and_auto_hands_it_back() {
    let mut r = Rig::new(&[("T1", ""), ("T2", "")]);
    assert_eq!(r.ck.set_manual("T9", Some(Down)), None);
    r.step(10);
    assert_eq!(r.ck.set_manual("T1", Some(Degraded)), Some(Degraded));
    // The management loop publishes it (as `set-health` does); here the next tick does.
    let ch = r.step(10);
    assert_eq!(ch.len(), 1);
    assert_eq!((ch[0].from, ch[0].to), (Healthy, Degraded));
    assert!(ch[0].reason.contains("manual"), "{:?}", ch[0]);
    run(&mut r, 2_000, false);
    assert_eq!(r.health("T1"), Degraded, "the checks do not touch it");
    let v = r.view("T1");
    assert_eq!(v.source, Source::Manual(Degraded));
    assert_eq!(v.checks_say, Down, "but they keep probing and judging");
    assert!(v.sent >= 20 && v.lost >= 15, "{v:?}");
    assert_eq!(r.health("T2"), Down, "T2 is the checks' own");
    assert_eq!(r.ck.set_manual("T1", None), Some(Down));
    let ch = r.step(10);
    assert_eq!(ch.len(), 1);
    assert_eq!((ch[0].from, ch[0].to), (Degraded, Down));
    assert_eq!(r.view("T1").source, Source::Auto);
}

#[test]
fn a_tunnel_with_checks_disabled_follows_its_config() {
    let mut r = Rig::new(&[(
        "T1",
        "health = \"degraded\"\nhealth_check = { enabled = false }",
    )]);
    run(&mut r, 2_000, false);
    let v = r.view("T1");
    assert_eq!((v.source, v.sent), (Source::Config, 0));
    assert_eq!(r.health("T1"), Degraded);
    // A manual override, then `auto`, comes back to the config's health.
    r.ck.set_manual("T1", Some(Healthy));
    r.step(10);
    assert_eq!(r.health("T1"), Healthy);
    r.ck.set_manual("T1", None);
    let ch = r.step(10);
    assert_eq!(ch[0].reason, "checks disabled: the config's health");
    assert_eq!(r.health("T1"), Degraded);
}

#[test]
fn a_reload_keeps_state_by_name_and_takes_the_new_index() {
    let mut r = Rig::new(&[("T1", "")]);
    run(&mut r, 1_000, false);
    r.ck.set_manual("T1", Some(Degraded));
    r.step(10);
    let before = r.view("T1");
    assert_eq!(before.checks_say, Down);
    // T0 is inserted before T1: T1 is now index 1.
    let text = cfg_text(&[("T0", ""), ("T1", "")], FAST).replace(
        "interface_address = \"10.100.0.0/31\"\n\n\n[[tunnels]]\nname = \"T1\"",
        "interface_address = \"10.100.0.8/31\"\n\n\n[[tunnels]]\nname = \"T1\"",
    );
    let cfg = parse(&text, &Host { cores: vec![0, 1] }).unwrap();
    let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
    let raw = r.shared.total();
    let prev = Previous {
        snapshot: &r.snap,
        acked: r.snap.generation,
        counters: &raw,
    };
    r.snap = Snapshot::build(&cfg, &macs, r.snap.generation + 1, Some(prev)).unwrap();
    r.cfg = cfg;
    let g = r.snap.generation;
    r.step(10);
    let after = r.view("T1");
    assert_eq!(
        after.source,
        Source::Manual(Degraded),
        "the override survives"
    );
    assert_eq!(after.checks_say, Down, "so does the state");
    assert!(after.sent >= before.sent && after.lost >= before.lost);
    assert_eq!(r.health("T1"), Degraded);
    let mut sent = Vec::new();
    for _ in 0..20 {
        r.step(10);
        sent.extend(r.take());
    }
    assert!(
        sent.contains(&(1, g)),
        "T1's probes go to its new index: {sent:?}"
    );
    assert!(sent.contains(&(0, g)), "T0 is probed too: {sent:?}");
}

#[test]
fn a_wrong_path_answer_is_ignored() {
    let mut r = Rig::new(&[("T1", "")]);
    for _ in 0..10 {
        r.step(10);
    }
    let (&seq, _) = r.ck.pending.iter().next().unwrap();
    r.rings[0]
        .answers
        .push(Answer {
            seq,
            via_tunnel: None,
            tsc: r.now,
        })
        .unwrap();
    r.step(10);
    assert_eq!(r.ck.ignored.wrong_path, 1);
    assert_eq!(r.view("T1").answered, 0);
}

#[test]
fn a_full_ring_loses_the_probe_and_counts_it() {
    let mut r = Rig::new(&[("T1", "")]);
    for ring in &r.rings {
        while ring
            .inject
            .push(Inject {
                tunnel: 0,
                generation: 0,
                len: 0,
                bytes: [0; INJECT_MAX],
            })
            .is_ok()
        {}
    }
    for _ in 0..10 {
        r.step(10);
    }
    let v = r.view("T1");
    assert_eq!((v.sent, v.not_sent), (0, 1));
    assert_eq!(r.ck.outstanding(), 0);
}

#[test]
fn addresses_follow_type_and_direction() {
    let c = |kind, direction| HealthCheckConf {
        enabled: true,
        kind,
        direction,
        target: 1,
        rate: crate::config::Rate::Mid,
    };
    use CheckDirection::*;
    use CheckType::*;
    assert_eq!(addresses(c(Reply, Bidirectional), 2, 3), (1, 2));
    assert_eq!(addresses(c(Request, Bidirectional), 2, 3), (2, 1));
    assert_eq!(addresses(c(Reply, Unidirectional), 2, 3), (1, 3));
    assert_eq!(addresses(c(Request, Unidirectional), 2, 3), (3, 1));
}

#[test]
fn first_probes_of_512_tunnels_are_spread_over_the_interval() {
    let mut per_tick = [0u32; 100];
    for i in 0..512 {
        per_tick[(spread(&format!("tun{i}"), 1_000) / 10) as usize] += 1;
    }
    let max = per_tick.iter().max().unwrap();
    assert!(*max <= 16, "{max} tunnels in one 10 ms tick");
}

/// Review 12 reproduction (fails today): a bidirectional check's answer is taken from any
/// tunnel, not only the probed one. Another customer, who sees the node id and the
/// sequence numbers (one counter for all tunnels) in its own probes, can answer a dead
/// tunnel's probes through its own tunnel and keep it healthy (traffic black-holed).
#[test]
#[ignore = "review 12 reproduction: answers are not tied to the probed tunnel"]
fn review12_an_answer_through_another_tunnel_is_not_taken() {
    let mut r = Rig::new(&[("T1", ""), ("T2", "")]);
    for _ in 0..10 {
        r.step(10);
    }
    let t1 = r.ck.entries.iter().find(|e| e.name == "T1").unwrap().id;
    let t2_index = r.ck.entries.iter().find(|e| e.name == "T2").unwrap().index;
    let (&seq, _) = r.ck.pending.iter().find(|(_, p)| p.entry == t1).unwrap();
    r.rings[0]
        .answers
        .push(Answer {
            seq,
            via_tunnel: Some(t2_index),
            tsc: r.now,
        })
        .unwrap();
    r.step(10);
    assert_eq!(r.view("T1").answered, 0, "T1's probe answered through T2");
}

/// Review 12 reproduction (fails today): an answer the worker received within the timeout
/// is judged by when the management thread reads it. A management stall longer than
/// `probe_timeout_ms` (a reload of a large table took 15 s) turns answered probes into
/// losses: two such stalls within 5 minutes degrade every tunnel (+500000) at once.
#[test]
#[ignore = "review 12 reproduction: lateness judged at read time, not receipt"]
fn review12_an_answer_received_in_time_but_read_late_counts_as_answered() {
    let mut r = Rig::new(&[("T1", "")]);
    for _ in 0..10 {
        r.step(10);
    }
    assert_eq!(
        r.answer("T1", 3).len(),
        1,
        "received 3 ms after it was sent"
    );
    // The management thread comes back 300 ms later (timeout 200 ms).
    r.step(300);
    let v = r.view("T1");
    assert_eq!((v.answered, v.lost), (1, 0));
}
