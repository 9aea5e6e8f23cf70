//! The connection to gobgpd's API: plaintext HTTP/2 to a loopback address, every call bounded
//! in time (a hung gobgpd must never hang the adapter) and every answer bounded in size.
use super::api::gobgp_api_client::GobgpApiClient;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

pub type Client = GobgpApiClient<Channel>;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One call, or one message of a streamed answer.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole ListPath: 100,000 paths take gobgpd seconds, more on a loaded machine.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(300);
/// A peer that sends more is cut off here (and logged): the policy's max_prefixes refuses
/// far fewer, this only bounds our memory against a runaway table.
pub const MAX_PATHS_PER_PEER: usize = 1 << 20;
/// One gRPC message (a Destination with its paths, a Peer).
const MAX_MESSAGE: usize = 16 << 20;

/// Opens a channel to gobgpd and checks it answers (the first call fails fast when it is down).
pub async fn connect(api: SocketAddr) -> Result<Client, String> {
    let endpoint = Endpoint::from_shared(format!("http://{api}"))
        .map_err(|e| format!("bad API address {api}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        // A gobgpd killed without closing its socket is noticed between our calls too.
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5));
    let channel = match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(format!("gobgpd API {api}: {}", chain(&e))),
        Err(_) => return Err(format!("gobgpd API {api}: connect timed out")),
    };
    Ok(GobgpApiClient::new(channel).max_decoding_message_size(MAX_MESSAGE))
}

/// Runs one call within `timeout`, naming it in the error.
pub async fn rpc<T>(
    name: &str,
    timeout: Duration,
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(s)) => Err(format!("{name}: {} ({:?})", s.message(), s.code())),
        Err(_) => Err(format!("{name}: no answer in {timeout:?}")),
    }
}

/// An error with its causes ("transport error: connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    let mut last = s.clone();
    while let Some(c) = cur {
        let t = c.to_string();
        // hyper's ConnectError and its io::Error both say "tcp connect error": once is enough.
        if !last.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        last = t;
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    /// A cause saying what its wrapper already said is not repeated.
    #[test]
    fn a_repeated_cause_is_said_once() {
        let refused = E("Connection refused (os error 111)", None);
        let io = E("tcp connect error", Some(Box::new(refused)));
        let e = E(
            "transport error",
            Some(Box::new(E("tcp connect error", Some(Box::new(io))))),
        );
        assert_eq!(
            chain(&e),
            "transport error: tcp connect error: Connection refused (os error 111)"
        );
    }
}
