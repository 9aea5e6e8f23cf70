//! Our side of the routes: the prefixes we originate in gobgpd's global RIB, and the one
//! export policy that decides which peer gets what.
use super::api::{self, conditions::RouteType, match_set, DefinedType, PolicyDirection};
use super::api::{RouteAction, TableType};
use super::client::{rpc, Client, RPC_TIMEOUT};
use super::paths::{self, any, ipv4_unicast};
use crate::bgp::Desired;
use crate::lpm::Prefix;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// The one export policy anygate owns, assigned to gobgpd's global RIB.
pub const EXPORT_POLICY: &str = "anygate-export";

/// The prefixes we originate: `announce` and every peer's extras (the export policy keeps
/// each extra to the peers that asked for it).
pub fn originated(d: &Desired) -> BTreeSet<Prefix> {
    let extras = d.peers.iter().flat_map(|p| p.extra_announce.iter());
    d.announce.iter().chain(extras).copied().collect()
}

/// Adds and deletes our own paths in gobgpd's global RIB until they equal `originated(d)`.
pub async fn announcements(c: &mut Client, d: &Desired) -> Result<(), String> {
    let want = originated(d);
    let mut have = BTreeSet::new();
    let req = api::ListPathRequest {
        table_type: TableType::Global as i32,
        family: Some(ipv4_unicast()),
        ..Default::default()
    };
    paths::list_paths(c, req, |p| {
        // Ours are the paths no neighbour sent.
        if paths::neighbor(p).is_none() {
            have.extend(paths::prefix(p));
        }
    })
    .await?;
    for p in have.difference(&want) {
        let req = api::DeletePathRequest {
            table_type: TableType::Global as i32,
            family: Some(ipv4_unicast()),
            path: Some(local_path(*p)),
            ..Default::default()
        };
        rpc("DeletePath", RPC_TIMEOUT, c.delete_path(req)).await?;
    }
    for p in want.difference(&have) {
        let req = api::AddPathRequest {
            table_type: TableType::Global as i32,
            vrf_id: String::new(),
            path: Some(local_path(*p)),
        };
        rpc("AddPath", RPC_TIMEOUT, c.add_path(req)).await?;
    }
    let (added, removed) = (
        want.difference(&have).count(),
        have.difference(&want).count(),
    );
    if added + removed > 0 {
        log::info!(
            "bgp: announcing {} prefixes (+{added} -{removed})",
            want.len()
        );
    }
    Ok(())
}

/// A path we originate: origin IGP, next hop 0.0.0.0 (gobgpd puts the session's local
/// address there toward an eBGP peer).
fn local_path(p: Prefix) -> api::Path {
    let nlri = api::IpAddressPrefix {
        prefix_len: u32::from(p.len),
        prefix: Ipv4Addr::from(p.addr).to_string(),
    };
    api::Path {
        nlri: Some(any("IPAddressPrefix", &nlri)),
        pattrs: vec![
            any("OriginAttribute", &api::OriginAttribute { origin: 0 }),
            any(
                "NextHopAttribute",
                &api::NextHopAttribute {
                    next_hop: "0.0.0.0".into(),
                },
            ),
        ],
        family: Some(ipv4_unicast()),
        ..Default::default()
    }
}

