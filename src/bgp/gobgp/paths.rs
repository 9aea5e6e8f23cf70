//! Reading what peers sent: gobgpd's `Path` messages turned into `ReceivedPath`s, and every
//! path of one peer's Adj-RIB-In (never the best-path table: anygate does its own selection).
use super::api::{self, family, list_path_request, TableType};
use super::client::{rpc, Client, LIST_TIMEOUT, MAX_PATHS_PER_PEER, RPC_TIMEOUT};
use crate::bgp::{AsSegment, ReceivedPath};
use crate::lpm::Prefix;
use prost::Message;
use std::net::Ipv4Addr;

/// `Any.type_url`s of the attributes we read (package `apipb`).
const URL: &str = "type.googleapis.com/apipb.";

/// IPv4 unicast, the only family anygate speaks.
pub fn ipv4_unicast() -> api::Family {
    api::Family {
        afi: family::Afi::Ip as i32,
        safi: family::Safi::Unicast as i32,
    }
}

/// Packs a message into an `Any` the way gobgpd expects (`type.googleapis.com/apipb.Name`).
pub fn any<M: Message>(name: &str, m: &M) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("{URL}{name}"),
        value: m.encode_to_vec(),
    }
}

/// Decodes `a` as `apipb.<name>`, or None when it is another type (or malformed).
fn unpack<M: Message + Default>(a: &prost_types::Any, name: &str) -> Option<M> {
    let t = a.type_url.strip_prefix(URL)?;
    (t == name).then(|| M::decode(a.value.as_slice()).ok())?
}

/// The path's IPv4 prefix, or None for other families or a malformed NLRI.
pub fn prefix(path: &api::Path) -> Option<Prefix> {
    let nlri: api::IpAddressPrefix = unpack(path.nlri.as_ref()?, "IPAddressPrefix")?;
    let addr: Ipv4Addr = nlri.prefix.parse().ok()?;
    Prefix::new(u32::from(addr), u8::try_from(nlri.prefix_len).ok()?)
}

/// The peer a path came from, when it came from one (gobgpd writes `<nil>` for local paths).
pub fn neighbor(path: &api::Path) -> Option<Ipv4Addr> {
    path.neighbor_ip
        .parse()
        .ok()
        .filter(|a: &Ipv4Addr| !a.is_unspecified())
}

/// Converts one received path. None when it is not IPv4 unicast or has no usable next hop:
/// such a path cannot become a route, and gobgpd negotiates IPv4 unicast only anyway.
pub fn received(path: &api::Path) -> Option<ReceivedPath> {
    let prefix = prefix(path)?;
    let mut next_hop = None;
    let mut communities = Vec::new();
    let mut as_path = Vec::new();
    for a in &path.pattrs {
        if let Some(n) = unpack::<api::NextHopAttribute>(a, "NextHopAttribute") {
            next_hop = n.next_hop.parse().ok();
        } else if let Some(m) = unpack::<api::MpReachNlriAttribute>(a, "MpReachNLRIAttribute") {
            // IPv4 next hop carried in MP_REACH (RFC 8950 peers, or an IPv6 session).
            next_hop = next_hop.or_else(|| m.next_hops.iter().find_map(|h| h.parse().ok()));
        } else if let Some(c) = unpack::<api::CommunitiesAttribute>(a, "CommunitiesAttribute") {
            communities = c.communities;
        } else if let Some(p) = unpack::<api::AsPathAttribute>(a, "AsPathAttribute") {
            as_path = p.segments.into_iter().filter_map(segment).collect();
        }
    }
    Some(ReceivedPath {
        prefix,
        next_hop: next_hop?,
        communities,
        as_path,
        stale: path.stale,
        path_id: path.identifier,
    })
}

/// AS_SEQUENCE and AS_SET; confederation segments never reach an eBGP peer's path, and an
/// unknown type carries nothing the policy could use.
fn segment(s: api::AsSegment) -> Option<AsSegment> {
    use api::as_segment::Type;
    match Type::try_from(s.r#type).ok()? {
        Type::AsSequence => Some(AsSegment::Sequence(s.numbers)),
        Type::AsSet => Some(AsSegment::Set(s.numbers)),
        Type::AsConfedSequence | Type::AsConfedSet | Type::Unknown => None,
    }
}

