//! IPv4 validation: the header is checked (`wire::ipv4::Repr::parse`) and read once into the
//! packet's context; martian addresses are refused.
use crate::datapath::context::{Ctx, Origin};
use crate::datapath::verdict::DropReason;
use crate::wire::{ethernet, ipv4};

/// The IPv4 header of a frame received on `in_port` into the packet's context `c`, or the
/// reason to drop the packet.
#[inline(always)]
pub fn one(frame: &[u8], c: &mut Ctx, in_port: u16) -> Result<(), DropReason> {
    parse_into(frame, &mut c.ip)?;
    c.origin = Origin::Port(in_port);
    Ok(())
}

/// The IPv4 header after the Ethernet header of `frame`, valid and not martian.
#[inline(always)]
pub fn parse(frame: &[u8]) -> Result<ipv4::Repr, DropReason> {
    let mut ip = ipv4::Repr::default();
    parse_into(frame, &mut ip)?;
    Ok(ip)
}

/// `parse` into `ip` in place (`Repr::parse_into`): after an error `ip` holds whatever the
/// bytes said, so only for a context whose header is never read once the packet is dropped.
#[inline(always)]
pub fn parse_into(frame: &[u8], ip: &mut ipv4::Repr) -> Result<(), DropReason> {
    ipv4::Repr::parse_into(frame.get(ethernet::HEADER_LEN..).unwrap_or(&[]), ip)?;
    martian(ip)
}

/// The IPv4 header at the start of `buf` (and its packet, the rest of `buf`), valid and not
/// martian, into `ip` in place (as `parse_into`: after an error `ip` holds whatever the
/// bytes said).
#[inline(always)]
pub fn header_into(buf: &[u8], ip: &mut ipv4::Repr) -> Result<(), DropReason> {
    ipv4::Repr::parse_into(buf, ip)?;
    martian(ip)
}

/// Refuses martian addresses.
#[inline(always)]
fn martian(ip: &ipv4::Repr) -> Result<(), DropReason> {
    // Both looked up, one branch on the fast path; the source's reason first, as before.
    if ipv4::is_martian_src(ip.src) | ipv4::is_martian_dst(ip.dst) {
        return Err(if ipv4::is_martian_src(ip.src) {
            DropReason::Ipv4MartianSrc
        } else {
            DropReason::Ipv4MartianDst
        });
    }
    Ok(())
}
