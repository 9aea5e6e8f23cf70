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

/// `one` for a frame whose first 34 bytes `h` `l2::ipv4_plain` found IPv4 with a 20-byte
/// header (version 4, IHL 5), `len` bytes long: the same checks and answer, without the
/// bounds and version tests made there, the martian test on the header's bytes (from the
/// parsed addresses they were spilled and reloaded; callgrind, issue 14).
#[inline(always)]
pub fn one_plain(
    h: &[u8; ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN],
    len: usize,
    c: &mut Ctx,
    in_port: u16,
) -> Result<(), DropReason> {
    let ip = h
        .last_chunk::<{ ipv4::MIN_HEADER_LEN }>()
        .unwrap_or(&[0; ipv4::MIN_HEADER_LEN]);
    let len = len.saturating_sub(ethernet::HEADER_LEN);
    header20_into(ip, len, &mut c.ip)?;
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

/// `header_into` for a 20-byte header `h` whose first byte the caller found 0x45, starting a
/// packet of `len` bytes (tunnel ingress's first look: no bounds or version test again).
#[inline(always)]
pub fn header20_into(
    h: &[u8; ipv4::MIN_HEADER_LEN],
    len: usize,
    ip: &mut ipv4::Repr,
) -> Result<(), DropReason> {
    ipv4::Repr::parse20_into(h, len, ip)?;
    let (src, dst) = ipv4::first_octets(h);
    martian_first(src, dst)
}

/// Refuses martian addresses.
#[inline(always)]
fn martian(ip: &ipv4::Repr) -> Result<(), DropReason> {
    martian_first((ip.src >> 24) as u8, (ip.dst >> 24) as u8)
}

/// `martian` by the addresses' first octets (all that decides it).
#[inline(always)]
fn martian_first(src: u8, dst: u8) -> Result<(), DropReason> {
    // Both looked up, one branch on the fast path; the source's reason first, as before.
    if ipv4::is_martian_first(src) | ipv4::is_martian_first(dst) {
        return Err(if ipv4::is_martian_first(src) {
            DropReason::Ipv4MartianSrc
        } else {
            DropReason::Ipv4MartianDst
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;
    use proptest::prelude::*;

    proptest! {
        /// `one_plain` (`Repr::parse20_into` on the first look's bytes) answers as `one`
        /// (`Repr::parse_into`)
        /// for any 20-byte header after an Ethernet header, version/IHL 0x45, its checksum
        /// right or not, in a frame of any length from 34 bytes: the result, and on success
        /// every field and the origin.
        #[test]
        fn one_plain_is_one(
            mut ip in proptest::array::uniform20(any::<u8>()),
            fix in any::<bool>(),
            fit in any::<bool>(),
            len in 34usize..1600,
        ) {
            ip[0] = 0x45;
            if fit {
                // A total length the frame holds, from 20 up.
                let total = 20 + u16::from_be_bytes([ip[2], ip[3]]) % (len as u16 - 33);
                ip[2..4].copy_from_slice(&total.to_be_bytes());
            }
            if fix {
                ip[10..12].fill(0);
                let c = checksum::checksum(&ip);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
            }
            let mut frame = vec![0u8; len];
            frame[12..14].copy_from_slice(&[0x08, 0x00]);
            frame[14..34].copy_from_slice(&ip);
            let (mut general, mut plain) = (Ctx::default(), Ctx::default());
            let want = one(&frame, &mut general, 7);
            let h = frame.first_chunk::<34>().unwrap();
            let got = one_plain(h, frame.len(), &mut plain, 7);
            prop_assert_eq!(got, want);
            if got.is_ok() {
                prop_assert_eq!(plain.ip, general.ip);
                prop_assert_eq!(plain.origin, general.origin);
            }
        }
    }
}
