//! The probe wire format: one inner IPv4 packet (no Ethernet, no tunnel headers) that the
//! workers encapsulate like any packet routed into the tunnel, and the test that tells an
//! answer to one of our probes from any other packet.
//!
//! ```text
//! IPv4   20 bytes  version 4, IHL 5, TOS 0, ID 0, DF, TTL 64, protocol 1 (ICMP)
//! ICMP    8 bytes  type 0 (echo reply, `reply` probes) or 8 (echo request, `request`),
//!                  code 0, checksum, identifier = ident(node_id), sequence = seq & 0xffff
//! payload 16 bytes magic "AGhp", version 1, 3 bytes zero, node_id (u32), seq (u32)
//! ```
//! All fields big-endian; 44 bytes in all. What comes back is always an echo reply carrying
//! this payload: a `reply` probe routed back by the customer, or the customer's answer to a
//! `request` probe (which echoes identifier, sequence and payload).
use crate::wire::{checksum, icmp, ipv4};

use super::CheckType;

/// The payload's first bytes.
pub const MAGIC: [u8; 4] = *b"AGhp";
pub const VERSION: u8 = 1;
const PAYLOAD_LEN: usize = 16;
/// The length of every probe.
pub const LEN: usize = ipv4::MIN_HEADER_LEN + icmp::HEADER_LEN + PAYLOAD_LEN;
const _: () = assert!(LEN <= super::INJECT_MAX, "a probe fits an inject item");
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;
const TTL: u8 = 64;

/// What one probe carries; the checker picks the addresses (see the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSpec {
    pub kind: CheckType,
    pub src: u32,
    pub dst: u32,
    pub seq: u32,
    pub node_id: u32,
}

/// What an inner IPv4 packet is to the health checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recognised {
    NotProbe,
    /// An answer to one of this node's probes.
    Ours {
        seq: u32,
    },
    /// An answer to another node's probe (an anycast fleet: it landed here).
    Foreign {
        node_id: u32,
    },
}

/// The ICMP identifier of a node's probes: stable per node, so a stateful firewall on the
/// customer side sees one echo "session" per edge server.
pub fn ident(node_id: u32) -> u16 {
    (node_id ^ (node_id >> 16)) as u16
}

