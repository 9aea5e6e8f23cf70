//! A BGP lab in network namespaces: gobgpd as ours (its API on 127.0.0.1:50051 inside
//! `ours`) and BIRD 2 as each customer's router (one namespace each, a veth to `ours`:
//! customer i is 10.77.i.2/30, our side 10.77.i.1), with a bird.conf written by the test.
//! Reusable for end-to-end tests: `Lab::new(customers)`, `start_gobgpd`, `start_bird(i, &Bird)`,
//! `birdc(i, ..)`, `in_ours` (runs a closure on a thread inside `ours`, so the adapter's
//! thread is born there and reaches the API). Dropping the lab kills every daemon and deletes
//! the namespaces, also when a test panics.
#![allow(dead_code)]
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const API: &str = "127.0.0.1:50051";

/// Our address toward customer `i`.
pub fn ours(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, i as u8, 1)
}

/// Customer `i`'s address (its BIRD's router id too).
pub fn customer(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, i as u8, 2)
}

/// Why the lab cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    let root = nix::unistd::Uid::effective().is_root();
    let missing: Vec<&str> = ["gobgpd", "bird", "birdc", "ip"]
        .into_iter()
        .filter(|b| !which(b))
        .collect();
    match (root, missing.is_empty()) {
        (true, true) => None,
        (true, false) => {
            panic!("{missing:?} missing: run scripts/setup (it installs gobgpd and bird2)")
        }
        (false, _) => Some(format!(
            "needs root for network namespaces (and gobgpd, bird: missing {missing:?})"
        )),
    }
}

fn which(bin: &str) -> bool {
    [
        "/usr/bin",
        "/usr/sbin",
        "/bin",
        "/sbin",
        "/usr/local/bin",
        "/usr/local/sbin",
    ]
    .iter()
    .any(|d| Path::new(d).join(bin).exists())
}

/// The customer's router.
#[derive(Clone, Debug)]
pub struct Bird {
    pub asn: u32,
    pub peer_asn: u32,
    pub password: Option<String>,
    /// The graceful-restart time it advertises: how long we keep its paths when it dies.
    pub restart_time: u32,
    pub hold_time: u32,
    pub routes: Vec<BirdRoute>,
}

#[derive(Clone, Debug)]
pub struct BirdRoute {
    pub prefix: String,
    pub communities: Vec<(u16, u16)>,
    /// Extra copies of its own ASN (BIRD adds the first one itself).
    pub prepends: u32,
}

impl Bird {
    /// bird.conf for customer `i`.
    pub fn conf(&self, i: usize) -> String {
        let (local, neighbor) = (customer(i), ours(i));
        let mut statics = String::new();
        let mut filter = String::new();
        for r in &self.routes {
            statics.push_str(&format!("  route {} blackhole;\n", r.prefix));
            let mut actions = String::new();
            for (a, v) in &r.communities {
                actions.push_str(&format!("bgp_community.add(({a},{v})); "));
            }
            for _ in 0..r.prepends {
                actions.push_str(&format!("bgp_path.prepend({}); ", self.asn));
            }
            // Only routes with attributes get a test: the filter runs them all per route.
            if !actions.is_empty() {
                filter.push_str(&format!("  if net = {} then {{ {actions}}}\n", r.prefix));
            }
        }
        let password = self
            .password
            .as_ref()
            .map(|p| format!("  password \"{p}\";\n"))
            .unwrap_or_default();
        format!(
            "router id {local};\n\
             log stderr all;\n\
             protocol device {{ }}\n\
             protocol static announced {{\n  ipv4;\n{statics}}}\n\
             filter to_ours {{\n{filter}  accept;\n}}\n\
             protocol bgp ours {{\n\
             \x20 local {local} as {asn};\n\
             \x20 neighbor {neighbor} as {peer};\n\
             {password}\
             \x20 hold time {hold};\n\
             \x20 graceful restart on;\n\
             \x20 graceful restart time {gr};\n\
             \x20 connect delay time 1;\n\
             \x20 connect retry time 2;\n\
             \x20 error wait time 1, 2;\n\
             \x20 ipv4 {{ import all; export filter to_ours; }};\n\
             }}\n",
            asn = self.asn,
            peer = self.peer_asn,
            hold = self.hold_time,
            gr = self.restart_time,
        )
    }
}

static N: AtomicUsize = AtomicUsize::new(0);

pub struct Lab {
    /// Namespace of gobgpd (and of the adapter's thread, through `in_ours`).
    pub ours: String,
    /// Namespace of each customer's BIRD.
    pub customers: Vec<String>,
    pub dir: tempfile::TempDir,
    gobgpd: Option<Child>,
    birds: Vec<Option<Child>>,
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{args:?}: {text}");
    text
}

