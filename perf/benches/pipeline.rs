//! Micro-benchmarks of the DIR-24-8 table and the in-memory pipeline, timed with the TSC so the
//! figures compare directly with dpdk-test-fib's (which also reports TSC cycles).
//!
//!   cargo bench --bench pipeline -- [--routes FILE --ips FILE] [--runs N]
//!   cargo bench --bench pipeline -- --pipeline [--path plain|encap|decap]
//!   cargo bench --bench pipeline -- --callgrind-pipeline N [--path ...]   (under valgrind)
//!   cargo bench --bench pipeline -- --callgrind-lookup N
//!   ... --pipeline|--callgrind-pipeline N [--path ...] --arr FLOWS: the demo tunnel with
//!   ARR, FLOWS flows learned first (plain: every lookup misses; decap: each packet
//!   refreshes its flow; encap: each packet is a return packet sent by its learned flow)
//!   cargo bench --bench pipeline -- --arr-cold FLOWS [--set N] [--runs R]: FLOWS random flows
//!   learned, then N frames (default 262,144) of learned flows (hits), of unknown flows
//!   (misses) and of a mix, each set timed with ARR off and on, interleaved: ARR out of cache
//!
//!   cargo bench --bench pipeline -- --counters N: the counter traffic between a worker and
//!   the management thread, N times each (under callgrind, toggle one of the functions named
//!   `counters_*`): a worker's publish with all or a few counters changed, and the
//!   management tick's read of two workers' blocks, whole or only the rx cells
//!
//! FILE formats are dpdk-test-fib's: `a.b.c.d/len nexthop` per route, one address per line.
use anygate::config::{parse, Host};
use anygate::datapath::tap::{self, Recorder, Tap};
use anygate::datapath::{DropReason, Pipeline, VecBuf, Verdict, BURST};
use anygate::lpm::{Dir24_8, Editor, Prefix, MAX_TBL8_GROUPS, MAX_VALUE};
use anygate::route::{Change, Snapshot};
use anygate::wire::MacAddr;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

fn tsc() -> u64 {
    anygate::dpdk::tsc()
}

/// TSC ticks per nanosecond, measured against the monotonic clock.
fn tsc_per_ns() -> f64 {
    let (t0, c0) = (Instant::now(), tsc());
    std::thread::sleep(std::time::Duration::from_millis(200));
    (tsc() - c0) as f64 / t0.elapsed().as_nanos() as f64
}

fn load_routes(path: &str) -> Vec<(Prefix, u32)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (a, len) = it.next()?.split_once('/')?;
            let nh: u64 = it.next()?.parse().ok()?;
            let p = Prefix::new(u32::from(a.parse::<Ipv4Addr>().ok()?), len.parse().ok()?)?;
            // Folded into the 15 bits a DIR-24-8 entry holds (rte_lpm's hold 24).
            Some((p, (nh % (MAX_VALUE as u64 + 1)) as u32))
        })
        .collect()
}

fn load_ips(path: &str) -> Vec<u32> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter_map(|l| l.trim().parse::<Ipv4Addr>().ok().map(u32::from))
        .collect()
}