/// The export policy: never pass one customer's paths to another (only what we originate is
/// advertised, with our ASN prepended), and each peer's extras only to that peer. With route
/// reflectors: customers' paths go to them intact, reflected paths go nowhere, and what we
/// originate does not go to them.
pub fn export_policy(d: &Desired) -> api::SetPoliciesRequest {
    let announce: BTreeSet<Prefix> = d.announce.iter().copied().collect();
    // Extras grouped by the set of peers that asked for them.
    let mut owners: BTreeMap<Prefix, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for p in &d.peers {
        for e in p.extra_announce.iter().filter(|e| !announce.contains(e)) {
            owners.entry(*e).or_default().insert(p.address);
        }
    }
    let mut groups: BTreeMap<BTreeSet<Ipv4Addr>, Vec<Prefix>> = BTreeMap::new();
    for (prefix, peers) in owners {
        groups.entry(peers).or_default().push(prefix);
    }
    let mut statements = Vec::new();
    let mut defined_sets = Vec::new();
    let reflectors: Vec<String> = d
        .peers
        .iter()
        .filter(|p| p.route_reflector)
        .map(|p| format!("{}/32", p.address))
        .collect();
    if !reflectors.is_empty() {
        let rset = format!("{EXPORT_POLICY}-reflectors");
        defined_sets.push(api::DefinedSet {
            defined_type: DefinedType::Neighbor as i32,
            name: rset.clone(),
            list: reflectors,
            prefixes: vec![],
        });
        let to_reflectors = |route_type: RouteType| api::Conditions {
            route_type: route_type as i32,
            neighbor_set: Some(api::MatchSet {
                r#type: match_set::Type::Any as i32,
                name: rset.clone(),
            }),
            ..Default::default()
        };
        // Other nodes' paths (reflected, iBGP) go to nobody: not to our customers (no
        // transit), not back to a reflector.
        statements.push(api::Statement {
            name: format!("{EXPORT_POLICY}-no-reflected"),
            conditions: Some(api::Conditions {
                route_type: RouteType::Internal as i32,
                ..Default::default()
            }),
            actions: Some(reject()),
        });
        // Our customers' paths go to the reflectors as they came (communities, AS path,
        // next hop): every node computes the same priority from them.
        statements.push(api::Statement {
            name: format!("{EXPORT_POLICY}-customers-to-reflectors"),
            conditions: Some(to_reflectors(RouteType::External)),
            actions: Some(api::Actions {
                route_action: RouteAction::Accept as i32,
                ..Default::default()
            }),
        });
        // What we originate every node originates too: the fleet needs none of it.
        statements.push(api::Statement {
            name: format!("{EXPORT_POLICY}-own-not-to-reflectors"),
            conditions: Some(to_reflectors(RouteType::Local)),
            actions: Some(reject()),
        });
    }
    statements.push(api::Statement {
        name: format!("{EXPORT_POLICY}-no-transit"),
        conditions: Some(api::Conditions {
            route_type: RouteType::External as i32,
            ..Default::default()
        }),
        actions: Some(reject()),
    });
    for (i, (peers, prefixes)) in groups.into_iter().enumerate() {
        let (pset, nset) = (
            format!("{EXPORT_POLICY}-extra-{i}"),
            format!("{EXPORT_POLICY}-to-{i}"),
        );
        defined_sets.push(api::DefinedSet {
            defined_type: DefinedType::Prefix as i32,
            name: pset.clone(),
            list: vec![],
            prefixes: prefixes
                .iter()
                .map(|p| api::Prefix {
                    ip_prefix: p.to_string(),
                    mask_length_min: u32::from(p.len),
                    mask_length_max: u32::from(p.len),
                })
                .collect(),
        });
        defined_sets.push(api::DefinedSet {
            defined_type: DefinedType::Neighbor as i32,
            name: nset.clone(),
            list: peers.iter().map(|a| format!("{a}/32")).collect(),
            prefixes: vec![],
        });
        // These prefixes, toward any peer not in the set: reject.
        statements.push(api::Statement {
            name: format!("{EXPORT_POLICY}-extra-{i}"),
            conditions: Some(api::Conditions {
                prefix_set: Some(api::MatchSet {
                    r#type: match_set::Type::Any as i32,
                    name: pset,
                }),
                neighbor_set: Some(api::MatchSet {
                    r#type: match_set::Type::Invert as i32,
                    name: nset,
                }),
                ..Default::default()
            }),
            actions: Some(reject()),
        });
    }
    api::SetPoliciesRequest {
        defined_sets,
        policies: vec![api::Policy {
            name: EXPORT_POLICY.into(),
            statements,
        }],
        assignments: vec![],
    }
}

fn reject() -> api::Actions {
    api::Actions {
        route_action: RouteAction::Reject as i32,
        ..Default::default()
    }
}

