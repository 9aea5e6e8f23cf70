//! The full pipeline's cost per stage. The harness's full-pipeline traffic (GRE from a
//! customer, decapsulated, filtered on the way in and out, looked up in the 500k-prefix table,
//! spread over two tunnels, clamped, re-encapsulated) goes through the in-memory pipeline under
//! a ladder of configs, each adding one stage to the one below; a stage's cost is the
//! difference in TSC cycles per packet between its rung and the rung below. Every rung sees the
//! same 8192 flows, so only the stage changes.
//!
//!   cargo bench --bench stages -- INPUT_DIR [--runs N] [--out FILE] [--buf vec]
//!
//! INPUT_DIR holds perf/traffic.rs's full.toml and full.pcap. --out writes
//! `rung cumulative_median added min max` lines for perf/report.py and the plot.
//!
//!   stages INPUT_DIR --callgrind CAPTURE [--passes N] [--buf vec]
//!
//! instead pushes INPUT_DIR/CAPTURE.pcap (full, mix, ...) N times (default 10) through the
//! full config's pipeline in `full_burst`, the unit to give callgrind's --toggle-collect
//! (perf/cg-attr.py attributes its instructions, misses and mispredicts to stages).
//!
//! Both modes hold the packets in [`Room`]s, buffers whose bounds cost what an mbuf's do;
//! `--buf vec` uses `VecBuf` instead (the figures before 2026-12-01's sixth round).
use anygate::config::{parse, Host};
use anygate::datapath::{DropReason, PacketBuf, Pipeline, VecBuf, Verdict, BURST};
use anygate::route::Snapshot;
use anygate::wire::MacAddr;
use std::collections::HashSet;
use std::hint::black_box;
use std::net::Ipv4Addr;

/// The ports and worker the harness appends to its config bodies (no device is opened here).
const PORTS: &str = include_str!("topology.toml");

/// Passes over the capture per timed run.
const PASSES: usize = 40;

/// A config body cut into its tables, so rungs can drop or edit them.
#[derive(Clone)]
struct Chunk {
    header: String,
    body: String,
}

impl Chunk {
    fn value(&self, key: &str) -> Option<&str> {
        self.body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"'))
        })
    }
    fn is_route(&self) -> bool {
        self.header == "[[routes]]"
    }
}

fn chunks(text: &str) -> Vec<Chunk> {
    let mut out: Vec<Chunk> = Vec::new();
    for line in text.lines() {
        if line.starts_with('[') {
            out.push(Chunk {
                header: line.to_string(),
                body: String::new(),
            });
        } else if let Some(c) = out.last_mut() {
            c.body.push_str(line);
            c.body.push('\n');
        }
    }
    out
}

fn render(chunks: &[Chunk]) -> String {
    let mut s = String::with_capacity(chunks.len() * 64);
    for c in chunks {
        s.push_str(&c.header);
        s.push('\n');
        s.push_str(&c.body);
    }
    s.push('\n');
    s.push_str(PORTS);
    s
}

fn read_pcap(path: &str) -> Vec<Vec<u8>> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut r = pcap_file::pcap::PcapReader::new(f).expect("a pcap file");
    let mut v = Vec::new();
    while let Some(p) = r.next_packet() {
        v.push(p.expect("a packet").data.into_owned());
    }
    v
}

/// The inner packet of a GRE frame, behind the same Ethernet header.
fn strip_gre(frame: &[u8]) -> Vec<u8> {
    let ihl = (frame[14] & 0x0f) as usize * 4;
    let mut f = frame[..14].to_vec();
    f.extend_from_slice(&frame[14 + ihl + 4..]);
    f
}

fn inner_dst(frame: &[u8]) -> u32 {
    let ihl = (frame[14] & 0x0f) as usize * 4;
    let i = 14 + ihl + 4 + 16;
    u32::from_be_bytes([frame[i], frame[i + 1], frame[i + 2], frame[i + 3]])
}

fn prefix_of(c: &Chunk) -> Option<(u32, u8)> {
    let (a, l) = c.value("prefix")?.split_once('/')?;
    Some((u32::from(a.parse::<Ipv4Addr>().ok()?), l.parse().ok()?))
}

