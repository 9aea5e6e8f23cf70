//! IPv4 validation: the header is checked (`wire::ipv4::Repr::parse`) and read once into the
//! packet's context; martian addresses are refused.
use crate::datapath::context::{Live, Origin};
use crate::datapath::pipeline::Burst;
use crate::datapath::verdict::DropReason;
use crate::packet::PacketBuf;
use crate::wire::{ethernet, ipv4};

pub fn run<B: PacketBuf>(b: &mut Burst<B>, live: &mut Live) {
    for i in live.iter() {
        match parse(b.pkts[i].as_ref()) {
            Ok(ip) => {
                b.cx[i].ip = ip;
                b.cx[i].origin = Origin::Port(b.in_port);
            }
            Err(r) => b.drop(i, r),
        }
    }
    b.compact(live);
}

/// The IPv4 header after the Ethernet header of `frame`, valid and not martian.
#[inline(always)]
pub fn parse(frame: &[u8]) -> Result<ipv4::Repr, DropReason> {
    let ip = ipv4::Repr::parse(frame.get(ethernet::HEADER_LEN..).unwrap_or(&[]))?;
    if ipv4::is_martian_src(ip.src) {
        return Err(DropReason::Ipv4MartianSrc);
    }
    if ipv4::is_martian_dst(ip.dst) {
        return Err(DropReason::Ipv4MartianDst);
    }
    Ok(ip)
}
