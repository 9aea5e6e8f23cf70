//! The Debian package and the service: the .deb that scripts/package makes (built here from
//! the test binary with `cargo deb --no-build`, so no release build), extracted into a
//! throwaway root; its units checked by `systemd-analyze verify`, its man pages by `man -l`
//! with groff's warnings as failures, its example configs by `anygate check`, the gobgpd unit's
//! command line (API only, no config file); and
//! the readiness protocol against a real run on virtual devices.
//! Needs what `scripts/setup --package` installs (cargo-deb, dpkg-dev, man-db, systemd,
//! gobgpd).
mod common;
use common::{cores, eal, lock, Dir, BIN};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/setup --package installs it)"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Builds the .deb from the test binary and extracts it over a root holding what a Debian
/// system gives the units: its own unit files (sysinit.target, network-online.target, ...),
/// /bin/kill, /bin/sh and /bin/systemctl (anygate's ExecStopPost=) and gobgpd. Returns (the
/// .deb, the root).
fn build_and_extract(d: &Dir) -> (PathBuf, PathBuf) {
    // cargo-deb takes the binary from <target>/release: a target dir of our own holding the
    // binary the tests built, so nothing is rebuilt and the workspace's target is not locked.
    let target = d.p("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::fs::copy(BIN, target.join("release/anygate")).unwrap();
    let (ok, out) = run(Command::new(BIN).args(["man", &format!("{REPO}/target/man")]));
    assert!(ok, "anygate man: {out}");
    let t = Instant::now();
    let (ok, out) = run(Command::new("cargo")
        .args(["deb", "--no-build", "--no-strip", "--fast", "-o"])
        .arg(d.p("out"))
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(REPO));
    assert!(ok, "cargo deb: {out}");
    eprintln!("cargo deb --no-build: {:.1} s", t.elapsed().as_secs_f64());
    let deb = PathBuf::from(out.lines().rfind(|l| l.ends_with(".deb")).unwrap().trim());
    let root = d.p("root");
    std::fs::create_dir_all(root.join("lib/systemd")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    let (ok, out) = run(Command::new("cp")
        .args(["-a", "/lib/systemd/system"])
        .arg(root.join("lib/systemd/")));
    assert!(ok, "{out}");
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    for tool in [
        "/usr/bin/kill",
        "/usr/bin/sh",
        "/usr/bin/systemctl",
        "/usr/bin/gobgpd",
    ] {
        std::fs::copy(tool, root.join(&tool[1..]))
            .unwrap_or_else(|e| panic!("{tool}: {e} (scripts/setup --package installs it)"));
    }
    let (ok, out) = run(Command::new("dpkg").arg("-x").arg(&deb).arg(&root));
    assert!(ok, "dpkg -x: {out}");
    (deb, root)
}

/// `systemd-analyze verify` of `units` inside `root`: Err with what it said. It exits 0 on
/// some mistakes (an unknown Type= is "ignored"), so any output counts as a failure.
fn verify(root: &Path, units: &[&str]) -> Result<(), String> {
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify")
        .arg(format!("--root={}", root.display()))
        .env("MANPATH", root.join("usr/share/man"))
        .env("SYSTEMD_LOG_COLOR", "0");
    for u in units {
        cmd.arg(root.join("lib/systemd/system").join(u));
    }
    match run(&mut cmd) {
        (true, out) if out.trim().is_empty() => Ok(()),
        (_, out) => Err(out),
    }
}

/// `man -l` of a page: its text, or Err with groff's warnings.
fn man(page: &Path) -> Result<String, String> {
    let (ok, warnings) = run(Command::new("man")
        .args(["--warnings", "-E", "UTF-8", "-Tutf8", "-l"])
        .arg(page)
        .env("MANWIDTH", "80")
        .stdout(Stdio::null()));
    if !ok || !warnings.trim().is_empty() {
        return Err(format!("{}: {warnings}", page.display()));
    }
    let (ok, text) = run(Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "80")
        .env("GROFF_NO_SGR", "1"));
    assert!(ok, "{text}");
    // Bold and underline come as overstrikes (c BS c, _ BS c): keep the last of each.
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    Ok(plain)
}

#[test]
fn the_package_installs_units_man_pages_and_a_config_that_check() {
    let d = Dir::new();
    let (deb, root) = build_and_extract(&d);

    let (_, info) = run(Command::new("dpkg-deb").arg("-I").arg(&deb));
    for want in [
        "Package: anygate",
        "dpdk (>= 22.11)",
        "librte-ethdev",
        "conffiles",
    ] {
        assert!(info.contains(want), "{want} missing from:\n{info}");
    }
    // The maintainer scripts parse (they run only on a real install).
    let control = d.p("control");
    let (ok, out) = run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    assert!(ok, "{out}");
    for script in ["postinst", "prerm", "postrm"] {
        let (ok, out) = run(Command::new("sh").arg("-n").arg(control.join(script)));
        assert!(ok, "{script}: {out}");
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("addgroup --system anygate"), "{postinst}");
    let (_, files) = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for f in [
        "./usr/bin/anygate",
        "./etc/anygate/anygate.toml",
        "./lib/systemd/system/anygate.service",
        "./lib/systemd/system/anygate-gobgpd.service",
        "./usr/share/man/man8/anygate.8.gz",
        "./usr/share/man/man8/anygate-ctl.8.gz",
        "./usr/share/man/man5/anygate.toml.5.gz",
        "./usr/share/doc/anygate/bare-metal.md",
    ] {
        assert!(files.contains(f), "{f} not in the package:\n{files}");
    }

    // The units, and proof that the check catches a broken one.
    verify(&root, &["anygate.service", "anygate-gobgpd.service"]).unwrap();
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/anygate.service")).unwrap();
    for (what, broken) in [
        ("a misspelt Type", unit.replace("Type=notify", "Type=notfy")),
        (
            "a missing binary",
            unit.replace("ExecStart=/usr/bin/anygate", "ExecStart=/usr/bin/anygat"),
        ),
        (
            "an unknown key",
            unit.replace("[Service]", "[Service]\nRestartt=always"),
        ),
    ] {
        assert_ne!(broken, unit, "{what}: the unit did not change");
        std::fs::write(root.join("lib/systemd/system/broken.service"), broken).unwrap();
        assert!(
            verify(&root, &["broken.service"]).is_err(),
            "{what} passed systemd-analyze verify"
        );
    }
    for want in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RuntimeDirectory=anygate",
        "CapabilityBoundingSet=CAP_IPC_LOCK CAP_NET_ADMIN CAP_NET_RAW",
    ] {
        assert!(unit.contains(want), "{want} missing from the unit");
    }

    // The man pages, and proof that a groff warning fails the check.
    let page = |p: &str| root.join("usr/share/man").join(p);
    let text = man(&page("man8/anygate.8.gz")).unwrap();
    assert!(
        text.contains("anygate run") && text.contains("--exit-when-idle"),
        "{text}"
    );
    let text = man(&page("man8/anygate-ctl.8.gz")).unwrap();
    assert!(text.contains("anygate ctl show routes") && text.contains("--discard-runtime"));
    let text = man(&page("man5/anygate.toml.5.gz")).unwrap();
    for key in [
        "control_socket",
        "control_group",
        "mempool_size",
        "rx_queues",
        "mss_clamp",
    ] {
        assert!(text.contains(key), "anygate.toml(5) lacks {key}");
    }
    let bad = d.p("bad.8");
    std::fs::write(&bad, ".TH BAD 8\n.SH NAME\nbad\n.XQ undefined\n").unwrap();
    assert!(man(&bad).is_err(), "an undefined macro passed");

    // The packaged config: refused here only for cores this machine lacks.
    let conf = root.join("etc/anygate/anygate.toml");
    let (ok, out) = run(Command::new(BIN).arg("check").arg("--config").arg(&conf));
    if !ok {
        let errors: Vec<&str> = out.lines().skip(1).collect();
        assert!(
            !errors.is_empty()
                && errors
                    .iter()
                    .all(|l| l.contains("core") && l.contains("is not available on this machine")),
            "{out}"
        );
    }
    // anygate configures gobgpd over its API: the unit gives it no config file (one with
    // peers would fight anygate's), only the API address `[bgp] api` defaults to.
    let unit =
        std::fs::read_to_string(root.join("lib/systemd/system/anygate-gobgpd.service")).unwrap();
    let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert!(exec.contains("--api-hosts=127.0.0.1:50051"), "{exec}");
    assert!(!exec.contains("--config-file"), "{exec}");
    // gobgpd never outlives anygate (it would announce for a dead data plane): it is bound to
    // anygate's unit, which also stops it after a crash it is about to restart.
    assert!(
        unit.lines().any(|l| l == "BindsTo=anygate.service"),
        "{unit}"
    );
    let main = std::fs::read_to_string(root.join("lib/systemd/system/anygate.service")).unwrap();
    assert!(
        main.lines().any(|l| l.starts_with("ExecStopPost=")
            && l.contains("$$SERVICE_RESULT")
            && l.contains("stop anygate-gobgpd.service")),
        "{main}"
    );
    assert!(!root
        .join("usr/share/doc/anygate/examples/gobgpd.toml")
        .exists());
}

