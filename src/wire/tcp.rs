//! TCP MSS clamping (the option of RFC 9293 section 3.7.1) with an RFC 1624 checksum update.
use super::checksum;

pub const MIN_HEADER_LEN: usize = 20;
const FLAG_SYN: u8 = 0x02;
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;

/// Bytes from the start of the header through the flags.
pub const FLAGS_END: usize = 14;

/// A view of a TCP header through its flags (the ports are `udp::Ports`, where UDP has them).
pub struct Segment<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Segment<T> {
    /// Needs the bytes through the flags, not a whole header: the firewall matches on what
    /// is there.
    #[inline]
    pub fn new_checked(buf: T) -> Option<Self> {
        (buf.as_ref().len() >= FLAGS_END).then_some(Segment { buf })
    }
    #[inline]
    pub fn ports(&self) -> super::udp::Ports<&[u8]> {
        super::udp::Ports::new_unchecked(self.buf.as_ref())
    }
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[FLAGS_END - 1]
    }
}

/// What clamping found in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mss {
    /// Not a SYN or SYN-ACK, or too short to hold a TCP header: left alone.
    NotSyn,
    /// A SYN without an MSS option; none is ever added.
    Absent,
    /// The option was at or below the limit.
    Kept(u16),
    /// The option was lowered from `.0` to `.1`.
    Clamped(u16, u16),
    /// The options are malformed (bad length, truncated); the segment is left alone.
    Malformed,
}

impl Mss {
    /// The MSS the segment now carries, if it carries one.
    pub fn value(self) -> Option<u16> {
        match self {
            Mss::Kept(v) | Mss::Clamped(_, v) => Some(v),
            _ => None,
        }
    }
}

/// Finds the MSS option in a SYN's options; returns its value's offset in the segment.
fn find_mss(seg: &[u8]) -> Result<Option<usize>, ()> {
    let doff = ((seg[12] >> 4) as usize) * 4;
    if doff < MIN_HEADER_LEN || doff > seg.len() {
        return Err(());
    }
    let mut i = MIN_HEADER_LEN;
    while i < doff {
        match seg[i] {
            OPT_END => return Ok(None),
            OPT_NOP => i += 1,
            kind => {
                let len = *seg.get(i + 1).filter(|_| i + 1 < doff).ok_or(())? as usize;
                if len < 2 || i + len > doff {
                    return Err(());
                }
                if kind == OPT_MSS {
                    return if len == 4 { Ok(Some(i + 2)) } else { Err(()) };
                }
                i += len;
            }
        }
    }
    Ok(None)
}

/// Whether TCP segment `seg` holds a whole header with the SYN flag (a SYN or SYN-ACK):
/// the segments `clamp_mss` looks at.
#[inline(always)]
pub fn is_syn(seg: &[u8]) -> bool {
    seg.len() >= MIN_HEADER_LEN && seg[13] & FLAG_SYN != 0
}

/// Lowers the MSS option of a SYN or SYN-ACK to `max` when it is larger, patching the TCP
/// checksum incrementally. `seg` is the TCP segment (header and payload). Never adds an
/// option, never raises one, never reads past the header.
pub fn clamp_mss(seg: &mut [u8], max: u16) -> Mss {
    if !is_syn(seg) {
        return Mss::NotSyn;
    }
    if let Some(r) = clamp_first(seg, max) {
        return r;
    }
    clamp_general(seg, max)
}

/// `clamp_mss` of a SYN whose first option is a well-formed MSS (what the common stacks
/// send), at offset 20: the value at an even offset, so one checksum word; the options are
/// not walked and the words not gathered (the general way was ~140 instructions a clamped
/// SYN, callgrind, issue 14). None for any other segment, untouched.
#[inline(always)]
fn clamp_first(seg: &mut [u8], max: u16) -> Option<Mss> {
    let doff = usize::from(*seg.get(12)? >> 4) * 4;
    let len = seg.len();
    let h = seg.first_chunk_mut::<{ MIN_HEADER_LEN + 4 }>()?;
    if doff < MIN_HEADER_LEN + 4 || doff > len || h[20] != OPT_MSS || h[21] != 4 {
        return None;
    }
    let old = u16::from_be_bytes([h[22], h[23]]);
    if old <= max {
        return Some(Mss::Kept(old));
    }
    h[22..24].copy_from_slice(&max.to_be_bytes());
    let hc = checksum::update16(u16::from_be_bytes([h[16], h[17]]), old, max);
    h[16..18].copy_from_slice(&hc.to_be_bytes());
    Some(Mss::Clamped(old, max))
}

