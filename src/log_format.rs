//! The log's two formats: env_logger's text lines (the default), or with `--log-format json`
//! one JSON object per line for log shippers: `ts` (RFC 3339 UTC, milliseconds), `level`
//! (ERROR, WARN, INFO, DEBUG, TRACE), `target` (the module that logged) and `msg`.
use crate::log_pipe::{self, Pipe};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The writer thread behind the logger (`log_pipe`), once `init` made it.
static PIPE: OnceLock<Pipe> = OnceLock::new();

/// Starts the logger: RUST_LOG sets the level (default info), logs go to stderr through a
/// writer thread that no logging thread waits for (`log_pipe`).
pub fn init(format: LogFormat) {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    // env_logger colours only its own stderr target: keep colours on a terminal through the
    // pipe, unless RUST_LOG_STYLE says otherwise.
    if std::env::var_os("RUST_LOG_STYLE").is_none() && std::io::stderr().is_terminal() {
        b.write_style(env_logger::WriteStyle::Always);
    }
    let drops = |n| log::warn!("{n} log records dropped: stderr was not read");
    match Pipe::new(std::io::stderr(), log_pipe::DEPTH, drops) {
        Ok(pipe) => {
            b.target(env_logger::Target::Pipe(Box::new(pipe.end())));
            let _ = PIPE.set(pipe);
            // A panic's message goes to stderr directly: the records before it go first.
            let report = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if flush(Duration::from_secs(1)) {
                    report(info)
                }
            }));
        }
        // No thread: log straight to stderr, as before.
        Err(e) => eprintln!("anygate: no log writer thread ({e}); logging to stderr directly"),
    }
    match format {
        LogFormat::Text => b.format_target(false),
        LogFormat::Json => b.format(|buf, r| {
            let line = json_line(
                &buf.timestamp_millis().to_string(),
                r.level(),
                r.target(),
                &r.args().to_string(),
            );
            writeln!(buf, "{line}")
        }),
    };
    b.init();
}

/// Waits until the log records queued so far reach stderr, at most `limit`: before the
/// process exits, and before a direct write to stderr that must come after them. False when
/// stderr did not take them in time: a direct write would then block too.
pub fn flush(limit: Duration) -> bool {
    PIPE.get().is_none_or(|pipe| pipe.flush(limit))
}

/// Moves the log's writer thread onto `core` (the main lcore, after the EAL started).
pub fn pin_writer(core: usize) {
    if let Some(pipe) = PIPE.get() {
        pipe.pin(core);
    }
}

/// One record as a JSON object (no newline).
pub fn json_line(ts: &str, level: log::Level, target: &str, msg: &str) -> String {
    json!({"ts": ts, "level": level.as_str(), "target": target, "msg": msg}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_is_one_object_with_the_documented_fields() {
        let l = json_line(
            "2026-12-01T04:22:00.123Z",
            log::Level::Info,
            "anygate::mgmt",
            "arp: learned 10.0.0.5 at 02:00:00:00:00:05 on port \"lan0\"\nsecond line",
        );
        assert!(!l.contains('\n'), "{l}");
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "anygate::mgmt");
        assert_eq!(v["ts"], "2026-12-01T04:22:00.123Z");
        assert!(v["msg"].as_str().unwrap().ends_with("\nsecond line"));
        assert_eq!(v.as_object().unwrap().len(), 4);
    }
}
