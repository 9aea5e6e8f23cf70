//! The flow table: one table shared by every worker, allocated once, never resized.
//!
//! Return traffic may arrive on another worker than the one that learned the flow (another
//! port, another RSS queue), so the table is shared rather than per worker. It is an array
//! of buckets of `WAYS` entries; a flow hashes to two buckets (two-choice hashing) and lives
//! in any of their ways: a new flow goes to the emptier one, a lookup reads both.
//! Each entry is three `AtomicU64`s (24 bytes):
//!
//! - `addrs`: the return packet's source << 32 | destination;
//! - `meta`: ports << 32 | protocol << 24 | table epoch << 16 | tunnel;
//! - `ctl`: last seen (seconds) << 32 | version << 16 | flags << 2 | state.
//!
//! No locks: a lookup is a seqlock read of the entry (`ctl`, then the key words, then `ctl`
//! again, the same version and still live, or the entry is skipped); an insert claims an
//! empty way with a CAS on `ctl` (EMPTY -> WRITING with the version bumped), writes the key
//! words, then publishes LIVE. A refresh CASes `ctl` from what it read to the new time, at
//! most once per flow per second, and gives up if it loses the race (the next packet
//! retries). The management thread expires entries with the same CAS (LIVE -> EMPTY). The
//! key words are only ever written between a version bump and LIVE, so a reader that sees
//! the same live version before and after its reads saw one entry whole.
use crossbeam::utils::CachePadded;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Ways per bucket: a flow may sit in any of its two buckets' ways; a lookup reads them all.
pub const WAYS: usize = 8;
/// Bytes of table per entry.
pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

const EMPTY: u64 = 0;
const WRITING: u64 = 1;
const LIVE: u64 = 2;
const STATE: u64 = 3;
/// A TCP FIN or RST was seen: the closing timeout applies.
pub const CLOSING: u64 = 1 << 2;
/// A return packet was seen: the flow is established and never evicted for a new one.
pub const CONFIRMED: u64 = 1 << 3;
const FLAGS: u64 = CLOSING | CONFIRMED;

/// A flow as its return packet shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    /// Source port << 16 | destination port (TCP, UDP); the echo identifier (ICMP).
    pub ports: u32,
}

impl Key {
    fn addrs(&self) -> u64 {
        (self.src as u64) << 32 | self.dst as u64
    }
    fn meta(&self, epoch: u8, tunnel: u16) -> u64 {
        (self.ports as u64) << 32 | (self.proto as u64) << 24 | (epoch as u64) << 16 | tunnel as u64
    }
    /// Multiplicative mixing of the 13 key bytes; each half picks one of the two buckets.
    #[inline(always)]
    fn hash(&self) -> u64 {
        let a = self.addrs().wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let b = ((self.ports as u64) << 8 | self.proto as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        (a ^ b.rotate_left(29)).wrapping_mul(0x1656_67b1_9e37_79f9)
    }
}

#[derive(Default)]
struct Entry {
    addrs: AtomicU64,
    meta: AtomicU64,
    ctl: AtomicU64,
}

/// What a lookup found: the tunnel, the epoch it was learned under, the entry's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub tunnel: u16,
    pub epoch: u8,
    pub flags: u64,
    slot: usize,
    ctl: u64,
}

/// What `learn` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// A new entry.
    New,
    /// The flow was known (for this tunnel): refreshed.
    Refreshed,
    /// Its two buckets were full of established flows: not learned.
    Refused,
    /// Known but for another tunnel (the same flow now arrives on another one): moved.
    Moved,
}

/// Idle timeouts in seconds, by kind of entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP after a return packet was seen, and before (a SYN with no answer yet).
    pub tcp_established: u32,
    pub tcp_syn: u32,
    /// TCP after a FIN or RST from either side.
    pub tcp_closing: u32,
    pub udp: u32,
    pub icmp: u32,
    /// Any other protocol (never learned today; here so the sweep has an answer).
    pub other: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_established: 300,
            tcp_syn: 30,
            tcp_closing: 10,
            udp: 60,
            icmp: 30,
            other: 30,
        }
    }
}

