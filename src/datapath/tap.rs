//! Live trace and capture (`anygate ctl trace`, `ctl capture`): the management thread arms a
//! worker's tap with a filter; while it is armed, the worker copies the packets of a burst as
//! received, and after the pipeline records each matching one (its first SNAP bytes, port,
//! verdict and note) into a fixed-size per-worker ring the management thread drains. A full
//! ring loses the record (counted), never blocks. Disarmed, the cost is one load and one
//! predictable branch per burst.
use super::context::Note;
use super::pipeline::Pipeline;
use super::verdict::Verdict;
use super::BURST;
use crate::packet::PacketBuf;
use crate::route::Snapshot;
use crossbeam::queue::ArrayQueue;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of each packet kept (the snap length of a capture); longer packets are cut.
pub const SNAP: usize = 2048;
/// Records each worker's ring holds (about 2.2 KiB each, 560 KiB per worker).
pub const RING: usize = 256;
/// "Any port" / "any tunnel" in a filter.
const ANY: u16 = u16::MAX;

/// What an armed tap records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every matching packet.
    All = 1,
    /// Only dropped packets (and those answered with an ICMP error).
    Drops = 2,
}

/// A tap's filter, packed into one word so that a worker reads it with one load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter {
    pub mode: Mode,
    /// Received on this port index.
    pub port: Option<u16>,
    /// Decapsulated from or encapsulated into this tunnel index.
    pub tunnel: Option<u16>,
    /// At most this many records per worker per session.
    pub count: u16,
    /// Tells one session from the next, so a worker restarts its count (14 bits).
    pub session: u16,
}

impl Filter {
    fn pack(self) -> u64 {
        (self.mode as u64)
            | (self.port.unwrap_or(ANY) as u64) << 2
            | (self.tunnel.unwrap_or(ANY) as u64) << 18
            | (self.count as u64) << 34
            | ((self.session & 0x3fff) as u64) << 50
    }

    fn unpack(w: u64) -> Option<Filter> {
        let mode = match w & 3 {
            1 => Mode::All,
            2 => Mode::Drops,
            _ => return None,
        };
        let field = |shift: u32| {
            let v = (w >> shift) as u16;
            (v != ANY).then_some(v)
        };
        Some(Filter {
            mode,
            port: field(2),
            tunnel: field(18),
            count: (w >> 34) as u16,
            session: ((w >> 50) & 0x3fff) as u16,
        })
    }

    /// Whether a packet received on `port` may match (checked once per burst).
    #[inline]
    pub fn port_matches(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }

    /// Whether a packet with this outcome matches (the port already did).
    #[inline]
    pub fn matches(&self, v: Verdict, note: &Note) -> bool {
        let dropped = matches!(v, Verdict::Drop(_)) || note.answered.is_some();
        let tunnel = self
            .tunnel
            .is_none_or(|t| note.ingress_tunnel == Some(t) || note.egress_tunnel == Some(t));
        tunnel && (self.mode == Mode::All || dropped)
    }
}

/// One packet as a worker saw it.
#[derive(Clone, Copy)]
pub struct Record {
    pub session: u16,
    pub port: u16,
    /// The snapshot generation the worker decided it on (tunnel and next-hop indices are its).
    pub generation: u64,
    /// When the burst was received, in TSC cycles.
    pub tsc: u64,
    pub verdict: Verdict,
    pub note: Note,
    /// The Ethernet header after the pipeline (the rewritten MACs of a forwarded packet).
    pub out_eth: [u8; 14],
    /// The packet's length as received, and the bytes kept (at most SNAP).
    pub orig_len: u32,
    pub len: u16,
    pub bytes: [u8; SNAP],
}

impl Record {
    pub fn data(&self) -> &[u8] {
        &self.bytes[..(self.len as usize).min(SNAP)]
    }
}

/// One worker's tap: the armed filter, the ring of records, the records lost to a full ring.
pub struct Tap {
    armed: AtomicU64,
    pub ring: ArrayQueue<Record>,
    lost: AtomicU64,
}

impl Default for Tap {
    fn default() -> Self {
        Tap {
            armed: AtomicU64::new(0),
            ring: ArrayQueue::new(RING),
            lost: AtomicU64::new(0),
        }
    }
}