/// The rungs, from the full pipeline down: (name, config text, frames).
fn ladder(full: &str, gre: &[Vec<u8>]) -> Vec<(&'static str, String, Vec<Vec<u8>>)> {
    let all = chunks(full);
    let no_fw: Vec<Chunk> = all
        .iter()
        .filter(|c| !c.header.starts_with("[firewall") && !c.header.starts_with("[[firewall"))
        .cloned()
        .collect();
    let no_clamp: Vec<Chunk> = no_fw
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if c.header == "[[tunnels]]" {
                c.body.push_str("mss_clamp = 0\n");
            }
            c
        })
        .collect();
    // One path per prefix: the first route of each ECMP group.
    let mut seen = HashSet::new();
    let one_path: Vec<Chunk> = no_clamp
        .iter()
        .filter(|c| !c.is_route() || seen.insert(c.value("prefix").map(str::to_string)))
        .cloned()
        .collect();
    // Only the routes the traffic uses, and the plain ones: the table's size is the difference.
    let dsts: Vec<u32> = gre.iter().map(|f| inner_dst(f)).collect();
    let mut covering = HashSet::new();
    for &d in &dsts {
        for len in 0..=32u8 {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            covering.insert((d & m, len));
        }
    }
    let small: Vec<Chunk> = one_path
        .iter()
        .filter(|c| {
            !c.is_route()
                || !c.value("nexthop").is_some_and(|n| n.starts_with("site-"))
                || prefix_of(c).is_some_and(|p| covering.contains(&p))
        })
        .cloned()
        .collect();
    let gateway: Vec<Chunk> = small
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if c.is_route() && c.value("nexthop").is_some_and(|n| n.starts_with("site-")) {
                c.body = c.body.replace("\"site-b\"", "\"10.0.0.2\"");
                c.body = c.body.replace("\"site-c\"", "\"10.0.0.2\"");
                c.body = c.body.replace("\"site-d\"", "\"10.0.0.2\"");
            }
            c
        })
        .collect();
    let plain: Vec<Vec<u8>> = gre.iter().map(|f| strip_gre(f)).collect();
    let n_small = small.iter().filter(|c| c.is_route()).count();
    println!(
        "routes per rung: full {}, small table {n_small}",
        one_path.iter().filter(|c| c.is_route()).count()
    );
    vec![
        (
            "forward (Ethernet, IPv4, lookup, TTL, L2)",
            render(&gateway),
            plain,
        ),
        ("+ GRE decapsulation", render(&gateway), gre.to_vec()),
        ("+ GRE encapsulation", render(&small), gre.to_vec()),
        ("+ 500k-prefix table", render(&one_path), gre.to_vec()),
        ("+ ECMP over two tunnels", render(&no_clamp), gre.to_vec()),
        ("+ MSS clamp", render(&no_fw), gre.to_vec()),
        (
            "+ firewall, 200 rules, in and out",
            render(&all),
            gre.to_vec(),
        ),
    ]
}

/// A packet buffer the harness refills from its frame before each pass.
trait Replay: PacketBuf {
    fn from_bytes(data: &[u8]) -> Self;
    fn reset(&mut self, data: &[u8]);
}

impl Replay for VecBuf {
    fn from_bytes(data: &[u8]) -> Self {
        VecBuf::from_bytes(data)
    }
    fn reset(&mut self, data: &[u8]) {
        VecBuf::reset(self, data)
    }
}

/// Bytes in a [`Room`]: a power of two, so that offsets masked to half of it index it
/// without a bounds test.
const ROOM: usize = 4096;
/// The largest `off + len`, and the mask that keeps each below it.
const ROOM_MASK: usize = ROOM / 2 - 1;
/// Headroom at reset, as `VecBuf`'s and an mbuf's.
const ROOM_HEAD: u16 = anygate::packet::HEADROOM as u16;

/// A packet in a fixed buffer, as an mbuf holds one: offset and length, 16 bits each, read
/// without bounds tests. `VecBuf` slices `buf[start..end]` with two tests and a subtraction
/// per look at a packet (~10 looks a packet on the full path, ~47 instructions the DPDK
/// build does not have; callgrind). Safe Rust: `off + len <= ROOM_MASK` always (every
/// method keeps it), so the masks change nothing and the compiler sees every slice inside
/// the buffer.
struct Room {
    buf: Box<[u8; ROOM]>,
    off: u16,
    len: u16,
}

