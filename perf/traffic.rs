//! The performance harness's inputs: the traffic mixes as captures, anygate's two configs
//! (plain forwarding, and the full pipeline with a 500k-route table, four tunnels and 200
//! firewall rules) and l3fwd's route file with the same plain routes. Packets are built with
//! etherparse, not anygate's code. Deterministic: the same seed gives the same files.
//!
//! cargo run --release --example perf_traffic -- OUT_DIR [ROUTES]
//!
//! Addressing (port 0 "in" receives everything, port 1 "out" sends everything):
//! - plain: 256 routes 198.18.N.0/24 via the gateway 10.0.0.2 on port 1 (l3fwd: port 1);
//! - tunnels: cust-a (the GRE source, 10.1.0.0/16 behind it), site-b, site-c, site-d, all
//!   reached through the gateway; 203.0.113.10 is the anycast address;
//! - the big table: ROUTES public prefixes, every fourth an ECMP group over site-b and site-c,
//!   the others one of the three sites; encap and full traffic is aimed at the ECMP prefixes.
use etherparse::{IpNumber, PacketBuilder, TcpOptionElement};
use pcap_file::pcap::{PcapPacket, PcapWriter};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::time::Duration;

const IN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const UPSTREAM: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const ANYCAST: [u8; 4] = [203, 0, 113, 10];
const CUST_A: [u8; 4] = [198, 51, 100, 1];
/// Distinct packets per capture: enough flows to spread over the table, small enough to replay
/// from memory.
const PACKETS: usize = 8192;

/// splitmix64: a reproducible stream, no dependency for benchmark inputs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn ip(a: u32) -> [u8; 4] {
    a.to_be_bytes()
}

fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut v, &vec![0x5a; payload])
        .expect("write to Vec");
    v
}

fn syn(src: [u8; 4], dst: [u8; 4], sport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .tcp(sport, 443, 1, 64240)
        .syn()
        .options(&[TcpOptionElement::MaximumSegmentSize(1460)])
        .expect("one option fits")
        .write(&mut v, &[])
        .expect("write to Vec");
    v
}

/// An Ethernet frame from the upstream router to port 0, padded to the 60-byte minimum.
fn frame(l3: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(14 + l3.len());
    v.extend_from_slice(&IN_MAC);
    v.extend_from_slice(&UPSTREAM);
    v.extend_from_slice(&[0x08, 0x00]);
    v.extend_from_slice(l3);
    v.resize(v.len().max(60), 0);
    v
}

/// GRE (RFC 2784, no options) from cust-a's router to the anycast address.
fn gre(inner: &[u8]) -> Vec<u8> {
    let mut payload = vec![0, 0, 0x08, 0x00];
    payload.extend_from_slice(inner);
    let mut v = Vec::new();
    PacketBuilder::ipv4(CUST_A, ANYCAST, 60)
        .write(&mut v, IpNumber::GRE, &payload)
        .expect("write to Vec");
    frame(&v)
}

fn write_pcap(path: &str, frames: &[Vec<u8>]) {
    let f = File::create(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut w = PcapWriter::new(f).expect("pcap header");
    for (i, f) in frames.iter().enumerate() {
        let ts = Duration::from_micros(1_000_000 + i as u64);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f))
            .expect("write packet");
    }
}

/// Public prefixes for the big table, away from every address the harness uses otherwise.
/// Lengths roughly as in the real table: mostly /24, a tail of shorter ones, 3% longer.
fn table(rng: &mut Rng, n: usize) -> Vec<(u32, u8)> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let len = match rng.below(100) {
            0..=59 => 24,
            60..=79 => 20 + rng.below(4) as u8,
            80..=96 => 12 + rng.below(8) as u8,
            _ => 25 + rng.below(8) as u8,
        };
        let a = rng.next() as u32;
        let first = a >> 24;
        // Skip 0/8, 10/8, 100.64/10's /8, 127/8, 198/8 (test nets), 203/8, multicast and up.
        if matches!(first, 0 | 10 | 100 | 127 | 198 | 203) || first >= 224 {
            continue;
        }
        let net = a & (u32::MAX << (32 - len));
        if seen.insert((net, len)) {
            out.push((net, len));
        }
    }
    out
}

fn prefix(net: u32, len: u8) -> String {
    let [a, b, c, d] = ip(net);
    format!("{a}.{b}.{c}.{d}/{len}")
}

