use super::table_mem::U32Table;
use std::fmt;
use std::net::Ipv4Addr;

const TBL24_SIZE: usize = 1 << 24;
const TBL8_GROUP: usize = 256;
/// Entry bit that marks a tbl24 entry as the index of a tbl8 group.
const EXT: u32 = 1 << 31;
/// A zero entry is a miss; otherwise entries store `value + 1`.
const MISS: u32 = 0;
/// Largest value a route can carry.
pub const MAX_VALUE: u32 = EXT - 2;

/// An IPv4 prefix with no host bits set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub addr: u32,
    pub len: u8,
}

impl Prefix {
    pub fn mask(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - len as u32)
        }
    }
    /// Fails when `len > 32` or host bits are set.
    pub fn new(addr: u32, len: u8) -> Option<Prefix> {
        (len <= 32 && addr & !Self::mask(len) == 0).then_some(Prefix { addr, len })
    }
    pub fn contains(&self, ip: u32) -> bool {
        ip & Self::mask(self.len) == self.addr
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.len)
    }
}
impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum BuildError {
    /// More /25../32 sub-trees than the configured tbl8 group limit.
    Tbl8Exhausted {
        needed: usize,
        limit: usize,
    },
    ValueTooLarge(u32),
    /// The table memory could not be mapped.
    NoMemory(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            BuildError::Tbl8Exhausted { needed, limit } => write!(
                f,
                "the table needs {needed} tbl8 groups (one per /24 holding longer prefixes), limit is {limit}"
            ),
            BuildError::ValueTooLarge(v) => write!(f, "next-hop value {v} exceeds {MAX_VALUE}"),
            BuildError::NoMemory(e) => write!(f, "cannot allocate the lookup table: {e}"),
        }
    }
}

/// An immutable DIR-24-8 table mapping IPv4 addresses to u32 values (next-hop ids).
pub struct Dir24_8 {
    tbl24: U32Table,
    tbl8: U32Table,
    routes: usize,
}

impl Dir24_8 {
    /// Builds the table from `(prefix, value)` pairs; later duplicates of a prefix win. The
    /// tbl8 pool is sized from the route set itself, so a table never runs out of groups
    /// unless it would exceed `max_tbl8_groups`.
    pub fn build(routes: &[(Prefix, u32)], max_tbl8_groups: usize) -> Result<Self, BuildError> {
        let mut sorted: Vec<(Prefix, u32)> = routes.to_vec();
        // Shorter prefixes first: each longer one then overwrites exactly the range it covers.
        sorted.sort_by_key(|(p, _)| p.len);
        if let Some((_, v)) = sorted.iter().find(|(_, v)| *v > MAX_VALUE) {
            return Err(BuildError::ValueTooLarge(*v));
        }
        let mut groups_needed: Vec<u32> = sorted
            .iter()
            .filter(|(p, _)| p.len > 24)
            .map(|(p, _)| p.addr >> 8)
            .collect();
        groups_needed.sort_unstable();
        groups_needed.dedup();
        if groups_needed.len() > max_tbl8_groups {
            return Err(BuildError::Tbl8Exhausted {
                needed: groups_needed.len(),
                limit: max_tbl8_groups,
            });
        }

        let mem = |n| U32Table::zeroed(n).map_err(|e| BuildError::NoMemory(e.to_string()));
        let mut t24 = mem(TBL24_SIZE)?;
        let mut t8 = mem(groups_needed.len() * TBL8_GROUP)?;
        let (tbl24, tbl8) = (t24.as_mut_slice(), t8.as_mut_slice());
        let mut groups = 0usize;
        let mut seen = std::collections::HashSet::new();
        for (p, v) in &sorted {
            seen.insert(*p);
            let entry = v + 1;
            if p.len <= 24 {
                let start = (p.addr >> 8) as usize;
                let n = 1usize << (24 - p.len);
                tbl24[start..start + n].fill(entry);
            } else {
                let i24 = (p.addr >> 8) as usize;
                let cur = tbl24[i24];
                let group = if cur & EXT != 0 {
                    (cur & !EXT) as usize
                } else {
                    // First long prefix under this /24: the group inherits the /24's entry.
                    let g = groups;
                    groups += 1;
                    tbl8[g * TBL8_GROUP..(g + 1) * TBL8_GROUP].fill(cur);
                    tbl24[i24] = EXT | g as u32;
                    g
                };
                let start = group * TBL8_GROUP + (p.addr & 0xff) as usize;
                let n = 1usize << (32 - p.len);
                tbl8[start..start + n].fill(entry);
            }
        }
        Ok(Dir24_8 {
            tbl24: t24,
            tbl8: t8,
            routes: seen.len(),
        })
    }