/// A deterministic xorshift, so runs see the same table without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// 100k prefixes shaped like a DFZ table (mostly /24, some shorter, a few longer) and 1M
/// addresses drawn from them.
fn synthetic() -> (Vec<(Prefix, u32)>, Vec<u32>) {
    let mut r = Rng(0x9e3779b97f4a7c15);
    let mut routes = Vec::new();
    for i in 0..100_000u32 {
        let len = match r.next() % 100 {
            0..=59 => 24,
            60..=89 => 16 + (r.next() % 8) as u8,
            90..=96 => 8 + (r.next() % 8) as u8,
            _ => 25 + (r.next() % 8) as u8,
        };
        let addr = (r.next() as u32) & Prefix::mask(len);
        routes.push((Prefix { addr, len }, i % 1024));
    }
    let ips = (0..1_000_000)
        .map(|_| {
            let (p, _) = routes[(r.next() % routes.len() as u64) as usize];
            p.addr | (r.next() as u32 & !Prefix::mask(p.len))
        })
        .collect();
    (routes, ips)
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn report(name: &str, unit: &str, v: Vec<f64>) {
    let (med, min, max) = median(v);
    println!("{name:<40} {med:>9.2} {unit}  (min {min:.2}, max {max:.2})");
}

fn bench_lpm(routes: &[(Prefix, u32)], ips: &[u32], runs: usize) {
    println!(
        "DIR-24-8: {} routes, {} lookup addresses, {runs} runs",
        routes.len(),
        ips.len()
    );
    let mut build = Vec::new();
    let mut table = None;
    for _ in 0..runs {
        let t = tsc();
        let d = Dir24_8::build(routes, MAX_TBL8_GROUPS).expect("table builds");
        build.push((tsc() - t) as f64 / routes.len() as f64);
        table = Some(d);
    }
    let d = table.expect("runs >= 1");
    report("build, TSC cycles per route", "cyc", build);
    println!(
        "  {} tbl8 groups, {:.1} MiB",
        d.tbl8_groups(),
        d.memory_bytes() as f64 / 1048576.0
    );

    // Bulk: bursts of 64 timed one by one, as dpdk-test-fib does.
    let mut out = [0u32; 64];
    let mut bulk = Vec::new();
    let mut single = Vec::new();
    for _ in 0..runs {
        let mut acc = 0u64;
        for chunk in ips.chunks_exact(64) {
            let t = tsc();
            d.lookup_bulk(chunk, &mut out, u32::MAX);
            acc += tsc() - t;
            black_box(&out);
        }
        bulk.push(acc as f64 / (ips.len() / 64 * 64) as f64);
        let t = tsc();
        let mut x = 0u32;
        for ip in ips {
            x = x.wrapping_add(d.lookup(*ip).unwrap_or(0));
        }
        black_box(x);
        single.push((tsc() - t) as f64 / ips.len() as f64);
    }
    report("lookup_bulk (64), TSC cycles per lookup", "cyc", bulk);
    report("lookup (single), TSC cycles per lookup", "cyc", single);
    bench_updates(routes, ips, runs);
}

/// In-place updates, one prefix at a time as rte_lpm_add/rte_lpm_delete take them: every
/// 5th prefix withdrawn, then added back; the table must answer every address as before.
fn bench_updates(routes: &[(Prefix, u32)], ips: &[u32], runs: usize) {
    let mut before = vec![0u32; ips.len()];
    let sample: Vec<(Prefix, u32)> = routes.iter().step_by(5).copied().collect();
    let (mut del, mut add) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let mut e = Editor::build(routes, MAX_TBL8_GROUPS).expect("table builds");
        e.table().lookup_bulk(ips, &mut before, u32::MAX);
        let t = tsc();
        for (p, _) in &sample {
            black_box(e.remove(*p));
        }
        del.push((tsc() - t) as f64 / sample.len() as f64);
        let t = tsc();
        for (p, v) in &sample {
            black_box(e.insert(*p, *v).expect("room"));
        }
        add.push((tsc() - t) as f64 / sample.len() as f64);
        let mut after = vec![0u32; ips.len()];
        e.table().lookup_bulk(ips, &mut after, u32::MAX);
        assert!(before == after, "withdraw + re-add changed some lookup");
    }
    println!("  in-place updates of {} prefixes:", sample.len());
    report("withdraw, TSC cycles per prefix", "cyc", del);
    report("add, TSC cycles per prefix", "cyc", add);
}

/// The demo's config: customer prefix 172.16.0.0/12 behind lan0 via a static neighbour.
const CFG: &str = include_str!("../../config/demo.toml");

/// What a benchmark burst exercises.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// 64-byte UDP frames routed to a gateway (lan0).
    Plain,
    /// The same toward the customer prefix behind the GRE tunnel: encapsulated.
    Encap,
    /// GRE from the customer, 64-byte inner UDP toward the Internet: decapsulated.
    Decap,
}

impl Path {
    fn parse(s: &str) -> Option<Path> {
        match s {
            "plain" => Some(Path::Plain),
            "encap" => Some(Path::Encap),
            "decap" => Some(Path::Decap),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Path::Plain => "plain forwarding",
            Path::Encap => "GRE encap",
            Path::Decap => "GRE decap",
        }
    }
    /// The verdict every packet of the burst must get.
    fn verdict(self) -> Verdict {
        match self {
            Path::Plain => Verdict::Forward(1),
            Path::Encap | Path::Decap => Verdict::Forward(0),
        }
    }
}

/// A burst of 32 frames for `path`, built with etherparse, toward 32 different hosts.
fn burst_frames(path: Path) -> Vec<Vec<u8>> {
    const WAN: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const UP: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
    (0..BURST as u8)
        .map(|i| {
            let mut f = Vec::new();
            let payload = [0u8; 18];
            match path {
                Path::Plain | Path::Encap => {
                    let dst = if path == Path::Plain {
                        [172, 16, i, 1]
                    } else {
                        [192, 168, 10, i + 1]
                    };
                    let b = etherparse::PacketBuilder::ethernet2(UP, WAN)
                        .ipv4([198, 51, 100, 1], dst, 64)
                        .udp(4000, 53);
                    b.write(&mut f, &payload).expect("write to Vec");
                }
                Path::Decap => {
                    let mut inner = vec![0, 0, 0x08, 0x00];
                    let b = etherparse::PacketBuilder::ipv4(
                        [192, 168, 10, i + 1],
                        [93, 184, 216, 34],
                        64,
                    )
                    .udp(4000, 53);
                    b.write(&mut inner, &payload).expect("write to Vec");
                    let b = etherparse::PacketBuilder::ethernet2(UP, WAN).ipv4(
                        [198, 51, 100, 20],
                        [203, 0, 113, 10],
                        60,
                    );
                    b.write(&mut f, etherparse::IpNumber::GRE, &inner)
                        .expect("write to Vec");
                }
            }
            f
        })
        .collect()
}

