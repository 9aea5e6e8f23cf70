//! Every rule of the import policy, one at a time.
use super::*;
use crate::config::{parse, Host};
use std::net::Ipv4Addr;

const PEER: u32 = 65000;

fn c(v: u16) -> u32 {
    VENDOR_ASN << 16 | v as u32
}

fn seq(v: &[u32]) -> AsSegment {
    AsSegment::Sequence(v.to_vec())
}

#[test]
fn no_community_is_the_base_priority() {
    let p = priority(&[], &[seq(&[PEER])], PEER);
    assert_eq!(p.value, 100);
    assert_eq!(p.prepends, 0);
    assert_eq!(p.explanation, "no priority community → 100");
}

#[test]
fn each_vendor_community_sets_its_priority() {
    for (v, want) in [
        (60010, 10),
        (60050, 50),
        (60150, 150),
        (60200, 200),
        (60901, 501_000),
        (60902, 1_001_000),
    ] {
        let p = priority(&[c(v)], &[seq(&[PEER])], PEER);
        assert_eq!(p.value, want, "13335:{v}");
        assert_eq!(p.explanation, format!("13335:{v} → {want}"));
    }
}

#[test]
fn several_communities_take_the_lowest() {
    let p = priority(&[c(60200), c(60050), c(60901)], &[], PEER);
    assert_eq!(p.value, 50);
    assert_eq!(
        p.explanation,
        "13335:60050, 13335:60200, 13335:60901 → 50 (the lowest)"
    );
    // The same community twice is one.
    let p = priority(&[c(60150), c(60150)], &[], PEER);
    assert_eq!(
        (p.value, p.explanation.as_str()),
        (150, "13335:60150 → 150")
    );
}

#[test]
fn unknown_communities_are_ignored() {
    // Another value of the vendor's ASN, the right value under another ASN, and no-export.
    let other = 65001 << 16 | 60010;
    let p = priority(&[c(60011), other, 0xFFFF_FF01], &[], PEER);
    assert_eq!(p.value, 100);
    let p = priority(&[c(60011), c(60200), other], &[], PEER);
    assert_eq!(
        (p.value, p.explanation.as_str()),
        (200, "13335:60200 → 200")
    );
}

#[test]
fn the_issue_example_is_170() {
    // `65000 65000 65000 65200` from AS 65000 with 13335:60150.
    let p = priority(&[c(60150)], &[seq(&[65000, 65000, 65000, 65200])], 65000);
    assert_eq!(p.value, 170);
    assert_eq!(p.prepends, 2);
    assert_eq!(p.explanation, "13335:60150 → 150, +20 for 2 prepends = 170");
}

#[test]
fn prepends_count_the_peer_asn_wherever_it_stands() {
    let cases: [(&[AsSegment], u32); 7] = [
        (&[seq(&[PEER])], 0),
        (&[seq(&[PEER, PEER])], 1),
        (&[seq(&[PEER, 65200, PEER])], 1),
        (&[seq(&[65200, PEER, PEER])], 1),
        (&[seq(&[PEER]), seq(&[PEER, 65300])], 1),
        (&[seq(&[65200, 65300])], 0),
        (&[], 0),
    ];
    for (path, want) in cases {
        let p = priority(&[], path, PEER);
        assert_eq!(p.prepends, want, "{path:?}");
        assert_eq!(p.value, 100 + 10 * want, "{path:?}");
    }
    let p = priority(&[], &[seq(&[PEER, PEER])], PEER);
    assert_eq!(
        p.explanation,
        "no priority community → 100, +10 for 1 prepend = 110"
    );
}

#[test]
fn as_sets_are_not_prepends() {
    let path = [seq(&[PEER]), AsSegment::Set(vec![PEER, PEER, 65200])];
    assert_eq!(priority(&[], &path, PEER).value, 100);
    assert_eq!(as_path_text(&path), "65000 {65000,65000,65200}");
}

#[test]
fn long_prepend_chains_add_up() {
    let long = vec![PEER; 1000];
    let p = priority(&[c(60902)], &[seq(&long)], PEER);
    assert_eq!(p.value, 1_001_000 + 999 * 10);
}

const CFG: &str = r#"
[[ports]]
name = "wan0"
device = "net_null0"
address = "192.0.2.1/24"

[[workers]]
core = 1
rx = [{ port = "wan0" }]

[node]
anycast_addresses = ["203.0.113.10"]

[bgp]
asn = 64512
ALLOW

[[bgp.peers]]
port = "wan0"
address = "192.0.2.9"
asn = 65100

[[tunnels]]
name = "T1"
type = "gre"
customer_endpoint = "198.51.100.1"
edge_endpoint = "203.0.113.10"
interface_address = "10.100.0.0/31"

[tunnels.bgp]
asn = 65000
"#;

fn cfg(allow_public: bool) -> Config {
    let text = CFG.replace(
        "ALLOW",
        if allow_public {
            "allow_public_prefixes = true"
        } else {
            ""
        },
    );
    parse(&text, &Host { cores: vec![0, 1] }).unwrap()
}

fn path(prefix: &str, next_hop: &str, communities: &[u32]) -> ReceivedPath {
    ReceivedPath {
        prefix: crate::config::parse_prefix(prefix).unwrap(),
        next_hop: next_hop.parse().unwrap(),
        communities: communities.to_vec(),
        as_path: vec![seq(&[65000, 65000, 65000, 65200])],
        stale: false,
        path_id: 0,
    }
}

