//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// One's-complement sum of `data` as big-endian 16-bit words, added to `init`, not folded.
pub fn ones_sum(data: &[u8], init: u32) -> u32 {
    let mut sum = init as u64;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u64) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u32
}

/// Folds a 32-bit running sum into 16 bits.
pub fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum to store in a header whose checksum field is zero.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(ones_sum(data, 0))
}

/// True when a header including its checksum field sums to all ones.
pub fn verify(data: &[u8]) -> bool {
    fold(ones_sum(data, 0)) == 0xffff
}

/// RFC 1624 equation 3: the new checksum after one 16-bit word changed from `old` to `new`.
/// `HC' = ~(~HC + ~m + m')`, which never yields the -0 that equation 2 can.
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
