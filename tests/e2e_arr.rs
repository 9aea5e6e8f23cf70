//! Automatic Return Routing on the real binary with two workers: worker 0 polls only the
//! tunnel-side port, worker 1 only the Internet-side port, so every flow is learned on one
//! worker and its return packets are received by the other. Two tunnels whose sites use the
//! same private addresses each get their own flows' return traffic back.
//!
//! Timing: learning must happen before the return packets arrive. The Internet-side port
//! reads a FIFO (net_pcap's rx_pcap), so the test writes the return packets only once
//! `ctl show arr` shows every flow learned (phase 2); until then worker 1 waits in its read.
mod common;

use common::*;
use etherparse::{IpNumber, Ipv4Header, PacketBuilder, SlicedPacket};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TUN_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const TUN_GW: [u8; 6] = [2, 0, 0, 0, 1, 0xfe];
const NET_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];
const NET_GW: [u8; 6] = [2, 0, 0, 0, 2, 0xfe];
const EDGE: [u8; 4] = [203, 0, 113, 10];
/// The two sites' tunnel endpoints; both sites number their hosts in 192.168.10.0/24.
const SITES: [(&str, [u8; 4]); 2] = [("acme", [198, 51, 100, 20]), ("beta", [198, 51, 100, 30])];
const HOST: [u8; 4] = [192, 168, 10, 5];
const SERVER: [u8; 4] = [93, 184, 216, 34];
/// Flows per kind (UDP, TCP SYN, ICMP echo) per site.
const FLOWS: u16 = 6;

fn config(d: &Dir, w0: usize, w1: usize) -> String {
    let tunnels: String = SITES
        .iter()
        .enumerate()
        .map(|(i, (name, ep))| {
            format!(
                r#"
[[tunnels]]
name = "{name}"
type = "gre"
customer_endpoint = "{}.{}.{}.{}"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.{}/31"
authorized_prefixes = ["192.168.10.0/24"]
automatic_return_routing = true
# No probes: they would share the capture files, and a site down sends its flows by the table.
health_check = {{ enabled = false }}
"#,
                ep[0],
                ep[1],
                ep[2],
                ep[3],
                2 * i
            )
        })
        .collect();
    format!(
        r#"{eal}# Worker 0 may share the main core on a 2-core machine (see worker_cores).
idle_backoff_us = 200

[node]
anycast_addresses = ["203.0.113.10"]
control_socket = "{sock}"

[[ports]]
name = "tun0"
device = "net_pcap0,rx_pcap={tun_in},tx_pcap={tun_out0},tx_pcap={tun_out1}"
mac = "02:00:00:00:01:01"
address = "10.1.0.1/24"
tx_queues = 2

[[ports]]
name = "net0"
device = "net_pcap1,rx_pcap={net_in},tx_pcap={net_out0},tx_pcap={net_out1}"
mac = "02:00:00:00:02:01"
address = "192.0.2.1/24"
tx_queues = 2

[[workers]]
core = {w0}
rx = [{{ port = "tun0" }}]

[[workers]]
core = {w1}
rx = [{{ port = "net0" }}]

[[neighbors]]
ip = "10.1.0.254"
mac = "02:00:00:00:01:fe"
port = "tun0"

[[neighbors]]
ip = "192.0.2.254"
mac = "02:00:00:00:02:fe"
port = "net0"

[[routes]]
prefix = "198.51.100.0/24"
nexthop = "10.1.0.254"

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"

[arr]
max_flows = 1024
{tunnels}"#,
        eal = eal("ag-arr2w"),
        sock = d.p("ctl.sock").display(),
        tun_in = d.p("tun-in.pcap").display(),
        tun_out0 = d.p("tun-out0.pcap").display(),
        tun_out1 = d.p("tun-out1.pcap").display(),
        net_in = d.p("net-in.fifo").display(),
        net_out0 = d.p("net-out0.pcap").display(),
        net_out1 = d.p("net-out1.pcap").display(),
    )
}

