//! The firewall: after decapsulation for traffic from tunnels, before encapsulation for
//! traffic toward them. Each packet is judged alone (stateless); the first enabled matching
//! rule decides, else the default action, as the compiled classifier finds it (one lookup per
//! field the rules test, not one evaluation per rule). Packets anygate made are not filtered.
use crate::datapath::context::Origin;
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::DropReason;
use crate::firewall::{Action, Fields, Packet};
use crate::packet::PacketBuf;
use crate::route::{NextHop, Snapshot};
use crate::wire::{ethernet, icmp, ipv4, tcp, udp};

/// A packet's firewall answer (the deciding rule and its action; None: the default), kept for
/// its second crossing when that one is sure to get the same answer.
pub type Judged = Option<(usize, Action)>;

/// Which way a packet crosses a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    /// The value of `anygate.direction` in rules.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// The firewall's answer to one crossing, not yet counted.
struct Judgement {
    decided: Judged,
    /// The frame's length, for the counters.
    bytes: u64,
    /// The next crossing may reuse this answer.
    reusable: bool,
}

/// Judges packet `i` where it crosses a tunnel; false when it is blocked (it leaves).
#[inline(always)]
pub fn one<B: PacketBuf>(b: &mut Burst<B>, i: usize) -> bool {
    let c = &b.cx[i];
    // Most packets cross no tunnel: one test each.
    if !matches!(c.origin, Origin::Tunnel(_)) && !matches!(c.nexthop, Some(NextHop::Tunnel(_))) {
        return true;
    }
    crossings(b, i)
}

#[inline(always)]
fn crossings<B: PacketBuf>(b: &mut Burst<B>, i: usize) -> bool {
    let origin = b.cx[i].origin;
    if origin == Origin::Local {
        return true;
    }
    // A packet crossing both ways is judged twice, but the second time may reuse the first:
    // then both are counted at once, as a second evaluation would count it again (one
    // update of the counters, not two, and no setup of a second judgement: callgrind,
    // issue 14).
    if let Origin::Tunnel(t) = origin {
        if let Some(j) = filter(b, i, t, Direction::Ingress) {
            let fw = &b.snap.firewall;
            let action = j.decided.map_or(fw.default_action, |(_, a)| a);
            // The egress tunnel only here: read before, it cost the decap and encap paths
            // (that judge one crossing) ~5 instructions per packet (callgrind).
            let egress = match b.cx[i].nexthop {
                Some(NextHop::Tunnel(e)) if fw.egress && j.reusable => Some(e),
                _ => None,
            };
            let both = action != Action::Block && egress.is_some();
            settle(b, i, j.decided, 1 + both as u64, j.bytes);
            if action == Action::Block {
                b.drop(i, DropReason::FirewallBlock);
                return false;
            }
            if both {
                // The egress tunnel's note is `hop_checks::one`'s, which follows a pass.
                return true;
            }
        }
    }
    if let Some(NextHop::Tunnel(t)) = b.cx[i].nexthop {
        b.cx[i].note.egress_tunnel = Some(t);
        if let Some(j) = filter(b, i, t, Direction::Egress) {
            if settle(b, i, j.decided, 1, j.bytes) == Action::Block {
                b.drop(i, DropReason::FirewallBlock);
                return false;
            }
        }
    }
    true
}

/// Judges packet `i` crossing tunnel `t` in direction `dir`; None where the firewall does not
/// apply there (or has nothing to do: no rule and the default allows). The answer is
/// reusable by the next crossing when no rule tests the tunnel or direction (the only fields
/// that differ between crossings) and no skip rule matched (so counting the deciding rule
/// again counts exactly what a second evaluation would). Inlined up to the test whether the
/// firewall applies at all: a call that returned at once cost ~30 instructions per packet on
/// the decap path (callgrind).
#[inline(always)]
fn filter<B: PacketBuf>(b: &mut Burst<B>, i: usize, t: u16, dir: Direction) -> Option<Judgement> {
    let fw = &b.snap.firewall;
    let applies = match dir {
        Direction::Ingress => fw.ingress,
        Direction::Egress => fw.egress,
    };
    if !applies || (fw.rules.is_empty() && fw.default_action == Action::Allow) {
        return None;
    }
    Some(judge(b, i, t, dir))
}

