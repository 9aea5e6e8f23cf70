use super::*;
use std::sync::Arc;

fn key(n: u32) -> Key {
    Key {
        src: 0xc633_6400 | (n & 0xff),
        dst: 0x0a00_0000 | n,
        proto: crate::wire::ipv4::PROTO_UDP,
        ports: 53 << 16 | (n & 0xffff),
    }
}

#[test]
fn learn_then_lookup_then_refresh() {
    let t = Table::new(64, Timeouts::default());
    assert_eq!(t.capacity(), 64);
    assert_eq!(t.bytes(), 64 * 24);
    assert_eq!(t.lookup(&key(1)), None);
    assert_eq!(t.learn(&key(1), 0, 7, 0, 0), Learned::New);
    let f = t.lookup(&key(1)).expect("learned");
    assert_eq!((f.tunnel, f.epoch), (7, 0));
    assert_eq!(t.learn(&key(1), 0, 7, 0, 0), Learned::Refreshed);
    // Another tunnel now sends the same flow: it moves.
    assert_eq!(t.learn(&key(1), 0, 8, 0, 0), Learned::Moved);
    assert_eq!(t.lookup(&key(1)).map(|f| f.tunnel), Some(8));
    // The key is whole: a neighbour differing only in the protocol is another flow.
    let mut other = key(1);
    other.proto = crate::wire::ipv4::PROTO_TCP;
    assert_eq!(t.lookup(&other), None);
}

#[test]
fn idle_entries_expire_by_protocol_and_state() {
    let t = Table::new(64, Timeouts::default());
    t.set_now(100);
    let tcp = |n| Key {
        proto: crate::wire::ipv4::PROTO_TCP,
        ..key(n)
    };
    t.learn(&key(1), 0, 1, 0, 0); // UDP: 60 s
    t.learn(&tcp(2), 0, 1, 0, 0); // a SYN not answered: 30 s
    t.learn(&tcp(3), 0, 1, CONFIRMED, 0); // established: 300 s
    t.learn(&tcp(4), 0, 1, CONFIRMED | CLOSING, 0); // closing: 10 s
    t.set_now(109);
    assert_eq!(t.sweep(64), 0);
    t.set_now(110);
    assert_eq!(t.sweep(64), 1);
    assert!(t.lookup(&tcp(4)).is_none());
    t.set_now(130);
    assert_eq!(t.sweep(64), 1);
    assert!(t.lookup(&tcp(2)).is_none());
    // A refresh pushes the deadline back.
    let f = t.lookup(&key(1)).unwrap();
    assert!(t.touch(&f, 0, 0));
    t.set_now(189);
    assert_eq!(t.sweep(64), 0);
    t.set_now(190);
    assert_eq!(t.sweep(64), 1);
    assert!(t.lookup(&tcp(3)).is_some());
    t.set_now(400);
    assert_eq!(t.sweep(64), 1);
    assert_eq!(t.expired(), 4);
    assert_eq!(t.census(0, 2), (0, vec![0, 0]));
}

#[test]
fn sweep_is_bounded_and_resumes() {
    let t = Table::new(64, Timeouts::default());
    for n in 0..40 {
        t.learn(&key(n), 0, 0, 0, 0);
    }
    let (live, _) = t.census(0, 1);
    t.set_now(1000);
    let mut total = 0;
    for _ in 0..4 {
        total += t.sweep(16);
    }
    assert_eq!(total as usize, live);
}

/// A bucket full of unconfirmed flows gives way to a new one (the oldest goes); full of
/// confirmed ones, it refuses: a flood never evicts established flows.
#[test]
fn full_bucket_evicts_unconfirmed_only() {
    let t = Table::new(WAYS, Timeouts::default()); // one bucket
    t.set_now(10);
    for n in 0..WAYS as u32 {
        assert_eq!(t.learn(&key(n), 0, 0, CONFIRMED, 0), Learned::New);
    }
    assert_eq!(t.learn(&key(100), 0, 0, 0, 0), Learned::Refused);
    for n in 0..WAYS as u32 {
        assert!(t.lookup(&key(n)).is_some());
    }
    let t = Table::new(WAYS, Timeouts::default());
    t.set_now(10);
    for n in 0..WAYS as u32 {
        t.learn(&key(n), 0, 0, 0, 0);
        t.set_now(11 + n);
    }
    // key(0) is the oldest: it goes.
    assert_eq!(t.learn(&key(100), 0, 0, 0, 0), Learned::New);
    assert!(t.lookup(&key(0)).is_none());
    assert!(t.lookup(&key(100)).is_some());
    // The older ones give way in turn; then only flows seen this second are left, and
    // newcomers do not evict each other within it.
    for n in 101..108 {
        assert_eq!(t.learn(&key(n), 0, 0, 0, 0), Learned::New);
    }
    assert_eq!(t.learn(&key(108), 0, 0, 0, 0), Learned::Refused);
    assert!((100..108).all(|n| t.lookup(&key(n)).is_some()));
}

