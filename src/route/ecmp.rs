//! ECMP: a flow hash over addresses and ports, and per-group redirection tables.
//!
//! A group's table has 4096 slots, each naming one member; a packet takes the slot its flow
//! hash selects, so the choice costs one load. The slots are dealt by weighted rendezvous
//! hashing (highest random weight): each slot goes to the member with the best score
//! `weight / -ln(u)`, where `u` hashes (slot, member identity) into (0, 1). So:
//! - shares follow the weights (each slot is won with probability weight / total);
//! - when a member leaves, only its own slots change hands, and when it returns it takes back
//!   exactly those: no other flow moves;
//! - the table depends only on the members, their weights and stable identities (a tunnel's
//!   name, a gateway's address), never on history or a per-process seed, so every server
//!   with the same routes sends a flow the same way.

/// log2 of the slots per group.
pub const TABLE_BITS: u32 = 12;
pub const TABLE_SIZE: usize = 1 << TABLE_BITS;

/// murmur3's 64-bit finaliser: a fixed, well-mixed permutation.
#[inline(always)]
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The flow hash: source and destination addresses, plus `ports` (source port << 16 |
/// destination port) for TCP and UDP first fragments, 0 otherwise. Nothing else, and no seed.
#[inline(always)]
pub fn flow_hash(src: u32, dst: u32, ports: u32) -> u32 {
    let h =
        mix(((src as u64) << 32 | dst as u64) ^ (ports as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    (h >> 32) as u32
}

/// A stable identity for a member, from bytes that name it the same way on every server.
pub fn member_key(name: &[u8]) -> u64 {
    // FNV-1a, then mixed: deterministic across processes and builds.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name {
        h = (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// Deals the slots among `(key, weight)` members; returns, for each slot, the member index.
pub fn build_table(members: &[(u64, u32)]) -> Vec<u16> {
    (0..TABLE_SIZE as u64)
        .map(|slot| {
            let mut best = (f64::NEG_INFINITY, 0u16);
            for (i, &(key, weight)) in members.iter().enumerate() {
                // u in (0, 1): 53 random bits, never 0 or 1.
                let bits = mix(key ^ mix(slot.wrapping_add(0x5851_f42d_4c95_7f2d))) >> 11;
                let u = (bits as f64 + 0.5) / (1u64 << 53) as f64;
                let score = weight as f64 / -u.ln();
                if score > best.0 {
                    best = (score, i as u16);
                }
            }
            best.1
        })
        .collect()
}

/// A group's slots dealt (`build_table`), in fixed-size arrays (a slot indexes them without
/// a bounds test): a byte a slot for groups of up to 256 members, every one in practice, so
/// that the table a packet's slot is read from is 4 KiB, not 8 (its line missed L1 on 0.6
/// packets in 1 on the full path, callgrind); two bytes beyond.
#[derive(Debug, Clone)]
pub enum Table {
    Narrow(Box<[u8; TABLE_SIZE]>),
    Wide(Box<[u16; TABLE_SIZE]>),
}

impl Table {
    /// The slots dealt among `(key, weight)` members.
    pub fn build(members: &[(u64, u32)]) -> Table {
        let slots = build_table(members);
        if members.len() <= 256 {
            let mut t = Box::new([0u8; TABLE_SIZE]);
            for (d, s) in t.iter_mut().zip(&slots) {
                *d = *s as u8;
            }
            Table::Narrow(t)
        } else {
            let mut t = Box::new([0u16; TABLE_SIZE]);
            for (d, s) in t.iter_mut().zip(&slots) {
                *d = *s;
            }
            Table::Wide(t)
        }
    }

    /// The member index of the slot flow hash `hash` selects.
    #[inline(always)]
    pub fn member(&self, hash: u32) -> usize {
        match self {
            Table::Narrow(t) => usize::from(t[slot(hash)]),
            Table::Wide(t) => usize::from(t[slot(hash)]),
        }
    }
}

/// The slot a flow hash selects.
#[inline(always)]
pub fn slot(hash: u32) -> usize {
    (hash >> (32 - TABLE_BITS)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(table: &[u16], n: usize) -> Vec<f64> {
        let mut c = vec![0usize; n];
        for m in table {
            c[*m as usize] += 1;
        }
        c.iter().map(|x| *x as f64 / table.len() as f64).collect()
    }

    #[test]
    fn weights_shape_the_shares() {
        // The seed's example: 64/128/192/255.
        let m: Vec<(u64, u32)> = [("T1", 64), ("T2", 128), ("T3", 192), ("T4", 255)]
            .iter()
            .map(|(n, w)| (member_key(n.as_bytes()), *w))
            .collect();
        let s = shares(&build_table(&m), 4);
        let total = 64.0 + 128.0 + 192.0 + 255.0;
        for (got, w) in s.iter().zip([64.0, 128.0, 192.0, 255.0]) {
            assert!(
                (got - w / total).abs() < 0.025,
                "share {got} for weight {w}"
            );
        }
    }

    #[test]
    fn only_the_leaving_members_slots_move_and_they_come_back() {
        let names = ["a", "b", "c", "d"];
        let keys: Vec<u64> = names.iter().map(|n| member_key(n.as_bytes())).collect();
        let all: Vec<(u64, u32)> = keys.iter().map(|k| (*k, 100)).collect();
        let full = build_table(&all);
        // "c" leaves: remaining members keep their indices 0, 1, 3 -> 0, 1, 2.
        let without: Vec<(u64, u32)> = vec![all[0], all[1], all[3]];
        let less = build_table(&without);
        let back = [0u16, 1, 3];
        let mut moved = 0;
        for (f, l) in full.iter().zip(&less) {
            if *f == 2 {
                moved += 1;
            } else {
                assert_eq!(*f, back[*l as usize], "a flow of a staying member moved");
            }
        }
        assert!(
            (moved as f64 / TABLE_SIZE as f64 - 0.25).abs() < 0.03,
            "moved {moved}"
        );
        assert_eq!(
            build_table(&all),
            full,
            "recovery restores the table exactly"
        );
    }

    #[test]
    fn tables_narrow_and_wide_pick_as_the_dealt_slots() {
        for n in [2usize, 3, 256, 257, 300] {
            let m: Vec<(u64, u32)> = (0..n)
                .map(|i| (member_key(format!("m{i}").as_bytes()), 1 + i as u32 % 7))
                .collect();
            let slots = build_table(&m);
            let t = Table::build(&m);
            assert_eq!(matches!(t, Table::Narrow(_)), n <= 256);
            for s in 0..TABLE_SIZE as u32 {
                let hash = (s << (32 - TABLE_BITS)) | (s.wrapping_mul(0x9e37) & 0xfffff);
                assert_eq!(
                    t.member(hash),
                    usize::from(slots[slot(hash)]),
                    "{n} members"
                );
            }
        }
    }

    /// At the byte's edge: the last member of a 256-member group (index 255) and of a
    /// 257-member one (index 256, past a byte) take their slots; members of weight 0 none.
    #[test]
    fn the_last_members_at_the_byte_edge_are_picked() {
        for n in [255usize, 256, 257] {
            let m: Vec<(u64, u32)> = (0..n)
                .map(|i| {
                    (
                        member_key(format!("gw{i}").as_bytes()),
                        u32::from(i % 5 != 2) * 40,
                    )
                })
                .collect();
            let t = Table::build(&m);
            let mut won = vec![0usize; n];
            for s in 0..TABLE_SIZE as u32 {
                won[t.member(s << (32 - TABLE_BITS))] += 1;
            }
            assert_eq!(won.iter().sum::<usize>(), TABLE_SIZE);
            assert!(won[n - 1] > 0, "{n}: the last member has no slot");
            assert!((0..n).filter(|i| i % 5 == 2).all(|i| won[i] == 0), "{n}");
        }
    }

    #[test]
    fn flow_hash_is_fixed_and_spreads() {
        // A fixed value: the same on every server and every run.
        assert_eq!(
            flow_hash(0x0a000001, 0xc0a80001, (1234 << 16) | 80),
            flow_hash(0x0a000001, 0xc0a80001, (1234 << 16) | 80)
        );
        assert_ne!(flow_hash(1, 2, 3), flow_hash(1, 2, 4));
        let mut buckets = [0u32; 16];
        for p in 0..16_000u32 {
            buckets[slot(flow_hash(0x0a000001, 0xc0a80001, p)) % 16] += 1;
        }
        assert!(
            buckets.iter().all(|b| (800..1200).contains(b)),
            "{buckets:?}"
        );
    }
}
