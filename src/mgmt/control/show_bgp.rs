//! `show bgp`: our speaker, the gobgpd adapter's connection, and each peer's session and
//! prefix counts (received, accepted, refused by reason, advertised). A view: its figures
//! (schema [`VIEW_SCHEMA`]) and a `text` rendering.
use super::handlers::Plane;
use crate::bgp::sync::Adapter;
use crate::ctl_proto::VIEW_SCHEMA;
use serde_json::{json, Value};
use std::fmt::Write;
use std::time::SystemTime;

pub fn bgp(plane: &Plane) -> Value {
    let now = SystemTime::now();
    let Some(b) = &plane.cfg.bgp else {
        return json!({"schema": VIEW_SCHEMA, "configured": false, "peers": [],
                      "text": "bgp: not configured (no [bgp] section)\n"});
    };
    let ago = |t: &SystemTime| now.duration_since(*t).map_or(0, |d| d.as_secs());
    let adapter = match &plane.bgp.adapter {
        Adapter::Unknown => json!({"state": "unknown"}),
        Adapter::Connected(t) => json!({"state": "connected", "since_s": ago(t)}),
        Adapter::Disconnected(t, why) => {
            json!({"state": "disconnected", "since_s": ago(t), "error": why})
        }
    };
    let peers = plane.bgp.peers_view(plane.cfg, now);
    let mut text = format!(
        "bgp: AS {}, router id {}, gobgpd API {} {}",
        b.asn,
        b.router_id,
        b.api,
        adapter["state"].as_str().unwrap_or("?")
    );
    if let Some(s) = adapter["since_s"].as_u64() {
        let _ = write!(text, " for {s} s");
    }
    if let Some(e) = adapter["error"].as_str() {
        let _ = write!(text, " ({e})");
    }
    text.push('\n');
    let _ = writeln!(
        text,
        "{:<24} {:<15} {:<10} {:<12} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "peer",
        "address",
        "asn",
        "state",
        "up(s)",
        "hold/ka",
        "recv",
        "accept",
        "stale",
        "refused",
        "advertised"
    );
    for p in &peers {
        let num = |k: &str| p[k].as_u64().map_or("-".to_owned(), |n| n.to_string());
        let refused: u64 = p["refused"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
        let hold = match (p["hold_time_s"].as_u64(), p["keepalive_s"].as_u64()) {
            (Some(h), Some(k)) => format!("{h}/{k}"),
            _ => "-".into(),
        };
        let _ = writeln!(
            text,
            "{:<24} {:<15} {:<10} {:<12} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10}",
            p["name"].as_str().unwrap_or("?"),
            p["address"].as_str().unwrap_or("?"),
            p["asn"],
            p["state"].as_str().unwrap_or("?"),
            num("uptime_s"),
            hold,
            num("received"),
            num("accepted"),
            num("stale"),
            refused,
            num("advertised"),
        );
        let gr = &p["graceful_restart"];
        if gr["running"] == true {
            let _ = writeln!(text, "    graceful restart: running, stale routes kept");
        }
        if refused > 0 {
            let why: Vec<String> = p["refused"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(text, "    refused: {}", why.join(", "));
        }
    }
    json!({"schema": VIEW_SCHEMA, "configured": true, "asn": b.asn,
           "router_id": b.router_id.to_string(), "api": b.api.to_string(),
           "allow_public_prefixes": b.allow_public_prefixes,
           "graceful_restart_time_s": b.graceful_restart.as_secs(),
           "adapter": adapter, "peers": peers, "text": text})
}
