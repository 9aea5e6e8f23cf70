//! What gobgpd must look like, from the config and the route table.
use super::{Desired, PeerSpec};
use crate::config::Config;
use crate::lpm::Prefix;

/// gobgpd's configuration for `cfg`, announcing `announce` (the route table's prefixes, any
/// order, repeats allowed) to every peer. None without `[bgp]`.
pub fn desired(cfg: &Config, announce: impl IntoIterator<Item = Prefix>) -> Option<Desired> {
    let b = cfg.bgp.as_ref()?;
    let mut announce: Vec<Prefix> = announce.into_iter().collect();
    announce.sort_unstable();
    announce.dedup();
    Some(Desired {
        api: b.api,
        asn: b.asn,
        router_id: b.router_id,
        graceful_restart: b.graceful_restart,
        peers: b
            .peers
            .iter()
            .map(|p| PeerSpec {
                name: p.name.clone(),
                address: p.address,
                asn: p.asn,
                local_address: p.local_address,
                md5_password: p.md5_password.clone(),
                hold_time: p.hold_time,
                extra_announce: p.advertised.clone(),
                route_reflector: p.at == crate::config::PeerAt::Reflector,
            })
            .collect(),
        announce,
    })
}

/// The prefixes we announce: every route of the table visible on this server (static, `ctl`
/// and BGP alike), not the implicit ones (connected subnets, neighbours, tunnel interfaces).
pub fn announced(cfg: &Config, rib: &crate::route::Rib) -> Vec<Prefix> {
    rib.routes()
        .filter(|r| r.visible(&cfg.node))
        .map(|r| r.prefix)
        .collect()
}