impl Timeouts {
    fn of(&self, proto: u8, flags: u64) -> u32 {
        match proto {
            crate::wire::ipv4::PROTO_TCP if flags & CLOSING != 0 => self.tcp_closing,
            crate::wire::ipv4::PROTO_TCP if flags & CONFIRMED != 0 => self.tcp_established,
            crate::wire::ipv4::PROTO_TCP => self.tcp_syn,
            crate::wire::ipv4::PROTO_UDP => self.udp,
            crate::wire::ipv4::PROTO_ICMP => self.icmp,
            _ => self.other,
        }
    }
}

/// The shared flow table and the counters only the management thread writes.
/// What workers read per packet (`entries`, `mask`) shares no cache line with what the
/// management thread writes every tick (`sweep`), and the clock is stored once a second.
pub struct Table {
    entries: Box<[Entry]>,
    /// Buckets - 1 (a power of two minus one).
    mask: usize,
    /// Seconds since `born`, set by the management thread when it changes: the one clock
    /// workers and the sweep share (0 until the first tick, which is right for a table just
    /// made).
    now: AtomicU32,
    born: std::time::Instant,
    pub timeouts: Timeouts,
    /// The sweep's place and total, written every tick (10 ms).
    sweep: CachePadded<Sweep>,
}

#[derive(Default)]
struct Sweep {
    /// Where the sweep goes on next tick.
    cursor: AtomicU64,
    expired: AtomicU64,
}

