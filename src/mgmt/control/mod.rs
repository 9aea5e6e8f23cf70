//! The control socket (`anygate ctl`): a Unix socket, mode 0600 (0660 with a read-only
//! `node.control_group`), served by threads of its
//! own (`server`); the management thread only answers the parsed requests they queue, between
//! ticks, without touching a socket (`handlers`, `show`). The protocol is `crate::ctl_proto`.
#[cfg(test)]
mod bgp_tests;
mod handlers;
mod server;
mod show;
mod show_arr;
mod show_bgp;
mod socket;
mod tap;
mod views;

use crate::ctl_proto::Request;
use crossbeam::channel::Receiver;
pub(crate) use handlers::apply_in_place;
pub use handlers::{publish_health, Plane};
use std::path::Path;

pub struct Control {
    socket: socket::Bound,
    jobs: Option<Receiver<server::Job>>,
    /// Live trace and capture: the workers' taps and the session in progress.
    taps: tap::Taps,
}

impl Control {
    /// Binds the socket (see `socket::bind`: only a stale socket is replaced), shared with
    /// `group` when given. Done before the EAL starts, so that a refusal is immediate.
    pub fn bind(path: &Path, group: Option<&str>) -> Result<Control, String> {
        let gid = match group {
            None => None,
            Some(g) => match nix::unistd::Group::from_name(g) {
                Ok(Some(g)) => Some(g.gid.as_raw()),
                Ok(None) => return Err(format!("node.control_group: no group `{g}` on this host")),
                Err(e) => return Err(format!("node.control_group: looking up `{g}`: {e}")),
            },
        };
        Ok(Control {
            socket: socket::bind(path, gid).map_err(|e| format!("node.control_socket: {e}"))?,
            jobs: None,
            taps: tap::Taps::new(Vec::new()),
        })
    }

    /// Starts serving clients. Called on the management thread once the EAL has pinned it,
    /// so that the ctl threads share its core and never a worker's.
    pub fn start(&mut self) -> Result<(), String> {
        let listener = self
            .socket
            .listener
            .try_clone()
            .map_err(|e| format!("control socket: {e}"))?;
        self.jobs = Some(server::start(listener, server::Limits::default())?);
        Ok(())
    }

    /// The workers' taps, for `ctl trace` and `ctl capture`.
    pub fn attach_taps(&mut self, taps: Vec<std::sync::Arc<crate::datapath::tap::Tap>>) {
        self.taps = tap::Taps::new(taps);
    }

    /// Answers the requests waiting, if any; never waits for one. A trace or capture is
    /// answered later, from a later call, when its packets came.
    pub fn poll(&mut self, plane: &mut Plane) {
        let Some(jobs) = &self.jobs else { return };
        for job in jobs.try_iter().take(crate::ctl_proto::MAX_CLIENTS) {
            if matches!(job.request, Request::Trace { .. } | Request::Capture { .. }) {
                let who = server::who(job.uid);
                self.taps.start(&job.request, &who, job.reply, plane);
                continue;
            }
            let reply = handlers::handle(job.request, job.uid, plane);
            // Its client may have given up; the reply channel holds one, so this never waits.
            let _ = job.reply.try_send(reply);
        }
        self.taps.poll(plane);
    }
}