/// Every IPv4 path `peer` sent us, accepted or not, stale ones included.
pub async fn adj_in(c: &mut Client, peer: Ipv4Addr) -> Result<Vec<ReceivedPath>, String> {
    let req = api::ListPathRequest {
        table_type: TableType::AdjIn as i32,
        name: peer.to_string(),
        family: Some(ipv4_unicast()),
        // Unsorted: sorting a large table costs gobgpd time and we key by prefix anyway.
        sort_type: list_path_request::SortType::None as i32,
        enable_filtered: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    list_paths(c, req, |p| {
        if let Some(r) = received(p) {
            out.push(r);
        }
    })
    .await?;
    Ok(out)
}

/// Streams a ListPath answer into `each`: each message within RPC_TIMEOUT (a stalled gobgpd),
/// the whole within LIST_TIMEOUT (a large table on a busy machine takes seconds), at most
/// MAX_PATHS_PER_PEER paths.
pub async fn list_paths(
    c: &mut Client,
    req: api::ListPathRequest,
    mut each: impl FnMut(&api::Path),
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + LIST_TIMEOUT;
    let mut stream = rpc("ListPath", RPC_TIMEOUT, c.list_path(req))
        .await?
        .into_inner();
    let mut n = 0usize;
    while let Some(r) = rpc("ListPath", RPC_TIMEOUT, stream.message()).await? {
        for p in r.destination.iter().flat_map(|d| &d.paths) {
            n += 1;
            if n > MAX_PATHS_PER_PEER {
                log::warn!("bgp: ListPath stopped at {MAX_PATHS_PER_PEER} paths");
                return Ok(());
            }
            each(p);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "ListPath: not done after {LIST_TIMEOUT:?} ({n} paths)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(attrs: Vec<prost_types::Any>, stale: bool) -> api::Path {
        api::Path {
            nlri: Some(any(
                "IPAddressPrefix",
                &api::IpAddressPrefix {
                    prefix_len: 24,
                    prefix: "10.200.0.0".into(),
                },
            )),
            pattrs: attrs,
            stale,
            neighbor_ip: "10.77.0.2".into(),
            identifier: 7,
            ..Default::default()
        }
    }

    fn seg(t: api::as_segment::Type, numbers: &[u32]) -> api::AsSegment {
        api::AsSegment {
            r#type: t as i32,
            numbers: numbers.to_vec(),
        }
    }

    /// Golden: a path as gobgpd sends it, built by hand, field by field.
    #[test]
    fn converts_every_attribute() {
        use api::as_segment::Type;
        let p = path(
            vec![
                any("OriginAttribute", &api::OriginAttribute { origin: 0 }),
                any(
                    "AsPathAttribute",
                    &api::AsPathAttribute {
                        segments: vec![
                            seg(Type::AsSequence, &[65010, 65010, 65010, 65200]),
                            seg(Type::AsSet, &[64600, 64601]),
                            seg(Type::AsConfedSequence, &[1]),
                        ],
                    },
                ),
                any(
                    "NextHopAttribute",
                    &api::NextHopAttribute {
                        next_hop: "10.77.0.2".into(),
                    },
                ),
                any(
                    "CommunitiesAttribute",
                    &api::CommunitiesAttribute {
                        communities: vec![13335 << 16 | 60010, 65000 << 16 | 1],
                    },
                ),
                any(
                    "MultiExitDiscAttribute",
                    &api::MultiExitDiscAttribute { med: 5 },
                ),
            ],
            true,
        );
        assert_eq!(
            received(&p),
            Some(ReceivedPath {
                prefix: Prefix::new(0x0ac8_0000, 24).unwrap(),
                next_hop: Ipv4Addr::new(10, 77, 0, 2),
                communities: vec![(13335 << 16) | 60010, (65000 << 16) | 1],
                as_path: vec![
                    AsSegment::Sequence(vec![65010, 65010, 65010, 65200]),
                    AsSegment::Set(vec![64600, 64601]),
                ],
                stale: true,
                path_id: 7,
            })
        );
        assert_eq!(neighbor(&p), Some(Ipv4Addr::new(10, 77, 0, 2)));
    }

    #[test]
    fn next_hop_from_mp_reach_and_no_optional_attributes() {
        let p = path(
            vec![any(
                "MpReachNLRIAttribute",
                &api::MpReachNlriAttribute {
                    family: Some(ipv4_unicast()),
                    next_hops: vec!["192.0.2.9".into()],
                    ..Default::default()
                },
            )],
            false,
        );
        let r = received(&p).unwrap();
        assert_eq!(r.next_hop, Ipv4Addr::new(192, 0, 2, 9));
        assert!(r.communities.is_empty() && r.as_path.is_empty() && !r.stale);
    }

    #[test]
    fn refuses_what_cannot_be_a_route() {
        // No next hop at all.
        assert_eq!(received(&path(vec![], false)), None);
        let nh = any(
            "NextHopAttribute",
            &api::NextHopAttribute {
                next_hop: "10.0.0.1".into(),
            },
        );
        // Host bits set, an IPv6 NLRI, another NLRI type.
        for (name, m) in [
            ("IPAddressPrefix", ("10.200.0.1", 24)),
            ("IPAddressPrefix", ("2001:db8::", 32)),
            ("LabeledIPAddressPrefix", ("10.0.0.0", 8)),
        ] {
            let mut p = path(vec![nh.clone()], false);
            p.nlri = Some(any(
                name,
                &api::IpAddressPrefix {
                    prefix: m.0.into(),
                    prefix_len: m.1,
                },
            ));
            assert_eq!(received(&p), None, "{name} {m:?}");
        }
        // Local paths carry "<nil>" as their neighbour.
        let mut p = path(vec![nh], false);
        p.neighbor_ip = "<nil>".into();
        assert_eq!(neighbor(&p), None);
    }
}
