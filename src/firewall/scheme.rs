//! The fields rules may name, and their types.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    /// An IPv4 address.
    Ip,
    /// An unsigned number (ports, lengths, TTL, ICMP type/code, TCP flags).
    Int,
    /// The IP protocol: a number or a name ("tcp", "udp", ...).
    Proto,
    /// True or false on its own (`tcp`, `tcp.flags.syn`).
    Bool,
    /// A string (tunnel name, direction).
    Str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    IpSrc,
    IpDst,
    IpProto,
    IpLen,
    IpHdrLen,
    IpTtl,
    Icmp,
    IcmpType,
    IcmpCode,
    Tcp,
    TcpFlags,
    TcpFlag(u8),
    TcpSrcPort,
    TcpDstPort,
    Udp,
    UdpSrcPort,
    UdpDstPort,
    /// anygate's own: the tunnel the packet arrived on or leaves by.
    Tunnel,
    /// anygate's own: "ingress" (from a tunnel) or "egress" (toward one).
    Direction,
}

/// TCP flag bits by name, as in `tcp.flags.syn`.
const TCP_FLAGS: [(&str, u8); 8] = [
    ("fin", 0x01),
    ("syn", 0x02),
    ("reset", 0x04),
    ("push", 0x08),
    ("ack", 0x10),
    ("urg", 0x20),
    ("ecn", 0x40),
    ("cwr", 0x80),
];

/// Vendor fields anygate does not implement: refused by name, never ignored.
const UNSUPPORTED: [&str; 6] = [
    "ip.geoip",
    "ip.src.asnum",
    "ip.dst.asnum",
    "ip.geoip.asnum",
    "bit_slice",
    "sip",
];

impl Field {
    pub fn parse(name: &str) -> Result<Field, String> {
        Ok(match name {
            "ip.src" => Field::IpSrc,
            "ip.dst" => Field::IpDst,
            "ip.proto" => Field::IpProto,
            "ip.len" => Field::IpLen,
            "ip.hdr_len" => Field::IpHdrLen,
            "ip.ttl" => Field::IpTtl,
            "icmp" => Field::Icmp,
            "icmp.type" => Field::IcmpType,
            "icmp.code" => Field::IcmpCode,
            "tcp" => Field::Tcp,
            "tcp.flags" => Field::TcpFlags,
            "tcp.srcport" => Field::TcpSrcPort,
            "tcp.dstport" => Field::TcpDstPort,
            "udp" => Field::Udp,
            "udp.srcport" => Field::UdpSrcPort,
            "udp.dstport" => Field::UdpDstPort,
            "anygate.tunnel" => Field::Tunnel,
            "anygate.direction" => Field::Direction,
            _ => {
                if let Some(flag) = name.strip_prefix("tcp.flags.") {
                    if let Some((_, bit)) = TCP_FLAGS.iter().find(|(n, _)| *n == flag) {
                        return Ok(Field::TcpFlag(*bit));
                    }
                }
                if UNSUPPORTED
                    .iter()
                    .any(|u| name == *u || name.starts_with(&format!("{u}.")))
                    || name.contains("geoip")
                {
                    return Err(format!("field `{name}` is not supported by anygate"));
                }
                return Err(format!("unknown field `{name}`"));
            }
        })
    }

    /// The largest value the field can have: the width of its header field. Larger numbers
    /// in a rule are refused, as a mistake that would otherwise make the test always or never
    /// true.
    pub fn max(self) -> u64 {
        match self {
            Field::IpSrc | Field::IpDst => u32::MAX as u64,
            Field::IpLen
            | Field::TcpSrcPort
            | Field::TcpDstPort
            | Field::UdpSrcPort
            | Field::UdpDstPort => u16::MAX as u64,
            Field::Icmp | Field::Tcp | Field::Udp | Field::TcpFlag(_) => 1,
            Field::Tunnel | Field::Direction => u64::MAX,
            Field::IpProto
            | Field::IpHdrLen
            | Field::IpTtl
            | Field::IcmpType
            | Field::IcmpCode
            | Field::TcpFlags => u8::MAX as u64,
        }
    }

    pub fn kind(self) -> Type {
        match self {
            Field::IpSrc | Field::IpDst => Type::Ip,
            Field::IpProto => Type::Proto,
            Field::Icmp | Field::Tcp | Field::Udp | Field::TcpFlag(_) => Type::Bool,
            Field::Tunnel | Field::Direction => Type::Str,
            _ => Type::Int,
        }
    }
}

/// The values `anygate.direction` can have.
pub const DIRECTIONS: [&str; 2] = ["ingress", "egress"];

/// IP protocol numbers by the names rules use.
pub fn proto_number(name: &str) -> Option<u8> {
    Some(match name.to_ascii_lowercase().as_str() {
        "hopopt" => 0,
        "icmp" => 1,
        "igmp" => 2,
        "ipip" | "ipv4" | "ipencap" => 4,
        "tcp" => 6,
        "udp" => 17,
        "ipv6" => 41,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmpv6" | "ipv6-icmp" => 58,
        "ospf" | "ospfigp" => 89,
        "pim" => 103,
        "vrrp" => 112,
        "l2tp" => 115,
        "sctp" => 132,
        _ => return None,
    })
}
