//! ICMP errors (time exceeded, fragmentation needed), built in place: the offending packet's
//! own buffer is trimmed to its header plus 8 bytes, new IPv4 and ICMP headers go into the
//! headroom, and the result is routed back to the sender like any packet (a second pass of the
//! route stages over the errors), through a tunnel if that is where the sender lives.
//! Rate-limited per worker with a token bucket.
use crate::datapath::context::{Answer, IcmpError, Live, Origin};
use crate::datapath::pipeline::{Burst, State};
use crate::datapath::verdict::Verdict;
use crate::lpm::Prefix;
use crate::packet::PacketBuf;
use crate::route::{SET_ANYCAST, SET_LOCAL};
use crate::wire::{ethernet, icmp, ipv4};

/// Bytes in front of the quote: new IPv4 header and ICMP header.
const PREFIX: usize = ipv4::MIN_HEADER_LEN + icmp::HEADER_LEN;

/// Turns the packets the hop checks marked into ICMP errors to their senders (or drops them
/// when RFC 1812 or the rate limit say no), and runs `route` over the errors, which rejoin
/// the burst for the stages after.
pub fn run<B: PacketBuf>(
    b: &mut Burst<B>,
    live: &mut Live,
    route: impl FnOnce(&mut Burst<B>, &mut Live),
) {
    let mut errors = Live::empty();
    for i in live.iter() {
        let Some(e) = b.cx[i].error.take() else {
            continue;
        };
        match build(b, i, e) {
            Some(()) => errors.push(i),
            None => b.drop(i, e.reason),
        }
    }
    if errors.len() > 0 || b.left > 0 {
        route(b, &mut errors);
        // Drops in the errors' own pass are drops from `live`.
        live.retain_pending(b.cx);
        b.left = 0;
    }
}

/// Builds the error in place and points the packet's context at it, or None to drop the
/// packet for its reason.
fn build<B: PacketBuf>(b: &mut Burst<B>, i: usize, e: IcmpError) -> Option<()> {
    let (snap, c) = (b.snap, b.cx[i]);
    let ip = c.ip;
    let src = match c.origin {
        Origin::Port(p) => snap.ports.get(p as usize).map(|p| p.addr),
        Origin::Tunnel(t) => snap.tunnels.get(t as usize).map(|t| t.iface_local),
        Origin::Local => None,
    }?;
    // Nor to the directed broadcast of the subnet the packet arrived on (RFC 1812 4.3.2.7).
    if let Origin::Port(p) = c.origin {
        let bcast = |p: &crate::route::PortState| p.addr | !Prefix::mask(p.prefix_len);
        if snap
            .ports
            .get(p as usize)
            .is_some_and(|p| ip.src == bcast(p))
        {
            return None;
        }
    }
    let pkt = &mut b.pkts[i];
    let allowed = pkt
        .as_ref()
        .get(ethernet::HEADER_LEN..)
        .and_then(|h| ipv4::Packet::new_checked(h).ok())
        .is_some_and(|p| icmp::error_allowed(&p));
    let set = match b.fib.lookup(ip.src) {
        Some(SET_LOCAL) | Some(SET_ANYCAST) | None => None,
        Some(set) => Some(set),
    };
    let (true, Some(set)) = (allowed, set) else {
        return None;
    };
    if !token(b.st, snap.icmp_errors_per_second) {
        b.counters.icmp_rate_limited += 1;
        return None;
    }
    let quote = (usize::from(ip.header_len) + icmp::QUOTE_PAYLOAD).min(ip.total_len.into());
    let extra = pkt
        .as_ref()
        .len()
        .saturating_sub(ethernet::HEADER_LEN + quote);
    if !pkt.trim_back(extra) {
        return None;
    }
    let buf = pkt.prepend(PREFIX)?;
    buf[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
    let total = buf.len() - ethernet::HEADER_LEN;
    icmp::write_error(
        &mut buf[ethernet::HEADER_LEN..],
        src,
        ip.src,
        e.kind,
        e.code,
        e.mtu,
    )?;
    // The offending packet is dropped; what leaves is a new packet of our own, routed
    // without the offending packet's tunnels.
    let c = &mut b.cx[i];
    c.answer = Some(Answer {
        error: e,
        ingress_tunnel: c.note.ingress_tunnel.take(),
        egress_tunnel: c.note.egress_tunnel.take(),
    });
    c.ip = ipv4::Repr {
        header_len: ipv4::MIN_HEADER_LEN as u16,
        // At most a 60-byte header and 8 bytes quoted, plus ours.
        total_len: total as u16,
        src,
        dst: ip.src,
        ttl: 64,
        protocol: ipv4::PROTO_ICMP,
        tos: 0xc0,
        ..ipv4::Repr::default()
    };
    c.origin = Origin::Local;
    c.set = set;
    c.nexthop = None;
    Some(())
}

/// Once the burst is decided: an error that got out counts the drop it answers, against the
/// offending packet's tunnels; one that did not leaves the original drop, counted as usual.
pub fn settle<B>(b: &mut Burst<B>) {
    for i in 0..b.pkts.len() {
        let Some(a) = b.cx[i].answer else { continue };
        let offending = (a.ingress_tunnel, a.egress_tunnel);
        match b.cx[i].verdict {
            Some(Verdict::Forward(_)) => {
                b.count_drop(a.error.reason, offending);
                b.counters.icmp_errors += 1;
                b.counters.originated += 1;
                let n = &mut b.cx[i].note;
                n.icmp = Some((a.error.kind, a.error.code));
                n.answered = Some(a.error.reason);
            }
            _ => {
                let c = &mut b.cx[i];
                (c.note.ingress_tunnel, c.note.egress_tunnel) = offending;
                c.drop(a.error.reason);
            }
        }
    }
}

/// Takes one token from the per-worker bucket: `rate` per second, bursts of rate/10.
fn token(st: &mut State, rate: u32) -> bool {
    let rate = rate as u64;
    if rate == 0 {
        return false;
    }
    let cap = (rate / 10).max(1);
    match st.icmp_refilled {
        None => {
            st.icmp_tokens = cap;
            st.icmp_refilled = Some(st.now);
        }
        Some(last) if st.hz > 0 && st.now > last => {
            let add = ((st.now - last) as u128 * rate as u128 / st.hz as u128) as u64;
            if add > 0 {
                st.icmp_tokens = (st.icmp_tokens + add).min(cap);
                st.icmp_refilled = Some(st.now);
            }
        }
        Some(_) => {}
    }
    if st.icmp_tokens == 0 {
        return false;
    }
    st.icmp_tokens -= 1;
    true
}
