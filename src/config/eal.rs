//! `dpdk.eal_args` and the `device` of each port, checked as far as possible without starting
//! the EAL: options anygate sets itself (in any spelling getopt accepts), anything that would
//! not make anygate the primary process, options missing their value, PCI ports under
//! `--no-pci`, and vdev names that no network vdev driver of this DPDK would take.
use super::parse::Errs;

/// EAL short options that take a value (DPDK 22.11's `eal_short_options`: `a:b:c:s:d:hl:S:m:n:r:v`).
const SHORT_WITH_VALUE: &str = "abcdlmnrsS";
/// EAL short options without one.
const SHORT_FLAGS: &str = "hv";
/// EAL long options whose value is required, so it may be the next argument.
const LONG_WITH_VALUE: &[&str] = &[
    "allow",
    "base-virtaddr",
    "block",
    "file-prefix",
    "force-max-simd-bitwidth",
    "huge-dir",
    "iova-mode",
    "lcores",
    "log-level",
    "main-lcore",
    "mbuf-pool-ops-name",
    "proc-type",
    "socket-limit",
    "socket-mem",
    "trace",
    "trace-bufsz",
    "trace-dir",
    "trace-mode",
    "vdev",
    "vfio-intr",
    "vfio-vf-token",
];
/// EAL long options without a value, or with an optional one (`--syslog[=facility]`), so
/// never taking the next argument. With `LONG_WITH_VALUE`, every long option DPDK 22.11's
/// `eal_long_options` knows: anything else makes `rte_eal_init` fail with its usage text.
const LONG_FLAGS: &[&str] = &[
    "create-uio-dev",
    "help",
    "huge-unlink",
    "huge-worker-stack",
    "in-memory",
    "legacy-mem",
    "match-allocations",
    "no-hpet",
    "no-huge",
    "no-pci",
    "no-shconf",
    "no-telemetry",
    "single-file-segments",
    "syslog",
    "telemetry",
    "vmware-tsc-map",
];
/// Of `LONG_FLAGS`, those that take no value at all (`--no-huge=1` is refused by getopt).
const LONG_OPTIONAL_VALUE: &[&str] = &["huge-unlink", "huge-worker-stack", "syslog"];

/// Options anygate derives from the config: `-l <main_core>`, and since it probes each port
/// itself, the device lists.
const MANAGED_SHORT: &str = "lcab";
const MANAGED_LONG: &[&str] = &["lcores", "main-lcore", "vdev", "allow", "block"];

/// Network drivers on DPDK 22.11's vdev bus (those `RTE_PMD_REGISTER_VDEV` registers in the
/// Debian build, `/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`), then their aliases. A vdev is
/// named `<driver><suffix>` (`net_null0`); the bus takes the first driver the name starts with.
/// DPDK cannot be asked before its EAL has loaded the drivers, hence the list.
pub const VDEV_DRIVERS: &[&str] = &[
    "net_af_packet",
    "net_af_xdp",
    "net_bonding",
    "net_enetfec",
    "net_failsafe",
    "net_memif",
    "net_null",
    "net_octeontx",
    "net_pcap",
    "net_pfe",
    "net_ring",
    "net_softnic",
    "net_tap",
    "net_tun",
    "net_vdev_netvsc",
    "net_vhost",
    "net_virtio_user",
];
const VDEV_ALIASES: &[&str] = &[
    "eth_af_packet",
    "eth_bond",
    "eth_null",
    "eth_octeontx",
    "eth_pcap",
    "eth_ring",
    "eth_tap",
    "eth_vdev_netvsc",
    "eth_vhost",
];

/// What the EAL arguments say about the ports.
#[derive(Debug, Default)]
pub(super) struct EalFacts {
    /// Index of `--no-pci` in `dpdk.eal_args`.
    pub no_pci: Option<usize>,
}

