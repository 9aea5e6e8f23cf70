//! MAC addresses resolved by ARP: the gateways routes and `[[neighbors]]` name (one slot
//! each), and every host of each port's connected subnet (one slot per host address). Workers
//! write what they learn with a plain atomic store and read with a plain load: no lock and no
//! read-modify-write on the fast path.
//!
//! Entries age out (`ageing`): each cell keeps when an ARP packet from the neighbour last
//! confirmed it and when forwarding last used it, both in seconds of a coarse clock the
//! management thread advances. A reader stores the clock into `used` only when it differs
//! (at most one store per entry per second, never a read-modify-write).
use crate::lpm::Prefix;
use crate::wire::MacAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

pub mod ageing;

/// Zero means unresolved; 00:00:00:00:00:00 is never a valid neighbour.
const UNRESOLVED: u64 = 0;

/// `confirmed` of a host cell holding a `[[neighbors]]` MAC (`pin_host`): ARP never
/// overwrites it, ageing never expires it, and `neighbors` leaves it to the config's list.
const PINNED: u32 = u32::MAX;

/// The widest connected subnet: its hosts are resolved through a table indexed by host
/// number, 2^(32 - len) entries of 16 bytes (1 MiB at /16).
pub const WIDEST_CONNECTED: u8 = 16;

/// Re-resolutions the management thread can have pending for the workers at once.
const REFRESH_SLOTS: usize = 8;

/// One neighbour: its MAC and, in seconds of the cache's clock (0: never), when ARP last
/// confirmed it and when forwarding last used it. One cache line holds four.
#[derive(Default)]
#[repr(C, align(16))]
pub(crate) struct Cell {
    mac: AtomicU64,
    confirmed: AtomicU32,
    used: AtomicU32,
}

impl Cell {
    fn read(&self) -> Option<MacAddr> {
        let v = self.mac.load(Ordering::Relaxed);
        (v != UNRESOLVED).then(|| MacAddr::from_u64(v))
    }

    /// Stores a MAC learned at `now`; true when it changed. The same MAC again only
    /// renews the confirmation; a pinned (static) entry stays as configured.
    fn write(&self, mac: MacAddr, now: u32) -> bool {
        let confirmed = self.confirmed.load(Ordering::Relaxed);
        if confirmed == PINNED {
            return false;
        }
        if confirmed != now {
            self.confirmed.store(now, Ordering::Relaxed);
        }
        let v = mac.to_u64();
        if self.mac.load(Ordering::Relaxed) == v {
            return false;
        }
        self.mac.store(v, Ordering::Relaxed);
        true
    }

    /// Marks the entry used now: a load, and a store once per clock second.
    #[inline(always)]
    fn touch(&self, now: u32) {
        if self.used.load(Ordering::Relaxed) != now {
            self.used.store(now, Ordering::Relaxed);
        }
    }

    fn pinned(&self) -> bool {
        self.confirmed.load(Ordering::Relaxed) == PINNED
    }

