//! The control protocol, one definition for `anygate ctl` and the server: a request is one
//! JSON object on one line, `{"version": 1, "cmd": "...", ...}`, answered by one line
//! `{"ok": true, "version": 1, ...}` or `{"ok": false, "version": 1, "error": "..."}`.
//! Requests are parsed strictly: unknown commands and fields, wrong types, duplicate keys,
//! non-UTF-8 bytes and other protocol versions are refused with the reason.
pub mod strict;

use crate::config::{Health, RawRoute};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// The protocol version this build speaks; a request must name it.
pub const VERSION: u32 = 1;
/// The longest request line. A route is about 150 bytes of JSON, so an `update-routes` batch
/// of about 6,000 routes fits; larger batches are split by the operator.
pub const MAX_REQUEST: usize = 1 << 20;
/// How long a client has to send its whole request, and to read its whole reply.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// Clients served at once; more are answered "too many clients" and closed.
pub const MAX_CLIENTS: usize = 16;
/// Prefixes in one page of `show-routes` over the whole table.
pub const PAGE: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// One prefix (`a.b.c.d/n`), the prefix forwarding uses for an address, or a page of the
    /// whole table starting at `cursor` (a prefix a previous page gave).
    ShowRoutes {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
    },
    /// With `history`, each tunnel's per-second rates over the last minutes instead (only
    /// `tunnel`'s when given). Both optional: an older client's request is unchanged.
    ShowTunnels {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        history: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tunnel: Option<String>,
    },
    ShowFirewall {},
    /// The ARR flow table: entries, capacity, counters, the top tunnels by flows.
    ShowArr {},
    /// BGP: the gobgpd adapter's state and each peer's session and prefix counts.
    ShowBgp {},
    /// A manual health the checks leave alone, or `auto` to hand the tunnel back to them.
    SetHealth {
        tunnel: String,
        health: HealthSetting,
    },
    AddRoute {
        route: RawRoute,
    },
    DelRoute {
        prefix: String,
        nexthop: String,
    },
    /// Withdrawals first, then additions; applied whole or refused whole.
    UpdateRoutes {
        #[serde(default)]
        add: Vec<RawRoute>,
        #[serde(default)]
        del: Vec<Withdrawal>,
    },
    Reload {
        #[serde(default)]
        discard_runtime: bool,
    },
    /// Live counters, as the final stats print them, since the last `clear-counters`.
    ShowStats {},
    /// Each port's link, addresses, queues and NIC counters.
    ShowPorts {},
    /// The ARP cache and the static `[[neighbors]]`.
    ShowNeighbors {},
    /// Versions, uptime, table generation, config file, workers.
    ShowStatus {},
    /// The views count from now on; the raw counters keep counting.
    ClearCounters {},
    /// The next `count` packets the workers see (received on `port`, through `tunnel`),
    /// traced as `anygate trace` does; answered when they came or after the wait.
    Trace {
        count: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tunnel: Option<String>,
    },
    /// Copies of the next `count` packets as received (only dropped ones with `drops_only`),
    /// in the reply (`data` in hex); the client writes the file.
    Capture {
        count: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<String>,
        #[serde(default)]
        drops_only: bool,
    },
}

/// Bytes as lowercase hex, for packet data in replies.
pub fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// The bytes of a hex string; None when it is not one.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
        .collect()
}

/// The layout version of the `show-stats`, `show-ports`, `show-neighbors` and `show-status`
/// replies (their `schema` field): raised when a field is renamed or removed, not when one is
/// added.
pub const VIEW_SCHEMA: u32 = 1;

/// What `set-health` sets: a health (a manual override) or `auto`. Added to protocol
/// version 1 without a new version: old clients never send `auto`, and an old server refuses
/// it as an unknown variant, which `anygate ctl` explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthSetting {
    Healthy,
    Degraded,
    Down,
    Auto,
}