    /// The value of the longest prefix covering `ip`.
    #[inline]
    pub fn lookup(&self, ip: u32) -> Option<u32> {
        self.view().lookup(ip)
    }

    /// Borrowed slices of both levels: take it once per burst, look up per packet.
    #[inline]
    pub fn view(&self) -> View<'_> {
        View {
            // `build` maps exactly TBL24_SIZE entries; a fixed-size array lets the compiler
            // see that `ip >> 8` is always in bounds.
            tbl24: self
                .tbl24
                .as_slice()
                .try_into()
                .expect("tbl24 is mapped with TBL24_SIZE entries"),
            tbl8: self.tbl8.as_slice(),
        }
    }

    /// Looks up a batch, four at a time so the tbl24 loads overlap. Misses yield `miss`.
    pub fn lookup_bulk(&self, ips: &[u32], out: &mut [u32], miss: u32) {
        let n = ips.len().min(out.len());
        let (ips, out) = (&ips[..n], &mut out[..n]);
        let v = self.view();
        let at = |ip: u32| v.tbl24[(ip >> 8) as usize];
        let mut ic = ips.chunks_exact(4);
        let mut oc = out.chunks_exact_mut(4);
        for (i, o) in (&mut ic).zip(&mut oc) {
            let e = [at(i[0]), at(i[1]), at(i[2]), at(i[3])];
            for k in 0..4 {
                o[k] = v.resolve(e[k], i[k]).unwrap_or(miss);
            }
        }
        for (i, o) in ic.remainder().iter().zip(oc.into_remainder()) {
            *o = v.lookup(*i).unwrap_or(miss);
        }
    }

    /// Distinct prefixes in the table.
    pub fn len(&self) -> usize {
        self.routes
    }
    pub fn is_empty(&self) -> bool {
        self.routes == 0
    }
    pub fn tbl8_groups(&self) -> usize {
        self.tbl8.len() / TBL8_GROUP
    }
    /// Bytes of table memory: 64 MiB of tbl24 plus 1 KiB per tbl8 group.
    pub fn memory_bytes(&self) -> usize {
        TBL24_SIZE * 4 + self.tbl8.len() * 4
    }
}

/// A borrowed view of a [`Dir24_8`], so the fast path converts the table memory once per
/// burst rather than once per packet.
#[derive(Clone, Copy)]
pub struct View<'a> {
    tbl24: &'a [u32; TBL24_SIZE],
    tbl8: &'a [u32],
}

