//! The proxy hooks' settings (`SWITCHBOARD_PROXY_*`), checked at start.

use super::Hook;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// `SWITCHBOARD_PROXY_CONNECT_URL`: authenticates connections without a token.
    pub connect: Option<String>,
    /// `SWITCHBOARD_PROXY_CONNECT_ALL` (default false): every connection goes
    /// to the connect hook; a token, if any, is forwarded instead of checked.
    pub connect_all: bool,
    /// `SWITCHBOARD_PROXY_CONNECT_HEADERS`: request headers forwarded (lower case).
    pub connect_headers: Vec<String>,
    /// `SWITCHBOARD_PROXY_SUBSCRIBE_URL` and the room patterns
    /// `SWITCHBOARD_PROXY_SUBSCRIBE_ROOMS` (default `*`) whose joins it decides.
    pub subscribe: Option<String>,
    pub subscribe_rooms: Vec<String>,
    /// `SWITCHBOARD_PROXY_PUBLISH_URL` and `SWITCHBOARD_PROXY_PUBLISH_ROOMS` (default `*`).
    pub publish: Option<String>,
    pub publish_rooms: Vec<String>,
    /// `SWITCHBOARD_PROXY_TIMEOUT_MS` (default 3000): a call's whole time.
    pub timeout: Duration,
    /// `SWITCHBOARD_PROXY_MAX_IN_FLIGHT` (default 256): calls open at once,
    /// all hooks together; past it a call fails at once with `unavailable`.
    pub max_in_flight: usize,
    /// Largest answer body read (bytes).
    pub max_answer: usize,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig {
            connect: None,
            connect_all: false,
            connect_headers: Vec::new(),
            subscribe: None,
            subscribe_rooms: vec!["*".into()],
            publish: None,
            publish_rooms: vec!["*".into()],
            timeout: Duration::from_millis(3000),
            max_in_flight: 256,
            max_answer: 1 << 20,
        }
    }
}

