//! What the section validators' tests share: a minimal valid config, the host it runs on,
//! and a section's refusal as text.
use super::{parse, Host};

/// One port, one worker: valid alone, so a test adds the section it is about.
pub const ONE_PORT: &str = r#"
[[ports]]
name = "p0"
device = "net_null0"
address = "10.0.0.1/24"

[[workers]]
core = 1
rx = [{ port = "p0" }]
"#;

pub fn host() -> Host {
    Host { cores: vec![0, 1] }
}

/// The error of `ONE_PORT` plus `[section]` with `body`, which must be refused.
pub fn refused(section: &str, body: &str) -> String {
    parse(&format!("{ONE_PORT}\n[{section}]\n{body}\n"), &host())
        .unwrap_err()
        .to_string()
}
