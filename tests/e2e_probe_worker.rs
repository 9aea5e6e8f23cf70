//! The worker's half of health probing on a real EAL in this process (one EAL per process,
//! so this file holds one test): probes left in the inject ring leave the tx queue
//! encapsulated, byte for byte as etherparse builds them; a stale one (another table
//! generation) is not sent; a probe answer received on the port comes back through the
//! answer ring; and the accounting identity holds over it all.
mod common;

use anygate::config::{parse, Host};
use anygate::datapath::worker::{Stop, Worker};
use anygate::datapath::{DropReason, SharedCounters};
use anygate::health::probe::{build, ProbeSpec};
use anygate::health::{CheckType, Inject, WorkerRings, INJECT_MAX};
use anygate::mgmt::startup;
use anygate::rcu;
use anygate::route::Snapshot;
use common::*;
use etherparse::{IpNumber, Ipv4Header};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const WAN: [u8; 6] = [2, 0, 0, 0, 0, 1];
const UP: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const EDGE: [u8; 4] = [203, 0, 113, 10];
const ACME: [u8; 4] = [198, 51, 100, 20];
const NODE: u32 = 42;

fn probe(kind: CheckType, src: [u8; 4], dst: [u8; 4], seq: u32) -> Vec<u8> {
    let mut out = [0u8; INJECT_MAX];
    let spec = ProbeSpec {
        kind,
        src: u32::from_be_bytes(src),
        dst: u32::from_be_bytes(dst),
        seq,
        node_id: NODE,
    };
    let n = build(&spec, &mut out);
    out[..n].to_vec()
}

/// `inner` in outer IPv4 + GRE between the two endpoints, in an Ethernet frame.
fn gre_frame(mac: ([u8; 6], [u8; 6]), ends: ([u8; 4], [u8; 4]), df: bool, inner: &[u8]) -> Vec<u8> {
    let mut payload = vec![0, 0, 8, 0];
    payload.extend_from_slice(inner);
    let mut h = Ipv4Header::new(payload.len() as u16, 64, IpNumber(47), ends.0, ends.1).unwrap();
    h.dont_fragment = df;
    h.header_checksum = h.calc_header_checksum();
    let mut f = mac.0.to_vec();
    f.extend_from_slice(&mac.1);
    f.extend_from_slice(&[8, 0]);
    h.write(&mut f).unwrap();
    f.extend_from_slice(&payload);
    f
}

fn inject(tunnel: u16, generation: u64, pkt: &[u8]) -> Inject {
    let mut bytes = [0u8; INJECT_MAX];
    bytes[..pkt.len()].copy_from_slice(pkt);
    Inject {
        tunnel,
        generation,
        len: pkt.len() as u16,
        bytes,
    }
}

#[test]
fn a_worker_sends_injected_probes_and_hands_back_answers() {
    let _g = lock();
    let d = Dir::new();
    // What the customer routes back: our reply probe, seq 5, through the GRE tunnel.
    let answer = probe(CheckType::Reply, [10, 100, 0, 1], [10, 100, 0, 0], 5);
    write_pcap(
        &d.p("in.pcap"),
        &[gre_frame((WAN, UP), (ACME, EDGE), false, &answer)],
    );
    let text = format!(
        r#"{eal}
[node]
anycast_addresses = ["203.0.113.10"]
control_socket = ""
id = {NODE}

[[ports]]
name = "wan0"
device = "net_pcap0,rx_pcap={rx},tx_pcap={tx}"
mac = "02:00:00:00:00:01"
address = "192.0.2.1/24"

[[workers]]
core = {core}
rx = [{{ port = "wan0" }}]

[[neighbors]]
ip = "192.0.2.254"
mac = "02:00:00:00:00:fe"
port = "wan0"

[[tunnels]]
name = "acme"
type = "gre"
customer_endpoint = "198.51.100.20"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"
"#,
        eal = eal("agprobe"),
        rx = d.p("in.pcap").display(),
        tx = d.p("out.pcap").display(),
        core = cores().1,
    );
    let (main, worker_core) = cores();
    let cfg = parse(
        &text,
        &Host {
            cores: vec![main, worker_core],
        },
    )
    .unwrap();
    let mut dp = startup::bring_up(&cfg).unwrap();
    let snap = Snapshot::build(&cfg, &dp.macs(), 3, None).unwrap();
    let (publisher, mut readers) = rcu::new(Arc::new(snap), 1);
    let counters = Arc::new(SharedCounters::new(1));
    let rings = Arc::new(WorkerRings::new());
    let stop: Stop = Default::default();

    let request = probe(CheckType::Request, [10, 100, 0, 0], [10, 100, 0, 1], 6);
    let reply = probe(CheckType::Reply, [10, 100, 0, 1], [10, 100, 0, 0], 7);
    for item in [
        inject(0, 3, &request),
        inject(0, 2, &reply), // built for an older table: not sent
        inject(9, 3, &reply), // no such tunnel: dropped by the pipeline
        inject(0, 3, &reply),
    ] {
        assert!(rings.inject.push(item).is_ok());
    }

    let (mut rx, tx) = dp.ports[0].take_queues().unwrap();
    let w = Worker {
        index: 0,
        core: worker_core,
        rx: vec![(0, rx.remove(0))],
        tx,
        snapshot: readers.remove(0),
        counters: counters.clone(),
        pool: dp.pool.clone(),
        stop: stop.clone(),
        rings: rings.clone(),
        tap: Default::default(),
        idle_backoff_us: 0,
    };
    let h = std::thread::spawn(move || w.run());
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    drop(publisher);
    let c = counters.read(0);
    let startup::Dataplane { ports, .. } = dp;
    drop(ports); // flushes the tx pcap

    let sent = read_pcap(&d.p("out.pcap"));
    assert_eq!(
        sent,
        [
            gre_frame((UP, WAN), (EDGE, ACME), true, &request),
            gre_frame((UP, WAN), (EDGE, ACME), true, &reply),
        ],
        "probes leave encapsulated into acme toward the upstream router, in ring order"
    );
    assert!(rings.inject.is_empty());
    let a = rings.answers.pop().expect("an answer record");
    assert_eq!((a.seq, a.via_tunnel), (5, Some(0)));
    assert!(a.tsc > 0);
    assert!(rings.answers.pop().is_none());

    assert_eq!(
        (c.probes_injected, c.inject_stale, c.inject_no_mbuf),
        (3, 1, 0)
    );
    assert_eq!((c.health_probe, c.probe_ring_full), (1, 0));
    assert_eq!(c.drops[DropReason::TunnelUnknown as usize], 1);
    assert_eq!(c.tunnels[0].tx_packets, 2);
    assert_eq!(
        c.rx_total() + c.originated,
        c.tx_total() + c.drop_total() + c.health_probe,
        "accounting: rx {} + originated {} = tx {} + dropped {} + health_probe {}",
        c.rx_total(),
        c.originated,
        c.tx_total(),
        c.drop_total(),
        c.health_probe
    );
    assert_eq!((c.rx_total(), c.tx_total()), (1, 2));
}
