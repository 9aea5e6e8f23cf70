//! Every zero-copy header view over arbitrary bytes: nothing may panic, and what a view
//! accepts it must be able to read back.
#![no_main]
use anygate::wire::{arp, checksum, ethernet, gre, icmp, ipv4, tcp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(f) = ethernet::Frame::new_checked(data) {
        let _ = (f.dst(), f.src(), f.ethertype());
    }
    if let Some(a) = arp::Packet::new_checked(data) {
        let _ = (a.operation(), a.sender_ip(), a.target_ip(), a.sender_mac());
    }
    if let Ok(ip) = ipv4::Packet::new_checked(data) {
        assert!(ip.header_len() >= ipv4::MIN_HEADER_LEN && ip.header_len() <= data.len());
        let _ = icmp::error_allowed(&ip);
    }
    let _ = gre::parse(data);
    let _ = checksum::verify(data);
    // The MSS clamp edits in place; a checksum that was right stays right.
    if data.len() >= 2 {
        let max = u16::from_be_bytes([data[0], data[1]]);
        let mut seg = data[2..].to_vec();
        let before = tcp::checksum_v4(0x0a00_0001, 0x0a00_0002, &seg);
        let r = tcp::clamp_mss(&mut seg, max);
        if let (tcp::Mss::Clamped(..), 0) = (r, before) {
            assert_eq!(tcp::checksum_v4(0x0a00_0001, 0x0a00_0002, &seg), 0);
        }
    }
    let mut buf = data.to_vec();
    let _ = icmp::write_error(&mut buf, 1, 2, 11, 0, 0);
    let mut hdr = data.to_vec();
    ipv4::decrement_ttl_in(&mut hdr);
});
