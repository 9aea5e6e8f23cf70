//! Making gobgpd match `Desired`: the global instance and the peers (our announcements and the
//! export policy: `announce`). Everything is read back from gobgpd and diffed, so the same code
//! serves a fresh gobgpd, one that kept running while we were away, and a reload.
use super::api;
use super::client::{rpc, Client, RPC_TIMEOUT};
use super::paths::ipv4_unicast;
use crate::bgp::{Desired, PeerSpec};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

const BGP_PORT: i32 = 179;
/// Seconds between gobgpd's connection attempts to a peer that is down (its default is 120).
const CONNECT_RETRY: u64 = 5;
/// Paths per prefix sent to a route reflector with ADD-PATH: every customer path a node holds
/// for a prefix (one per customer peer) goes, not only gobgpd's best.
pub const ADD_PATH_SEND_MAX: u32 = 255;

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
            // Unspecified (a reflector without `local_address`): the kernel picks it.
            local_address: if p.local_address.is_unspecified() {
                String::new()
            } else {
                p.local_address.to_string()
            },
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
            // A reflector hands us every path of every node (not its best), and takes all of
            // ours; the next hop stays the customer's (iBGP), naming its tunnel on every node.
            add_paths: p.route_reflector.then_some(api::AddPaths {
                config: Some(api::AddPathsConfig {
                    receive: true,
                    send_max: ADD_PATH_SEND_MAX,
                }),
                state: None,
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The parts of a peer we set, as gobgpd reports them back: when they differ the peer is
/// deleted and added again (its session restarts; peers change only on reload).
type Fingerprint = (
    u32,
    String,
    String,
    u64,
    u64,
    bool,
    u32,
    Option<(bool, u32)>,
);

fn fingerprint(p: &api::Peer) -> Fingerprint {
    let conf = p.conf.clone().unwrap_or_default();
    let add_paths = p
        .afi_safis
        .iter()
        .find_map(|a| a.add_paths.and_then(|x| x.config))
        .map(|c| (c.receive, c.send_max))
        .filter(|c| *c != (false, 0));
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
        add_paths,
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

#[cfg(test)]
mod tests {
    use super::super::announce::tests::spec;
    use super::*;

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
        assert!(
            m.afi_safis[0].add_paths.is_none(),
            "no ADD-PATH with customers"
        );
    }

    #[test]
    fn a_reflector_gets_add_path_both_ways_and_may_leave_the_local_address() {
        let mut r = spec(9, &[]);
        r.route_reflector = true;
        r.asn = 64512;
        r.local_address = Ipv4Addr::UNSPECIFIED;
        let m = peer(&r, 120);
        let ap = m.afi_safis[0].add_paths.unwrap().config.unwrap();
        assert!(ap.receive && ap.send_max == ADD_PATH_SEND_MAX);
        assert_eq!(m.transport.as_ref().unwrap().local_address, "");
        assert_eq!(m.conf.as_ref().unwrap().peer_asn, 64512);
        // Turning ADD-PATH off (a customer now) is a changed peer.
        r.route_reflector = false;
        assert_ne!(fingerprint(&m), fingerprint(&peer(&r, 120)));
    }
}