    fn copy_from(&self, o: &Cell) {
        self.mac
            .store(o.mac.load(Ordering::Relaxed), Ordering::Relaxed);
        self.confirmed
            .store(o.confirmed.load(Ordering::Relaxed), Ordering::Relaxed);
        self.used
            .store(o.used.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// The hosts of one port's subnet, indexed by host number.
struct Subnet {
    net: u32,
    len: u8,
    cells: Box<[Cell]>,
}

impl Subnet {
    fn index(&self, ip: u32) -> Option<usize> {
        (ip & Prefix::mask(self.len) == self.net).then_some((ip & !Prefix::mask(self.len)) as usize)
    }
}

pub struct ArpCache {
    /// (port, ip) of each slot, sorted for binary search.
    keys: Vec<(u16, u32)>,
    cells: Box<[Cell]>,
    /// By port index: the port's connected subnet, if it has a table.
    subnets: Vec<Option<Subnet>>,
    /// Seconds since the data plane started, plus one; advanced by the management thread.
    clock: AtomicU32,
    /// Entries the management thread asks the workers to re-resolve: `1 << 63 | port << 32 |
    /// ip`, 0 when free; `pending` says any is set, so a worker normally reads one flag.
    refresh: [AtomicU64; REFRESH_SLOTS],
    pending: AtomicBool,
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
        let cells = keys.iter().map(|_| Cell::default()).collect();
        let subnets = subnets
            .iter()
            .map(|&(addr, len)| {
                (WIDEST_CONNECTED..=31).contains(&len).then(|| Subnet {
                    net: addr & Prefix::mask(len),
                    len,
                    cells: (0..1usize << (32 - len)).map(|_| Cell::default()).collect(),
                })
            })
            .collect();
        ArpCache {
            keys,
            cells,
            subnets,
            clock: AtomicU32::new(1),
            refresh: Default::default(),
            pending: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u32 {
        self.clock.load(Ordering::Relaxed)
    }

    /// The slot watching `ip` on `port`.
    pub fn slot(&self, port: u16, ip: u32) -> Option<usize> {
        self.keys.binary_search(&(port, ip)).ok()
    }

    /// The gateway's MAC for forwarding: marks the entry used, so that ageing refreshes it.
    #[inline]
    pub fn get(&self, slot: usize) -> Option<MacAddr> {
        let c = self.cells.get(slot)?;
        let mac = c.read()?;
        c.touch(self.now());
        Some(mac)
    }

    /// Records a MAC; returns true when it changed.
    pub fn set(&self, slot: usize, mac: MacAddr) -> bool {
        self.cells
            .get(slot)
            .is_some_and(|c| c.write(mac, self.now()))
    }

    fn host_cell(&self, port: u16, ip: u32) -> Option<&Cell> {
        let s = self.subnets.get(port as usize)?.as_ref()?;
        s.cells.get(s.index(ip)?)
    }

    /// The MAC of host `ip` on `port`'s connected subnet, once learned; marks it used.
    #[inline]
    pub fn host(&self, port: u16, ip: u32) -> Option<MacAddr> {
        let c = self.host_cell(port, ip)?;
        let mac = c.read()?;
        c.touch(self.now());
        Some(mac)
    }

    /// Records the MAC of a host on `port`'s subnet; true when it changed. Addresses off the
    /// subnet are ignored.
    pub fn set_host(&self, port: u16, ip: u32, mac: MacAddr) -> bool {
        let now = self.now();
        self.host_cell(port, ip).is_some_and(|c| c.write(mac, now))
    }

    /// Holds `[[neighbors]]` MAC `mac` for `ip` in `port`'s host table, if the port has one
    /// and `ip` is on it: ARP from that address then teaches nothing (no learned duplicate of
    /// a static neighbour, no "moved" when another host claims its address). Before the cache
    /// is published (after `inherit`).
    pub fn pin_host(&self, port: u16, ip: u32, mac: MacAddr) {
        if let Some(c) = self.host_cell(port, ip) {
            c.mac.store(mac.to_u64(), Ordering::Relaxed);
            c.confirmed.store(PINNED, Ordering::Relaxed);
            c.used.store(0, Ordering::Relaxed);
        }
    }

    /// Carries resolved entries, their ages and the clock over from the previous snapshot's
    /// cache (not its pins: the new config's are pinned afresh).
    pub fn inherit(&self, old: &ArpCache) {
        self.clock.store(old.now(), Ordering::Relaxed);
        for (i, k) in self.keys.iter().enumerate() {
            if let Some(c) = old.slot(k.0, k.1).and_then(|s| old.cells.get(s)) {
                self.cells[i].copy_from(c);
            }
        }
        for (port, s) in self.subnets.iter().enumerate() {
            let Some(s) = s else { continue };
            for (h, cell) in s.cells.iter().enumerate() {
                if let Some(c) = old
                    .host_cell(port as u16, s.net | h as u32)
                    .filter(|c| !c.pinned())
                {
                    cell.copy_from(c);
                }
            }
        }
    }

    /// Gateway slots and what they resolved to.
    pub fn entries(&self) -> impl Iterator<Item = ((u16, u32), Option<MacAddr>)> + '_ {
        self.keys
            .iter()
            .zip(self.cells.iter())
            .map(|(k, c)| (*k, c.read()))
    }

    /// Hosts learned on connected subnets: (port, ip) and MAC.
    pub fn hosts(&self) -> impl Iterator<Item = ((u16, u32), MacAddr)> + '_ {
        self.host_cells()
            .filter(|(_, c)| !c.pinned())
            .filter_map(|(k, c)| Some((k, c.read()?)))
    }

    /// Every host cell of every connected subnet with its (port, ip).
    fn host_cells(&self) -> impl Iterator<Item = ((u16, u32), &Cell)> + '_ {
        self.subnets.iter().enumerate().flat_map(|(port, s)| {
            s.iter().flat_map(move |s| {
                s.cells
                    .iter()
                    .enumerate()
                    .map(move |(h, c)| ((port as u16, s.net | h as u32), c))
            })
        })
    }

    /// Every cell, gateways then hosts, with whether it is a gateway slot.
    pub(crate) fn all_cells(&self) -> impl Iterator<Item = ((u16, u32), bool, &Cell)> + '_ {
        self.keys
            .iter()
            .zip(self.cells.iter())
            .map(|(k, c)| (*k, true, c))
            .chain(self.host_cells().map(|(k, c)| (k, false, c)))
    }

