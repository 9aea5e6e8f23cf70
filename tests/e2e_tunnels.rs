//! End-to-end tunnel tests: the real binary on a net_pcap port. Every output packet is built
//! independently with etherparse and compared byte for byte, then decoded by tshark: its GRE
//! dissector must see the inner packet, the clamped MSS, and good IP and TCP checksums.
mod common;

use common::*;
use etherparse::{IpNumber, Ipv4Header, PacketBuilder, TcpOptionElement};

const WAN: [u8; 6] = [2, 0, 0, 0, 0, 1];
const UP: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const EDGE: [u8; 4] = [203, 0, 113, 10];
const ACME: [u8; 4] = [198, 51, 100, 20];
const BETA: [u8; 4] = [198, 51, 100, 30];
const NET: [u8; 4] = [93, 184, 216, 34];
const CUST_HOST: [u8; 4] = [192, 168, 10, 7];

fn config(d: &Dir) -> String {
    format!(
        r#"{eal}
[node]
anycast_addresses = ["203.0.113.10"]
control_socket = "{sock}"

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
health_check = {{ enabled = false }}

[[tunnels]]
name = "beta"
type = "ipip"
customer_endpoint = "198.51.100.30"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.2/31"
health_check = {{ enabled = false }}

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[[routes]]
prefix = "192.168.10.0/24"
nexthop = "acme"

[[routes]]
prefix = "192.168.20.0/24"
nexthop = "beta"
"#,
        eal = eal("ag-tun"),
        sock = d.p("ctl.sock").display(),
        rx = d.p("in.pcap").display(),
        tx = d.p("out.pcap").display(),
        core = cores().1,
    )
}

fn ip_udp(src: [u8; 4], dst: [u8; 4], ttl: u8, len: usize, df: bool) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, ttl)
        .udp(4000, 53)
        .write(&mut v, &vec![0x42; len])
        .unwrap();
    if !df {
        v[6] = 0;
        fix_ip_checksum(&mut v);
    }
    v
}

