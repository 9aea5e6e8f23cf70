//! Parsing helpers and the error collector the section validators share.
use super::ConfigError;
use crate::lpm::Prefix;
use std::net::Ipv4Addr;

/// True when `ip` is the network or broadcast address of its /`len` (a /31 has neither).
pub(super) fn is_subnet_edge(ip: u32, len: u8) -> bool {
    let host = !Prefix::mask(len);
    len <= 30 && (ip & host == 0 || ip & host == host)
}

pub(super) fn parse_ip(s: &str) -> Result<u32, String> {
    s.parse::<Ipv4Addr>()
        .map(u32::from)
        .map_err(|_| format!("`{s}` is not an IPv4 address"))
}

/// Parses `a.b.c.d/len`, returning the address as written and the length.
pub(super) fn parse_cidr(s: &str) -> Result<(u32, u8), String> {
    let (a, l) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not a CIDR (want a.b.c.d/len)"))?;
    let addr =
        parse_ip(a).map_err(|_| format!("`{s}` is not a CIDR: `{a}` is not an IPv4 address"))?;
    let len: u8 = l
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| format!("`{s}` is not a CIDR: prefix length `{l}` is not 0..=32"))?;
    Ok((addr, len))
}

/// Parses a route prefix, refusing host bits.
pub fn parse_prefix(s: &str) -> Result<Prefix, String> {
    let (addr, len) = parse_cidr(s)?;
    Prefix::new(addr, len).ok_or_else(|| format!("host bits set in {s}"))
}

pub(super) struct Errs(pub(super) Vec<ConfigError>);
impl Errs {
    pub(super) fn push(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.0.push(ConfigError::new(path, msg));
    }
}
