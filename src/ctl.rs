//! `anygate ctl`: the client of the control socket. Sends one request (`crate::ctl_proto`),
//! prints the answer as text (or as it came, with `--json`).
use crate::config::{RawRoute, RawScope, RouteSource};
use crate::ctl_proto::{Batch, HealthSetting, Reply, Request, MAX_REQUEST};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long to wait for a reply: longer than the server waits for its management thread.
const REPLY_WAIT: Duration = Duration::from_secs(40);

/// Sends `req` to the socket at `path` and returns the reply.
pub fn request(path: &Path, req: &Request) -> Result<Reply, String> {
    let line = req.to_line();
    // The server would read the first MiB and refuse the rest unread: say so here, with
    // the size, rather than send it for nothing.
    if line.len() > MAX_REQUEST + 1 {
        return Err(format!(
            "the request is {} bytes, more than the {MAX_REQUEST} the control socket takes; \
             split it (an update-routes file into several)",
            line.len() - 1
        ));
    }
    let stream = UnixStream::connect(path).map_err(|e| connect_error(path, &e))?;
    stream
        .set_read_timeout(Some(REPLY_WAIT))
        .map_err(|e| e.to_string())?;
    let mut w = &stream;
    // A server that refuses the request (too many clients, too long) answers and closes
    // before reading it all: the write then fails, and the answer is what to report.
    let sent = w.write_all(line.as_bytes());
    let mut reply = String::new();
    let read = BufReader::new(&stream).read_line(&mut reply);
    match (sent, read) {
        (_, Ok(n)) if n > 0 => Reply::parse(&reply).map(explain),
        (Err(e), _) => Err(format!("{}: sending the request: {e}", path.display())),
        (Ok(()), Err(e)) => Err(format!("{}: reading the reply: {e}", path.display())),
        (Ok(()), Ok(_)) => Err(format!(
            "{}: anygate closed the connection without a reply",
            path.display()
        )),
    }
}

/// Why `connect` failed, in an operator's words.
fn connect_error(path: &Path, e: &std::io::Error) -> String {
    let p = path.display();
    match e.kind() {
        ErrorKind::PermissionDenied => match std::fs::metadata(path) {
            Ok(m) => format!(
                "{p}: permission denied: the socket is {:04o}, owned by uid {}",
                m.mode() & 0o7777,
                m.uid()
            ),
            Err(_) => format!("{p}: permission denied (on a directory above the socket)"),
        },
        ErrorKind::NotFound => format!("is anygate running? no socket at {p}"),
        ErrorKind::ConnectionRefused => match std::fs::metadata(path) {
            // Linux refuses a connect to a file that is no socket the same way.
            Ok(m) if !m.file_type().is_socket() => format!(
                "{p}: not a socket but a {}: give the control socket's path (node.control_socket)",
                if m.is_dir() { "directory" } else { "file" }
            ),
            _ => format!(
                "{p}: nobody answers on this socket: anygate is not running (a stale socket)"
            ),
        },
        _ => format!("{p}: {e}"),
    }
}