/// One flow of a site, as the site sends it and as its return packet comes back.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Udp,
    TcpSyn,
    Echo,
}

/// Site `s`'s flow `i` of `kind`: its source port (or echo identifier). The sites use the same
/// host address, so only the ports tell their flows apart.
fn port_of(s: usize, kind: Kind, i: u16) -> u16 {
    let base = match kind {
        Kind::Udp => 41_000,
        Kind::TcpSyn => 42_000,
        Kind::Echo => 43_000,
    };
    base + 100 * s as u16 + i
}

fn kinds() -> impl Iterator<Item = (Kind, u16)> {
    [Kind::Udp, Kind::TcpSyn, Kind::Echo]
        .into_iter()
        .flat_map(|k| (0..FLOWS).map(move |i| (k, i)))
}

/// The inner packet from HOST to SERVER (forward) or back (return).
fn inner(kind: Kind, port: u16, forward: bool) -> Vec<u8> {
    let (src, dst) = if forward {
        (HOST, SERVER)
    } else {
        (SERVER, HOST)
    };
    let ip = PacketBuilder::ipv4(src, dst, 64);
    let payload = [0u8; 16];
    let mut v = Vec::new();
    match (kind, forward) {
        (Kind::Udp, true) => ip.udp(port, 53).write(&mut v, &payload),
        (Kind::Udp, false) => ip.udp(53, port).write(&mut v, &payload),
        (Kind::TcpSyn, true) => ip.tcp(port, 443, 1, 65535).syn().write(&mut v, &[]),
        (Kind::TcpSyn, false) => ip.tcp(443, port, 9, 65535).syn().ack(2).write(&mut v, &[]),
        (Kind::Echo, true) => ip.icmpv4_echo_request(port, 1).write(&mut v, &payload),
        (Kind::Echo, false) => ip.icmpv4_echo_reply(port, 1).write(&mut v, &payload),
    }
    .unwrap();
    v
}

/// `inner` in GRE from site `ep`, as it arrives on tun0.
fn gre(ep: [u8; 4], inner: &[u8]) -> Vec<u8> {
    let mut h = Ipv4Header::new((inner.len() + 4) as u16, 64, IpNumber(47), ep, EDGE).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut f = [TUN_MAC, TUN_GW].concat();
    f.extend_from_slice(&[8, 0]);
    h.write(&mut f).unwrap();
    f.extend_from_slice(&[0, 0, 8, 0]);
    f.extend_from_slice(inner);
    f
}

/// A return packet as it arrives on net0.
fn from_net(inner: &[u8]) -> Vec<u8> {
    let mut f = [NET_MAC, NET_GW].concat();
    f.extend_from_slice(&[8, 0]);
    f.extend_from_slice(inner);
    f
}

/// The destination port (UDP, TCP) or echo identifier of an inner return packet.
fn return_port(inner: &[u8]) -> u16 {
    use etherparse::{Icmpv4Type, TransportSlice};
    let p = SlicedPacket::from_ip(inner).unwrap();
    match p.transport.unwrap() {
        TransportSlice::Udp(u) => u.destination_port(),
        TransportSlice::Tcp(t) => t.destination_port(),
        TransportSlice::Icmpv4(i) => match i.icmp_type() {
            Icmpv4Type::EchoReply(e) => e.id,
            t => panic!("{t:?}"),
        },
        t => panic!("{t:?}"),
    }
}

/// The site whose flow a return port belongs to.
fn site_of(port: u16) -> usize {
    ((port % 1000) / 100) as usize
}

/// (main core, worker 0's, worker 1's): on three cores or more, one each; on two, worker 0
/// shares the main core (allowed with the idle back-off, which the config sets), so the test
/// runs on the 2-core machines CI uses too. None on one core.
fn worker_cores() -> Option<(usize, usize, usize)> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()?
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort();
    match ids.len() {
        0 | 1 => None,
        2 => Some((ids[0], ids[0], ids[1])),
        _ => Some((ids[0], ids[1], ids[2])),
    }
}

