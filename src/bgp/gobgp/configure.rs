//! Making gobgpd match `Desired`: the global instance, the peers, our announcements and the
//! export policy. Everything is read back from gobgpd and diffed, so the same code serves a
//! fresh gobgpd, one that kept running while we were away, and a reload.
use super::api::{self, conditions::RouteType, match_set, DefinedType, PolicyDirection};
use super::api::{RouteAction, TableType};
use super::client::{rpc, Client, RPC_TIMEOUT};
use super::paths::{self, any, ipv4_unicast};
use crate::bgp::{Desired, PeerSpec};
use crate::lpm::Prefix;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

const BGP_PORT: i32 = 179;
/// The one export policy anygate owns, assigned to gobgpd's global RIB.
pub const EXPORT_POLICY: &str = "anygate-export";
/// Seconds between gobgpd's connection attempts to a peer that is down (its default is 120).
const CONNECT_RETRY: u64 = 5;

/// StartBgp unless gobgpd already runs with our ASN and router id. Another ASN or router id
/// cannot be changed in place: StopBgp (which drops every peer and path) and start again.
/// True when it was (re)started.
pub async fn global(c: &mut Client, d: &Desired) -> Result<bool, String> {
    let now = rpc("GetBgp", RPC_TIMEOUT, c.get_bgp(api::GetBgpRequest {})).await?;
    let g = now.into_inner().global.unwrap_or_default();
    let router_id = d.router_id.to_string();
    if g.asn == d.asn && g.router_id == router_id && g.listen_port == BGP_PORT {
        return Ok(false);
    }
    if g.asn != 0 {
        log::warn!(
            "bgp: gobgpd runs as AS {} router id {} port {}, we want AS {} router id {router_id} \
             port {BGP_PORT}: restarting its BGP instance (every session drops)",
            g.asn,
            g.router_id,
            g.listen_port,
            d.asn
        );
        rpc("StopBgp", RPC_TIMEOUT, c.stop_bgp(api::StopBgpRequest {})).await?;
    }
    let global = api::Global {
        asn: d.asn,
        router_id,
        listen_port: BGP_PORT,
        ..Default::default()
    };
    let req = api::StartBgpRequest {
        global: Some(global),
    };
    rpc("StartBgp", RPC_TIMEOUT, c.start_bgp(req)).await?;
    log::info!(
        "bgp: gobgpd started as AS {} router id {}",
        d.asn,
        d.router_id
    );
    Ok(true)
}

