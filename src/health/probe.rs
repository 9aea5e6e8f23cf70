//! STAND-IN, kept tiny on the `health-mgmt` branch so the checker builds and is tested: the
//! datapath half (branch `health-dp`) owns this file and replaces it whole at the merge. Only
//! the signature is the contract: `build(&ProbeSpec, out) -> len` writes an inner IPv4 ICMP
//! echo packet carrying the sequence number and the node id.
use super::CheckType;
use crate::wire::checksum::checksum;

pub struct ProbeSpec {
    pub kind: CheckType,
    pub src: u32,
    pub dst: u32,
    pub seq: u32,
    pub node_id: u32,
}

/// Writes the probe into `out` (at least 36 bytes) and returns its length; 0 if it does not fit.
pub fn build(spec: &ProbeSpec, out: &mut [u8]) -> usize {
    const LEN: usize = 36;
    let Some(p) = out.get_mut(..LEN) else {
        return 0;
    };
    p.fill(0);
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(LEN as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 1;
    p[12..16].copy_from_slice(&spec.src.to_be_bytes());
    p[16..20].copy_from_slice(&spec.dst.to_be_bytes());
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20] = match spec.kind {
        CheckType::Reply => 0,
        CheckType::Request => 8,
    };
    p[24..28].copy_from_slice(&spec.seq.to_be_bytes());
    p[28..32].copy_from_slice(&spec.node_id.to_be_bytes());
    let c = checksum(&p[20..]);
    p[22..24].copy_from_slice(&c.to_be_bytes());
    LEN
}