/// The bench table; with `Some(flows)`, ARR on the demo tunnel and `flows` random flows
/// learned into it (plus the encap path's 32, as return flows).
fn snapshot_arr(arr: Option<usize>) -> Snapshot {
    let text = match arr {
        None => CFG.to_owned(),
        Some(_) => CFG.replacen(
            "interface_address = \"10.100.0.0/31\"",
            "interface_address = \"10.100.0.0/31\"\nautomatic_return_routing = true",
            1,
        ),
    };
    let snap = snapshot_of(&text);
    if let (Some(n), Some(t)) = (arr, snap.arr_table()) {
        let mut rng = Rng(7);
        let mut learned = 0;
        for _ in 0..n {
            let r = rng.next();
            let k = anygate::arr::Key {
                src: (r >> 32) as u32,
                dst: 0xc0a8_0000 | (r as u32 & 0xffff),
                proto: 17,
                ports: (r >> 8) as u32,
            };
            learned +=
                usize::from(t.learn(&k, snap.arr_epoch, 0, 0, 0) == anygate::arr::Learned::New);
        }
        for i in 0..BURST as u8 {
            let k = anygate::arr::Key {
                src: u32::from_be_bytes([198, 51, 100, 1]),
                dst: u32::from_be_bytes([192, 168, 10, i + 1]),
                proto: 17,
                ports: 4000 << 16 | 53,
            };
            t.learn(&k, snap.arr_epoch, 0, 0, 0);
        }
        eprintln!(
            "arr: {learned} of {n} random flows learned; table {} entries, {} bytes",
            t.capacity(),
            t.bytes()
        );
    }
    snap
}

fn snapshot_of(text: &str) -> Snapshot {
    let cfg = parse(text, &Host { cores: vec![0, 1] }).expect("bench config");
    let macs: Vec<MacAddr> = cfg
        .ports
        .iter()
        .map(|p| p.mac.unwrap_or_default())
        .collect();
    Snapshot::build(&cfg, &macs, 1, None).expect("bench table")
}

#[inline(never)]
fn reset_burst(bufs: &mut [VecBuf], frames: &[Vec<u8>]) {
    for (b, f) in bufs.iter_mut().zip(frames) {
        b.reset(f);
    }
}

/// A worker's trace and capture tap, disarmed (as it is but while an operator traces).
struct Tapped {
    tap: Tap,
    rec: Recorder,
}

impl Tapped {
    fn new() -> Tapped {
        Tapped {
            tap: Tap::default(),
            rec: Recorder::default(),
        }
    }
}

/// The measured unit: one burst through the pipeline, behind the tap's check, as a worker
/// runs it. Named for callgrind's --toggle-collect.
#[inline(never)]
fn process_burst(
    p: &mut Pipeline,
    s: &Snapshot,
    bufs: &mut [VecBuf],
    v: &mut [Verdict],
    t: &mut Tapped,
) {
    tap::process(p, s, 0, bufs, v, &t.tap, &mut t.rec, 0);
}

