//! `anygate trace`: runs the forwarding pipeline over a capture without DPDK and says, packet by
//! packet, what the data plane would do. The same code as the workers, over in-memory buffers.
use crate::config::Config;
use crate::datapath::{Note, Pipeline, VecBuf, Verdict};
use crate::health::probe::Recognised;
use crate::route::{Rib, Snapshot};
use crate::wire::{ethernet, icmp, MacAddr};
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, PcapError};
use serde_json::json;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

pub struct TraceOptions<'a> {
    pub pcap: &'a Path,
    pub out: Option<&'a Path>,
    pub json: bool,
    /// Index of the port the capture arrives on.
    pub in_port: u16,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct TraceSummary {
    pub packets: u64,
    pub forwarded: u64,
    /// Counted as dropped too, as `run` counts them.
    pub dropped: u64,
    /// Dropped packets answered with an ICMP error (written to `--out` as the error).
    pub answered: u64,
    /// Answers to this node's health probes, consumed: neither forwarded nor dropped
    /// (packets = forwarded + dropped + probes).
    pub probes: u64,
}

/// MACs for the ports: configured ones, or a stand-in for ports that take the NIC's own.
pub fn port_macs(cfg: &Config) -> Vec<MacAddr> {
    cfg.ports
        .iter()
        .enumerate()
        .map(|(i, p)| p.mac.unwrap_or(MacAddr([0x02, 0, 0, 0, 0, i as u8 + 1])))
        .collect()
}

pub fn trace(
    cfg: &Config,
    opts: &TraceOptions,
    out: &mut dyn Write,
) -> Result<TraceSummary, String> {
    for p in cfg.ports.iter().filter(|p| p.mac.is_none()) {
        log::warn!(
            "port {} has no `mac` in the config; trace uses a stand-in",
            p.name
        );
    }
    let macs = port_macs(cfg);
    let (snap, rib) = Snapshot::build_with_rib(cfg, &macs, 1, None)?;
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", opts.pcap.display());
    let f = File::open(opts.pcap).map_err(|e| at(&e))?;
    if let Some(out) = opts.out {
        same_file(&f, out)?;
    }
    let mut reader =
        Capture::open(f, macs.get(opts.in_port as usize).copied()).map_err(|e| at(&e))?;
    let mut writer = match opts.out {
        Some(p) => {
            let at = |e: &dyn std::fmt::Display| format!("{}: {e}", p.display());
            let f = File::create(p).map_err(|e| at(&e))?;
            Some(PcapWriter::new(f).map_err(|e| at(&pcap_error(&e)))?)
        }
        None => None,
    };
    let mut pipeline = Pipeline::new();
    let mut sum = TraceSummary::default();
    let mut index = 0u64;
    while let Some(pkt) = reader.next() {
        let pkt = pkt.map_err(|e| at(&format!("packet {index}: {e}")))?;
        let mut buf = [VecBuf::from_bytes(&pkt.data)];
        let mut v = [Verdict::Forward(0)];
        // The capture's clock drives the ICMP rate limit, so a trace replays it faithfully.
        pipeline.set_clock(pkt.timestamp.as_nanos() as u64, 1_000_000_000);
        pipeline.process(&snap, opts.in_port, &mut buf, &mut v);
        sum.packets += 1;
        let line = describe(
            cfg,
            (&snap, &rib),
            index,
            v[0],
            pipeline.note(),
            buf[0].as_ref(),
            opts.json,
        );
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
        if pipeline.note().answered.is_some() {
            sum.answered += 1;
        }
        match v[0] {
            Verdict::Forward(_) if pipeline.note().answered.is_some() => sum.dropped += 1,
            Verdict::Forward(_) => sum.forwarded += 1,
            Verdict::Drop(_) => sum.dropped += 1,
            Verdict::Consumed => sum.probes += 1,
        }
        match v[0] {
            Verdict::Forward(_) => {
                if let Some(w) = writer.as_mut() {
                    let p = PcapPacket::new(
                        pkt.timestamp,
                        buf[0].as_ref().len() as u32,
                        buf[0].as_ref(),
                    );
                    w.write_packet(&p).map_err(|e| {
                        format!(
                            "{}: {}",
                            opts.out.unwrap_or(opts.pcap).display(),
                            pcap_error(&e)
                        )
                    })?;
                }
            }
            Verdict::Drop(_) | Verdict::Consumed => {}
        }
        index += 1;
    }
    Ok(sum)
}

