//! Proxy hooks: synchronous calls to the app's backend over HTTP
//! (`SWITCHBOARD_PROXY_*`, docs/PROTOCOL.md "Proxy hooks"). A connection
//! without a token, a join of a matching room, or a message to a matching
//! room is first POSTed to the backend, which allows, refuses (with its own
//! code) or rewrites it. Every call has a timeout and counts against a bound
//! of calls in flight; a slow, failing or unreachable backend gives
//! `unavailable`, never a hung session.

pub mod config;
pub mod connect;
mod metrics;
pub mod rules;

pub use config::ProxyConfig;
pub use metrics::render_metrics;

use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

/// Which hook a call is for (its metrics label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Connect,
    Subscribe,
    Publish,
}

impl Hook {
    pub const ALL: [Hook; 3] = [Hook::Connect, Hook::Subscribe, Hook::Publish];

    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Connect => "connect",
            Hook::Subscribe => "subscribe",
            Hook::Publish => "publish",
        }
    }
}

/// Why a hook call did not allow the action.
#[derive(Debug, Clone, PartialEq)]
pub enum HookError {
    /// The backend said no: its code (a 401 gives `unauthorized`, a 403
    /// `forbidden`) and message.
    Refused { code: String, message: String },
    /// No usable answer: timeout, connection refused, a status other than
    /// 2xx/401/403, a body that is not the expected JSON, too many calls in flight.
    Unavailable(String),
}

impl HookError {
    pub fn code(&self) -> &str {
        match self {
            HookError::Refused { code, .. } => code,
            HookError::Unavailable(_) => "unavailable",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            HookError::Refused { message, .. } | HookError::Unavailable(message) => message,
        }
    }

    /// An `error` frame carrying this code (the backend's own, for a refusal).
    pub fn frame(&self, reference: Option<&str>) -> bytes::Bytes {
        #[derive(serde::Serialize)]
        struct ErrorFrame<'a> {
            #[serde(rename = "type")]
            ty: &'static str,
            code: &'a str,
            message: &'a str,
            #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
            reference: Option<&'a str>,
        }
        let code = self.code();
        if code == "unavailable" {
            crate::metrics::METRICS.error(crate::error::ErrorCode::Unavailable);
        }
        let frame = ErrorFrame {
            ty: "error",
            code,
            message: self.message(),
            reference,
        };
        serde_json::to_vec(&frame)
            .map(bytes::Bytes::from)
            .unwrap_or_default()
    }
}

/// `{"error":{"code","message"}}` in a 2xx answer, or in a 401/403 body.
#[derive(Deserialize)]
struct Refusal {
    error: RefusalBody,
}

#[derive(Deserialize)]
struct RefusalBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// A backend's code as it is shown to clients: 1–64 characters from
/// `a-z A-Z 0-9 _ . -`, else the default.
fn clean_code(code: Option<String>, default: &str) -> String {
    match code {
        Some(c)
            if !c.is_empty()
                && c.len() <= 64
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) =>
        {
            c
        }
        _ => default.to_string(),
    }
}

/// A backend's message, cut to 256 characters without control characters.
fn clean_message(m: Option<String>, default: &str) -> String {
    match m {
        Some(m) if !m.trim().is_empty() => {
            m.chars().filter(|c| !c.is_control()).take(256).collect()
        }
        _ => default.to_string(),
    }
}

/// Calls in flight from this process, over every hook (bounded by
/// `SWITCHBOARD_PROXY_MAX_IN_FLIGHT`).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

struct Slot;

impl Slot {
    fn take(max: usize) -> Option<Slot> {
        let n = IN_FLIGHT.fetch_add(1, Relaxed);
        if n >= max {
            IN_FLIGHT.fetch_sub(1, Relaxed);
            return None;
        }
        Some(Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Relaxed);
    }
}

