//! IPv4 headers (RFC 791): validation, TTL decrement with an incremental checksum.
use super::checksum;
use std::net::Ipv4Addr;

pub const MIN_HEADER_LEN: usize = 20;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_IPIP: u8 = 4;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_GRE: u8 = 47;

pub(super) mod field {
    use std::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LEN: Range<usize> = 2..4;
    pub const ID: Range<usize> = 4..6;
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTO: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Why a buffer is not a usable IPv4 header. Each maps to its own drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Truncated,
    BadVersion,
    BadIhl,
    BadLength,
    BadChecksum,
}

/// A view of an IPv4 header at the start of a buffer.
pub struct Packet<T> {
    buf: T,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The checks behind `Packet::new_checked`, returning the header length: version, IHL, total
/// length against the buffer, and the header checksum. Always inlined, so `Repr::parse` in
/// the datapath's loops keeps it in line however many callers `new_checked` has.
#[inline(always)]
fn check(b: &[u8]) -> Result<usize, Error> {
    let Some(h) = b.first_chunk::<MIN_HEADER_LEN>() else {
        return Err(Error::Truncated);
    };
    // Nearly every header is version 4 without options: one test for both, then the
    // 20-byte header's own checks as a fixed-size slice (the sum unrolls, and the header
    // length is a constant there rather than a value tested again; callgrind, issue 14).
    if h[field::VER_IHL] != 0x45 {
        return check_options(b);
    }
    check20(h, b.len())?;
    Ok(MIN_HEADER_LEN)
}

/// `check` after its version/IHL test passed (0x45): total length against the `len` bytes
/// the header `h` starts, and the checksum.
#[inline(always)]
fn check20(h: &[u8; MIN_HEADER_LEN], len: usize) -> Result<(), Error> {
    let total = be16(&h[field::LEN]) as usize;
    // `total < 20 || total > len` as one compare where `len` is known to be 20 or more (the
    // callers took `h` from those bytes): below 20, `total - 20` wraps above any `len - 20`.
    if len < MIN_HEADER_LEN || total.wrapping_sub(MIN_HEADER_LEN) > len - MIN_HEADER_LEN {
        return Err(Error::BadLength);
    }
    // A total length of 20 or more: not every byte is 0.
    if !checksum::verify20_nonzero(h) {
        return Err(Error::BadChecksum);
    }
    Ok(())
}

/// `check` for any first byte but 0x45: another version, a bad IHL, or options.
#[inline(never)]
fn check_options(b: &[u8]) -> Result<usize, Error> {
    let v = b.first().copied().ok_or(Error::Truncated)?;
    if v >> 4 != 4 {
        return Err(Error::BadVersion);
    }
    if v & 0x0f < 5 {
        return Err(Error::BadIhl);
    }
    let hlen = ((v & 0x0f) as usize) * 4;
    let total = b.get(field::LEN).map_or(0, be16) as usize;
    if total < hlen || total > b.len() {
        return Err(Error::BadLength);
    }
    if !checksum::verify(&b[..hlen]) {
        return Err(Error::BadChecksum);
    }
    Ok(hlen)
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks version, IHL, total length against the buffer and the header checksum. After
    /// this, every accessor is in bounds: `header_len() <= total_len() <= buffer length`.
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self, Error> {
        check(buf.as_ref())?;
        Ok(Packet { buf })
    }
    #[inline(always)]
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    #[inline]
    pub fn header_len(&self) -> usize {
        ((self.b()[field::VER_IHL] & 0x0f) as usize) * 4
    }
    #[inline]
    pub fn has_options(&self) -> bool {
        self.header_len() > MIN_HEADER_LEN
    }
    #[inline]
    pub fn tos(&self) -> u8 {
        self.b()[field::TOS]
    }
    #[inline]
    pub fn total_len(&self) -> usize {
        be16(&self.b()[field::LEN]) as usize
    }
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(&self.b()[field::ID])
    }
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.b()[field::FLAGS_FRAG.start] & 0x40 != 0
    }
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.b()[field::FLAGS_FRAG.start] & 0x20 != 0
    }
    /// Fragment offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        be16(&self.b()[field::FLAGS_FRAG]) & 0x1fff
    }
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.b()[field::PROTO]
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(&self.b()[field::CHECKSUM])
    }
    /// Source address as a host-order integer, the form the LPM and hashes use.
    #[inline]
    pub fn src(&self) -> u32 {
        be32(&self.b()[field::SRC])
    }
    #[inline]
    pub fn dst(&self) -> u32 {
        be32(&self.b()[field::DST])
    }
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src())
    }
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst())
    }
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Lowers the TTL by one and patches the checksum (RFC 1624) without re-summing the
    /// header. The caller has checked that the TTL is above 1.
    #[inline(always)]
    pub fn decrement_ttl(&mut self) {
        decrement_ttl_in(self.buf.as_mut());
    }
    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        let hlen = self.header_len();
        let b = self.buf.as_mut();
        b[field::CHECKSUM].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&b[..hlen]);
        b[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
}