fn bench_pipeline(runs: usize, path: Path, arr: Option<usize>) {
    let snap = snapshot_arr(arr);
    let frames = burst_frames(path);
    let mut bufs: Vec<VecBuf> = frames.iter().map(|f| VecBuf::from_bytes(f)).collect();
    let mut v = [Verdict::Drop(DropReason::NoRoute); BURST];
    let mut p = Pipeline::new();
    let mut tapped = Tapped::new();
    let iters = 200_000;
    let mut cycles = Vec::new();
    let mut reset_only = Vec::new();
    for _ in 0..runs {
        let t = tsc();
        for _ in 0..iters {
            reset_burst(&mut bufs, &frames);
            process_burst(&mut p, &snap, &mut bufs, &mut v, &mut tapped);
        }
        let both = (tsc() - t) as f64;
        let t = tsc();
        for _ in 0..iters {
            reset_burst(&mut bufs, &frames);
            black_box(&mut bufs);
        }
        let reset = (tsc() - t) as f64;
        cycles.push((both - reset) / (iters * BURST) as f64);
        reset_only.push(reset / (iters * BURST) as f64);
    }
    assert!(
        v.iter().all(|v| *v == path.verdict()),
        "bench packets must take the {} path",
        path.name()
    );
    println!(
        "pipeline: burst of {BURST} 64-byte UDP/IPv4 frames, {}, {runs} runs",
        path.name()
    );
    report("process, TSC cycles per packet", "cyc", cycles.clone());
    report("(buffer reset, subtracted above)", "cyc", reset_only);
    let hz = tsc_per_ns();
    let (med, _, _) = median(cycles);
    println!(
        "  = {:.1} ns per packet, {:.1} Mpps per core at {:.2} GHz TSC",
        med / hz,
        hz * 1e3 / med,
        hz
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let path = get("--path")
        .map(|p| Path::parse(&p).expect("--path plain|encap|decap"))
        .unwrap_or(Path::Plain);
    let arr = get("--arr").and_then(|n| n.parse::<usize>().ok());
    if let Some(n) = get("--callgrind-pipeline").and_then(|n| n.parse::<usize>().ok()) {
        let snap = snapshot_arr(arr);
        let frames = burst_frames(path);
        let mut bufs: Vec<VecBuf> = frames.iter().map(|f| VecBuf::from_bytes(f)).collect();
        let mut v = [Verdict::Drop(DropReason::NoRoute); BURST];
        let mut p = Pipeline::new();
        let mut tapped = Tapped::new();
        for _ in 0..n {
            reset_burst(&mut bufs, &frames);
            process_burst(&mut p, &snap, &mut bufs, &mut v, &mut tapped);
        }
        println!("processed {} packets", n * BURST);
        if arr.is_some() {
            let c = &p.counters;
            println!(
                "arr: learned {} refreshed {} refused {} returned {}",
                c.arr_learned, c.arr_refreshed, c.arr_refused, c.arr_returned
            );
        }
        return;
    }
    if let Some(n) = get("--counters").and_then(|n| n.parse::<usize>().ok()) {
        return bench_counters(n);
    }
    let (routes, ips) = match (get("--routes"), get("--ips")) {
        (Some(r), Some(i)) => (load_routes(&r), load_ips(&i)),
        _ => synthetic(),
    };
    if let Some(n) = get("--callgrind-lookup").and_then(|n| n.parse::<usize>().ok()) {
        let d = Dir24_8::build(&routes, MAX_TBL8_GROUPS).expect("table builds");
        let mut out = [0u32; 64];
        for chunk in ips.chunks_exact(64).cycle().take(n) {
            lookup_chunk(&d, chunk, &mut out);
        }
        println!("looked up {} addresses", n * 64);
        return;
    }
    if let Some(dir) = get("--firewall") {
        return bench_firewall(
            &dir,
            get("--runs").and_then(|n| n.parse().ok()).unwrap_or(5),
            get("--callgrind"),
        );
    }
    if args.iter().any(|a| a == "--snapshot") {
        return bench_snapshot(&routes);
    }
    let runs = get("--runs").and_then(|n| n.parse().ok()).unwrap_or(5);
    if let Some(learn) = get("--arr-cold").and_then(|n| n.parse().ok()) {
        let set = get("--set").and_then(|n| n.parse().ok()).unwrap_or(1 << 18);
        return bench_arr_cold(runs, learn, set);
    }
    if args.iter().any(|a| a == "--bench" || a == "--lpm")
        || !args.iter().any(|a| a == "--pipeline")
    {
        bench_lpm(&routes, &ips, runs);
    }
    if !args.iter().any(|a| a == "--lpm") {
        bench_pipeline(runs, path, arr);
    }
}

#[inline(never)]
fn lookup_chunk(d: &Dir24_8, chunk: &[u32], out: &mut [u32; 64]) {
    d.lookup_bulk(chunk, out, u32::MAX);
}

/// A whole config at table scale: every prefix becomes a route toward one of four tunnels,
/// half of them with a second, lower-priority route (so groups and route sets are exercised).
/// Times validation and the snapshot build (FIB, route sets, groups, source filter).
fn bench_snapshot(prefixes: &[(Prefix, u32)]) {
    use anygate::config::{validate, RawConfig};
    let mut text = String::from(
        "[node]\nanycast_addresses = [\"203.0.113.10\"]\nallow_public_prefixes = true\n\
         [[ports]]\nname = \"wan0\"\ndevice = \"net_null0\"\nmac = \"02:00:00:00:00:01\"\naddress = \"192.0.2.1/24\"\n\
         [[workers]]\ncore = 1\nrx = [{ port = \"wan0\" }]\n\
         [[neighbors]]\nip = \"192.0.2.254\"\nmac = \"02:00:00:00:00:fe\"\nport = \"wan0\"\n\
         [[routes]]\nprefix = \"0.0.0.0/0\"\nnexthop = \"192.0.2.254\"\n",
    );
    for t in 1..=4 {
        text += &format!(
            "[[tunnels]]\nname = \"T{t}\"\ntype = \"gre\"\ncustomer_endpoint = \"198.51.100.{t}\"\n\
             edge_endpoint = \"203.0.113.10\"\ninterface_address = \"10.255.0.{}/31\"\n",
            2 * t
        );
    }
    let mut raw: RawConfig = toml::from_str(&text).expect("bench config");
    let template = raw.routes[0].clone();
    let mut n = 0;
    // wan0's own subnet is its connected route; a configured route for it is refused.
    let wan = Prefix::new(0xc000_0200, 24).expect("wan0's subnet");
    for (p, v) in prefixes.iter().filter(|(p, _)| p.len > 0 && *p != wan) {
        let mut r = template.clone();
        r.prefix = p.to_string();
        r.nexthop = format!("T{}", 1 + v % 4);
        raw.routes.push(r.clone());
        n += 1;
        if v % 2 == 0 {
            r.nexthop = format!("T{}", 1 + (v + 1) % 4);
            r.priority = 200;
            raw.routes.push(r);
            n += 1;
        }
    }
    let host = Host { cores: vec![0, 1] };
    let t = Instant::now();
    let cfg = validate(&raw, &host).expect("valid");
    let v = t.elapsed();
    let t = Instant::now();
    let snap = Snapshot::build(&cfg, &[MacAddr([2, 0, 0, 0, 0, 1])], 1, None).expect("table");
    let b = t.elapsed();
    println!(
        "{n} routes over {} prefixes: validate {:.2} s, snapshot build {:.2} s ({} route sets, {} tbl8 groups, {:.1} MiB FIB)",
        prefixes.len(),
        v.as_secs_f64(),
        b.as_secs_f64(),
        snap.sets.len(),
        snap.fib.tbl8_groups(),
        snap.fib.memory_bytes() as f64 / 1048576.0
    );
    let t = Instant::now();
    let next = snap
        .with_health(1, anygate::config::Health::Down, 2)
        .expect("tunnel");
    println!(
        "T2 down: {} route sets rebuilt in {:.3} ms",
        snap.sets_through(1),
        t.elapsed().as_secs_f64() * 1e3
    );
    black_box(next);

    // Route changes through the route table, as `anygate ctl update-routes` applies them:
    // every 50th route withdrawn and added back, one change per batch, then 1000 per batch.
    let (snap, mut rib) =
        Snapshot::build_with_rib(&cfg, &[MacAddr([2, 0, 0, 0, 0, 1])], 1, None).expect("table");
    let (mut publisher, _readers) = anygate::rcu::new(std::sync::Arc::new(snap), 0);
    let sample: Vec<_> = cfg.routes.iter().skip(1).step_by(50).cloned().collect();
    let dels: Vec<Change> = sample
        .iter()
        .map(|r| Change::Remove {
            prefix: r.prefix,
            via: r.via,
        })
        .collect();
    let adds: Vec<Change> = sample.iter().cloned().map(Change::Add).collect();
    for per_batch in [1usize, 1000] {
        let t = Instant::now();
        for list in [&dels, &adds] {
            for b in list.chunks(per_batch) {
                rib.apply(b, &mut publisher).expect("change applies");
                publisher.reclaim();
            }
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "route changes, {per_batch} per batch: {} changes in {:.3} s = {:.0} routes/s",
            2 * sample.len(),
            secs,
            2.0 * sample.len() as f64 / secs
        );
    }
}

/// The firewall on a rule set and traffic written by perf/acl-rules.py (the same rules
/// dpdk-test-acl gets): TSC cycles per packet for the compiled classifier and for the
/// rule-by-rule evaluator, which must agree on every packet. Bursts of 32 (the datapath's)
/// through `classify_burst` too. `--callgrind 1`: only the per-packet calls, `--callgrind
/// burst`: only the bursts (callgrind's instructions per packet for either).
fn bench_firewall(dir: &str, runs: usize, callgrind_only: Option<String>) {
    use anygate::firewall::{first_match, parse, Action, Classifier, Fields, Lists, Packet, Rule};
    let exprs = std::fs::read_to_string(format!("{dir}/rules.expr")).expect("rules.expr");
    let rules: Vec<Rule> = exprs
        .lines()
        .map(|l| Rule::new(parse(l, &Lists::new()).expect("rule parses"), Action::Block))
        .collect();
    let trace = std::fs::read_to_string(format!("{dir}/trace.acl")).expect("trace.acl");
    let packets: Vec<Fields<'static>> = trace
        .lines()
        .filter_map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            let (src, dst, sp, dp, proto) =
                (*v.first()?, *v.get(1)?, *v.get(2)?, *v.get(3)?, *v.get(4)?);
            let mut f = Fields {
                src: src as u32,
                dst: dst as u32,
                proto: proto as u8,
                len: 60,
                hdr_len: 20,
                ttl: 64,
                ..Default::default()
            };
            if proto == 6 {
                f.tcp = Some((sp as u16, dp as u16, 0));
            } else {
                f.udp = Some((sp as u16, dp as u16));
            }
            Some(f)
        })
        .collect();
    let t = std::time::Instant::now();
    let c = Classifier::new(&rules);
    let built = t.elapsed();
    let mut out = [None; 32];
    // Keys built ahead, as dpdk-test-acl classifies keys it built before timing: the
    // classifier alone, without the bench's `Fields` -> `Packet` per packet.
    let keys: Vec<Packet> = packets.iter().map(|p| c.packet(p)).collect();
    if let Some(how) = callgrind_only {
        let mut hits = 0usize;
        if how == "burst" {
            for ps in packets.chunks(32) {
                hits += classify_burst(&c, ps, &mut out);
            }
        } else if how == "keys" {
            for (k, p) in keys.iter().zip(&packets) {
                hits += classify_key(&c, k, p);
            }
        } else {
            for p in &packets {
                hits += classify_one(&c, p);
            }
        }
        println!("classified {} packets, {hits} matched", packets.len());
        return;
    }
    let mut matched = 0;
    for (p, k) in packets.iter().zip(&keys) {
        let (a, b) = (c.classify(p), first_match(&rules, p));
        assert_eq!(a, b, "classifier and evaluator disagree");
        let k = c.classify_packet(k, || p.clone(), |_| {});
        assert_eq!(k, b, "classifier on prebuilt keys and evaluator disagree");
        matched += a.is_some() as usize;
    }
    for ps in packets.chunks(32) {
        c.classify_burst(ps, &mut out, |_, _| {});
        let want: Vec<_> = ps.iter().map(|p| first_match(&rules, p)).collect();
        assert_eq!(&out[..ps.len()], &want[..], "bursts and evaluator disagree");
    }
    let mut compiled = Vec::new();
    let mut prebuilt = Vec::new();
    let mut bursts = Vec::new();
    let mut naive = Vec::new();
    for _ in 0..runs {
        let t = tsc();
        for p in &packets {
            black_box(c.classify(black_box(p)));
        }
        compiled.push((tsc() - t) as f64 / packets.len() as f64);
        let t = tsc();
        for (k, p) in keys.iter().zip(&packets) {
            black_box(c.classify_packet(black_box(k), || p.clone(), |_| {}));
        }
        prebuilt.push((tsc() - t) as f64 / packets.len() as f64);
        let t = tsc();
        for ps in packets.chunks(32) {
            c.classify_burst(black_box(ps), &mut out, |_, _| {});
            black_box(&out);
        }
        bursts.push((tsc() - t) as f64 / packets.len() as f64);
        let t = tsc();
        for p in &packets {
            black_box(first_match(&rules, black_box(p)));
        }
        naive.push((tsc() - t) as f64 / packets.len() as f64);
    }
    println!(
        "firewall: {} rules ({} left to the evaluator), {} packets, {matched} matched a rule",
        rules.len(),
        c.fallback_rules().len(),
        packets.len()
    );
    println!(
        "classifier built in {:.1} ms, tables {:.1} KiB, tries {:.1} KiB, {} cross-product steps, {} slots intersected per packet",
        built.as_secs_f64() * 1e3,
        c.table_bytes() as f64 / 1024.0,
        c.trie_bytes() as f64 / 1024.0,
        c.shape().0,
        c.shape().1
    );
    report("classifier, TSC cycles per packet", "cyc", compiled);
    report("classifier, prebuilt keys, TSC cyc/pkt", "cyc", prebuilt);
    report("classifier, bursts of 32, TSC cyc/pkt", "cyc", bursts);
    report(
        "rule-by-rule evaluator, TSC cycles per packet",
        "cyc",
        naive,
    );
}

