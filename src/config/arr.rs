//! Validation of `[arr]`: the Automatic Return Routing flow table's size and idle timeouts.
use super::parse::Errs;
use super::schema::RawArr;
use crate::arr::Timeouts;

/// Default table size: one million flows (24 MiB at 24 bytes an entry).
pub const DEFAULT_MAX_FLOWS: u64 = 1 << 20;
/// At most 64 Mi flows (1.5 GiB): a bigger table is a typo, not a plan.
pub const MAX_FLOWS: u64 = 1 << 26;
const MIN_FLOWS: u64 = 1024;
const TIMEOUT_S: std::ops::RangeInclusive<u64> = 1..=86_400;

#[derive(Debug, Clone, PartialEq)]
pub struct ArrConf {
    /// Entries in the table (rounded up to a power of two when allocated).
    pub max_flows: usize,
    pub timeouts: Timeouts,
}

impl Default for ArrConf {
    fn default() -> Self {
        ArrConf {
            max_flows: DEFAULT_MAX_FLOWS as usize,
            timeouts: Timeouts::default(),
        }
    }
}

pub fn validate_arr(raw: &RawArr, e: &mut Errs) -> ArrConf {
    let mut c = ArrConf::default();
    if let Some(n) = raw.max_flows {
        if (MIN_FLOWS..=MAX_FLOWS).contains(&n) {
            c.max_flows = n as usize;
        } else {
            e.push(
                "arr.max_flows",
                format!("{n} is not in {MIN_FLOWS}..={MAX_FLOWS}"),
            );
        }
    }
    let t = &mut c.timeouts;
    let given = [
        (
            "tcp_established_timeout",
            raw.tcp_established_timeout,
            &mut t.tcp_established,
        ),
        ("tcp_syn_timeout", raw.tcp_syn_timeout, &mut t.tcp_syn),
        (
            "tcp_closing_timeout",
            raw.tcp_closing_timeout,
            &mut t.tcp_closing,
        ),
        ("udp_timeout", raw.udp_timeout, &mut t.udp),
        ("icmp_timeout", raw.icmp_timeout, &mut t.icmp),
    ];
    for (key, v, slot) in given {
        let Some(v) = v else { continue };
        if TIMEOUT_S.contains(&v) {
            *slot = v as u32;
        } else {
            e.push(
                format!("arr.{key}"),
                format!("{v} is not in 1..=86400 seconds"),
            );
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, Host};

    fn config(extra: &str) -> String {
        format!("[node]\nanycast_addresses = [\"192.0.2.100\"]\n[[ports]]\nname = \"p\"\ndevice = \"net_null0\"\naddress = \"192.0.2.1/24\"\n[[workers]]\ncore = 1\nrx = [{{ port = \"p\" }}]\n{extra}")
    }

    fn errors(extra: &str) -> String {
        match parse(&config(extra), &Host { cores: vec![0, 1] }) {
            Ok(c) => format!("ok {} {:?}", c.arr.max_flows, c.arr.timeouts),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_and_bad_values_named() {
        assert_eq!(
            errors(""),
            "ok 1048576 Timeouts { tcp_established: 300, tcp_syn: 30, tcp_closing: 10, udp: 60, icmp: 30, other: 30 }"
        );
        assert_eq!(
            errors("[arr]\nmax_flows = 4096\nudp_timeout = 5"),
            "ok 4096 Timeouts { tcp_established: 300, tcp_syn: 30, tcp_closing: 10, udp: 5, icmp: 30, other: 30 }"
        );
        assert_eq!(
            errors("[arr]\nmax_flows = 10"),
            "arr.max_flows: 10 is not in 1024..=67108864"
        );
        assert_eq!(
            errors("[arr]\ntcp_syn_timeout = 0\nicmp_timeout = 100000"),
            "arr.tcp_syn_timeout: 0 is not in 1..=86400 seconds\narr.icmp_timeout: 100000 is not in 1..=86400 seconds"
        );
        assert!(errors("[arr]\nsize = 1").contains("unknown field `size`"));
    }
}