impl Tap {
    /// Arms the tap (management thread); records of an earlier session may still be queued.
    pub fn arm(&self, f: Filter) {
        self.armed.store(f.pack(), Ordering::Release);
    }
    pub fn disarm(&self) {
        self.armed.store(0, Ordering::Release);
    }
    /// The filter, when armed: once per burst.
    #[inline(always)]
    pub fn armed(&self) -> Option<Filter> {
        let w = self.armed.load(Ordering::Relaxed);
        if w == 0 {
            return None;
        }
        Filter::unpack(w)
    }
    /// Records lost to a full ring since the last call.
    pub fn take_lost(&self) -> u64 {
        self.lost.swap(0, Ordering::Relaxed)
    }
}

/// The pipeline over one received burst, behind the tap's check: disarmed, one load and one
/// predictable branch; armed, the burst is copied before and the matching packets recorded
/// after. The worker's path, and the pipeline benchmark's, so that the cost is measured.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn process<B: PacketBuf>(
    pipeline: &mut Pipeline,
    snap: &Snapshot,
    port: u16,
    pkts: &mut [B],
    verdicts: &mut [Verdict],
    tap: &Tap,
    rec: &mut Recorder,
    tsc: u64,
) {
    // perf/tap-cost builds once with ANYGATE_PERF_NO_TAP_CHECK set, for the A/B of this
    // check's cost: a constant there, so that build never reads the armed word.
    let armed = match option_env!("ANYGATE_PERF_NO_TAP_CHECK") {
        Some(_) => None,
        None => tap.armed(),
    };
    let staged = armed.is_some_and(|f| rec.stage(&f, port, pkts));
    pipeline.process(snap, port, pkts, verdicts);
    if let (true, Some(f)) = (staged, armed) {
        let at = (port, snap.generation, tsc);
        rec.record(tap, &f, at, pkts, verdicts, |i| pipeline.note_at(i));
    }
}

/// A worker's side: the copies of the current burst as received, and the count recorded in
/// this session. Allocated once when the worker starts.
pub struct Recorder {
    staged: Box<[[u8; SNAP]; BURST]>,
    lens: [(u32, u16); BURST],
    session: u16,
    recorded: u16,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            staged: Box::new([[0; SNAP]; BURST]),
            lens: [(0, 0); BURST],
            session: u16::MAX,
            recorded: 0,
        }
    }
}

impl Recorder {
    /// Copies a burst before the pipeline rewrites it. False when nothing of it is wanted.
    #[cold]
    #[inline(never)]
    pub fn stage<B: PacketBuf>(&mut self, f: &Filter, port: u16, pkts: &[B]) -> bool {
        if f.session != self.session {
            self.session = f.session;
            self.recorded = 0;
        }
        if !f.port_matches(port) || self.recorded >= f.count {
            return false;
        }
        for ((p, slot), len) in pkts.iter().zip(self.staged.iter_mut()).zip(&mut self.lens) {
            let d = p.as_ref();
            let n = d.len().min(SNAP);
            slot[..n].copy_from_slice(&d[..n]);
            *len = (d.len() as u32, n as u16);
        }
        true
    }

