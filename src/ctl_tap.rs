//! The client's side of `ctl trace` and `ctl capture`: prints the traced packets as
//! `anygate trace` does, and writes a capture (pcap, or pcapng with each drop's reason as a
//! packet comment) where the operator asked, with the operator's own permissions.
use crate::ctl_proto::{unhex, Reply};
use crate::datapath::tap::SNAP;
use pcap_file::pcap::{PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use serde_json::Value;
use std::borrow::Cow;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

/// A packet of a reply.
pub struct Captured {
    pub time: Duration,
    pub orig_len: u32,
    pub data: Vec<u8>,
    /// "drop <reason> (<description>)" for a dropped packet.
    pub comment: Option<String>,
}

fn packets(reply: &Reply) -> impl Iterator<Item = &Value> {
    reply.get("packets").as_array().into_iter().flatten()
}

/// The packets of a reply; an error names the packet the server sent wrong.
pub fn captured(reply: &Reply) -> Result<Vec<Captured>, String> {
    packets(reply)
        .enumerate()
        .map(|(i, p)| {
            let data = p["data"]
                .as_str()
                .and_then(unhex)
                .ok_or_else(|| format!("packet {i}: no data in the reply"))?;
            Ok(Captured {
                time: Duration::from_nanos(p["time_ns"].as_u64().unwrap_or(0)),
                orig_len: p["len"].as_u64().unwrap_or(data.len() as u64) as u32,
                comment: p["comment"].as_str().map(str::to_owned),
                data,
            })
        })
        .collect()
}

/// Writes `pkts` to `out`: pcapng with comments when `pcapng`, else pcap.
pub fn write(out: &Path, pkts: &[Captured], pcapng: bool) -> Result<(), String> {
    let f = File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    write_to(f, out, pkts, pcapng)
}

/// Opens `out` for [`write_to`] before the capture is asked for, so that a path that cannot
/// be written fails at once rather than after the wait, with the packets. An existing file
/// is kept as it is until the packets came; `created` says whether this made it.
pub fn open_out(out: &Path) -> Result<(File, bool), String> {
    let existed = std::fs::symlink_metadata(out).is_ok();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        // Emptied only once the packets came (write_to).
        .truncate(false)
        .open(out)
        .map_err(|e| format!("--out {}: {e}", out.display()))?;
    Ok((f, !existed))
}

/// Writes `pkts` into `f`, opened by [`open_out`] on `out`: emptied first when a regular file.
pub fn write_to(f: File, out: &Path, pkts: &[Captured], pcapng: bool) -> Result<(), String> {
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", out.display());
    let pe = |e: pcap_file::PcapError| at(&crate::trace::pcap_error(&e));
    if f.metadata().is_ok_and(|m| m.is_file()) {
        f.set_len(0).map_err(|e| at(&e))?;
    }
    if !pcapng {
        let mut w = PcapWriter::new(f).map_err(pe)?;
        for p in pkts {
            w.write_packet(&PcapPacket::new(p.time, p.orig_len, &p.data))
                .map_err(pe)?;
        }
        return Ok(());
    }
    let mut w = PcapNgWriter::new(f).map_err(pe)?;
    let idb = InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: SNAP as u32,
        // The enhanced packet blocks carry nanoseconds.
        options: vec![InterfaceDescriptionOption::IfTsResol(9)],
    };
    w.write_pcapng_block(idb).map_err(pe)?;
    for p in pkts {
        let epb = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: p.time,
            original_len: p.orig_len,
            data: Cow::Borrowed(&p.data),
            options: p
                .comment
                .iter()
                .map(|c| EnhancedPacketOption::Comment(Cow::Borrowed(c)))
                .collect(),
        };
        w.write_pcapng_block(epb).map_err(pe)?;
    }
    Ok(())
}

/// What `ctl trace` prints: a line per packet as `anygate trace` prints it (or its JSON
/// object, with the worker and port it came on).
pub fn render_trace(reply: &Reply, json: bool) -> String {
    let mut s = String::new();
    for p in packets(reply) {
        if json {
            let mut o = p["trace"].clone();
            o["worker"] = p["worker"].clone();
            o["in_port"] = p["port"].clone();
            s += &format!("{o}\n");
        } else {
            s += &format!("{}\n", p["line"].as_str().unwrap_or("?"));
        }
    }
    s
}

/// The summary for stderr: how many came, and what was lost.
pub fn summary(reply: &Reply, what: &str, want: u32) -> String {
    let n = packets(reply).count();
    let mut s = format!("{n} of {want} packet(s) {what}");
    if reply.get("complete") != &Value::Bool(true) {
        s += &format!(
            " (the rest did not come within {} s)",
            reply.get("wait_s").as_u64().unwrap_or(0)
        );
    }
    let lost = reply.get("lost").as_u64().unwrap_or(0);
    if lost > 0 {
        s += &format!("; {lost} lost to a full capture ring");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};
    use serde_json::json;

    fn reply() -> Reply {
        Reply::ok(json!({"packets": [
            {"worker": 0, "port": "wan0", "len": 70, "time_ns": 1_500_000_000u64, "data": "0102",
             "line": "#0 drop no_route (x)", "trace": {"index": 0, "verdict": "drop"},
             "comment": "drop no_route (no route)", "reason": "no_route"},
            {"worker": 1, "port": "lan0", "len": 2, "time_ns": 2_000_000_000u64, "data": "0304",
             "line": "#1 forward", "trace": {"index": 1, "verdict": "forward"}},
        ], "complete": false, "lost": 3, "wait_s": 10}))
    }

    #[test]
    fn pcapng_carries_the_drop_reasons_as_comments() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("c.pcapng");
        let pkts = captured(&reply()).unwrap();
        write(&out, &pkts, true).unwrap();
        let mut r = PcapNgReader::new(File::open(&out).unwrap()).unwrap();
        let mut got = Vec::new();
        while let Some(b) = r.next_block() {
            if let Block::EnhancedPacket(e) = b.unwrap() {
                let comments: Vec<String> = e
                    .options
                    .iter()
                    .filter_map(|o| match o {
                        EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                        _ => None,
                    })
                    .collect();
                got.push((e.timestamp, e.original_len, e.data.to_vec(), comments));
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, Duration::from_millis(1500));
        assert_eq!((got[0].1, &got[0].2[..]), (70, &[1u8, 2][..]));
        assert_eq!(got[0].3, vec!["drop no_route (no route)".to_string()]);
        assert!(got[1].3.is_empty());
    }

    #[test]
    fn pcap_holds_the_packets_and_trace_prints_as_offline() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("c.pcap");
        write(&out, &captured(&reply()).unwrap(), false).unwrap();
        let mut r = pcap_file::pcap::PcapReader::new(File::open(&out).unwrap()).unwrap();
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!((&p.data[..], p.orig_len), (&[1u8, 2][..], 70));
        assert_eq!(
            render_trace(&reply(), false),
            "#0 drop no_route (x)\n#1 forward\n"
        );
        let j = render_trace(&reply(), true);
        let first: Value = serde_json::from_str(j.lines().next().unwrap()).unwrap();
        assert_eq!(
            first,
            json!({"index": 0, "verdict": "drop", "worker": 0, "in_port": "wan0"})
        );
        assert_eq!(
            summary(&reply(), "traced", 5),
            "2 of 5 packet(s) traced (the rest did not come within 10 s); 3 lost to a full capture ring"
        );
        let bad = Reply::ok(json!({"packets": [{"data": "zz"}]}));
        assert_eq!(
            captured(&bad).err().unwrap(),
            "packet 0: no data in the reply"
        );
    }
}
