//! The command line as a shell uses it: a closed stdout (`| head`) ends `check`, `trace` and
//! `ctl` quietly with status 141, and `ctl capture` fails at once on a path it cannot write.
//! No DPDK: `ctl` talks to a stand-in server on a temporary socket.
mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The live tests' config, written to `d` (check and trace need no device).
fn config(d: &Dir) -> std::path::PathBuf {
    let p = d.p("c.toml");
    std::fs::write(&p, live_config(d, "cli")).unwrap();
    p
}

/// A control socket answering every request with `reply` (a JSON line); counts requests.
fn stand_in(path: &Path, reply: &'static str) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let n = std::sync::Arc::new(AtomicUsize::new(0));
    let l = UnixListener::bind(path).unwrap();
    let count = n.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let s = s.unwrap();
            let mut line = String::new();
            let _ = BufReader::new(&s).read_line(&mut line);
            count.fetch_add(1, Ordering::SeqCst);
            let _ = (&s).write_all(format!("{reply}\n").as_bytes());
        }
    });
    n
}

/// Runs anygate with ARGS, its stdout a pipe whose reader is already gone.
fn closed_stdout(args: &[&str]) -> Output {
    let (r, w) = std::io::pipe().unwrap();
    drop(r);
    Command::new(BIN)
        .args(args)
        .stdout(w)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_ends_check_trace_and_ctl_quietly_with_141() {
    let d = Dir::new();
    let cfg = config(&d);
    let cfg = cfg.to_str().unwrap();
    // One frame to the port: ARP, answered and forwarded, so there is a line to print.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 0xfe, 8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&[
        2, 0, 0, 0, 0, 0xfe, 192, 0, 2, 254, 0, 0, 0, 0, 0, 0, 192, 0, 2, 1,
    ]);
    arp.resize(60, 0);
    let pcap = d.p("in.pcap");
    write_pcap(&pcap, &[arp.clone(), arp]);
    let sock = d.p("stand-in.sock");
    stand_in(
        &sock,
        r#"{"ok":true,"version":1,"text":"anygate 0.1.0, up 5 s\n"}"#,
    );
    let sock = sock.to_str().unwrap();
    for args in [
        &["check", "--config", cfg][..],
        &[
            "trace",
            "--config",
            cfg,
            "--port",
            "up0",
            "--pcap",
            pcap.to_str().unwrap(),
        ],
        &["ctl", "--socket", sock, "show", "status"],
        &["ctl", "--socket", sock, "--json", "show", "status"],
    ] {
        let out = closed_stdout(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
    }
}

/// `ctl capture --count 1 --out OUT` on the socket at `sock`.
fn capture(sock: &Path, out: &Path) -> Output {
    Command::new(BIN)
        .args(["ctl", "--socket", sock.to_str().unwrap()])
        .args(["capture", "--count", "1", "--out"])
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn capture_to_a_path_it_cannot_write_fails_before_asking() {
    let d = Dir::new();
    let sock = d.p("stand-in.sock");
    let asked = stand_in(
        &sock,
        r#"{"ok":false,"version":1,"error":"already running"}"#,
    );
    let ctl = |out: &Path| {
        let t = Instant::now();
        (capture(&sock, out), t.elapsed())
    };
    let (o, took) = ctl(Path::new("/nonexistent/dir/x.pcap"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--out /nonexistent/dir/x.pcap: No such file or directory"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(
        asked.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "not asked"
    );

    // Refused by the server: no empty file left behind; an existing one kept as it was.
    let (o, _) = ctl(&d.p("new.pcap"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("refused: already running"));
    assert!(!d.p("new.pcap").exists());
    std::fs::write(d.p("old.pcap"), b"keep").unwrap();
    let (o, _) = ctl(&d.p("old.pcap"));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(d.p("old.pcap")).unwrap(), b"keep");
}

/// The packets come: a full disk is named as such (not "Error reading bytes").
#[test]
fn capture_into_a_full_disk_says_so() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let d = Dir::new();
    let sock = d.p("stand-in.sock");
    stand_in(
        &sock,
        r#"{"ok":true,"version":1,"complete":true,"packets":[{"len":2,"time_ns":0,"data":"0102"}]}"#,
    );
    let o = capture(&sock, Path::new("/dev/full"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/dev/full: No space left on device"),
        "{stderr}"
    );
}
