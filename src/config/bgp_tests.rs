//! `[bgp]`, `[tunnels.bgp]` and `[[bgp.peers]]`: defaults, and each refusal naming its key.
use super::super::test_support::host;
use super::super::{parse, PeerAt};
use std::net::Ipv4Addr;
use std::time::Duration;

const BASE: &str = r#"
[[ports]]
name = "wan0"
device = "net_null0"
address = "192.0.2.1/24"

[[workers]]
core = 1
rx = [{ port = "wan0" }]

[node]
anycast_addresses = ["203.0.113.10"]

[[tunnels]]
name = "T1"
type = "gre"
customer_endpoint = "198.51.100.1"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"
TUNNEL_BGP

[[tunnels]]
name = "T2"
type = "gre"
customer_endpoint = "198.51.100.2"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.5/30"
"#;

fn with(bgp: &str, tunnel_bgp: &str) -> String {
    format!("{}\n{bgp}", BASE.replace("TUNNEL_BGP", tunnel_bgp))
}

/// The single error's key, and its message.
fn refused(text: &str) -> (String, String) {
    let e = parse(text, &host()).expect_err("must be refused");
    assert_eq!(e.0.len(), 1, "{e}");
    (e.0[0].path.clone(), e.0[0].msg.clone())
}

const TUNNEL_PEER: &str = "\n[tunnels.bgp]\nasn = 65000\n";

#[test]
fn defaults_and_a_tunnel_peer() {
    let c = parse(&with("[bgp]\nasn = 64512\n", TUNNEL_PEER), &host()).unwrap();
    let b = c.bgp.unwrap();
    assert_eq!(b.asn, 64512);
    assert_eq!(
        b.router_id,
        Ipv4Addr::new(192, 0, 2, 1),
        "the first port's address"
    );
    assert_eq!(b.api.to_string(), "127.0.0.1:50051");
    assert!(!b.allow_public_prefixes);
    assert_eq!(b.graceful_restart, Duration::from_secs(120));
    assert_eq!(b.peers.len(), 1);
    let p = &b.peers[0];
    assert_eq!(p.name, "T1");
    assert_eq!(p.at, PeerAt::Tunnel(0));
    assert_eq!(p.address, Ipv4Addr::new(10, 100, 0, 1), "the customer side");
    assert_eq!(p.local_address, Ipv4Addr::new(10, 100, 0, 0));
    assert_eq!(p.hold_time, Duration::from_secs(240));
    assert_eq!(p.max_prefixes, super::DEFAULT_MAX_PREFIXES);
    assert_eq!(p.md5_password, None);
}

#[test]
fn no_bgp_section_is_no_bgp() {
    assert!(parse(&with("", ""), &host()).unwrap().bgp.is_none());
    // On a /30 the customer side is the other host (.6 for .5), not the broadcast address.
    let text = with("[bgp]\nasn = 64512\n", "").replace(
        "interface_address = \"10.100.0.5/30\"",
        "interface_address = \"10.100.0.5/30\"\n[tunnels.bgp]\nasn = 65000",
    );
    let b = parse(&text, &host()).unwrap().bgp.unwrap();
    assert_eq!(b.peers[0].address, Ipv4Addr::new(10, 100, 0, 6));
}