/// Inlined into the fused route pass: as a call, saving and restoring its registers cost
/// ~20 instructions per judged packet (callgrind, issue 14).
#[inline(always)]
fn judge<B: PacketBuf>(b: &mut Burst<B>, i: usize, t: u16, dir: Direction) -> Judgement {
    let snap = b.snap;
    let frame = b.pkts[i].as_ref();
    let bytes = frame.len() as u64;
    let rules = &mut b.counters.rules;
    let mut skips = false;
    let per_crossing = snap.classifier.per_crossing();
    let ip = &b.cx[i].ip;
    let mut p = packet(frame, ip, snap.classifier.reads_ip());
    if per_crossing {
        set_names(&mut p, snap, t, dir);
    }
    // Skip rules that matched on the way are counted too: they matched, they decided nothing.
    // A closure each way, moved in: one shared by `&mut` was stored to the stack per packet.
    let chained = snap.classifier.classify_chained(&p, |r| {
        skips = true;
        count_rule(rules, snap, r, 1, bytes)
    });
    let decided = match chained {
        Some(d) => d,
        None => classify(snap, &p, frame, ip, (t, dir), |r| {
            skips = true;
            count_rule(rules, snap, r, 1, bytes)
        }),
    };
    Judgement {
        decided,
        bytes,
        reusable: !skips && !per_crossing,
    }
}

/// `judge`'s classification where the classifier's steps are not a chain (it may evaluate
/// rules, over `fields`).
#[inline(never)]
fn classify(
    snap: &Snapshot,
    p: &Packet,
    frame: &[u8],
    ip: &ipv4::Repr,
    (t, dir): (u16, Direction),
    skipped: impl FnMut(usize),
) -> Judged {
    // The tunnel's name and the direction only when some rule tests them (else no rule
    // reads them), looked up out of line: inline, the strings were chosen for every packet.
    let names = || match snap.classifier.per_crossing() {
        true => crossing_names(snap, t, dir),
        false => (None, None),
    };
    snap.classifier.classify_packet(
        p,
        || {
            let (tunnel, direction) = names();
            fields(frame, ip, tunnel, direction)
        },
        skipped,
    )
}

/// The tunnel's name and the direction, for rules that test them.
#[inline(never)]
fn crossing_names(snap: &Snapshot, t: u16, dir: Direction) -> (Option<&str>, Option<&'static str>) {
    (
        snap.tunnels.get(t as usize).map(|t| t.name.as_str()),
        Some(dir.name()),
    )
}

/// Puts the ids of the tunnel's name and the direction in `p`.
#[inline(never)]
fn set_names(p: &mut Packet, snap: &Snapshot, t: u16, dir: Direction) {
    let id = |s| snap.classifier.string_id(s);
    let (tunnel, direction) = crossing_names(snap, t, dir);
    p.set_strings(tunnel.map(id), direction.map(id));
}

/// Counts `n` crossings of a packet of `bytes` for rule `r` (a rule without a counter slot is
/// not counted).
#[inline(always)]
fn count_rule(rules: &mut [[u64; 2]], snap: &Snapshot, r: usize, n: u64, bytes: u64) {
    if let Some(c) = rules.get_mut(snap.rule_slot(r)) {
        c[0] += n;
        c[1] += n * bytes;
    }
}

/// Counts the deciding rule (or the default) for packet `i` of `bytes`, `n` times (once per
/// crossing it decides); returns the action.
#[inline(always)]
fn settle<B>(b: &mut Burst<B>, i: usize, decided: Judged, n: u64, bytes: u64) -> Action {
    match decided {
        Some((r, a)) => {
            count_rule(&mut b.counters.rules, b.snap, r, n, bytes);
            b.cx[i].note.rule = Some(r as u16);
            a
        }
        None => {
            // Added to `counters.firewall_default` at the burst's end (`Burst::finish`).
            b.fw_default_packets += n;
            b.fw_default_bytes += n * bytes;
            b.snap.firewall.default_action
        }
    }
}

