//! The pipeline's per-worker state and its entry point: a burst in, a verdict per packet out.
//! The stages themselves are in `stages/`, their order in `graph`.
use super::context::{Ctx, Live, Note};
use super::counters::Counters;
use super::verdict::{DropReason, Verdict};
use super::{graph, BURST};
use crate::health::Answer;
use crate::lpm::View;
use crate::packet::PacketBuf;
use crate::route::Snapshot;

/// Addresses whose MAC a burst found unresolved, for the worker to ARP for.
const ARP_WANTS: usize = 8;
/// Probe answers held between bursts: a burst can be all answers.
const ANSWERS: usize = BURST;

/// The state stages keep across packets and bursts, besides the counters. Nothing in here
/// allocates after `new`.
pub struct State {
    /// (port, address) pairs to ARP for.
    arp_wants: [(u16, u32); ARP_WANTS],
    n_arp_wants: usize,
    /// Health probe answers recognised since the worker last took them.
    answers: [Answer; ANSWERS],
    n_answers: usize,
    /// TSC (or nanoseconds, in trace) and its rate, set per burst.
    pub now: u64,
    pub hz: u64,
    pub icmp_tokens: u64,
    pub icmp_refilled: Option<u64>,
    ip_id: u16,
    /// The punt rate limit's bucket.
    pub punt: super::punt::Bucket,
}

impl State {
    fn new() -> Self {
        State {
            arp_wants: [(0, 0); ARP_WANTS],
            n_arp_wants: 0,
            answers: [Answer {
                seq: 0,
                via_tunnel: None,
                tsc: 0,
            }; ANSWERS],
            n_answers: 0,
            now: 0,
            hz: 0,
            icmp_tokens: 0,
            icmp_refilled: None,
            ip_id: 0,
            punt: Default::default(),
        }
    }

    pub fn want_arp(&mut self, port: u16, ip: u32) {
        let w = (port, ip);
        if self.n_arp_wants < ARP_WANTS && !self.arp_wants[..self.n_arp_wants].contains(&w) {
            self.arp_wants[self.n_arp_wants] = w;
            self.n_arp_wants += 1;
        }
    }

    /// Records a probe answer for the worker to hand on; false when the array is full (the
    /// record is lost, never the packet's accounting).
    pub fn push_answer(&mut self, a: Answer) -> bool {
        let Some(slot) = self.answers.get_mut(self.n_answers) else {
            return false;
        };
        *slot = a;
        self.n_answers += 1;
        true
    }

    /// The IP ID of the next outer header sent without DF.
    pub fn next_ip_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }
}

/// One burst as the stages see it.
pub struct Burst<'a, B> {
    /// Crossings the firewall's default decided in this burst, and (`fw_default_bytes`) their
    /// bytes: added to `counters.firewall_default` when the burst ends (`finish`). Declared
    /// apart: side by side, the two adds per crossing were made as one vector add (7
    /// instructions for 3; callgrind).
    pub fw_default_packets: u64,
    pub snap: &'a Snapshot,
    pub fib: View<'a>,
    pub in_port: u16,
    pub pkts: &'a mut [B],
    /// Indexed by a burst position (`Live` hands out positions below BURST): a fixed-size
    /// array needs no length load or bounds check per access, the rest is never read.
    pub cx: &'a mut [Ctx; BURST],
    pub counters: &'a mut Counters,
    pub st: &'a mut State,
    /// Packets that left the burst since the last `compact`.
    pub left: usize,
    /// What the burst holds, so a stage no packet needs is skipped with one test.
    pub needs: Needs,
    pub fw_default_bytes: u64,
}

/// Set by the stages that find the work, read by `graph` before the stages that do it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// A packet for an anycast endpoint: tunnel ingress (and the firewall).
    pub decap: bool,
    /// A packet to answer with an ICMP error.
    pub icmp_error: bool,
}

impl<'a, B> Burst<'a, B> {
    /// A burst of `pkts` received on `in_port`, nothing decided yet.
    fn new(
        snap: &'a Snapshot,
        fib: View<'a>,
        in_port: u16,
        pkts: &'a mut [B],
        p: &'a mut Pipeline,
    ) -> Self {
        Burst {
            fw_default_packets: 0,
            snap,
            fib,
            in_port,
            pkts,
            cx: &mut p.cx,
            counters: &mut p.counters,
            st: &mut p.st,
            left: 0,
            needs: Needs::default(),
            fw_default_bytes: 0,
        }
    }

    /// Adds what the burst counted apart to the counters: once, at its end.
    fn finish(self) {
        self.counters.firewall_default[0] += self.fw_default_packets;
        self.counters.firewall_default[1] += self.fw_default_bytes;
    }

    /// Packet `i` leaves the burst with verdict `v`.
    #[inline(always)]
    pub fn leave(&mut self, i: usize, v: Verdict) {
        self.cx[i].verdict = Some(v);
        self.left += 1;
    }
    #[inline(always)]
    pub fn drop(&mut self, i: usize, r: DropReason) {
        self.leave(i, Verdict::Drop(r));
    }
    #[inline(always)]
    pub fn forward(&mut self, i: usize, port: u16) {
        self.leave(i, Verdict::Forward(port));
    }
    /// Takes the packets that left out of `live`; nothing to do when none did.
    #[inline(always)]
    pub fn compact(&mut self, live: &mut Live) {
        if self.left > 0 {
            live.retain_pending(self.cx);
            self.left = 0;
        }
    }

