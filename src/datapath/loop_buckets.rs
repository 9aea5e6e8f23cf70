//! Busy-loop cycles as a compact log-linear histogram that live views can read: eight
//! sub-buckets per power of two (a bucket is at most 1/8 of its values wide), from 0 to
//! 2^LAST_OCTAVE cycles, then one overflow bucket. The counts are plain counters, so they
//! publish through the workers' seqlock block, add up over workers and subtract for
//! `clear counters` like every other counter.
//!
//! The worker records each busy loop into its hdrhistogram only (as before); about once a
//! second, off the per-burst path, it copies that histogram's counts into these buckets
//! ([`fill`]), which reads the histogram and writes a fixed array: no allocation, no lock.
use super::counters::Counters;
use super::worker::LoopHistogram;

/// Sub-buckets per power of two, as a shift.
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// Values from 2^LAST_OCTAVE (2^32 cycles: about a second) go to the overflow bucket.
const LAST_OCTAVE: u32 = 32;
/// Buckets: values below SUB one each, then SUB per octave up to LAST_OCTAVE, then overflow.
pub const LOOP_BUCKETS: usize = SUB * (LAST_OCTAVE - SUB_BITS + 1) as usize + 1;

/// The bucket of `v` cycles.
#[inline]
pub fn index(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    if e >= LAST_OCTAVE {
        return LOOP_BUCKETS - 1;
    }
    let sub = ((v >> (e - SUB_BITS)) as usize) & (SUB - 1);
    (e - SUB_BITS + 1) as usize * SUB + sub
}

/// Copies the worker's histogram into its counters: the buckets, and `busy_cycles` (every
/// loop recorded so far) as their sum.
pub fn publish_into(h: &LoopHistogram, c: &mut Counters) {
    fill(h, &mut c.loop_buckets);
    c.loop_buckets_cycles = c.busy_cycles;
}

/// The smallest value of bucket `i` (the overflow bucket: 2^LAST_OCTAVE).
pub fn lower(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    if i >= LOOP_BUCKETS - 1 {
        return 1 << LAST_OCTAVE;
    }
    let e = (i / SUB) as u32 + SUB_BITS - 1;
    ((SUB + i % SUB) as u64) << (e - SUB_BITS)
}

/// The largest value of bucket `i` (the overflow bucket: u64::MAX).
pub fn upper(i: usize) -> u64 {
    if i + 1 >= LOOP_BUCKETS {
        u64::MAX
    } else {
        lower(i + 1) - 1
    }
}

/// Overwrites `buckets` with the counts of `h` (which holds every loop since start).
pub fn fill(h: &LoopHistogram, buckets: &mut [u64; LOOP_BUCKETS]) {
    buckets.fill(0);
    for v in h.iter_recorded() {
        buckets[index(v.value_iterated_to())] += v.count_at_value();
    }
}

/// The value at quantile `q` (0..=1): the largest value of the bucket that holds it, as
/// hdrhistogram reports its own. None when nothing was recorded.
pub fn quantile(buckets: &[u64], q: f64) -> Option<u64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(upper(i));
        }
    }
    None
}

/// p50, p99 and p99.9, in cycles.
pub fn percentiles(buckets: &[u64]) -> Option<[u64; 3]> {
    Some([
        quantile(buckets, 0.5)?,
        quantile(buckets, 0.99)?,
        quantile(buckets, 0.999)?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::loop_histogram;

    #[test]
    fn buckets_tile_the_range_and_are_at_most_an_eighth_wide() {
        assert_eq!((index(0), index(7), index(8), index(15)), (0, 7, 8, 15));
        assert_eq!((index(16), index(17), index(18)), (16, 16, 17));
        for i in 0..LOOP_BUCKETS - 1 {
            assert_eq!(index(lower(i)), i, "bucket {i}");
            assert_eq!(index(upper(i)), i, "bucket {i}");
            assert_eq!(upper(i) + 1, lower(i + 1));
            let width = upper(i) - lower(i) + 1;
            assert!(width * 8 <= lower(i).max(8), "bucket {i} is {width} wide");
        }
        assert_eq!(index((1 << 32) - 1), LOOP_BUCKETS - 2);
        assert_eq!(index(1 << 32), LOOP_BUCKETS - 1);
        assert_eq!(index(u64::MAX), LOOP_BUCKETS - 1);
    }

    #[test]
    fn percentiles_from_the_filled_buckets_follow_the_histogram() {
        let mut h = loop_histogram();
        // 1,000 loops: 900 of ~250 cycles, 90 of ~2,000, 9 of ~40,000, one of 1e6.
        for i in 0..900 {
            h.record(240 + i % 20).unwrap();
        }
        for _ in 0..90 {
            h.record(2_000).unwrap();
        }
        for _ in 0..9 {
            h.record(40_000).unwrap();
        }
        h.record(1_000_000).unwrap();
        let mut b = [0; LOOP_BUCKETS];
        fill(&h, &mut b);
        assert_eq!(b.iter().sum::<u64>(), 1_000);
        let [p50, p99, p999] = percentiles(&b).unwrap();
        let near = |got: u64, want: u64| got >= want && got <= want + want / 8;
        assert!(near(p50, h.value_at_quantile(0.5)), "p50 {p50}");
        assert!(near(p99, h.value_at_quantile(0.99)), "p99 {p99}");
        assert!(near(p999, h.value_at_quantile(0.999)), "p99.9 {p999}");
        assert!(p50 <= p99 && p99 <= p999);
        assert_eq!(quantile(&b, 1.0), Some(upper(index(1_000_000))));
        // A refill replaces (the histogram holds everything since start).
        fill(&h, &mut b);
        assert_eq!(b.iter().sum::<u64>(), 1_000);
        assert_eq!(percentiles(&[0; LOOP_BUCKETS]), None);
    }
}