#[inline(never)]
fn classify_burst(
    c: &anygate::firewall::Classifier,
    ps: &[anygate::firewall::Fields<'_>],
    out: &mut [Option<(usize, anygate::firewall::Action)>],
) -> usize {
    c.classify_burst(ps, out, |_, _| {});
    out[..ps.len()].iter().filter(|a| a.is_some()).count()
}

/// `classify_one` over a key built ahead (`Classifier::packet`); `p` only for rules left to
/// the evaluator.
#[inline(never)]
fn classify_key(
    c: &anygate::firewall::Classifier,
    k: &anygate::firewall::Packet,
    p: &anygate::firewall::Fields<'_>,
) -> usize {
    c.classify_packet(k, || p.clone(), |_| {}).is_some() as usize
}

#[inline(never)]
fn classify_one(c: &anygate::firewall::Classifier, p: &anygate::firewall::Fields<'_>) -> usize {
    c.classify(p).is_some() as usize
}

/// Frames of the `--arr-cold` bench, each in a fixed slot one after another, so a set's
/// footprint is exactly `lens.len() * slot` bytes (plus a byte of length per frame).
struct ColdSet {
    data: Vec<u8>,
    lens: Vec<u8>,
    slot: usize,
}

/// A UDP return flow toward the customer prefix behind the demo tunnel (192.168.10.0/24), from
/// a random address of 198.18.0.0/15 and random ports: as ARR keys it (source, destination).
fn cold_key(r: u64) -> anygate::arr::Key {
    anygate::arr::Key {
        src: 0xc612_0000 | (r >> 47) as u32,
        dst: u32::from_be_bytes([192, 168, 10, 1 + (r >> 8) as u8 % 254]),
        proto: 17,
        ports: (1024 + (r >> 16) as u32 % 64_000) << 16 | (r >> 32) as u16 as u32,
    }
}

/// How a `cold_key` flow's packet travels.
#[derive(Clone, Copy)]
enum Cold {
    /// From the upstream port toward the customer: a return packet (encap path).
    Return,
    /// From the customer through the tunnel (decap path): learns or refreshes the flow.
    Forward,
    /// From the upstream port toward 172.16.0.0/12 (plain path), source and ports kept.
    Plain,
}

fn cold_frame(k: &anygate::arr::Key, how: Cold) -> Vec<u8> {
    const UP: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
    const WAN: [u8; 6] = [2, 0, 0, 0, 0, 1];
    let (src, dst) = (k.src.to_be_bytes(), k.dst.to_be_bytes());
    let (sport, dport) = ((k.ports >> 16) as u16, k.ports as u16);
    let mut f = Vec::with_capacity(128);
    match how {
        Cold::Return | Cold::Plain => {
            let dst = match how {
                Cold::Plain => [172, 16, dst[3], 1],
                _ => dst,
            };
            etherparse::PacketBuilder::ethernet2(UP, WAN)
                .ipv4(src, dst, 64)
                .udp(sport, dport)
                .write(&mut f, &[0u8; 18])
                .expect("write to Vec");
        }
        Cold::Forward => {
            let mut inner = vec![0, 0, 0x08, 0x00];
            etherparse::PacketBuilder::ipv4(dst, src, 64)
                .udp(dport, sport)
                .write(&mut inner, &[0u8; 18])
                .expect("write to Vec");
            etherparse::PacketBuilder::ethernet2(UP, WAN)
                .ipv4([198, 51, 100, 20], [203, 0, 113, 10], 60)
                .write(&mut f, etherparse::IpNumber::GRE, &inner)
                .expect("write to Vec");
        }
    }
    f
}

fn cold_set(frames: impl Iterator<Item = Vec<u8>>, slot: usize) -> ColdSet {
    let mut set = ColdSet {
        data: Vec::new(),
        lens: Vec::new(),
        slot,
    };
    for f in frames {
        set.lens.push(f.len() as u8);
        set.data.extend_from_slice(&f);
        set.data.resize(set.lens.len() * slot, 0);
    }
    set
}

/// One pass over `set` (bursts of 32 taken in order); with `sim` None only the buffer
/// resets, the part subtracted. Returns TSC cycles.
fn cold_pass(
    set: &ColdSet,
    sim: Option<(&mut Pipeline, &Snapshot)>,
    bufs: &mut [VecBuf],
    v: &mut [Verdict],
    t: &mut Tapped,
) -> u64 {
    let bursts = set
        .data
        .chunks_exact(set.slot * BURST)
        .zip(set.lens.chunks_exact(BURST));
    let start = tsc();
    match sim {
        Some((p, s)) => {
            for (burst, lens) in bursts {
                for ((b, f), &l) in bufs.iter_mut().zip(burst.chunks_exact(set.slot)).zip(lens) {
                    b.reset(&f[..usize::from(l)]);
                }
                process_burst(p, s, bufs, v, t);
            }
        }
        None => {
            for (burst, lens) in bursts {
                for ((b, f), &l) in bufs.iter_mut().zip(burst.chunks_exact(set.slot)).zip(lens) {
                    b.reset(&f[..usize::from(l)]);
                }
                black_box(&mut *bufs);
            }
        }
    }
    tsc() - start
}

/// Cycles ARR adds with a full table whose flows are not in cache (issue 18): `learn` random
/// return flows into the default table, then time passes over `set` frames of (a) return
/// packets of random learned flows (hits), (b) flows never learned (misses) and (d) a mix,
/// each with ARR on and on the same frames with ARR off, interleaved.
fn bench_arr_cold(runs: usize, learn: usize, set: usize) {
    let on = snapshot_of(&CFG.replacen(
        "interface_address = \"10.100.0.0/31\"",
        "interface_address = \"10.100.0.0/31\"\nautomatic_return_routing = true",
        1,
    ));
    let off = snapshot_of(CFG);
    let t = on.arr_table().expect("ARR on the demo tunnel");
    let mut rng = Rng(11);
    let mut learned = Vec::with_capacity(learn);
    for _ in 0..learn {
        let k = cold_key(rng.next());
        if t.learn(&k, on.arr_epoch, 0, 0, 0) == anygate::arr::Learned::New {
            learned.push(k);
        }
    }
    // A sample spread over the learning order: early flows sit in their first bucket more
    // often than late ones.
    let step = (learned.len() / set).max(1);
    let hits: Vec<_> = learned.iter().step_by(step).take(set).copied().collect();
    let mut rng = Rng(12);
    let misses: Vec<_> = std::iter::repeat_with(|| cold_key(rng.next()))
        .filter(|k| t.lookup(k).is_none())
        .take(hits.len())
        .collect();
    let n = hits.len() / BURST * BURST;
    // perf/run's "mix" proportions: 40% plain (unknown flows), 35% toward the customer (here
    // return packets of learned flows), 25% from the customer's tunnel (learned flows again:
    // refreshes). Learned flows are the `hits` not used by the return packets.
    let mut rng = Rng(13);
    let (mut returns, mut refreshes) = (0u64, 0u64);
    let mix: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let r = rng.next() % 100;
            let other = hits[(i + n / 2) % n];
            match r {
                0..=39 => cold_frame(&misses[i], Cold::Plain),
                40..=64 => {
                    refreshes += 1;
                    cold_frame(&other, Cold::Forward)
                }
                _ => {
                    returns += 1;
                    cold_frame(&hits[i], Cold::Return)
                }
            }
        })
        .collect();
    let sets = [
        (
            "(a) ARR hits",
            cold_set(hits[..n].iter().map(|k| cold_frame(k, Cold::Return)), 64),
        ),
        (
            "(b) ARR misses",
            cold_set(misses[..n].iter().map(|k| cold_frame(k, Cold::Return)), 64),
        ),
        ("(d) mix 40/35/25", cold_set(mix.into_iter(), 128)),
    ];
    println!(
        "arr-cold: {} of {learn} random flows learned into a {}-entry table ({} bytes); \
         {n} frames per set, (a) (b) {} bytes, (d) {} bytes ({returns} returns, {refreshes} \
         from the tunnel)",
        learned.len(),
        t.capacity(),
        t.bytes(),
        sets[0].1.data.len(),
        sets[2].1.data.len(),
    );
    let mut bufs: Vec<VecBuf> = (0..BURST).map(|_| VecBuf::from_bytes(&[0; 60])).collect();
    let mut v = [Verdict::Drop(DropReason::NoRoute); BURST];
    let mut tapped = Tapped::new();
    let (mut p_on, mut p_off) = (Pipeline::new(), Pipeline::new());
    let per = |c: u64, r: u64| (c.saturating_sub(r)) as f64 / n as f64;
    // Per set: off, on, added, ratio, reset.
    let mut res: Vec<[Vec<f64>; 5]> = (0..sets.len()).map(|_| Default::default()).collect();
    for run in 0..=runs {
        for (i, (_, set)) in sets.iter().enumerate() {
            let returned = p_on.counters.arr_returned;
            let r = cold_pass(set, None, &mut bufs, &mut v, &mut tapped);
            let c_off = cold_pass(
                set,
                Some((&mut p_off, &off)),
                &mut bufs,
                &mut v,
                &mut tapped,
            );
            assert!(
                v.iter().all(|v| matches!(v, Verdict::Forward(_))),
                "forwarded"
            );
            let c_on = cold_pass(set, Some((&mut p_on, &on)), &mut bufs, &mut v, &mut tapped);
            assert!(
                v.iter().all(|v| matches!(v, Verdict::Forward(_))),
                "forwarded"
            );
            let sent = p_on.counters.arr_returned - returned;
            assert_eq!(sent, [n as u64, 0, returns][i], "hits hit, misses miss");
            // Run 0 brings the sets and the table into the caches they fit: not counted.
            if run > 0 {
                let (off, on) = (per(c_off, r), per(c_on, r));
                for (col, x) in res[i].iter_mut().zip([off, on, on - off, on / off]) {
                    col.push(x);
                }
                res[i][4].push(r as f64 / n as f64);
            }
        }
    }
    assert_eq!(
        p_on.counters.arr_learned, 0,
        "the mix's tunnel packets refresh"
    );
    println!("TSC cycles per packet, {runs} runs (each: off then on, set after set)");
    for ((name, _), [off, on, added, ratio, reset]) in sets.iter().zip(res) {
        report(&format!("{name}: ARR off"), "cyc", off);
        report(&format!("{name}: ARR on"), "cyc", on);
        report(&format!("{name}: added by ARR (same run)"), "cyc", added);
        report(&format!("{name}: ratio on/off (same run)"), "x", ratio);
        report(&format!("{name}: (buffer reset, subtracted)"), "cyc", reset);
    }
    println!("  TSC {:.2} GHz", tsc_per_ns());
}

