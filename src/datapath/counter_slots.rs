//! Counter slots: per-rule and per-tunnel counters follow what they count across reloads.
//!
//! Workers count into `rules[slot]` and `tunnels[slot]`, the snapshot mapping each rule and
//! tunnel position to its slot. The management thread assigns the slots when it builds a
//! snapshot: an identity (a rule's id or text, a tunnel's name) keeps its slot, so a worker
//! still on the old snapshot counts into the same place; a new identity takes a free slot that
//! no worker can still count into (its last owner left in a generation every worker has
//! taken) and records the slot's total as its base, so it reads from zero. With twice as many
//! slots as items, a reload finds one as long as workers keep up.
use super::counters::{Counters, TunnelCounters, RULE_SLOTS, TUNNEL_SLOTS};
use std::collections::{HashMap, VecDeque};

/// A per-slot total, read relative to the total its owner started from.
pub trait Tally: Copy + Default {
    /// `self - base`, field by field.
    fn since(&self, base: &Self) -> Self;
}

impl Tally for [u64; 2] {
    fn since(&self, base: &Self) -> Self {
        [
            self[0].saturating_sub(base[0]),
            self[1].saturating_sub(base[1]),
        ]
    }
}

impl Tally for TunnelCounters {
    fn since(&self, base: &Self) -> Self {
        let mut t = TunnelCounters {
            rx_packets: self.rx_packets.saturating_sub(base.rx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(base.rx_bytes),
            tx_packets: self.tx_packets.saturating_sub(base.tx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(base.tx_bytes),
            drops: self.drops,
            arr_learned: self.arr_learned.saturating_sub(base.arr_learned),
            arr_refused: self.arr_refused.saturating_sub(base.arr_refused),
            arr_returned: self.arr_returned.saturating_sub(base.arr_returned),
        };
        for (d, b) in t.drops.iter_mut().zip(&base.drops) {
            *d = d.saturating_sub(*b);
        }
        t
    }
}

/// The slots of one kind of counted item (rules or tunnels).
#[derive(Debug, Clone)]
pub struct Slots<T> {
    /// Identity and slot of each item, by its position in the config.
    keys: Vec<String>,
    by_index: Vec<u16>,
    /// Unowned slots with the generation from which no snapshot maps them, oldest first.
    free: VecDeque<(u16, u64)>,
    /// Each slot's raw total when its owner took it.
    bases: Vec<T>,
}

impl<T: Tally> Slots<T> {
    /// `n` slots (at most 65,536), none owned.
    pub fn new(n: usize) -> Self {
        Slots {
            keys: Vec::new(),
            by_index: Vec::new(),
            free: (0..n).map(|s| (s as u16, 0)).collect(),
            bases: vec![T::default(); n],
        }
    }

    /// The slots for the items `keys` (identities, by position) of snapshot `generation`,
    /// while every worker has taken generation `acked`; `raw` holds the totals by slot (read
    /// after `acked`). Err: the position of the first item no slot was free for.
    pub fn assign<K: AsRef<str>>(
        &self,
        keys: &[K],
        generation: u64,
        acked: u64,
        raw: &[T],
    ) -> Result<Slots<T>, usize> {
        let mut old: HashMap<&str, u16> = self
            .keys
            .iter()
            .map(String::as_str)
            .zip(self.by_index.iter().copied())
            .collect();
        let mut by_index: Vec<Option<u16>> = keys.iter().map(|k| old.remove(k.as_ref())).collect();
        let mut next = Slots {
            keys: keys.iter().map(|k| k.as_ref().to_owned()).collect(),
            by_index: Vec::with_capacity(keys.len()),
            free: self.free.clone(),
            bases: self.bases.clone(),
        };
        // Workers on older snapshots may count into a dropped item's slot until `generation`.
        for (k, s) in self.keys.iter().zip(&self.by_index) {
            if old.contains_key(k.as_str()) {
                next.free.push_back((*s, generation));
            }
        }
        for (i, slot) in by_index.iter_mut().enumerate() {
            if slot.is_some() {
                continue;
            }
            match next.free.front() {
                Some(&(s, freed)) if freed <= acked => {
                    next.free.pop_front();
                    if let Some(b) = next.bases.get_mut(s as usize) {
                        *b = raw.get(s as usize).copied().unwrap_or_default();
                    }
                    *slot = Some(s);
                }
                _ => return Err(i),
            }
        }
        next.by_index = by_index.into_iter().flatten().collect();
        Ok(next)
    }

    /// The slot item `i` counts into; past the items, one no counter has (nothing counted).
    #[inline(always)]
    pub fn slot(&self, i: usize) -> usize {
        self.by_index.get(i).map_or(usize::MAX, |&s| s as usize)
    }

    /// Each item's count since it took its slot, by position, from `raw` totals by slot.
    pub fn read<'a>(&'a self, raw: &'a [T]) -> impl Iterator<Item = T> + 'a {
        self.by_index.iter().map(|&s| {
            let s = s as usize;
            match (raw.get(s), self.bases.get(s)) {
                (Some(r), Some(b)) => r.since(b),
                _ => T::default(),
            }
        })
    }
}

/// The rule and tunnel slots of one snapshot.
#[derive(Debug, Clone)]
pub struct CounterSlots {
    pub rules: Slots<[u64; 2]>,
    pub tunnels: Slots<TunnelCounters>,
}

impl Default for CounterSlots {
    fn default() -> Self {
        CounterSlots {
            rules: Slots::new(RULE_SLOTS),
            tunnels: Slots::new(TUNNEL_SLOTS),
        }
    }
}

impl CounterSlots {
    /// The slots of snapshot `generation` with these rule identities and tunnel names; see
    /// [`Slots::assign`]. `raw`: the totals over workers (None: nothing counted yet).
    pub fn next<R: AsRef<str>, N: AsRef<str>>(
        &self,
        rules: &[R],
        tunnels: &[N],
        generation: u64,
        acked: u64,
        raw: Option<&Counters>,
    ) -> Result<CounterSlots, String> {
        let exhausted = |path: &str, i: usize| {
            format!(
                "{path}[{i}]: no free counter slot (the others are in use or still counted into \
                 by a worker on table generation {acked} or older); reload again in a moment"
            )
        };
        Ok(CounterSlots {
            rules: self
                .rules
                .assign(rules, generation, acked, raw.map_or(&[], |c| &c.rules))
                .map_err(|i| exhausted("firewall.rules", i))?,
            tunnels: self
                .tunnels
                .assign(tunnels, generation, acked, raw.map_or(&[], |c| &c.tunnels))
                .map_err(|i| exhausted("tunnels", i))?,
        })
    }

    /// `raw` (totals by slot) with the rule and tunnel counters by position in the config this
    /// snapshot was built from, each since its item took the slot; the rest zero.
    pub fn by_position(&self, raw: &Counters) -> Counters {
        let mut c = raw.clone();
        c.rules.fill([0; 2]);
        c.tunnels.fill(TunnelCounters::default());
        for (d, v) in c.rules.iter_mut().zip(self.rules.read(&raw.rules)) {
            *d = v;
        }
        for (d, v) in c.tunnels.iter_mut().zip(self.tunnels.read(&raw.tunnels)) {
            *d = v;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(n: usize, v: &[(usize, u64)]) -> Vec<[u64; 2]> {
        let mut r = vec![[0; 2]; n];
        for &(s, p) in v {
            r[s] = [p, p * 100];
        }
        r
    }

    fn counts(s: &Slots<[u64; 2]>, r: &[[u64; 2]]) -> Vec<u64> {
        s.read(r).map(|c| c[0]).collect()
    }

    #[test]
    fn first_assignment_is_by_position() {
        let s = Slots::<[u64; 2]>::new(8)
            .assign(&["a", "b", "c"], 1, 0, &[])
            .unwrap();
        assert_eq!(
            (0..4).map(|i| s.slot(i)).collect::<Vec<_>>(),
            [0, 1, 2, usize::MAX]
        );
    }

    #[test]
    fn an_identity_keeps_its_slot_and_count_when_moved() {
        let s = Slots::<[u64; 2]>::new(8)
            .assign(&["a", "b"], 1, 0, &[])
            .unwrap();
        let r = raw(8, &[(0, 7), (1, 9)]);
        let t = s.assign(&["new", "b", "a"], 2, 1, &r).unwrap();
        assert_eq!((t.slot(1), t.slot(2)), (1, 0));
        assert_eq!(counts(&t, &r), [0, 9, 7], "the new item starts at zero");
        assert_eq!(t.read(&r).nth(1), Some([9, 900]));
    }

    #[test]
    fn a_freed_slot_is_reused_only_after_every_worker_took_the_generation_that_freed_it() {
        let s = Slots::<[u64; 2]>::new(3)
            .assign(&["a", "b"], 1, 1, &[])
            .unwrap();
        // Generation 2 drops `a`: slot 0 is free from generation 2 on; slot 2 never used.
        let s = s.assign(&["b"], 2, 1, &raw(3, &[(0, 5)])).unwrap();
        // Generation 3 adds `c` and `d` while a worker is still on generation 1.
        let r = raw(3, &[(0, 6), (1, 1)]);
        assert_eq!(s.assign(&["b", "c", "d"], 3, 1, &r).unwrap_err(), 2);
        let t = s.assign(&["b", "c"], 3, 1, &r).unwrap();
        assert_eq!(t.slot(1), 2, "the never used slot, not `a`'s");
        // Every worker took generation 2: `a`'s slot is reused, from its total then.
        let t = s.assign(&["b", "c", "d"], 3, 2, &r).unwrap();
        assert_eq!((t.slot(1), t.slot(2)), (2, 0));
        let later = raw(3, &[(0, 10), (1, 4), (2, 3)]);
        assert_eq!(
            counts(&t, &later),
            [4, 3, 4],
            "d counts from 6, a's last total"
        );
    }

    #[test]
    fn a_removed_then_readded_identity_starts_at_zero() {
        let s = Slots::<[u64; 2]>::new(4).assign(&["a"], 1, 1, &[]).unwrap();
        let s = s.assign(&[] as &[&str], 2, 1, &raw(4, &[(0, 5)])).unwrap();
        let r = raw(4, &[(0, 5)]);
        let t = s.assign(&["a"], 3, 2, &r).unwrap();
        assert_eq!(counts(&t, &r), [0]);
    }

    #[test]
    fn exhaustion_names_the_item() {
        let cs = CounterSlots::default();
        let rules: Vec<String> = (0..RULE_SLOTS + 1).map(|i| format!("r{i}")).collect();
        let e = cs.next(&rules, &[] as &[&str], 1, 0, None).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "firewall.rules[{RULE_SLOTS}]: no free counter slot"
            )),
            "{e}"
        );
        let names: Vec<String> = (0..TUNNEL_SLOTS + 1).map(|i| format!("t{i}")).collect();
        let e = cs.next(&[] as &[&str], &names, 1, 0, None).unwrap_err();
        assert!(e.starts_with(&format!("tunnels[{TUNNEL_SLOTS}]:")), "{e}");
    }

    #[test]
    fn by_position_reads_tunnels_through_their_slots_from_their_bases() {
        let cs = CounterSlots::default()
            .next(&[] as &[&str], &["x", "y"], 1, 0, None)
            .unwrap();
        let mut raw = Counters::default();
        raw.tunnels[0].rx_packets = 3;
        raw.tunnels[1].drops[1] = 2;
        raw.rules[5] = [1, 1];
        let cs = cs
            .next(&[] as &[&str], &["y", "z", "x"], 2, 1, Some(&raw))
            .unwrap();
        let mut later = raw.clone();
        later.tunnels[0].rx_packets = 4;
        later.tunnels[2].tx_packets = 8;
        let c = cs.by_position(&later);
        assert_eq!(c.tunnels[0].drops[1], 2);
        assert_eq!(c.tunnels[1].tx_packets, 8);
        assert_eq!(c.tunnels[2].rx_packets, 4);
        assert_eq!(c.tunnels[3], TunnelCounters::default());
        assert_eq!(c.rules[5], [0, 0], "no rule is configured");
    }
}