/// Installs `policy` (replacing gobgpd's policies) and assigns it to the global RIB's exports.
/// Already-advertised paths are re-evaluated by a soft reset out of every peer.
pub async fn apply_policy(
    c: &mut Client,
    policy: api::SetPoliciesRequest,
    peers: impl Iterator<Item = Ipv4Addr>,
) -> Result<(), String> {
    rpc("SetPolicies", RPC_TIMEOUT, c.set_policies(policy)).await?;
    let assignment = api::PolicyAssignment {
        name: "global".into(),
        direction: PolicyDirection::Export as i32,
        policies: vec![api::Policy {
            name: EXPORT_POLICY.into(),
            statements: vec![],
        }],
        default_action: RouteAction::Accept as i32,
    };
    let req = api::SetPolicyAssignmentRequest {
        assignment: Some(assignment),
    };
    rpc(
        "SetPolicyAssignment",
        RPC_TIMEOUT,
        c.set_policy_assignment(req),
    )
    .await?;
    for addr in peers {
        let req = api::ResetPeerRequest {
            address: addr.to_string(),
            communication: String::new(),
            soft: true,
            direction: api::reset_peer_request::SoftResetDirection::Out as i32,
        };
        // A peer that is not established has nothing to re-advertise: gobgpd may refuse.
        if let Err(e) = rpc("ResetPeer", RPC_TIMEOUT, c.reset_peer(req)).await {
            log::debug!("bgp: soft reset out of {addr}: {e}");
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::bgp::PeerSpec;
    use std::time::Duration;

    /// A peer 10.0.0.<last> of AS 65000 + last, with a password and the given extras.
    pub(in crate::bgp::gobgp) fn spec(last: u8, extra: &[Prefix]) -> PeerSpec {
        PeerSpec {
            name: format!("t{last}"),
            address: Ipv4Addr::new(10, 0, 0, last),
            asn: 65000 + u32::from(last),
            local_address: Ipv4Addr::new(10, 0, 0, 1),
            md5_password: Some("pw".into()),
            hold_time: Duration::from_secs(240),
            extra_announce: extra.to_vec(),
            route_reflector: false,
        }
    }

    fn p(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(a.parse::<Ipv4Addr>().unwrap().into(), l.parse().unwrap()).unwrap()
    }

    fn desired(peers: Vec<PeerSpec>, announce: &[&str]) -> Desired {
        Desired {
            api: "127.0.0.1:50051".parse().unwrap(),
            asn: 64512,
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            graceful_restart: Duration::from_secs(120),
            peers,
            announce: announce.iter().map(|s| p(s)).collect(),
        }
    }

    #[test]
    fn extras_reach_only_their_peers() {
        let a = p("192.0.2.0/24");
        let b = p("198.51.100.0/24");
        // b is also announced to everyone: it needs no restriction.
        let d = desired(
            vec![spec(2, &[a, b]), spec(3, &[a]), spec(4, &[])],
            &["10.1.0.0/16", "198.51.100.0/24"],
        );
        assert_eq!(
            originated(&d),
            [p("10.1.0.0/16"), a, b].into_iter().collect()
        );
        let pol = export_policy(&d);
        let st = &pol.policies[0].statements;
        assert_eq!(st.len(), 2, "{st:?}");
        assert_eq!(
            st[0].conditions.as_ref().unwrap().route_type,
            RouteType::External as i32
        );
        assert_eq!(pol.defined_sets.len(), 2);
        assert_eq!(pol.defined_sets[0].prefixes[0].ip_prefix, "192.0.2.0/24");
        assert_eq!(pol.defined_sets[1].list, ["10.0.0.2/32", "10.0.0.3/32"]);
        let c = st[1].conditions.as_ref().unwrap();
        assert_eq!(
            c.neighbor_set.as_ref().unwrap().r#type,
            match_set::Type::Invert as i32
        );
    }

    #[test]
    fn customers_paths_go_to_reflectors_only_and_reflected_ones_nowhere() {
        let mut rr = spec(9, &[]);
        rr.route_reflector = true;
        let d = desired(vec![spec(2, &[]), rr], &["10.1.0.0/16"]);
        let pol = export_policy(&d);
        let st = &pol.policies[0].statements;
        let kinds: Vec<(i32, bool, i32)> = st
            .iter()
            .map(|s| {
                let c = s.conditions.as_ref().unwrap();
                (
                    c.route_type,
                    c.neighbor_set.is_some(),
                    s.actions.as_ref().unwrap().route_action,
                )
            })
            .collect();
        let (acc, rej) = (RouteAction::Accept as i32, RouteAction::Reject as i32);
        // In order (gobgpd stops at the first accept or reject): iBGP-learned rejected for
        // all, customers' to the reflectors accepted, ours to the reflectors rejected, then
        // customers' to anyone else rejected.
        assert_eq!(
            kinds,
            [
                (RouteType::Internal as i32, false, rej),
                (RouteType::External as i32, true, acc),
                (RouteType::Local as i32, true, rej),
                (RouteType::External as i32, false, rej),
            ]
        );
        assert_eq!(pol.defined_sets[0].list, ["10.0.0.9/32"]);
        assert_eq!(
            st[1].conditions.as_ref().unwrap().neighbor_set,
            Some(api::MatchSet {
                r#type: match_set::Type::Any as i32,
                name: format!("{EXPORT_POLICY}-reflectors"),
            })
        );
    }
}