impl HealthSetting {
    /// The manual health, or None for `auto`.
    pub fn manual(self) -> Option<Health> {
        match self {
            HealthSetting::Healthy => Some(Health::Healthy),
            HealthSetting::Degraded => Some(Health::Degraded),
            HealthSetting::Down => Some(Health::Down),
            HealthSetting::Auto => None,
        }
    }
    pub fn name(self) -> &'static str {
        self.manual().map_or("auto", Health::name)
    }
}

/// Every route for `prefix` through `nexthop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withdrawal {
    pub prefix: String,
    pub nexthop: String,
}

/// An `update-routes` batch file: `[[del]]` and `[[add]]` tables.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    #[serde(default)]
    pub add: Vec<RawRoute>,
    #[serde(default)]
    pub del: Vec<Withdrawal>,
}

impl Request {
    /// The request as sent: one line, newline included.
    pub fn to_line(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Value::Object(m) = &mut v {
            m.insert("version".into(), VERSION.into());
        }
        format!("{v}\n")
    }

    /// Parses one request line (without its newline).
    pub fn parse(line: &[u8]) -> Result<Request, String> {
        let text = std::str::from_utf8(line).map_err(|e| format!("request is not UTF-8: {e}"))?;
        let v = strict::from_str(text).map_err(|e| format!("request is not JSON: {e}"))?;
        let Value::Object(mut m) = v else {
            return Err("request is not a JSON object".into());
        };
        match m.remove("version") {
            None => {
                return Err(format!(
                    "missing \"version\" (this anygate speaks control protocol version {VERSION})"
                ))
            }
            Some(v) if v == VERSION => {}
            Some(v) => {
                return Err(format!(
                    "control protocol version {v} is not supported (this anygate speaks {VERSION})"
                ))
            }
        }
        serde_json::from_value(Value::Object(m)).map_err(|e| format!("bad request: {e}"))
    }

    /// What a request that changes something asks for, for the log; None for a `show`.
    pub fn change(&self) -> Option<String> {
        let route =
            |r: &RawRoute| format!("{} via {} priority {}", r.prefix, r.nexthop, r.priority);
        match self {
            Request::ShowRoutes { .. } | Request::ShowTunnels { .. } | Request::ShowFirewall {} => {
                None
            }
            Request::Trace { .. } | Request::Capture { .. } => None,
            Request::ShowArr {} | Request::ShowBgp {} => None,
            Request::SetHealth { tunnel, health } => {
                Some(format!("set-health {tunnel} {}", health.name()))
            }
            Request::AddRoute { route: r } => Some(format!("add-route {}", route(r))),
            Request::DelRoute { prefix, nexthop } => {
                Some(format!("del-route {prefix} via {nexthop}"))
            }
            Request::UpdateRoutes { add, del } => {
                let mut s = format!(
                    "update-routes ({} withdrawal(s), {} addition(s))",
                    del.len(),
                    add.len()
                );
                // Name them when few: a big batch is summed up, not copied into the log.
                if add.len() + del.len() <= 10 {
                    let names: Vec<String> = del
                        .iter()
                        .map(|d| format!("del {} via {}", d.prefix, d.nexthop))
                        .chain(add.iter().map(|a| format!("add {}", route(a))))
                        .collect();
                    if !names.is_empty() {
                        s += &format!(": {}", names.join(", "));
                    }
                }
                Some(s)
            }
            Request::ShowStats {}
            | Request::ShowPorts {}
            | Request::ShowNeighbors {}
            | Request::ShowStatus {} => None,
            Request::ClearCounters {} => Some("clear-counters".into()),
            Request::Reload { discard_runtime } => Some(
                if *discard_runtime {
                    "reload --discard-runtime"
                } else {
                    "reload"
                }
                .into(),
            ),
        }
    }
}

/// A reply: `ok`, `version`, `error` when refused, and the command's own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten)]
    pub body: Map<String, Value>,
}

