//! The `dpdk` wrapper's ownership rules, on a real EAL in this test process (one EAL per
//! process, so this file holds one test): a port's id is claimed once, its queue handles are
//! handed out once and keep the device open, a port cannot be restarted under its queues, and
//! a mempool with mbufs out (or lcores that may cache them) is left allocated rather than
//! freed.
use anygate::dpdk::{self, Eal, MbufArray, Mempool, Port, PortSettings};
use std::sync::Arc;

fn settings(rx: u16, tx: u16) -> PortSettings {
    PortSettings {
        rx_queues: rx,
        tx_queues: tx,
        rx_desc: 64,
        tx_desc: 64,
        mtu: 1500,
        mac: None,
    }
}

/// Whether a pool named `name` still exists: creating another of that name fails if so.
fn pool_exists(eal: &Eal, name: &str) -> bool {
    Mempool::new(eal, name, 63, 0, eal.socket_id()).is_err()
}

#[test]
fn ports_queues_and_pools_enforce_their_ownership() {
    let core = core_affinity::get_core_ids().unwrap_or_default()[0].id;
    let args: Vec<String> = [
        "anygate-test",
        "-l",
        &core.to_string(),
        "--no-huge",
        "-m",
        "128",
        "--no-pci",
        "--file-prefix",
        &format!("agown-{}", std::process::id()),
        "--log-level",
        "lib.eal:warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let eal = Eal::init(&args).expect("EAL");
    for dev in ["net_null0", "net_null1"] {
        dpdk::probe_device(&eal, dev).unwrap();
    }
    let pool = Arc::new(Mempool::new(&eal, "own_pkt", 1023, 0, eal.socket_id()).unwrap());

    // One Port per device.
    let id0 = dpdk::port_id_by_name(&eal, "net_null0").unwrap();
    let mut p0 = Port::configure(id0, "p0", &settings(2, 1), &pool).unwrap();
    let again = Port::configure(id0, "p0 again", &settings(1, 1), &pool);
    assert!(
        again
            .as_ref()
            .err()
            .unwrap()
            .to_string()
            .contains("already configured"),
        "{:?}",
        again.err()
    );

    // Queue handles: every configured queue, once.
    let (mut rxq, txq) = p0.take_queues().unwrap();
    assert_eq!((rxq.len(), txq.len()), (2, 1));
    assert!(p0.take_queues().is_none(), "queues are handed out once");
    // Not (re)started under its queues; once they are gone, it may start.
    let e = p0.start().unwrap_err();
    assert!(e.to_string().contains("queues are in use"), "{e}");
    drop(txq);
    let q1 = rxq.pop().unwrap();
    drop(q1);
    let mut q0 = rxq.pop().unwrap();
    drop(q0);
    p0.start().unwrap();
    drop(p0);
    // Closed: net_null releases its port on close, and the id is free to claim again.
    assert!(dpdk::port_id_by_name(&eal, "net_null0").is_err());

    // A queue handle keeps its port open and its pool alive after both are dropped.
    let id1 = dpdk::port_id_by_name(&eal, "net_null1").unwrap();
    let mut p1 = Port::configure(id1, "p1", &settings(1, 1), &pool).unwrap();
    p1.start().unwrap();
    let (mut rxq, _txq) = p1.take_queues().unwrap();
    q0 = rxq.pop().unwrap();
    drop(p1);
    drop(pool);
    let mut burst: MbufArray<32> = MbufArray::new();
    let mut got = 0;
    for _ in 0..100 {
        got += q0.rx(&mut burst);
        burst.free_all();
    }
    assert!(got > 0, "net_null still delivers through the handle");
    assert!(
        dpdk::port_id_by_name(&eal, "net_null1").is_ok(),
        "still open"
    );
    // Received mbufs outlive the port and the pool: the pool, dropped with the port's last
    // handle while they are out, is left allocated, and they stay valid.
    assert!(q0.rx(&mut burst) > 0);
    drop(q0);
    drop(_txq);
    assert!(
        dpdk::port_id_by_name(&eal, "net_null1").is_err(),
        "closed with its last handle"
    );
    assert!(
        pool_exists(&eal, "own_pkt"),
        "left allocated while mbufs are out"
    );
    let len = burst.as_mut_slice()[0].as_ref().len();
    burst.as_mut_slice()[0].as_mut()[..len].fill(0);
    drop(burst);

    // A pool whose mbuf is still out is left allocated: the mbuf stays usable.
    let pool = Mempool::new(&eal, "own_out", 63, 0, eal.socket_id()).unwrap();
    let mut m = pool.alloc().unwrap();
    drop(pool);
    assert!(
        pool_exists(&eal, "own_out"),
        "left allocated while an mbuf is out"
    );
    m.append(60).unwrap().fill(0xab);
    assert_eq!(m.as_ref()[59], 0xab);
    drop(m);

    // A pool dropped while a registered lcore lives (it may be caching mbufs) is left too.
    let pool = Mempool::new(&eal, "own_lcore", 63, 8, eal.socket_id()).unwrap();
    let (reg_tx, reg_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let e2 = eal.clone();
    let t = std::thread::spawn(move || {
        let r = dpdk::LcoreRegistration::register(&e2).unwrap();
        reg_tx.send(()).unwrap();
        done_rx.recv().unwrap();
        drop(r);
    });
    reg_rx.recv().unwrap();
    drop(pool);
    assert!(pool_exists(&eal, "own_lcore"));
    done_tx.send(()).unwrap();
    t.join().unwrap();

    // With every mbuf home, no lcore registered, on the main lcore: freed.
    let pool = Mempool::new(&eal, "own_home", 63, 8, eal.socket_id()).unwrap();
    let ms: Vec<_> = (0..40).map(|_| pool.alloc().unwrap()).collect();
    drop(ms);
    drop(pool);
    assert!(!pool_exists(&eal, "own_home"));
}