/// `Packet::decrement_ttl` on raw header bytes, for a header validated earlier: lowers the
/// TTL by one and patches the checksum incrementally. Does nothing to a short buffer.
#[inline(always)]
pub fn decrement_ttl_in(hdr: &mut [u8]) {
    let Some(b) = hdr.first_chunk_mut::<MIN_HEADER_LEN>() else {
        return;
    };
    // TTL, protocol and checksum as one big-endian word. RFC 1624 eq. 3 with the TTL (the
    // high byte of its 16-bit word) one lower is `HC' = ~fold(~HC + 0xfeff)`, which works
    // out to HC + 0x0100 for HC below 0xfeff and HC - 0xfeff from there: so the word drops
    // by 0x00ff_ff00 (TTL - 1, checksum + 0x100), or by 0x0100_feff, in one subtraction
    // instead of a sum and two folds (issue 14).
    let w = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
    if w >> 24 == 0 {
        return ttl_wraps(b);
    }
    b[8..12].copy_from_slice(&ttl_word_less_one(w).to_be_bytes());
}

/// `decrement_ttl_in` for a header whose TTL the caller found above 0 (the hop checks': above
/// 1): no test for the wrap. Given a TTL of 0 it writes a wrong TTL and checksum, never
/// anything beyond the header.
#[inline(always)]
pub fn decrement_live_ttl_in(hdr: &mut [u8]) {
    let Some(b) = hdr.first_chunk_mut::<MIN_HEADER_LEN>() else {
        return;
    };
    let w = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
    b[8..12].copy_from_slice(&ttl_word_less_one(w).to_be_bytes());
}

/// The word TTL|protocol|checksum `w` (TTL above 0) with the TTL one lower, by the
/// subtraction `decrement_ttl_in` explains.
#[inline(always)]
fn ttl_word_less_one(w: u32) -> u32 {
    let high = u32::from(w & 0xffff >= 0xfeff);
    w.wrapping_sub(0x00ff_ff00 + high * 0xffff)
}

/// `decrement_ttl_in` for a TTL of 0, which wraps to 255: the word rises by 0xff00
/// (`~m + m' = 0x1_feff`). Never on the forwarding path (the hop checks drop TTL <= 1).
#[cold]
fn ttl_wraps(b: &mut [u8; MIN_HEADER_LEN]) {
    b[field::TTL] = 255;
    let hc = be16(&b[field::CHECKSUM]);
    let c = !checksum::fold((!hc) as u32 + 0x1_feff);
    b[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
}

/// An IPv4 header's fields: what `parse` reads from a validated header and what `emit`
/// writes. The one representation of a header outside its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repr {
    /// Addresses as host-order integers, the form the LPM and hashes use.
    pub src: u32,
    pub dst: u32,
    /// Lengths in bytes, as the header's 16-bit field holds them (keeps the per-packet context
    /// small).
    pub header_len: u16,
    pub total_len: u16,
    /// What `emit` writes. `parse` reads it; the in-place parses of the datapath
    /// (`parse_into`, `parse20_into`) leave it as it was: no stage reads a received header's
    /// (encapsulation makes its own), and its load, swap and store were 3 instructions a
    /// header, two headers a decapsulated packet (callgrind, issue 14).
    pub ident: u16,
    pub tos: u8,
    pub ttl: u8,
    pub protocol: u8,
    pub dont_frag: bool,
    /// Fragment offset in 8-byte units: not zero for all but the first fragment.
    pub frag_offset: u16,
}

impl Repr {
    /// Validates the header at the start of `buf` (as `Packet::new_checked`) and reads it.
    #[inline(always)]
    pub fn parse(buf: &[u8]) -> Result<Repr, Error> {
        let mut r = Repr::default();
        Repr::parse_into(buf, &mut r)?;
        r.ident = buf.get(field::ID).map_or(0, be16);
        Ok(r)
    }