/// What AddPeer is given for `p`.
pub fn peer(p: &PeerSpec, graceful_restart_s: u32) -> api::Peer {
    let hold = p.hold_time.as_secs();
    api::Peer {
        conf: Some(api::PeerConf {
            neighbor_address: p.address.to_string(),
            peer_asn: p.asn,
            auth_password: p.md5_password.clone().unwrap_or_default(),
            description: p.name.clone(),
            ..Default::default()
        }),
        timers: Some(api::Timers {
            config: Some(api::TimersConfig {
                hold_time: hold,
                keepalive_interval: hold / 3,
                connect_retry: CONNECT_RETRY,
                ..Default::default()
            }),
            state: None,
        }),
        transport: Some(api::Transport {
            local_address: p.local_address.to_string(),
            ..Default::default()
        }),
        // Helper: we keep a restarting peer's paths (stale) for the restart time it advertises.
        graceful_restart: Some(api::GracefulRestart {
            enabled: true,
            helper_only: true,
            restart_time: graceful_restart_s,
            ..Default::default()
        }),
        afi_safis: vec![api::AfiSafi {
            config: Some(api::AfiSafiConfig {
                family: Some(ipv4_unicast()),
                enabled: true,
            }),
            mp_graceful_restart: Some(api::MpGracefulRestart {
                config: Some(api::MpGracefulRestartConfig { enabled: true }),
                state: None,
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The parts of a peer we set, as gobgpd reports them back: when they differ the peer is
/// deleted and added again (its session restarts; peers change only on reload).
fn fingerprint(p: &api::Peer) -> (u32, String, String, u64, u64, bool, u32) {
    let conf = p.conf.clone().unwrap_or_default();
    let timers = p.timers.unwrap_or_default().config.unwrap_or_default();
    let gr = p.graceful_restart.clone().unwrap_or_default();
    let local = p.transport.clone().unwrap_or_default().local_address;
    (
        conf.peer_asn,
        conf.auth_password,
        local,
        timers.hold_time,
        timers.keepalive_interval,
        gr.enabled && gr.helper_only,
        gr.restart_time,
    )
}

/// Adds, replaces and deletes peers until gobgpd's equal `d.peers`.
pub async fn peers(c: &mut Client, d: &Desired) -> Result<(), String> {
    let have = super::peers::list(c).await?;
    let gr = u32::try_from(d.graceful_restart.as_secs()).unwrap_or(u32::MAX);
    let want: BTreeMap<Ipv4Addr, api::Peer> =
        d.peers.iter().map(|p| (p.address, peer(p, gr))).collect();
    for (addr, old) in &have {
        let keep = want
            .get(addr)
            .is_some_and(|w| fingerprint(w) == fingerprint(old));
        if !keep {
            let req = api::DeletePeerRequest {
                address: addr.to_string(),
                interface: String::new(),
            };
            rpc("DeletePeer", RPC_TIMEOUT, c.delete_peer(req)).await?;
            log::info!("bgp: peer {addr} removed from gobgpd");
        }
    }
    for (addr, w) in want {
        let same = have
            .get(&addr)
            .is_some_and(|old| fingerprint(old) == fingerprint(&w));
        if !same {
            let req = api::AddPeerRequest { peer: Some(w) };
            rpc("AddPeer", RPC_TIMEOUT, c.add_peer(req)).await?;
            log::info!("bgp: peer {addr} configured in gobgpd");
        }
    }
    Ok(())
}

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
/// advertised, with our ASN prepended), and each peer's extras only to that peer.
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
    let mut statements = vec![api::Statement {
        name: format!("{EXPORT_POLICY}-no-transit"),
        conditions: Some(api::Conditions {
            route_type: RouteType::External as i32,
            ..Default::default()
        }),
        actions: Some(reject()),
    }];
    let mut defined_sets = Vec::new();
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
mod tests {
    use super::*;
    use std::time::Duration;

    fn spec(last: u8, extra: &[Prefix]) -> PeerSpec {
        PeerSpec {
            name: format!("t{last}"),
            address: Ipv4Addr::new(10, 0, 0, last),
            asn: 65000 + u32::from(last),
            local_address: Ipv4Addr::new(10, 0, 0, 1),
            md5_password: Some("pw".into()),
            hold_time: Duration::from_secs(240),
            extra_announce: extra.to_vec(),
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
    fn peer_carries_every_setting() {
        let m = peer(&spec(2, &[]), 120);
        let conf = m.conf.as_ref().unwrap();
        assert_eq!(
            (conf.neighbor_address.as_str(), conf.peer_asn),
            ("10.0.0.2", 65002)
        );
        assert_eq!(conf.auth_password, "pw");
        let t = m.timers.as_ref().unwrap().config.as_ref().unwrap();
        assert_eq!((t.hold_time, t.keepalive_interval), (240, 80));
        assert_eq!(m.transport.as_ref().unwrap().local_address, "10.0.0.1");
        let gr = m.graceful_restart.as_ref().unwrap();
        assert!(gr.enabled && gr.helper_only && gr.restart_time == 120);
        assert_eq!(m.afi_safis.len(), 1);
        assert_eq!(
            m.afi_safis[0].config.as_ref().unwrap().family,
            Some(ipv4_unicast())
        );
        // A changed password is a changed peer.
        let mut other = spec(2, &[]);
        other.md5_password = None;
        assert_ne!(fingerprint(&m), fingerprint(&peer(&other, 120)));
        assert_eq!(fingerprint(&m), fingerprint(&peer(&spec(2, &[]), 120)));
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
}