/// `show routes` over the whole table, page after page, as one reply. The table may change
/// between pages: each prefix is shown as it was when its page was read, and `generations`
/// lists the generations seen when there were several.
pub fn show_all_routes(path: &Path) -> Result<Reply, String> {
    let (mut routes, mut invisible, mut generations) = (Vec::new(), Vec::new(), Vec::new());
    let mut cursor = None;
    loop {
        let mut page = request(
            path,
            &Request::ShowRoutes {
                prefix: None,
                cursor,
            },
        )?;
        if !page.ok {
            return Ok(page);
        }
        for (k, into) in [("routes", &mut routes), ("invisible", &mut invisible)] {
            if let Some(Value::Array(a)) = page.body.remove(k) {
                into.extend(a);
            }
        }
        let g = page.get("generation").clone();
        if generations.last() != Some(&g) {
            generations.push(g);
        }
        cursor = match page.body.remove("cursor") {
            Some(Value::String(c)) => Some(c),
            _ => None,
        };
        if cursor.is_none() {
            let mut body =
                json!({"generation": generations.last(), "routes": routes, "invisible": invisible});
            if generations.len() > 1 {
                body["generations"] = json!(generations);
            }
            return Ok(Reply::ok(body));
        }
    }
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
pub fn route(
    prefix: &str,
    nexthop: &str,
    priority: Option<u32>,
    weight: Option<u16>,
    source: Option<&str>,
    regions: &[String],
    colos: &[String],
    description: Option<&str>,
) -> Result<RawRoute, String> {
    let source = match source {
        None => RouteSource::default(),
        Some(s) => serde_json::from_value(json!(s))
            .map_err(|_| format!("--source: `{s}` is neither static nor bgp"))?,
    };
    let mut r: RawRoute = serde_json::from_value(json!({"prefix": prefix, "nexthop": nexthop}))
        .map_err(|e| e.to_string())?;
    r.priority = priority.unwrap_or(r.priority);
    r.weight = weight;
    r.source = source;
    if !regions.is_empty() || !colos.is_empty() {
        r.scope = Some(RawScope {
            regions: regions.to_vec(),
            colos: colos.to_vec(),
        });
    }
    r.description = description.unwrap_or_default().to_owned();
    Ok(r)
}

/// A tunnel health as typed on the command line: a manual override, or `auto`.
pub fn health(h: &str) -> Result<HealthSetting, String> {
    serde_json::from_value(json!(h))
        .map_err(|_| format!("`{h}`: health must be healthy, degraded, down or auto"))
}

/// An anygate older than health checks refuses `auto` as an unknown variant: say so.
fn explain(mut reply: Reply) -> Reply {
    if let Some(e) = reply
        .error
        .as_mut()
        .filter(|e| e.contains("unknown variant `auto`"))
    {
        e.push_str(" (this anygate predates health checks: set a health, or upgrade it)");
    }
    reply
}

/// The `update-routes` request for a TOML batch file with `[[del]]` and `[[add]]` tables.
pub fn update_request(file: &Path) -> Result<Request, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let Batch { add, del } = toml::from_str(&text).map_err(|e| {
        format!(
            "{}: {e} (expected [[add]] and [[del]] tables)",
            file.display()
        )
    })?;
    Ok(Request::UpdateRoutes { add, del })
}

/// The reply as an operator reads it.
pub fn render(reply: &Value) -> String {
    use std::fmt::Write;
    // The views (show stats, ports, neighbors, status) come rendered.
    if let Some(text) = reply.get("text").and_then(Value::as_str) {
        return text.to_owned();
    }
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
                    Some("bgp") => " (learned by BGP)",
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
                if let Some(b) = c.get("bgp").filter(|b| b.is_object()) {
                    let communities: Vec<&str> = b["communities"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let _ = writeln!(
                        s,
                        "        from {} ({}{}), AS path {}, communities {}{}: {}",
                        b["peer"].as_str().unwrap_or("?"),
                        b["peer_address"].as_str().unwrap_or("?"),
                        b["reflector"]
                            .as_str()
                            .map(|r| format!(" through reflector {r}"))
                            .unwrap_or_default(),
                        b["as_path"]
                            .as_str()
                            .filter(|p| !p.is_empty())
                            .unwrap_or("(empty)"),
                        if communities.is_empty() {
                            "(none)".to_owned()
                        } else {
                            communities.join(" ")
                        },
                        if b["stale"] == true {
                            ", STALE (graceful restart)"
                        } else {
                            ""
                        },
                        b["priority_explanation"].as_str().unwrap_or("")
                    );
                }
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
        if let Some(c) = reply["cursor"].as_str() {
            let _ = writeln!(
                s,
                "... more from {c}: `show routes --cursor {c}`, or all with `show routes --all`"
            );
        }
    } else if let Some(h) = reply.get("history").and_then(Value::as_array) {
        for t in h {
            history_text(&mut s, t);
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
            if t.get("health_source").is_some() {
                let _ = writeln!(s, "{:<16} {}", "", health_line(t));
            }
        }
    } else if let Some(a) = reply.get("arr") {
        arr_text(&mut s, a);
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
        } else if let Some(why) = reply["rebuild_reason"].as_str() {
            let _ = write!(s, ", whole table rebuilt ({why})");
        }
        let _ = writeln!(s);
    }
    s
}

/// One tunnel of `show tunnels --history`: a row per second, newest last, time in UTC.
fn history_text(s: &mut String, t: &Value) {
    use std::fmt::Write;
    let col = |k: &str| t[k].as_array().cloned().unwrap_or_default();
    let (times, rx_pps, rx_bps, tx_pps, tx_bps) = (
        col("t"),
        col("rx_pps"),
        col("rx_bps"),
        col("tx_pps"),
        col("tx_bps"),
    );
    let _ = writeln!(
        s,
        "{} ({} s, per second, newest last)",
        t["name"].as_str().unwrap_or("?"),
        times.len()
    );
    let _ = writeln!(
        s,
        "  {:<8}  {:>8} {:>8}  {:>8} {:>8}",
        "UTC", "rx pps", "rx bit/s", "tx pps", "tx bit/s"
    );
    for (i, at) in times.iter().enumerate() {
        let d = at.as_u64().unwrap_or(0) % 86_400;
        let v = |c: &[Value]| si(c.get(i).and_then(Value::as_f64).unwrap_or(0.0));
        let _ = writeln!(
            s,
            "  {:02}:{:02}:{:02}  {:>8} {:>8}  {:>8} {:>8}",
            d / 3600,
            d / 60 % 60,
            d % 60,
            v(&rx_pps),
            v(&rx_bps),
            v(&tx_pps),
            v(&tx_bps)
        );
    }
}

