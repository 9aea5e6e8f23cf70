//! The direct way (`stages::direct`) against the general one: mixed bursts through both, each
//! on its own snapshot and pipeline, must give the same verdicts, bytes, notes, counters and
//! ARP requests. Packets are built with etherparse.
use super::*;
use crate::config::{parse, Host};
use crate::datapath::{graph, VecBuf};
use crate::wire::{arp, MacAddr};
use etherparse::{IpNumber, Ipv4Header, PacketBuilder};
use proptest::prelude::*;

const CFG: &str = r#"
[node]
anycast_addresses = ["203.0.113.10"]
icmp_errors_per_second = 1000

[[ports]]
name = "wan0"
device = "net_null0"
mac = "02:00:00:00:00:01"
address = "192.0.2.1/24"

[[ports]]
name = "lan0"
device = "net_null1"
mac = "02:00:00:00:01:01"
address = "10.0.0.1/24"
mtu = 1000

[[workers]]
core = 1
rx = [{ port = "wan0" }, { port = "lan0" }]

[[neighbors]]
ip = "192.0.2.254"
mac = "02:00:00:00:00:fe"
port = "wan0"

[[neighbors]]
ip = "10.0.0.9"
mac = "02:00:00:00:01:09"
port = "lan0"

[[neighbors]]
ip = "10.0.0.3"
port = "lan0"

[[tunnels]]
name = "acme"
type = "gre"
customer_endpoint = "198.51.100.20"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[[routes]]
prefix = "172.16.0.0/12"
nexthop = "10.0.0.9"

[[routes]]
prefix = "172.17.0.0/16"
nexthop = "10.0.0.3"

[[routes]]
prefix = "198.18.0.0/16"
nexthop = "192.0.2.254"

[[routes]]
prefix = "198.18.0.0/16"
nexthop = "10.0.0.9"

[[routes]]
prefix = "192.168.10.0/24"
nexthop = "acme"
"#;

const MACS: [[u8; 6]; 2] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 1, 1]];
const PEER: [u8; 6] = [2, 0, 0, 0, 0, 0x55];

fn snapshot() -> Snapshot {
    let cfg = parse(CFG, &Host { cores: vec![0, 1] }).unwrap();
    let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
    Snapshot::build(&cfg, &macs, 1, None).unwrap()
}

/// A frame to port `port` from the peer: `ip` after an Ethernet header, `pad` bytes after.
fn frame(port: u16, ip: &[u8], pad: usize) -> Vec<u8> {
    let mut f = MACS[usize::from(port) % 2].to_vec();
    f.extend_from_slice(&PEER);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(ip);
    f.extend(std::iter::repeat_n(0xee, pad));
    f
}

/// An IPv4 packet of `proto` with `payload`, DF as asked.
fn ipv4(src: [u8; 4], dst: [u8; 4], ttl: u8, proto: u8, df: bool, payload: &[u8]) -> Vec<u8> {
    let mut h = Ipv4Header::new(payload.len() as u16, ttl, IpNumber(proto), src, dst).unwrap();
    h.dont_fragment = df;
    h.header_checksum = h.calc_header_checksum();
    let mut v = Vec::new();
    h.write(&mut v).unwrap();
    v.extend_from_slice(payload);
    v
}

fn udp(src: [u8; 4], dst: [u8; 4], ttl: u8, len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, ttl)
        .udp(4000, 53)
        .write(&mut v, &vec![0x42; len])
        .unwrap();
    v
}

/// Destinations covering every kind of next hop in `CFG`, and some that have none.
const DSTS: [[u8; 4]; 10] = [
    [172, 16, 1, 1],   // gateway, static MAC, lan0 (MTU 1000)
    [172, 20, 9, 9],   // the same route set
    [8, 8, 8, 8],      // default: gateway, static MAC, wan0
    [172, 17, 0, 5],   // gateway resolved by ARP (10.0.0.3)
    [198, 18, 3, 4],   // ECMP
    [10, 0, 0, 7],     // connected host, unresolved
    [192, 168, 10, 5], // into the tunnel
    [10, 0, 0, 1],     // ours
    [203, 0, 113, 10], // anycast, not a tunnel packet
    [224, 0, 0, 1],    // martian
];

