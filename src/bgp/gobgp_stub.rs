//! Stand-in for the gobgpd adapter (`bgp::gobgp`, built on its own branch): same entry point,
//! configures nothing. It says so once, then takes every `Desired` until the management
//! thread drops its sender.
use super::{Desired, Event};
use crossbeam::channel::{Receiver, Sender};

pub fn spawn(
    desired: Receiver<Desired>,
    events: Sender<Event>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ag-bgp".into())
        .spawn(move || {
            let _ = events.try_send(Event::Disconnected(
                "this build has no gobgpd adapter (stub)".into(),
            ));
            for d in desired.iter() {
                log::debug!(
                    "bgp (stub): {} peer(s), {} prefix(es) to announce: not configured",
                    d.peers.len(),
                    d.announce.len()
                );
            }
        })
}
