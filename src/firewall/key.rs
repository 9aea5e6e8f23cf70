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
/// `Packet` words: the transport's presence, addresses, the IP header's small fields, the
/// tagged ports, ICMP type/code and TCP flags, the string ids.
const HAS: usize = 0;
const ADDRS: usize = 1;
const IP: usize = 2;
const L4PORTS: usize = 3;
const L4: usize = 4;
const STRS: usize = 5;
/// Where the transports' presence lies in `HAS`: two bits each, both set when present (the
/// value 3: a present flag's 1 above its presence bit, like every optional field).
const AT_ICMP: u32 = 0;
const AT_TCP: u32 = 2;
const AT_UDP: u32 = 4;
/// Where ICMP type and code and TCP flags lie in `L4`, each a byte with its presence bit
/// (`BYTE_PRESENT`) above it.
const AT_TYPE: u32 = 0;
const AT_CODE: u32 = 16;
const AT_FLAGS: u32 = 32;
const BYTE_PRESENT: u64 = 0x100;
/// String ids take 31 bits and their presence bit above them (unknown names the largest).
const STR_PRESENT: u64 = 1 << 31;
const STR_MAX: u64 = STR_PRESENT - 1;

/// A packet's rule fields packed for the classifier: every key's value is a shift and mask of
/// one word (`Reader`). An optional field's value carries a presence bit above it (the ports
/// their tag), so a packet without the field reads a value below every present one, which
/// the key's trie maps to the absent class: no presence test per key (callgrind, issue 14).
/// Reading any key is then the same few instructions, where a `match` over the field per key
/// and `Fields`' options cost an indirect jump and ~40 instructions per packet. The datapath
/// fills one straight from the frame; `of` builds one from `Fields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    w: [u64; WORDS],
}

impl Packet {
    /// A packet with the IPv4 header's fields, no transport and no tunnel or direction.
    #[inline(always)]
    pub fn ip(src: u32, dst: u32, proto: u8, len: u16, hdr_len: u8, ttl: u8) -> Packet {
        let mut p = Packet::addrs(src, dst);
        p.set_ip(proto, len, hdr_len, ttl);
        p
    }

    /// A packet with only the addresses: for a classifier no key of which reads the IP
    /// header's other fields (`Reader::reads_ip`).
    #[inline(always)]
    pub fn addrs(src: u32, dst: u32) -> Packet {
        let mut w = [0; WORDS];
        w[ADDRS] = src as u64 | (dst as u64) << 32;
        Packet { w }
    }

    /// The IP header's protocol, total and header length, and TTL.
    #[inline(always)]
    pub fn set_ip(&mut self, proto: u8, len: u16, hdr_len: u8, ttl: u8) {
        self.w[IP] = proto as u64 | (hdr_len as u64) << 8 | (len as u64) << 16 | (ttl as u64) << 32;
    }

    /// This packet without the fields `set_ip` sets.
    #[cfg(test)]
    pub fn without_ip(mut self) -> Packet {
        self.w[IP] = 0;
        self
    }

    /// TCP with both ports as one word (source high, as on the wire) and its flags.
    #[inline(always)]
    pub fn set_tcp(&mut self, ports: u32, flags: u8) {
        self.set_ports(ports, TCP);
        self.w[L4] |= (BYTE_PRESENT | flags as u64) << AT_FLAGS;
        self.w[HAS] |= 3 << AT_TCP;
    }

    /// UDP with both ports as one word (source high). A packet has TCP or UDP, not both:
    /// the ports are TCP's when it has both.
    #[inline(always)]
    pub fn set_udp(&mut self, ports: u32) {
        if self.w[HAS] & 3 << AT_TCP == 0 {
            self.set_ports(ports, UDP);
        }
        self.w[HAS] |= 3 << AT_UDP;
    }

    #[inline(always)]
    fn set_ports(&mut self, ports: u32, tag: u64) {
        let (src, dst) = ((ports >> 16) as u64, (ports & 0xffff) as u64);
        self.w[L4PORTS] = (tag | src) | (tag | dst) << 32;
    }

    #[inline(always)]
    pub fn set_icmp(&mut self, kind: u8, code: u8) {
        self.w[L4] |=
            (BYTE_PRESENT | kind as u64) << AT_TYPE | (BYTE_PRESENT | code as u64) << AT_CODE;
        self.w[HAS] |= 3 << AT_ICMP;
    }

    /// The ids (`Classifier::string_id`) of the tunnel's name and the direction.
    #[inline(always)]
    pub fn set_strings(&mut self, tunnel: Option<u32>, direction: Option<u32>) {
        let id = |s: u32| STR_PRESENT | (s as u64).min(STR_MAX);
        if let Some(t) = tunnel {
            self.w[STRS] |= id(t);
        }
        if let Some(d) = direction {
            self.w[STRS] |= id(d) << 32;
        }
    }