impl Room {
    #[inline(always)]
    fn bounds(&self) -> (usize, usize) {
        let off = usize::from(self.off) & ROOM_MASK;
        (off, off + (usize::from(self.len) & ROOM_MASK))
    }
}

impl AsRef<[u8]> for Room {
    #[inline(always)]
    fn as_ref(&self) -> &[u8] {
        let (a, b) = self.bounds();
        &self.buf[a..b]
    }
}

impl AsMut<[u8]> for Room {
    #[inline(always)]
    fn as_mut(&mut self) -> &mut [u8] {
        let (a, b) = self.bounds();
        &mut self.buf[a..b]
    }
}

/// As `Mbuf`'s single-segment paths: one test each.
impl PacketBuf for Room {
    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n = u16::try_from(n).ok().filter(|&n| n <= self.off)?;
        self.off -= n;
        self.len += n;
        Some(self.as_mut())
    }
    #[inline]
    fn trim_front(&mut self, n: usize) -> bool {
        match u16::try_from(n) {
            Ok(n) if n <= self.len => {
                self.off += n;
                self.len -= n;
                true
            }
            _ => false,
        }
    }
    #[inline]
    fn trim_back(&mut self, n: usize) -> bool {
        match u16::try_from(n) {
            Ok(n) if n <= self.len => {
                self.len -= n;
                true
            }
            _ => false,
        }
    }
}

impl Replay for Room {
    fn from_bytes(data: &[u8]) -> Self {
        let mut r = Room {
            buf: Box::new([0; ROOM]),
            off: 0,
            len: 0,
        };
        r.reset(data);
        r
    }
    fn reset(&mut self, data: &[u8]) {
        let at = usize::from(ROOM_HEAD);
        assert!(
            at + data.len() <= ROOM_MASK,
            "a frame too long for the harness"
        );
        self.buf[at..at + data.len()].copy_from_slice(data);
        self.off = ROOM_HEAD;
        self.len = data.len() as u16;
    }
}

/// TSC cycles per packet for `frames` through `snap`, one sample per run.
fn measure<B: Replay>(snap: &Snapshot, frames: &[Vec<u8>], runs: usize) -> (Vec<f64>, [usize; 2]) {
    let mut bufs: Vec<B> = frames.iter().map(|f| B::from_bytes(f)).collect();
    let mut v = vec![Verdict::Drop(DropReason::NoRoute); frames.len()];
    let mut p = Pipeline::new();
    let mut out = Vec::new();
    for _ in 0..=runs {
        let t = anygate::dpdk::tsc();
        for _ in 0..PASSES {
            pass(&mut bufs, frames, &mut v, |b, v| p.process(snap, 0, b, v));
        }
        let both = (anygate::dpdk::tsc() - t) as f64;
        let t = anygate::dpdk::tsc();
        for _ in 0..PASSES {
            for (b, f) in bufs.chunks_mut(BURST).zip(frames.chunks(BURST)) {
                for (b, f) in b.iter_mut().zip(f) {
                    b.reset(f);
                }
                black_box(&mut *b);
            }
        }
        let reset = (anygate::dpdk::tsc() - t) as f64;
        out.push((both - reset) / (PASSES * frames.len()) as f64);
    }
    out.remove(0); // the first pass warms the caches
    let fwd = forwarded(&v);
    let blocked = v
        .iter()
        .filter(|v| **v == Verdict::Drop(DropReason::FirewallBlock))
        .count();
    (out, [fwd, blocked])
}

/// One pass of `frames` through `burst`, BURST at a time, each buffer reset from its frame.
#[inline(always)]
fn pass<B: Replay>(
    bufs: &mut [B],
    frames: &[Vec<u8>],
    v: &mut [Verdict],
    mut burst: impl FnMut(&mut [B], &mut [Verdict]),
) {
    for ((b, f), v) in bufs
        .chunks_mut(BURST)
        .zip(frames.chunks(BURST))
        .zip(v.chunks_mut(BURST))
    {
        for (b, f) in b.iter_mut().zip(f) {
            b.reset(f);
        }
        burst(b, v);
    }
}

fn forwarded(v: &[Verdict]) -> usize {
    v.iter()
        .filter(|v| matches!(v, Verdict::Forward(_)))
        .count()
}

