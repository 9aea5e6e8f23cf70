//! ARP ageing, run by the management thread once a second (never by a worker).
//!
//! An entry is confirmed whenever an ARP packet from the neighbour is seen (a reply to our
//! request, a request for our address, or any ARP from a gateway). It is reachable for
//! [`REACHABLE_S`] seconds after that. From [`REFRESH_S`] on, an entry forwarding used in the
//! last [`IN_USE_S`] seconds is re-resolved: a worker sends a request every
//! [`REFRESH_EVERY_S`] seconds while the old MAC keeps being used, so that a next hop in use
//! never goes unresolved while its neighbour answers. An entry not confirmed within
//! [`REACHABLE_S`] is removed; the next packet toward it re-resolves it as a new neighbour
//! (the packets meanwhile are dropped as `neighbor_unresolved`). Linux keeps a neighbour
//! reachable 15-45 s and garbage-collects stale ones after 60 s; a router's gateways and
//! hosts change far less often, so five minutes bounds how long a moved address is sent to
//! its old MAC without re-resolving busy next hops more than once a few minutes.
use super::{ArpCache, Cell};
use crate::wire::MacAddr;
use std::sync::atomic::Ordering;

pub const REACHABLE_S: u32 = 300;
pub const REFRESH_S: u32 = 270;
pub const REFRESH_EVERY_S: u32 = 5;
pub const IN_USE_S: u32 = 30;

/// What a sweep did to one entry, for the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Expired {
        port: u16,
        ip: u32,
        mac: MacAddr,
        age_s: u32,
    },
    Refresh {
        port: u16,
        ip: u32,
    },
}

/// One entry as `show neighbors` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    pub port: u16,
    pub ip: u32,
    /// None: a gateway not resolved yet.
    pub mac: Option<MacAddr>,
    /// A gateway slot (routes, `[[neighbors]]` without a MAC), or a connected host.
    pub gateway: bool,
    /// Seconds since ARP last confirmed it.
    pub age_s: Option<u32>,
    /// Seconds since forwarding last used it.
    pub used_s: Option<u32>,
}

impl ArpCache {
    /// Advances the clock workers stamp entries with (seconds, starting at 1).
    pub fn set_clock(&self, now: u32) {
        self.clock.store(now.max(1), Ordering::Relaxed);
    }

    pub fn clock(&self) -> u32 {
        self.now()
    }

    /// Removes entries not confirmed for [`REACHABLE_S`] and asks the workers to re-resolve
    /// those in use from [`REFRESH_S`] on; each action is reported to `event`.
    pub fn sweep(&self, now: u32, mut event: impl FnMut(Event)) {
        for ((port, ip), _, c) in self.all_cells() {
            let v = c.mac.load(Ordering::Relaxed);
            if v == super::UNRESOLVED {
                continue;
            }
            let confirmed = c.confirmed.load(Ordering::Relaxed);
            if confirmed == super::PINNED {
                continue;
            }
            if confirmed == 0 {
                c.confirmed.store(now, Ordering::Relaxed);
                continue;
            }
            let age = now.saturating_sub(confirmed);
            if age >= REACHABLE_S {
                // A worker may have learned a new MAC since the load: keep that one.
                if c.mac
                    .compare_exchange(v, super::UNRESOLVED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    let mac = MacAddr::from_u64(v);
                    event(Event::Expired {
                        port,
                        ip,
                        mac,
                        age_s: age,
                    });
                }
            } else if age >= REFRESH_S
                && (age - REFRESH_S).is_multiple_of(REFRESH_EVERY_S)
                && in_use(c, now)
                && self.post_refresh(port, ip)
            {
                event(Event::Refresh { port, ip });
            }
        }
    }

    /// Resolved entries, and gateways still unresolved, in (port, ip) order per kind; not
    /// the pinned `[[neighbors]]` MACs (the config lists those).
    pub fn neighbors(&self, now: u32) -> Vec<Neighbor> {
        let since = |t: u32| (t != 0).then(|| now.saturating_sub(t));
        self.all_cells()
            .filter(|(_, _, c)| !c.pinned())
            .filter_map(|((port, ip), gateway, c)| {
                let mac = c.read();
                (gateway || mac.is_some()).then(|| Neighbor {
                    port,
                    ip,
                    mac,
                    gateway,
                    age_s: mac.and(since(c.confirmed.load(Ordering::Relaxed))),
                    used_s: since(c.used.load(Ordering::Relaxed)),
                })
            })
            .collect()
    }
}

