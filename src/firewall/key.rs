//! What one phase-0 slot of the classifier reads from a packet: a field, or the source or
//! destination port of whichever transport the packet has. TCP's and UDP's ports share a slot
//! (TCP's values tagged `1 << 16`, UDP's `2 << 16`): a packet has at most one of the two (the
//! datapath fills `Fields` by the IP protocol), so rules on `tcp.dstport` and on `udp.dstport`
//! need one lookup and no cross-product step between them.
use super::eval::Fields;
use super::scheme::Field;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Field(Field),
    SrcPort,
    DstPort,
}

const TCP: u64 = 1 << 16;
const UDP: u64 = 2 << 16;
const PORTS: u64 = 0xffff;

impl Key {
    pub fn of(f: Field) -> Key {
        match f {
            Field::TcpSrcPort | Field::UdpSrcPort => Key::SrcPort,
            Field::TcpDstPort | Field::UdpDstPort => Key::DstPort,
            f => Key::Field(f),
        }
    }

    /// Bits a value of the key takes (string ids: 32, unknown strings clamp to the top).
    pub fn width(self) -> u32 {
        match self {
            Key::SrcPort | Key::DstPort => 18,
            Key::Field(Field::IpSrc | Field::IpDst | Field::Tunnel | Field::Direction) => 32,
            Key::Field(f) => 64 - f.max().leading_zeros(),
        }
    }

    /// A term's condition on this key, from its conditions on the fields: `cond(f)` is the
    /// values of `f` the term accepts and whether it accepts packets without `f`. For a port
    /// key: a TCP packet passes when its port passes the TCP condition and the term accepts
    /// packets without UDP, and the other way round.
    pub fn cond(self, cond: impl Fn(Field) -> (Vec<(u64, u64)>, bool)) -> (Vec<(u64, u64)>, bool) {
        let (tcp, udp) = match self {
            Key::Field(f) => return cond(f),
            Key::SrcPort => (Field::TcpSrcPort, Field::UdpSrcPort),
            Key::DstPort => (Field::TcpDstPort, Field::UdpDstPort),
        };
        let ((t, t_absent), (u, u_absent)) = (cond(tcp), cond(udp));
        let tagged = |r: Vec<(u64, u64)>, tag: u64| {
            r.into_iter()
                .filter(|(a, _)| *a <= PORTS)
                .map(move |(a, b)| (tag | a, tag | b.min(PORTS)))
        };
        let mut accept: Vec<(u64, u64)> = Vec::new();
        if u_absent {
            accept.extend(tagged(t, TCP));
        }
        if t_absent {
            accept.extend(tagged(u, UDP));
        }
        (accept, t_absent && u_absent)
    }
}

/// The packet's value for a key, None when the packet does not have it (`lookup`: a string's
/// id). Written apart from the evaluator's `num`/`has`/`text` on purpose: the evaluator is
/// the property test's oracle, so a wrong field mapping here must disagree with it.
#[inline(always)]
pub fn value(k: Key, p: &Fields<'_>, lookup: impl Fn(&str) -> u64) -> Option<u64> {
    let f = match k {
        Key::SrcPort => {
            return match (p.tcp, p.udp) {
                (Some(t), _) => Some(TCP | t.0 as u64),
                (None, Some(u)) => Some(UDP | u.0 as u64),
                _ => None,
            }
        }
        Key::DstPort => {
            return match (p.tcp, p.udp) {
                (Some(t), _) => Some(TCP | t.1 as u64),
                (None, Some(u)) => Some(UDP | u.1 as u64),
                _ => None,
            }
        }
        Key::Field(f) => f,
    };
    Some(match f {
        Field::IpSrc => p.src as u64,
        Field::IpDst => p.dst as u64,
        Field::IpProto => p.proto as u64,
        Field::IpLen => p.len as u64,
        Field::IpHdrLen => p.hdr_len as u64,
        Field::IpTtl => p.ttl as u64,
        Field::Icmp => p.icmp.map(|_| 1)?,
        Field::IcmpType => p.icmp?.0 as u64,
        Field::IcmpCode => p.icmp?.1 as u64,
        Field::Tcp => p.tcp.map(|_| 1)?,
        Field::TcpFlags => p.tcp?.2 as u64,
        Field::TcpFlag(bit) => (p.tcp?.2 & bit != 0) as u64,
        Field::TcpSrcPort => p.tcp?.0 as u64,
        Field::TcpDstPort => p.tcp?.1 as u64,
        Field::Udp => p.udp.map(|_| 1)?,
        Field::UdpSrcPort => p.udp?.0 as u64,
        Field::UdpDstPort => p.udp?.1 as u64,
        Field::Tunnel => lookup(p.tunnel?),
        Field::Direction => lookup(p.direction?),
    })
}