    /// Counts a drop, and against the tunnel the packet came from or was going to.
    pub fn count_drop(&mut self, r: DropReason, tunnels: (Option<u16>, Option<u16>)) {
        count_drop(self.counters, self.snap, r, tunnels);
    }
}

/// `Burst::count_drop` with only the parts it needs borrowed, for loops that hold the
/// contexts.
#[inline(always)]
pub fn count_drop(
    counters: &mut Counters,
    snap: &Snapshot,
    r: DropReason,
    tunnels: (Option<u16>, Option<u16>),
) {
    counters.drop(r);
    if let Some(t) = tunnels.0.or(tunnels.1) {
        if let Some(tc) = counters.tunnels.get_mut(snap.tunnel_slot(t)) {
            tc.drops[r as usize] += 1;
        }
    }
}

/// Per-worker pipeline: counters, state, and the context of the last burst (for its notes).
pub struct Pipeline {
    pub counters: Counters,
    st: State,
    cx: [Ctx; BURST],
    /// Packets in the last burst.
    n: usize,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Pipeline {
    pub fn new() -> Self {
        Pipeline {
            counters: Counters::default(),
            st: State::new(),
            cx: [Ctx::default(); BURST],
            n: 0,
        }
    }

    /// The current time in ticks of `hz` per second, for the ICMP rate limit. Once per burst.
    pub fn set_clock(&mut self, now: u64, hz: u64) {
        self.st.now = now;
        self.st.hz = hz;
    }

    /// What happened to the last packet processed.
    pub fn note(&self) -> &Note {
        self.note_at(self.n.saturating_sub(1))
    }

    /// What happened to packet `i` of the last burst (of the last BURST packets, when
    /// `process` was given more).
    pub fn note_at(&self, i: usize) -> &Note {
        &self.cx[i.min(BURST - 1)].note
    }

    /// Decides every packet of a burst received on `in_port`, rewriting forwarded ones in
    /// place. `verdicts[i]` is the decision for `pkts[i]`. More than BURST packets are taken
    /// BURST at a time.
    pub fn process<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        in_port: u16,
        pkts: &mut [B],
        verdicts: &mut [Verdict],
    ) {
        let fib = snap.fib.view();
        for (pkts, verdicts) in pkts.chunks_mut(BURST).zip(verdicts.chunks_mut(BURST)) {
            let n = pkts.len().min(verdicts.len());
            let mut b = Burst::new(snap, fib, in_port, &mut pkts[..n], self);
            graph::run(&mut b, &mut verdicts[..n]);
            b.finish();
            self.n = n;
        }
    }

    /// Sends packets anygate made (health probes: an Ethernet placeholder, then an inner IPv4
    /// packet) into tunnels: `tunnels[i]` for `pkts[i]`, encapsulated like any packet routed
    /// there. `verdicts[i]` is where `pkts[i]` leaves, or why not. More than BURST packets
    /// are taken BURST at a time.
    pub fn inject<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        pkts: &mut [B],
        tunnels: &[u16],
        verdicts: &mut [Verdict],
    ) {
        let fib = snap.fib.view();
        let chunks = pkts.chunks_mut(BURST).zip(verdicts.chunks_mut(BURST));
        for (k, (pkts, verdicts)) in chunks.enumerate() {
            let n = pkts.len().min(verdicts.len());
            let tunnels = tunnels.get(k * BURST..).unwrap_or(&[]);
            self.cx[..n].iter_mut().for_each(Ctx::reset);
            let mut b = Burst::new(snap, fib, 0, &mut pkts[..n], self);
            graph::run_local(&mut b, tunnels, &mut verdicts[..n]);
            b.finish();
            self.n = n;
        }
    }

    /// Health probe answers recognised since the last call; the caller hands them to the
    /// checker.
    pub fn take_probe_answers(&mut self) -> impl Iterator<Item = Answer> + '_ {
        let n = std::mem::take(&mut self.st.n_answers);
        self.st.answers[..n].iter().copied()
    }

    /// (port, address) pairs that needed ARP since the last call; the caller sends the
    /// requests.
    pub fn take_arp_wants(&mut self) -> impl Iterator<Item = (u16, u32)> + '_ {
        let n = std::mem::take(&mut self.st.n_arp_wants);
        self.st.arp_wants[..n].iter().copied()
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "direct_tests.rs"]
mod direct_tests;

#[cfg(test)]
#[path = "tunnel_tests.rs"]
mod tunnel_tests;

#[cfg(test)]
#[path = "probe_tests.rs"]
mod probe_tests;

#[cfg(test)]
#[path = "arr_tests.rs"]
mod arr_tests;

#[cfg(test)]
#[path = "punt_tests.rs"]
mod punt_tests;