    /// Entries the management thread asks to be re-resolved, taken by a worker (which sends
    /// the requests). A single load when none is pending.
    #[inline]
    pub fn take_refresh(&self) -> impl Iterator<Item = (u16, u32)> + '_ {
        let any = self.pending.load(Ordering::Relaxed);
        if any {
            self.pending.store(false, Ordering::Relaxed);
        }
        self.refresh
            .iter()
            .take(if any { REFRESH_SLOTS } else { 0 })
            .filter_map(|r| match r.swap(0, Ordering::Relaxed) {
                0 => None,
                v => Some(((v >> 32) as u16, v as u32)),
            })
    }

    /// Asks the workers to re-resolve `ip` on `port`; false when every slot is taken (asked
    /// again on the next sweep).
    fn post_refresh(&self, port: u16, ip: u32) -> bool {
        let v = 1 << 63 | (port as u64) << 32 | ip as u64;
        let Some(free) = self
            .refresh
            .iter()
            .find(|r| r.load(Ordering::Relaxed) == 0 || r.load(Ordering::Relaxed) == v)
        else {
            return false;
        };
        free.store(v, Ordering::Relaxed);
        self.pending.store(true, Ordering::Release);
        true
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

    #[test]
    fn a_pinned_static_mac_is_never_learned_over_listed_or_inherited() {
        // 10.0.0.9 is a `[[neighbors]]` MAC on port 0's 10.0.0.1/24.
        let a = ArpCache::with_subnets(vec![], &[(0x0a00_0001, 24)]);
        let fixed = MacAddr([2, 0, 0, 0, 0, 9]);
        let other = MacAddr([2, 0, 0, 0, 0, 0x66]);
        a.pin_host(0, 0x0a00_0009, fixed);
        a.set_clock(5);
        assert!(
            !a.set_host(0, 0x0a00_0009, other),
            "ARP taught a static address"
        );
        assert_eq!(a.host(0, 0x0a00_0009), Some(fixed));
        assert_eq!(a.hosts().count(), 0);
        assert!(a.neighbors(5).is_empty(), "listed as a learned entry too");
        let mut swept = Vec::new();
        a.sweep(5 + 10 * ageing::REACHABLE_S, |e| swept.push(e));
        assert!(swept.is_empty(), "a static MAC aged: {swept:?}");
        assert_eq!(a.host(0, 0x0a00_0009), Some(fixed));
        // A reload without the neighbour: the pin does not carry over, ARP may learn it.
        let b = ArpCache::with_subnets(vec![], &[(0x0a00_0001, 24)]);
        b.inherit(&a);
        assert_eq!(b.host(0, 0x0a00_0009), None);
        assert!(b.set_host(0, 0x0a00_0009, other));
        // Pinned again over a learned entry: the configured MAC wins.
        b.pin_host(0, 0x0a00_0009, fixed);
        assert_eq!(b.host(0, 0x0a00_0009), Some(fixed));
        // Off the subnet, or a port without a table: nothing to pin, nothing to learn.
        a.pin_host(0, 0x0b00_0009, fixed);
        a.pin_host(3, 0x0a00_0009, fixed);
        assert!(!a.set_host(0, 0x0b00_0009, other));
    }
}