/// See `--counters` in the header. Prints the median TSC cycles of each operation.
fn bench_counters(n: usize) {
    use anygate::datapath::{Counters, SharedCounters};
    let shared = SharedCounters::new(2);
    let mut c = Counters::default();
    let median = |f: &mut dyn FnMut()| {
        let mut t: Vec<u64> = (0..n)
            .map(|_| {
                let t0 = tsc();
                f();
                tsc() - t0
            })
            .collect();
        t.sort_unstable();
        t[t.len() / 2]
    };
    let all = median(&mut || counters_publish_all(&shared, &mut c));
    let few = median(&mut || counters_publish_few(&shared, &mut c));
    let whole = median(&mut || {
        black_box(counters_read_whole(&shared));
    });
    let rx = median(&mut || {
        black_box(counters_read_rx(&shared));
    });
    println!("counters: publish, every counter changed: {all} TSC cycles (median of {n})");
    println!("counters: publish, 64 counters changed: {few} TSC cycles");
    println!("counters: tick read of 2 workers, whole blocks: {whole} TSC cycles");
    println!("counters: tick read of 2 workers, rx cells only: {rx} TSC cycles");
}

/// A publish where every counter moved (what every publish stored before issue 14's fix).
#[inline(never)]
fn counters_publish_all(
    s: &anygate::datapath::SharedCounters,
    c: &mut anygate::datapath::Counters,
) {
    c.rx_packets[0] += 1;
    c.tunnels.iter_mut().for_each(|t| t.rx_bytes += 1);
    c.rules.iter_mut().for_each(|r| r[0] += 1);
    s.publish(0, c);
}

/// A publish where 64 counters moved: ports, busy time, a few tunnels.
#[inline(never)]
fn counters_publish_few(
    s: &anygate::datapath::SharedCounters,
    c: &mut anygate::datapath::Counters,
) {
    c.rx_packets[0] += 32;
    c.tx_packets[1] += 32;
    c.busy_loops += 1;
    c.tunnels.iter_mut().take(60).for_each(|t| t.rx_bytes += 1);
    s.publish(0, c);
}

/// The management tick before the fix: both workers' blocks read whole for the rx total.
#[inline(never)]
fn counters_read_whole(s: &anygate::datapath::SharedCounters) -> u64 {
    s.total().rx_total()
}

/// The tick after: the rx cells alone.
#[inline(never)]
fn counters_read_rx(s: &anygate::datapath::SharedCounters) -> u64 {
    s.rx_total()
}