/// A host address inside (net, len), never the network or broadcast address of a /24.
fn host(rng: &mut Rng, net: u32, len: u8) -> u32 {
    let span = if len >= 31 {
        1
    } else {
        (1u64 << (32 - len)) - 2
    };
    net + 1 + rng.below(span.max(1)) as u32 - u32::from(len >= 31)
}

/// 200 firewall rules of realistic shape (customer destination prefix, often a source prefix,
/// a port or port range, TCP or UDP): none matches the harness's normal traffic (its ports are
/// 443 and 53 outside the ranges used), so every packet costs the classifier's whole work;
/// rule 0 is the vendor's amplification block, which the mix's reflection packets hit.
fn firewall(rng: &mut Rng, table: &[(u32, u8)]) -> String {
    let mut s = String::from("\n[firewall]\nrules = [\n");
    s.push_str("  { expression = \"udp.srcport in {1900 11211 389 19 161 0}\", action = \"block\", description = \"reflection\" },\n");
    for i in 1..200 {
        let (net, len) = table[rng.below(table.len() as u64) as usize];
        let dst = prefix(net & (u32::MAX << (32 - len.min(24))), len.min(24));
        let port = 1024 + rng.below(30000) as u16;
        let ports = if i % 3 == 0 {
            format!("{port}..{}", port + rng.below(100) as u16)
        } else {
            port.to_string()
        };
        let proto = if i % 2 == 0 { "tcp" } else { "udp" };
        let src = if i % 4 == 0 {
            let (n, l) = table[rng.below(table.len() as u64) as usize];
            format!(
                " and ip.src in {{{}}}",
                prefix(n & (u32::MAX << 8), l.min(24))
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "  {{ expression = \"ip.dst in {{{dst}}}{src} and {proto}.dstport in {{{ports}}}\", action = \"block\" }},"
        );
    }
    s.push_str("]\n");
    s
}

const COMMON: &str = r#"
[[neighbors]]
ip = "10.0.0.2"
mac = "02:00:00:00:01:02"
port = "out"
"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).map(String::as_str).unwrap_or("out/perf/inputs");
    let n_routes: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(500_000);
    generate(dir, n_routes);
}