#[test]
fn every_key_of_a_port_peer_and_the_global_section() {
    let text = with(
        r#"[bgp]
asn = 4200000000
router_id = "192.0.2.1"
api = "127.0.0.1:50052"
allow_public_prefixes = true
graceful_restart_time = 90
hold_time = 90

[[bgp.peers]]
port = "wan0"
address = "192.0.2.9"
asn = 65100
md5_password = "s3cret"
max_prefixes = 50
advertised_prefixes = ["203.0.113.0/24"]
hold_time = 30
"#,
        "\n[tunnels.bgp]\nasn = 65000\npeer = \"10.100.0.1\"\nhold_time = 0\n",
    );
    let b = parse(&text, &host()).unwrap().bgp.unwrap();
    assert_eq!(b.api.port(), 50052);
    assert!(b.allow_public_prefixes);
    assert_eq!(b.graceful_restart.as_secs(), 90);
    let t = &b.peers[0];
    assert_eq!(t.hold_time.as_secs(), 0, "0: no keepalives");
    let p = &b.peers[1];
    assert_eq!(p.name, "port:wan0:192.0.2.9");
    assert_eq!(p.at, PeerAt::Port(0));
    assert_eq!(p.local_address, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(p.md5_password.as_deref(), Some("s3cret"));
    assert_eq!(p.max_prefixes, 50);
    assert_eq!(p.advertised.len(), 1);
    assert_eq!(p.hold_time.as_secs(), 30);
    // The global hold time is every peer's default.
    let text = text.replace("hold_time = 30\n", "");
    let b = parse(&text, &host()).unwrap().bgp.unwrap();
    assert_eq!(b.peers[1].hold_time.as_secs(), 90);
}

#[test]
fn a_peer_with_our_own_asn_is_refused_naming_the_key() {
    let (k, m) = refused(&with("[bgp]\nasn = 65000\n", TUNNEL_PEER));
    assert_eq!(k, "tunnels[0].bgp.asn");
    assert!(m.contains("eBGP"), "{m}");
    let (k, _) = refused(&with(
        "[bgp]\nasn = 65100\n[[bgp.peers]]\nport = \"wan0\"\naddress = \"192.0.2.9\"\nasn = 65100\n",
        "",
    ));
    assert_eq!(k, "bgp.peers[0].asn");
}

#[test]
fn tunnel_bgp_without_bgp_is_refused() {
    let (k, m) = refused(&with("", TUNNEL_PEER));
    assert_eq!(k, "tunnels[0].bgp");
    assert!(m.contains("[bgp]"), "{m}");
}

#[test]
fn duplicated_peer_addresses_are_refused() {
    let (k, m) = refused(&with(
        "[bgp]\nasn = 64512\n[[bgp.peers]]\nport = \"wan0\"\naddress = \"192.0.2.9\"\nasn = 65100\n[[bgp.peers]]\nport = \"wan0\"\naddress = \"192.0.2.9\"\nasn = 65101\n",
        "",
    ));
    assert_eq!(k, "bgp.peers[1].address");
    assert!(m.contains("bgp.peers[0].address"), "{m}");
}

#[test]
fn bad_values_name_their_key() {
    let peer = |extra: &str| format!("\n[tunnels.bgp]\nasn = 65000\n{extra}\n");
    let cases: Vec<(String, &str)> = vec![
        (with("[bgp]\nasn = 0\n", ""), "bgp.asn"),
        (with("[bgp]\nasn = 23456\n", ""), "bgp.asn"),
        (with("[bgp]\nasn = 64512\nhold_time = 2\n", ""), "bgp.hold_time"),
        (with("[bgp]\nasn = 64512\nhold_time = 65536\n", ""), "bgp.hold_time"),
        (with("[bgp]\nasn = 64512\ngraceful_restart_time = 0\n", ""), "bgp.graceful_restart_time"),
        (with("[bgp]\nasn = 64512\ngraceful_restart_time = 4096\n", ""), "bgp.graceful_restart_time"),
        (with("[bgp]\nasn = 64512\napi = \"localhost\"\n", ""), "bgp.api"),
        (with("[bgp]\nasn = 64512\nrouter_id = \"1.2.3\"\n", ""), "bgp.router_id"),
        (with("[bgp]\nasn = 64512\n", &peer("hold_time = 1")), "tunnels[0].bgp.hold_time"),
        (with("[bgp]\nasn = 64512\n", &peer("max_prefixes = 0")), "tunnels[0].bgp.max_prefixes"),
        (with("[bgp]\nasn = 64512\n", &peer("peer = \"10.100.0.0\"")), "tunnels[0].bgp.peer"),
        (with("[bgp]\nasn = 64512\n", &peer("peer = \"10.9.0.1\"")), "tunnels[0].bgp.peer"),
        (
            with("[bgp]\nasn = 64512\n", "").replace(
                "interface_address = \"10.100.0.5/30\"",
                "interface_address = \"10.100.0.5/30\"\n[tunnels.bgp]\nasn = 65000\npeer = \"10.100.0.7\"",
            ),
            "tunnels[1].bgp.peer",
        ),
        (with("[bgp]\nasn = 64512\n", &peer("md5_password = \"\"")), "tunnels[0].bgp.md5_password"),
        (
            with("[bgp]\nasn = 64512\n", &peer(&format!("md5_password = \"{}\"", "x".repeat(81)))),
            "tunnels[0].bgp.md5_password",
        ),
        (
            with("[bgp]\nasn = 64512\n", &peer("md5_password = \"a\"\nmd5_password_file = \"/x\"")),
            "tunnels[0].bgp.md5_password_file",
        ),
        (
            with("[bgp]\nasn = 64512\n", &peer("md5_password_file = \"/nonexistent/md5\"")),
            "tunnels[0].bgp.md5_password_file",
        ),
        (
            with("[bgp]\nasn = 64512\n", &peer("advertised_prefixes = [\"10.0.0.1/8\"]")),
            "tunnels[0].bgp.advertised_prefixes[0]",
        ),
        (
            with("[bgp]\nasn = 64512\n[[bgp.peers]]\nport = \"lan9\"\naddress = \"192.0.2.9\"\nasn = 65100\n", ""),
            "bgp.peers[0].port",
        ),
        (
            with("[bgp]\nasn = 64512\n[[bgp.peers]]\nport = \"wan0\"\naddress = \"198.18.0.9\"\nasn = 65100\n", ""),
            "bgp.peers[0].address",
        ),
        (
            with("[bgp]\nasn = 64512\n[[bgp.peers]]\nport = \"wan0\"\naddress = \"192.0.2.1\"\nasn = 65100\n", ""),
            "bgp.peers[0].address",
        ),
    ];
    for (text, key) in cases {
        let (k, m) = refused(&text);
        assert_eq!(k, key, "{m}");
    }
}

#[test]
fn unknown_keys_are_refused() {
    let e = parse(&with("[bgp]\nasn = 64512\nasnn = 1\n", ""), &host()).unwrap_err();
    assert!(e.to_string().contains("asnn"), "{e}");
    let e = parse(
        &with(
            "[bgp]\nasn = 64512\n",
            "\n[tunnels.bgp]\nasn = 65000\npassword = \"x\"\n",
        ),
        &host(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("password"), "{e}");
}

#[test]
fn the_password_file_is_read_at_load_less_its_newline_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("md5");
    std::fs::write(&f, "from-a-file\n").unwrap();
    let peer = format!(
        "\n[tunnels.bgp]\nasn = 65000\nmd5_password_file = \"{}\"\n",
        f.display()
    );
    let b = parse(&with("[bgp]\nasn = 64512\n", &peer), &host())
        .unwrap()
        .bgp
        .unwrap();
    assert_eq!(b.peers[0].md5_password.as_deref(), Some("from-a-file"));
    // A huge file is not read whole, and is refused.
    std::fs::write(&f, "y".repeat(1 << 20)).unwrap();
    let (k, m) = refused(&with("[bgp]\nasn = 64512\n", &peer));
    assert_eq!(k, "tunnels[0].bgp.md5_password_file");
    assert!(m.contains("1..=80"), "{m}");
    // The size is told before the encoding: a binary file is most likely the wrong file.
    std::fs::write(&f, [0xffu8; 4096]).unwrap();
    let (k, m) = refused(&with("[bgp]\nasn = 64512\n", &peer));
    assert_eq!(k, "tunnels[0].bgp.md5_password_file");
    assert_eq!(
        m,
        format!(
            "{} holds more than 80 bytes; a TCP MD5 password is 1..=80 bytes",
            f.display()
        )
    );
    std::fs::write(&f, [0xffu8, 0xfe]).unwrap();
    let (_, m) = refused(&with("[bgp]\nasn = 64512\n", &peer));
    assert_eq!(m, format!("{} is not UTF-8 text", f.display()));
}

#[test]
fn route_reflectors_are_ibgp_with_every_key() {
    let dir = std::env::temp_dir().join(format!("anygate-rr-pw-{}", std::process::id()));
    std::fs::write(&dir, "rr-secret\n").unwrap();
    let text = with(
        &format!(
            "[bgp]\nasn = 64512\nhold_time = 90\n\
             [[bgp.route_reflectors]]\naddress = \"172.16.0.1\"\nlocal_address = \"172.16.0.11\"\n\
             md5_password = \"pw\"\nhold_time = 30\n\
             [[bgp.route_reflectors]]\naddress = \"172.16.0.2\"\nmd5_password_file = \"{}\"\n",
            dir.display()
        ),
        TUNNEL_PEER,
    );
    let b = parse(&text, &host()).unwrap().bgp.unwrap();
    std::fs::remove_file(&dir).unwrap();
    let rr: Vec<_> = b
        .peers
        .iter()
        .filter(|p| p.at == PeerAt::Reflector)
        .collect();
    assert_eq!(rr.len(), 2);
    assert_eq!(rr[0].name, "reflector:172.16.0.1");
    assert_eq!(rr[0].asn, 64512, "our own ASN: iBGP");
    assert_eq!(rr[0].local_address, Ipv4Addr::new(172, 16, 0, 11));
    assert_eq!(rr[0].md5_password.as_deref(), Some("pw"));
    assert_eq!(rr[0].hold_time, Duration::from_secs(30));
    assert_eq!(
        rr[1].local_address,
        Ipv4Addr::UNSPECIFIED,
        "the kernel picks"
    );
    assert_eq!(rr[1].md5_password.as_deref(), Some("rr-secret"));
    assert_eq!(rr[1].hold_time, Duration::from_secs(90), "[bgp] hold_time");
    assert!(rr[1].advertised.is_empty());
}

#[test]
fn bad_route_reflectors_name_their_key() {
    let rr = |keys: &str| {
        with(
            &format!("[bgp]\nasn = 64512\n[[bgp.route_reflectors]]\n{keys}\n"),
            TUNNEL_PEER,
        )
    };
    for (text, key) in [
        (rr("address = \"nope\""), "bgp.route_reflectors[0].address"),
        (
            rr("address = \"0.0.0.0\""),
            "bgp.route_reflectors[0].address",
        ),
        // A tunnel's customer side, a port's address: never a reflector.
        (
            rr("address = \"10.100.0.1\""),
            "bgp.route_reflectors[0].address",
        ),
        (
            rr("address = \"192.0.2.1\""),
            "bgp.route_reflectors[0].address",
        ),
        (
            rr("address = \"172.16.0.1\"\nlocal_address = \"x\""),
            "bgp.route_reflectors[0].local_address",
        ),
        (
            rr("address = \"172.16.0.1\"\nhold_time = 1"),
            "bgp.route_reflectors[0].hold_time",
        ),
        (
            rr("address = \"172.16.0.1\"\nmd5_password = \"\""),
            "bgp.route_reflectors[0].md5_password",
        ),
    ] {
        let (k, m) = refused(&text);
        assert_eq!(k, key, "{m}");
    }
    // The same address twice.
    let (k, _) = refused(&rr(
        "address = \"172.16.0.1\"\n[[bgp.route_reflectors]]\naddress = \"172.16.0.1\"",
    ));
    assert_eq!(k, "bgp.route_reflectors[1].address");
}