/// Packet kind `k` (with `x` for its variations) arriving on `port`.
fn packet(port: u16, k: u8, x: u16) -> Vec<u8> {
    let dst = DSTS[usize::from(x) % DSTS.len()];
    let src = [198, 51, 100, (x >> 4) as u8];
    let ttl = [64, 2, 1, 0][usize::from(x >> 8) % 4];
    match k % 8 {
        // Mostly plain UDP, of a few sizes (some over lan0's MTU), some padded.
        0..=2 => frame(port, &udp(src, dst, 64, usize::from(x % 3) * 600), 0),
        3 => frame(port, &udp(src, dst, ttl, 18), usize::from(x % 2) * 6),
        // Without DF, too big for lan0: dropped, not answered.
        4 => frame(
            port,
            &ipv4(src, dst, ttl.max(2), 17, x.is_multiple_of(2), &[7; 1100]),
            0,
        ),
        // A TCP SYN with an MSS option (clamped only through a tunnel).
        5 => {
            let mut v = Vec::new();
            PacketBuilder::ipv4(src, dst, ttl)
                .tcp(40000, 443, 1, 64240)
                .syn()
                .options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
                .unwrap()
                .write(&mut v, &[])
                .unwrap();
            frame(port, &v, 0)
        }
        // GRE from the tunnel's customer, its inner packet toward `dst`.
        6 => {
            let mut gre = vec![0, 0, 8, 0];
            gre.extend_from_slice(&udp([192, 168, 10, 7], dst, ttl, 30));
            frame(
                port,
                &ipv4([198, 51, 100, 20], [203, 0, 113, 10], 60, 47, true, &gre),
                0,
            )
        }
        // An ARP reply from the ARP-resolved gateway, or a broken header.
        _ if x.is_multiple_of(2) => {
            let mut rep = vec![0u8; 60];
            let mac = MacAddr([2, 0, 0, 0, 1, 3]);
            arp::write_request(&mut rep, mac, 0x0a00_0003, 0x0a00_0001).unwrap();
            rep[..6].copy_from_slice(&MACS[usize::from(port) % 2]);
            rep[21] = 2;
            rep
        }
        _ => {
            let mut f = frame(port, &udp(src, dst, 64, 18), 0);
            f[24] ^= 0x11;
            f
        }
    }
}

/// Everything a burst leaves behind that anyone can see.
#[derive(Debug, PartialEq)]
struct Seen {
    verdicts: Vec<Verdict>,
    bytes: Vec<Vec<u8>>,
    notes: Vec<Note>,
    arp_wants: Vec<(u16, u32)>,
}

fn run(bursts: &[(u16, Vec<Vec<u8>>)], general: bool) -> (Vec<Seen>, Counters) {
    graph::GENERAL_ONLY.with(|g| g.set(general));
    let snap = snapshot();
    let mut p = Pipeline::new();
    let mut seen = Vec::new();
    for (port, frames) in bursts {
        seen.push(feed(&mut p, &snap, *port, frames));
    }
    graph::GENERAL_ONLY.with(|g| g.set(false));
    (seen, p.counters.clone())
}

/// One burst through `p` on `snap`, and what came of it.
fn feed(p: &mut Pipeline, snap: &Snapshot, port: u16, frames: &[Vec<u8>]) -> Seen {
    let mut bufs: Vec<VecBuf> = frames.iter().map(|f| VecBuf::from_bytes(f)).collect();
    let mut v = vec![Verdict::Drop(DropReason::NoRoute); bufs.len()];
    p.process(snap, port, &mut bufs, &mut v);
    Seen {
        verdicts: v,
        bytes: bufs.iter().map(|b| b.as_ref().to_vec()).collect(),
        notes: (0..frames.len()).map(|i| *p.note_at(i)).collect(),
        arp_wants: p.take_arp_wants().collect(),
    }
}

fn same_both_ways(bursts: &[(u16, Vec<Vec<u8>>)]) {
    let (direct, dc) = run(bursts, false);
    let (general, gc) = run(bursts, true);
    assert_eq!(direct, general);
    assert!(dc == gc, "counters differ");
}