/// Writes the configs and captures into `dir` (also used by tests/golden.rs).
pub fn generate(dir: &str, n_routes: usize) {
    std::fs::create_dir_all(dir).expect("create output directory");
    let mut rng = Rng(0x0061_6e79_6761_7465);

    // Plain routes, for anygate and l3fwd alike.
    let mut plain = String::from(COMMON);
    let mut l3fwd = String::new();
    for n in 0..256 {
        let _ = writeln!(
            plain,
            "[[routes]]\nprefix = \"198.18.{n}.0/24\"\nnexthop = \"10.0.0.2\"\n"
        );
        let _ = writeln!(l3fwd, "R198.18.{n}.0/24 1");
    }
    std::fs::write(format!("{dir}/plain.toml"), &plain).expect("write plain.toml");
    std::fs::write(format!("{dir}/l3fwd-v4.cfg"), &l3fwd).expect("write l3fwd-v4.cfg");
    std::fs::write(format!("{dir}/l3fwd-v6.cfg"), "R2001:200::/48 1\n").expect("write v6");

    // The full pipeline: tunnels, the big table, the firewall.
    let big = table(&mut rng, n_routes);
    let mut full = String::with_capacity(n_routes * 80);
    full.push_str(&plain);
    full.push_str(
        "[node]\nanycast_addresses = [\"203.0.113.10\"]\nallow_public_prefixes = true\n\n\
         [[routes]]\nprefix = \"0.0.0.0/0\"\nnexthop = \"10.0.0.2\"\n\n\
         [[routes]]\nprefix = \"10.1.0.0/16\"\nnexthop = \"cust-a\"\n\n",
    );
    for (i, name) in ["cust-a", "site-b", "site-c", "site-d"].iter().enumerate() {
        let _ = writeln!(
            full,
            "[[tunnels]]\nname = \"{name}\"\ntype = \"gre\"\ncustomer_endpoint = \"198.51.100.{}\"\n\
             edge_endpoint = \"203.0.113.10\"\ninterface_address = \"10.255.0.{}/31\"\n",
            i + 1,
            2 * i
        );
    }
    let mut ecmp = Vec::new();
    for (i, &(net, len)) in big.iter().enumerate() {
        let p = prefix(net, len);
        if i % 4 == 0 {
            ecmp.push((net, len));
            let _ = writeln!(
                full,
                "[[routes]]\nprefix = \"{p}\"\nnexthop = \"site-b\"\n\n[[routes]]\nprefix = \"{p}\"\nnexthop = \"site-c\"\n"
            );
        } else {
            let site = ["site-b", "site-c", "site-d"][i % 3];
            let _ = writeln!(full, "[[routes]]\nprefix = \"{p}\"\nnexthop = \"{site}\"\n");
        }
    }
    full.push_str(&firewall(&mut rng, &big));
    std::fs::write(format!("{dir}/full.toml"), &full).expect("write full.toml");

    // The mixes.
    let internet = |rng: &mut Rng| ip(0xcb00_7100 | (rng.below(200) as u32 + 20)); // 203.0.113.20..
    let plain_dst = |rng: &mut Rng| ip(0xc612_0000 | (rng.below(65536) as u32 | 1));
    let customer_src = |rng: &mut Rng| ip(0x0a01_0000 | (rng.below(65534) as u32 + 1));
    let ecmp_dst = |rng: &mut Rng| {
        let (n, l) = ecmp[rng.below(ecmp.len() as u64) as usize];
        ip(host(rng, n, l))
    };
    let sport = |rng: &mut Rng| 32768 + rng.below(28000) as u16;
    let mut mixes: Vec<(&str, Vec<Vec<u8>>)> = Vec::new();
    let mut v = Vec::new();
    for _ in 0..PACKETS {
        let (s, d, p) = (internet(&mut rng), plain_dst(&mut rng), sport(&mut rng));
        v.push(frame(&udp(s, d, p, 443, 18)));
    }
    mixes.push(("plain", v));
    let mut v = Vec::new();
    for _ in 0..PACKETS {
        let (s, d, p) = (customer_src(&mut rng), plain_dst(&mut rng), sport(&mut rng));
        v.push(gre(&udp(s, d, p, 443, 18)));
    }
    mixes.push(("decap", v));
    let mut v = Vec::new();
    for _ in 0..PACKETS {
        let (s, d, p) = (internet(&mut rng), ecmp_dst(&mut rng), sport(&mut rng));
        v.push(frame(&udp(s, d, p, 443, 18)));
    }
    mixes.push(("encap", v));
    // Realistic: 40% plain, 25% from cust-a to the internet, 35% toward customer sites; one in
    // eight a TCP SYN (its MSS clamped when it crosses a tunnel); 2% reflection toward customer
    // sites, which the firewall blocks.
    let mut v = Vec::new();
    for i in 0..PACKETS {
        let p = sport(&mut rng);
        let kind = rng.below(100);
        let l3 = |rng: &mut Rng, s, d| {
            if i % 8 == 0 {
                syn(s, d, p)
            } else if (65..=66).contains(&kind) {
                udp(s, d, 11211, p, 100)
            } else {
                udp(s, d, p, if rng.below(2) == 0 { 443 } else { 53 }, 18)
            }
        };
        v.push(match kind {
            0..=39 => {
                let (s, d) = (internet(&mut rng), plain_dst(&mut rng));
                frame(&l3(&mut rng, s, d))
            }
            40..=64 => {
                let (s, d) = (customer_src(&mut rng), plain_dst(&mut rng));
                gre(&l3(&mut rng, s, d))
            }
            _ => {
                let (s, d) = (internet(&mut rng), ecmp_dst(&mut rng));
                frame(&l3(&mut rng, s, d))
            }
        });
    }
    mixes.push(("mix", v));
    // The full pipeline: from cust-a, decapsulated, filtered twice (ingress and egress), looked
    // up in the big table, spread over site-b/site-c, clamped, encapsulated.
    let mut v = Vec::new();
    for i in 0..PACKETS {
        let (s, d, p) = (customer_src(&mut rng), ecmp_dst(&mut rng), sport(&mut rng));
        v.push(gre(&if i % 8 == 0 {
            syn(s, d, p)
        } else {
            udp(s, d, p, 443, 18)
        }));
    }
    mixes.push(("full", v));
    for (name, frames) in &mixes {
        write_pcap(&format!("{dir}/{name}.pcap"), frames);
    }
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "{dir}: plain.toml, full.toml ({} prefixes, {} ECMP), l3fwd-v4.cfg, {} captures of {PACKETS}",
        big.len(),
        ecmp.len(),
        mixes.len()
    );
}
