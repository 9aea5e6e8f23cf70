//! The firewall stage: after decapsulation for traffic from tunnels, before encapsulation for
//! traffic toward them. Each packet is judged alone (stateless); the first enabled matching
//! rule decides, else the default action, as the compiled classifier finds it (one lookup per
//! field the rules test, not one evaluation per rule).
use super::packet::PacketBuf;
use super::pipeline::{Ip4, Pipeline};
use crate::firewall::{Action, Fields};
use crate::route::Snapshot;
use crate::wire::{ethernet, ipv4};

/// A packet's firewall answer (the deciding rule and its action; None: the default), kept for
/// its second crossing when that one is sure to get the same answer.
pub(super) type Judged = Option<(usize, Action)>;

impl Pipeline {
    /// Judges a packet crossing tunnel `t` in direction `dir`: true when the firewall blocks
    /// it. `prior` is the answer from the packet's first crossing, if reusable; the result
    /// carries this answer when the next crossing may reuse it: when no rule tests the tunnel
    /// or direction (the only fields that differ between crossings) and no skip rule matched
    /// (so counting the deciding rule again counts exactly what a second evaluation would).
    pub(super) fn filter<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        pkt: &B,
        ip: &Ip4,
        t: u16,
        dir: &'static str,
        prior: Option<Judged>,
    ) -> (bool, Option<Judged>) {
        let fw = &snap.firewall;
        let applies = if dir == "ingress" {
            fw.ingress
        } else {
            fw.egress
        };
        if !applies || (fw.rules.is_empty() && fw.default_action == Action::Allow) {
            return (false, None);
        }
        let bytes = pkt.as_ref().len() as u64;
        let rules = &mut self.counters.rules;
        let mut skips = false;
        let mut count = |i: usize| {
            if let Some(c) = rules.get_mut(snap.rule_slot(i)) {
                c[0] += 1;
                c[1] += bytes;
            }
        };
        let decided = match prior {
            Some(d) => d,
            None => {
                let f = fields(
                    pkt.as_ref(),
                    ip,
                    snap.tunnels.get(t as usize).map(|t| t.name.as_str()),
                    dir,
                );
                // Skip rules that matched on the way are counted too: they matched, they
                // decided nothing.
                snap.classifier
                    .classify_with(&f, &mut self.fw_scratch, |i| {
                        skips = true;
                        count(i)
                    })
            }
        };
        let action = match decided {
            Some((i, a)) => {
                count(i);
                self.note.rule = Some(i as u16);
                a
            }
            None => {
                self.counters.firewall_default[0] += 1;
                self.counters.firewall_default[1] += bytes;
                fw.default_action
            }
        };
        let reusable = !skips && !snap.classifier.per_crossing();
        (action == Action::Block, reusable.then_some(decided))
    }
}

/// The rule fields of a packet. Transport fields only for first fragments with a whole header.
fn fields<'a>(frame: &[u8], ip: &Ip4, tunnel: Option<&'a str>, dir: &'static str) -> Fields<'a> {
    let l4 = frame
        .get(ethernet::HEADER_LEN + ip.hlen..ethernet::HEADER_LEN + ip.total)
        .unwrap_or(&[]);
    let first = ip.frag_off == 0;
    let be16 = |b: &[u8], i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    Fields {
        src: ip.src,
        dst: ip.dst,
        proto: ip.proto,
        len: ip.total as u16,
        hdr_len: ip.hlen as u8,
        ttl: ip.ttl,
        icmp: (first && ip.proto == ipv4::PROTO_ICMP && l4.len() >= 2).then(|| (l4[0], l4[1])),
        tcp: (first && ip.proto == ipv4::PROTO_TCP && l4.len() >= 14)
            .then(|| (be16(l4, 0), be16(l4, 2), l4[13])),
        udp: (first && ip.proto == ipv4::PROTO_UDP && l4.len() >= 4)
            .then(|| (be16(l4, 0), be16(l4, 2))),
        tunnel,
        direction: Some(dir),
    }
}
