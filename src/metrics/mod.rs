//! The Prometheus endpoint (`[metrics] listen`): a thread of its own serving `GET /metrics`
//! from the worker counters' seqlock blocks and the view the management thread publishes
//! ([`view::Shared`]). It never waits on the management loop, nor the loop on it.
pub mod exposition;
pub mod feed;
pub mod http;
pub mod view;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use view::{MgmtView, Shared, TunnelView};

/// The running endpoint; dropped, it stops accepting and joins its thread.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Binds the endpoint; called before the EAL so a taken port refuses the start at once.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|e| format!("metrics.listen: cannot bind {addr}: {e}"))
}

impl Server {
    /// Serves `GET /metrics` on `listener` from `shared`, in a thread of its own.
    pub fn start(listener: TcpListener, shared: Arc<Shared>) -> Result<Server, String> {
        let addr = listener
            .local_addr()
            .map_err(|e| format!("metrics: listener: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let handle: Arc<dyn Fn(&str) -> http::Response + Send + Sync> =
            Arc::new(move |path: &str| answer(path, &shared));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ag-metrics".into())
            .spawn(move || http::serve(listener, http::Limits::default(), s, handle))
            .map_err(|e| format!("metrics: cannot start thread: {e}"))?;
        log::info!("metrics: serving http://{addr}/metrics");
        Ok(Server {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        http::wake(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(path: &str, shared: &Shared) -> http::Response {
    match path {
        "/metrics" => match exposition::render(shared) {
            Some(body) => ("200 OK", exposition::CONTENT_TYPE, body),
            None => (
                "503 Service Unavailable",
                "text/plain",
                "starting: no figures yet\n".into(),
            ),
        },
        _ => (
            "404 Not Found",
            "text/plain",
            "not found; metrics are at /metrics\n".into(),
        ),
    }
}