impl Reply {
    /// Success with these fields (an object; anything else carries no fields). The
    /// envelope's own keys are the envelope's: a body never repeats them.
    pub fn ok(body: Value) -> Reply {
        let mut body = match body {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for k in ["ok", "version", "error"] {
            body.remove(k);
        }
        Reply {
            ok: true,
            version: VERSION,
            error: None,
            body,
        }
    }

    pub fn error(e: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            version: VERSION,
            error: Some(e.into()),
            body: Map::new(),
        }
    }

    /// The reply as sent: one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    pub fn parse(line: &str) -> Result<Reply, String> {
        serde_json::from_str(line).map_err(|e| format!("bad reply: {e}"))
    }

    /// A field of the command's reply (`Null` when absent).
    pub fn get(&self, k: &str) -> &Value {
        self.body.get(k).unwrap_or(&Value::Null)
    }

    /// The whole reply as a JSON value, as `ctl --json` prints it.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Request, String> {
        Request::parse(s.as_bytes())
    }

    #[test]
    fn requests_round_trip_with_the_version() {
        let reqs = [
            Request::ShowRoutes {
                prefix: Some("10.0.0.0/8".into()),
                cursor: None,
            },
            Request::ShowTunnels {
                history: false,
                tunnel: None,
            },
            Request::ShowTunnels {
                history: true,
                tunnel: Some("T1".into()),
            },
            Request::SetHealth {
                tunnel: "T1".into(),
                health: HealthSetting::Down,
            },
            Request::SetHealth {
                tunnel: "T1".into(),
                health: HealthSetting::Auto,
            },
            Request::UpdateRoutes {
                add: vec![],
                del: vec![Withdrawal {
                    prefix: "10.0.0.0/8".into(),
                    nexthop: "T1".into(),
                }],
            },
            Request::Reload {
                discard_runtime: true,
            },
        ];
        for r in reqs {
            let line = r.to_line();
            assert!(
                line.ends_with('\n') && line.contains("\"version\":1"),
                "{line}"
            );
            assert_eq!(parse(line.trim_end()).unwrap(), r);
        }
        assert_eq!(
            parse(r#"{"version":1,"cmd":"show-routes"}"#).unwrap(),
            Request::ShowRoutes {
                prefix: None,
                cursor: None
            }
        );
        // An older client's `show-tunnels` still parses, and is still sent the same way.
        let plain = Request::ShowTunnels {
            history: false,
            tunnel: None,
        };
        assert_eq!(
            parse(r#"{"version":1,"cmd":"show-tunnels"}"#).unwrap(),
            plain
        );
        assert_eq!(
            plain.to_line(),
            "{\"cmd\":\"show-tunnels\",\"version\":1}\n"
        );
    }

    #[test]
    fn malformed_requests_are_refused_with_the_reason() {
        let cases = [
            (
                r#"{"version":1,"cmd":"update-routes","add":5,"del":"x"}"#,
                "invalid type: integer `5`, expected a sequence",
            ),
            (
                r#"{"version":1,"cmd":"show-routes","cmd":"reload"}"#,
                "duplicate key `cmd`",
            ),
            (
                r#"{"version":1,"cmd":"show-routes","prefix":5}"#,
                "invalid type: integer `5`, expected a string",
            ),
            (
                r#"{"version":1,"cmd":"show-tunnels","verbose":true}"#,
                "unknown field `verbose`",
            ),
            (
                r#"{"version":1,"cmd":"reload","discard":true}"#,
                "unknown field `discard`",
            ),
            (
                r#"{"version":1,"cmd":"add-route","route":{"prefix":"10.0.0.0/8","nexthop":"T1","color":1}}"#,
                "unknown field `color`",
            ),
            (
                r#"{"version":1,"cmd":"set-health","tunnel":"T1","health":"sick"}"#,
                "unknown variant `sick`",
            ),
            (
                r#"{"version":1,"cmd":"launch"}"#,
                "unknown variant `launch`",
            ),
            (r#"{"version":1}"#, "missing field `cmd`"),
            (r#"{"cmd":"show-tunnels"}"#, "missing \"version\""),
            (
                r#"{"version":2,"cmd":"show-tunnels"}"#,
                "version 2 is not supported",
            ),
            (
                r#"{"version":"1","cmd":"show-tunnels"}"#,
                "version \"1\" is not supported",
            ),
            (r#"[1]"#, "not a JSON object"),
            ("show routes", "not JSON"),
        ];
        for (req, want) in cases {
            let e = parse(req).unwrap_err();
            assert!(e.contains(want), "{req}: {e}");
        }
        let e = Request::parse(b"{\"version\":1,\"cmd\":\"show-\xff\"}").unwrap_err();
        assert!(e.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn trace_and_capture_round_trip_and_hex_is_reversible() {
        let reqs = [
            Request::Trace {
                count: 5,
                port: Some("wan0".into()),
                tunnel: None,
            },
            Request::Capture {
                count: 9,
                port: None,
                drops_only: true,
            },
        ];
        for r in reqs {
            assert_eq!(parse(r.to_line().trim_end()).unwrap(), r);
        }
        let e = parse(r#"{"version":1,"cmd":"trace"}"#).unwrap_err();
        assert!(e.contains("missing field `count`"), "{e}");
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(unhex("00ab10").unwrap(), vec![0, 0xab, 0x10]);
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }

    #[test]
    fn replies_carry_ok_version_and_the_fields() {
        let r = Reply::ok(serde_json::json!({"generation": 3}));
        let line = String::from_utf8(r.to_line()).unwrap();
        assert_eq!(Reply::parse(&line).unwrap(), r);
        assert_eq!(
            r.to_value(),
            serde_json::json!({"ok": true, "version": 1, "generation": 3})
        );
        let e = Reply::error("no");
        assert_eq!(
            e.to_value(),
            serde_json::json!({"ok": false, "version": 1, "error": "no"})
        );
    }

    #[test]
    fn views_and_clear_counters_round_trip() {
        for (r, cmd) in [
            (Request::ShowStats {}, "show-stats"),
            (Request::ShowPorts {}, "show-ports"),
            (Request::ShowNeighbors {}, "show-neighbors"),
            (Request::ShowStatus {}, "show-status"),
            (Request::ShowBgp {}, "show-bgp"),
            (Request::ClearCounters {}, "clear-counters"),
        ] {
            let line = r.to_line();
            assert!(line.contains(&format!("\"cmd\":\"{cmd}\"")), "{line}");
            assert_eq!(parse(line.trim_end()).unwrap(), r);
            assert_eq!(r.change().is_some(), cmd == "clear-counters");
        }
        let e = parse(r#"{"version":1,"cmd":"show-stats","reset":true}"#).unwrap_err();
        assert!(e.contains("unknown field `reset`"), "{e}");
    }

    #[test]
    fn changes_are_described_for_the_log() {
        assert_eq!(
            Request::ShowTunnels {
                history: true,
                tunnel: None
            }
            .change(),
            None
        );
        let auto = parse(r#"{"version":1,"cmd":"set-health","tunnel":"T1","health":"auto"}"#);
        assert_eq!(auto.unwrap().change().unwrap(), "set-health T1 auto");
        let e = parse(r#"{"version":1,"cmd":"set-health","tunnel":"T1","health":"Auto"}"#);
        assert!(
            e.unwrap_err()
                .contains("expected one of `healthy`, `degraded`, `down`, `auto`"),
            "strict, lowercase"
        );
        let r = parse(r#"{"version":1,"cmd":"update-routes","del":[{"prefix":"10.1.0.0/16","nexthop":"T1"}],"add":[{"prefix":"10.2.0.0/16","nexthop":"T2"}]}"#).unwrap();
        assert_eq!(
            r.change().unwrap(),
            "update-routes (1 withdrawal(s), 1 addition(s)): del 10.1.0.0/16 via T1, add 10.2.0.0/16 via T2 priority 100"
        );
    }
}