fn list(v: Option<String>) -> Option<Vec<String>> {
    v.map(|v| {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

fn url(name: &str, v: Option<String>) -> Result<Option<String>, String> {
    let Some(v) = v.map(|v| v.trim().to_string()) else {
        return Ok(None);
    };
    let ok = (v.starts_with("http://") || v.starts_with("https://"))
        && v.parse::<actix_web::http::Uri>()
            .is_ok_and(|u| u.host().is_some());
    if !ok {
        return Err(format!("{name}={v:?} is not an http:// or https:// URL"));
    }
    Ok(Some(v))
}

impl ProxyConfig {
    /// Reads the settings through `get` (the environment, in `Config::from_env`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<ProxyConfig, String> {
        let d = ProxyConfig::default();
        let num = |name: &str, default: u64| -> Result<u64, String> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name}={v:?} is not a valid number")),
            }
        };
        let connect_all = match get("SWITCHBOARD_PROXY_CONNECT_ALL")
            .as_deref()
            .map(str::trim)
        {
            None | Some("0" | "false" | "no" | "off") => false,
            Some("1" | "true" | "yes" | "on") => true,
            Some(v) => {
                return Err(format!(
                    "SWITCHBOARD_PROXY_CONNECT_ALL={v:?} is not a boolean (use true/false)"
                ))
            }
        };
        let connect_headers: Vec<String> = list(get("SWITCHBOARD_PROXY_CONNECT_HEADERS"))
            .unwrap_or_default()
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        if let Some(h) = connect_headers
            .iter()
            .find(|h| actix_web::http::header::HeaderName::from_bytes(h.as_bytes()).is_err())
        {
            return Err(format!(
                "SWITCHBOARD_PROXY_CONNECT_HEADERS: {h:?} is not a header name"
            ));
        }
        let cfg = ProxyConfig {
            connect: url(
                "SWITCHBOARD_PROXY_CONNECT_URL",
                get("SWITCHBOARD_PROXY_CONNECT_URL"),
            )?,
            connect_all,
            connect_headers,
            subscribe: url(
                "SWITCHBOARD_PROXY_SUBSCRIBE_URL",
                get("SWITCHBOARD_PROXY_SUBSCRIBE_URL"),
            )?,
            subscribe_rooms: list(get("SWITCHBOARD_PROXY_SUBSCRIBE_ROOMS"))
                .unwrap_or(d.subscribe_rooms),
            publish: url(
                "SWITCHBOARD_PROXY_PUBLISH_URL",
                get("SWITCHBOARD_PROXY_PUBLISH_URL"),
            )?,
            publish_rooms: list(get("SWITCHBOARD_PROXY_PUBLISH_ROOMS")).unwrap_or(d.publish_rooms),
            timeout: Duration::from_millis(num("SWITCHBOARD_PROXY_TIMEOUT_MS", 3000)?),
            max_in_flight: num("SWITCHBOARD_PROXY_MAX_IN_FLIGHT", 256)? as usize,
            max_answer: d.max_answer,
        };
        if cfg.timeout.is_zero() || cfg.timeout > Duration::from_secs(60) {
            return Err("SWITCHBOARD_PROXY_TIMEOUT_MS must be 1 to 60000".into());
        }
        if cfg.max_in_flight == 0 {
            return Err("SWITCHBOARD_PROXY_MAX_IN_FLIGHT must be at least 1".into());
        }
        if cfg.connect_all && cfg.connect.is_none() {
            return Err("SWITCHBOARD_PROXY_CONNECT_ALL needs SWITCHBOARD_PROXY_CONNECT_URL".into());
        }
        Ok(cfg)
    }

    pub fn url(&self, hook: Hook) -> Option<&str> {
        match hook {
            Hook::Connect => self.connect.as_deref(),
            Hook::Subscribe => self.subscribe.as_deref(),
            Hook::Publish => self.publish.as_deref(),
        }
    }

    /// Whether a join of `room` goes to the subscribe hook by its own setting
    /// (room rules may add rooms: `rules::RoomRules`). Personal rooms never do.
    pub fn subscribes(&self, room: &str) -> bool {
        self.subscribe.is_some()
            && !room.starts_with("user:")
            && self
                .subscribe_rooms
                .iter()
                .any(|p| crate::auth::glob(p, room))
    }

    /// Whether messages to `room` go to the publish hook.
    pub fn publishes(&self, room: &str) -> bool {
        self.publish.is_some()
            && self
                .publish_rooms
                .iter()
                .any(|p| crate::auth::glob(p, room))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<ProxyConfig, String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProxyConfig::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn settings_are_checked_at_start() {
        let c = parse(&[]).unwrap();
        assert!(c.connect.is_none() && !c.subscribes("a") && !c.publishes("a"));
        let c = parse(&[
            ("SWITCHBOARD_PROXY_PUBLISH_URL", "http://127.0.0.1:9/p"),
            ("SWITCHBOARD_PROXY_PUBLISH_ROOMS", "mod-*, chat"),
            (
                "SWITCHBOARD_PROXY_SUBSCRIBE_URL",
                "https://api.example.com/s",
            ),
            (
                "SWITCHBOARD_PROXY_CONNECT_HEADERS",
                "X-Tenant, Authorization",
            ),
        ])
        .unwrap();
        assert!(c.publishes("mod-1") && c.publishes("chat") && !c.publishes("other"));
        assert!(c.subscribes("any") && !c.subscribes("user:bob"));
        assert_eq!(c.connect_headers, ["x-tenant", "authorization"]);
        for bad in [
            ("SWITCHBOARD_PROXY_CONNECT_URL", "ftp://x/"),
            ("SWITCHBOARD_PROXY_CONNECT_URL", "localhost:8000"),
            ("SWITCHBOARD_PROXY_TIMEOUT_MS", "0"),
            ("SWITCHBOARD_PROXY_TIMEOUT_MS", "soon"),
            ("SWITCHBOARD_PROXY_MAX_IN_FLIGHT", "0"),
            ("SWITCHBOARD_PROXY_CONNECT_ALL", "true"),
            ("SWITCHBOARD_PROXY_CONNECT_HEADERS", "bad header"),
        ] {
            let e = parse(&[bad]).unwrap_err();
            assert!(e.contains(bad.0), "{e}");
        }
    }
}