/// One option as getopt would read it.
struct Opt<'a> {
    /// Index of the argument that names it.
    index: usize,
    /// As written: `-l1`, `--lcores=0`.
    text: &'a str,
    /// `-l`, `--lcores` (abbreviations of managed long options resolved).
    name: String,
    value: Option<&'a str>,
}

/// Checks `dpdk.eal_args`; errors name `dpdk.eal_args[k]`.
pub(super) fn check_eal_args(args: &[String], e: &mut Errs) -> EalFacts {
    let mut facts = EalFacts::default();
    let mut opts = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let (idx, a) = (i, args[i].as_str());
        let path = format!("dpdk.eal_args[{idx}]");
        i += 1;
        if a.trim().is_empty() {
            e.push(path, "empty argument");
            continue;
        }
        let (name, inline, needs_value) = if let Some(long) = a.strip_prefix("--") {
            let (n, v) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            if n.is_empty() {
                // getopt stops there: anygate's own options, after these, would be ignored.
                e.push(path, format!("`{a}` would end the EAL options; remove it"));
                continue;
            }
            // getopt_long takes any unambiguous abbreviation.
            let all = || LONG_WITH_VALUE.iter().chain(LONG_FLAGS);
            let candidates: Vec<&str> = all().copied().filter(|o| o.starts_with(n)).collect();
            let n = match candidates[..] {
                _ if all().any(|o| *o == n) => n,
                [only] => only,
                [] => {
                    e.push(
                        path,
                        format!(
                            "`--{n}` is not an EAL option of DPDK 22.11 (rte_eal_init would \
                             refuse it)"
                        ),
                    );
                    continue;
                }
                _ => {
                    e.push(
                        path,
                        format!("`--{n}` is ambiguous: --{}", candidates.join(", --")),
                    );
                    continue;
                }
            };
            if v.is_some() && LONG_FLAGS.contains(&n) && !LONG_OPTIONAL_VALUE.contains(&n) {
                e.push(path, format!("`--{n}` takes no value"));
                continue;
            }
            (format!("--{n}"), v, LONG_WITH_VALUE.contains(&n))
        } else if let Some(short) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            // Flags may be grouped (`-vl1`); the first option that takes a value ends the group
            // and the rest of the argument is its value.
            let skip = short
                .chars()
                .take_while(|c| SHORT_FLAGS.contains(*c))
                .count();
            let mut rest = short[skip..].chars();
            match rest.next() {
                Some(c) if SHORT_WITH_VALUE.contains(c) => {
                    let v = rest.as_str();
                    (format!("-{c}"), (!v.is_empty()).then_some(v), true)
                }
                Some(c) if !SHORT_FLAGS.contains(c) => {
                    e.push(
                        path,
                        format!(
                            "`{a}`: `-{c}` is not an EAL option of DPDK 22.11 (rte_eal_init \
                             would refuse it)"
                        ),
                    );
                    continue;
                }
                _ => (a.to_owned(), None, false),
            }
        } else {
            e.push(
                path,
                format!("`{a}` is not an EAL option (a value without its option?)"),
            );
            continue;
        };
        let value = match (inline, needs_value) {
            (Some(v), _) => Some(v),
            (None, true) => match args.get(i) {
                Some(v) if !v.starts_with("--") && !v.trim().is_empty() => {
                    i += 1;
                    Some(v.as_str())
                }
                _ => None,
            },
            (None, false) => None,
        };
        if needs_value && value.is_none_or(|v| v.trim().is_empty()) {
            e.push(path, format!("`{name}` needs a value"));
            continue;
        }
        opts.push(Opt {
            index: idx,
            text: a,
            name,
            value,
        });
    }
    for o in &opts {
        let path = format!("dpdk.eal_args[{}]", o.index);
        // `get`, not indexing: an unknown option may start with a multi-byte character
        // (found by fuzz/run's config target: `-әile-prefix` panicked here).
        let short_managed =
            o.name.len() == 2 && o.name.get(1..).is_some_and(|s| MANAGED_SHORT.contains(s));
        if short_managed || MANAGED_LONG.iter().any(|m| o.name.get(2..) == Some(*m)) {
            let shown = if o.text == o.name {
                format!("`{}`", o.text)
            } else {
                format!("`{}` (`{}`)", o.text, o.name)
            };
            e.push(
                path,
                format!("{shown} is set by anygate from dpdk.main_core, [[workers]] and [[ports]]; remove it"),
            );
        } else if o.name == "--proc-type" && o.value != Some("primary") {
            e.push(
                path,
                format!(
                    "`--proc-type {}`: anygate must be the primary DPDK process (it creates \
                     the mempool and the ports); remove it",
                    o.value.unwrap_or("")
                ),
            );
        } else if o.name == "--no-pci" {
            facts.no_pci.get_or_insert(o.index);
        }
    }
    facts
}

