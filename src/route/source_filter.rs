//! Which inner sources a tunnel with `authorized_prefixes` may send: the decapsulated
//! packet's source must fall in one of them (tunnels without the key are checked against the
//! route table instead, `Snapshot::source_allowed`). One DIR-24-8 lookup per packet: the table
//! maps an address to the set of tunnels that authorize some prefix covering it.
use crate::lpm::{Dir24_8, Prefix, MAX_TBL8_GROUPS, MAX_VALUE};
use std::collections::HashMap;

pub struct SourceFilter {
    table: Dir24_8,
    /// Sorted tunnel ids, one list per distinct set.
    sets: Vec<Vec<u16>>,
}

impl SourceFilter {
    /// `authorized[t]` lists tunnel t's prefixes.
    pub fn build(authorized: &[Vec<Prefix>]) -> Result<Self, String> {
        let mut own: HashMap<Prefix, Vec<u16>> = HashMap::new();
        for (t, list) in authorized.iter().enumerate() {
            for p in list {
                own.entry(*p).or_default().push(t as u16);
            }
        }
        let mut prefixes: Vec<Prefix> = own.keys().copied().collect();
        prefixes.sort_by_key(|p| (p.len, p.addr));
        // A prefix's set also holds the tunnels of every shorter prefix covering it; shorter
        // prefixes are done first, so the nearest covering one already holds its ancestors'.
        let mut full: HashMap<Prefix, Vec<u16>> = HashMap::new();
        for p in &prefixes {
            let mut set = own[p].clone();
            if let Some(parent) = (0..p.len).rev().find_map(|l| {
                full.get(&Prefix {
                    addr: p.addr & Prefix::mask(l),
                    len: l,
                })
            }) {
                set.extend_from_slice(parent);
            }
            set.sort_unstable();
            set.dedup();
            full.insert(*p, set);
        }
        let mut sets: Vec<Vec<u16>> = Vec::new();
        let mut ids: HashMap<Vec<u16>, u32> = HashMap::new();
        let mut routes = Vec::with_capacity(prefixes.len());
        for p in &prefixes {
            let set = &full[p];
            let id = *ids.entry(set.clone()).or_insert_with(|| {
                sets.push(set.clone());
                (sets.len() - 1) as u32
            });
            routes.push((*p, id));
        }
        // Ids are DIR-24-8 values: 0..=MAX_VALUE.
        if sets.len() > MAX_VALUE as usize + 1 {
            return Err(format!(
                "tunnels: authorized prefixes make {} distinct sets of tunnels, limit is {}",
                sets.len(),
                MAX_VALUE as usize + 1
            ));
        }
        let table = Dir24_8::build(&routes, MAX_TBL8_GROUPS)
            .map_err(|e| format!("tunnels: authorized prefixes: {e}"))?;
        Ok(SourceFilter { table, sets })
    }

    /// May `tunnel` send packets from `src`?
    #[inline]
    pub fn allows(&self, tunnel: u16, src: u32) -> bool {
        self.table
            .lookup(src)
            .and_then(|id| self.sets.get(id as usize))
            .is_some_and(|s| s.binary_search(&tunnel).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(a: u32, len: u8) -> Prefix {
        Prefix {
            addr: a & Prefix::mask(len),
            len,
        }
    }

    #[test]
    fn nested_prefixes_of_different_tunnels() {
        // Tunnel 0 owns 10.0.0.0/8, tunnel 1 owns 10.1.0.0/16 inside it.
        let f = SourceFilter::build(&[vec![p(0x0a00_0000, 8)], vec![p(0x0a01_0000, 16)]]).unwrap();
        assert!(f.allows(0, 0x0a01_0203), "the /8 covers it too");
        assert!(f.allows(1, 0x0a01_0203));
        assert!(f.allows(0, 0x0a02_0000));
        assert!(!f.allows(1, 0x0a02_0000));
        assert!(!f.allows(0, 0x0b00_0000));
        assert!(!f.allows(2, 0x0a00_0001));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        /// Agrees with the model: some prefix of the tunnel contains the address.
        #[test]
        fn matches_linear_model(lists in proptest::collection::vec(
                proptest::collection::vec((0u32..16, 0u8..=32), 0..6), 1..4),
                probes in proptest::collection::vec((0u32..16, any::<u16>()), 32)) {
            let lists: Vec<Vec<Prefix>> = lists.iter().map(|l| l.iter()
                .map(|(a, len)| p(0x0a00_0000 | (a << 20), (*len).max(4))).collect()).collect();
            let f = SourceFilter::build(&lists).unwrap();
            for (a, low) in probes {
                let ip = 0x0a00_0000 | (a << 20) | low as u32;
                for (t, l) in lists.iter().enumerate() {
                    prop_assert_eq!(f.allows(t as u16, ip), l.iter().any(|q| q.contains(ip)));
                }
            }
        }
    }
}
