//! `[punt]`: the exception port toward the kernel. Packets for our own addresses that the data
//! plane does not answer itself (BGP, ping, anything else) go through a `net_tap` device whose
//! kernel side holds our port and tunnel-interface addresses; what the kernel sends back is
//! routed like any packet. Off by default. `enabled`, `interface` and `mtu` are read at start
//! (the device is made once); `rate` and `burst` reload live.
use super::parse::Errs;
use serde::{Deserialize, Serialize};

/// Most punted packets per second per worker that can be configured, and the largest burst.
pub const MAX_PUNT_RATE: u32 = 1_000_000;
pub const MAX_PUNT_BURST: u32 = 100_000;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPunt {
    #[serde(default)]
    pub enabled: bool,
    /// The kernel interface's name.
    #[serde(default = "default_interface")]
    pub interface: String,
    /// Packets per second each worker may punt (a token bucket on the TSC), and the bucket's
    /// depth.
    #[serde(default = "default_rate")]
    pub rate: u32,
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// The tap's MTU, on both sides.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
}

impl Default for RawPunt {
    fn default() -> Self {
        RawPunt {
            enabled: false,
            interface: default_interface(),
            rate: default_rate(),
            burst: default_burst(),
            mtu: default_mtu(),
        }
    }
}

fn default_interface() -> String {
    "anygate0".to_owned()
}
fn default_rate() -> u32 {
    1000
}
fn default_burst() -> u32 {
    200
}
fn default_mtu() -> u16 {
    1500
}

/// The validated section. `enabled == false`: no device, and packets for us are dropped as
/// `local_destination`, as before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PuntConf {
    pub enabled: bool,
    pub interface: String,
    pub rate: u32,
    pub burst: u32,
    pub mtu: u16,
}

impl Default for PuntConf {
    fn default() -> Self {
        let r = RawPunt::default();
        PuntConf {
            enabled: r.enabled,
            interface: r.interface,
            rate: r.rate,
            burst: r.burst,
            mtu: r.mtu,
        }
    }
}

impl RawPunt {
    /// What only a restart changes: the device and its kernel interface.
    pub fn device_part(&self) -> (bool, &str, u16) {
        (self.enabled, &self.interface, self.mtu)
    }
}

impl super::Config {
    /// A port's name by index, the exception port's kernel interface name for the port after
    /// the configured ones when `[punt]` is on, else "?": for trace and capture.
    pub fn port_label(&self, p: u16) -> &str {
        match self.ports.get(p as usize) {
            Some(port) => &port.name,
            None if self.punt.enabled && p as usize == self.ports.len() => &self.punt.interface,
            None => "?",
        }
    }
}

/// A Linux interface name: 1-15 characters, none of them a slash, space, colon or quote.
fn is_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

