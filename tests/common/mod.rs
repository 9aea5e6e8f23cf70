//! Helpers shared by the end-to-end tests: captures, temporary directories, EAL arguments,
//! running to idle, tshark. DPDK runs spin a core each, so tests that start one take `lock()`.
#![allow(dead_code)]
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub static DPDK: Mutex<()> = Mutex::new(());

pub const BIN: &str = env!("CARGO_BIN_EXE_anygate");

pub fn lock() -> std::sync::MutexGuard<'static, ()> {
    DPDK.lock().unwrap_or_else(|e| e.into_inner())
}

/// (main core, worker core): the first and last cores this process may use.
pub fn cores() -> (usize, usize) {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort();
    (*ids.first().unwrap_or(&0), *ids.last().unwrap_or(&0))
}

pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::new(File::create(path).unwrap()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(
            Duration::from_micros(i as u64),
            f.len() as u32,
            f,
        ))
        .unwrap();
    }
}

pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    out
}

pub struct Dir(pub tempfile::TempDir);
impl Dir {
    pub fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }
    pub fn p(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

pub fn eal(prefix: &str) -> String {
    format!(
        r#"[dpdk]
eal_args = ["--no-huge", "-m", "256", "--no-pci", "--file-prefix", "{prefix}-{}", "--log-level", "lib.eal:warning"]
main_core = {}
mempool_size = 4095
mempool_cache = 64
"#,
        std::process::id(),
        cores().0
    )
}

/// The head of a config for tests under live traffic: EAL arguments, a control socket in `d`,
/// port in0 replaying `d/in.pcap` forever, port up0 (net_null) toward the upstream router
/// 192.0.2.254, and one worker on the second core. Tests append tunnels, routes and the rest.
pub fn live_config(d: &Dir, eal_prefix: &str) -> String {
    format!(
        r#"{eal}
[node]
anycast_addresses = ["203.0.113.10"]
control_socket = "{sock}"

[[ports]]
name = "in0"
device = "net_pcap0,rx_pcap={input},infinite_rx=1,tx_pcap=/dev/null"
mac = "02:00:00:00:01:01"
address = "10.0.0.1/24"

[[ports]]
name = "up0"
device = "net_null0,no-rx=1"
address = "192.0.2.1/24"

[[workers]]
core = {core}
rx = [{{ port = "in0" }}, {{ port = "up0" }}]

[[neighbors]]
ip = "192.0.2.254"
mac = "02:00:00:00:00:fe"
port = "up0"
"#,
        eal = eal(eal_prefix),
        sock = d.p("ctl.sock").display(),
        input = d.p("in.pcap").display(),
        core = cores().1,
    )
}

/// `anygate ctl --json ARGS` on the control socket in `d`: success, the reply, stderr.
pub fn ctl(d: &Dir, args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(BIN)
        .args([
            "ctl",
            "--socket",
            d.p("ctl.sock").to_str().unwrap(),
            "--json",
        ])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (
        out.status.success(),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs anygate until its input is exhausted; returns the exit code, the final stats and
/// what it logged.
pub fn run_to_idle(cfg: &Path) -> (i32, Value, String) {
    let out = Command::new(BIN)
        .args([
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--exit-when-idle",
            "400",
            "--stats-json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let last = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no stats printed; stderr:\n{stderr}"));
    let v: Value = serde_json::from_str(last).unwrap();
    (out.status.code().unwrap_or(-1), v, stderr)
}

pub fn tshark(pcap: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    tshark_with(pcap, &["-o", "ip.check_checksum:TRUE"], fields)
}

/// tshark with extra options (display filter, preferences) before the field list.
pub fn tshark_with(pcap: &Path, opts: &[&str], fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args([
        "-r",
        pcap.to_str().unwrap(),
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]);
    cmd.args(opts);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark is installed by scripts/setup");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

/// A running anygate whose stats (`--stats-json`) are read line by line from stdout.
pub struct Running {
    pub child: Child,
    /// Its stdout's lines, read as they come by a thread of their own: a test busy with `ctl`
    /// for seconds would otherwise leave the pipe (64 KiB, ~25 reports at ~2.5 KB) full, and
    /// the management thread, blocked writing a report, would answer no request.
    pub stdout: std::sync::mpsc::Receiver<std::io::Result<String>>,
    pub stderr_path: PathBuf,
}

impl Running {
    pub fn next_stats(&mut self) -> Value {
        let line = self.stdout.recv().expect("stats line").expect("read stats");
        serde_json::from_str(&line).unwrap()
    }
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
    pub fn wait_stderr(&self, needle: &str) -> String {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            let s = self.stderr();
            if s.contains(needle) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("`{needle}` never logged:\n{}", self.stderr());
    }
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Starts `anygate run` on `cfg` with periodic JSON stats.
    pub fn start(cfg: &Path, interval: &str, stderr_path: PathBuf) -> Running {
        let child = Command::new(BIN)
            .args([
                "run",
                "--config",
                cfg.to_str().unwrap(),
                "--stats-interval",
                interval,
                "--stats-json",
            ])
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        Running::from_child(child, stderr_path)
    }

    /// Takes over `child`, started with its stdout piped: a thread reads its lines from now on.
    pub fn from_child(mut child: Child, stderr_path: PathBuf) -> Running {
        use std::io::BufRead;
        let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let (tx, stdout) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            stdout,
            stderr_path,
        }
    }

    /// Stops it with SIGINT and returns the final stats.
    pub fn finish(mut self) -> Value {
        self.signal("-INT");
        let mut last = Value::Null;
        for line in self.stdout.iter() {
            last = serde_json::from_str(&line.unwrap()).unwrap();
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exit {status:?}:\n{}", self.stderr());
        assert_eq!(last["final"], true);
        last
    }
}

/// `anygate trace --json` over a capture: one JSON object per packet.
pub fn trace_json(cfg: &Path, pcap: &Path, extra: &[&str]) -> Vec<Value> {
    let out = Command::new(BIN)
        .args([
            "trace",
            "--config",
            cfg.to_str().unwrap(),
            "--pcap",
            pcap.to_str().unwrap(),
            "--json",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs `anygate <cmd> --config cfg`; `run` stops by itself should it ever get going.
pub fn anygate(cmd: &str, cfg: &std::path::Path) -> (Option<i32>, String, Duration) {
    let mut c = Command::new(BIN);
    c.args([cmd, "--config", cfg.to_str().unwrap()]);
    if cmd == "run" {
        c.args(["--exit-when-idle", "200"]);
    }
    let t = Instant::now();
    let out = c.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t.elapsed(),
    )
}

/// Runs one of the network-namespace scripts (`scripts/netns-*-test`) on this build's binary:
/// whether it passed, and its stdout and stderr (printed, for the test's log).
pub fn netns_script(script: &str) -> (bool, String) {
    let out = Command::new(script)
        .env("ANYGATE_BIN", BIN)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    (out.status.success(), text)
}