/// Refuses `--out` naming the capture being read: creating it would empty the input.
fn same_file(input: &File, out: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let (Ok(i), Ok(o)) = (input.metadata(), std::fs::metadata(out)) else {
        return Ok(());
    };
    if (i.dev(), i.ino()) == (o.dev(), o.ino()) {
        return Err(format!(
            "--out: {} is the capture being traced (--pcap); give another file",
            out.display()
        ));
    }
    Ok(())
}

/// pcap_file's error with the I/O error it wraps ("No space left on device", where its own
/// text says "Error reading bytes" even of a write).
pub fn pcap_error(e: &PcapError) -> String {
    match e {
        PcapError::IoError(io) => io.to_string(),
        e => e.to_string(),
    }
}

/// A packet of the capture, as the Ethernet frame the port would receive.
struct Packet {
    timestamp: Duration,
    data: Vec<u8>,
}

/// The capture being traced: pcap, or pcapng (what `ctl capture --drops-only` writes), of
/// Ethernet frames or raw IP packets (LINKTYPE_RAW, IPV4), which get an Ethernet header to
/// the port's MAC. Other link types are refused: read as Ethernet they would be garbage.
enum Capture {
    Pcap(PcapReader<File>, Link),
    Ng(PcapNgReader<File>, Option<MacAddr>),
}

#[derive(Clone, Copy)]
enum Link {
    Ethernet,
    /// An IP packet without a link header, put in a frame to this MAC.
    Raw(MacAddr),
}

/// pcapng's magic: the section header block's type.
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

impl Capture {
    fn open(mut f: File, port_mac: Option<MacAddr>) -> Result<Capture, String> {
        use std::io::{Read, Seek};
        let mut magic = [0u8; 4];
        let n = f.read(&mut magic).map_err(|e| e.to_string())?;
        f.rewind().map_err(|e| e.to_string())?;
        if n == 4 && magic == PCAPNG_MAGIC {
            let r = PcapNgReader::new(f).map_err(|e| format!("pcapng: {}", pcap_error(&e)))?;
            return Ok(Capture::Ng(r, port_mac));
        }
        let r = PcapReader::new(f)
            .map_err(|e| format!("{} (neither pcap nor pcapng)", pcap_error(&e)))?;
        let link = link(r.header().datalink, port_mac)?;
        Ok(Capture::Pcap(r, link))
    }

    fn next(&mut self) -> Option<Result<Packet, String>> {
        match self {
            Capture::Pcap(r, link) => {
                let link = *link;
                r.next_packet().map(|p| {
                    let p = p.map_err(|e| pcap_error(&e))?;
                    Ok(Packet {
                        timestamp: p.timestamp,
                        data: frame(link, &p.data),
                    })
                })
            }
            Capture::Ng(r, mac) => loop {
                // The block borrows the reader; its data is copied out (trace is offline).
                let (iface, ticks, data) = match r.next_block()? {
                    Err(e) => return Some(Err(pcap_error(&e))),
                    Ok(Block::EnhancedPacket(b)) => {
                        // pcap_file reads the timestamp's raw ticks as nanoseconds.
                        let ticks = b.timestamp.as_nanos() as u64;
                        (b.interface_id, ticks, b.data.into_owned())
                    }
                    Ok(Block::SimplePacket(b)) => (0, 0, b.data.into_owned()),
                    Ok(Block::Packet(b)) => {
                        (u32::from(b.interface_id), b.timestamp, b.data.into_owned())
                    }
                    Ok(_) => continue,
                };
                let Some(idb) = r.interfaces().get(iface as usize) else {
                    return Some(Err(format!("no interface {iface} described before it")));
                };
                let link = match link(idb.linktype, *mac) {
                    Ok(l) => l,
                    Err(e) => return Some(Err(format!("interface {iface}: {e}"))),
                };
                return Some(Ok(Packet {
                    timestamp: ng_time(&idb.options, ticks),
                    data: frame(link, &data),
                }));
            },
        }
    }
}

