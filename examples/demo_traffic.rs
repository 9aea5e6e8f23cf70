//! Writes the demo's input captures: traffic from the internet toward customer prefixes on
//! wan0, customer traffic toward the internet on lan0, ARP, and a few malformed packets. Built
//! with etherparse, not anygate's own code, so the demo does not grade its own homework.
//!
//! cargo run --release --example demo_traffic -- OUT_DIR [PACKETS]
use etherparse::{IpNumber, PacketBuilder};
use pcap_file::pcap::{PcapPacket, PcapWriter};
use std::fs::File;
use std::time::Duration;

const WAN: [u8; 6] = [2, 0, 0, 0, 0, 1];
const LAN: [u8; 6] = [2, 0, 0, 0, 1, 1];
const UPSTREAM: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const CUST2: [u8; 6] = [2, 0, 0, 0, 1, 2];
const CUST3: [u8; 6] = [2, 0, 0, 0, 1, 3];
const ACME: [u8; 4] = [198, 51, 100, 20];

fn udp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    len: usize,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, ttl)
        .udp(40000, 443);
    let mut v = Vec::new();
    b.write(&mut v, &vec![0x5a; len]).expect("write to Vec");
    v
}

fn tcp(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], port: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, 64)
        .tcp(port, 80, 1000, 65535)
        .syn()
        .options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
        .expect("one option fits");
    let mut v = Vec::new();
    b.write(&mut v, &[]).expect("write to Vec");
    v
}

fn arp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    op: u16,
    sender_ip: [u8; 4],
    target_ip: [u8; 4],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(60);
    v.extend_from_slice(&dst_mac);
    v.extend_from_slice(&src_mac);
    v.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4]);
    v.extend_from_slice(&op.to_be_bytes());
    v.extend_from_slice(&src_mac);
    v.extend_from_slice(&sender_ip);
    v.extend_from_slice(if op == 1 { &[0; 6] } else { &dst_mac });
    v.extend_from_slice(&target_ip);
    v.resize(60, 0);
    v
}

/// A GRE packet from `customer` to our anycast address, carrying the IPv4 packet `inner`.
fn gre(customer: [u8; 4], inner: &[u8]) -> Vec<u8> {
    let mut payload = vec![0, 0, 0x08, 0x00];
    payload.extend_from_slice(inner);
    let b = PacketBuilder::ethernet2(UPSTREAM, WAN).ipv4(customer, [203, 0, 113, 10], 60);
    let mut v = Vec::new();
    b.write(&mut v, IpNumber::GRE, &payload)
        .expect("write to Vec");
    v
}

fn write(path: &str, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::new(File::create(path).expect("create capture")).expect("pcap header");
    for (i, f) in frames.iter().enumerate() {
        let ts = Duration::from_micros(1_000_000 + i as u64 * 10);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f))
            .expect("write packet");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).map(String::as_str).unwrap_or("out/demo");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    generate(dir, n);
}

/// Writes the demo captures of `n` packets each into `dir` (also used by tests/golden.rs).
pub fn generate(dir: &str, n: usize) {
    std::fs::create_dir_all(dir).expect("create output directory");

    let mut wan = Vec::new();
    for i in 0..n {
        let host = [
            172,
            16 + (i % 4) as u8,
            (i / 250 % 250) as u8,
            (i % 250 + 1) as u8,
        ];
        wan.push(match i % 10 {
            0..=5 => udp(
                UPSTREAM,
                WAN,
                [198, 51, 100, (i % 200) as u8 + 1],
                host,
                60,
                64 + i % 900,
            ),
            6 | 7 => tcp(UPSTREAM, WAN, [203, 0, 113, 9], host, 1024 + i as u16),
            // Toward the customer router that is resolved by ARP.
            8 => udp(
                UPSTREAM,
                WAN,
                [198, 51, 100, 7],
                [172, 16, 99, (i % 250) as u8 + 1],
                60,
                100,
            ),
            _ => udp(UPSTREAM, WAN, [198, 51, 100, 8], [8, 8, 4, 4], 1, 32), // TTL expires
        });
    }
    // Malformed: bad checksum, truncated, IHL 4, an IPv6 frame, a frame for another MAC.
    let mut bad = udp(UPSTREAM, WAN, [198, 51, 100, 1], [172, 16, 0, 1], 64, 20);
    bad[24] ^= 0xff;
    wan.push(bad);
    wan.push(udp(UPSTREAM, WAN, [198, 51, 100, 1], [172, 16, 0, 1], 64, 20)[..30].to_vec());
    let mut ihl = udp(UPSTREAM, WAN, [198, 51, 100, 1], [172, 16, 0, 1], 64, 20);
    ihl[14] = 0x44;
    wan.push(ihl);
    let mut v6 = udp(UPSTREAM, WAN, [198, 51, 100, 1], [172, 16, 0, 1], 64, 20);
    v6[12..14].copy_from_slice(&[0x86, 0xdd]);
    wan.push(v6);
    wan.push(udp(
        UPSTREAM,
        [2, 0xee, 0, 0, 0, 1],
        [198, 51, 100, 1],
        [172, 16, 0, 1],
        64,
        20,
    ));
    // The upstream router asks for our address.
    wan.push(arp(
        UPSTREAM,
        [0xff; 6],
        1,
        [192, 0, 2, 254],
        [192, 0, 2, 1],
    ));
    // Tunnel traffic for acme-gre1: the Internet toward its prefix (encapsulated, SYNs
    // clamped), its GRE packets toward the Internet (decapsulated), a spoofed inner source.
    for i in 0..n / 10 {
        let host = [192, 168, 10, (i % 250) as u8 + 1];
        wan.push(if i % 2 == 0 {
            udp(UPSTREAM, WAN, [198, 51, 100, 9], host, 60, 200)
        } else {
            tcp(UPSTREAM, WAN, [203, 0, 113, 9], host, 2000 + i as u16)
        });
        let inner = &udp([0; 6], [0; 6], host, [93, 184, 216, 34], 64, 100)[14..];
        wan.push(gre(ACME, inner));
    }
    let spoofed = &udp([0; 6], [0; 6], [10, 66, 0, 1], [93, 184, 216, 34], 64, 100)[14..];
    wan.push(gre(ACME, spoofed));

    let mut lan = vec![
        // 10.0.0.3 announces itself (gratuitous reply), so anygate learns its MAC.
        arp(CUST3, LAN, 2, [10, 0, 0, 3], [10, 0, 0, 1]),
    ];
    for i in 0..n / 2 {
        lan.push(udp(
            CUST2,
            LAN,
            [172, 16, 1, (i % 250) as u8 + 1],
            [93, 184, 216, (i % 100) as u8],
            64,
            200,
        ));
    }
    write(&format!("{dir}/wan-in.pcap"), &wan);
    write(&format!("{dir}/lan-in.pcap"), &lan);
    println!(
        "wrote {} packets to {dir}/wan-in.pcap and {} to {dir}/lan-in.pcap",
        wan.len(),
        lan.len()
    );
}
