//! Peers' states: gobgpd's `Peer` messages turned into `PeerStatus`.
use super::api::{self, peer_state::SessionState as S};
use super::client::{rpc, Client, RPC_TIMEOUT};
use crate::bgp::{PeerStatus, SessionState};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

/// Every peer gobgpd has, by address, with counts of advertised paths.
pub async fn list(c: &mut Client) -> Result<BTreeMap<Ipv4Addr, api::Peer>, String> {
    let req = api::ListPeerRequest {
        address: String::new(),
        enable_advertised: true,
    };
    let fut = async {
        let mut out = BTreeMap::new();
        let mut stream = c.list_peer(req).await?.into_inner();
        while let Some(r) = stream.message().await? {
            let Some(p) = r.peer else { continue };
            let addr = p
                .conf
                .as_ref()
                .and_then(|c| c.neighbor_address.parse().ok());
            if let Some(a) = addr {
                out.insert(a, p);
            }
        }
        Ok(out)
    };
    rpc("ListPeer", RPC_TIMEOUT, fut).await
}

fn state(s: i32) -> SessionState {
    match S::try_from(s).unwrap_or(S::Unknown) {
        S::Unknown | S::Idle => SessionState::Idle,
        S::Connect => SessionState::Connect,
        S::Active => SessionState::Active,
        S::Opensent => SessionState::OpenSent,
        S::Openconfirm => SessionState::OpenConfirm,
        S::Established => SessionState::Established,
    }
}

fn time(t: Option<&prost_types::Timestamp>) -> Option<SystemTime> {
    let t = t?;
    let secs = u64::try_from(t.seconds).ok().filter(|s| *s > 0)?;
    let nanos = u32::try_from(t.nanos).unwrap_or(0);
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

/// One peer's status. `stale` says whether we hold stale paths of it now (gobgpd does not
/// report its graceful-restart timer; the stale flags on the paths are the truth).
pub fn status(addr: Ipv4Addr, p: &api::Peer, stale: bool) -> PeerStatus {
    let st = p.state.clone().unwrap_or_default();
    let session = state(st.session_state);
    let up = session == SessionState::Established;
    let timers = p.timers.unwrap_or_default().state.unwrap_or_default();
    let since = if up {
        time(timers.uptime.as_ref())
    } else {
        time(timers.downtime.as_ref())
    };
    let negotiated = |s: u64| (up && s > 0).then(|| Duration::from_secs(s));
    let gr_url = "type.googleapis.com/apipb.GracefulRestartCapability";
    // gobgpd counts an End-of-RIB marker per family among the advertised paths of a peer
    // with graceful restart (it builds the list it would send): not a prefix.
    let eor = u64::from(p.graceful_restart.as_ref().is_some_and(|g| g.enabled));
    let (mut received, mut advertised) = (0u64, 0u64);
    for a in &p.afi_safis {
        if let Some(s) = &a.state {
            received += s.received;
            advertised += s.advertised.saturating_sub(eor);
        }
    }
    PeerStatus {
        address: addr,
        state: session,
        since,
        hold_time: negotiated(timers.negotiated_hold_time),
        keepalive: negotiated(timers.keepalive_interval),
        graceful_restart_advertised: st.remote_cap.iter().any(|c| c.type_url == gr_url),
        graceful_restart_running: !up && stale,
        received: u32::try_from(received).unwrap_or(u32::MAX),
        advertised: u32::try_from(advertised).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn established_peer() {
        let p = api::Peer {
            state: Some(api::PeerState {
                session_state: S::Established as i32,
                remote_cap: vec![prost_types::Any {
                    type_url: "type.googleapis.com/apipb.GracefulRestartCapability".into(),
                    value: vec![],
                }],
                ..Default::default()
            }),
            timers: Some(api::Timers {
                config: None,
                state: Some(api::TimersState {
                    negotiated_hold_time: 9,
                    keepalive_interval: 3,
                    uptime: Some(prost_types::Timestamp {
                        seconds: 1_800_000_000,
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
            }),
            afi_safis: vec![api::AfiSafi {
                state: Some(api::AfiSafiState {
                    received: 3,
                    advertised: 3,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            graceful_restart: Some(api::GracefulRestart {
                enabled: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let a = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(
            status(a, &p, false),
            PeerStatus {
                address: a,
                state: SessionState::Established,
                since: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
                hold_time: Some(Duration::from_secs(9)),
                keepalive: Some(Duration::from_secs(3)),
                graceful_restart_advertised: true,
                graceful_restart_running: false,
                received: 3,
                // 3 less gobgpd's End-of-RIB marker.
                advertised: 2,
            }
        );
        // Down with stale paths kept: graceful restart is running; no negotiated timers.
        let mut down = p.clone();
        down.state.as_mut().unwrap().session_state = S::Active as i32;
        let s = status(a, &down, true);
        assert_eq!(s.state, SessionState::Active);
        assert!(s.graceful_restart_running && s.hold_time.is_none() && s.since.is_none());
    }
}
