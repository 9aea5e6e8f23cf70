//! Health probe answers: an ICMP echo reply carrying our probe payload is taken out of the
//! burst before anything else looks at it (called by `tunnel_ingress` right after the inner
//! header is validated, ahead of the GRE keepalive check, the source check and the firewall;
//! and for a unidirectional check's answer, which comes over the underlay to an anycast
//! address). Ours is consumed and recorded for the health checker; another node's is dropped.
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::{DropReason, Verdict};
use crate::health::probe::{self, Recognised};
use crate::health::Answer;
use crate::packet::PacketBuf;
use crate::wire::ethernet;

/// What ICMP packet `i` (decapsulated from `via`, or plain when None) is: None when not a
/// probe answer (it goes on); Some(Ok) when ours (consumed: it has left the burst and its
/// answer is recorded); Some(Err) when another node's (the caller drops it). The caller tests
/// the protocol first, so other traffic pays one compare; out of line and cold, so the
/// decapsulation path around the call stays as tight as without it.
#[cold]
#[inline(never)]
pub fn check<B: PacketBuf>(
    b: &mut Burst<B>,
    i: usize,
    via: Option<u16>,
) -> Option<Result<(), DropReason>> {
    let frame = b.pkts[i].as_ref();
    let inner = frame.get(ethernet::HEADER_LEN..).unwrap_or(&[]);
    let r = probe::recognise(inner, b.snap.node_id);
    match r {
        Recognised::NotProbe => None,
        Recognised::Ours { seq } => {
            let answer = Answer {
                seq,
                via_tunnel: via,
                tsc: b.st.now,
            };
            if !b.st.push_answer(answer) {
                b.counters.probe_ring_full += 1;
            }
            b.counters.health_probe += 1;
            b.cx[i].note.probe = Some(r);
            b.leave(i, Verdict::Consumed);
            Some(Ok(()))
        }
        Recognised::Foreign { .. } => {
            b.cx[i].note.probe = Some(r);
            Some(Err(DropReason::ProbeForeign))
        }
    }
}
