//! The log: env_logger, as plain text (the default) or one JSON object per
//! line (`SWITCHBOARD_LOG_FORMAT=json`), and the access log, a line per HTTP
//! request at info under the target [`ACCESS`].

use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

/// The target of access log lines (`RUST_LOG=switchboard::access=off` silences them).
pub const ACCESS: &str = "switchboard::access";

static JSON: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

impl Format {
    /// `text` or `json`.
    pub fn parse(v: Option<&str>) -> Result<Format, String> {
        match v.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "text") => Ok(Format::Text),
            Some("json") => Ok(Format::Json),
            Some(other) => Err(format!(
                "SWITCHBOARD_LOG_FORMAT={other:?}: use text or json"
            )),
        }
    }
}

/// Installs the logger (`RUST_LOG`, default `info`) in the given format.
pub fn init(format: Format) {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == Format::Json {
        JSON.store(true, Relaxed);
        b.format(|buf, rec| {
            let msg = rec.args().to_string();
            let head = format!(
                "{{\"ts\":\"{}\",\"level\":\"{}\",\"target\":{}",
                buf.timestamp_millis(),
                rec.level(),
                serde_json::Value::from(rec.target())
            );
            // An access line's message is already a JSON object of its fields.
            match msg.strip_prefix('{') {
                Some(fields) if rec.target() == ACCESS => writeln!(buf, "{head},{fields}"),
                _ => writeln!(buf, "{head},\"msg\":{}}}", serde_json::Value::from(msg)),
            }
        });
    }
    b.init();
}

/// One access log line: the request's method and path (never its query
/// string, which may hold a token), the answer's status, the time to the
/// answer's head (an SSE stream's line is written when it opens), and the
/// client's address.
pub fn access(method: &str, path: &str, status: u16, took: Duration, client: IpAddr) {
    if !log::log_enabled!(target: ACCESS, log::Level::Info) {
        return;
    }
    let ms = took.as_secs_f64() * 1000.0;
    if JSON.load(Relaxed) {
        let fields = serde_json::json!({
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": (ms * 1000.0).round() / 1000.0,
            "client": client.to_string(),
        });
        log::info!(target: ACCESS, "{fields}");
    } else {
        log::info!(target: ACCESS, "{method} {path} {status} {ms:.3}ms {client}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(Format::parse(None), Ok(Format::Text));
        assert_eq!(Format::parse(Some("JSON")), Ok(Format::Json));
        assert_eq!(Format::parse(Some("text")), Ok(Format::Text));
        assert!(Format::parse(Some("xml")).is_err());
    }
}