    /// `parse` into `out`: the same answer and, on success, the same fields but `ident`
    /// (left as it was). Each field is
    /// stored as it is read, before the checks, so no value waits in a register across them
    /// (returned whole, the fields were spilled and reloaded: ~15 instructions a packet,
    /// callgrind, issue 14). After an error `out` holds whatever the bytes said: a caller
    /// that drops the packet never reads it.
    #[inline(always)]
    pub fn parse_into(buf: &[u8], out: &mut Repr) -> Result<(), Error> {
        let Some(h) = buf.first_chunk::<MIN_HEADER_LEN>() else {
            return Err(Error::Truncated);
        };
        Repr::fields_into(h, out);
        out.header_len = check(buf)? as u16;
        Ok(())
    }

    /// `parse_into` for a header whose first byte the caller found 0x45 (version 4, no
    /// options): `h` is its 20 bytes, `len` the length of the buffer it starts. The version
    /// test and the bounds of `h` are not made again (callgrind, issue 14).
    #[inline(always)]
    pub fn parse20_into(h: &[u8; MIN_HEADER_LEN], len: usize, out: &mut Repr) -> Result<(), Error> {
        Repr::fields_into(h, out);
        check20(h, len)?;
        out.header_len = MIN_HEADER_LEN as u16;
        Ok(())
    }

    /// `parse20_into` as a test: true where it answers Ok, with the same fields stored; after
    /// false, whatever the bytes said. For a caller that takes a failure another way (which
    /// finds its reason), so no error value is made and carried (tunnel ingress's first
    /// look: ~8 instructions a packet, callgrind, issue 14).
    #[inline(always)]
    pub fn parse20_ok_into(h: &[u8; MIN_HEADER_LEN], len: usize, out: &mut Repr) -> bool {
        Repr::fields_into(h, out);
        out.header_len = MIN_HEADER_LEN as u16;
        check20(h, len).is_ok()
    }

    /// Every field but the header length and `ident`, unchecked.
    #[inline(always)]
    fn fields_into(h: &[u8; MIN_HEADER_LEN], out: &mut Repr) {
        // The TTL and protocol read before any store: adjacent in the header and in `Repr`,
        // they may go as one 2-byte move (a store between their loads kept them apart).
        let (ttl, protocol) = (h[field::TTL], h[field::PROTO]);
        out.ttl = ttl;
        out.protocol = protocol;
        out.src = be32(&h[field::SRC]);
        out.dst = be32(&h[field::DST]);
        out.total_len = be16(&h[field::LEN]);
        out.tos = h[field::TOS];
        // Flags and fragment offset read as one word for both fields.
        let frag = be16(&h[field::FLAGS_FRAG]);
        out.dont_frag = frag & 0x4000 != 0;
        out.frag_offset = frag & 0x1fff;
    }

    /// Writes a 20-byte header (no options) with its checksum at the start of `buf`; nothing
    /// into a shorter one.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let Some(b) = buf.get_mut(..MIN_HEADER_LEN) else {
            return;
        };
        b[field::VER_IHL] = 0x45;
        b[field::TOS] = self.tos;
        b[field::LEN].copy_from_slice(&self.total_len.to_be_bytes());
        b[field::ID].copy_from_slice(&self.ident.to_be_bytes());
        let frag = self.frag_offset & 0x1fff | if self.dont_frag { 0x4000 } else { 0 };
        b[field::FLAGS_FRAG].copy_from_slice(&frag.to_be_bytes());
        b[field::TTL] = self.ttl;
        b[field::PROTO] = self.protocol;
        b[field::CHECKSUM].copy_from_slice(&[0, 0]);
        b[field::SRC].copy_from_slice(&self.src.to_be_bytes());
        b[field::DST].copy_from_slice(&self.dst.to_be_bytes());
        let c = checksum::checksum(b);
        b[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
}

/// First octets of the martian ranges below: 0/8, 127/8, 224/4 and 240/4 (which holds the
/// limited broadcast). A table: one load per address, not three compares.
const MARTIAN_FIRST: [bool; 256] = {
    let mut t = [false; 256];
    t[0] = true;
    t[127] = true;
    let mut i = 224;
    while i < 256 {
        t[i] = true;
        i += 1;
    }
    t
};

/// Martian sources (RFC 1812 5.3.7): this-network, loopback, multicast, reserved, broadcast.
#[inline(always)]
pub fn is_martian_src(a: u32) -> bool {
    is_martian_first((a >> 24) as u8)
}

/// The first octets of a header's source and destination, for `is_martian_first`.
#[inline(always)]
pub fn first_octets(h: &[u8; MIN_HEADER_LEN]) -> (u8, u8) {
    (h[field::SRC.start], h[field::DST.start])
}