/// The bare-metal example passes every check on a machine with its cores (0-7), whatever
/// this one has.
#[test]
fn the_bare_metal_example_passes_check_with_its_cores() {
    let text = std::fs::read_to_string(format!("{REPO}/config/bare-metal-2x25g.toml")).unwrap();
    let host = anygate::config::Host {
        cores: (0..8).collect(),
    };
    let cfg = anygate::config::parse(&text, &host).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((cfg.ports.len(), cfg.workers.len()), (2, 4));
    assert_eq!(cfg.node.control_socket, "/run/anygate/anygate.sock");
    anygate::preflight::check(cfg).unwrap_or_else(|e| panic!("{e}"));
}

fn recv(s: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf).expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// READY=1 after the workers start, RELOADING=1/READY=1 around SIGHUP, STOPPING=1 at SIGTERM,
/// to the socket NOTIFY_SOCKET names, from a real run on virtual devices.
#[test]
fn readiness_reload_and_stop_reach_notify_socket() {
    let _g = lock();
    let d = Dir::new();
    let cfg = d.p("a.toml");
    std::fs::write(
        &cfg,
        format!(
            "{}\n[[ports]]\nname = \"p0\"\ndevice = \"net_null0\"\naddress = \"192.0.2.1/24\"\n\
             [[workers]]\ncore = {}\nrx = [{{ port = \"p0\" }}]\n[node]\ncontrol_socket = \"\"\n",
            eal("notify"),
            cores().1
        ),
    )
    .unwrap();
    let sock = d.p("notify.sock");
    let listener = UnixDatagram::bind(&sock).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let log = d.p("stderr.log");
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &sock)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let ready = recv(&listener);
    // stderr is a file, written before the datagram was sent: it shows the order.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        ready, "READY=1\nSTATUS=forwarding with 1 workers",
        "{logged}"
    );
    assert!(
        logged.contains("worker 0 on core"),
        "READY=1 came before the worker started:\n{logged}"
    );

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let reloading = recv(&listener);
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert_eq!(recv(&listener), "READY=1");
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(recv(&listener), "STOPPING=1");
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "{status:?}\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
}
