//! The whole pipeline on arbitrary frames, as a worker runs it (through `VecBuf` instead of
//! mbufs), over a config that has every stage: ARP, gateways resolved by ARP and static,
//! connected subnets, GRE and IP-in-IP tunnels both ways, ECMP, MSS clamping, MTUs, ICMP
//! errors and a firewall. Input: a port byte, then frames of [u16 length][bytes].
//! Checks: nothing panics; every packet gets a verdict; the accounting identity holds (with
//! consumed health probe answers); every forwarded IPv4 packet has a valid header checksum
//! (outer and inner), and a TCP segment whose checksum was valid on the way in is valid on
//! the way out.
#![no_main]
use anygate::config::{parse, Host};
use anygate::datapath::{Pipeline, VecBuf, Verdict};
use anygate::route::Snapshot;
use anygate::wire::{checksum, ipv4, tcp};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const CFG: &str = r#"
[node]
anycast_addresses = ["203.0.113.10"]
icmp_errors_per_second = 1000000

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

[[tunnels]]
name = "acme"
type = "gre"
customer_endpoint = "198.51.100.20"
edge_endpoint = "203.0.113.10"
interface_address = "10.255.0.0/31"
mss_clamp = 1400

[[tunnels]]
name = "beta"
type = "ipip"
customer_endpoint = "198.51.100.21"
edge_endpoint = "203.0.113.10"
interface_address = "10.255.0.2/31"
mtu = 1200
authorized_prefixes = ["192.168.20.0/24"]

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[[routes]]
prefix = "172.16.0.0/12"
nexthop = "10.0.0.9"

[[routes]]
prefix = "172.16.5.0/24"
nexthop = "10.0.0.2"

[[routes]]
prefix = "192.168.10.0/24"
nexthop = "acme"

[[routes]]
prefix = "192.168.20.0/24"
nexthop = "beta"

[[routes]]
prefix = "192.168.30.0/24"
nexthop = "acme"
weight = 64

[[routes]]
prefix = "192.168.30.0/24"
nexthop = "beta"
weight = 192

[firewall]
rules = [
  { expression = "udp.dstport == 7 and anygate.direction == \"ingress\"", action = "block" },
  { expression = "ip.src in {10.9.0.0/16}", action = "block" },
  { expression = "tcp.flags.syn and tcp.dstport in {22 2222}", action = "block" },
]
"#;

const ANYCAST: [u8; 4] = [203, 0, 113, 10];

fn snapshot() -> &'static Snapshot {
    static S: OnceLock<Snapshot> = OnceLock::new();
    S.get_or_init(|| {
        let cfg = parse(CFG, &Host { cores: vec![0, 1] }).expect("the fuzz config is valid");
        let macs = anygate::trace::port_macs(&cfg);
        Snapshot::build(&cfg, &macs, 1, None).expect("the fuzz table builds")
    })
}

/// The IPv4 header at `at` is valid (as the validator sees it) and its checksum is right.
fn ipv4_ok(frame: &[u8], at: usize) -> Option<usize> {
    let ip = ipv4::Packet::new_checked(frame.get(at..)?).ok()?;
    Some(ip.header_len())
}

/// The TCP checksum of the IPv4 packet at `at`, if it carries a whole first-fragment TCP
/// segment: true when valid.
fn tcp_valid(frame: &[u8], at: usize) -> Option<bool> {
    let ip = ipv4::Packet::new_checked(frame.get(at..)?).ok()?;
    let h = frame.get(at..at + 20)?;
    if h[9] != ipv4::PROTO_TCP || u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
        return None;
    }
    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
    let seg = frame.get(at + ip.header_len()..at + total)?;
    let src = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
    let dst = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
    (seg.len() >= 20).then(|| tcp::checksum_v4(src, dst, seg) == 0)
}

/// Where the packet's innermost IPv4 header starts: after GRE or IP-in-IP from us.
fn inner_at(frame: &[u8]) -> usize {
    let outer = 14;
    match (frame.get(outer + 9), frame.get(outer..outer + 1)) {
        (Some(&47), Some(v)) => outer + (v[0] & 0x0f) as usize * 4 + 4,
        (Some(&4), Some(v)) => outer + (v[0] & 0x0f) as usize * 4,
        _ => outer,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&port, mut rest)) = data.split_first() else {
        return;
    };
    let mut bufs = Vec::new();
    let mut tcp_in = Vec::new();
    let mut inputs = Vec::new();
    while bufs.len() < 32 && rest.len() >= 2 {
        let n = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let frame = &rest[2..2 + n];
        tcp_in.push(tcp_valid(frame, 14).or_else(|| tcp_valid(frame, inner_at(frame))));
        bufs.push(VecBuf::from_bytes(frame));
        inputs.push(frame);
        rest = &rest[2 + n..];
    }
    let snap = snapshot();
    let mut p = Pipeline::new();
    let mut v = vec![Verdict::Drop(anygate::datapath::DropReason::NoRoute); bufs.len()];
    p.set_clock(1_000_000_000, 1_000_000_000);
    p.process(snap, (port % 2) as u16, &mut bufs, &mut v);

    let c = &p.counters;
    let forwarded = v.iter().filter(|v| matches!(v, Verdict::Forward(_))).count() as u64;
    assert_eq!(c.rx_total(), bufs.len() as u64);
    assert_eq!(
        c.rx_total() + c.originated,
        forwarded + c.drop_total() + c.health_probe,
        "accounting: rx + originated = forwarded + dropped + health probe answers consumed"
    );
    for (((b, v), tin), input) in bufs.iter().zip(&v).zip(&tcp_in).zip(&inputs) {
        let Verdict::Forward(out) = *v else { continue };
        assert!(out < 2, "a port that exists");
        let f = b.as_ref();
        if f.get(12..14) != Some(&[0x08, 0x00]) {
            continue; // an ARP reply
        }
        let outer = ipv4_ok(f, 14).expect("forwarded IPv4 with a valid header");
        assert!(checksum::verify(&f[14..14 + outer]));
        // Encapsulated here: the outer source became our anycast address.
        let inner = inner_at(f);
        let ours = |fr: &[u8]| fr.get(26..30) == Some(&ANYCAST[..]);
        if inner != 14 && ours(f) && !ours(input) {
            assert!(ipv4_ok(f, inner).is_some(), "a valid inner header");
        }
        if *tin == Some(true) {
            let tout = tcp_valid(f, 14).or_else(|| tcp_valid(f, inner));
            assert_ne!(tout, Some(false), "a valid TCP checksum broken on the way");
        }
    }
});