impl Lab {
    /// Fresh namespaces: `ours`, and one per customer joined to it by a veth (`o<i>` in
    /// `ours`, `c0` in the customer's).
    pub fn new(customers: usize) -> Lab {
        assert!((1..=200).contains(&customers));
        let tag = format!(
            "bgl{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Lab {
            ours: format!("{tag}o"),
            customers: (0..customers).map(|i| format!("{tag}c{i}")).collect(),
            dir: tempfile::tempdir().expect("tempdir"),
            gobgpd: None,
            birds: (0..customers).map(|_| None).collect(),
        };
        let o = lab.ours.as_str();
        run(&["ip", "netns", "add", o]);
        run(&["ip", "-n", o, "link", "set", "lo", "up"]);
        for (i, c) in lab.customers.iter().enumerate() {
            let dev = format!("o{i}");
            run(&["ip", "netns", "add", c]);
            // Built in `ours`, then one end moved: no interface ever lives in the root namespace.
            run(&[
                "ip", "-n", o, "link", "add", &dev, "type", "veth", "peer", "name", "c0",
            ]);
            run(&["ip", "-n", o, "link", "set", "c0", "netns", c]);
            run(&[
                "ip",
                "-n",
                o,
                "addr",
                "add",
                &format!("{}/30", ours(i)),
                "dev",
                &dev,
            ]);
            run(&[
                "ip",
                "-n",
                c,
                "addr",
                "add",
                &format!("{}/30", customer(i)),
                "dev",
                "c0",
            ]);
            for (ns, d) in [(o, dev.as_str()), (c, "c0"), (c, "lo")] {
                run(&["ip", "-n", ns, "link", "set", d, "up"]);
            }
        }
        lab
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn_in(&self, ns: &str, log: &str, args: &[&str]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(log))
            .expect("log file");
        // `ip netns exec` execs the daemon: the child's pid is the daemon's.
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Starts gobgpd in `ours` and waits until its API accepts connections.
    pub fn start_gobgpd(&mut self) {
        assert!(self.gobgpd.is_none(), "gobgpd already running");
        let child = self.spawn_in(
            &self.ours,
            "gobgpd.log",
            &[
                "gobgpd",
                "--api-hosts",
                API,
                "--log-plain",
                "--pprof-disable",
            ],
        );
        self.gobgpd = Some(child);
        let api: SocketAddr = API.parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.in_ours(|| TcpStream::connect_timeout(&api, Duration::from_millis(200)).is_ok())
        {
            assert!(
                Instant::now() < deadline,
                "gobgpd API not up: {}",
                self.log("gobgpd.log")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no goodbye to its peers or clients.
    pub fn kill_gobgpd(&mut self) {
        kill(self.gobgpd.take());
    }

    /// Writes bird<i>.conf and starts customer `i`'s BIRD (foreground, logging to bird<i>.log).
    pub fn start_bird(&mut self, i: usize, b: &Bird) {
        assert!(self.birds[i].is_none(), "bird {i} already running");
        self.write_bird(i, b);
        let conf = self.path(&format!("bird{i}.conf"));
        let sock = self.path(&format!("bird{i}.ctl"));
        let child = self.spawn_in(
            &self.customers[i],
            &format!("bird{i}.log"),
            &[
                "bird",
                "-f",
                "-c",
                conf.to_str().unwrap(),
                "-s",
                sock.to_str().unwrap(),
            ],
        );
        self.birds[i] = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.birdc(i, "show status").contains("Daemon is up") {
            let log = self.log(&format!("bird{i}.log"));
            assert!(Instant::now() < deadline, "bird {i} not up: {log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn write_bird(&self, i: usize, b: &Bird) {
        std::fs::write(self.path(&format!("bird{i}.conf")), b.conf(i)).expect("bird.conf");
    }

    /// Rewrites bird<i>.conf and has BIRD load it (a changed password restarts the session).
    pub fn reconfigure_bird(&self, i: usize, b: &Bird) {
        self.write_bird(i, b);
        let out = self.birdc(i, "configure");
        assert!(out.contains("Reconfigur"), "birdc configure: {out}");
    }

    /// SIGKILL: the session drops without a NOTIFICATION, as when the router crashes.
    pub fn kill_bird(&mut self, i: usize) {
        kill(self.birds[i].take());
    }

    /// `birdc <cmd>` against customer `i`'s BIRD: its output, failing or not ("Network not
    /// found").
    pub fn birdc(&self, i: usize, cmd: &str) -> String {
        let sock = self.path(&format!("bird{i}.ctl"));
        text(
            Command::new("birdc").args(["-s", sock.to_str().unwrap()]),
            cmd,
        )
    }

    /// `gobgp <cmd>` (gobgpd's own CLI) inside `ours`: for diagnostics.
    pub fn gobgp(&self, cmd: &str) -> String {
        text(
            Command::new("ip").args(["netns", "exec", &self.ours, "gobgp"]),
            cmd,
        )
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Runs `f` on a new thread inside `ours`: threads it starts (the adapter's) live there too.
    pub fn in_ours<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let ns = format!("/run/netns/{}", self.ours);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = std::fs::File::open(&ns).unwrap_or_else(|e| panic!("{ns}: {e}"));
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("thread in the lab namespace")
        })
    }
}

/// `c` with `args` (split on whitespace) appended: stdout and stderr, whatever its status.
fn text(c: &mut Command, args: &str) -> String {
    let out = c
        .args(args.split_whitespace())
        .output()
        .unwrap_or_else(|e| panic!("{c:?}: {e}"));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn kill(child: Option<Child>) {
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for b in &mut self.birds {
            kill(b.take());
        }
        self.kill_gobgpd();
        for ns in std::iter::once(&self.ours).chain(&self.customers) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