fn ip_syn(src: [u8; 4], dst: [u8; 4], mss: u16, ack: bool) -> Vec<u8> {
    let mut b = PacketBuilder::ipv4(src, dst, 64)
        .tcp(40000, 443, 1, 64240)
        .syn();
    if ack {
        b = b.ack(99);
    }
    let b = b
        .options(&[
            TcpOptionElement::MaximumSegmentSize(mss),
            TcpOptionElement::Noop,
        ])
        .unwrap();
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

fn fix_ip_checksum(ip: &mut [u8]) {
    ip[10..12].copy_from_slice(&[0, 0]);
    let mut h = Ipv4Header::from_slice(ip).unwrap().0;
    h.header_checksum = h.calc_header_checksum();
    ip[10..12].copy_from_slice(&h.header_checksum.to_be_bytes());
}

fn with_ttl(mut ip: Vec<u8>, ttl: u8) -> Vec<u8> {
    ip[8] = ttl;
    fix_ip_checksum(&mut ip);
    ip
}

/// An inner TCP packet with its MSS rewritten and its checksum recomputed by etherparse.
fn with_mss(ip: &[u8], mss: u16, ttl: u8) -> Vec<u8> {
    let (h, rest) = Ipv4Header::from_slice(ip).unwrap();
    let (mut tcp, _) = etherparse::TcpHeader::from_slice(rest).unwrap();
    tcp.set_options(&[
        TcpOptionElement::MaximumSegmentSize(mss),
        TcpOptionElement::Noop,
    ])
    .unwrap();
    let mut h2 = h.clone();
    h2.time_to_live = ttl;
    h2.header_checksum = h2.calc_header_checksum();
    tcp.checksum = tcp.calc_checksum_ipv4(&h2, &[]).unwrap();
    let mut v = Vec::new();
    h2.write(&mut v).unwrap();
    tcp.write(&mut v).unwrap();
    v
}

fn frame(dst: [u8; 6], src: [u8; 6], ip: &[u8]) -> Vec<u8> {
    [&dst[..], &src[..], &[0x08, 0x00], ip].concat()
}

/// Outer IPv4 (and GRE when `gre`) around `inner`, as etherparse writes it.
fn outer(src: [u8; 4], dst: [u8; 4], gre: bool, ttl: u8, df: bool, inner: &[u8]) -> Vec<u8> {
    let extra = if gre { 4 } else { 0 };
    let proto = if gre { 47 } else { 4 };
    let mut h =
        Ipv4Header::new((inner.len() + extra) as u16, ttl, IpNumber(proto), src, dst).unwrap();
    h.dont_fragment = df;
    h.header_checksum = h.calc_header_checksum();
    let mut v = Vec::new();
    h.write(&mut v).unwrap();
    if gre {
        v.extend_from_slice(&[0, 0, 8, 0]);
    }
    v.extend_from_slice(inner);
    v
}

/// An ICMP error as anygate sends it: TOS 0xc0, TTL 64, DF clear, ID 0, quoting the
/// offending header and 8 bytes.
fn icmp_error(src: [u8; 4], dst: [u8; 4], ty: u8, code: u8, mtu: u16, offending: &[u8]) -> Vec<u8> {
    let mut icmp = vec![ty, code, 0, 0, 0, 0, 0, 0];
    icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
    icmp.extend_from_slice(&offending[..28]);
    let sum = icmp
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    icmp[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let mut h = Ipv4Header::new(icmp.len() as u16, 64, IpNumber(1), src, dst).unwrap();
    h.dscp = etherparse::Ipv4Dscp::try_new(0x30).unwrap();
    h.dont_fragment = false;
    h.header_checksum = h.calc_header_checksum();
    let mut v = Vec::new();
    h.write(&mut v).unwrap();
    v.extend_from_slice(&icmp);
    v
}

struct Case {
    input: Vec<u8>,
    /// The frame expected on wan0, or the drop reason.
    out: Result<Vec<u8>, &'static str>,
    ingress: Option<&'static str>,
    egress: Option<&'static str>,
    mss: Option<u16>,
}

fn cases() -> Vec<Case> {
    let gre_in = |inner: &[u8]| frame(WAN, UP, &outer(ACME, EDGE, true, 60, false, inner));
    let case = |input, out, ingress, egress, mss| Case {
        input,
        out,
        ingress,
        egress,
        mss,
    };
    let decap = ip_udp([192, 168, 10, 5], NET, 64, 200, true);
    let ipip = ip_udp([192, 168, 20, 5], NET, 30, 60, false);
    let to_cust = ip_udp(NET, CUST_HOST, 50, 500, true);
    let syn = ip_syn(NET, CUST_HOST, 1460, false);
    let syn_ack = ip_syn(CUST_HOST, NET, 8960, true);
    let big = ip_udp(NET, CUST_HOST, 64, 1477 - 28, true);
    let dying = ip_udp(NET, CUST_HOST, 1, 40, false);
    vec![
        case(
            gre_in(&decap),
            Ok(frame(UP, WAN, &with_ttl(decap.clone(), 63))),
            Some("acme"),
            None,
            None,
        ),
        case(
            frame(WAN, UP, &outer(BETA, EDGE, false, 60, false, &ipip)),
            Ok(frame(UP, WAN, &with_ttl(ipip.clone(), 29))),
            Some("beta"),
            None,
            None,
        ),
        case(
            frame(WAN, UP, &to_cust),
            Ok(frame(
                UP,
                WAN,
                &outer(EDGE, ACME, true, 64, true, &with_ttl(to_cust.clone(), 49)),
            )),
            None,
            Some("acme"),
            None,
        ),
        case(
            frame(WAN, UP, &syn),
            Ok(frame(
                UP,
                WAN,
                &outer(EDGE, ACME, true, 64, true, &with_mss(&syn, 1436, 63)),
            )),
            None,
            Some("acme"),
            Some(1436),
        ),
        case(
            gre_in(&syn_ack),
            Ok(frame(UP, WAN, &with_mss(&syn_ack, 1436, 63))),
            Some("acme"),
            None,
            Some(1436),
        ),
        case(
            frame(WAN, UP, &big),
            Ok(frame(
                UP,
                WAN,
                &icmp_error([192, 0, 2, 1], NET, 3, 4, 1476, &big),
            )),
            None,
            None,
            None,
        ),
        case(
            frame(WAN, UP, &dying),
            Ok(frame(
                UP,
                WAN,
                &icmp_error([192, 0, 2, 1], NET, 11, 0, 0, &dying),
            )),
            None,
            None,
            None,
        ),
        case(
            gre_in(&ip_udp([10, 9, 9, 9], NET, 64, 8, true)),
            Err("tunnel_spoofed_source"),
            Some("acme"),
            None,
            None,
        ),
        case(
            frame(
                WAN,
                UP,
                &outer([198, 51, 100, 99], EDGE, true, 60, false, &decap),
            ),
            Err("tunnel_unknown"),
            None,
            None,
            None,
        ),
    ]
}

#[test]
fn tunnels_end_to_end_with_tshark() {
    let _g = lock();
    let d = Dir::new();
    let cases = cases();
    write_pcap(
        &d.p("in.pcap"),
        &cases.iter().map(|c| c.input.clone()).collect::<Vec<_>>(),
    );
    std::fs::write(d.p("tun.toml"), config(&d)).unwrap();
    let (code, stats, stderr) = run_to_idle(&d.p("tun.toml"));
    assert_eq!(code, 0, "{stderr}");

    let want: Vec<Vec<u8>> = cases.iter().filter_map(|c| c.out.clone().ok()).collect();
    let got = read_pcap(&d.p("out.pcap"));
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "output packet {i}");
    }

    // Wireshark's dissectors: GRE carries IPv4, the MSS is clamped, every checksum is good.
    let rows = tshark(
        &d.p("out.pcap"),
        &[
            "gre.proto",
            "ip.src",
            "ip.dst",
            "ip.checksum.status",
            "tcp.options.mss_val",
            "icmp.type",
            "icmp.mtu",
        ],
    );
    assert_eq!(rows.len(), 7);
    assert_eq!(
        rows[0][1], "192.168.10.5",
        "decapsulated: only the inner header is left"
    );
    assert_eq!(rows[2][0], "0x0800", "GRE carrying IPv4");
    assert_eq!(
        (rows[2][1].as_str(), rows[2][2].as_str()),
        ("203.0.113.10,93.184.216.34", "198.51.100.20,192.168.10.7")
    );
    assert_eq!(rows[3][4], "1436", "SYN clamped inside the tunnel");
    assert_eq!(rows[4][4], "1436", "SYN-ACK clamped after decap");
    assert_eq!(
        (rows[5][5].as_str(), rows[5][6].as_str()),
        ("3", "1476"),
        "frag needed with the tunnel MTU"
    );
    assert_eq!(rows[6][5], "11", "time exceeded");
    for r in &rows {
        assert!(
            r[3].split(',').all(|s| s == "1"),
            "IP checksum status: {r:?}"
        );
    }
    let tcp = tshark_with(
        &d.p("out.pcap"),
        &["-o", "tcp.check_checksum:TRUE", "-Y", "tcp"],
        &["tcp.checksum.status"],
    );
    assert_eq!(tcp.len(), 2);
    assert!(
        tcp.iter().all(|r| r[0] == "1"),
        "TCP checksum status good after the clamp: {tcp:?}"
    );

    // Counters: totals, ICMP, per tunnel.
    assert_eq!(stats["rx_total"], cases.len() as u64);
    assert_eq!(stats["tx_total"], 7);
    assert_eq!(stats["originated"], 2);
    assert_eq!(stats["icmp_errors"], 2);
    assert_eq!(stats["drops"]["ttl_exceeded"], 1);
    assert_eq!(stats["drops"]["tunnel_mtu_exceeded"], 1);
    assert_eq!(stats["drops"]["tunnel_spoofed_source"], 1);
    assert_eq!(stats["drops"]["tunnel_unknown"], 1);
    assert_eq!(stats["mss_clamped"], 2);
    let acme = &stats["tunnels"][0];
    assert_eq!(
        (
            acme["name"].as_str(),
            acme["rx_packets"].as_u64(),
            acme["tx_packets"].as_u64()
        ),
        (Some("acme"), Some(3), Some(2))
    );
    assert_eq!(acme["drops"]["tunnel_spoofed_source"], 1);
    assert_eq!(acme["drops"]["tunnel_mtu_exceeded"], 1);
    assert_eq!(stats["tunnels"][1]["rx_packets"], 1);
    assert_eq!(stats["mempool"]["available"], stats["mempool"]["size"]);

    // trace names the tunnels and the MSS, packet by packet.
    let lines = trace_json(&d.p("tun.toml"), &d.p("in.pcap"), &[]);
    assert_eq!(lines.len(), cases.len());
    for (i, (l, c)) in lines.iter().zip(&cases).enumerate() {
        assert_eq!(l["ingress_tunnel"].as_str(), c.ingress, "packet {i}");
        assert_eq!(l["tunnel"].as_str(), c.egress, "packet {i}");
        assert_eq!(l["mss"].as_u64(), c.mss.map(u64::from), "packet {i}");
        // An expected ICMP error (type 3 or 11 from us) means the packet was dropped and
        // answered: trace says so as `run` counts it.
        let answered = match &c.out {
            Ok(f) if f[23] == 1 && f[34] == 3 => Some(("tunnel_mtu_exceeded", "frag_needed")),
            Ok(f) if f[23] == 1 && f[34] == 11 => Some(("ttl_exceeded", "time_exceeded")),
            _ => None,
        };
        match (&c.out, answered) {
            (Ok(_), Some((reason, icmp))) => {
                assert_eq!(l["verdict"], "drop", "packet {i}");
                assert_eq!(l["reason"], reason, "packet {i}");
                assert_eq!(l["icmp"], icmp, "packet {i}");
                assert_eq!(l["icmp_egress_port"], "wan0", "packet {i}");
            }
            (Ok(_), None) => assert_eq!(l["verdict"], "forward", "packet {i}"),
            (Err(r), _) => assert_eq!(l["reason"], *r, "packet {i}"),
        }
    }
}