proptest! {
    // Two snapshots a case (each a full FIB): few cases, many packets each.
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn the_direct_way_decides_as_the_general_way(
        bursts in proptest::collection::vec(
            (0u16..2, proptest::collection::vec((0u8..16, any::<u16>()), 1..=32)),
            1..4,
        )
    ) {
        let bursts: Vec<(u16, Vec<Vec<u8>>)> = bursts
            .into_iter()
            .map(|(port, pkts)| {
                // Half the kinds are plain UDP: most bursts hold runs of one route set.
                let frames = pkts
                    .into_iter()
                    .map(|(k, x)| packet(port, if k >= 8 { 0 } else { k }, x))
                    .collect();
                (port, frames)
            })
            .collect();
        same_both_ways(&bursts);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    /// The first pass looks destinations up eight at a time as it reads them (`lookup::first`),
    /// a packet it drops or answers (ARP) holding a place with an answer never read: a burst
    /// of any length, drops anywhere in it, decides each packet as that packet alone would.
    /// No ARP that teaches a MAC (a burst learns it before routing any of its packets).
    #[test]
    fn a_burst_decides_as_its_packets_one_by_one(
        port in 0u16..2,
        pkts in proptest::collection::vec((0u8..16, any::<u16>()), 1..=32),
    ) {
        let frames: Vec<Vec<u8>> = pkts
            .into_iter()
            .map(|(k, x)| {
                let k = if k >= 8 { 0 } else { k };
                // Kind 7 with an even `x` is the ARP reply: the broken header instead.
                packet(port, k, if k == 7 { x | 1 } else { x })
            })
            .collect();
        let snap = snapshot();
        let whole = feed(&mut Pipeline::new(), &snap, port, &frames);
        let snap = snapshot();
        let mut p = Pipeline::new();
        let alone: Vec<Seen> = frames
            .iter()
            .map(|f| feed(&mut p, &snap, port, std::slice::from_ref(f)))
            .collect();
        prop_assert_eq!(&whole.verdicts, &alone.iter().map(|s| s.verdicts[0]).collect::<Vec<_>>());
        prop_assert_eq!(&whole.bytes, &alone.iter().map(|s| s.bytes[0].clone()).collect::<Vec<_>>());
        prop_assert_eq!(&whole.notes, &alone.iter().map(|s| s.notes[0]).collect::<Vec<_>>());
    }
}

/// The bench's burst: every packet goes directly (the direct way leaves the context's next
/// hop unset: no later stage reads it), and as the general way sends it.
#[test]
fn a_plain_burst_goes_directly() {
    let frames: Vec<Vec<u8>> = (0..32u8)
        .map(|i| frame(0, &udp([198, 51, 100, 1], [172, 16, i, 1], 64, 18), 0))
        .collect();
    let snap = snapshot();
    let mut p = Pipeline::new();
    let mut bufs: Vec<VecBuf> = frames.iter().map(|f| VecBuf::from_bytes(f)).collect();
    let mut v = vec![Verdict::Drop(DropReason::NoRoute); bufs.len()];
    p.process(&snap, 0, &mut bufs, &mut v);
    assert!(v.iter().all(|v| *v == Verdict::Forward(1)));
    assert!(p.cx.iter().all(|c| c.nexthop.is_none()));
    same_both_ways(&[(0, frames)]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    /// Bursts every packet of which goes directly, over runs of the two one-gateway sets
    /// (two ports): the verdicts are handed out by the direct pass itself, no account pass
    /// after it.
    #[test]
    fn all_direct_bursts_decide_as_the_general_way(
        pkts in proptest::collection::vec((0usize..3, 0usize..2, any::<u8>()), 1..=32),
        port in 0u16..2,
    ) {
        let frames: Vec<Vec<u8>> = pkts
            .iter()
            .map(|&(d, size, x)| frame(port, &udp([198, 51, 100, x], DSTS[d], 64, size * 300), 0))
            .collect();
        let (direct, _) = run(&[(port, frames.clone())], false);
        prop_assert!(direct[0]
            .verdicts
            .iter()
            .all(|v| matches!(v, Verdict::Forward(_))));
        same_both_ways(&[(port, frames)]);
    }
}

/// `run` with each burst on its own snapshot (`cfgs[k]` for a burst `(k, port, frames)`), one
/// pipeline for all: a route change between bursts.
fn run_on(
    cfgs: &[String],
    bursts: &[(usize, u16, Vec<Vec<u8>>)],
    general: bool,
) -> (Vec<Seen>, Counters) {
    graph::GENERAL_ONLY.with(|g| g.set(general));
    let snaps: Vec<Snapshot> = cfgs
        .iter()
        .map(|c| {
            let cfg = parse(c, &Host { cores: vec![0, 1] }).unwrap();
            let macs: Vec<MacAddr> = cfg.ports.iter().map(|p| p.mac.unwrap()).collect();
            Snapshot::build(&cfg, &macs, 1, None).unwrap()
        })
        .collect();
    let mut p = Pipeline::new();
    let mut seen = Vec::new();
    for (k, port, frames) in bursts {
        seen.push(feed(&mut p, &snaps[*k % snaps.len()], *port, frames));
    }
    graph::GENERAL_ONLY.with(|g| g.set(false));
    (seen, p.counters.clone())
}

/// `CFG` and the snapshots a route change moves it to: lan0's MTU lowered; 172.16.0.0/12 into
/// the tunnel, toward the gateway resolved by ARP, or over ECMP; its gateway's static MAC gone.
fn changed_cfgs() -> Vec<String> {
    const R: &str = "prefix = \"172.16.0.0/12\"\nnexthop = \"10.0.0.9\"\n";
    let swap = |from: &str, to: &str| {
        let c = CFG.replace(from, to);
        assert_ne!(c, CFG, "{from}");
        c
    };
    vec![
        CFG.to_string(),
        swap("mtu = 1000", "mtu = 600"),
        swap(R, "prefix = \"172.16.0.0/12\"\nnexthop = \"acme\"\n"),
        swap(R, "prefix = \"172.16.0.0/12\"\nnexthop = \"10.0.0.3\"\n"),
        swap(
            R,
            &format!("{R}\n[[routes]]\nprefix = \"172.16.0.0/12\"\nnexthop = \"192.0.2.254\"\n"),
        ),
        swap(
            "ip = \"10.0.0.9\"\nmac = \"02:00:00:00:01:09\"\n",
            "ip = \"10.0.0.9\"\n",
        ),
    ]
}

proptest! {
    // Six snapshots a pipeline, built twice a case: few cases.
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
    /// A route change between bursts (each burst on one of `changed_cfgs`' snapshots, the
    /// pipeline kept): nothing the direct way decided for one snapshot carries into a burst on
    /// the next, and both ways decide, write and count alike.
    #[test]
    fn route_changes_between_bursts_decide_as_the_general_way(
        bursts in proptest::collection::vec(
            (0usize..6, 0u16..2, proptest::collection::vec((0u8..16, any::<u16>()), 1..=32)),
            2..6,
        )
    ) {
        let bursts: Vec<(usize, u16, Vec<Vec<u8>>)> = bursts
            .into_iter()
            .map(|(k, port, pkts)| {
                let frames = pkts
                    .into_iter()
                    .map(|(kind, x)| packet(port, if kind >= 8 { 0 } else { kind }, x))
                    .collect();
                (k, port, frames)
            })
            .collect();
        let cfgs = changed_cfgs();
        let (direct, dc) = run_on(&cfgs, &bursts, false);
        let (general, gc) = run_on(&cfgs, &bursts, true);
        prop_assert_eq!(direct, general);
        prop_assert!(dc == gc, "counters differ");
    }
}

/// A burst every other packet of which goes directly, with one odd packet first, in the
/// middle or last: an ICMP error to build (TTL 1, TTL 0, DF over lan0's MTU), a drop (no DF
/// over the MTU, a bad checksum, a martian), a punt, an ARP reply, an unresolved host, ECMP,
/// the tunnel, and the MTU's edge (exactly 1000 bytes goes directly, 1001 does not).
#[test]
fn one_odd_packet_in_a_direct_burst() {
    let src = [198, 51, 100, 1];
    let to_lan = [172, 16, 0, 1];
    let mut bad_sum = frame(0, &udp(src, to_lan, 64, 18), 0);
    bad_sum[24] ^= 0x11;
    let odd: Vec<(Vec<u8>, bool)> = vec![
        (frame(0, &udp(src, to_lan, 1, 18), 0), false),
        (frame(0, &udp(src, to_lan, 0, 18), 0), false),
        (frame(0, &udp(src, to_lan, 2, 18), 0), true),
        (
            frame(0, &ipv4(src, to_lan, 64, 17, true, &[7; 1100]), 0),
            false,
        ),
        (
            frame(0, &ipv4(src, to_lan, 64, 17, false, &[7; 1100]), 0),
            false,
        ),
        (
            frame(0, &ipv4(src, to_lan, 64, 17, true, &[7; 980]), 0),
            true,
        ),
        (
            frame(0, &ipv4(src, to_lan, 64, 17, true, &[7; 981]), 0),
            false,
        ),
        (
            frame(0, &ipv4(src, to_lan, 1, 17, true, &[7; 1100]), 0),
            false,
        ),
        (bad_sum, false),
        (frame(0, &udp(src, [224, 0, 0, 1], 64, 18), 0), false),
        (frame(0, &udp(src, [10, 0, 0, 1], 64, 18), 0), false),
        (packet(0, 7, 0), false),
        (frame(0, &udp(src, [10, 0, 0, 7], 64, 18), 0), false),
        (frame(0, &udp(src, [198, 18, 3, 4], 64, 18), 0), false),
        (frame(0, &udp(src, [192, 168, 10, 5], 64, 18), 0), false),
        (packet(0, 6, 2), false),
    ];
    // Every case a burst of its own, all on one snapshot (a snapshot a case was slow).
    let mut bursts = Vec::new();
    for (odd, _) in &odd {
        for at in [0usize, 15, 31] {
            let frames: Vec<Vec<u8>> = (0..32u8)
                .map(|i| match usize::from(i) == at {
                    true => odd.clone(),
                    false => frame(0, &udp(src, [172, 16, i, 1], 64, 18), 0),
                })
                .collect();
            bursts.push((0u16, frames));
        }
    }
    let (direct, _) = run(&bursts, false);
    for (k, seen) in direct.iter().enumerate() {
        let (o, at) = (k / 3, [0usize, 15, 31][k % 3]);
        for (i, v) in seen.verdicts.iter().enumerate() {
            if i != at || odd[o].1 {
                assert_eq!(*v, Verdict::Forward(1), "odd {o} at {at}: packet {i}");
            } else {
                assert_ne!(*v, Verdict::Forward(1), "odd {o} at {at}");
            }
        }
    }
    same_both_ways(&bursts);
}

/// The direct way's TTL edit without the wrap test: a TTL of 2 leaves as 1, 255 as 254, the
/// header checksum right (etherparse's), at any checksum the header had.
#[test]
fn direct_ttl_edits_keep_the_checksum() {
    let ttls = [2u8, 3, 128, 254, 255];
    let frames: Vec<Vec<u8>> = ttls
        .iter()
        .flat_map(|&ttl| {
            (0..64u8).map(move |i| {
                frame(
                    0,
                    &udp([198, 51, 100, i], [172, 16, i, 255 - i], ttl, 18),
                    0,
                )
            })
        })
        .collect();
    let (seen, _) = run(&[(0, frames)], false);
    for (k, out) in seen[0].bytes.iter().enumerate() {
        let ttl = ttls[k / 64];
        assert_eq!(seen[0].verdicts[k], Verdict::Forward(1));
        let (h, _) = Ipv4Header::from_slice(&out[14..]).unwrap();
        assert_eq!(h.time_to_live, ttl - 1);
        assert_eq!(
            h.header_checksum,
            h.calc_header_checksum(),
            "ttl {ttl}, packet {k}"
        );
    }
}