impl Table {
    /// A table of at least `flows` entries (rounded up to a power of two, at least one
    /// bucket), all allocated now.
    pub fn new(flows: usize, timeouts: Timeouts) -> Table {
        let buckets = flows.div_ceil(WAYS).max(1).next_power_of_two();
        Table {
            entries: (0..buckets * WAYS).map(|_| Entry::default()).collect(),
            mask: buckets - 1,
            now: AtomicU32::new(0),
            born: std::time::Instant::now(),
            timeouts,
            sweep: Default::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    pub fn bytes(&self) -> usize {
        self.entries.len() * ENTRY_BYTES
    }

    /// The shared clock, in seconds.
    #[inline(always)]
    pub fn now(&self) -> u32 {
        self.now.load(Ordering::Relaxed)
    }

    /// Seconds since the table was made, for the management tick.
    pub fn age(&self) -> u32 {
        self.born.elapsed().as_secs() as u32
    }

    /// Advances the clock: a store only when the second changed, so the line workers read
    /// it from is not taken from them every tick.
    pub fn set_now(&self, s: u32) {
        if self.now() != s {
            self.now.store(s, Ordering::Relaxed);
        }
    }

    /// Entries the sweep has expired so far.
    pub fn expired(&self) -> u64 {
        self.sweep.expired.load(Ordering::Relaxed)
    }

    /// The flow's two buckets (two-choice hashing): the high half of the hash picks the
    /// first, the low half the second (another one whenever the table has two).
    #[inline(always)]
    fn buckets(&self, k: &Key) -> [usize; 2] {
        let h = k.hash();
        let b1 = (h >> 32) as usize & self.mask;
        let mut b2 = h as u32 as usize & self.mask;
        if b2 == b1 {
            b2 = b1 ^ (self.mask & 1);
        }
        [b1, b2]
    }

    /// The ways of the flow's buckets: the first bucket's, then the second's when another.
    #[inline(always)]
    fn ways(&self, k: &Key) -> impl Iterator<Item = usize> {
        let [b1, b2] = self.buckets(k);
        let second = if b2 == b1 {
            0..0
        } else {
            b2 * WAYS..(b2 + 1) * WAYS
        };
        (b1 * WAYS..(b1 + 1) * WAYS).chain(second)
    }

    /// Empty ways in bucket `b`.
    fn empties(&self, b: usize) -> usize {
        let ways = self
            .entries
            .get(b * WAYS..(b + 1) * WAYS)
            .unwrap_or_default();
        ways.iter()
            .filter(|e| e.ctl.load(Ordering::Relaxed) & STATE == EMPTY)
            .count()
    }

    /// Reads entry `s` whole: (addrs, meta, ctl) when live and not changed while read.
    #[inline(always)]
    fn read(&self, s: usize) -> Option<(u64, u64, u64)> {
        let e = self.entries.get(s)?;
        let c1 = e.ctl.load(Ordering::Acquire);
        if c1 & STATE != LIVE {
            return None;
        }
        let a = e.addrs.load(Ordering::Relaxed);
        let m = e.meta.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        let c2 = e.ctl.load(Ordering::Relaxed);
        let same = c2 & STATE == LIVE && version(c2) == version(c1);
        same.then_some((a, m, c2))
    }

    /// The entry of flow `k`, if any: its first bucket, then its second.
    #[inline]
    pub fn lookup(&self, k: &Key) -> Option<Found> {
        let [b1, b2] = self.buckets(k);
        let (addrs, key_meta) = (k.addrs(), k.meta(0, 0) >> 24);
        match self.find_in(b1, addrs, key_meta) {
            None if b2 != b1 => self.find_in(b2, addrs, key_meta),
            found => found,
        }
    }

    /// The way of bucket `b` that holds the flow with these addresses and key bits.
    #[inline(always)]
    fn find_in(&self, b: usize, addrs: u64, key_meta: u64) -> Option<Found> {
        let ways = self.entries.get(b * WAYS..(b + 1) * WAYS)?;
        for (i, e) in ways.iter().enumerate() {
            // A cheap look at the addresses first: most ways hold other flows (a miss costs
            // one load per way, callgrind). Only a match is read whole, under the seqlock.
            if e.addrs.load(Ordering::Relaxed) != addrs {
                continue;
            }
            let s = b * WAYS + i;
            if let Some((a, m, c)) = self.read(s) {
                if a == addrs && m >> 24 == key_meta {
                    return Some(Found {
                        tunnel: m as u16,
                        epoch: (m >> 16) as u8,
                        flags: c & FLAGS,
                        slot: s,
                        ctl: c,
                    });
                }
            }
        }
        None
    }

    /// Marks a found entry seen now, with `flags` added and `clear` taken away; false when
    /// it changed meanwhile (the update is lost, the entry stays). No write when nothing
    /// would change.
    #[inline]
    pub fn touch(&self, f: &Found, flags: u64, clear: u64) -> bool {
        let now = self.now() as u64;
        let next = (f.ctl & 0xffff_ffff & !(clear & FLAGS)) | (flags & FLAGS) | now << 32;
        if next == f.ctl {
            return true;
        }
        let Some(e) = self.entries.get(f.slot) else {
            return false;
        };
        e.ctl
            .compare_exchange(f.ctl, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Learns (or refreshes) flow `k` as arriving on `tunnel` under `epoch`, with `flags`
    /// (a refresh also takes `clear` away).
    /// Two full buckets give way for their oldest flow no return packet has confirmed; when
    /// all are confirmed the new flow is refused (a SYN flood cannot evict established
    /// flows).
    pub fn learn(&self, k: &Key, epoch: u8, tunnel: u16, flags: u64, clear: u64) -> Learned {
        if let Some(f) = self.lookup(k) {
            if f.tunnel == tunnel && f.epoch == epoch {
                self.touch(&f, flags, clear);
                return Learned::Refreshed;
            }
            // Another tunnel (or table epoch) now carries the flow: the entry is rewritten.
            return match self.claim(f.slot, f.ctl) {
                Some(v) => {
                    self.publish(f.slot, v, k, epoch, tunnel, flags);
                    Learned::Moved
                }
                None => Learned::Refused,
            };
        }
        let now = self.now() as u64;
        // A new flow goes to the emptier of its two buckets (the first on a tie), so that
        // buckets fill evenly and few are full while the table has room.
        let [b1, b2] = self.buckets(k);
        let first = if b2 != b1 && self.empties(b2) > self.empties(b1) {
            b2
        } else {
            b1
        };
        for s in first * WAYS..(first + 1) * WAYS {
            let Some(e) = self.entries.get(s) else { break };
            let c = e.ctl.load(Ordering::Relaxed);
            if c & STATE == EMPTY {
                if let Some(v) = self.claim(s, c) {
                    self.publish(s, v, k, epoch, tunnel, flags);
                    return Learned::New;
                }
            }
        }
        // Both full (or the free ways were just taken): an empty way left in either, else
        // the oldest unconfirmed flow of the two.
        let mut oldest: Option<(usize, u64)> = None;
        for s in self.ways(k) {
            let Some(e) = self.entries.get(s) else { break };
            let c = e.ctl.load(Ordering::Relaxed);
            if c & STATE == EMPTY {
                if let Some(v) = self.claim(s, c) {
                    self.publish(s, v, k, epoch, tunnel, flags);
                    return Learned::New;
                }
                continue;
            }
            let evictable = c & STATE == LIVE && c & CONFIRMED == 0;
            if evictable && oldest.is_none_or(|(_, o)| seen(c) < seen(o)) {
                oldest = Some((s, c));
            }
        }
        // Only a flow idle for a second or more gives way, so two new flows in one place
        // do not take turns evicting each other packet by packet.
        match oldest {
            Some((s, c)) if seen(c) < now => match self.claim(s, c) {
                Some(v) => {
                    self.publish(s, v, k, epoch, tunnel, flags);
                    Learned::New
                }
                None => Learned::Refused,
            },
            _ => Learned::Refused,
        }
    }

    /// Takes entry `s` from `ctl` to WRITING with the version bumped; the new version.
    fn claim(&self, s: usize, ctl: u64) -> Option<u64> {
        let v = (version(ctl) + 1) & 0xffff;
        self.entries
            .get(s)?
            .ctl
            .compare_exchange(ctl, v << 16 | WRITING, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| v)
    }

    fn publish(&self, s: usize, v: u64, k: &Key, epoch: u8, tunnel: u16, flags: u64) {
        let Some(e) = self.entries.get(s) else { return };
        e.addrs.store(k.addrs(), Ordering::Relaxed);
        e.meta.store(k.meta(epoch, tunnel), Ordering::Relaxed);
        let now = self.now() as u64;
        e.ctl.store(
            now << 32 | v << 16 | (flags & FLAGS) | LIVE,
            Ordering::Release,
        );
    }

    /// Expires the idle entries among the next `max` (from where the last sweep stopped);
    /// returns how many it expired. Management thread only.
    pub fn sweep(&self, max: usize) -> u64 {
        let n = self.entries.len();
        let now = self.now() as u64;
        let start = self.sweep.cursor.load(Ordering::Relaxed) as usize % n;
        let mut expired = 0;
        for k in 0..max.min(n) {
            let s = (start + k) % n;
            let Some((_, m, c)) = self.read(s) else {
                continue;
            };
            let timeout = self.timeouts.of((m >> 24) as u8, c & FLAGS) as u64;
            if seen(c) + timeout <= now {
                let e = &self.entries[s];
                let empty = c & !(STATE | FLAGS | 0xffff_ffff << 32) | EMPTY;
                if e.ctl
                    .compare_exchange(c, empty, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    expired += 1;
                }
            }
        }
        self.sweep
            .cursor
            .store(((start + max.min(n)) % n) as u64, Ordering::Relaxed);
        self.sweep.expired.fetch_add(expired, Ordering::Relaxed);
        expired
    }

    /// Live entries in all, and per tunnel of `epoch` (index = tunnel, `tunnels` long).
    /// A full scan: for operators, off the fast path.
    pub fn census(&self, epoch: u8, tunnels: usize) -> (usize, Vec<usize>) {
        let mut per = vec![0; tunnels];
        let mut all = 0;
        for s in 0..self.entries.len() {
            if let Some((_, m, _)) = self.read(s) {
                all += 1;
                if (m >> 16) as u8 == epoch {
                    if let Some(c) = per.get_mut(m as u16 as usize) {
                        *c += 1;
                    }
                }
            }
        }
        (all, per)
    }
}

fn version(ctl: u64) -> u64 {
    (ctl >> 16) & 0xffff
}

fn seen(ctl: u64) -> u64 {
    ctl >> 32
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
