//! `check` is as strict as `run`: whatever can be known without the devices is refused by both,
//! `run` before it starts the EAL; what only DPDK can tell names the port, the device and what
//! to do.
mod common;

use common::*;
use std::time::Duration;

/// One net_null port, one worker, a default route, and a tunnel whose customer endpoint the
/// default route carries.
fn base(prefix: &str) -> String {
    format!(
        r#"{eal}
[node]
anycast_addresses = ["203.0.113.10"]
control_socket = ""

[[ports]]
name = "up0"
device = "net_null0,no-rx=1"
address = "192.0.2.1/24"

[[workers]]
core = {core}
rx = [{{ port = "up0" }}]

[[neighbors]]
ip = "192.0.2.254"
mac = "02:00:00:00:00:fe"
port = "up0"

[[tunnels]]
name = "acme"
type = "gre"
customer_endpoint = "198.51.100.20"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"

[[routes]]
prefix = "0.0.0.0/0"
nexthop = "192.0.2.254"
"#,
        eal = eal(prefix),
        core = cores().1,
    )
}

/// `base` with `extra` appended to `dpdk.eal_args` (whose last entry is `lib.eal:warning`).
fn with_eal_args(text: &str, extra: &str) -> String {
    text.replacen(
        "\"lib.eal:warning\"]",
        &format!("\"lib.eal:warning\", {extra}]"),
        1,
    )
}