/// True for a PCI address (`0000:01:00.0` or `01:00.0`), false for a vdev string.
pub fn is_pci(device: &str) -> bool {
    let name = device.split(',').next().unwrap_or("");
    name.contains(':')
        && name.contains('.')
        && name
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
}

/// A PCI address as the EAL reads it: the domain added when left out, hex in lower case
/// (`01:00.0` and `0000:01:00.0` are one device). None for anything else.
pub(super) fn normalized_pci(name: &str) -> Option<String> {
    if !is_pci(name) {
        return None;
    }
    let name = name.to_ascii_lowercase();
    let (bus_dev, func) = name.rsplit_once('.')?;
    let parts: Vec<&str> = bus_dev.split(':').collect();
    let (domain, bus, dev) = match parts[..] {
        [b, d] => ("0", b, d),
        [dom, b, d] => (dom, b, d),
        _ => return None,
    };
    let hex = |s: &str, max: u32| u32::from_str_radix(s, 16).ok().filter(|v| *v <= max);
    Some(format!(
        "{:04x}:{:02x}:{:02x}.{:x}",
        hex(domain, 0xffff)?,
        hex(bus, 0xff)?,
        hex(dev, 0x1f)?,
        hex(func, 7)?
    ))
}

/// Checks `ports[i].device` (not empty) against the EAL arguments and the vdev drivers.
pub(super) fn check_device(i: usize, device: &str, facts: &EalFacts, e: &mut Errs) {
    let path = format!("ports[{i}].device");
    if is_pci(device) {
        let name = device.split(',').next().unwrap_or("");
        if normalized_pci(name).is_none() {
            e.push(
                path.clone(),
                format!("`{name}` is not a PCI address (DDDD:BB:DD.F or BB:DD.F, in hex)"),
            );
        }
        if let Some(k) = facts.no_pci {
            e.push(
                path,
                format!(
                    "`{device}` is a PCI device, but dpdk.eal_args[{k}] is `--no-pci`; remove one"
                ),
            );
        }
        return;
    }
    let name = device.split(',').next().unwrap_or("");
    if VDEV_DRIVERS
        .iter()
        .chain(VDEV_ALIASES)
        .any(|d| name.starts_with(d))
    {
        return;
    }
    let hint = match closest_driver(name) {
        Some(d) => format!("did you mean {d}?"),
        None => format!("drivers: {}", VDEV_DRIVERS.join(", ")),
    };
    e.push(
        path,
        format!(
            "`{name}` is no PCI address and names no vdev driver of this DPDK (vdev names are \
             <driver><suffix>, e.g. net_null0); {hint}"
        ),
    );
}

/// The driver whose name is nearest the vdev name without its numeric suffix, if near enough.
fn closest_driver(name: &str) -> Option<&'static str> {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    VDEV_DRIVERS
        .iter()
        .map(|d| (edit_distance(stem, d), *d))
        .min()
        .filter(|(dist, _)| *dist <= 3)
        .map(|(_, d)| d)
}

