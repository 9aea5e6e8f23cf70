//! MAC addresses resolved by ARP: the gateways routes and `[[neighbors]]` name (one slot
//! each), and every host of each port's connected subnet (one slot per host address). Workers
//! write what they learn with a plain atomic store and read with a plain load: no lock and no
//! read-modify-write on the fast path.
use crate::lpm::Prefix;
use crate::wire::MacAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Zero means unresolved; 00:00:00:00:00:00 is never a valid neighbour.
const UNRESOLVED: u64 = 0;

/// The widest connected subnet: its hosts are resolved through a table indexed by host
/// number, 2^(32 - len) entries of 8 bytes (512 KiB at /16).
pub const WIDEST_CONNECTED: u8 = 16;

/// The hosts of one port's subnet, indexed by host number.
struct Subnet {
    net: u32,
    len: u8,
    macs: Box<[AtomicU64]>,
}

impl Subnet {
    fn index(&self, ip: u32) -> Option<usize> {
        (ip & Prefix::mask(self.len) == self.net).then_some((ip & !Prefix::mask(self.len)) as usize)
    }
}

pub struct ArpCache {
    /// (port, ip) of each slot, sorted for binary search.
    keys: Vec<(u16, u32)>,
    macs: Vec<AtomicU64>,
    /// By port index: the port's connected subnet, if it has a table.
    subnets: Vec<Option<Subnet>>,
}

fn read(cell: &AtomicU64) -> Option<MacAddr> {
    let v = cell.load(Ordering::Relaxed);
    (v != UNRESOLVED).then(|| MacAddr::from_u64(v))
}

/// Stores a MAC; true when it changed.
fn write(cell: &AtomicU64, mac: MacAddr) -> bool {
    let v = mac.to_u64();
    if cell.load(Ordering::Relaxed) == v {
        return false;
    }
    cell.store(v, Ordering::Relaxed);
    true
}

impl ArpCache {
    pub fn new(keys: Vec<(u16, u32)>) -> Self {
        Self::with_subnets(keys, &[])
    }

    /// Slots for `keys`, and a host table for each port's connected subnet
    /// (`subnets[port] = (address, prefix length)`; wider than [`WIDEST_CONNECTED`] gets none).
    pub fn with_subnets(mut keys: Vec<(u16, u32)>, subnets: &[(u32, u8)]) -> Self {
        keys.sort_unstable();
        keys.dedup();
        let macs = keys.iter().map(|_| AtomicU64::new(UNRESOLVED)).collect();
        let subnets = subnets
            .iter()
            .map(|&(addr, len)| {
                (WIDEST_CONNECTED..=31).contains(&len).then(|| Subnet {
                    net: addr & Prefix::mask(len),
                    len,
                    macs: (0..1usize << (32 - len))
                        .map(|_| AtomicU64::new(UNRESOLVED))
                        .collect(),
                })
            })
            .collect();
        ArpCache {
            keys,
            macs,
            subnets,
        }
    }

    /// The slot watching `ip` on `port`.
    pub fn slot(&self, port: u16, ip: u32) -> Option<usize> {
        self.keys.binary_search(&(port, ip)).ok()
    }

    pub fn get(&self, slot: usize) -> Option<MacAddr> {
        read(self.macs.get(slot)?)
    }

    /// Records a MAC; returns true when it changed.
    pub fn set(&self, slot: usize, mac: MacAddr) -> bool {
        self.macs.get(slot).is_some_and(|c| write(c, mac))
    }

    fn host_cell(&self, port: u16, ip: u32) -> Option<&AtomicU64> {
        let s = self.subnets.get(port as usize)?.as_ref()?;
        s.macs.get(s.index(ip)?)
    }

    /// The MAC of host `ip` on `port`'s connected subnet, once learned.
    #[inline]
    pub fn host(&self, port: u16, ip: u32) -> Option<MacAddr> {
        read(self.host_cell(port, ip)?)
    }

    /// Records the MAC of a host on `port`'s subnet; true when it changed. Addresses off the
    /// subnet are ignored.
    pub fn set_host(&self, port: u16, ip: u32, mac: MacAddr) -> bool {
        self.host_cell(port, ip).is_some_and(|c| write(c, mac))
    }

    /// Carries resolved entries over from the cache of the previous snapshot.
    pub fn inherit(&self, old: &ArpCache) {
        for (i, k) in self.keys.iter().enumerate() {
            if let Some(mac) = old.slot(k.0, k.1).and_then(|s| old.get(s)) {
                self.set(i, mac);
            }
        }
        for (port, s) in self.subnets.iter().enumerate() {
            let Some(s) = s else { continue };
            for (h, cell) in s.macs.iter().enumerate() {
                if let Some(mac) = old.host(port as u16, s.net | h as u32) {
                    write(cell, mac);
                }
            }
        }
    }

    /// Gateway slots and what they resolved to.
    pub fn entries(&self) -> impl Iterator<Item = ((u16, u32), Option<MacAddr>)> + '_ {
        self.keys.iter().enumerate().map(|(i, k)| (*k, self.get(i)))
    }

    /// Hosts learned on connected subnets: (port, ip) and MAC.
    pub fn hosts(&self) -> impl Iterator<Item = ((u16, u32), MacAddr)> + '_ {
        self.subnets.iter().enumerate().flat_map(|(port, s)| {
            s.iter().flat_map(move |s| {
                s.macs
                    .iter()
                    .enumerate()
                    .filter_map(move |(h, c)| Some(((port as u16, s.net | h as u32), read(c)?)))
            })
        })
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

    #[test]
    fn connected_hosts_by_port_and_subnet() {
        // Port 0 on 10.0.0.1/24, port 1 on 192.0.2.1/31, port 2 too wide for a table.
        let a = ArpCache::with_subnets(
            vec![],
            &[(0x0a00_0001, 24), (0xc000_0201, 31), (0x0a00_0001, 8)],
        );
        let m = MacAddr([2, 0, 0, 0, 0, 0x4d]);
        assert_eq!(a.host(0, 0x0a00_004d), None);
        assert!(a.set_host(0, 0x0a00_004d, m));
        assert!(!a.set_host(0, 0x0a00_004d, m));
        assert_eq!(a.host(0, 0x0a00_004d), Some(m));
        // Same address, other port; off-subnet; a port without a table.
        assert_eq!(a.host(1, 0x0a00_004d), None);
        assert!(!a.set_host(0, 0x0a00_014d, m));
        assert!(!a.set_host(1, 0xc000_0202, m));
        assert!(a.set_host(1, 0xc000_0200, m));
        assert!(!a.set_host(2, 0x0a00_004d, m));
        assert!(!a.set_host(7, 0x0a00_004d, m));
        let hosts: Vec<_> = a.hosts().collect();
        assert_eq!(hosts, vec![((0, 0x0a00_004d), m), ((1, 0xc000_0200), m)]);
        let b = ArpCache::with_subnets(vec![], &[(0x0a00_0001, 24)]);
        b.inherit(&a);
        assert_eq!(b.host(0, 0x0a00_004d), Some(m));
        assert_eq!(b.hosts().count(), 1);
    }
}