/// How trace reads a link type, or why it cannot.
fn link(l: DataLink, port_mac: Option<MacAddr>) -> Result<Link, String> {
    match l {
        DataLink::ETHERNET => Ok(Link::Ethernet),
        // 12 and 14: DLT_RAW as some systems wrote it before LINKTYPE_RAW (101).
        DataLink::RAW | DataLink::IPV4 | DataLink::Unknown(12) | DataLink::Unknown(14) => Ok(
            Link::Raw(port_mac.unwrap_or(MacAddr([0x02, 0, 0, 0, 0, 1]))),
        ),
        other => Err(format!(
            "link type {} ({other:?}): trace reads Ethernet frames (LINKTYPE_ETHERNET) and \
             raw IPv4 packets (LINKTYPE_RAW) only",
            u32::from(other)
        )),
    }
}

/// The frame the port receives: as captured, or a raw IP packet behind an Ethernet header
/// from a stand-in MAC to the port's.
fn frame(link: Link, data: &[u8]) -> Vec<u8> {
    match link {
        Link::Ethernet => data.to_vec(),
        Link::Raw(dst) => {
            let ethertype: u16 = match data.first().map(|b| b >> 4) {
                Some(6) => ethernet::ETHERTYPE_IPV6,
                _ => ethernet::ETHERTYPE_IPV4,
            };
            let mut f = Vec::with_capacity(14 + data.len());
            f.extend_from_slice(&dst.0);
            f.extend_from_slice(&RAW_SRC_MAC.0);
            f.extend_from_slice(&ethertype.to_be_bytes());
            f.extend_from_slice(data);
            f
        }
    }
}

/// The source MAC of the frames made for raw IP packets.
pub const RAW_SRC_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xfe]);