/// A rate in at most 6 characters: 950, 12.3k, 4.56M, 1.00G.
fn si(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.2}G", x / 1e9),
        x if x >= 1e6 => format!("{:.2}M", x / 1e6),
        x if x >= 1e3 => format!("{:.1}k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

/// A tunnel's health checks as `show tunnels` prints them under the tunnel.
fn health_line(t: &Value) -> String {
    let c = &t["health_check"];
    let rtt = t["rtt_us"]
        .as_u64()
        .map_or("-".into(), |r| format!("{r} us"));
    let check = if c["enabled"] == false {
        "checks off".to_owned()
    } else {
        format!(
            "{} {} to {}, {} ({} ms)",
            c["type"].as_str().unwrap_or("?"),
            c["direction"].as_str().unwrap_or("?"),
            c["target"].as_str().unwrap_or("?"),
            c["rate"].as_str().unwrap_or("?"),
            c["interval_ms"]
        )
    };
    format!(
        "{} for {} s, checks say {}  probes sent {} answered {} lost {}  rtt {rtt}  loss 5m {:.2}%  [{check}]",
        t["health_source"].as_str().unwrap_or("?"),
        t["since"],
        t["checks_say"].as_str().unwrap_or("?"),
        t["probes_sent"],
        t["probes_answered"],
        t["probes_lost"],
        t["loss_5m"].as_f64().unwrap_or(0.0) * 100.0
    )
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

/// `show arr` as text: the table, its counters, then the tunnels holding the most flows.
fn arr_text(s: &mut String, a: &Value) {
    use std::fmt::Write;
    if a["enabled"] == false && a.get("capacity").is_none() {
        let _ = writeln!(s, "ARR: no tunnel has automatic_return_routing");
        return;
    }
    let _ = writeln!(
        s,
        "ARR{}: {} of {} entries ({} bytes)  learned {} refreshed {} refused {} expired {} returned {}",
        if a["enabled"] == true { "" } else { " (no tunnel has it now)" },
        a["entries"], a["capacity"], a["bytes"], a["learned"], a["refreshed"], a["refused"],
        a["expired"], a["returned"]
    );
    for t in a["top_tunnels"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "  {:<16} {:>10} flows  learned {} refused {} returned {}",
            t["name"].as_str().unwrap_or("?"),
            t["flows"],
            t["learned"],
            t["refused"],
            t["returned"]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_say_what_they_are() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ctl.sock");
        let e = request(
            &p,
            &Request::ShowTunnels {
                history: false,
                tunnel: None,
            },
        )
        .unwrap_err();
        assert_eq!(
            e,
            format!("is anygate running? no socket at {}", p.display())
        );
        // EACCES, as a user other than the socket's owner gets it (root never does).
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let uid = std::fs::metadata(&p).unwrap().uid();
        let denied = std::io::Error::from(ErrorKind::PermissionDenied);
        assert_eq!(
            connect_error(&p, &denied),
            format!(
                "{}: permission denied: the socket is 0600, owned by uid {uid}",
                p.display()
            )
        );
        drop(l);
        let e = request(
            &p,
            &Request::ShowTunnels {
                history: false,
                tunnel: None,
            },
        )
        .unwrap_err();
        assert!(
            e.ends_with("nobody answers on this socket: anygate is not running (a stale socket)"),
            "{e}"
        );
    }

    /// A regular file (or directory) where the socket should be is not "a stale socket".
    #[test]
    fn a_path_that_is_no_socket_is_named_so() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("ctl.sock");
        std::fs::write(&f, "").unwrap();
        let refused = std::io::Error::from(ErrorKind::ConnectionRefused);
        for (p, what) in [(f.as_path(), "file"), (d.path(), "directory")] {
            assert_eq!(
                connect_error(p, &refused),
                format!(
                    "{}: not a socket but a {what}: give the control socket's path (node.control_socket)",
                    p.display()
                )
            );
        }
        let e = request(&f, &Request::ShowStatus {}).unwrap_err();
        assert!(e.contains("not a socket but a file"), "{e}");
    }

    /// A server that answers and closes without reading the request (too many clients, a
    /// request too long) is heard: its answer, not the failed write's "Broken pipe".
    #[test]
    fn the_servers_refusal_is_read_even_when_the_request_could_not_be_sent() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ctl.sock");
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let server = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            (&s).write_all(&Reply::error("too many clients (at most 16 at once)").to_line())
                .unwrap();
            // Closed unread: the client's pending write fails with EPIPE.
        });
        // Far more than the socket buffers hold, within the server's limit.
        let big = Request::DelRoute {
            prefix: "x".repeat(MAX_REQUEST - 100),
            nexthop: "y".into(),
        };
        let r = request(&p, &big).unwrap();
        server.join().unwrap();
        assert_eq!(
            r.error.as_deref(),
            Some("too many clients (at most 16 at once)")
        );
        // Past the server's limit: refused here, without connecting, with the sizes.
        let huge = Request::DelRoute {
            prefix: "x".repeat(MAX_REQUEST + 1),
            nexthop: "y".into(),
        };
        let e = request(&p, &huge).unwrap_err();
        assert!(
            e.starts_with("the request is ")
                && e.contains(&format!(
                    "more than the {MAX_REQUEST} the control socket takes"
                )),
            "{e}"
        );
    }

    #[test]
    fn route_change_replies_say_in_place_or_rebuilt_and_why() {
        let in_place = json!({"generation": 7, "rebuilt": false, "prefixes_changed": 1,
            "entries": 256, "new_sets": 0});
        assert_eq!(
            render(&in_place),
            "ok: table generation 7, 1 prefix(es) changed in place (256 FIB entries)\n"
        );
        let rebuilt = json!({"generation": 9, "prefixes": 40, "rebuilt": true,
            "rebuild_reason": "32765 route-set ids held, 31766 in use: renumbering them needs a full rebuild"});
        assert_eq!(
            render(&rebuilt),
            "ok: table generation 9, whole table rebuilt (32765 route-set ids held, 31766 in \
             use: renumbering them needs a full rebuild)\n"
        );
    }

    #[test]
    fn show_tunnels_history_prints_a_row_per_second_newest_last() {
        let h = json!({"history": [{"name": "T1", "interval_s": 1, "t": [86_399, 86_400],
            "rx_pps": [10.0, 1500.0], "tx_pps": [0.0, 2.0], "rx_bps": [8000.0, 12_345_678.0],
            "tx_bps": [0.0, 2.5e9]}]});
        let text = render(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "T1 (2 s, per second, newest last)");
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["23:59:59", "10", "8.0k", "0", "0"]
        );
        assert_eq!(
            lines[3].split_whitespace().collect::<Vec<_>>(),
            ["00:00:00", "1.5k", "12.35M", "2", "2.50G"]
        );
    }

    #[test]
    fn show_tunnels_prints_the_health_checks_and_old_servers_still_render() {
        let t = json!({"name": "T1", "type": "gre", "edge_endpoint": "203.0.113.10",
            "customer_endpoint": "198.51.100.1", "health": "down", "mtu": 1476, "mss_clamp": 1436,
            "rx_packets": 1, "tx_packets": 2, "drops": 0, "health_source": "manual",
            "checks_say": "healthy", "probes_sent": 40, "probes_answered": 38, "probes_lost": 2,
            "probes_not_sent": 0, "rtt_us": 1234, "since": 12.5, "loss_5m": 0.05,
            "health_check": {"enabled": true, "type": "reply", "direction": "bidirectional",
                             "target": "10.100.0.1", "rate": "mid", "interval_ms": 5000}});
        let text = render(&json!({"tunnels": [t]}));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(
            lines[1].trim(),
            "manual for 12.5 s, checks say healthy  probes sent 40 answered 38 lost 2  rtt 1234 us  loss 5m 5.00%  [reply bidirectional to 10.100.0.1, mid (5000 ms)]"
        );
        // A server without health checks: one line, no crash.
        let old = json!({"tunnels": [{"name": "T1", "health": "down"}]});
        assert_eq!(render(&old).lines().count(), 1);
    }

    #[test]
    fn auto_is_typed_and_an_old_server_refusing_it_is_explained() {
        assert_eq!(health("auto").unwrap(), HealthSetting::Auto);
        assert_eq!(health("down").unwrap().name(), "down");
        assert_eq!(
            health("sick").unwrap_err(),
            "`sick`: health must be healthy, degraded, down or auto"
        );
        let old = Reply::error(
            "bad request: unknown variant `auto`, expected one of `healthy`, `degraded`, `down`",
        );
        assert!(explain(old)
            .error
            .unwrap()
            .ends_with("(this anygate predates health checks: set a health, or upgrade it)"));
        let other = Reply::error("no tunnel named `T9`");
        assert_eq!(explain(other.clone()), other);
    }

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