fn in_use(c: &Cell, now: u32) -> bool {
    let used = c.used.load(Ordering::Relaxed);
    used != 0 && now.saturating_sub(used) <= IN_USE_S
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: u32 = 0xc000_02fe; // 192.0.2.254
    const HOST: u32 = 0x0a00_0005; // 10.0.0.5

    fn cache() -> ArpCache {
        ArpCache::with_subnets(vec![(0, GW)], &[(0xc000_0201, 24), (0x0a00_0001, 24)])
    }

    fn sweep(a: &ArpCache, now: u32) -> Vec<Event> {
        a.set_clock(now);
        let mut ev = Vec::new();
        a.sweep(now, |e| ev.push(e));
        ev
    }

    #[test]
    fn an_unused_entry_expires_after_the_reachable_time_and_no_sooner() {
        let a = cache();
        let m = MacAddr([2, 0, 0, 0, 0, 1]);
        a.set_clock(10);
        assert!(a.set_host(1, HOST, m));
        for t in 11..10 + REACHABLE_S {
            assert_eq!(sweep(&a, t), vec![], "at {t}");
        }
        assert_eq!(
            sweep(&a, 10 + REACHABLE_S),
            vec![Event::Expired {
                port: 1,
                ip: HOST,
                mac: m,
                age_s: REACHABLE_S
            }]
        );
        assert_eq!(a.host(1, HOST), None);
        assert_eq!(sweep(&a, 11 + REACHABLE_S), vec![], "reported once");
    }

    #[test]
    fn a_next_hop_in_use_is_re_resolved_before_it_expires_and_kept_when_answered() {
        let a = cache();
        let s = a.slot(0, GW).unwrap();
        let m = MacAddr([2, 0, 0, 0, 0, 2]);
        a.set_clock(1);
        a.set(s, m);
        let mut refreshes = Vec::new();
        for t in 2..1 + REFRESH_S + 12 {
            a.set_clock(t);
            assert_eq!(a.get(s), Some(m), "forwarding uses it at {t}");
            for e in sweep(&a, t) {
                assert_eq!(e, Event::Refresh { port: 0, ip: GW });
                refreshes.push(t);
            }
        }
        assert_eq!(
            refreshes,
            [1 + REFRESH_S, 1 + REFRESH_S + 5, 1 + REFRESH_S + 10]
        );
        // The worker takes the request once.
        assert_eq!(a.take_refresh().collect::<Vec<_>>(), [(0, GW)]);
        assert_eq!(a.take_refresh().count(), 0);
        // The gateway answers: confirmed again, no expiry at the old deadline.
        let t = 1 + REFRESH_S + 12;
        a.set_clock(t);
        assert!(!a.set(s, m), "the same MAC renews it without a change");
        for t in t..1 + REACHABLE_S + 10 {
            assert!(sweep(&a, t).is_empty(), "at {t}");
        }
        assert_eq!(
            a.neighbors(1 + REACHABLE_S + 10)[0].age_s,
            Some(REACHABLE_S - REFRESH_S - 2)
        );
    }

    #[test]
    fn an_entry_unused_near_expiry_is_not_refreshed() {
        let a = cache();
        a.set_clock(1);
        a.set_host(1, HOST, MacAddr([2, 0, 0, 0, 0, 3]));
        a.set_clock(5);
        a.host(1, HOST);
        for t in 2..1 + REACHABLE_S {
            assert!(sweep(&a, t).is_empty(), "used long ago: no refresh at {t}");
        }
        assert!(matches!(
            sweep(&a, 1 + REACHABLE_S)[..],
            [Event::Expired { .. }]
        ));
    }

    #[test]
    fn neighbors_list_learned_entries_with_ages_and_unresolved_gateways() {
        let a = cache();
        a.set_clock(3);
        let m = MacAddr([2, 0, 0, 0, 0, 4]);
        a.set_host(1, HOST, m);
        let n = a.neighbors(10);
        assert_eq!(n.len(), 2);
        assert_eq!(
            (n[0].ip, n[0].mac, n[0].gateway, n[0].age_s),
            (GW, None, true, None)
        );
        assert_eq!(
            (n[1].ip, n[1].mac, n[1].gateway, n[1].age_s),
            (HOST, Some(m), false, Some(7))
        );
        // Ages survive a rebuild.
        let b = cache();
        b.inherit(&a);
        assert_eq!(b.clock(), 3);
        assert_eq!(b.neighbors(10)[1].age_s, Some(7));
    }
}
