//! `[metrics]`: where the Prometheus endpoint listens, if anywhere. Read at start only (the
//! listener is bound once), so a reload that changes it is refused as needing a restart.
use super::parse::Errs;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// `address:port` serving `GET /metrics`; "" (the default): no endpoint.
    #[serde(default)]
    pub listen: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConf {
    pub listen: Option<SocketAddr>,
}

pub(super) fn validate_metrics(raw: &RawMetrics, e: &mut Errs) -> MetricsConf {
    if raw.listen.is_empty() {
        return MetricsConf::default();
    }
    match raw.listen.parse::<SocketAddr>() {
        Ok(a) if a.port() == 0 => {
            e.push(
                "metrics.listen",
                format!(
                    "`{}` has port 0; name the port Prometheus scrapes, e.g. \"127.0.0.1:9423\"",
                    raw.listen
                ),
            );
            MetricsConf::default()
        }
        Ok(a) => MetricsConf { listen: Some(a) },
        Err(_) => {
            e.push(
                "metrics.listen",
                format!(
                    "`{}` is not an IP address and port, e.g. \"127.0.0.1:9423\" or \"[::1]:9423\"",
                    raw.listen
                ),
            );
            MetricsConf::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::super::test_support::{host, ONE_PORT as BASE};
    use std::net::SocketAddr;

    fn refused(metrics: &str) -> String {
        super::super::test_support::refused("metrics", metrics)
    }

    #[test]
    fn off_by_default_and_an_address_is_read() {
        assert_eq!(parse(BASE, &host()).unwrap().metrics.listen, None);
        let c = parse(&format!("{BASE}\n[metrics]\nlisten = \"\"\n"), &host()).unwrap();
        assert_eq!(c.metrics.listen, None, "\"\" is off");
        let c = parse(
            &format!("{BASE}\n[metrics]\nlisten = \"127.0.0.1:9423\"\n"),
            &host(),
        )
        .unwrap();
        assert_eq!(
            c.metrics.listen,
            Some("127.0.0.1:9423".parse::<SocketAddr>().unwrap())
        );
        let c = parse(
            &format!("{BASE}\n[metrics]\nlisten = \"[::1]:9423\"\n"),
            &host(),
        )
        .unwrap();
        assert_eq!(c.metrics.listen.unwrap().port(), 9423);
    }

    #[test]
    fn bad_addresses_are_refused_naming_the_key() {
        assert_eq!(
            refused("listen = \"localhost:9423\""),
            "metrics.listen: `localhost:9423` is not an IP address and port, e.g. \"127.0.0.1:9423\" or \"[::1]:9423\""
        );
        assert_eq!(
            refused("listen = \"127.0.0.1\""),
            "metrics.listen: `127.0.0.1` is not an IP address and port, e.g. \"127.0.0.1:9423\" or \"[::1]:9423\""
        );
        assert_eq!(
            refused("listen = \"127.0.0.1:0\""),
            "metrics.listen: `127.0.0.1:0` has port 0; name the port Prometheus scrapes, e.g. \"127.0.0.1:9423\""
        );
        assert!(
            refused("port = 9423").contains("unknown field `port`"),
            "unknown keys are refused"
        );
    }

    #[test]
    fn changing_the_endpoint_needs_a_restart() {
        let a = parse(BASE, &host()).unwrap();
        let b = parse(
            &format!("{BASE}\n[metrics]\nlisten = \"127.0.0.1:9423\"\n"),
            &host(),
        )
        .unwrap();
        assert_eq!(b.restart_required(&a), ["[metrics]"]);
        assert!(a.restart_required(&a.clone()).is_empty());
    }
}
