//! What one phase-0 slot of the classifier reads from a packet: a field, or the source or
//! destination port of whichever transport the packet has. TCP's and UDP's ports share a slot
//! (TCP's values tagged `1 << 16`, UDP's `2 << 16`): a packet has at most one of the two (the
//! datapath reads them by the IP protocol), so rules on `tcp.dstport` and on `udp.dstport`
//! need one lookup and no cross-product step between them. A key's value is read from a
//! `Packet`, the packet's fields packed, through the key's `Reader`.
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

/// Words of a `Packet` (a power of two: a reader's index is masked, not bounds-checked).
const WORDS: usize = 8;
/// `Packet` words: presence bits, addresses, the IP header's small fields, the tagged ports,
/// ICMP type/code and TCP flags, the string ids.
const HAS: usize = 0;
const ADDRS: usize = 1;
const IP: usize = 2;
const L4PORTS: usize = 3;
const L4: usize = 4;
const STRS: usize = 5;
/// Presence bits in `HAS`: fields every packet has, then one per optional part.
const ALWAYS: u64 = 1;
const HAS_ICMP: u64 = 2;
const HAS_TCP: u64 = 4;
const HAS_UDP: u64 = 8;
const HAS_PORTS: u64 = 16;
const HAS_TUNNEL: u64 = 32;
const HAS_DIRECTION: u64 = 64;

/// A packet's rule fields packed for the classifier: every key's value is a shift and mask of
/// one word (`Reader`), present when its bit is in the `HAS` word. Reading any key is then the
/// same few instructions, where a `match` over the field per key and `Fields`' options cost
/// an indirect jump and ~40 instructions per packet (callgrind, issue 14). The datapath fills
/// one straight from the frame; `of` builds one from `Fields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    w: [u64; WORDS],
}

impl Packet {
    /// A packet with the IPv4 header's fields, no transport and no tunnel or direction.
    #[inline(always)]
    pub fn ip(src: u32, dst: u32, proto: u8, len: u16, hdr_len: u8, ttl: u8) -> Packet {
        let mut w = [0; WORDS];
        w[HAS] = ALWAYS;
        w[ADDRS] = src as u64 | (dst as u64) << 32;
        w[IP] = proto as u64 | (hdr_len as u64) << 8 | (len as u64) << 16 | (ttl as u64) << 32;
        Packet { w }
    }

    /// TCP with both ports as one word (source high, as on the wire) and its flags.
    #[inline(always)]
    pub fn set_tcp(&mut self, ports: u32, flags: u8) {
        self.set_ports(ports, TCP);
        self.w[L4] |= (flags as u64) << 16;
        self.w[HAS] |= HAS_TCP;
    }

    /// UDP with both ports as one word (source high). A packet has TCP or UDP, not both:
    /// the ports are TCP's when it has both.
    #[inline(always)]
    pub fn set_udp(&mut self, ports: u32) {
        if self.w[HAS] & HAS_TCP == 0 {
            self.set_ports(ports, UDP);
        }
        self.w[HAS] |= HAS_UDP;
    }

    #[inline(always)]
    fn set_ports(&mut self, ports: u32, tag: u64) {
        let (src, dst) = ((ports >> 16) as u64, (ports & 0xffff) as u64);
        self.w[L4PORTS] = (tag | src) | (tag | dst) << 32;
        self.w[HAS] |= HAS_PORTS;
    }

    #[inline(always)]
    pub fn set_icmp(&mut self, kind: u8, code: u8) {
        self.w[L4] |= kind as u64 | (code as u64) << 8;
        self.w[HAS] |= HAS_ICMP;
    }

    /// The ids (`Classifier::string_id`) of the tunnel's name and the direction.
    #[inline(always)]
    pub fn set_strings(&mut self, tunnel: Option<u32>, direction: Option<u32>) {
        if let Some(t) = tunnel {
            self.w[STRS] |= t as u64;
            self.w[HAS] |= HAS_TUNNEL;
        }
        if let Some(d) = direction {
            self.w[STRS] |= (d as u64) << 32;
            self.w[HAS] |= HAS_DIRECTION;
        }
    }

