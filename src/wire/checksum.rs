//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// One's-complement sum of `data` as big-endian 16-bit words, added to `init`, folded to at
/// most 17 bits. Sums 32-bit words into 64 bits: 2^16 = 1 (mod 2^16 - 1), so folding
/// afterwards gives the same result as adding 16-bit words one by one, in half the steps.
#[inline]
pub fn ones_sum(data: &[u8], init: u32) -> u32 {
    let mut sum = init as u64;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        sum += u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as u64;
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    sum += u32::from_be_bytes(tail) as u64;
    // 64 -> 33 -> 32 -> 17 bits: fixed steps, no loop.
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    ((sum & 0xffff) + (sum >> 16)) as u32
}

/// Folds a running sum (as `ones_sum` returns, or any u32) into 16 bits.
#[inline(always)]
pub fn fold(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    ((s & 0xffff) + (s >> 16)) as u16
}

/// The one's-complement sum of `data` taken in the machine's byte order, not yet folded: the
/// sum is independent of byte order up to a swap of its two bytes (RFC 1071 2(B)), so the
/// words are added as they lie, with no swap per word. With a fixed-size `data` (a 20-byte
/// IPv4 header) it unrolls to five adds.
#[inline(always)]
fn wide_sum_ne(data: &[u8]) -> u64 {
    let mut sum = 0u64;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        sum += u32::from_ne_bytes([w[0], w[1], w[2], w[3]]) as u64;
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    sum + u32::from_ne_bytes(tail) as u64
}

/// `wide_sum_ne` folded to 16 bits; `u16::from_be` turns it into the big-endian sum.
#[inline(always)]
fn ones_sum_ne(data: &[u8]) -> u16 {
    let mut sum = wide_sum_ne(data);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    fold(((sum & 0xffff) + (sum >> 16)) as u32)
}

/// The checksum to store in a header whose checksum field is zero.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !u16::from_be(ones_sum_ne(data))
}

/// 0xffff's inverse modulo 2^64. For an odd d, x is a multiple of d exactly when
/// x * d^-1 (mod 2^64) <= (2^64 - 1) / d (Granlund and Montgomery; Hacker's Delight 10-17):
/// one multiply and one compare, where `%` compiled to a division by a constant (12
/// instructions, callgrind).
const INV_FFFF: u64 = 0xfffe_fffe_fffe_ffff;

/// True when a header including its checksum field sums to all ones (all ones in either
/// byte order). Folding keeps a sum's value modulo 0xffff (2^16 = 1) and yields 0 only for 0,
/// so the folded sum is 0xffff exactly when the wide sum is a non-zero multiple of 0xffff: a
/// divisibility test instead of four folds (issue 14).
#[inline(always)]
pub fn verify(data: &[u8]) -> bool {
    let s = wide_sum_ne(data);
    s != 0 && multiple_of_ffff(s)
}

/// `verify` of a 20-byte header (an IPv4 header without options), summed as two u64 words
/// and a u32 with end-around carry: 2^32 and 2^64 are 1 modulo 0xffff, so the sum keeps the
/// five-word sum's value modulo 0xffff, and it is 0 only when every byte is. Five loads and
/// adds where `verify`'s unrolled sum took 12 vector instructions (callgrind, issue 14).
#[inline(always)]
pub fn verify20(h: &[u8; 20]) -> bool {
    let s = sum20(h);
    s != 0 && multiple_of_ffff(s)
}

/// `verify20` for a header with a byte other than 0 (an IPv4 header whose total length was
/// found 20 or more): its sum is not 0, so the test for a zero sum is left out (one branch a
/// header, callgrind, issue 14). Given 20 zero bytes it answers true, where `verify20` does not.
#[inline(always)]
pub fn verify20_nonzero(h: &[u8; 20]) -> bool {
    multiple_of_ffff(sum20(h))
}

/// The end-around-carry sum of `verify20`.
#[inline(always)]
fn sum20(h: &[u8; 20]) -> u64 {
    let word = |i: usize| {
        u64::from_ne_bytes([
            h[i],
            h[i + 1],
            h[i + 2],
            h[i + 3],
            h[i + 4],
            h[i + 5],
            h[i + 6],
            h[i + 7],
        ])
    };
    let (s, c) = word(0).overflowing_add(word(8));
    let s = s + u64::from(c);
    let (s, c) = s.overflowing_add(u64::from(u32::from_ne_bytes([h[16], h[17], h[18], h[19]])));
    s + u64::from(c)
}

/// Whether `s` is a multiple of 0xffff (`INV_FFFF`).
#[inline(always)]
fn multiple_of_ffff(s: u64) -> bool {
    s.wrapping_mul(INV_FFFF) <= u64::MAX / 0xffff
}