/// Levenshtein distance over bytes.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(args: &[&str]) -> Vec<String> {
        let mut e = Errs(Vec::new());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        check_eal_args(&args, &mut e);
        e.0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn ordinary_arguments_pass() {
        let ok = [
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--file-prefix",
            "ag1",
            "--log-level",
            "lib.eal:warning",
            "--proc-type=primary",
            "-n4",
            "--in-memory",
        ];
        assert_eq!(errs(&ok), Vec::<String>::new());
    }

    #[test]
    fn options_with_multibyte_characters_do_not_panic() {
        // Found by fuzz/run (config target): byte slicing inside a multi-byte character.
        for a in ["-әile-prefix", "-ә", "--ә", "-lә", "--әx=1", "-\u{1f600}"] {
            let _ = errs(&["--no-huge", a, "anygate-demo"]);
        }
        assert!(errs(&["-lә"])[0].starts_with("dpdk.eal_args[0]: `-lә` (`-l`) is set by anygate"));
    }

    #[test]
    fn managed_options_refused_in_every_spelling() {
        for (a, name) in [
            (&["-l", "0"][..], "-l"),
            (&["-l1"], "-l"),
            (&["-c3"], "-c"),
            (&["-a0000:01:00.0"], "-a"),
            (&["-bX"], "-b"),
            (&["-vl1"], "-l"),
            (&["--lcores=0-1"], "--lcores"),
            (&["--lcore=0-1"], "--lcores"),
            (&["--vdev=net_null9"], "--vdev"),
            (&["--main-lcore", "0"], "--main-lcore"),
            (&["--main", "0"], "--main-lcore"),
            (&["--allow=0000:01:00.0"], "--allow"),
        ] {
            let e = errs(&[&["--no-huge"][..], a, &["-m", "256"]].concat());
            assert_eq!(e.len(), 1, "{a:?}: {e:?}");
            assert!(e[0].starts_with("dpdk.eal_args[1]: `"), "{a:?}: {e:?}");
            assert!(e[0].contains(&format!("`{name}`")), "{a:?}: {e:?}");
            assert!(e[0].contains("is set by anygate"), "{a:?}: {e:?}");
        }
    }

    #[test]
    fn secondary_process_refused() {
        for args in [
            &["--proc-type=secondary"][..],
            &["--proc-type", "secondary"],
            &["--proc-type", "auto"],
        ] {
            let e = errs(args);
            assert_eq!(e.len(), 1, "{args:?}: {e:?}");
            assert!(
                e[0].starts_with("dpdk.eal_args[0]: `--proc-type ")
                    && e[0].contains("must be the primary"),
                "{args:?}: {e:?}"
            );
        }
    }

    #[test]
    fn missing_values_and_empty_arguments_refused() {
        assert_eq!(
            errs(&["--no-huge", "--file-prefix"]),
            vec!["dpdk.eal_args[1]: `--file-prefix` needs a value"]
        );
        assert_eq!(
            errs(&["--file-prefix", "--no-pci"]),
            vec!["dpdk.eal_args[0]: `--file-prefix` needs a value"]
        );
        assert_eq!(
            errs(&["--file-prefix="]),
            vec!["dpdk.eal_args[0]: `--file-prefix` needs a value"]
        );
        assert_eq!(
            errs(&["--no-huge", "", "-m", "256"]),
            vec!["dpdk.eal_args[1]: empty argument"]
        );
        assert_eq!(errs(&["-m"]), vec!["dpdk.eal_args[0]: `-m` needs a value"]);
        assert_eq!(
            errs(&["-m", "256", "512"]),
            vec!["dpdk.eal_args[2]: `512` is not an EAL option (a value without its option?)"]
        );
    }

    #[test]
    fn options_this_dpdk_does_not_know_refused() {
        // rte_eal_init would stop the start with its usage text.
        assert_eq!(
            errs(&["--no-huge", "--unknown-opt"]),
            ["dpdk.eal_args[1]: `--unknown-opt` is not an EAL option of DPDK 22.11 (rte_eal_init would refuse it)"]
        );
        assert_eq!(
            errs(&["-z"]),
            ["dpdk.eal_args[0]: `-z`: `-z` is not an EAL option of DPDK 22.11 (rte_eal_init would refuse it)"]
        );
        assert_eq!(
            errs(&["--huge"]),
            ["dpdk.eal_args[0]: `--huge` is ambiguous: --huge-dir, --huge-unlink, --huge-worker-stack"]
        );
        assert_eq!(
            errs(&["--no-huge=1"]),
            ["dpdk.eal_args[0]: `--no-huge` takes no value"]
        );
        assert_eq!(
            errs(&["--", "-m", "256"]),
            ["dpdk.eal_args[0]: `--` would end the EAL options; remove it"]
        );
        // Abbreviations getopt accepts, and optional values.
        assert_eq!(
            errs(&[
                "--in-mem",
                "--syslog=daemon",
                "--huge-unlink=never",
                "-hv",
                "--telemetry"
            ]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn pci_addresses_normalized() {
        assert_eq!(normalized_pci("01:00.0").as_deref(), Some("0000:01:00.0"));
        assert_eq!(
            normalized_pci("0000:0A:1f.7").as_deref(),
            Some("0000:0a:1f.7")
        );
        assert_eq!(normalized_pci("1:2:3:4.0"), None);
        assert_eq!(normalized_pci("01:20.0"), None, "device is 0..=1f");
        assert_eq!(normalized_pci("net_null0"), None);
    }

    #[test]
    fn value_index_is_the_option_s() {
        // The error of an option that takes the next argument names the option, not the value.
        let e = errs(&["--no-huge", "--vdev", "net_null0"]);
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("dpdk.eal_args[1]: `--vdev`"), "{e:?}");
    }

    fn device_errs(device: &str, eal: &[&str]) -> Vec<String> {
        let mut e = Errs(Vec::new());
        let args: Vec<String> = eal.iter().map(|s| s.to_string()).collect();
        let facts = check_eal_args(&args, &mut e);
        check_device(2, device, &facts, &mut e);
        e.0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn vdev_driver_checked() {
        for ok in [
            "net_null0",
            "net_pcap1,rx_pcap=a.pcap",
            "eth_null0",
            "net_af_packet0,iface=veth0",
            "net_tap0",
            "net_memif",
        ] {
            assert_eq!(device_errs(ok, &[]), Vec::<String>::new(), "{ok}");
        }
        let e = device_errs("net_nul0", &[]);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with(
                "ports[2].device: `net_nul0` is no PCI address and names no vdev driver"
            ) && e[0].ends_with("did you mean net_null?"),
            "{e:?}"
        );
        assert!(device_errs("nte_pcap0,rx_pcap=x", &[])[0].ends_with("did you mean net_pcap?"));
        let e = device_errs("bogus0", &[]);
        assert!(e[0].contains("drivers: net_af_packet, "), "{e:?}");
    }

    #[test]
    fn pci_device_under_no_pci_refused() {
        assert_eq!(
            device_errs("0000:01:00.0", &["--no-huge"]),
            Vec::<String>::new()
        );
        assert_eq!(
            device_errs("01:00.0", &["--no-huge", "--no-pci"]),
            vec![
                "ports[2].device: `01:00.0` is a PCI device, but dpdk.eal_args[1] is `--no-pci`; remove one"
            ]
        );
        assert_eq!(
            device_errs("net_null0", &["--no-pci"]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn pci_or_vdev() {
        assert!(is_pci("0000:01:00.0"));
        assert!(is_pci("01:00.1"));
        assert!(!is_pci("net_pcap0,rx_pcap=a.pcap"));
        assert!(!is_pci("net_null0"));
    }
}