/// Two workers on real threads: one learns flows while the other looks up their return
/// packets and finds each flow's own tunnel, never another's or a torn entry, while the
/// management thread expires and the learner relearns.
#[test]
fn two_workers_and_a_sweeper() {
    const FLOWS: u32 = 4096;
    let t = Arc::new(Table::new(8192, Timeouts::default()));
    let tunnel_of = |n: u32| (n % 200) as u16;
    let learner = {
        let t = t.clone();
        std::thread::spawn(move || {
            for round in 0..20 {
                for n in 0..FLOWS {
                    t.learn(&key(n), 0, tunnel_of(n), 0, 0);
                }
                t.set_now(round * 100);
            }
        })
    };
    let reader = {
        let t = t.clone();
        std::thread::spawn(move || {
            let mut found = 0u64;
            for _ in 0..40 {
                for n in 0..FLOWS {
                    if let Some(f) = t.lookup(&key(n)) {
                        assert_eq!(f.tunnel, tunnel_of(n), "flow {n}");
                        found += 1;
                    }
                }
            }
            found
        })
    };
    let sweeper = {
        let t = t.clone();
        std::thread::spawn(move || {
            for _ in 0..200 {
                t.sweep(1024);
                std::thread::yield_now();
            }
        })
    };
    learner.join().unwrap();
    sweeper.join().unwrap();
    assert!(reader.join().unwrap() > 0);
    // Quiet now: every flow this thread holds learned is found by another thread too.
    let held: Vec<u32> = (0..FLOWS)
        .filter(|&n| t.learn(&key(n), 0, tunnel_of(n), 0, 0) != Learned::Refused)
        .collect();
    assert!(held.len() > FLOWS as usize * 9 / 10);
    let t2 = t.clone();
    let all = std::thread::spawn(move || {
        held.iter()
            .all(|&n| t2.lookup(&key(n)).map(|f| f.tunnel) == Some(tunnel_of(n)))
    });
    assert!(all.join().unwrap());
}

/// The management tick keeps the table's own clock: a table made late (at a reload) starts
/// at 0, so flows it learns before its first tick are not taken for old ones.
#[test]
fn the_tick_uses_the_tables_own_age() {
    let t = Table::new(64, Timeouts::default());
    t.learn(&key(1), 0, 0, 0, 0);
    assert_eq!(crate::arr::tick(&t), 0);
    assert_eq!(t.now(), 0);
    assert!(t.lookup(&key(1)).is_some());
}

/// The share of `load` × capacity random new flows (all seen in the same second, so none
/// gives way) that a table of 2^18 entries refuses.
fn refused_at(load: f64) -> f64 {
    let t = Table::new(1 << 18, Timeouts::default());
    let n = (load * t.capacity() as f64) as u64;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut refused = 0;
    for _ in 0..n {
        // xorshift64*: keys spread like real flows' would.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let k = Key {
            src: (r >> 32) as u32,
            dst: 0xc0a8_0000 | (r as u32 & 0xffff),
            proto: crate::wire::ipv4::PROTO_UDP,
            ports: (r >> 8) as u32,
        };
        refused += u64::from(t.learn(&k, 0, 0, 0, 0) == Learned::Refused);
    }
    refused as f64 / n as f64
}

/// Refusals by full buckets at 65, 80 and 90% load (`cargo test refusals -- --nocapture`
/// prints them; perf/RESULTS.md records them).
#[test]
fn refusals_by_load() {
    let r: Vec<f64> = [0.65, 0.80, 0.90].map(refused_at).to_vec();
    println!(
        "refused at 65% {:.4}%, 80% {:.4}%, 90% {:.4}%",
        100.0 * r[0],
        100.0 * r[1],
        100.0 * r[2]
    );
    assert!(r[0] <= r[1] && r[1] <= r[2], "{r:?}");
    // Two-choice hashing; one bucket per flow refused 2.9%, 6.7% and 10.1% of these.
    assert!(r[0] < 0.0005 && r[1] < 0.002 && r[2] < 0.015, "{r:?}");
}

/// Two buckets: new flows fill both evenly (the emptier one takes the next), each is found
/// wherever it went, and only with both full is a flow refused.
#[test]
fn new_flows_go_to_the_emptier_of_two_buckets() {
    let t = Table::new(2 * WAYS, Timeouts::default());
    t.set_now(10);
    for n in 0..2 * WAYS as u32 {
        assert_eq!(
            t.learn(&key(n), 0, 0, CONFIRMED, 0),
            Learned::New,
            "flow {n}"
        );
        let per_bucket = [t.empties(0), t.empties(1)];
        assert!(per_bucket[0].abs_diff(per_bucket[1]) <= 1, "{per_bucket:?}");
    }
    assert_eq!(t.learn(&key(1000), 0, 0, 0, 0), Learned::Refused);
    for n in 0..2 * WAYS as u32 {
        assert_eq!(t.lookup(&key(n)).map(|f| f.slot / WAYS < 2), Some(true));
    }
    // Each flow's buckets are two different ones whenever the table has two.
    assert!((0..64).all(|n| {
        let [a, b] = t.buckets(&key(n));
        a != b
    }));
}

/// Workers read `entries` and `mask` for every ARR packet; the management thread writes the
/// sweep's place every tick: they must sit in different 128-byte blocks (a cache line and
/// the one the adjacent-line prefetcher pairs with it).
#[test]
fn the_sweep_shares_no_line_with_what_workers_read() {
    let t = Table::new(64, Timeouts::default());
    let block = |p: *const u8| p as usize / 128;
    let sweep = std::ptr::addr_of!(*t.sweep) as *const u8;
    for read in [
        std::ptr::addr_of!(t.entries) as *const u8,
        std::ptr::addr_of!(t.mask) as *const u8,
        std::ptr::addr_of!(t.now) as *const u8,
    ] {
        assert_ne!(block(read), block(sweep));
    }
    assert!(std::mem::size_of::<CachePadded<Sweep>>() >= 128);
}