/// POSTs `body` (JSON) to `url` and reads the answer: `Ok(answer)` for a 2xx
/// whose JSON object is not a refusal, `Err` otherwise. Never waits longer
/// than the configured timeout, whatever the backend does.
pub async fn call<T: serde::de::DeserializeOwned>(
    hook: Hook,
    cfg: &ProxyConfig,
    url: &str,
    body: Vec<u8>,
) -> Result<T, HookError> {
    let started = Instant::now();
    let Some(slot) = Slot::take(cfg.max_in_flight) else {
        metrics::record(hook, started, Outcome::Failed);
        return Err(HookError::Unavailable(format!(
            "the {} hook is busy ({} calls in flight); retry shortly",
            hook.as_str(),
            cfg.max_in_flight
        )));
    };
    let request = async {
        let mut res = crate::outbound::client()
            .post(url)
            .timeout(cfg.timeout)
            .insert_header(("content-type", "application/json"))
            .insert_header(("x-switchboard-hook", hook.as_str()))
            .send_body(body)
            .await
            .map_err(|e| format!("cannot reach the {} hook: {e}", hook.as_str()))?;
        let status = res.status().as_u16();
        let bytes = res
            .body()
            .limit(cfg.max_answer)
            .await
            .map_err(|e| format!("bad answer from the {} hook: {e}", hook.as_str()))?;
        Ok::<_, String>((status, bytes))
    };
    let answer = actix_web::rt::time::timeout(cfg.timeout, request).await;
    drop(slot);
    let result = match answer {
        Err(_) => Err(HookError::Unavailable(format!(
            "the {} hook did not answer within {} ms",
            hook.as_str(),
            cfg.timeout.as_millis()
        ))),
        Ok(Err(why)) => Err(HookError::Unavailable(why)),
        Ok(Ok((status, bytes))) => interpret(hook, status, &bytes),
    };
    let outcome = match &result {
        Ok(_) => Outcome::Allowed,
        Err(HookError::Refused { .. }) => Outcome::Refused,
        Err(HookError::Unavailable(_)) => Outcome::Failed,
    };
    metrics::record(hook, started, outcome);
    if let Err(HookError::Unavailable(why)) = &result {
        log::warn!("{why}");
    }
    result
}

/// Reads a backend's answer (status and body).
fn interpret<T: serde::de::DeserializeOwned>(
    hook: Hook,
    status: u16,
    body: &[u8],
) -> Result<T, HookError> {
    let refusal = || {
        serde_json::from_slice::<Refusal>(body)
            .ok()
            .map(|r| r.error)
    };
    match status {
        401 | 403 => {
            let default = if status == 401 {
                "unauthorized"
            } else {
                "forbidden"
            };
            let r = refusal();
            Err(HookError::Refused {
                code: clean_code(r.as_ref().and_then(|r| r.code.clone()), default),
                message: clean_message(
                    r.and_then(|r| r.message),
                    &format!("refused by the {} hook", hook.as_str()),
                ),
            })
        }
        200..=299 => {
            // An object with `error` is a refusal whatever else it holds.
            let value: Box<RawValue> = serde_json::from_slice(body).map_err(|e| {
                HookError::Unavailable(format!(
                    "the {} hook answered invalid JSON: {e}",
                    hook.as_str()
                ))
            })?;
            if let Some(r) = refusal() {
                let default = if hook == Hook::Connect {
                    "unauthorized"
                } else {
                    "forbidden"
                };
                return Err(HookError::Refused {
                    code: clean_code(r.code, default),
                    message: clean_message(
                        r.message,
                        &format!("refused by the {} hook", hook.as_str()),
                    ),
                });
            }
            serde_json::from_str(value.get()).map_err(|e| {
                HookError::Unavailable(format!(
                    "the {} hook's answer is not one: {e}",
                    hook.as_str()
                ))
            })
        }
        s => Err(HookError::Unavailable(format!(
            "the {} hook answered HTTP {s}",
            hook.as_str()
        ))),
    }
}

#[derive(Clone, Copy)]
enum Outcome {
    Allowed,
    Refused,
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct A {
        #[serde(default)]
        x: Option<u32>,
    }

    #[test]
    fn answers_are_read_once_into_types() {
        assert_eq!(
            interpret::<A>(Hook::Publish, 200, b"{\"x\":1}"),
            Ok(A { x: Some(1) })
        );
        assert_eq!(interpret::<A>(Hook::Publish, 204, b"{}"), Ok(A { x: None }));
        let refused = interpret::<A>(
            Hook::Publish,
            200,
            br#"{"error":{"code":"spam","message":"no ads"}}"#,
        );
        assert_eq!(
            refused,
            Err(HookError::Refused {
                code: "spam".into(),
                message: "no ads".into()
            })
        );
        let bad_code = interpret::<A>(Hook::Connect, 200, br#"{"error":{"code":"has space"}}"#);
        assert_eq!(bad_code.unwrap_err().code(), "unauthorized");
        assert_eq!(
            interpret::<A>(Hook::Connect, 401, b"").unwrap_err().code(),
            "unauthorized"
        );
        assert_eq!(
            interpret::<A>(Hook::Subscribe, 403, b"nope")
                .unwrap_err()
                .code(),
            "forbidden"
        );
        assert_eq!(
            interpret::<A>(Hook::Subscribe, 500, b"{}")
                .unwrap_err()
                .code(),
            "unavailable"
        );
        assert_eq!(
            interpret::<A>(Hook::Subscribe, 200, b"not json")
                .unwrap_err()
                .code(),
            "unavailable"
        );
        assert_eq!(
            interpret::<A>(Hook::Subscribe, 200, b"{\"y\":1}")
                .unwrap_err()
                .code(),
            "unavailable"
        );
    }
}
