//! The gobgpd adapter against real daemons: gobgpd as ours, BIRD 2 as the customer, in network
//! namespaces (tests/common/bgp_lab.rs). One scenario, in order: a wrong MD5 password gives no
//! session and no path; the right one brings the session up and BIRD's paths arrive with their
//! communities and AS path; our announcements (and only this peer's extras) reach BIRD; a
//! withdrawal arrives; killing BIRD keeps its paths stale for its restart time, then removes
//! them; killing gobgpd gives Disconnected, restarting it Connected and the paths again.
#[path = "common/bgp_lab.rs"]
mod bgp_lab;

use anygate::bgp::gobgp::spawn;
use anygate::bgp::{AsSegment, Desired, Event, PeerSpec, PeerStatus, ReceivedPath, SessionState};
use anygate::lpm::Prefix;
use bgp_lab::{Bird, BirdRoute, Lab, API, CUSTOMER, OURS};
use crossbeam::channel::{bounded, Receiver, RecvTimeoutError};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const OUR_ASN: u32 = 65000;
const CUSTOMER_ASN: u32 = 65010;

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
                    "{what}: not within {secs} s\nlast events:\n{}\ngobgpd:\n{}\nbird:\n{}",
                    self.log[self.log.len().saturating_sub(15)..].join("\n"),
                    tail(&lab.log("gobgpd.log")),
                    tail(&lab.log("bird.log")),
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

    fn peer(&self) -> Option<&PeerStatus> {
        self.peers.iter().find(|p| p.address == CUSTOMER)
    }

    fn up(&self) -> bool {
        self.peer()
            .is_some_and(|p| p.state == SessionState::Established)
    }

    fn path(&self, s: &str) -> Option<&ReceivedPath> {
        self.paths.get(&CUSTOMER)?.get(&p(s))
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn bird(password: &str, routes: Vec<BirdRoute>) -> Bird {
    Bird {
        asn: CUSTOMER_ASN,
        peer_asn: OUR_ASN,
        password: Some(password.into()),
        restart_time: 4,
        hold_time: 90,
        routes,
    }
}

fn routes(with_second: bool) -> Vec<BirdRoute> {
    let mut r = vec![BirdRoute {
        prefix: "10.200.0.0/24".into(),
        communities: vec![(13335, 60010), (65010, 7)],
        prepends: 2,
    }];
    if with_second {
        r.push(BirdRoute {
            prefix: "10.201.0.0/24".into(),
            communities: vec![],
            prepends: 0,
        });
    }
    r
}

fn desired() -> Desired {
    let customer = PeerSpec {
        name: "customer".into(),
        address: CUSTOMER,
        asn: CUSTOMER_ASN,
        local_address: OURS,
        md5_password: Some("right-secret".into()),
        hold_time: Duration::from_secs(30),
        extra_announce: vec![p("10.97.0.0/24")],
    };
    // Never connects: its extra must reach nobody else.
    let elsewhere = PeerSpec {
        name: "elsewhere".into(),
        address: Ipv4Addr::new(10, 77, 9, 9),
        asn: 65020,
        local_address: OURS,
        md5_password: None,
        hold_time: Duration::from_secs(240),
        extra_announce: vec![p("10.98.0.0/24")],
    };
    Desired {
        api: API.parse().unwrap(),
        asn: OUR_ASN,
        router_id: OURS,
        graceful_restart: Duration::from_secs(120),
        peers: vec![customer, elsewhere],
        announce: vec![p("10.99.0.0/24")],
    }
}

/// BIRD's route for `prefix`, as `birdc show route all` prints it ("" when it has none).
fn bird_route(lab: &Lab, prefix: &str) -> String {
    let out = lab.birdc(&format!("show route for {prefix} all"));
    if out.contains(prefix) {
        out
    } else {
        String::new()
    }
}

#[test]
fn gobgpd_adapter_against_bird() {
    if let Some(why) = bgp_lab::unavailable() {
        println!("SKIPPED gobgpd_adapter_against_bird: {why}");
        return;
    }
    let mut lab = Lab::new();
    lab.start_gobgpd();
    lab.start_bird(&bird("wrong-secret", routes(true)));

    let (dtx, drx) = bounded(4);
    let (etx, erx) = bounded(64);
    let handle = lab.in_ours(|| spawn(drx, etx)).expect("spawn");
    dtx.send(desired()).unwrap();
    let mut m = Model {
        rx: erx,
        paths: BTreeMap::new(),
        peers: vec![],
        connected: false,
        disconnects: 0,
        withdrawals: 0,
        log: vec![],
    };

    // Wrong MD5 password: gobgpd is configured, but no session and no path.
    m.wait(&lab, "Connected", 15, |m| m.connected);
    m.wait(&lab, "first PeerPaths", 5, |m| {
        m.paths.contains_key(&CUSTOMER)
    });
    m.drain(Duration::from_secs(6));
    assert!(!m.up(), "session up with a wrong password: {:?}", m.peer());
    assert_eq!(m.paths[&CUSTOMER].len(), 0, "paths without a session");
    assert!(m.peer().is_some(), "no status for the configured peer");
    assert!(!lab.birdc("show protocols").contains("Established"));

    // The right password: up, with negotiated timers (ours 30 < BIRD's 90), and BIRD's paths.
    lab.reconfigure_bird(&bird("right-secret", routes(true)));
    m.wait(&lab, "session up", 30, |m| m.up());
    let st = m.peer().unwrap().clone();
    assert_eq!(st.hold_time, Some(Duration::from_secs(30)));
    assert_eq!(st.keepalive, Some(Duration::from_secs(10)));
    assert!(st.graceful_restart_advertised, "{st:?}");
    assert!(st.since.is_some());
    m.wait(&lab, "BIRD's two paths", 10, |m| {
        m.path("10.200.0.0/24").is_some() && m.path("10.201.0.0/24").is_some()
    });
    let r = m.path("10.200.0.0/24").unwrap().clone();
    assert_eq!(r.next_hop, CUSTOMER);
    assert_eq!(
        r.communities,
        vec![(13335 << 16) | 60010, (65010 << 16) | 7]
    );
    assert_eq!(
        r.as_path,
        vec![AsSegment::Sequence(vec![CUSTOMER_ASN; 3])],
        "two prepends plus BIRD's own ASN"
    );
    assert!(!r.stale);
    let plain = m.path("10.201.0.0/24").unwrap();
    assert!(plain.communities.is_empty());
    assert_eq!(plain.as_path, vec![AsSegment::Sequence(vec![CUSTOMER_ASN])]);

    // Ours reach BIRD with our ASN; this peer's extra too, the other peer's extra does not.
    let deadline = Instant::now() + Duration::from_secs(10);
    while bird_route(&lab, "10.99.0.0/24").is_empty() || bird_route(&lab, "10.97.0.0/24").is_empty()
    {
        assert!(Instant::now() < deadline, "{}", lab.birdc("show route all"));
        std::thread::sleep(Duration::from_millis(200));
    }
    let ours = bird_route(&lab, "10.99.0.0/24");
    assert!(
        ours.contains(&format!("BGP.as_path: {OUR_ASN}\n")),
        "{ours}"
    );
    assert!(ours.contains(&format!("BGP.next_hop: {OURS}")), "{ours}");
    assert_eq!(
        bird_route(&lab, "10.98.0.0/24"),
        "",
        "another peer's extra leaked"
    );
    m.wait(&lab, "advertised count", 5, |m| {
        m.peer().is_some_and(|p| p.advertised == 2)
    });

    // A withdrawal.
    lab.reconfigure_bird(&bird("right-secret", routes(false)));
    m.wait(&lab, "withdrawal", 10, |m| {
        m.path("10.201.0.0/24").is_none()
    });
    assert_eq!(m.withdrawals, 1, "the withdrawal came as a delta");
    assert!(m.path("10.200.0.0/24").is_some());

    // BIRD dies: its paths stay, stale, for its restart time (4 s), then go.
    lab.kill_bird();
    m.wait(&lab, "stale paths", 10, |m| {
        m.path("10.200.0.0/24").is_some_and(|r| r.stale)
    });
    m.wait(&lab, "graceful restart running", 5, |m| {
        m.peer()
            .is_some_and(|p| !m.up() && p.graceful_restart_running)
    });
    let stale_since = Instant::now();
    m.wait(&lab, "stale paths removed", 20, |m| {
        m.path("10.200.0.0/24").is_none()
    });
    assert!(
        stale_since.elapsed() >= Duration::from_secs(1),
        "removed at once, not kept"
    );

    // BIRD back: the session and the paths return.
    lab.start_bird(&bird("right-secret", routes(false)));
    m.wait(&lab, "session back", 30, |m| m.up());
    m.wait(&lab, "paths back", 10, |m| {
        m.path("10.200.0.0/24").is_some_and(|r| !r.stale)
    });

    // gobgpd dies: Disconnected once; restarted: Connected, configured again, paths again.
    lab.kill_gobgpd();
    m.wait(&lab, "Disconnected", 10, |m| !m.connected);
    std::thread::sleep(Duration::from_secs(3));
    lab.start_gobgpd();
    m.wait(&lab, "Connected again", 15, |m| m.connected);
    assert_eq!(m.disconnects, 1, "Disconnected more than once while down");
    m.wait(&lab, "session after gobgpd restart", 40, |m| m.up());
    m.wait(&lab, "paths after gobgpd restart", 10, |m| {
        m.path("10.200.0.0/24")
            .is_some_and(|r| r.communities.len() == 2 && !r.stale)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while bird_route(&lab, "10.99.0.0/24").is_empty() {
        assert!(Instant::now() < deadline, "{}", lab.birdc("show route all"));
        std::thread::sleep(Duration::from_millis(200));
    }

    // A reload: one prefix fewer, one more; the unchanged peer keeps its session.
    let since = m.peer().unwrap().since;
    let mut reload = desired();
    reload.announce = vec![p("10.96.0.0/24")];
    dtx.send(reload.clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while bird_route(&lab, "10.96.0.0/24").is_empty()
        || !bird_route(&lab, "10.99.0.0/24").is_empty()
    {
        assert!(Instant::now() < deadline, "{}", lab.birdc("show route all"));
        std::thread::sleep(Duration::from_millis(200));
    }
    m.drain(Duration::from_millis(1500));
    assert!(
        m.up() && m.peer().unwrap().since == since,
        "reload flapped the session"
    );

    // The sender gone: the thread ends.
    drop(dtx);
    let t = Instant::now();
    handle.join().expect("adapter thread");
    assert!(t.elapsed() < Duration::from_secs(2));

    // A new adapter finds gobgpd configured: it reconciles without touching the session.
    let (dtx, drx) = bounded(4);
    let (etx, erx) = bounded(64);
    let handle = lab.in_ours(|| spawn(drx, etx)).expect("spawn");
    dtx.send(reload).unwrap();
    m.rx = erx;
    m.connected = false;
    m.paths.clear();
    m.wait(&lab, "Connected to a running gobgpd", 10, |m| m.connected);
    m.wait(&lab, "paths listed whole", 10, |m| {
        m.path("10.200.0.0/24").is_some()
    });
    m.drain(Duration::from_millis(1500));
    assert!(
        m.up() && m.peer().unwrap().since == since,
        "reconnecting flapped the session"
    );
    assert!(!bird_route(&lab, "10.96.0.0/24").is_empty());
    drop(dtx);
    handle.join().expect("adapter thread");
}