/// `clamp_mss` of a SYN by the general way: the options walked to the MSS, wherever it is.
fn clamp_general(seg: &mut [u8], max: u16) -> Mss {
    let at = match find_mss(seg) {
        Ok(Some(at)) => at,
        Ok(None) => return Mss::Absent,
        Err(()) => return Mss::Malformed,
    };
    let old = u16::from_be_bytes([seg[at], seg[at + 1]]);
    if old <= max {
        return Mss::Kept(old);
    }
    // The checksum sums 16-bit words aligned to the segment start. An MSS value at an odd
    // offset straddles two words: patch both.
    let word = |s: &[u8], w: usize| u16::from_be_bytes([s[w], s[w + 1]]);
    let words: &[usize] = if at % 2 == 0 {
        &[at]
    } else {
        &[at - 1, at + 1]
    };
    let before: [u16; 2] = [
        word(seg, words[0]),
        words.get(1).map_or(0, |w| word(seg, *w)),
    ];
    seg[at..at + 2].copy_from_slice(&max.to_be_bytes());
    let mut hc = word(seg, 16);
    for (k, w) in words.iter().enumerate() {
        // The word after the option may be the one past the header; it exists because a
        // 4-byte option at an odd offset ends at least one byte before the header's end.
        hc = checksum::update16(hc, before[k], word(seg, *w));
    }
    seg[16..18].copy_from_slice(&hc.to_be_bytes());
    Mss::Clamped(old, max)
}