fn peer<'a>(cfg: &'a Config, name: &str) -> &'a BgpPeerConf {
    cfg.bgp
        .as_ref()
        .unwrap()
        .peers
        .iter()
        .find(|p| p.name == name)
        .unwrap()
}

#[test]
fn a_tunnel_peer_route_goes_into_its_tunnel_at_its_priority() {
    let cfg = cfg(false);
    let i = import(
        &cfg,
        peer(&cfg, "T1"),
        &path("10.1.0.0/16", "10.100.0.1", &[c(60150)]),
    )
    .unwrap();
    assert_eq!(i.route.via, Via::Tunnel(0));
    assert_eq!(i.route.priority, 170);
    assert_eq!(i.route.source, RouteSource::Bgp);
    assert_eq!(i.route.origin, RouteOrigin::Bgp);
    assert!(
        i.route.regions.is_empty() && i.route.colos.is_empty(),
        "global"
    );
    assert_eq!(i.explanation, "13335:60150 → 150, +20 for 2 prepends = 170");
}

#[test]
fn public_prefixes_are_refused_unless_allowed() {
    let p = path("8.8.8.0/24", "10.100.0.1", &[]);
    let strict = cfg(false);
    assert_eq!(
        import(&strict, peer(&strict, "T1"), &p),
        Err(Refusal::Public)
    );
    for private in ["10.0.0.0/8", "172.16.5.0/24", "192.168.0.0/16"] {
        let p = path(private, "10.100.0.1", &[]);
        assert!(
            import(&strict, peer(&strict, "T1"), &p).is_ok(),
            "{private}"
        );
    }
    // 172.32/16 is just outside 172.16/12; a /7 covering 10/8 is not inside it.
    for public in ["172.32.0.0/16", "10.0.0.0/7", "0.0.0.0/0"] {
        let p = path(public, "10.100.0.1", &[]);
        assert_eq!(
            import(&strict, peer(&strict, "T1"), &p),
            Err(Refusal::Public),
            "{public}"
        );
    }
    let open = cfg(true);
    assert!(import(&open, peer(&open, "T1"), &p).is_ok());
}

#[test]
fn a_prefix_covering_a_tunnel_endpoint_is_refused_even_when_public_is_allowed() {
    let open = cfg(true);
    let p = path("198.51.100.0/24", "10.100.0.1", &[]);
    assert_eq!(
        import(&open, peer(&open, "T1"), &p),
        Err(Refusal::CoversEndpoint("T1".into()))
    );
}

#[test]
fn a_port_peer_route_goes_to_the_gateway_its_next_hop_names() {
    let cfg = cfg(false);
    let pp = peer(&cfg, "port:wan0:192.0.2.9");
    let i = import(&cfg, pp, &path("10.7.0.0/16", "192.0.2.20", &[])).unwrap();
    let gw: u32 = Ipv4Addr::new(192, 0, 2, 20).into();
    assert_eq!(i.route.via, Via::Gateway { ip: gw, port: 0 });
    // AS 65100's path has no 65100 in it: no prepends.
    assert_eq!(i.route.priority, 100);
    for bad in ["198.18.0.1", "192.0.2.1", "192.0.2.255", "192.0.2.0"] {
        let r = import(&cfg, pp, &path("10.7.0.0/16", bad, &[]));
        assert!(matches!(r, Err(Refusal::NextHop(_))), "{bad}: {r:?}");
    }
}

#[test]
fn communities_are_shown_as_operators_write_them() {
    assert_eq!(community_name(c(60150)), "13335:60150");
    assert_eq!(community_name(65001 << 16 | 7), "65001:7");
}

#[test]
fn a_reflected_path_is_its_tunnel_peers_and_any_other_next_hop_is_refused() {
    let text = CFG.replace(
        "ALLOW",
        "[[bgp.route_reflectors]]\naddress = \"172.16.0.1\"",
    );
    let cfg = parse(&text, &Host { cores: vec![0, 1] }).unwrap();
    let rr = peer(&cfg, "reflector:172.16.0.1");
    assert_eq!((rr.at, rr.asn), (PeerAt::Reflector, 64512), "iBGP");
    // The customer side of T1: T1's peer, prepends counted against its AS 65000.
    let p = path("10.1.0.0/16", "10.100.0.1", &[c(60150)]);
    let t1 = reflected_peer(&cfg, &p).unwrap();
    assert_eq!(t1.name, "T1");
    let i = import(&cfg, t1, &p).unwrap();
    assert_eq!((i.route.via, i.route.priority), (Via::Tunnel(0), 170));
    // A port peer's gateway, our own side of the tunnel, anything else: no tunnel.
    for nh in ["192.0.2.9", "10.100.0.0", "10.7.7.7"] {
        let r = reflected_peer(&cfg, &path("10.1.0.0/16", nh, &[]));
        assert_eq!(r.err(), Some(Refusal::NoTunnel), "{nh}");
    }
    // Never imported as the reflector's own.
    assert_eq!(import(&cfg, rr, &p).err(), Some(Refusal::NoTunnel));
    assert_eq!(Refusal::NoTunnel.key(), "next_hop_no_tunnel");
}