    /// The packet `Fields` describe (`id`: a string's id).
    #[inline(always)]
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

/// How a condition's values (the field's own) become the values a reader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Map {
    /// The same (every packet has the field; or the ports, whose conditions are tagged).
    Same,
    /// `present + v`, for `v` up to `max` (larger ones are never read).
    Offset { max: u64 },
    /// A TCP flag: 0 is `present`, 1 is `present | bit`.
    Flag { bit: u64 },
}

/// Where a key's value lies in a `Packet`: `(w[word] >> shift) & mask`. Values below
/// `present` are a packet's without the key (the key's absent class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reader {
    word: usize,
    shift: u32,
    mask: u64,
    present: u64,
    map: Map,
}

impl Reader {
    pub fn of(k: Key) -> Reader {
        let same = |word, shift, mask| Reader {
            word,
            shift,
            mask,
            present: 0,
            map: Map::Same,
        };
        // An optional field: `max` its largest value, `present` the bit above it.
        let optional = |word, shift, present: u64, max| Reader {
            word,
            shift,
            mask: present | (present - 1),
            present,
            map: Map::Offset { max },
        };
        let (u8s, u16s, u32s) = (0xff, 0xffff, 0xffff_ffff);
        let f = match k {
            Key::SrcPort | Key::DstPort => {
                let shift = if k == Key::SrcPort { 0 } else { 32 };
                return Reader {
                    present: TCP,
                    ..same(L4PORTS, shift, TCP | UDP | PORTS)
                };
            }
            Key::Field(f) => f,
        };
        let byte = |at| optional(L4, at, BYTE_PRESENT, u8s);
        let flag = |at| optional(HAS, at, 2, 1);
        let string = |shift| optional(STRS, shift, STR_PRESENT, STR_MAX);
        match f {
            Field::IpSrc => same(ADDRS, 0, u32s),
            Field::IpDst => same(ADDRS, 32, u32s),
            Field::IpProto => same(IP, 0, u8s),
            Field::IpHdrLen => same(IP, 8, u8s),
            Field::IpLen => same(IP, 16, u16s),
            Field::IpTtl => same(IP, 32, u8s),
            Field::Icmp => flag(AT_ICMP),
            Field::IcmpType => byte(AT_TYPE),
            Field::IcmpCode => byte(AT_CODE),
            Field::Tcp => flag(AT_TCP),
            Field::TcpFlags => byte(AT_FLAGS),
            Field::TcpFlag(bit) => Reader {
                mask: BYTE_PRESENT | bit as u64,
                map: Map::Flag { bit: bit as u64 },
                ..byte(AT_FLAGS)
            },
            // Never keys of their own (`Key::of` makes them the shared port keys): the port
            // with its tag.
            Field::TcpSrcPort | Field::UdpSrcPort => Reader::of(Key::SrcPort),
            Field::TcpDstPort | Field::UdpDstPort => Reader::of(Key::DstPort),
            Field::Udp => flag(AT_UDP),
            Field::Tunnel => string(0),
            Field::Direction => string(32),
        }
    }

    /// Bits a read value takes (the width of the key's trie).
    pub fn width(&self) -> u32 {
        64 - self.mask.leading_zeros()
    }

    /// Whether the key is one of the fields `Packet::set_ip` sets.
    pub fn reads_ip(&self) -> bool {
        self.word == IP
    }

    /// The bits a read value may have.
    pub fn mask(&self) -> u64 {
        self.mask
    }

    /// Read values below this are a packet's without the key.
    pub fn present(&self) -> u64 {
        self.present
    }

    /// The read values of a condition's sorted disjoint ranges of field values, sorted and
    /// disjoint too.
    pub fn map(&self, r: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
        let p = self.present;
        match self.map {
            Map::Same => r,
            Map::Offset { max } => r
                .into_iter()
                .filter(|(a, _)| *a <= max)
                .map(|(a, b)| (p + a, p + b.min(max)))
                .collect(),
            Map::Flag { bit } => [(0, p), (1, p | bit)]
                .into_iter()
                .filter(|(v, _)| r.iter().any(|(a, b)| a <= v && v <= b))
                .map(|(_, x)| (x, x))
                .collect(),
        }
    }

    /// The packet's value for the key (below `present` when the packet lacks it).
    #[inline(always)]
    pub fn value(&self, p: &Packet) -> u64 {
        (p.w[self.word % WORDS] >> self.shift) & self.mask
    }

    /// The key's word shifted to the key, unmasked: a trie's root reads its low bits
    /// (`Trie::class_from_root`) through a reader `shifted` by its root shift.
    #[inline(always)]
    pub fn word(&self, p: &Packet) -> u64 {
        p.w[self.word % WORDS] >> self.shift
    }

    /// This reader's value shifted right by `by` bits, read with one shift and mask
    /// (a trie's root index: `Trie::root_shift`).
    pub fn shifted(&self, by: u32) -> Reader {
        Reader {
            shift: self.shift + by,
            mask: self.mask >> by,
            ..*self
        }
    }
}
