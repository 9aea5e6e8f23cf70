//! MAC addresses of gateways resolved by ARP. Workers write what they learn with a plain atomic
//! store and read with a plain load: no lock and no read-modify-write on the fast path.
use crate::wire::MacAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Zero means unresolved; 00:00:00:00:00:00 is never a valid neighbour.
const UNRESOLVED: u64 = 0;

pub struct ArpCache {
    /// (port, ip) of each slot, sorted for binary search.
    keys: Vec<(u16, u32)>,
    macs: Vec<AtomicU64>,
}

impl ArpCache {
    pub fn new(mut keys: Vec<(u16, u32)>) -> Self {
        keys.sort_unstable();
        keys.dedup();
        let macs = keys.iter().map(|_| AtomicU64::new(UNRESOLVED)).collect();
        ArpCache { keys, macs }
    }

    /// The slot watching `ip` on `port`.
    pub fn slot(&self, port: u16, ip: u32) -> Option<usize> {
        self.keys.binary_search(&(port, ip)).ok()
    }

    pub fn get(&self, slot: usize) -> Option<MacAddr> {
        let v = self.macs.get(slot)?.load(Ordering::Relaxed);
        (v != UNRESOLVED).then(|| MacAddr::from_u64(v))
    }

    /// Records a MAC; returns true when it changed.
    pub fn set(&self, slot: usize, mac: MacAddr) -> bool {
        let Some(cell) = self.macs.get(slot) else {
            return false;
        };
        let v = mac.to_u64();
        if cell.load(Ordering::Relaxed) == v {
            return false;
        }
        cell.store(v, Ordering::Relaxed);
        true
    }

    /// Carries resolved entries over from the cache of the previous snapshot.
    pub fn inherit(&self, old: &ArpCache) {
        for (i, k) in self.keys.iter().enumerate() {
            if let Some(mac) = old.slot(k.0, k.1).and_then(|s| old.get(s)) {
                self.set(i, mac);
            }
        }
    }

    pub fn entries(&self) -> impl Iterator<Item = ((u16, u32), Option<MacAddr>)> + '_ {
        self.keys.iter().enumerate().map(|(i, k)| (*k, self.get(i)))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learn_and_inherit() {
        let a = ArpCache::new(vec![(0, 5), (1, 5), (0, 3)]);
        let s = a.slot(1, 5).unwrap();
        assert_eq!(a.get(s), None);
        let m = MacAddr([2, 0, 0, 0, 0, 7]);
        assert!(a.set(s, m));
        assert!(!a.set(s, m));
        assert_eq!(a.get(s), Some(m));
        assert_eq!(a.slot(2, 5), None);
        let b = ArpCache::new(vec![(1, 5), (0, 9)]);
        b.inherit(&a);
        assert_eq!(b.get(b.slot(1, 5).unwrap()), Some(m));
        assert_eq!(b.get(b.slot(0, 9).unwrap()), None);
    }
}
