//! The exception port's kernel side (`[punt]`): a `net_tap` device made at start, after the
//! configured ports, whose kernel interface holds our port and tunnel-interface addresses
//! (each with its prefix, so the kernel's connected routes send replies back through it).
//!
//! Why `net_tap` and not `net_tun`: the pipeline works on Ethernet frames, and a tap's are
//! Ethernet, so what the kernel sends enters the graph as from any port. The kernel side is
//! set `arp off`: it resolves nothing, and sends every frame to its own MAC, which is the
//! DPDK side's too (set here), so the data plane takes it as addressed to that port.
//!
//! The kernel is changed with `ip -batch` under a deadline (`IP_TIMEOUT`), and sysctls by
//! writing their /proc files: the management thread never waits longer than that.
use crate::config::{Config, PuntConf};
use crate::wire::MacAddr;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest one `ip` run may take before it is killed.
const IP_TIMEOUT: Duration = Duration::from_secs(2);
/// The DPDK device name (the tap driver matches the `net_tap` prefix).
pub const VDEV: &str = "net_tap_punt";

/// The device string probed at start.
pub fn vdev_args(p: &PuntConf) -> String {
    format!("{VDEV},iface={}", p.interface)
}

/// Sysctls of the kernel interface, and why: no IPv6 (its router solicitations would only
/// be dropped as `unsupported_ethertype`); no forwarding of what comes in from the data plane
/// (the kernel is an end host here, never a router between its interfaces); no redirects.
const SYSCTLS: &[(&str, &str)] = &[
    ("ipv6/conf/{if}/disable_ipv6", "1"),
    ("ipv4/conf/{if}/forwarding", "0"),
    ("ipv4/conf/{if}/send_redirects", "0"),
    ("ipv4/conf/{if}/accept_redirects", "0"),
];

/// The addresses the kernel side should hold for `cfg`, as `a.b.c.d/len`: every port's and
/// our side of every tunnel's interface subnet. Anycast addresses are not given: they only
/// end tunnels.
pub fn addresses(cfg: &Config) -> BTreeSet<String> {
    let cidr = |a: u32, l: u8| format!("{}/{l}", std::net::Ipv4Addr::from(a));
    cfg.ports
        .iter()
        .map(|p| cidr(p.addr, p.prefix_len))
        .chain(cfg.tunnels.iter().map(|t| cidr(t.local_addr, t.prefix_len)))
        .collect()
}

/// The `ip -batch` lines that take the interface from `have` to `want`.
pub fn batch(ifname: &str, have: &BTreeSet<String>, want: &BTreeSet<String>) -> String {
    let mut s = String::new();
    for a in have.difference(want) {
        s.push_str(&format!("address del {a} dev {ifname}\n"));
    }
    for a in want.difference(have) {
        s.push_str(&format!("address replace {a} dev {ifname}\n"));
    }
    s
}

/// The kernel side as configured so far.
pub struct KernelSide {
    ifname: String,
    applied: BTreeSet<String>,
    /// The snapshot generation last synced for.
    generation: u64,
}

impl KernelSide {
    /// Sets the interface up (its MAC the DPDK side's, no ARP, the MTU), its sysctls and its
    /// addresses. An error names what failed; the caller refuses the start.
    pub fn start(p: &PuntConf, mac: MacAddr, cfg: &Config) -> Result<KernelSide, String> {
        let ifname = p.interface.clone();
        run_ip(&format!(
            "link set dev {ifname} address {mac} arp off mtu {} up\n",
            p.mtu
        ))
        .map_err(|e| format!("punt.interface {ifname}: {e}"))?;
        for (key, value) in SYSCTLS {
            let path = format!("/proc/sys/net/{}", key.replace("{if}", &ifname));
            if let Err(e) = std::fs::write(&path, value) {
                log::warn!("punt: cannot set {path} to {value}: {e}");
            }
        }
        let mut k = KernelSide {
            ifname,
            applied: BTreeSet::new(),
            generation: 0,
        };
        k.sync(cfg)?;
        Ok(k)
    }

    /// Brings the addresses in line with `cfg` when the table was republished (a reload may
    /// have added or removed tunnels); a failure is logged and retried at the next change.
    pub fn sync_if_changed(&mut self, cfg: &Config, generation: u64) {
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        if let Err(e) = self.sync(cfg) {
            log::error!("punt: kernel addresses not updated: {e}");
        }
    }

    fn sync(&mut self, cfg: &Config) -> Result<(), String> {
        let want = addresses(cfg);
        let lines = batch(&self.ifname, &self.applied, &want);
        if lines.is_empty() {
            return Ok(());
        }
        run_ip(&lines)?;
        log::info!(
            "punt: {} holds {} addresses ({} changed)",
            self.ifname,
            want.len(),
            lines.lines().count()
        );
        self.applied = want;
        Ok(())
    }
}

/// Runs `ip -force -batch -` on `lines`, killed after IP_TIMEOUT.
fn run_ip(lines: &str) -> Result<(), String> {
    let mut child = Command::new("ip")
        .args(["-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    // The lines are small (a pipe holds 64 KiB); a larger batch is written while `ip` reads.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(lines.as_bytes());
    }
    let deadline = Instant::now() + IP_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = (&mut e).take(4096).read_to_string(&mut err);
                }
                return Err(format!("`ip` failed ({status}): {}", err.trim()));
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`ip` took more than {IP_TIMEOUT:?}; killed"));
            }
            Err(e) => return Err(format!("waiting for `ip`: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Host};

    #[test]
    fn ports_and_tunnel_sides_with_their_prefixes_not_anycast() {
        let cfg = parse(
            r#"
[node]
anycast_addresses = ["203.0.113.10"]
[[ports]]
name = "wan"
device = "net_null0"
address = "100.64.0.1/24"
[[workers]]
core = 1
rx = [{ port = "wan" }]
[[routes]]
prefix = "198.51.100.20/32"
nexthop = "100.64.0.2"
[[tunnels]]
name = "acme"
type = "gre"
customer_endpoint = "198.51.100.20"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"
"#,
            &Host { cores: vec![0, 1] },
        )
        .unwrap();
        let a: Vec<String> = addresses(&cfg).into_iter().collect();
        assert_eq!(a, ["10.100.0.0/31", "100.64.0.1/24"]);
    }

    #[test]
    fn batch_removes_then_adds_only_the_difference() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let have = set(&["10.0.0.1/24", "10.100.0.0/31"]);
        let want = set(&["10.0.0.1/24", "10.100.0.2/31"]);
        assert_eq!(
            batch("ag0", &have, &want),
            "address del 10.100.0.0/31 dev ag0\naddress replace 10.100.0.2/31 dev ag0\n"
        );
        assert_eq!(batch("ag0", &want, &want), "");
    }
}