    /// Records the matching packets of the staged burst, now decided. `note(i)` is packet i's.
    #[cold]
    #[inline(never)]
    pub fn record<'n, B: PacketBuf>(
        &mut self,
        tap: &Tap,
        f: &Filter,
        (port, generation, tsc): (u16, u64, u64),
        pkts: &[B],
        verdicts: &[Verdict],
        note: impl Fn(usize) -> &'n Note,
    ) {
        let mut lost = 0;
        for (i, (p, v)) in pkts.iter().zip(verdicts).enumerate() {
            if self.recorded >= f.count {
                break;
            }
            let n = note(i);
            if !f.matches(*v, n) {
                continue;
            }
            let (orig_len, len) = self.lens[i.min(BURST - 1)];
            let mut r = Record {
                session: f.session,
                port,
                generation,
                tsc,
                verdict: *v,
                note: *n,
                out_eth: [0; 14],
                orig_len,
                len,
                bytes: self.staged[i.min(BURST - 1)],
            };
            let out = p.as_ref();
            let k = out.len().min(14);
            r.out_eth[..k].copy_from_slice(&out[..k]);
            self.recorded += 1;
            if tap.ring.push(r).is_err() {
                lost += 1;
            }
        }
        if lost > 0 {
            tap.lost.fetch_add(lost, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::{DropReason, VecBuf};

    fn filter(mode: Mode, count: u16) -> Filter {
        Filter {
            mode,
            port: Some(1),
            tunnel: None,
            count,
            session: 7,
        }
    }

    #[test]
    fn filters_round_trip_through_the_word() {
        let tap = Tap::default();
        assert_eq!(tap.armed(), None);
        for f in [
            filter(Mode::All, 5),
            Filter {
                mode: Mode::Drops,
                port: None,
                tunnel: Some(3),
                count: u16::MAX,
                session: 0x3fff,
            },
        ] {
            tap.arm(f);
            assert_eq!(tap.armed(), Some(f));
        }
        tap.disarm();
        assert_eq!(tap.armed(), None);
    }

    #[test]
    fn the_filter_matches_port_tunnel_and_drops() {
        let f = filter(Mode::All, 5);
        assert!(f.port_matches(1) && !f.port_matches(0));
        let fwd = Verdict::Forward(0);
        let drop = Verdict::Drop(DropReason::NoRoute);
        let plain = Note::default();
        assert!(f.matches(fwd, &plain) && f.matches(drop, &plain));
        let d = filter(Mode::Drops, 5);
        assert!(!d.matches(fwd, &plain) && d.matches(drop, &plain));
        let answered = Note {
            answered: Some(DropReason::TtlExceeded),
            ..Note::default()
        };
        assert!(d.matches(fwd, &answered), "answered with ICMP: dropped");
        let t = Filter {
            tunnel: Some(2),
            ..f
        };
        let via = |i, e| Note {
            ingress_tunnel: i,
            egress_tunnel: e,
            ..Note::default()
        };
        assert!(!t.matches(fwd, &plain));
        assert!(t.matches(fwd, &via(Some(2), None)) && t.matches(fwd, &via(None, Some(2))));
        assert!(!t.matches(fwd, &via(Some(1), Some(3))));
    }

    #[test]
    fn records_keep_the_packet_as_received_and_a_full_ring_counts_the_loss() {
        let tap = Tap::default();
        let mut rec = Recorder::default();
        let f = filter(Mode::Drops, u16::MAX);
        let big = vec![0xab; SNAP + 100];
        let mut pkts = vec![VecBuf::from_bytes(&[1; 60]), VecBuf::from_bytes(&big)];
        assert!(!rec.stage(&f, 0, &pkts), "another port");
        assert!(rec.stage(&f, 1, &pkts));
        // The pipeline rewrites the packets; the records keep them as received.
        pkts[0].as_mut()[..14].copy_from_slice(&[9; 14]);
        let v = [Verdict::Forward(0), Verdict::Drop(DropReason::NoRoute)];
        let notes = [Note::default(); 2];
        rec.record(&tap, &f, (1, 4, 99), &pkts, &v, |i| &notes[i]);
        assert_eq!(tap.ring.len(), 1, "only the drop");
        let r = tap.ring.pop().unwrap();
        assert_eq!((r.port, r.generation, r.tsc, r.session), (1, 4, 99, 7));
        assert_eq!(r.verdict, v[1]);
        assert_eq!((r.orig_len, r.data().len()), (SNAP as u32 + 100, SNAP));
        assert!(r.data().iter().all(|b| *b == 0xab));
        assert_eq!(r.out_eth, [0xab; 14]);

        // All, on a ring that fills: the rest are lost and counted, never waited for.
        let f = filter(Mode::All, u16::MAX);
        for _ in 0..RING {
            pkts[0].reset(&[1; 60]);
            rec.stage(&f, 1, &pkts);
            pkts[0].as_mut()[..14].copy_from_slice(&[9; 14]);
            rec.record(&tap, &f, (1, 4, 99), &pkts, &v, |i| &notes[i]);
        }
        assert_eq!(tap.ring.len(), RING);
        assert_eq!(tap.take_lost(), RING as u64);
        assert_eq!(tap.take_lost(), 0);
        let first = tap.ring.pop().unwrap();
        assert_eq!(&first.data()[..14], &[1; 14], "as received");
        assert_eq!(first.out_eth, [9; 14], "as sent");
    }

    #[test]
    fn a_worker_records_at_most_count_per_session() {
        let tap = Tap::default();
        let mut rec = Recorder::default();
        let pkts = vec![VecBuf::from_bytes(&[1; 60]); 3];
        let v = [Verdict::Forward(0); 3];
        let notes = [Note::default(); 3];
        let mut f = filter(Mode::All, 4);
        for _ in 0..3 {
            if rec.stage(&f, 1, &pkts) {
                rec.record(&tap, &f, (1, 0, 0), &pkts, &v, |i| &notes[i]);
            }
        }
        assert_eq!(tap.ring.len(), 4);
        f.session += 1;
        assert!(rec.stage(&f, 1, &pkts), "a new session counts afresh");
    }
}