pub(super) fn validate_punt(raw: &RawPunt, n_ports: usize, e: &mut Errs) -> PuntConf {
    if !is_ifname(&raw.interface) {
        e.push(
            "punt.interface",
            format!(
                "`{}` must be 1-15 characters of letters, digits, - _ .",
                raw.interface
            ),
        );
    }
    if !(1..=MAX_PUNT_RATE).contains(&raw.rate) {
        e.push(
            "punt.rate",
            format!(
                "{} is not in 1..={MAX_PUNT_RATE} packets per second",
                raw.rate
            ),
        );
    }
    if !(1..=MAX_PUNT_BURST).contains(&raw.burst) {
        e.push(
            "punt.burst",
            format!("{} is not in 1..={MAX_PUNT_BURST} packets", raw.burst),
        );
    }
    if !(576..=9600).contains(&raw.mtu) {
        e.push("punt.mtu", format!("{} is not in 576..=9600", raw.mtu));
    }
    if raw.enabled && n_ports >= crate::limits::MAX_PORTS {
        e.push(
            "punt.enabled",
            format!(
                "the exception port takes a port slot: at most {} [[ports]] with punt on",
                crate::limits::MAX_PORTS - 1
            ),
        );
    }
    PuntConf {
        enabled: raw.enabled,
        interface: raw.interface.clone(),
        rate: raw.rate,
        burst: raw.burst,
        mtu: raw.mtu,
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::super::test_support::{host, ONE_PORT as BASE};

    fn refused(punt: &str) -> String {
        super::super::test_support::refused("punt", punt)
    }

    #[test]
    fn off_by_default_with_documented_defaults() {
        let c = parse(BASE, &host()).unwrap();
        assert!(!c.punt.enabled);
        assert_eq!(c.punt.interface, "anygate0");
        assert_eq!((c.punt.rate, c.punt.burst, c.punt.mtu), (1000, 200, 1500));
        let c = parse(
            &format!(
                "{BASE}\n[punt]\nenabled = true\ninterface = \"ag-k\"\nrate = 50\nburst = 5\n"
            ),
            &host(),
        )
        .unwrap();
        assert!(c.punt.enabled);
        assert_eq!(c.punt.interface, "ag-k");
        assert_eq!((c.punt.rate, c.punt.burst), (50, 5));
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(
            refused("interface = \"a/b\""),
            "punt.interface: `a/b` must be 1-15 characters of letters, digits, - _ ."
        );
        assert_eq!(
            refused("interface = \"a-name-too-long-for-linux\""),
            "punt.interface: `a-name-too-long-for-linux` must be 1-15 characters of letters, digits, - _ ."
        );
        assert_eq!(
            refused("rate = 0"),
            "punt.rate: 0 is not in 1..=1000000 packets per second"
        );
        assert_eq!(
            refused("burst = 0"),
            "punt.burst: 0 is not in 1..=100000 packets"
        );
        assert_eq!(refused("mtu = 100"), "punt.mtu: 100 is not in 576..=9600");
        assert!(refused("colour = 1").contains("unknown field `colour`"));
    }

    #[test]
    fn the_device_needs_a_restart_the_rate_reloads() {
        let with = |punt: &str| parse(&format!("{BASE}\n[punt]\n{punt}\n"), &host()).unwrap();
        let running = with("enabled = true");
        let fixed = "punt.enabled, punt.interface, punt.mtu";
        assert_eq!(with("enabled = false").restart_required(&running), [fixed]);
        assert_eq!(
            with("enabled = true\ninterface = \"k1\"").restart_required(&running),
            [fixed]
        );
        assert_eq!(
            with("enabled = true\nmtu = 9000").restart_required(&running),
            [fixed]
        );
        let none: [&str; 0] = [];
        assert_eq!(
            with("enabled = true\nrate = 5\nburst = 2").restart_required(&running),
            none
        );
    }

    #[test]
    fn the_exception_port_has_a_label() {
        let off = parse(BASE, &host()).unwrap();
        assert_eq!((off.port_label(0), off.port_label(1)), ("p0", "?"));
        let on = parse(&format!("{BASE}\n[punt]\nenabled = true\n"), &host()).unwrap();
        let labels = [on.port_label(0), on.port_label(1), on.port_label(2)];
        assert_eq!(labels, ["p0", "anygate0", "?"]);
    }

    #[test]
    fn the_port_slot_must_be_free() {
        let mut text = String::new();
        for i in 0..crate::limits::MAX_PORTS {
            text.push_str(&format!(
                "[[ports]]\nname = \"p{i}\"\ndevice = \"net_null{i}\"\naddress = \"10.{i}.0.1/24\"\n"
            ));
        }
        let rx: Vec<String> = (0..crate::limits::MAX_PORTS)
            .map(|i| format!("{{ port = \"p{i}\" }}"))
            .collect();
        text.push_str(&format!(
            "[[workers]]\ncore = 1\nrx = [{}]\n",
            rx.join(", ")
        ));
        if let Err(e) = parse(&text, &host()) {
            panic!("{e}");
        }
        let err = parse(&format!("{text}[punt]\nenabled = true\n"), &host())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "punt.enabled: the exception port takes a port slot: at most 15 [[ports]] with punt on"
        );
    }
}