#[test]
fn check_and_run_refuse_what_needs_no_device_before_the_eal() {
    let _g = lock();
    let d = Dir::new();
    let good = base("ag-check-a");
    std::fs::write(d.p("good.toml"), &good).unwrap();
    let (code, err, _) = anygate("check", &d.p("good.toml"));
    assert_eq!(code, Some(0), "{err}");

    let mut long_routes = good.clone();
    for i in 0..70_000u32 {
        let a = std::net::Ipv4Addr::from(0x2000_0000 + (i << 8) + 1);
        long_routes.push_str(&format!(
            "[[routes]]\nprefix = \"{a}/32\"\nnexthop = \"192.0.2.254\"\n"
        ));
    }
    // Index of `--no-pci` in common::eal's arguments; the extra ones start at 8.
    let cases = [
        (
            good.replace("0.0.0.0/0", "8.0.0.0/8"),
            "tunnels[0].customer_endpoint: no route toward 198.51.100.20 through a port",
        ),
        (
            long_routes,
            // The routes' /24s, plus those of the port, the tunnel interface and the anycast
            // address.
            "routes: the table needs 70003 tbl8 groups (one per /24 holding longer prefixes), \
             limit is 32768",
        ),
        (
            good.replace("net_null0,no-rx=1", "net_nul0"),
            "ports[0].device: `net_nul0` is no PCI address and names no vdev driver",
        ),
        (
            format!(
                "{good}\n[[ports]]\nname = \"nic0\"\ndevice = \"0000:01:00.0\"\naddress = \"10.0.0.1/24\"\n\
                 rx_queues = 1\n"
            )
            .replace("rx = [{ port = \"up0\" }]", "rx = [{ port = \"up0\" }, { port = \"nic0\" }]"),
            "ports[1].device: `0000:01:00.0` is a PCI device, but dpdk.eal_args[3] is `--no-pci`",
        ),
        (
            with_eal_args(&good, "\"-l1\""),
            "dpdk.eal_args[8]: `-l1` (`-l`) is set by anygate",
        ),
        (
            with_eal_args(&good, "\"-c3\""),
            "dpdk.eal_args[8]: `-c3` (`-c`) is set by anygate",
        ),
        (
            with_eal_args(&good, "\"-a0000:01:00.0\""),
            "dpdk.eal_args[8]: `-a0000:01:00.0` (`-a`) is set by anygate",
        ),
        (
            with_eal_args(&good, "\"-bX\""),
            "dpdk.eal_args[8]: `-bX` (`-b`) is set by anygate",
        ),
        (
            with_eal_args(&good, "\"--proc-type=secondary\""),
            "dpdk.eal_args[8]: `--proc-type secondary`: anygate must be the primary",
        ),
        (
            with_eal_args(&good, "\"--proc-type\", \"secondary\""),
            "dpdk.eal_args[8]: `--proc-type secondary`: anygate must be the primary",
        ),
        (
            with_eal_args(&good, "\"--file-prefix\""),
            "dpdk.eal_args[8]: `--file-prefix` needs a value",
        ),
        (
            with_eal_args(&good, "\"\""),
            "dpdk.eal_args[8]: empty argument",
        ),
        // Nesting that once overflowed the stack (exit 134) is refused like any error.
        (
            format!(
                "{good}\n[firewall]\nmax_expression_len = 65536\nrules = [{{ expression = \"{}tcp{}\", action = \"block\" }}]\n",
                "(".repeat(10_000),
                ")".repeat(10_000)
            ),
            "firewall.rules[0].expression: column 129: nesting deeper than 128 levels",
        ),
        (
            format!(
                "{good}\n[firewall]\nmax_expression_len = 65536\nrules = [{{ expression = \"{}tcp\", action = \"block\" }}]\n",
                "!".repeat(20_000)
            ),
            "firewall.rules[0].expression: column 129: nesting deeper than 128 levels",
        ),
        (
            format!("{good}\n[firewall]\nmax_expression_len = 10000000\n"),
            "firewall.max_expression_len: 10000000 is above anygate's limit of 65536",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(d.p("bad.toml"), &text).unwrap();
        for cmd in ["check", "run"] {
            let (code, err, took) = anygate(cmd, &d.p("bad.toml"));
            assert_eq!(code, Some(2), "{cmd}, want `{want}`:\n{err}");
            assert!(err.contains(want), "{cmd}: want `{want}` in:\n{err}");
            assert!(
                !err.contains("EAL"),
                "{cmd} must refuse before starting the EAL:\n{err}"
            );
            assert!(took < Duration::from_secs(30), "{cmd} took {took:?}");
        }
    }
}

#[test]
fn a_second_instance_on_the_same_file_prefix_is_told_who_holds_it() {
    let _g = lock();
    let d = Dir::new();
    // Each on its own control socket: a second instance on the same socket is refused
    // before its EAL starts (e2e_ctl), and this is about the EAL's own refusal.
    let on_socket = |name: &str| {
        let sock = format!("control_socket = \"{}\"", d.p(name).display());
        base("ag-check-b").replace("control_socket = \"\"", &sock)
    };
    std::fs::write(d.p("a.toml"), on_socket("a.sock")).unwrap();
    std::fs::write(d.p("b.toml"), on_socket("b.sock")).unwrap();
    let first = Running::start(&d.p("a.toml"), "0.2", d.p("first.log"));
    first.wait_stderr("worker 0 on core");
    let (code, err, _) = anygate("run", &d.p("b.toml"));
    let prefix = format!("ag-check-b-{}", std::process::id());
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "anygate: the EAL did not start: another DPDK process (pid {}) uses --file-prefix \
             {prefix}",
            first.child.id()
        )),
        "{err}"
    );
    assert!(!err.contains("Success (errno 0)"), "{err}");
    first.finish();
}

#[test]
fn a_device_the_driver_refuses_names_its_port_and_device_string() {
    let _g = lock();
    let d = Dir::new();
    let bad = "net_pcap0,rx_pcap=/nonexistent/x.pcap,tx_pcap=/dev/null";
    let text = format!(
        "{}\n[[ports]]\nname = \"in0\"\ndevice = \"{bad}\"\naddress = \"10.0.0.1/24\"\n",
        base("ag-check-c")
    )
    .replace(
        "rx = [{ port = \"up0\" }]",
        "rx = [{ port = \"up0\" }, { port = \"in0\" }]",
    );
    std::fs::write(d.p("c.toml"), text).unwrap();
    // Only the driver knows the file is missing: check accepts the config.
    let (code, err, _) = anygate("check", &d.p("c.toml"));
    assert_eq!(code, Some(0), "{err}");
    let (code, err, _) = anygate("run", &d.p("c.toml"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "anygate: ports[1] (in0): device \"{bad}\" was not created by DPDK: the driver \
             refused its arguments"
        )),
        "{err}"
    );
}
