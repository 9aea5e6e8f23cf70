//! Golden test: the pipeline's decisions and output bytes over a fixed set of captures must
//! not change. Recorded on the code before the Datapath v2 restructure (issue 14), so any
//! refactoring of the datapath proves itself equivalent here.
//!
//! Inputs are regenerated from fixed seeds: the demo's captures, the perf traffic mixes (over
//! a 2,000-route table instead of 500k, first 1,000 packets each) and the fuzz seed corpus.
//! Two checks per capture:
//! - `anygate trace --json --out` (one packet per burst): its verdict lines and output pcap,
//!   byte for byte, against tests/golden/NAME.jsonl and NAME.pcap;
//! - the library pipeline over bursts of 32 (as a worker runs it): per packet its verdict and
//!   a hash of its bytes, and a hash of the counters, against tests/golden/NAME.burst.
//!
//! `GOLDEN_UPDATE=1 cargo test --test golden` rewrites the expected files (only on purpose).
use anygate::config::{parse, Host};
use anygate::datapath::{Pipeline, VecBuf, Verdict};
use anygate::route::Snapshot;
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[allow(dead_code)]
#[path = "../examples/demo_traffic.rs"]
mod demo_traffic;
#[allow(dead_code)]
#[path = "../perf/traffic.rs"]
mod perf_traffic;

const BIN: &str = env!("CARGO_BIN_EXE_anygate");
/// Packets kept from each perf mix, so the expected files stay small.
const PERF_PACKETS: usize = 1000;
const DEMO_PACKETS: usize = 300;
const PERF_ROUTES: usize = 2000;

/// The perf harness's topology, as perf/run appends it to the generated body.
const PERF_PORTS: &str = include_str!("../perf/benches/topology.toml");

struct Case {
    name: String,
    config: PathBuf,
    pcap: PathBuf,
    port: &'static str,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn read_pcap(p: &Path) -> Vec<(Duration, Vec<u8>)> {
    let mut r = PcapReader::new(File::open(p).unwrap()).unwrap();
    let mut v = Vec::new();
    while let Some(pkt) = r.next_packet() {
        let pkt = pkt.unwrap();
        v.push((pkt.timestamp, pkt.data.into_owned()));
    }
    v
}

fn write_pcap(p: &Path, frames: &[(Duration, Vec<u8>)]) {
    let mut w = PcapWriter::new(File::create(p).unwrap()).unwrap();
    for (ts, f) in frames {
        w.write_packet(&PcapPacket::new(*ts, f.len() as u32, f))
            .unwrap();
    }
}

/// Keeps the first `n` packets of a capture.
fn truncate(src: &Path, dst: &Path, n: usize) {
    let mut frames = read_pcap(src);
    frames.truncate(n);
    write_pcap(dst, &frames);
}

/// The fuzz target's config, taken from its source so the two never drift.
fn fuzz_config() -> String {
    let src = include_str!("../fuzz/fuzz_targets/pipeline.rs");
    let start = src.find("const CFG: &str = r#\"").unwrap() + "const CFG: &str = r#\"".len();
    let end = start + src[start..].find("\"#;").unwrap();
    src[start..end].to_string()
}

/// The fuzz seeds ([port byte][u16 len][frame]...) as one capture per port, 1 ms apart.
fn fuzz_captures(dir: &Path) -> [PathBuf; 2] {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pipeline");
    let mut seeds: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("seed-")
        })
        .collect();
    seeds.sort();
    let mut by_port: [Vec<(Duration, Vec<u8>)>; 2] = [Vec::new(), Vec::new()];
    let mut t = 1_000_000u64;
    for s in seeds {
        let data = std::fs::read(&s).unwrap();
        let Some((&port, mut rest)) = data.split_first() else {
            continue;
        };
        while rest.len() >= 2 {
            let n = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
            t += 1;
            by_port[(port % 2) as usize].push((Duration::from_millis(t), rest[2..2 + n].to_vec()));
            rest = &rest[2 + n..];
        }
    }
    let paths = [dir.join("fuzz-wan0.pcap"), dir.join("fuzz-lan0.pcap")];
    for (p, frames) in paths.iter().zip(&by_port) {
        write_pcap(p, frames);
    }
    paths
}