/// An enhanced packet block's time: `ticks` in the interface's resolution (if_tsresol:
/// 10^-n or 2^-n seconds, microseconds when absent) from its if_tsoffset (seconds).
fn ng_time(options: &[InterfaceDescriptionOption], ticks: u64) -> Duration {
    let mut resol = 6u8;
    let mut offset = 0u64;
    for o in options {
        match o {
            InterfaceDescriptionOption::IfTsResol(r) => resol = *r,
            InterfaceDescriptionOption::IfTsOffset(s) => offset = *s,
            _ => {}
        }
    }
    let ticks = u128::from(ticks);
    let nanos = if resol & 0x80 != 0 {
        (ticks * 1_000_000_000) >> (resol & 0x7f).min(127)
    } else if resol <= 9 {
        ticks * 10u128.pow(9 - u32::from(resol))
    } else {
        ticks / 10u128.pow(u32::from(resol.min(38)) - 9)
    };
    let nanos = nanos.saturating_add(u128::from(offset) * 1_000_000_000);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// One packet's story, as a line of text or a JSON object. Field names are stable. `data` is
/// the packet as it leaves (only its Ethernet header is read). Also `ctl trace`'s.
pub fn describe(
    cfg: &Config,
    (snap, rib): (&Snapshot, &Rib),
    index: u64,
    v: Verdict,
    note: &Note,
    data: &[u8],
    as_json: bool,
) -> String {
    let tunnel = |t: Option<u16>| {
        t.and_then(|t| snap.tunnels.get(t as usize))
            .map(|t| t.name.as_str())
    };
    let ingress = tunnel(note.ingress_tunnel);
    let egress = tunnel(note.egress_tunnel);
    // Sent into a tunnel by a learned ARR flow instead of a route.
    let arr = if note.arr { egress } else { None };
    let icmp = note.icmp.map(|(ty, _)| {
        if ty == icmp::TYPE_TIME_EXCEEDED {
            "time_exceeded"
        } else {
            "frag_needed"
        }
    });
    let route = note.route_dst.and_then(|d| rib.matching_prefix(d));
    let nexthop = note.nexthop.map(|id| snap.nexthop_name(id));
    // The ECMP group the route selected, when it has more than one member.
    let group: Option<Vec<String>> = note
        .route_dst
        .and_then(|d| snap.fib.lookup(d))
        .and_then(|set| snap.group(set))
        .filter(|g| g.is_ecmp())
        .map(|g| g.members.iter().map(|nh| snap.nexthop_name(*nh)).collect());
    let port_name = |p: u16| cfg.port_label(p);
    // A packet answered with an ICMP error is dropped, as `run` counts it; what leaves is the
    // error, toward the packet's sender.
    if let (Some(r), Some(i), Verdict::Forward(p)) = (note.answered, icmp, v) {
        let to = note
            .route_dst
            .map(|a| std::net::Ipv4Addr::from(a).to_string());
        if as_json {
            let mut o = json!({"index": index, "verdict": "drop", "reason": r.name(), "icmp": i,
                               "icmp_dst": to, "icmp_egress_port": port_name(p)});
            if let Some(n) = &nexthop {
                o["icmp_nexthop"] = json!(n);
            }
            if let Some(t) = ingress {
                o["ingress_tunnel"] = json!(t);
            }
            return o.to_string();
        }
        let via = nexthop.map(|n| format!(" via {n}")).unwrap_or_default();
        return format!(
            "#{index} drop {} ({}), answered with ICMP {i} to {} out port {}{via}",
            r.name(),
            r.description(),
            to.unwrap_or_default(),
            port_name(p)
        );
    }
    let node = snap.node_id;
    if as_json {
        let mut o = match v {
            Verdict::Drop(r) => json!({"index": index, "verdict": "drop", "reason": r.name()}),
            Verdict::Consumed => json!({"index": index, "verdict": "consumed"}),
            Verdict::Forward(p) if note.arp_reply => {
                json!({"index": index, "verdict": "forward", "egress_port": port_name(p), "arp": "reply"})
            }
            Verdict::Forward(p) => {
                let port = cfg.port_label(p);
                let (dmac, smac) = ethernet::Frame::new_checked(data)
                    .map(|f| (f.dst().to_string(), f.src().to_string()))
                    .unwrap_or_default();
                let mut o = json!({"index": index, "verdict": "forward", "egress_port": port,
                                   "dst_mac": dmac, "src_mac": smac});
                if let Some(r) = route {
                    o["route_prefix"] = json!(r.to_string());
                }
                if let Some(n) = &nexthop {
                    o["nexthop"] = json!(n);
                }
                if let Some(g) = &group {
                    o["group"] = json!(g);
                }
                o
            }
        };
        if let Some(t) = ingress {
            o["ingress_tunnel"] = json!(t);
        }
        if let Some(t) = arr {
            o["arr"] = json!(t);
        }
        if let (Some(t), Verdict::Forward(_)) = (egress, v) {
            o["tunnel"] = json!(t);
        }
        if let Some(m) = note.mss {
            o["mss"] = json!(m);
        }
        if let Some(r) = note.rule {
            o["rule"] = json!(r);
        }
        match note.probe {
            Some(Recognised::Ours { seq }) => o["probe"] = json!({"seq": seq, "node": node}),
            Some(Recognised::Foreign { node_id }) => {
                o["probe"] = json!("foreign");
                o["probe_node"] = json!(node_id);
            }
            Some(Recognised::NotProbe) | None => {}
        }
        return o.to_string();
    }
    let mut line = match v {
        Verdict::Drop(r) => format!("#{index} drop {} ({})", r.name(), r.description()),
        Verdict::Consumed => format!("#{index} consumed"),
        Verdict::Forward(p) => {
            let port = cfg.port_label(p);
            let (dmac, smac) = ethernet::Frame::new_checked(data)
                .map(|f| (f.dst().to_string(), f.src().to_string()))
                .unwrap_or_default();
            let via = match (route, &nexthop, &group) {
                _ if arr.is_some() => format!(" arr {}", arr.unwrap_or_default()),
                (Some(r), Some(n), Some(g)) => {
                    format!(" route {r} via {n} (of group {})", g.join(","))
                }
                (Some(r), Some(n), None) => format!(" route {r} via {n}"),
                _ => " (arp reply)".to_owned(),
            };
            format!("#{index} forward port {port} dst {dmac} src {smac}{via}")
        }
    };
    if let Some(t) = ingress {
        line.push_str(&format!(", decap from {t}"));
    }
    if let Some(m) = note.mss {
        line.push_str(&format!(
            ", mss {m}{}",
            if note.clamped { " (clamped)" } else { "" }
        ));
    }
    if let (Some(t), Verdict::Forward(_)) = (egress, v) {
        line.push_str(&format!(", encap into {t}"));
    }
    if let Some(r) = note.rule {
        line.push_str(&format!(", firewall rule {r}"));
    }
    match note.probe {
        Some(Recognised::Ours { seq }) => {
            line.push_str(&format!(", health probe answer seq {seq} (node {node})"));
        }
        Some(Recognised::Foreign { node_id }) => {
            line.push_str(&format!(
                ", health probe answer of node {node_id} (not ours)"
            ));
        }
        Some(Recognised::NotProbe) | None => {}
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Host};
    use crate::health::probe::{build, ProbeSpec};
    use crate::health::CheckType;
    use std::time::Duration;

    const CFG: &str = r#"
[node]
anycast_addresses = ["203.0.113.10"]
id = 42

[[ports]]
name = "wan0"
device = "net_null0"
mac = "02:00:00:00:00:01"
address = "192.0.2.1/24"

[[workers]]
core = 1
rx = [{ port = "wan0" }]

[[tunnels]]
name = "acme"
type = "ipip"
customer_endpoint = "198.51.100.20"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"
"#;

    /// An echo reply answering node `node`'s probe `seq`, back through the IP-in-IP tunnel.
    fn answer(node: u32, seq: u32) -> Vec<u8> {
        let mut ip = [0u8; crate::health::INJECT_MAX];
        let spec = ProbeSpec {
            kind: CheckType::Reply,
            src: 0x0a64_0001,
            dst: 0x0a64_0000,
            seq,
            node_id: node,
        };
        let n = build(&spec, &mut ip);
        let mut outer = [0u8; 20];
        crate::wire::ipv4::Repr {
            src: u32::from_be_bytes([198, 51, 100, 20]),
            dst: u32::from_be_bytes([203, 0, 113, 10]),
            header_len: 20,
            total_len: 20 + n as u16,
            ttl: 60,
            protocol: crate::wire::ipv4::PROTO_IPIP,
            ..Default::default()
        }
        .emit(&mut outer);
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xfe, 8, 0];
        f.extend_from_slice(&outer);
        f.extend_from_slice(&ip[..n]);
        f
    }

    fn run(json: bool) -> (Vec<String>, TraceSummary) {
        let cfg = parse(CFG, &Host { cores: vec![0, 1] }).unwrap();
        let d = tempfile::tempdir().unwrap();
        let pcap = d.path().join("in.pcap");
        let mut w = PcapWriter::new(File::create(&pcap).unwrap()).unwrap();
        for f in [answer(42, 7), answer(43, 8)] {
            w.write_packet(&PcapPacket::new(Duration::ZERO, f.len() as u32, &f))
                .unwrap();
        }
        drop(w);
        let opts = TraceOptions {
            pcap: &pcap,
            out: None,
            json,
            in_port: 0,
        };
        let mut out = Vec::new();
        let sum = trace(&cfg, &opts, &mut out).unwrap();
        let lines = String::from_utf8(out).unwrap();
        (lines.lines().map(str::to_owned).collect(), sum)
    }

    #[test]
    fn probe_answers_are_named_and_counted() {
        let (lines, sum) = run(true);
        let v: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(v[0]["verdict"], "consumed");
        assert_eq!(v[0]["probe"], json!({"seq": 7, "node": 42}));
        assert_eq!(v[0]["ingress_tunnel"], "acme");
        assert_eq!(v[1]["verdict"], "drop");
        assert_eq!(v[1]["reason"], "probe_foreign");
        assert_eq!(v[1]["probe"], "foreign");
        assert_eq!(v[1]["probe_node"], 43);
        let want = TraceSummary {
            packets: 2,
            forwarded: 0,
            dropped: 1,
            answered: 0,
            probes: 1,
        };
        assert_eq!(sum, want);
        let (lines, _) = run(false);
        assert_eq!(
            lines[0],
            "#0 consumed, decap from acme, health probe answer seq 7 (node 42)"
        );
        assert!(
            lines[1].starts_with("#1 drop probe_foreign (")
                && lines[1]
                    .ends_with(", decap from acme, health probe answer of node 43 (not ours)"),
            "{}",
            lines[1]
        );
    }

    /// A flow learned from a tunnel with ARR: its return packet is traced as sent by it.
    #[test]
    fn arr_returns_are_named() {
        use etherparse::PacketBuilder;
        let cfg_text = CFG.replace(
            "interface_address = \"10.100.0.0/31\"",
            "interface_address = \"10.100.0.0/31\"\nautomatic_return_routing = true",
        )
            + "[[neighbors]]\nip = \"192.0.2.254\"\nmac = \"02:00:00:00:00:fe\"\nport = \"wan0\"\n";
        let cfg = parse(&cfg_text, &Host { cores: vec![0, 1] }).unwrap();
        let eth = |ip: Vec<u8>| {
            let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xfe, 8, 0];
            f.extend_from_slice(&ip);
            f
        };
        let udp = |src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16| {
            let mut v = Vec::new();
            PacketBuilder::ipv4(src, dst, 64)
                .udp(sp, dp)
                .write(&mut v, &[1; 8])
                .unwrap();
            v
        };
        let inner = udp([10, 100, 0, 1], [93, 184, 216, 34], 4000, 53);
        let mut outer = [0u8; 20];
        crate::wire::ipv4::Repr {
            src: u32::from_be_bytes([198, 51, 100, 20]),
            dst: u32::from_be_bytes([203, 0, 113, 10]),
            header_len: 20,
            total_len: 20 + inner.len() as u16,
            ttl: 60,
            protocol: crate::wire::ipv4::PROTO_IPIP,
            ..Default::default()
        }
        .emit(&mut outer);
        let tunnelled = eth([&outer[..], &inner].concat());
        let back = eth(udp([93, 184, 216, 34], [10, 100, 0, 1], 53, 4000));
        let d = tempfile::tempdir().unwrap();
        let pcap = d.path().join("in.pcap");
        let mut w = PcapWriter::new(File::create(&pcap).unwrap()).unwrap();
        for f in [tunnelled, back] {
            w.write_packet(&PcapPacket::new(Duration::ZERO, f.len() as u32, &f))
                .unwrap();
        }
        drop(w);
        for json in [false, true] {
            let opts = TraceOptions {
                pcap: &pcap,
                out: None,
                json,
                in_port: 0,
            };
            let mut out = Vec::new();
            trace(&cfg, &opts, &mut out).unwrap();
            let lines: Vec<String> = String::from_utf8(out)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect();
            if json {
                let v: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
                assert_eq!(v["arr"], "acme");
                assert_eq!(v["tunnel"], "acme");
                assert_eq!(v.get("route_prefix"), None);
            } else {
                assert!(
                    lines[1].contains(" arr acme, encap into acme"),
                    "{}",
                    lines[1]
                );
                assert!(!lines[0].contains("arr"), "{}", lines[0]);
            }
        }
    }

    /// Traces the capture at `pcap` over CFG: the lines, or the error.
    fn trace_file(pcap: &Path, out: Option<&Path>) -> Result<Vec<String>, String> {
        let cfg = parse(CFG, &Host { cores: vec![0, 1] }).unwrap();
        let opts = TraceOptions {
            pcap,
            out,
            json: false,
            in_port: 0,
        };
        let mut lines = Vec::new();
        trace(&cfg, &opts, &mut lines)?;
        Ok(String::from_utf8(lines)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect())
    }

    fn pcap_with(path: &Path, link: DataLink, frames: &[Vec<u8>]) {
        let header = pcap_file::pcap::PcapHeader {
            datalink: link,
            ..Default::default()
        };
        let mut w = PcapWriter::with_header(File::create(path).unwrap(), header).unwrap();
        for f in frames {
            w.write_packet(&PcapPacket::new(Duration::ZERO, f.len() as u32, f))
                .unwrap();
        }
    }

    /// pcapng, as `ctl capture --drops-only` writes it (and tshark/dumpcap by default), is
    /// read as pcap is; raw IP captures (LINKTYPE_RAW) get an Ethernet header to the port.
    #[test]
    fn pcapng_and_raw_ip_captures_trace_as_ethernet_pcap_does() {
        use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
        use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
        use pcap_file::pcapng::PcapNgWriter;
        use std::borrow::Cow;
        let d = tempfile::tempdir().unwrap();
        let frames = [answer(42, 7), answer(43, 8)];
        let pcap = d.path().join("in.pcap");
        pcap_with(&pcap, DataLink::ETHERNET, &frames);
        let want = trace_file(&pcap, None).unwrap();
        assert_eq!(want.len(), 2);

        let ng = d.path().join("in.pcapng");
        let mut w = PcapNgWriter::new(File::create(&ng).unwrap()).unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options: vec![],
        })
        .unwrap();
        for f in &frames {
            w.write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::ZERO,
                original_len: f.len() as u32,
                data: Cow::Borrowed(f),
                options: vec![],
            })
            .unwrap();
        }
        drop(w);
        assert_eq!(trace_file(&ng, None).unwrap(), want);

        let raw = d.path().join("raw.pcap");
        let ip: Vec<Vec<u8>> = frames.iter().map(|f| f[14..].to_vec()).collect();
        pcap_with(&raw, DataLink::RAW, &ip);
        assert_eq!(trace_file(&raw, None).unwrap(), want);
        assert_eq!(
            frame(Link::Raw(MacAddr([2, 0, 0, 0, 0, 1])), &ip[0])[..12],
            {
                let mut m = vec![2, 0, 0, 0, 0, 1];
                m.extend_from_slice(&RAW_SRC_MAC.0);
                m
            }[..]
        );
    }

    /// A link type read as Ethernet would be garbage: refused, naming it.
    #[test]
    fn other_link_types_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let sll = d.path().join("sll.pcap");
        pcap_with(&sll, DataLink::LINUX_SLL, &[answer(42, 7)]);
        let e = trace_file(&sll, None).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "{}: link type 113 (LINUX_SLL): trace reads Ethernet",
                sll.display()
            )),
            "{e}"
        );
        let junk = d.path().join("junk");
        std::fs::write(&junk, b"not a capture at all").unwrap();
        let e = trace_file(&junk, None).unwrap_err();
        assert!(e.ends_with("(neither pcap nor pcapng)"), "{e}");
    }

    /// `--out` naming the input (or a link to it) is refused before the input is emptied.
    #[test]
    fn out_naming_the_input_is_refused_and_the_input_kept() {
        let d = tempfile::tempdir().unwrap();
        let pcap = d.path().join("in.pcap");
        pcap_with(&pcap, DataLink::ETHERNET, &[answer(42, 7)]);
        let len = std::fs::metadata(&pcap).unwrap().len();
        let link = d.path().join("link.pcap");
        std::fs::hard_link(&pcap, &link).unwrap();
        for out in [&pcap, &link] {
            let e = trace_file(&pcap, Some(out)).unwrap_err();
            assert_eq!(
                e,
                format!(
                    "--out: {} is the capture being traced (--pcap); give another file",
                    out.display()
                )
            );
        }
        assert_eq!(std::fs::metadata(&pcap).unwrap().len(), len);
        let other = d.path().join("out.pcap");
        assert_eq!(trace_file(&pcap, Some(&other)).unwrap().len(), 1);
        // A full disk says so, not pcap_file's "Error reading bytes".
        if Path::new("/dev/full").exists() {
            let e = trace_file(&pcap, Some(Path::new("/dev/full"))).unwrap_err();
            assert!(e.starts_with("/dev/full: No space left on device"), "{e}");
        }
    }

    /// pcapng timestamps are in the interface's if_tsresol (microseconds by default).
    #[test]
    fn pcapng_timestamps_follow_the_interface_resolution() {
        use InterfaceDescriptionOption::{IfTsOffset, IfTsResol};
        assert_eq!(ng_time(&[], 1_500_000), Duration::from_millis(1500));
        assert_eq!(ng_time(&[IfTsResol(9)], 7), Duration::from_nanos(7));
        assert_eq!(ng_time(&[IfTsResol(3)], 2), Duration::from_millis(2));
        assert_eq!(ng_time(&[IfTsResol(12)], 5_000), Duration::from_nanos(5));
        assert_eq!(
            ng_time(&[IfTsResol(0x80 | 10)], 2048),
            Duration::from_secs(2)
        );
        assert_eq!(
            ng_time(&[IfTsResol(6), IfTsOffset(10)], 1),
            Duration::from_nanos(10_000_001_000)
        );
    }
}
