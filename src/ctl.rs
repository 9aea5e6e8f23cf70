//! `anygate ctl`: the client of the control socket. Sends one JSON request, prints the answer
//! as text (or as it came, with `--json`).
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Sends `req` to the socket at `path` and returns the reply.
pub fn request(path: &Path, req: &Value) -> Result<Value, String> {
    let stream = UnixStream::connect(path)
        .map_err(|e| format!("{}: {e} (is anygate running?)", path.display()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut w = &stream;
    writeln!(w, "{req}").map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&line).map_err(|e| format!("bad reply: {e}"))
}

/// A route to add, as the TOML `[[routes]]` keys.
#[allow(clippy::too_many_arguments)]
pub fn route_json(
    prefix: &str,
    nexthop: &str,
    priority: Option<u32>,
    weight: Option<u16>,
    source: Option<&str>,
    regions: &[String],
    colos: &[String],
    description: Option<&str>,
) -> Value {
    let mut r = json!({"prefix": prefix, "nexthop": nexthop});
    if let Some(p) = priority {
        r["priority"] = json!(p);
    }
    if let Some(w) = weight {
        r["weight"] = json!(w);
    }
    if let Some(s) = source {
        r["source"] = json!(s);
    }
    if !regions.is_empty() || !colos.is_empty() {
        r["scope"] = json!({"regions": regions, "colos": colos});
    }
    if let Some(d) = description {
        r["description"] = json!(d);
    }
    r
}

/// The `update-routes` request for a TOML batch file with `[[del]]` and `[[add]]` tables.
pub fn update_request(file: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut req: serde_json::Map<String, Value> =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    if let Some(k) = req.keys().find(|k| *k != "add" && *k != "del") {
        return Err(format!(
            "{}: unknown key `{k}` (expected [[add]] and [[del]] tables)",
            file.display()
        ));
    }
    req.insert("cmd".into(), json!("update-routes"));
    Ok(Value::Object(req))
}

/// The reply as an operator reads it.
pub fn render(reply: &Value) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if let Some(routes) = reply.get("routes").and_then(Value::as_array) {
        for r in routes {
            let prefix = r["prefix"].as_str().unwrap_or("?");
            if let Some(l) = r.get("local").and_then(Value::as_str) {
                let _ = writeln!(s, "{prefix:<20} local: {l}");
                continue;
            }
            let group: Vec<String> = r["group"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    format!(
                        "{} (weight {}, {:.1}%)",
                        m["nexthop"].as_str().unwrap_or("?"),
                        m["weight"],
                        m["share"].as_f64().unwrap_or(0.0) * 100.0
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                "{prefix:<20} -> {}   effective priority {}",
                group.join(", "),
                r["effective"]
            );
            for c in r["candidates"].as_array().into_iter().flatten() {
                let health = c["health"]
                    .as_str()
                    .map(|h| format!(" [{h}]"))
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "    {:<16} priority {:<8} effective {:<8} weight {:<4} {:<8} {}{}",
                    c["nexthop"].as_str().unwrap_or("?"),
                    c["priority"],
                    c["effective"],
                    c["weight"],
                    c["source"].as_str().unwrap_or(""),
                    c["status"].as_str().unwrap_or(""),
                    health
                );
            }
        }
        for r in reply["invisible"].as_array().into_iter().flatten() {
            let _ = writeln!(
                s,
                "{:<20} via {}: {}",
                r["prefix"].as_str().unwrap_or("?"),
                r["nexthop"].as_str().unwrap_or("?"),
                r["status"].as_str().unwrap_or("")
            );
        }
    } else if let Some(tunnels) = reply.get("tunnels").and_then(Value::as_array) {
        for t in tunnels {
            let _ = writeln!(
                s,
                "{:<16} {:<4} {} -> {}  {:<8} mtu {} mss {}  decap {} encap {} dropped {}",
                t["name"].as_str().unwrap_or("?"),
                t["type"].as_str().unwrap_or("?"),
                t["edge_endpoint"].as_str().unwrap_or("?"),
                t["customer_endpoint"].as_str().unwrap_or("?"),
                t["health"].as_str().unwrap_or("?"),
                t["mtu"],
                t["mss_clamp"],
                t["rx_packets"],
                t["tx_packets"],
                t["drops"]
            );
        }
    } else if let Some(fw) = reply.get("firewall") {
        let mut phase = &Value::Null;
        for r in fw["rules"].as_array().into_iter().flatten() {
            if r["phase"] != *phase {
                phase = &r["phase"];
                let _ = writeln!(s, "phase {}:", phase.as_str().unwrap_or("?"));
            }
            let id = r["id"]
                .as_str()
                .map(|i| format!("  [{i}]"))
                .unwrap_or_default();
            let description = r["description"]
                .as_str()
                .filter(|d| !d.is_empty())
                .map(|d| format!("  # {d}"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "{:>4} {:<6}{} {:>12} pkts {:>14} bytes  {}{id}{description}",
                r["index"],
                r["action"].as_str().unwrap_or("?"),
                if r["enabled"] == true { "" } else { " (off)" },
                r["packets"],
                r["bytes"],
                r["expression"].as_str().unwrap_or("")
            );
        }
        let _ = writeln!(
            s,
            "   - {:<6} {:>12} pkts {:>14} bytes  (default action)",
            fw["default_action"].as_str().unwrap_or("?"),
            fw["default"]["packets"],
            fw["default"]["bytes"]
        );
    } else {
        let _ = write!(s, "ok: table generation {}", reply["generation"]);
        if reply["rebuilt"] == false {
            let _ = write!(
                s,
                ", {} prefix(es) changed in place ({} FIB entries)",
                reply["prefixes_changed"], reply["entries"]
            );
        }
        let _ = writeln!(s);
    }
    s
}