fn cases(dir: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let demo = dir.join("demo");
    demo_traffic::generate(demo.to_str().unwrap(), DEMO_PACKETS);
    let demo_cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml");
    for (file, port) in [("wan-in", "wan0"), ("lan-in", "lan0")] {
        cases.push(Case {
            name: format!("demo-{file}"),
            config: demo_cfg.clone(),
            pcap: demo.join(format!("{file}.pcap")),
            port,
        });
    }
    let perf = dir.join("perf");
    perf_traffic::generate(perf.to_str().unwrap(), PERF_ROUTES);
    for body in ["plain", "full"] {
        let text = std::fs::read_to_string(perf.join(format!("{body}.toml"))).unwrap();
        std::fs::write(
            perf.join(format!("cfg-{body}.toml")),
            text + "\n" + PERF_PORTS,
        )
        .unwrap();
    }
    for (mix, body) in [
        ("plain", "plain"),
        ("decap", "full"),
        ("encap", "full"),
        ("mix", "full"),
        ("full", "full"),
    ] {
        let pcap = perf.join(format!("{mix}-head.pcap"));
        truncate(&perf.join(format!("{mix}.pcap")), &pcap, PERF_PACKETS);
        cases.push(Case {
            name: format!("perf-{mix}"),
            config: perf.join(format!("cfg-{body}.toml")),
            pcap,
            port: "in",
        });
    }
    let fuzz_cfg = dir.join("fuzz.toml");
    std::fs::write(&fuzz_cfg, fuzz_config()).unwrap();
    let [wan, lan] = fuzz_captures(dir);
    for (pcap, port) in [(wan, "wan0"), (lan, "lan0")] {
        cases.push(Case {
            name: format!("fuzz-{port}"),
            config: fuzz_cfg.clone(),
            pcap,
            port,
        });
    }
    cases
}

/// FNV-1a, 64 bits: a stable hash for bytes in the expected files.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Runs the capture through the library pipeline in bursts of 32, as a worker does.
fn bursts(case: &Case) -> String {
    let cfg = parse(
        &std::fs::read_to_string(&case.config).unwrap(),
        &Host { cores: vec![0, 1] },
    )
    .unwrap();
    let snap = Snapshot::build(&cfg, &anygate::trace::port_macs(&cfg), 1, None).unwrap();
    let in_port = cfg.port_index(case.port).unwrap();
    let frames = read_pcap(&case.pcap);
    let mut p = Pipeline::new();
    let mut out = String::new();
    for (b, chunk) in frames.chunks(32).enumerate() {
        let mut bufs: Vec<VecBuf> = chunk.iter().map(|(_, f)| VecBuf::from_bytes(f)).collect();
        let mut v = vec![Verdict::Forward(0); bufs.len()];
        p.set_clock(chunk[0].0.as_nanos() as u64, 1_000_000_000);
        p.process(&snap, in_port, &mut bufs, &mut v);
        for (i, (buf, v)) in bufs.iter().zip(&v).enumerate() {
            let _ = writeln!(out, "{} {v:?} {:016x}", b * 32 + i, fnv(buf.as_ref()));
        }
        let wants: Vec<_> = p.take_arp_wants().collect();
        if !wants.is_empty() {
            let _ = writeln!(out, "arp {wants:?}");
        }
    }
    let _ = writeln!(
        out,
        "counters {:016x}",
        fnv(format!("{:?}", p.counters).as_bytes())
    );
    out
}

/// Compares `got` with the expected file (or rewrites it under GOLDEN_UPDATE), naming the
/// first line that differs.
fn check(name: &str, got: &[u8], failures: &mut Vec<String>) {
    let path = golden_dir().join(name);
    if std::env::var_os("GOLDEN_UPDATE").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if want == got {
        return;
    }
    let first = String::from_utf8_lossy(&want)
        .lines()
        .zip(String::from_utf8_lossy(got).lines())
        .enumerate()
        .find(|(_, (w, g))| w != g)
        .map(|(i, (w, g))| format!("line {}: expected {w}\n      got {g}", i + 1))
        .unwrap_or_else(|| format!("{} bytes expected, {} got", want.len(), got.len()));
    failures.push(format!("{name} differs: {first}"));
}

#[test]
fn pipeline_output_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for case in cases(dir.path()) {
        let out_pcap = dir.path().join(format!("{}-out.pcap", case.name));
        let out = Command::new(BIN)
            .args(["trace", "--json", "--port", case.port, "--config"])
            .arg(&case.config)
            .arg("--pcap")
            .arg(&case.pcap)
            .arg("--out")
            .arg(&out_pcap)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty(), "{}: no verdicts", case.name);
        check(&format!("{}.jsonl", case.name), &out.stdout, &mut failures);
        check(
            &format!("{}.pcap", case.name),
            &std::fs::read(&out_pcap).unwrap(),
            &mut failures,
        );
        check(
            &format!("{}.burst", case.name),
            bursts(&case).as_bytes(),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
