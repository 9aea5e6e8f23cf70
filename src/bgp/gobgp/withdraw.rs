//! At a clean stop nothing of ours may stay announced: an edge whose data plane is gone must
//! not attract traffic. Every path we originated leaves gobgpd's global RIB (one DeletePath
//! without a path deletes every local one: `announce` and the per-peer extras), and gobgpd
//! sends the withdrawals. Then every peer is deleted: gobgpd sends a Cease (peer
//! de-configured) and takes no session until anygate configures it again at its next start.
//! Deleting at once would race the withdrawals (gobgpd drops a session's queued UPDATEs when
//! it closes it), so each established peer that had paths of ours is given until its count
//! of sent UPDATEs has moved and held still for a poll, `FLUSH_WAIT` at most. The caller
//! bounds the whole in time; `Progress` says how far it got.
use super::api::{self, peer_state::SessionState as S, TableType};
use super::client::{self, rpc, RPC_TIMEOUT};
use super::paths::ipv4_unicast;
use super::peers;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The longest wait for the withdrawals to leave before the peers are deleted.
const FLUSH_WAIT: Duration = Duration::from_millis(1000);
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Our paths are deleted from gobgpd's RIB.
    pub withdrawn: bool,
    /// Established peers that were sent paths of ours, and of those, how many were seen
    /// sending the withdrawals before `FLUSH_WAIT`.
    pub advertised_to: usize,
    pub flushed: usize,
    /// Peers gobgpd had, and how many are deleted.
    pub peers: usize,
    pub deleted: usize,
}

/// Withdraws our paths from gobgpd at `api`, then deletes its peers; `p` follows along.
pub async fn all(api: SocketAddr, p: &mut Progress) -> Result<(), String> {
    let mut c = client::connect(api).await?;
    let before = peers::list(&mut c).await?;
    p.peers = before.len();
    // Established peers that hold paths of ours, by their count of UPDATEs sent.
    let mut waiting: BTreeMap<Ipv4Addr, u64> = before
        .iter()
        .filter(|(a, peer)| {
            let s = peers::status(**a, peer, false);
            s.state == crate::bgp::SessionState::Established && s.advertised > 0
        })
        .map(|(a, peer)| (*a, sent_updates(peer)))
        .collect();
    p.advertised_to = waiting.len();
    let req = api::DeletePathRequest {
        table_type: TableType::Global as i32,
        family: Some(ipv4_unicast()),
        ..Default::default()
    };
    rpc("DeletePath", RPC_TIMEOUT, c.delete_path(req)).await?;
    p.withdrawn = true;
    let until = Instant::now() + FLUSH_WAIT;
    let mut last: BTreeMap<Ipv4Addr, u64> = BTreeMap::new();
    while !waiting.is_empty() && Instant::now() < until {
        tokio::time::sleep(POLL).await;
        let now = peers::list(&mut c).await?;
        waiting.retain(|a, sent0| {
            let Some(peer) = now.get(a) else {
                return false;
            };
            let up = peer
                .state
                .as_ref()
                .is_some_and(|s| s.session_state == S::Established as i32);
            let sent = sent_updates(peer);
            // Sent since, and nothing more since the last poll: the withdrawals are out.
            let done = !up || (sent > *sent0 && last.get(a) == Some(&sent));
            last.insert(*a, sent);
            if done && up {
                p.flushed += 1;
            }
            !done
        });
    }
    for a in before.keys() {
        let req = api::DeletePeerRequest {
            address: a.to_string(),
            interface: String::new(),
        };
        rpc("DeletePeer", RPC_TIMEOUT, c.delete_peer(req)).await?;
        p.deleted += 1;
    }
    Ok(())
}

/// The UPDATE messages gobgpd has sent the peer.
fn sent_updates(p: &api::Peer) -> u64 {
    p.state
        .as_ref()
        .and_then(|s| s.messages.as_ref())
        .and_then(|m| m.sent.as_ref())
        .map_or(0, |m| m.update)
}

impl Progress {
    /// What was done, for the log.
    pub fn describe(&self, prefixes: usize) -> String {
        let mut s = if self.withdrawn {
            format!(
                "withdrew our {prefixes} prefix(es) from gobgpd (seen leaving to {} of the {} \
                 established peer(s) holding them)",
                self.flushed, self.advertised_to
            )
        } else {
            format!("could not withdraw our {prefixes} prefix(es) from gobgpd")
        };
        if self.deleted == self.peers && self.withdrawn {
            s.push_str(&format!(", then deleted its {} peer(s)", self.peers));
        } else if self.peers > 0 {
            s.push_str(&format!(
                ", deleted {} of its {} peer(s)",
                self.deleted, self.peers
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_says_what_was_done_and_what_was_not() {
        let done = Progress {
            withdrawn: true,
            advertised_to: 2,
            flushed: 2,
            peers: 3,
            deleted: 3,
        };
        assert_eq!(
            done.describe(5),
            "withdrew our 5 prefix(es) from gobgpd (seen leaving to 2 of the 2 established \
             peer(s) holding them), then deleted its 3 peer(s)"
        );
        let half = Progress { deleted: 1, ..done };
        assert!(half.describe(5).ends_with(", deleted 1 of its 3 peer(s)"));
        // gobgpd did not answer at all.
        assert_eq!(
            Progress::default().describe(5),
            "could not withdraw our 5 prefix(es) from gobgpd"
        );
        let p = api::Peer {
            state: Some(api::PeerState {
                messages: Some(api::Messages {
                    received: None,
                    sent: Some(api::Message {
                        update: 7,
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(sent_updates(&p), 7);
        assert_eq!(sent_updates(&api::Peer::default()), 0);
    }
}