    /// The packet `Fields` describe (`id`: a string's id).
    pub fn of(p: &Fields<'_>, id: impl Fn(&str) -> u32) -> Packet {
        let mut k = Packet::ip(p.src, p.dst, p.proto, p.len, p.hdr_len, p.ttl);
        if let Some((s, d, flags)) = p.tcp {
            k.set_tcp((s as u32) << 16 | d as u32, flags);
        }
        if let Some((s, d)) = p.udp {
            k.set_udp((s as u32) << 16 | d as u32);
        }
        if let Some((t, c)) = p.icmp {
            k.set_icmp(t, c);
        }
        k.set_strings(p.tunnel.map(&id), p.direction.map(&id));
        k
    }
}

/// Where a key's value lies in a `Packet`: `(w[word] >> shift) & mask`, at most `cap` (1 for
/// a flag: nonzero bits read as 1), present when `w[HAS]` has a bit of `need`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reader {
    word: usize,
    shift: u32,
    mask: u64,
    cap: u64,
    need: u64,
}

impl Reader {
    pub fn of(k: Key) -> Reader {
        let r = |word, shift, mask, need| Reader {
            word,
            shift,
            mask,
            cap: u64::MAX,
            need,
        };
        let (u8s, u16s, u32s, tagged) = (0xff, 0xffff, 0xffff_ffff, TCP | UDP | PORTS);
        let f = match k {
            Key::SrcPort => return r(L4PORTS, 0, tagged, HAS_PORTS),
            Key::DstPort => return r(L4PORTS, 32, tagged, HAS_PORTS),
            Key::Field(f) => f,
        };
        match f {
            Field::IpSrc => r(ADDRS, 0, u32s, ALWAYS),
            Field::IpDst => r(ADDRS, 32, u32s, ALWAYS),
            Field::IpProto => r(IP, 0, u8s, ALWAYS),
            Field::IpHdrLen => r(IP, 8, u8s, ALWAYS),
            Field::IpLen => r(IP, 16, u16s, ALWAYS),
            Field::IpTtl => r(IP, 32, u8s, ALWAYS),
            Field::Icmp => r(HAS, HAS_ICMP.trailing_zeros(), 1, HAS_ICMP),
            Field::IcmpType => r(L4, 0, u8s, HAS_ICMP),
            Field::IcmpCode => r(L4, 8, u8s, HAS_ICMP),
            Field::Tcp => r(HAS, HAS_TCP.trailing_zeros(), 1, HAS_TCP),
            Field::TcpFlags => r(L4, 16, u8s, HAS_TCP),
            Field::TcpFlag(bit) => Reader {
                cap: 1,
                ..r(L4, 16, bit as u64, HAS_TCP)
            },
            // Never keys of their own (`Key::of` makes them the shared port keys): the port
            // without its tag.
            Field::TcpSrcPort => r(L4PORTS, 0, PORTS, HAS_TCP),
            Field::TcpDstPort => r(L4PORTS, 32, PORTS, HAS_TCP),
            Field::Udp => r(HAS, HAS_UDP.trailing_zeros(), 1, HAS_UDP),
            Field::UdpSrcPort => r(L4PORTS, 0, PORTS, HAS_UDP),
            Field::UdpDstPort => r(L4PORTS, 32, PORTS, HAS_UDP),
            Field::Tunnel => r(STRS, 0, u32s, HAS_TUNNEL),
            Field::Direction => r(STRS, 32, u32s, HAS_DIRECTION),
        }
    }

    /// This reader with its values clamped to `max` too (a trie's largest value).
    pub fn capped(self, max: u64) -> Reader {
        Reader {
            cap: self.cap.min(max),
            ..self
        }
    }

    /// The packet's value for the key, whether or not the packet has it (`has`).
    #[inline(always)]
    pub fn value(&self, p: &Packet) -> u64 {
        ((p.w[self.word % WORDS] >> self.shift) & self.mask).min(self.cap)
    }

    /// Whether the packet has the key.
    #[inline(always)]
    pub fn has(&self, p: &Packet) -> bool {
        p.w[HAS] & self.need != 0
    }
}