/// Writes the probe into `out`; returns its length, or 0 when `out` is too small.
pub fn build(spec: &ProbeSpec, out: &mut [u8]) -> usize {
    let Some(out) = out.get_mut(..LEN) else {
        return 0;
    };
    ipv4::Repr {
        src: spec.src,
        dst: spec.dst,
        header_len: ipv4::MIN_HEADER_LEN as u16,
        total_len: LEN as u16,
        ident: 0,
        tos: 0,
        ttl: TTL,
        protocol: ipv4::PROTO_ICMP,
        dont_frag: true,
        frag_offset: 0,
    }
    .emit(out);
    let m = &mut out[ipv4::MIN_HEADER_LEN..];
    m[0] = match spec.kind {
        CheckType::Reply => ICMP_ECHO_REPLY,
        CheckType::Request => ICMP_ECHO_REQUEST,
    };
    m[1] = 0;
    m[2..4].copy_from_slice(&[0, 0]);
    m[4..6].copy_from_slice(&ident(spec.node_id).to_be_bytes());
    m[6..8].copy_from_slice(&(spec.seq as u16).to_be_bytes());
    let p = &mut m[icmp::HEADER_LEN..];
    p[0..4].copy_from_slice(&MAGIC);
    p[4..8].copy_from_slice(&[VERSION, 0, 0, 0]);
    p[8..12].copy_from_slice(&spec.node_id.to_be_bytes());
    p[12..16].copy_from_slice(&spec.seq.to_be_bytes());
    let c = checksum::checksum(m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    LEN
}

/// Whether `inner_ipv4` (an IPv4 packet from its header on, already validated by the
/// pipeline) answers a probe: an unfragmented ICMP echo reply whose payload starts with our
/// magic and version, whose identifier matches the node id it carries, and whose ICMP
/// checksum verifies. Anything else, however similar, is `NotProbe` and forwarded as usual.
pub fn recognise(inner_ipv4: &[u8], node_id: u32) -> Recognised {
    let Some(answer) = parse(inner_ipv4) else {
        return Recognised::NotProbe;
    };
    if answer.0 == node_id {
        Recognised::Ours { seq: answer.1 }
    } else {
        Recognised::Foreign { node_id: answer.0 }
    }
}

/// (node id, seq) of an answer.
fn parse(ip: &[u8]) -> Option<(u32, u32)> {
    let h = ip.first_chunk::<{ ipv4::MIN_HEADER_LEN }>()?;
    let hlen = (h[0] & 0x0f) as usize * 4;
    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
    let more_or_offset = u16::from_be_bytes([h[6], h[7]]) & 0x3fff;
    if h[0] >> 4 != 4 || h[9] != ipv4::PROTO_ICMP || more_or_offset != 0 {
        return None;
    }
    let m = ip.get(hlen..total)?;
    let p = m.get(icmp::HEADER_LEN..icmp::HEADER_LEN + PAYLOAD_LEN)?;
    if m[0] != ICMP_ECHO_REPLY || m[1] != 0 || p[0..4] != MAGIC || p[4] != VERSION {
        return None;
    }
    let node = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
    let seq = u32::from_be_bytes([p[12], p[13], p[14], p[15]]);
    let id_ok = u16::from_be_bytes([m[4], m[5]]) == ident(node);
    (id_ok && checksum::verify(m)).then_some((node, seq))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use etherparse::{IcmpEchoHeader, Icmpv4Type, PacketBuilder};

    const NODE: u32 = 0x1234_5678;
    const US: [u8; 4] = [10, 100, 0, 0];
    const THEM: [u8; 4] = [10, 100, 0, 1];

    fn payload(node: u32, seq: u32) -> Vec<u8> {
        let mut p = b"AGhp\x01\x00\x00\x00".to_vec();
        p.extend_from_slice(&node.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p
    }

    /// The same probe as etherparse builds it.
    pub(crate) fn expected(
        kind: CheckType,
        src: [u8; 4],
        dst: [u8; 4],
        node: u32,
        seq: u32,
    ) -> Vec<u8> {
        let echo = IcmpEchoHeader {
            id: ident(node),
            seq: seq as u16,
        };
        let b = PacketBuilder::ipv4(src, dst, 64);
        let b = match kind {
            CheckType::Reply => b.icmpv4(Icmpv4Type::EchoReply(echo)),
            CheckType::Request => b.icmpv4(Icmpv4Type::EchoRequest(echo)),
        };
        let mut v = Vec::new();
        b.write(&mut v, &payload(node, seq)).unwrap();
        v
    }

    fn spec(kind: CheckType, seq: u32) -> ProbeSpec {
        ProbeSpec {
            kind,
            src: u32::from_be_bytes(THEM),
            dst: u32::from_be_bytes(US),
            seq,
            node_id: NODE,
        }
    }

    #[test]
    fn both_types_match_etherparse_byte_for_byte() {
        for kind in [CheckType::Reply, CheckType::Request] {
            let mut out = [0u8; crate::health::INJECT_MAX];
            let n = build(&spec(kind, 0xdead_beef), &mut out);
            assert_eq!(n, LEN);
            assert_eq!(
                &out[..n],
                &expected(kind, THEM, US, NODE, 0xdead_beef)[..],
                "{kind:?}"
            );
        }
    }

    #[test]
    fn too_small_a_buffer_gets_nothing() {
        let mut out = [0u8; LEN - 1];
        assert_eq!(build(&spec(CheckType::Reply, 1), &mut out), 0);
        assert_eq!(out, [0u8; LEN - 1]);
    }

    #[test]
    fn a_reply_probe_is_its_own_answer() {
        let mut out = [0u8; LEN];
        build(&spec(CheckType::Reply, 77), &mut out);
        assert_eq!(recognise(&out, NODE), Recognised::Ours { seq: 77 });
        assert_eq!(
            recognise(&out, NODE + 1),
            Recognised::Foreign { node_id: NODE }
        );
    }

    #[test]
    fn a_request_is_not_an_answer_but_its_echo_is() {
        let mut out = [0u8; LEN];
        build(&spec(CheckType::Request, 5), &mut out);
        assert_eq!(recognise(&out, NODE), Recognised::NotProbe);
        // The customer's answer: addresses swapped, type 0, same id, seq and payload.
        let answer = expected(CheckType::Reply, THEM, US, NODE, 5);
        assert_eq!(recognise(&answer, NODE), Recognised::Ours { seq: 5 });
    }

    #[test]
    fn lookalikes_are_not_probes() {
        let good = expected(CheckType::Reply, THEM, US, NODE, 9);
        assert_eq!(recognise(&good, NODE), Recognised::Ours { seq: 9 });
        let mutate = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut v = good.clone();
            f(&mut v);
            recognise(&v, NODE)
        };
        // Truncated anywhere, and the IPv4 length shorter than the payload.
        for n in 0..good.len() {
            assert_eq!(recognise(&good[..n], NODE), Recognised::NotProbe, "{n}");
        }
        assert_eq!(mutate(&|v| v[3] -= 1), Recognised::NotProbe);
        // Another magic, another version, a wrong identifier, a broken ICMP checksum.
        assert_eq!(mutate(&|v| v[28] = b'X'), Recognised::NotProbe);
        assert_eq!(mutate(&|v| v[32] = 2), Recognised::NotProbe);
        assert_eq!(mutate(&|v| v[24] ^= 1), Recognised::NotProbe);
        assert_eq!(mutate(&|v| v[43] ^= 1), Recognised::NotProbe);
        // Not ICMP, not an echo reply, a fragment.
        assert_eq!(mutate(&|v| v[9] = 17), Recognised::NotProbe);
        assert_eq!(mutate(&|v| v[21] = 1), Recognised::NotProbe);
        assert_eq!(mutate(&|v| v[6] |= 0x20), Recognised::NotProbe);
        // A plain ping reply with no payload.
        let mut ping = Vec::new();
        PacketBuilder::ipv4(THEM, US, 64)
            .icmpv4(Icmpv4Type::EchoReply(IcmpEchoHeader { id: 1, seq: 1 }))
            .write(&mut ping, &[0; 16])
            .unwrap();
        assert_eq!(recognise(&ping, NODE), Recognised::NotProbe);
    }

    #[test]
    fn options_before_icmp_are_skipped() {
        let good = expected(CheckType::Reply, THEM, US, NODE, 3);
        let mut v = good[..20].to_vec();
        v[0] = 0x46;
        v[3] += 4;
        v.extend_from_slice(&[1, 1, 1, 0]);
        v.extend_from_slice(&good[20..]);
        assert_eq!(recognise(&v, NODE), Recognised::Ours { seq: 3 });
    }
}
