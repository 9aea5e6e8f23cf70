//! What happens to each packet, and every named reason a packet can be dropped for.

/// The pipeline's decision for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit on this port index.
    Forward(u16),
    Drop(DropReason),
    /// Taken by anygate itself and freed, not a drop: a health probe's answer (counted as
    /// `health_probe`).
    Consumed,
}

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal: $doc:literal,)*) => {
        /// Why a packet was not forwarded. Each reason has its own per-worker counter, and its
        /// name is stable: stats, `trace --json` and scripts use it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason { $(#[doc = $doc] $variant,)* }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();
            pub fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }
            pub fn description(self) -> &'static str {
                match self { $(DropReason::$variant => $doc,)* }
            }
        }
    };
}

drop_reasons! {
    MultiSegment => "multi_segment": "frame spans several mbuf segments (larger than one mbuf)",
    EthTruncated => "eth_truncated": "frame shorter than an Ethernet header",
    L2NotForUs => "l2_not_for_us": "destination MAC is neither the port's nor broadcast (ARP only)",
    UnsupportedEthertype => "unsupported_ethertype": "ethertype other than IPv4 or ARP (VLAN, IPv6, ...)",
    ArpMalformed => "arp_malformed": "ARP that is not Ethernet/IPv4 or is truncated",
    ArpConsumed => "arp_consumed": "ARP handled locally: learned from, or not for us",
    Ipv4Truncated => "ipv4_truncated": "shorter than a 20-byte IPv4 header",
    Ipv4BadVersion => "ipv4_bad_version": "IP version field is not 4",
    Ipv4BadIhl => "ipv4_bad_ihl": "IHL below 5 words",
    Ipv4BadLength => "ipv4_bad_length": "total length beyond the frame or below the header length",
    Ipv4BadChecksum => "ipv4_bad_checksum": "IPv4 header checksum does not verify",
    Ipv4MartianSrc => "ipv4_martian_src": "source is 0/8, 127/8, multicast, reserved or broadcast",
    Ipv4MartianDst => "ipv4_martian_dst": "destination is 0/8, 127/8, multicast, reserved or broadcast",
    LocalDestination => "local_destination": "addressed to one of our own addresses (port, tunnel interface, anycast) or to a port subnet's network or broadcast address",
    NoRoute => "no_route": "no route covers the destination",
    TtlExceeded => "ttl_exceeded": "TTL would reach zero (ICMP time-exceeded sent, rate-limited)",
    MtuExceeded => "mtu_exceeded": "larger than the egress port's MTU (ICMP frag-needed sent when DF is set)",
    NeighborUnresolved => "neighbor_unresolved": "next hop's MAC not yet resolved by ARP",
    TxQueueFull => "tx_queue_full": "the NIC refused the packet at transmit",
    AnycastNotTunnel => "anycast_not_tunnel": "to an anycast address, but neither GRE nor IP-in-IP",
    TunnelUnknown => "tunnel_unknown": "GRE/IP-in-IP from an endpoint pair no tunnel joins",
    TunnelWrongProtocol => "tunnel_wrong_protocol": "from a tunnel's endpoints with the other encapsulation",
    GreMalformed => "gre_malformed": "GRE header truncated",
    GreBadVersion => "gre_bad_version": "GRE version other than 0",
    GreUnsupportedFlags => "gre_unsupported_flags": "GRE routing, strict source route, recursion or reserved bits set",
    GreBadChecksum => "gre_bad_checksum": "GRE checksum present and wrong",
    GreInnerIpv6 => "gre_inner_ipv6": "GRE carrying IPv6 (not supported yet)",
    GreUnsupportedProtocol => "gre_unsupported_protocol": "GRE carrying neither IPv4 nor IPv6",
    GreKeepalive => "gre_keepalive": "GRE keepalive (inner packet addressed back to the customer endpoint)",
    TunnelSpoofedSource => "tunnel_spoofed_source": "inner source outside the tunnel's authorized prefixes",
    TunnelMtuExceeded => "tunnel_mtu_exceeded": "larger than the tunnel's MTU (ICMP frag-needed sent when DF is set)",
    NoHeadroom => "no_headroom": "no room in front of the packet for the outer headers",
    FirewallBlock => "firewall_block": "a firewall rule (or the default action) blocked it",
    ProbeForeign => "probe_foreign": "answer to another anycast server's health probe (each probes on its own)",
    PuntRateLimited => "punt_rate_limited": "for the kernel (punt), over the worker's punt.rate",
    PuntTxFull => "punt_tx_full": "for the kernel (punt), but the exception port's queue was full",
}

impl From<crate::wire::ipv4::Error> for DropReason {
    fn from(e: crate::wire::ipv4::Error) -> Self {
        use crate::wire::ipv4::Error;
        match e {
            Error::Truncated => DropReason::Ipv4Truncated,
            Error::BadVersion => DropReason::Ipv4BadVersion,
            Error::BadIhl => DropReason::Ipv4BadIhl,
            Error::BadLength => DropReason::Ipv4BadLength,
            Error::BadChecksum => DropReason::Ipv4BadChecksum,
        }
    }
}

impl From<crate::wire::gre::Error> for DropReason {
    fn from(e: crate::wire::gre::Error) -> Self {
        use crate::wire::gre::Error;
        match e {
            Error::Truncated => DropReason::GreMalformed,
            Error::BadVersion => DropReason::GreBadVersion,
            Error::UnsupportedFlags => DropReason::GreUnsupportedFlags,
            Error::BadChecksum => DropReason::GreBadChecksum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case() {
        let mut names: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
        assert!(names.iter().all(|n| n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        assert_eq!(
            DropReason::ALL[DropReason::NoRoute as usize],
            DropReason::NoRoute
        );
    }
}
