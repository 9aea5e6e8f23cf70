//! A packet's flow, as ARR sees it: the key its return packet will carry, and what the
//! packet may do to the table. Non-first fragments carry no ports: they neither learn nor
//! find a flow (the route table decides for them, as for any packet ARR does not know).
use super::table::{Key, CLOSING};
use crate::wire::{ethernet, icmp, ipv4, udp};

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;
const ECHO_REPLY: u8 = 0;
const ECHO_REQUEST: u8 = 8;

/// What a packet does to its flow's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// May create the entry (TCP SYN without ACK, UDP, ICMP echo request), or refresh it.
    Create,
    /// Refreshes an existing entry, never creates one (TCP other than a bare SYN).
    Refresh,
}

/// A packet's flow key and what it does, with the entry flags it sets (CLOSING on FIN/RST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub key: Key,
    pub action: Action,
    pub flags: u64,
}

/// The flow of a packet leaving a tunnel toward a port, keyed as its return packet will
/// show it (addresses and ports swapped); None when ARR does not learn from it.
#[inline]
pub fn outbound(frame: &[u8], ip: &ipv4::Repr) -> Option<Flow> {
    let (l4, proto) = l4(frame, ip)?;
    let (ports, action, flags) = match proto {
        ipv4::PROTO_UDP => {
            let p = udp::Ports::new_checked(l4)?;
            (swap(p.word()), Action::Create, 0)
        }
        ipv4::PROTO_TCP => {
            let (word, f) = tcp(l4)?;
            let action = if f & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN {
                Action::Create
            } else {
                Action::Refresh
            };
            (swap(word), action, closing(f))
        }
        ipv4::PROTO_ICMP => {
            let (ty, id) = echo(l4)?;
            if ty != ECHO_REQUEST {
                return None;
            }
            (id, Action::Create, 0)
        }
        _ => return None,
    };
    Some(Flow {
        key: Key {
            src: ip.dst,
            dst: ip.src,
            proto,
            ports,
        },
        action,
        flags,
    })
}

/// The key of a packet arriving from a port, as it would be learned, and the flags it sets
/// (CLOSING on a TCP FIN or RST); None when it cannot belong to a learned flow.
#[inline]
pub fn inbound(frame: &[u8], ip: &ipv4::Repr) -> Option<(Key, u64)> {
    let (l4, proto) = l4(frame, ip)?;
    let (ports, flags) = match proto {
        ipv4::PROTO_UDP => (udp::Ports::new_checked(l4)?.word(), 0),
        ipv4::PROTO_TCP => {
            let (word, f) = tcp(l4)?;
            (word, closing(f))
        }
        ipv4::PROTO_ICMP => match echo(l4)? {
            (ECHO_REPLY, id) => (id, 0),
            _ => return None,
        },
        _ => return None,
    };
    let key = Key {
        src: ip.src,
        dst: ip.dst,
        proto,
        ports,
    };
    Some((key, flags))
}

/// The transport header of a first fragment (or whole packet) of TCP, UDP or ICMP.
#[inline(always)]
fn l4<'a>(frame: &'a [u8], ip: &ipv4::Repr) -> Option<(&'a [u8], u8)> {
    if ip.frag_offset != 0 {
        return None;
    }
    let start = ethernet::HEADER_LEN + usize::from(ip.header_len);
    let end = ethernet::HEADER_LEN + usize::from(ip.total_len);
    Some((frame.get(start..end)?, ip.protocol))
}

fn tcp(l4: &[u8]) -> Option<(u32, u8)> {
    let s = crate::wire::tcp::Segment::new_checked(l4)?;
    Some((s.ports().word(), s.flags()))
}

/// (type, identifier) of an ICMP echo request or reply.
fn echo(l4: &[u8]) -> Option<(u8, u32)> {
    let m = icmp::Message::new_checked(l4)?;
    let id = l4.get(4..6)?;
    Some((m.msg_type(), u32::from(u16::from_be_bytes([id[0], id[1]]))))
}

fn closing(tcp_flags: u8) -> u64 {
    if tcp_flags & (TCP_FIN | TCP_RST) != 0 {
        CLOSING
    } else {
        0
    }
}

/// Source port << 16 | destination port, the other way round.
fn swap(ports: u32) -> u32 {
    ports.rotate_left(16)
}
