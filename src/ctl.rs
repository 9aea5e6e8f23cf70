//! `anygate ctl`: the client of the control socket. Sends one JSON request, prints the answer
//! as text (or as it came, with `--json`).
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
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

/// The control socket a config file names (`node.control_socket`, else the default). Only
/// that key is read: an operator editing the file must not lose `ctl` to an error elsewhere.
/// When the file is not even valid TOML, its `[node]` section is scanned for the key.
pub fn socket_from_config(path: &Path) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let found = match toml::from_str::<toml::Table>(&text) {
        Ok(t) => match t.get("node").and_then(|n| n.get("control_socket")) {
            None => None,
            Some(toml::Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(format!(
                    "{}: node.control_socket is not a string; give --socket",
                    path.display()
                ))
            }
        },
        Err(e) => Some(scan_control_socket(&text).ok_or_else(|| {
            format!(
                "{}: not valid TOML ({}) and no node.control_socket found in it; give --socket",
                path.display(),
                e.message()
            )
        })?),
    };
    Ok(PathBuf::from(
        found.unwrap_or_else(crate::config::default_control_socket),
    ))
}

/// `control_socket = "..."` under `[node]`, read line by line from a file TOML refuses.
fn scan_control_socket(text: &str) -> Option<String> {
    let mut in_node = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_node = line == "[node]";
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if in_node && k.trim() == "control_socket" {
            let v = v.trim();
            return v
                .strip_prefix('"')
                .and_then(|v| v.split_once('"'))
                .map(|(s, _)| s.to_owned());
        }
    }
    None
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
        if let Some(a) = reply.get("for").and_then(Value::as_str) {
            let _ = writeln!(s, "route for {a}:");
        }
        for r in routes {
            let prefix = r["prefix"].as_str().unwrap_or("?");
            if let Some(l) = r.get("local").and_then(Value::as_str) {
                let _ = writeln!(s, "{prefix:<20} local: {l}");
                continue;
            }
            if let Some(port) = r.get("connected").and_then(Value::as_str) {
                let _ = writeln!(
                    s,
                    "{prefix:<20} connected: port {port}, hosts resolved by ARP"
                );
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
                let origin = match c["origin"].as_str() {
                    Some("ctl") => " (added by ctl)",
                    _ => "",
                };
                let description = c["description"]
                    .as_str()
                    .filter(|d| !d.is_empty())
                    .map(|d| format!("  \"{d}\""))
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "    {:<16} priority {:<8} effective {:<8} weight {:<4} {:<8} {}{}{}{}",
                    c["nexthop"].as_str().unwrap_or("?"),
                    c["priority"],
                    c["effective"],
                    c["weight"],
                    c["source"].as_str().unwrap_or(""),
                    c["status"].as_str().unwrap_or(""),
                    health,
                    origin,
                    description
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
    } else if reply["changed"] == false {
        let _ = writeln!(
            s,
            "ok: nothing changed, table generation {} stays",
            reply["generation"]
        );
        render_runtime(&mut s, reply);
    } else if reply.get("removed").is_some() {
        let _ = writeln!(s, "ok: table generation {}", reply["generation"]);
        for (what, k) in [("removed", "removed"), ("added", "added")] {
            let list: Vec<&str> = reply[k]["routes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let _ = write!(s, "  {} route(s) {what}", reply[k]["count"]);
            if !list.is_empty() && Some(list.len() as u64) == reply[k]["count"].as_u64() {
                let _ = write!(s, ": {}", list.join(", "));
            }
            let _ = writeln!(s);
        }
        render_runtime(&mut s, reply);
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

/// What a reload did with the routes added by `ctl`.
fn render_runtime(s: &mut String, reply: &Value) {
    use std::fmt::Write;
    if let Some(n) = reply["runtime_kept"].as_u64().filter(|n| *n > 0) {
        let _ = writeln!(s, "  {n} route(s) added with ctl kept");
    }
    for d in reply["runtime_dropped"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "  route added with ctl dropped: {}: {}",
            d["route"].as_str().unwrap_or("?"),
            d["reason"].as_str().unwrap_or("?")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_is_found_in_a_file_with_errors_elsewhere() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("c.toml");
        // Valid TOML, invalid config: only the key matters.
        std::fs::write(
            &f,
            "[node]\ncontrol_socket = \"/tmp/x.sock\"\n[[routes]]\nprefix = \"bogus\"\n",
        )
        .unwrap();
        assert_eq!(
            socket_from_config(&f).unwrap(),
            PathBuf::from("/tmp/x.sock")
        );
        // Not even TOML: the [node] section is scanned.
        std::fs::write(&f, "[dpdk]\ncontrol_socket = \"/wrong\"\n[node]\nregion = WNAM\ncontrol_socket = \"/tmp/y.sock\" # here\n").unwrap();
        assert_eq!(
            socket_from_config(&f).unwrap(),
            PathBuf::from("/tmp/y.sock")
        );
        // Neither: the default, or an error naming the way out.
        std::fs::write(&f, "[node]\nregion = \"WNAM\"\n").unwrap();
        assert_eq!(
            socket_from_config(&f).unwrap(),
            PathBuf::from(crate::config::default_control_socket())
        );
        std::fs::write(&f, "[node\n").unwrap();
        assert!(socket_from_config(&f)
            .unwrap_err()
            .contains("give --socket"));
    }
}