/// The rule fields of a packet as the classifier's keys, read straight from the header and the
/// frame (`Fields` and their options, built and then read key by key, cost ~100 instructions
/// per packet, callgrind, issue 14). Transport fields as in `fields`; the IP header's small
/// fields only `with_ip` (when some key reads them: ~10 instructions per packet otherwise).
#[inline(always)]
fn packet(frame: &[u8], ip: &ipv4::Repr, with_ip: bool) -> Packet {
    let mut p = Packet::addrs(ip.src, ip.dst);
    if with_ip {
        p.set_ip(ip.protocol, ip.total_len, ip.header_len as u8, ip.ttl);
    }
    if ip.frag_offset != 0 {
        return p;
    }
    let l4 = l4(frame, ip);
    match ip.protocol {
        ipv4::PROTO_TCP => {
            if let Some(s) = tcp::Segment::new_checked(l4) {
                p.set_tcp(s.ports().word(), s.flags());
            }
        }
        ipv4::PROTO_UDP => {
            if let Some(u) = udp::Ports::new_checked(l4) {
                p.set_udp(u.word());
            }
        }
        ipv4::PROTO_ICMP => {
            if let Some(m) = icmp::Message::new_checked(l4) {
                p.set_icmp(m.msg_type(), m.code());
            }
        }
        _ => {}
    }
    p
}

/// The transport header and payload: the IP payload as far as the frame holds it, else empty.
#[inline(always)]
fn l4<'f>(frame: &'f [u8], ip: &ipv4::Repr) -> &'f [u8] {
    frame
        .get(
            ethernet::HEADER_LEN + usize::from(ip.header_len)
                ..ethernet::HEADER_LEN + usize::from(ip.total_len),
        )
        .unwrap_or(&[])
}

/// The rule fields of a packet, for rules left to the evaluator. Transport fields only for
/// first fragments with the fields there.
fn fields<'a>(
    frame: &[u8],
    ip: &ipv4::Repr,
    tunnel: Option<&'a str>,
    direction: Option<&'static str>,
) -> Fields<'a> {
    let l4 = l4(frame, ip);
    let first = ip.frag_offset == 0;
    let is = |proto| first && ip.protocol == proto;
    Fields {
        src: ip.src,
        dst: ip.dst,
        proto: ip.protocol,
        len: ip.total_len,
        hdr_len: ip.header_len as u8,
        ttl: ip.ttl,
        icmp: is(ipv4::PROTO_ICMP)
            .then(|| icmp::Message::new_checked(l4))
            .flatten()
            .map(|m| (m.msg_type(), m.code())),
        tcp: is(ipv4::PROTO_TCP)
            .then(|| tcp::Segment::new_checked(l4))
            .flatten()
            .map(|s| (s.ports().src_port(), s.ports().dst_port(), s.flags())),
        udp: is(ipv4::PROTO_UDP)
            .then(|| udp::Ports::new_checked(l4))
            .flatten()
            .map(|p| (p.src_port(), p.dst_port())),
        tunnel,
        direction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The keys read straight from the frame are the ones `Fields` gives, for every
        /// protocol, fragment and truncation: the classifier's property test holds it to the
        /// evaluator over `Fields`, this holds the datapath's reading to `Fields`.
        #[test]
        fn packet_reads_what_fields_hold(
            proto in prop_oneof![Just(1u8), Just(6), Just(17), Just(47)],
            frag in prop_oneof![Just(0u16), 1..100u16],
            header_len in prop_oneof![Just(20u16), Just(24)],
            payload in 0usize..40,
            cut in 0usize..80,
            bytes in proptest::collection::vec(any::<u8>(), 120),
            (src, dst, ttl) in (any::<u32>(), any::<u32>(), any::<u8>()),
            with_ip in any::<bool>(),
        ) {
            let ip = ipv4::Repr {
                src,
                dst,
                header_len,
                total_len: header_len + payload as u16,
                ident: 0,
                tos: 0,
                ttl,
                protocol: proto,
                dont_frag: false,
                frag_offset: frag,
            };
            // Frames shorter than the header says, too.
            let frame = &bytes[..bytes.len() - cut];
            let want = Packet::of(&fields(frame, &ip, None, None), |_| 0);
            // Without the IP header's small fields when no key reads them.
            let want = if with_ip { want } else { want.without_ip() };
            prop_assert_eq!(packet(frame, &ip, with_ip), want);
        }
    }
}
