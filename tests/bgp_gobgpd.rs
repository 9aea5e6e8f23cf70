//! The gobgpd adapter against real daemons: gobgpd as ours, BIRD 2 as two customers, in
//! network namespaces (tests/common/bgp_lab.rs). One scenario, in order: a wrong MD5 password
//! gives no session and no path; the right one brings the session up and BIRD's paths arrive
//! with their communities and AS path; our announcements reach both customers, each peer's
//! extras only that peer, one customer's paths never the other; a withdrawal arrives as a
//! delta; killing BIRD keeps its paths stale for its restart time, then removes them; killing
//! gobgpd gives Disconnected, restarting it Connected and the paths again; a reload and a new
//! adapter leave the sessions alone; an events channel left full loses nothing for good; a
//! stop withdraws our prefixes from the customer and leaves gobgpd without peers; a new ASN
//! restarts gobgpd's instance.
#[path = "common/bgp_lab.rs"]
mod bgp_lab;

use anygate::bgp::gobgp::{spawn, STOP_WITHIN};
use anygate::bgp::{AsSegment, Desired, Event, PeerSpec, PeerStatus, ReceivedPath, SessionState};
use anygate::lpm::Prefix;
use bgp_lab::{customer, ours, Bird, BirdRoute, Lab, API};
use crossbeam::channel::{bounded, Receiver, RecvTimeoutError};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const OUR_ASN: u32 = 65000;
const A_ASN: u32 = 65010;
const B_ASN: u32 = 65020;

fn p(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix::new(a.parse::<Ipv4Addr>().unwrap().into(), l.parse().unwrap()).unwrap()
}

/// What the management thread would know, rebuilt from the events.
struct Model {
    rx: Receiver<Event>,
    paths: BTreeMap<Ipv4Addr, BTreeMap<Prefix, ReceivedPath>>,
    peers: Vec<PeerStatus>,
    connected: bool,
    disconnects: usize,
    /// `Update`s that withdrew something.
    withdrawals: usize,
    log: Vec<String>,
}

impl Model {
    fn new(rx: Receiver<Event>) -> Model {
        Model {
            rx,
            paths: BTreeMap::new(),
            peers: vec![],
            connected: false,
            disconnects: 0,
            withdrawals: 0,
            log: vec![],
        }
    }

    fn apply(&mut self, e: Event) {
        let line = format!("{e:?}");
        self.log.push(line.chars().take(400).collect());
        match e {
            Event::Connected => {
                // Peer states from before are not evidence of anything now.
                self.connected = true;
                self.peers.clear();
            }
            Event::Disconnected(_) => {
                self.connected = false;
                self.disconnects += 1;
            }
            Event::PeerPaths { peer, paths } => {
                self.paths
                    .insert(peer, paths.into_iter().map(|r| (r.prefix, r)).collect());
            }
            Event::Update {
                peer,
                announced,
                withdrawn,
            } => {
                let t = self.paths.entry(peer).or_default();
                for r in announced {
                    t.insert(r.prefix, r);
                }
                self.withdrawals += usize::from(!withdrawn.is_empty());
                for w in withdrawn {
                    t.remove(&w);
                }
            }
            Event::Peers(p) => self.peers = p,
        }
    }