/// RFC 1624 equation 3: the new checksum after one 16-bit word changed from `old` to `new`.
/// `HC' = ~(~HC + ~m + m')`, which never yields the -0 that equation 2 can.
#[inline(always)]
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    !fold((!hc) as u32 + (!old) as u32 + new as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // The example words of RFC 1071 section 3: sum 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(ones_sum(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(ones_sum(&[0x12], 0), 0x1200);
        assert_eq!(fold(ones_sum(&[0x12, 0x34, 0x56], 0)), 0x6834);
    }

    /// The model: 16-bit words added one at a time with end-around carry.
    fn naive(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in data.chunks(2) {
            s += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    proptest::proptest! {
        #[test]
        fn wide_sum_matches_naive(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
                                  init in 0u32..0x1_0000) {
            let want = naive(&data) as u32 + init;
            proptest::prop_assert_eq!(fold(ones_sum(&data, init)), fold(want));
        }
    }

    proptest::proptest! {
        /// The native-order sum behind `checksum` and `verify` is the big-endian one.
        #[test]
        fn native_order_matches_big_endian(data in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            proptest::prop_assert_eq!(u16::from_be(ones_sum_ne(&data)), fold(ones_sum(&data, 0)));
            proptest::prop_assert_eq!(checksum(&data), !naive(&data));
            let mut with = data.clone();
            with.resize(with.len() + with.len() % 2, 0);
            let c = checksum(&with);
            with.extend_from_slice(&c.to_be_bytes());
            proptest::prop_assert!(verify(&with));
        }
    }

    proptest::proptest! {
        /// `verify20` answers as `verify`, for any 20 bytes and any valid header.
        #[test]
        fn verify20_is_verify(mut h in proptest::array::uniform20(proptest::num::u8::ANY),
                              fill in proptest::num::u8::ANY) {
            proptest::prop_assert_eq!(verify20(&h), verify(&h));
            h[10..12].copy_from_slice(&[0, 0]);
            let c = checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            proptest::prop_assert!(verify20(&h));
            // Words of all ones or zeros, where carries and the zero sum sit.
            h[..8].fill(fill);
            proptest::prop_assert_eq!(verify20(&h), verify(&h));
        }
    }

    proptest::proptest! {
        /// `verify20_nonzero` answers as `verify20` for any 20 bytes but all zeros, valid
        /// headers and words of all ones or zeros included.
        #[test]
        fn verify20_nonzero_is_verify20(mut h in proptest::array::uniform20(proptest::num::u8::ANY),
                                        fill in proptest::num::u8::ANY, at in 0usize..20) {
            h[at] |= 1;
            proptest::prop_assert_eq!(verify20_nonzero(&h), verify20(&h));
            h[10..12].copy_from_slice(&[0, 0]);
            let c = checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            proptest::prop_assert!(verify20_nonzero(&h));
            h[..8].fill(fill);
            h[at] |= 1;
            proptest::prop_assert_eq!(verify20_nonzero(&h), verify20(&h));
        }
    }

    #[test]
    fn verify20_edges() {
        assert!(verify20_nonzero(&[0xff; 20]));
        assert!(!verify20(&[0; 20]));
        for h in [[0u8; 20], [0xff; 20]] {
            assert_eq!(verify20(&h), verify(&h));
        }
        let mut h = [0xff; 20];
        h[19] = 0xfe;
        assert_eq!(verify20(&h), verify(&h));
    }

    proptest::proptest! {
        /// `verify`'s divisibility test answers as the folded sum does, for any bytes, and
        /// for any header whose checksum field was filled (some words all ones or zero too).
        #[test]
        fn verify_matches_folded_sum(mut data in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
                                     fill in proptest::bool::ANY, ones in 0usize..4) {
            for b in data.iter_mut().take(ones * 4) {
                *b = if fill { 0xff } else { 0 };
            }
            proptest::prop_assert_eq!(verify(&data), fold(ones_sum(&data, 0)) == 0xffff);
            data.resize(data.len() + data.len() % 2, 0);
            let c = checksum(&data);
            data.extend_from_slice(&c.to_be_bytes());
            proptest::prop_assert_eq!(verify(&data), fold(ones_sum(&data, 0)) == 0xffff);
        }
    }

    #[test]
    fn divisibility_by_multiplication() {
        assert_eq!(INV_FFFF.wrapping_mul(0xffff), 1);
        for x in (0..1u64 << 20).chain([u64::MAX, 0xffff * 0x1_0000_0001, 5 * 0xffff_ffff]) {
            let by_mul = x.wrapping_mul(INV_FFFF) <= u64::MAX / 0xffff;
            assert_eq!(by_mul, x % 0xffff == 0, "{x:#x}");
        }
    }

    #[test]
    fn verify_edges() {
        assert!(!verify(&[]), "nothing sums to zero, not all ones");
        assert!(!verify(&[0; 20]));
        assert!(verify(&[0xff, 0xff]));
        assert!(verify(&[0xff; 20]));
        assert!(verify(&[0x00, 0x00, 0xff, 0xff]));
        assert!(!verify(&[0xff, 0xfe]));
    }

    #[test]
    fn verify_round_trip() {
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0x00,
            0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let c = checksum(&hdr);
        assert_eq!(c, 0xb861); // the well-known Wikipedia header
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(verify(&hdr));
        hdr[3] ^= 1;
        assert!(!verify(&hdr));
    }

    proptest::proptest! {
        /// Incremental update equals a full recomputation for any header and any word change.
        #[test]
        fn incremental_matches_full(mut words in proptest::collection::vec(proptest::num::u16::ANY, 10),
                                    idx in 0usize..10, new in proptest::num::u16::ANY) {
            proptest::prop_assume!(idx != 5);
            words[0] |= 0x4000; // a real header is never all zero
            words[5] = 0;
            let bytes = |w: &[u16]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
            let hc = checksum(&bytes(&words));
            let old = words[idx];
            words[idx] = new;
            let full = checksum(&bytes(&words));
            proptest::prop_assert_eq!(update16(hc, old, new), full);
        }
    }
}