fn arr_entries(d: &Dir) -> u64 {
    let (ok, v, e) = ctl(d, &["show", "arr"]);
    assert!(ok, "{e}");
    v["arr"]["entries"]
        .as_u64()
        .unwrap_or_else(|| panic!("{v}"))
}

#[test]
fn flows_learned_on_one_worker_return_through_their_tunnel_from_the_other() {
    let Some((main, w0, w1)) = worker_cores() else {
        eprintln!("SKIPPED: two workers need two cores");
        return;
    };
    assert_eq!(
        main,
        cores().0,
        "eal() puts the main core on the first core"
    );
    let _g = lock();
    let d = Dir::new();
    // Phase 1's input: every site's flows, UDP, TCP SYN and echo requests, interleaved.
    let mut forward = Vec::new();
    for (kind, i) in kinds() {
        for (s, (_, ep)) in SITES.iter().enumerate() {
            forward.push(gre(*ep, &inner(kind, port_of(s, kind, i), true)));
        }
    }
    write_pcap(&d.p("tun-in.pcap"), &forward);
    let fifo = d.p("net-in.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo");
    // The FIFO's writer: the pcap header at once (the port opens it at start), then the
    // return packets when told, then the end of input (net_pcap reads a burst until it is
    // full or the input ends, so the input must end for the last burst to go through).
    let (go, wait) = mpsc::channel::<Vec<Vec<u8>>>();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
            let mut w = pcap_file::pcap::PcapWriter::new(f).unwrap();
            for (i, f) in wait.recv().unwrap_or_default().iter().enumerate() {
                let t = Duration::from_micros(i as u64);
                let p = pcap_file::pcap::PcapPacket::new(t, f.len() as u32, f);
                w.write_packet(&p).unwrap();
            }
        })
    };
    std::fs::write(d.p("arr.toml"), config(&d, w0, w1)).unwrap();
    let mut r = Running::start(&d.p("arr.toml"), "3600", d.p("stderr.log"));

    // Phase 1: worker 0 learns every flow from both sites.
    let flows = forward.len() as u64;
    let t = Instant::now();
    while !d.p("ctl.sock").exists() || arr_entries(&d) < flows {
        if let Some(st) = r.child.try_wait().unwrap() {
            panic!("anygate exited ({st}):\n{}", r.stderr());
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "flows never learned\n{}",
            r.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(arr_entries(&d), flows, "one entry per flow, none merged");

    // Phase 2: the return packets, received by worker 1, and one of a flow nobody opened.
    let mut returns: Vec<Vec<u8>> = Vec::new();
    for (kind, i) in kinds() {
        for s in 0..SITES.len() {
            returns.push(from_net(&inner(kind, port_of(s, kind, i), false)));
        }
    }
    let stranger = from_net(&inner(Kind::Udp, 44_999, false));
    returns.push(stranger.clone());
    go.send(returns.clone()).unwrap();
    let want_returned = returns.len() as u64 - 1;
    let t = Instant::now();
    let stats = loop {
        let (ok, v, e) = ctl(&d, &["show", "stats"]);
        assert!(ok, "{e}");
        let st = v["stats"].clone();
        if st["arr"]["returned"].as_u64() == Some(want_returned)
            && st["ports"][1]["rx_packets"].as_u64() == Some(returns.len() as u64)
        {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "returns never counted: {}\n{}",
            st["arr"],
            r.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    writer.join().unwrap();
    let last = r.finish();

    // Each worker saw only its own port: learning on 0, the return packets on 1.
    let w = &stats["workers"];
    assert_eq!(w[0]["rx_packets"], flows, "{w}");
    assert_eq!(w[1]["rx_packets"], returns.len() as u64, "{w}");
    assert_eq!(last["arr"]["learned"], flows);
    assert_eq!(last["arr"]["returned"], want_returned);
    for (s, (name, _)) in SITES.iter().enumerate() {
        let t = &last["tunnels"][s];
        assert_eq!(t["name"], *name);
        assert_eq!(t["arr"]["learned"], flows / 2, "{t}");
        assert_eq!(t["arr"]["returned"], want_returned / 2, "{t}");
        assert_eq!(t["tx_packets"], want_returned / 2, "{t}");
    }

    // Each worker sends on its own tx queue (a capture file of its own per port): worker 1,
    // which received the return packets, sent every one into its tunnel; worker 0 none.
    assert!(read_pcap(&d.p("tun-out0.pcap")).is_empty());
    // Every packet into a tunnel: GRE to the site whose flow it answers, the return packet
    // inside unchanged but for the TTL and checksum.
    let out = read_pcap(&d.p("tun-out1.pcap"));
    assert_eq!(out.len() as u64, want_returned);
    let mut per_site = BTreeMap::new();
    for f in &out {
        assert_eq!(&f[..12], &[TUN_GW, TUN_MAC].concat()[..], "MACs");
        let outer = SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = outer.net else {
            panic!("not IPv4: {f:02x?}")
        };
        assert_eq!(ip.header().protocol(), IpNumber(47));
        assert_eq!(ip.header().source(), EDGE);
        let inner = &f[14 + 20 + 4..];
        let port = return_port(inner);
        let site = site_of(port);
        assert_eq!(ip.header().destination(), SITES[site].1, "port {port}");
        assert_eq!(&inner[12..20], &[SERVER, HOST].concat()[..]);
        assert_eq!(inner[8], 63, "TTL");
        *per_site.entry(site).or_insert(0u64) += 1;
        assert!(
            returns
                .iter()
                .any(|r| r[14 + 12..] == inner[12..] && r.len() == f.len() - 24),
            "an unknown inner packet: {inner:02x?}"
        );
    }
    assert_eq!(per_site.values().sum::<u64>(), want_returned);
    assert_eq!(per_site.len(), 2, "{per_site:?}");
    // tshark's GRE dissector reads the same: each outer destination is the site whose port
    // range the inner destination port (or echo id) is in.
    let rows = tshark_with(
        &d.p("tun-out1.pcap"),
        &["-Y", "gre"],
        &[
            "ip.dst",
            "gre.proto",
            "udp.dstport",
            "tcp.dstport",
            "icmp.ident",
        ],
    );
    assert_eq!(rows.len() as u64, want_returned);
    for row in &rows {
        let dsts: Vec<&str> = row[0].split(',').collect();
        assert_eq!(dsts.len(), 2, "outer and inner: {row:?}");
        assert_eq!(row[1], "0x0800", "{row:?}");
        assert_eq!(dsts[1], "192.168.10.5", "{row:?}");
        let port = row[2..]
            .iter()
            .find(|f| !f.is_empty())
            .and_then(|f| number(f.split(',').next().unwrap()))
            .unwrap_or_else(|| panic!("{row:?}"));
        let ep = SITES[site_of(port)].1;
        assert_eq!(
            dsts[0],
            format!("{}.{}.{}.{}", ep[0], ep[1], ep[2], ep[3]),
            "{row:?}"
        );
    }

    // The Internet side: each site's flows decapsulated by worker 0, and the stranger's
    // packet, which no flow knows, by worker 1 along the route table (the default route),
    // never into a tunnel.
    let net = read_pcap(&d.p("net-out0.pcap"));
    assert_eq!(net.len() as u64, flows, "{}", last["drops"]);
    for f in &net {
        assert_eq!(&f[..12], &[NET_GW, NET_MAC].concat()[..]);
        assert_eq!(&f[14 + 12..14 + 20], &[HOST, SERVER].concat()[..]);
    }
    let net = read_pcap(&d.p("net-out1.pcap"));
    assert_eq!(net.len(), 1, "{}", last["drops"]);
    assert_eq!(&net[0][..12], &[NET_GW, NET_MAC].concat()[..]);
    assert_eq!(net[0][14 + 12..], stranger[14 + 12..]);
}

/// A tshark number, decimal or 0x hex.
fn number(s: &str) -> Option<u16> {
    match s.strip_prefix("0x") {
        Some(h) => u16::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}
