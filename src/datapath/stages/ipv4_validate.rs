//! IPv4 validation: the header is checked (`wire::ipv4::Repr::parse`) and read once into the
//! packet's context; martian addresses are refused.
use crate::datapath::context::Origin;
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::DropReason;
use crate::packet::PacketBuf;
use crate::wire::{ethernet, ipv4};

/// Packet `i`'s IPv4 header into its context, or the packet leaves with the reason.
#[inline(always)]
pub fn one<B: PacketBuf>(b: &mut Burst<B>, i: usize) {
    match parse(b.pkts[i].as_ref()) {
        Ok(ip) => {
            let c = &mut b.cx[i];
            c.ip = ip;
            c.origin = Origin::Port(b.in_port);
        }
        Err(r) => b.drop(i, r),
    }
}

/// The IPv4 header after the Ethernet header of `frame`, valid and not martian.
#[inline(always)]
pub fn parse(frame: &[u8]) -> Result<ipv4::Repr, DropReason> {
    let ip = ipv4::Repr::parse(frame.get(ethernet::HEADER_LEN..).unwrap_or(&[]))?;
    // Both looked up, one branch on the fast path; the source's reason first, as before.
    if ipv4::is_martian_src(ip.src) | ipv4::is_martian_dst(ip.dst) {
        return Err(if ipv4::is_martian_src(ip.src) {
            DropReason::Ipv4MartianSrc
        } else {
            DropReason::Ipv4MartianDst
        });
    }
    Ok(ip)
}