impl View<'_> {
    #[inline(always)]
    pub fn lookup(&self, ip: u32) -> Option<u32> {
        self.resolve(self.tbl24[(ip >> 8) as usize], ip)
    }

    #[inline(always)]
    fn resolve(&self, mut e: u32, ip: u32) -> Option<u32> {
        if e & EXT != 0 {
            let i = ((e & !EXT) as usize) * TBL8_GROUP + (ip & 0xff) as usize;
            e = self.tbl8.get(i).copied().unwrap_or(MISS);
        }
        e.checked_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(
            u32::from(a.parse::<Ipv4Addr>().unwrap()),
            l.parse().unwrap(),
        )
        .unwrap()
    }
    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    #[test]
    fn longest_prefix_wins_at_every_depth() {
        let t = Dir24_8::build(
            &[
                (p("0.0.0.0/0"), 0),
                (p("10.0.0.0/8"), 1),
                (p("10.1.0.0/16"), 2),
                (p("10.1.2.0/24"), 3),
                (p("10.1.2.128/25"), 4),
                (p("10.1.2.200/32"), 5),
            ],
            16,
        )
        .unwrap();
        assert_eq!(t.lookup(ip("192.0.2.1")), Some(0));
        assert_eq!(t.lookup(ip("10.9.9.9")), Some(1));
        assert_eq!(t.lookup(ip("10.1.9.9")), Some(2));
        assert_eq!(t.lookup(ip("10.1.2.1")), Some(3));
        assert_eq!(t.lookup(ip("10.1.2.129")), Some(4));
        assert_eq!(t.lookup(ip("10.1.2.200")), Some(5));
        assert_eq!(t.lookup(ip("10.1.2.201")), Some(4));
        assert_eq!(t.tbl8_groups(), 1);
        assert_eq!(t.len(), 6);
    }

    #[test]
    fn no_default_route_misses() {
        let t = Dir24_8::build(&[(p("10.0.0.0/8"), 7)], 0).unwrap();
        assert_eq!(t.lookup(ip("11.0.0.1")), None);
        assert_eq!(t.lookup(ip("10.255.255.255")), Some(7));
        let mut out = [0; 6];
        t.lookup_bulk(
            &[
                ip("10.0.0.1"),
                ip("9.0.0.1"),
                ip("10.1.1.1"),
                0,
                u32::MAX,
                ip("10.2.3.4"),
            ],
            &mut out,
            99,
        );
        assert_eq!(out, [7, 99, 7, 99, 99, 7]);
    }

    #[test]
    fn host_route_under_no_covering_24() {
        let t = Dir24_8::build(&[(p("203.0.113.9/32"), 3)], 4).unwrap();
        assert_eq!(t.lookup(ip("203.0.113.9")), Some(3));
        assert_eq!(t.lookup(ip("203.0.113.8")), None);
    }

    #[test]
    fn tbl8_limit_is_enforced() {
        let err = Dir24_8::build(&[(p("10.0.0.1/32"), 1), (p("10.0.1.1/32"), 1)], 1)
            .err()
            .unwrap();
        assert_eq!(
            err,
            BuildError::Tbl8Exhausted {
                needed: 2,
                limit: 1
            }
        );
    }

    #[test]
    fn prefix_rejects_host_bits() {
        assert!(Prefix::new(ip("10.0.0.1"), 24).is_none());
        assert!(Prefix::new(0, 33).is_none());
        assert_eq!(p("10.0.0.0/24").to_string(), "10.0.0.0/24");
    }

    /// The model: scan every route, keep the longest match (last one on equal prefixes).
    fn linear(routes: &[(Prefix, u32)], ip: u32) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        for (p, v) in routes {
            if p.contains(ip) && best.is_none_or(|(l, _)| p.len >= l) {
                best = Some((p.len, *v));
            }
        }
        best.map(|(_, v)| v)
    }

    fn arb_routes() -> impl Strategy<Value = Vec<(Prefix, u32)>> {
        // Addresses drawn from a small space so that prefixes nest and collide often.
        let prefix = (0u32..64, 0u32..4, any::<u8>(), 0u8..=32).prop_map(|(a, b, c, len)| {
            let addr = (10 << 24) | (a << 16) | (b << 8) | c as u32;
            let len = if len < 8 { len / 4 } else { len }; // a few /0 and /1
            Prefix {
                addr: addr & Prefix::mask(len),
                len,
            }
        });
        proptest::collection::vec((prefix, 0u32..1000), 0..40)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn matches_linear_scan(routes in arb_routes(),
                               probes in proptest::collection::vec((0u32..64, 0u32..4, any::<u8>()), 64)) {
            let mut dedup: Vec<(Prefix, u32)> = Vec::new();
            for (p, v) in &routes {
                dedup.retain(|(q, _)| q != p);
                dedup.push((*p, *v));
            }
            let t = Dir24_8::build(&dedup, 1024).unwrap();
            let ips: Vec<u32> = probes.iter().map(|(a, b, c)| (10 << 24) | (a << 16) | (b << 8) | *c as u32)
                .chain([0, u32::MAX, 0x0b000000]).collect();
            let mut bulk = vec![0; ips.len()];
            t.lookup_bulk(&ips, &mut bulk, u32::MAX);
            for (i, ip) in ips.iter().enumerate() {
                let want = linear(&dedup, *ip);
                prop_assert_eq!(t.lookup(*ip), want, "ip {}", Ipv4Addr::from(*ip));
                prop_assert_eq!(bulk[i], want.unwrap_or(u32::MAX));
            }
        }
    }
}