/// One burst through the pipeline, as the worker runs it. Named for callgrind's
/// --toggle-collect.
#[inline(never)]
fn full_burst<B: PacketBuf>(p: &mut Pipeline, snap: &Snapshot, bufs: &mut [B], v: &mut [Verdict]) {
    p.process(snap, 0, bufs, v);
}

/// The callgrind mode: `passes` passes of `frames` through `snap`, nothing timed.
fn callgrind<B: Replay>(snap: &Snapshot, frames: &[Vec<u8>], passes: usize) {
    let mut bufs: Vec<B> = frames.iter().map(|f| B::from_bytes(f)).collect();
    let mut v = vec![Verdict::Drop(DropReason::NoRoute); frames.len()];
    let mut p = Pipeline::new();
    for _ in 0..passes {
        pass(&mut bufs, frames, &mut v, |b, v| {
            full_burst(&mut p, snap, b, v)
        });
    }
    println!(
        "{} packets x {passes} passes ({} per pass forwarded)",
        frames.len(),
        forwarded(&v)
    );
}

/// The running table of config `text` (the rung `name`'s).
fn snapshot(name: &str, text: &str, host: &Host) -> Snapshot {
    let cfg = parse(text, host).unwrap_or_else(|e| panic!("{name}: config refused: {e}"));
    let macs: Vec<MacAddr> = cfg
        .ports
        .iter()
        .map(|p| p.mac.unwrap_or_default())
        .collect();
    Snapshot::build(&cfg, &macs, 1, None).expect("table builds")
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let Some(dir) = args.first().filter(|a| !a.starts_with("--")) else {
        eprintln!("usage: stages INPUT_DIR [--runs N] [--out FILE] [--buf vec]");
        std::process::exit(2);
    };
    let runs: usize = get("--runs").and_then(|n| n.parse().ok()).unwrap_or(5);
    let full = std::fs::read_to_string(format!("{dir}/full.toml")).expect("full.toml");
    let gre = read_pcap(&format!("{dir}/full.pcap"));
    let host = Host { cores: vec![0, 1] };
    let vec_bufs = get("--buf").is_some_and(|b| b == "vec");
    if let Some(capture) = get("--callgrind") {
        let frames = read_pcap(&format!("{dir}/{capture}.pcap"));
        let snap = snapshot("full", &render(&chunks(&full)), &host);
        let passes = get("--passes").and_then(|n| n.parse().ok()).unwrap_or(10);
        if args.iter().any(|a| a == "--wait") {
            // Under `--instr-atstart=no`: the config's parse runs uninstrumented, then the
            // caller turns instrumentation on (`callgrind_control -i on`) and sends a line.
            eprintln!("ready");
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
        if vec_bufs {
            callgrind::<VecBuf>(&snap, &frames, passes);
        } else {
            callgrind::<Room>(&snap, &frames, passes);
        }
        return;
    }
    let mut lines = Vec::new();
    let mut below = 0.0;
    println!(
        "{:<44} {:>10} {:>8}   (min-max of {runs} runs, {} packets x {PASSES} per run)",
        "rung",
        "cyc/pkt",
        "added",
        gre.len()
    );
    for (name, text, frames) in ladder(&full, &gre) {
        let snap = snapshot(name, &text, &host);
        let (cycles, [fwd, blocked]) = if vec_bufs {
            measure::<VecBuf>(&snap, &frames, runs)
        } else {
            measure::<Room>(&snap, &frames, runs)
        };
        // Every packet must take the path the rung is about: forwarded, or blocked by a rule.
        assert_eq!(
            fwd + blocked,
            frames.len(),
            "{name}: {} packets neither forwarded nor blocked",
            frames.len() - fwd - blocked
        );
        let (med, min, max) = median(cycles);
        println!(
            "{name:<44} {med:>10.1} {:>+8.1}   ({min:.1}-{max:.1}; {blocked} blocked)",
            med - below
        );
        lines.push(format!(
            "{}\t{med:.1}\t{:.1}\t{min:.1}\t{max:.1}",
            name,
            med - below
        ));
        below = med;
    }
    if let Some(out) = get("--out") {
        std::fs::write(&out, lines.join("\n") + "\n").expect("write --out");
    }
}