/// Whether the header's source or destination is martian (`is_martian_src`,
/// `is_martian_dst`), by their first octets: both looked up, one branch.
#[inline(always)]
pub fn either_martian(h: &[u8; MIN_HEADER_LEN]) -> bool {
    let (src, dst) = first_octets(h);
    is_martian_first(src) | is_martian_first(dst)
}

/// `is_martian_src` (and `is_martian_dst`) by the address's first octet, as it lies in the
/// header.
#[inline(always)]
pub fn is_martian_first(octet: u8) -> bool {
    MARTIAN_FIRST[usize::from(octet)]
}

/// Destinations a router never forwards as unicast: this-network, loopback, multicast,
/// reserved and limited broadcast.
#[inline(always)]
pub fn is_martian_dst(a: u32) -> bool {
    is_martian_src(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<u8> {
        // 20-byte header + 8 bytes payload, ttl 64, UDP, 192.0.2.1 -> 198.51.100.7
        let mut h = vec![
            0x45, 0, 0, 28, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 7,
        ];
        let c = checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        h
    }

    /// `check20`'s one compare for the total length answers as `total < 20 || total > len`
    /// (checksum right, so the length decides), for every total length near the edges and
    /// buffer lengths from below 20 up.
    #[test]
    fn total_length_edges() {
        for len in 0..48usize {
            for total in (0..=48u16).chain([0xfffe, 0xffff]) {
                let mut h = header();
                h[2..4].copy_from_slice(&total.to_be_bytes());
                h[10..12].fill(0);
                let c = checksum::checksum(&h[..20]);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                let first = h.first_chunk::<MIN_HEADER_LEN>().unwrap();
                let want = if usize::from(total) < MIN_HEADER_LEN || usize::from(total) > len {
                    Err(Error::BadLength)
                } else {
                    Ok(())
                };
                assert_eq!(check20(first, len), want, "len {len} total {total}");
            }
        }
    }

    #[test]
    fn golden_fields() {
        let h = header();
        let p = Packet::new_checked(&h[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), PROTO_UDP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 51, 100, 7));
        assert!(p.dont_frag());
        assert_eq!(p.ident(), 0x1234);
        assert_eq!(p.payload(), &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn each_malformation_has_its_error() {
        let h = header();
        assert_eq!(Packet::new_checked(&h[..19]).err(), Some(Error::Truncated));
        let mut v = h.clone();
        v[0] = 0x65;
        assert_eq!(Packet::new_checked(&v[..]).err(), Some(Error::BadVersion));
        let mut v = h.clone();
        v[0] = 0x44;
        assert_eq!(Packet::new_checked(&v[..]).err(), Some(Error::BadIhl));
        let mut v = h.clone();
        v[3] = 29; // one byte more than the buffer
        assert_eq!(Packet::new_checked(&v[..]).err(), Some(Error::BadLength));
        let mut v = h.clone();
        v[0] = 0x46; // IHL 24 > total length 28 is fine, but checksum is now wrong
        assert_eq!(Packet::new_checked(&v[..]).err(), Some(Error::BadChecksum));
        let mut v = h.clone();
        v[0] = 0x48; // IHL 32 > total length 28
        assert_eq!(Packet::new_checked(&v[..]).err(), Some(Error::BadLength));
        let mut v = h;
        v[15] ^= 0xff;
        assert_eq!(Packet::new_checked(&v[..]).err(), Some(Error::BadChecksum));
    }

    #[test]
    fn ttl_decrement_keeps_checksum_valid() {
        let mut h = header();
        for expect in (1..64).rev() {
            let mut p = Packet::new_checked(&mut h[..]).unwrap();
            p.decrement_ttl();
            assert_eq!(p.ttl(), expect);
        }
    }

    #[test]
    fn repr_parses_and_emits_the_same_header() {
        let h = header();
        let r = Repr::parse(&h).unwrap();
        assert_eq!((r.src, r.dst), (0xc000_0201, 0xc633_6407));
        assert_eq!((r.header_len, r.total_len, r.ttl), (20, 28, 64));
        assert_eq!(
            (r.ident, r.protocol, r.dont_frag, r.frag_offset),
            (0x1234, PROTO_UDP, true, 0)
        );
        let mut out = [0u8; 20];
        r.emit(&mut out);
        assert_eq!(out[..], h[..20]);
        assert_eq!(Repr::parse(&h[..19]), Err(Error::Truncated));
    }

    proptest::proptest! {
        /// The TTL shortcut gives what the general RFC 1624 update gives, for every TTL.
        #[test]
        fn ttl_decrement_is_the_general_update(hdr in proptest::array::uniform20(proptest::num::u8::ANY)) {
            let mut h = hdr;
            decrement_ttl_in(&mut h);
            let old = be16(&hdr[8..10]);
            let new = u16::from_be_bytes([hdr[8].wrapping_sub(1), hdr[9]]);
            let want = checksum::update16(be16(&hdr[10..12]), old, new);
            proptest::prop_assert_eq!(h[8], hdr[8].wrapping_sub(1));
            proptest::prop_assert_eq!(be16(&h[10..12]), want);
            // Without the wrap test, the same for any TTL above 0.
            let mut live = hdr;
            live[8] = hdr[8].max(1);
            let mut general = live;
            decrement_live_ttl_in(&mut live);
            decrement_ttl_in(&mut general);
            proptest::prop_assert_eq!(live, general);
        }
    }

    /// The one-subtraction form against RFC 1624 eq. 3 for every checksum value, at the
    /// TTLs on either side of its two branches.
    #[test]
    fn ttl_decrement_is_the_general_update_for_every_checksum() {
        for ttl in [0u8, 1, 2, 64, 255] {
            for hc in 0..=0xffffu16 {
                let mut h = [0u8; 20];
                h[8] = ttl;
                h[9] = PROTO_UDP;
                h[10..12].copy_from_slice(&hc.to_be_bytes());
                let mut live = h;
                decrement_ttl_in(&mut h);
                if ttl > 0 {
                    decrement_live_ttl_in(&mut live);
                    assert_eq!(live, h, "ttl {ttl} hc {hc:#x}");
                }
                let old = u16::from_be_bytes([ttl, PROTO_UDP]);
                let new = u16::from_be_bytes([ttl.wrapping_sub(1), PROTO_UDP]);
                assert_eq!(h[8], ttl.wrapping_sub(1));
                assert_eq!(h[9], PROTO_UDP, "ttl {ttl} hc {hc:#x}");
                assert_eq!(
                    be16(&h[10..12]),
                    checksum::update16(hc, old, new),
                    "ttl {ttl} hc {hc:#x}"
                );
            }
        }
    }

    /// The in-place parses leave `ident` as it was (no stage reads it), `parse` reads it;
    /// every other field and the answer are the same, and `parse20_ok_into` answers as
    /// `parse20_into` with the same fields.
    #[test]
    fn in_place_parses_leave_ident() {
        let mut cases = vec![header()];
        for (at, v) in [(3, 19), (3, 29), (10, 0), (15, 0xff), (8, 0)] {
            let mut h = header();
            h[at] = v;
            cases.push(h);
        }
        for h in cases {
            let whole = Repr::parse(&h);
            let mut into = Repr {
                ident: 7,
                ..Repr::default()
            };
            let r = Repr::parse_into(&h, &mut into);
            assert_eq!(r, whole.map(|_| ()));
            let (mut a, mut b) = (into, into);
            let first = h.first_chunk::<MIN_HEADER_LEN>().unwrap();
            let ok = Repr::parse20_ok_into(first, h.len(), &mut a);
            assert_eq!(Repr::parse20_into(first, h.len(), &mut b), r);
            assert_eq!(ok, r.is_ok());
            // After a failure the header length is the one field that may differ (no one
            // reads a refused header's fields).
            let a = if ok {
                a
            } else {
                Repr {
                    header_len: b.header_len,
                    ..a
                }
            };
            assert_eq!(a, b);
            if let Ok(whole) = whole {
                assert_eq!(whole.ident, 0x1234);
                assert_eq!(into, Repr { ident: 7, ..whole });
            }
        }
    }

    #[test]
    fn martians() {
        assert!(is_martian_src(0x7f000001));
        assert!(is_martian_src(0xe0000001));
        assert!(is_martian_src(0xffffffff));
        assert!(is_martian_src(0x00000000));
        assert!(!is_martian_src(0xc0000201));
        for first in 0..=255u32 {
            let want = first == 0 || first == 127 || first >= 224;
            assert_eq!(is_martian_src(first << 24 | 0x010203), want, "{first}");
            assert_eq!(is_martian_dst(first << 24), want, "{first}");
            let mut h = [1u8; MIN_HEADER_LEN];
            h[field::SRC.start] = first as u8;
            assert_eq!(either_martian(&h), want, "{first}");
            h[field::SRC.start] = 1;
            h[field::DST.start] = first as u8;
            assert_eq!(either_martian(&h), want, "{first}");
        }
    }

    proptest::proptest! {
        /// No byte string makes the parser or any accessor panic.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.payload().len(), p.src(), p.dst(), p.frag_offset(), p.has_options());
            }
        }
    }
}