    /// Applies events until `cond` holds; panics with the recent events after `secs`.
    fn wait(&mut self, lab: &Lab, what: &str, secs: u64, cond: impl Fn(&Model) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(e) => self.apply(e),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{what}: not within {secs} s\nlast events:\n{}\ngobgpd:\n{}\nbird 0:\n{}",
                    self.log[self.log.len().saturating_sub(15)..].join("\n"),
                    tail(&lab.log("gobgpd.log")),
                    tail(&lab.log("bird0.log")),
                ),
                Err(RecvTimeoutError::Disconnected) => panic!("{what}: the adapter thread died"),
            }
        }
    }

    /// Applies whatever arrives for `d`.
    fn drain(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while let Ok(e) = self
            .rx
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            self.apply(e);
        }
    }

    fn peer(&self, i: usize) -> Option<&PeerStatus> {
        self.peers.iter().find(|p| p.address == customer(i))
    }

    fn up(&self, i: usize) -> bool {
        self.peer(i)
            .is_some_and(|p| p.state == SessionState::Established)
    }

    fn path(&self, i: usize, s: &str) -> Option<&ReceivedPath> {
        self.paths.get(&customer(i))?.get(&p(s))
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Customer A (0): MD5, two prepends and communities on 10.200/24, a plain 10.201/24.
fn bird_a(password: &str, with_second: bool) -> Bird {
    let mut routes = vec![BirdRoute {
        prefix: "10.200.0.0/24".into(),
        communities: vec![(13335, 60010), (65010, 7)],
        prepends: 2,
    }];
    if with_second {
        routes.push(BirdRoute {
            prefix: "10.201.0.0/24".into(),
            communities: vec![],
            prepends: 0,
        });
    }
    Bird {
        asn: A_ASN,
        peer_asn: OUR_ASN,
        password: Some(password.into()),
        restart_time: 4,
        hold_time: 90,
        routes,
    }
}

/// Customer B (1): no password, 10.210/24.
fn bird_b() -> Bird {
    Bird {
        asn: B_ASN,
        peer_asn: OUR_ASN,
        password: None,
        restart_time: 120,
        hold_time: 240,
        routes: vec![BirdRoute {
            prefix: "10.210.0.0/24".into(),
            communities: vec![(13335, 60050)],
            prepends: 0,
        }],
    }
}

fn desired() -> Desired {
    let a = PeerSpec {
        name: "customer-a".into(),
        address: customer(0),
        asn: A_ASN,
        local_address: ours(0),
        md5_password: Some("right-secret".into()),
        hold_time: Duration::from_secs(30),
        extra_announce: vec![p("10.97.0.0/24")],
        route_reflector: false,
    };
    let b = PeerSpec {
        name: "customer-b".into(),
        address: customer(1),
        asn: B_ASN,
        local_address: ours(1),
        md5_password: None,
        hold_time: Duration::from_secs(240),
        extra_announce: vec![p("10.98.0.0/24")],
        route_reflector: false,
    };
    Desired {
        api: API.parse().unwrap(),
        asn: OUR_ASN,
        router_id: ours(0),
        graceful_restart: Duration::from_secs(120),
        peers: vec![a, b],
        announce: vec![p("10.99.0.0/24")],
    }
}

/// Customer `i`'s BIRD's route for `prefix`, as `birdc show route all` prints it ("" when
/// it has none).
fn bird_route(lab: &Lab, i: usize, prefix: &str) -> String {
    let out = lab.birdc(i, &format!("show route for {prefix} all"));
    if out.contains(prefix) {
        out
    } else {
        String::new()
    }
}

/// Waits until customer `i`'s BIRD has (`want`) or lacks each prefix.
fn bird_sees(lab: &Lab, i: usize, want: &[(&str, bool)]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !want
        .iter()
        .all(|(pfx, has)| bird_route(lab, i, pfx).is_empty() != *has)
    {
        let all = lab.birdc(i, "show route all");
        assert!(
            Instant::now() < deadline,
            "bird {i}, wanted {want:?}:\n{all}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn gobgpd_adapter_against_bird() {
    if let Some(why) = bgp_lab::unavailable() {
        println!("SKIPPED gobgpd_adapter_against_bird: {why}");
        return;
    }
    let mut lab = Lab::new(2);
    lab.start_gobgpd();
    lab.start_bird(0, &bird_a("wrong-secret", true));
    lab.start_bird(1, &bird_b());

    let (dtx, drx) = bounded(4);
    let (etx, erx) = bounded(64);
    let (_stx, srx) = bounded(1);
    let handle = lab.in_ours(|| spawn(drx, etx, srx)).expect("spawn");
    dtx.send(desired()).unwrap();
    let mut m = Model::new(erx);

    // Wrong MD5 password: gobgpd is configured, but no session and no path.
    m.wait(&lab, "Connected", 15, |m| m.connected);
    m.wait(&lab, "first PeerPaths", 5, |m| {
        m.paths.contains_key(&customer(0))
    });
    m.wait(&lab, "B up (no password)", 20, |m| m.up(1));
    m.drain(Duration::from_secs(3));
    assert!(
        !m.up(0),
        "session up with a wrong password: {:?}",
        m.peer(0)
    );
    assert_eq!(m.paths[&customer(0)].len(), 0, "paths without a session");
    assert!(!lab.birdc(0, "show protocols").contains("Established"));

    // The right password: up, with negotiated timers (ours 30 < BIRD's 90), and BIRD's paths.
    lab.reconfigure_bird(0, &bird_a("right-secret", true));
    m.wait(&lab, "session up", 30, |m| m.up(0));
    let st = m.peer(0).unwrap().clone();
    assert_eq!(st.hold_time, Some(Duration::from_secs(30)));
    assert_eq!(st.keepalive, Some(Duration::from_secs(10)));
    assert!(st.graceful_restart_advertised, "{st:?}");
    assert!(st.since.is_some());
    m.wait(&lab, "BIRD's two paths", 10, |m| {
        m.path(0, "10.200.0.0/24").is_some() && m.path(0, "10.201.0.0/24").is_some()
    });
    let r = m.path(0, "10.200.0.0/24").unwrap().clone();
    assert_eq!(r.next_hop, customer(0));
    assert_eq!(
        r.communities,
        vec![(13335 << 16) | 60010, (65010 << 16) | 7]
    );
    assert_eq!(
        r.as_path,
        vec![AsSegment::Sequence(vec![A_ASN; 3])],
        "two prepends plus BIRD's own ASN"
    );
    assert!(!r.stale);
    let plain = m.path(0, "10.201.0.0/24").unwrap();
    assert!(plain.communities.is_empty());
    assert_eq!(plain.as_path, vec![AsSegment::Sequence(vec![A_ASN])]);
    m.wait(&lab, "B's path", 10, |m| {
        m.path(1, "10.210.0.0/24").is_some()
    });
    assert_eq!(m.path(1, "10.210.0.0/24").unwrap().next_hop, customer(1));

    // Ours reach both with our ASN; each peer's extra only that peer; no customer's path the
    // other customer.
    bird_sees(&lab, 0, &[("10.99.0.0/24", true), ("10.97.0.0/24", true)]);
    bird_sees(&lab, 1, &[("10.99.0.0/24", true), ("10.98.0.0/24", true)]);
    let ours0 = bird_route(&lab, 0, "10.99.0.0/24");
    assert!(
        ours0.contains(&format!("BGP.as_path: {OUR_ASN}\n")),
        "{ours0}"
    );
    assert!(
        ours0.contains(&format!("BGP.next_hop: {}", ours(0))),
        "{ours0}"
    );
    bird_sees(
        &lab,
        0,
        &[("10.98.0.0/24", false), ("10.210.0.0/24", false)],
    );
    bird_sees(
        &lab,
        1,
        &[("10.97.0.0/24", false), ("10.200.0.0/24", false)],
    );
    m.wait(&lab, "advertised counts", 5, |m| {
        m.peer(0).is_some_and(|p| p.advertised == 2) && m.peer(1).is_some_and(|p| p.advertised == 2)
    });

    // A withdrawal, as a delta.
    lab.reconfigure_bird(0, &bird_a("right-secret", false));
    m.wait(&lab, "withdrawal", 10, |m| {
        m.path(0, "10.201.0.0/24").is_none()
    });
    assert_eq!(m.withdrawals, 1, "the withdrawal came as a delta");
    assert!(m.path(0, "10.200.0.0/24").is_some());

    // BIRD dies: its paths stay, stale, for its restart time (4 s), then go.
    lab.kill_bird(0);
    m.wait(&lab, "stale paths", 10, |m| {
        m.path(0, "10.200.0.0/24").is_some_and(|r| r.stale)
    });
    m.wait(&lab, "graceful restart running", 5, |m| {
        m.peer(0)
            .is_some_and(|p| !m.up(0) && p.graceful_restart_running)
    });
    let stale_since = Instant::now();
    m.wait(&lab, "stale paths removed", 20, |m| {
        m.path(0, "10.200.0.0/24").is_none()
    });
    assert!(
        stale_since.elapsed() >= Duration::from_secs(1),
        "removed at once, not kept"
    );
    assert!(
        m.path(1, "10.210.0.0/24").is_some(),
        "the other customer's path went too"
    );

    // BIRD back: the session and the paths return.
    lab.start_bird(0, &bird_a("right-secret", false));
    m.wait(&lab, "session back", 30, |m| m.up(0));
    m.wait(&lab, "paths back", 10, |m| {
        m.path(0, "10.200.0.0/24").is_some_and(|r| !r.stale)
    });

    // gobgpd dies: Disconnected once; restarted: Connected, configured again, paths again.
    lab.kill_gobgpd();
    m.wait(&lab, "Disconnected", 10, |m| !m.connected);
    std::thread::sleep(Duration::from_secs(3));
    lab.start_gobgpd();
    m.wait(&lab, "Connected again", 15, |m| m.connected);
    assert_eq!(m.disconnects, 1, "Disconnected more than once while down");
    m.wait(&lab, "sessions after gobgpd restart", 40, |m| {
        m.up(0) && m.up(1)
    });
    m.wait(&lab, "paths after gobgpd restart", 10, |m| {
        m.path(0, "10.200.0.0/24")
            .is_some_and(|r| r.communities.len() == 2 && !r.stale)
            && m.path(1, "10.210.0.0/24").is_some()
    });
    bird_sees(&lab, 0, &[("10.99.0.0/24", true), ("10.97.0.0/24", true)]);

    // A reload: one prefix fewer, one more, B's extra gone; the sessions stay up.
    let since = m.peer(0).unwrap().since;
    let mut reload = desired();
    reload.announce = vec![p("10.96.0.0/24")];
    reload.peers[1].extra_announce.clear();
    dtx.send(reload.clone()).unwrap();
    bird_sees(&lab, 0, &[("10.96.0.0/24", true), ("10.99.0.0/24", false)]);
    bird_sees(&lab, 1, &[("10.96.0.0/24", true), ("10.98.0.0/24", false)]);
    m.drain(Duration::from_millis(1500));
    assert!(
        m.up(0) && m.peer(0).unwrap().since == since,
        "reload flapped the session"
    );

    // The sender gone: the thread ends.
    drop(dtx);
    let t = Instant::now();
    handle.join().expect("adapter thread");
    assert!(t.elapsed() < Duration::from_secs(2));

    // A new adapter finds gobgpd configured: it reconciles without touching the sessions.
    // Its events channel holds 2 and is left full while B's paths change: the adapter must
    // not block, and once read the model must hold the change.
    let (dtx, drx) = bounded(4);
    let (etx, erx) = bounded(2);
    let (stx, srx) = bounded(1);
    let handle = lab.in_ours(|| spawn(drx, etx, srx)).expect("spawn");
    dtx.send(reload.clone()).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let mut b = bird_b();
    b.routes.push(BirdRoute {
        prefix: "10.211.0.0/24".into(),
        communities: vec![],
        prepends: 1,
    });
    lab.reconfigure_bird(1, &b);
    std::thread::sleep(Duration::from_secs(3));
    let mut m = Model::new(erx);
    m.wait(&lab, "Connected to a running gobgpd", 10, |m| m.connected);
    m.wait(&lab, "paths after a full channel", 10, |m| {
        m.path(0, "10.200.0.0/24").is_some() && m.path(1, "10.211.0.0/24").is_some()
    });
    m.drain(Duration::from_millis(1500));
    assert!(
        m.up(0) && m.peer(0).unwrap().since == since,
        "reconnecting flapped the session"
    );
    let extra = m.path(1, "10.211.0.0/24").unwrap();
    assert_eq!(extra.as_path, vec![AsSegment::Sequence(vec![B_ASN; 2])]);

    // Peer B removed from the config: gobgpd drops it.
    let mut only_a = reload.clone();
    only_a.peers.truncate(1);
    dtx.send(only_a).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.gobgp("neighbor").contains(&customer(1).to_string()) {
        assert!(Instant::now() < deadline, "{}", lab.gobgp("neighbor"));
        std::thread::sleep(Duration::from_millis(200));
    }
    m.wait(&lab, "B reported without paths", 10, |m| {
        m.paths.get(&customer(1)).is_some_and(|t| t.is_empty())
    });
    m.drain(Duration::from_millis(1500));
    assert!(
        m.connected && m.up(0),
        "removing a peer cost the connection"
    );
    assert!(m.peer(1).is_none(), "a removed peer is still reported");

    // A stop: our prefixes (announced and A's extra) leave A's BIRD within seconds, and
    // gobgpd is left with no peer and no path of ours; the thread ends within STOP_WITHIN.
    bird_sees(&lab, 0, &[("10.96.0.0/24", true), ("10.97.0.0/24", true)]);
    stx.send(()).unwrap();
    let t = Instant::now();
    while !handle.is_finished() {
        assert!(t.elapsed() < STOP_WITHIN + Duration::from_secs(1), "no end");
        std::thread::sleep(Duration::from_millis(10));
    }
    handle.join().expect("adapter thread");
    let gone = |lab: &Lab| {
        bird_route(lab, 0, "10.96.0.0/24").is_empty()
            && bird_route(lab, 0, "10.97.0.0/24").is_empty()
    };
    while !gone(&lab) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "our routes stayed at BIRD after the stop:\n{}\ngobgpd:\n{}",
            lab.birdc(0, "show route all"),
            tail(&lab.log("gobgpd.log"))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let rib = lab.gobgp("global rib");
    assert!(
        !rib.contains("10.96.0.0/24") && !rib.contains("10.97.0.0/24"),
        "{rib}"
    );
    let neighbors = lab.gobgp("neighbor");
    assert!(!neighbors.contains(&customer(0).to_string()), "{neighbors}");

    // Another ASN: gobgpd's instance is restarted with it (by a new adapter).
    let (dtx, drx) = bounded(4);
    let (etx, _erx) = bounded(64);
    let (_stx, srx) = bounded(1);
    let handle = lab.in_ours(|| spawn(drx, etx, srx)).expect("spawn");
    let mut other = reload;
    other.asn = 65001;
    dtx.send(other).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.gobgp("global").contains("AS:        65001") {
        assert!(Instant::now() < deadline, "{}", lab.gobgp("global"));
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(dtx);
    handle.join().expect("adapter thread");
}

/// A figure for perf/RESULTS.md, not a check of the default suite: how long 10,000 paths
/// (`BGP_PATHS` to change it) take from BIRD to the model, as deltas and as one whole
/// listing, and their withdrawal. `cargo test --test bgp_gobgpd -- --ignored --nocapture`
#[test]
#[ignore]
fn ten_thousand_paths() {
    if let Some(why) = bgp_lab::unavailable() {
        println!("SKIPPED ten_thousand_paths: {why}");
        return;
    }
    let n: usize = std::env::var("BGP_PATHS").map_or(10_000, |v| v.parse().unwrap());
    let mut lab = Lab::new(1);
    lab.start_gobgpd();
    let mut d = desired();
    d.peers.truncate(1);
    d.peers[0].md5_password = None;
    let mut b = bird_a("unused", false);
    b.password = None;
    lab.start_bird(0, &b);
    let (dtx, drx) = bounded(4);
    let (etx, erx) = bounded(64);
    let (_stx, srx) = bounded(1);
    let handle = lab.in_ours(|| spawn(drx, etx, srx)).expect("spawn");
    dtx.send(d.clone()).unwrap();
    let mut m = Model::new(erx);
    m.wait(&lab, "up", 30, |m| {
        m.up(0) && m.path(0, "10.200.0.0/24").is_some()
    });

    b.routes = (0..n)
        .map(|i| BirdRoute {
            prefix: format!("{}.{}.{}.0/24", 11 + i / 65536, (i / 256) % 256, i % 256),
            communities: vec![],
            prepends: 0,
        })
        .collect();
    let t = Instant::now();
    lab.reconfigure_bird(0, &b);
    m.wait(&lab, "10k paths as deltas", 120, |m| {
        m.paths.get(&customer(0)).is_some_and(|t| t.len() == n)
    });
    let deltas = t.elapsed();
    // gobgpd's own CLI listing the same Adj-RIB-In: the reference for the whole listing.
    let t = Instant::now();
    let cli = lab.gobgp(&format!("neighbor {} adj-in", customer(0)));
    let cli_time = t.elapsed();
    assert!(cli.lines().count() > n, "{}", &cli[..cli.len().min(300)]);

    // A new adapter lists them whole.
    drop(dtx);
    handle.join().unwrap();
    let (dtx, drx) = bounded(4);
    let (etx, erx) = bounded(64);
    let (_stx, srx) = bounded(1);
    let handle = lab.in_ours(|| spawn(drx, etx, srx)).expect("spawn");
    let t = Instant::now();
    dtx.send(d).unwrap();
    let mut m = Model::new(erx);
    m.wait(&lab, "10k paths listed", 120, |m| {
        m.paths.get(&customer(0)).is_some_and(|t| t.len() == n)
    });
    let whole = t.elapsed();

    b.routes.clear();
    let t = Instant::now();
    lab.reconfigure_bird(0, &b);
    m.wait(&lab, "10k withdrawn", 120, |m| {
        m.paths.get(&customer(0)).is_some_and(|t| t.is_empty())
    });
    let withdrawn = t.elapsed();
    println!(
        "bgp figures ({n} paths, one peer): deltas {deltas:?}, whole listing on connect \
         {whole:?} (gobgp neighbor adj-in: {cli_time:?}), withdrawal {withdrawn:?}"
    );
    drop(dtx);
    handle.join().unwrap();
}