/// The TCP checksum over the IPv4 pseudo-header and the segment.
pub fn checksum_v4(src: u32, dst: u32, seg: &[u8]) -> u16 {
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&src.to_be_bytes());
    pseudo[4..8].copy_from_slice(&dst.to_be_bytes());
    pseudo[9] = super::ipv4::PROTO_TCP;
    pseudo[10..12].copy_from_slice(&(seg.len() as u16).to_be_bytes());
    !checksum::fold(checksum::ones_sum(seg, checksum::ones_sum(&pseudo, 0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: u32 = 0xc0a8_0001;
    const DST: u32 = 0x0a00_0002;

    /// A SYN with the given options and a valid checksum.
    fn syn(options: &[u8], flags: u8) -> Vec<u8> {
        let mut opts = options.to_vec();
        while !opts.len().is_multiple_of(4) {
            opts.push(OPT_END);
        }
        let mut s = vec![0u8; 20];
        s[..4].copy_from_slice(&[0x9c, 0x40, 0x01, 0xbb]);
        s[12] = (((20 + opts.len()) / 4) as u8) << 4;
        s[13] = flags;
        s[14..16].copy_from_slice(&[0xfa, 0xf0]);
        s.extend_from_slice(&opts);
        s.extend_from_slice(b"data");
        let c = checksum_v4(SRC, DST, &s);
        s[16..18].copy_from_slice(&c.to_be_bytes());
        s
    }

    /// Summed with its own checksum in place, a valid segment gives zero.
    fn valid(s: &[u8]) -> bool {
        checksum_v4(SRC, DST, s) == 0
    }

    #[test]
    fn golden_clamp_syn() {
        let mut s = syn(&[2, 4, 0x05, 0xb4], 0x02); // MSS 1460
        assert_eq!(clamp_mss(&mut s, 1436), Mss::Clamped(1460, 1436));
        assert_eq!(&s[20..24], &[2, 4, 0x05, 0x9c]);
        assert!(valid(&s));
    }

    #[test]
    fn syn_ack_and_odd_offset() {
        // NOP, then MSS at offset 21: the value straddles two checksum words.
        let mut s = syn(&[1, 2, 4, 0x23, 0x28, 1, 1, 1], 0x12);
        assert_eq!(clamp_mss(&mut s, 1360), Mss::Clamped(9000, 1360));
        assert_eq!(&s[23..25], &1360u16.to_be_bytes());
        assert!(valid(&s));
    }

    #[test]
    fn never_raises_never_adds() {
        let mut s = syn(&[2, 4, 0x02, 0x18], 0x02); // 536
        let before = s.clone();
        assert_eq!(clamp_mss(&mut s, 1436), Mss::Kept(536));
        assert_eq!(s, before);
        let mut s = syn(&[1, 1, 1, 0], 0x02);
        let before = s.clone();
        assert_eq!(clamp_mss(&mut s, 1436), Mss::Absent);
        assert_eq!(s, before);
        let mut s = syn(&[2, 4, 0x05, 0xb4], 0x10); // ACK only
        assert_eq!(clamp_mss(&mut s, 1000), Mss::NotSyn);
    }

    #[test]
    fn malformed_options_left_alone() {
        // MSS cut short by the end of the header, zero and oversized lengths, MSS of length 3.
        for opts in [
            &[1u8, 1, 2, 4][..],
            &[8, 0, 1, 1],
            &[8, 40, 1, 1],
            &[2, 3, 5, 0],
            &[3, 3, 1, 2, 9],
        ] {
            let mut s = syn(opts, 0x02);
            let before = s.clone();
            let r = clamp_mss(&mut s, 1000);
            assert!(matches!(r, Mss::Malformed | Mss::Absent), "{opts:?}: {r:?}");
            assert_eq!(s, before);
        }
        // Data offset beyond the segment.
        let mut s = syn(&[], 0x02);
        s[12] = 0xf0;
        s.truncate(30);
        assert_eq!(clamp_mss(&mut s, 1000), Mss::Malformed);
    }

    fn option() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(vec![1u8]),
            (any::<u16>()).prop_map(|m| vec![2u8, 4, (m >> 8) as u8, m as u8]),
            (3u8..30, 0usize..6).prop_map(|(k, n)| {
                let mut v = vec![k, (n + 2) as u8];
                v.extend(std::iter::repeat_n(0xa5, n));
                v
            }),
        ]
    }

    proptest! {
        /// For random option layouts, clamping keeps the checksum valid from scratch, never
        /// raises the MSS, and touches nothing but the MSS value and the checksum.
        #[test]
        fn clamp_keeps_checksum_valid(opts in proptest::collection::vec(option(), 0..6), max in 88u16..9000, ack in any::<bool>()) {
            let flat: Vec<u8> = opts.concat();
            prop_assume!(flat.len() <= 40);
            let mut s = syn(&flat, if ack { 0x12 } else { 0x02 });
            let before = s.clone();
            let r = clamp_mss(&mut s, max);
            prop_assert!(valid(&s), "{:?}", r);
            match r {
                Mss::Clamped(old, new) => {
                    prop_assert!(old > max && new == max);
                    // Only the checksum and the two MSS value bytes changed.
                    let diff: Vec<usize> = (0..s.len()).filter(|i| s[*i] != before[*i] && !(16..18).contains(i)).collect();
                    let fits = |w: usize| w + 2 <= s.len() && s[w..w + 2] == max.to_be_bytes() && before[w..w + 2] == old.to_be_bytes();
                    prop_assert!(diff.len() <= 2);
                    if let Some(&k) = diff.first() {
                        prop_assert!(fits(k) || (k > 0 && fits(k - 1)), "diff {:?}", diff);
                    }
                }
                other => {
                    prop_assert_eq!(&s, &before);
                    if let Some(v) = other.value() { prop_assert!(v <= max); }
                }
            }
        }

        /// Wherever the MSS-first way takes a SYN, it answers and writes as the general way;
        /// where it declines, the segment is untouched. Segments are random bytes, most of
        /// them shaped as the common SYN (data offset, an MSS first, its length) and then
        /// perhaps cut short or given another data offset.
        #[test]
        fn mss_first_is_the_general_way(
            mut s in proptest::collection::vec(any::<u8>(), 20..72),
            shaped in any::<bool>(),
            doff in 0u8..16,
            cut in 0usize..72,
            max in any::<u16>(),
        ) {
            s[13] |= FLAG_SYN;
            if shaped && s.len() >= 24 {
                s[12] = doff << 4;
                s[20] = OPT_MSS;
                s[21] = 4;
            }
            s.truncate(cut.max(20));
            let mut fast = s.clone();
            let mut general = s.clone();
            let g = clamp_general(&mut general, max);
            match clamp_first(&mut fast, max) {
                Some(f) => {
                    prop_assert_eq!(f, g);
                    prop_assert_eq!(&fast, &general);
                }
                None => prop_assert_eq!(&fast, &s),
            }
            prop_assert_eq!(clamp_mss(&mut s, max), g);
            prop_assert_eq!(&s, &general);
        }
    }

    #[test]
    fn mss_first_taken_and_declined() {
        let mut s = syn(&[2, 4, 0x05, 0xb4], 0x02);
        assert_eq!(clamp_first(&mut s, 1436), Some(Mss::Clamped(1460, 1436)));
        assert!(valid(&s));
        let mut s = syn(&[2, 4, 0x05, 0xb4], 0x02);
        assert_eq!(clamp_first(&mut s, 1460), Some(Mss::Kept(1460)));
        // A NOP first, an MSS of another length, no options: the general way's.
        for opts in [&[1u8, 2, 4, 5, 0xb4][..], &[2, 3, 5, 0], &[]] {
            let mut s = syn(opts, 0x02);
            assert_eq!(clamp_first(&mut s, 1000), None, "{opts:?}");
        }
    }

    /// Review 12 reproduction (fails today): a SYN with two MSS options keeps the second
    /// above the clamp; Linux takes the last MSS option it parses, so the clamp is void.
    #[test]
    #[ignore = "review 12 reproduction: only the first MSS option is clamped"]
    fn review12_every_mss_option_is_clamped() {
        let mut s = syn(&[2, 4, 0x05, 0xb4, 2, 4, 0x05, 0xdc], 0x02); // MSS 1460, MSS 1500
        clamp_mss(&mut s, 1436);
        assert!(valid(&s));
        assert_eq!(&s[24..28], &[2, 4, 0x05, 0x9c], "the second MSS option");
    }
}
