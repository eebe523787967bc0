//! The `rpc:*` client frames, parsed once into [`RpcRequest`].
//! docs/PROTOCOL.md ("Tool calls") documents them.

use super::Target;
use crate::error::ErrorCode;
use crate::ids::{SessionAddr, UserId};
use crate::protocol::{check_fields, check_id, ClientFrame, FrameError, Request};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Every client frame type of tool calls.
pub const RPC_TYPES: [&str; 2] = ["rpc:call", "rpc:result"];

/// Longest `method`.
pub const MAX_METHOD_LEN: usize = 128;
/// Longest `error.code` of an `rpc:result`.
pub const MAX_ERROR_CODE_LEN: usize = 64;
/// Longest `error.message` of an `rpc:result`.
pub const MAX_ERROR_MESSAGE_LEN: usize = 1024;

/// A parsed `rpc:*` client frame. The frame's `id` (in [`Request`]) is
/// the caller's id of a call, or the id of the call a result answers.
#[derive(Debug)]
pub enum RpcRequest {
    Call {
        to: Target,
        method: String,
        params: Box<RawValue>,
        timeout_ms: Option<u64>,
    },
    Result(Outcome),
}

/// What the called side answers: a result, or its own error.
#[derive(Debug)]
pub enum Outcome {
    Ok(Box<RawValue>),
    Err { code: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    id: Option<String>,
    to: Option<String>,
    method: Option<String>,
    #[serde(default, borrow, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    timeout_ms: Option<u64>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    error: Option<AppError>,
}

/// The `error` of an `rpc:result`: the application's own code and message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppError {
    code: String,
    #[serde(default)]
    message: String,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

impl crate::protocol::Typed for Wire<'_> {
    fn frame_type(&self) -> &str {
        &self.ty
    }
}

fn err(code: ErrorCode, message: impl Into<String>, id: &Option<String>) -> FrameError {
    FrameError {
        code,
        message: message.into(),
        id: id.clone(),
    }
}

/// Parses `text` if it is an `rpc:*` frame; `None` leaves it to the
/// general parser.
pub fn parse(text: &[u8]) -> Option<Result<Request, FrameError>> {
    Some(crate::protocol::parse_family::<Wire>(text, "rpc:")?.and_then(build))
}

/// Reads `to`: a session id (`s<n>`, `s<n>@<node>`), else a user id
/// (`user:<id>` names a user whose id looks like a session id).
pub fn target(raw: &str) -> Option<Target> {
    if let Some(user) = raw.strip_prefix("user:") {
        return UserId::parse(user).map(Target::User);
    }
    match SessionAddr::parse(raw) {
        Some(s) => Some(Target::Session(s)),
        None => UserId::parse(raw).map(Target::User),
    }
}

fn method_ok(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= MAX_METHOD_LEN
        && !m.chars().any(|c| c.is_control() || c.is_whitespace())
}

fn code_ok(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= MAX_ERROR_CODE_LEN
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}

fn build(w: Wire) -> Result<Request, FrameError> {
    let id = w.id.clone();
    check_id(&id)?;
    let ty = w.ty.as_ref();
    let allowed: &[&str] = match ty {
        "rpc:call" => &["to", "method", "params", "timeout_ms"],
        "rpc:result" => &["result", "error"],
        other => return Err(crate::protocol::unknown_type(other, "rpc", &RPC_TYPES, &id)),
    };
    let fields = [
        ("to", w.to.is_some()),
        ("method", w.method.is_some()),
        ("params", w.params.is_some()),
        ("timeout_ms", w.timeout_ms.is_some()),
        ("result", w.result.is_some()),
        ("error", w.error.is_some()),
    ];
    check_fields(ty, allowed, &fields, &id)?;
    if id.is_none() {
        let m = match ty {
            "rpc:call" => "rpc:call needs an `id` (its result carries it)",
            _ => "rpc:result needs the `id` of the rpc:call it answers",
        };
        return Err(err(ErrorCode::BadRequest, m, &None));
    }
    let bad = |m: &str| err(ErrorCode::BadRequest, m, &id);
    let json = |raw: &RawValue, what: &str| match crate::protocol::data_problem(raw.get()) {
        Some(why) => Err(err(ErrorCode::BadRequest, why.replace("data", what), &id)),
        None => Ok(raw.to_owned()),
    };
    let rpc = match ty {
        "rpc:call" => {
            let to = w.to.as_deref().ok_or_else(|| bad("rpc:call needs `to`"))?;
            let to = target(to).ok_or_else(|| {
                bad("`to` is neither a session id (s<n>, s<n>@<node>) nor a user id")
            })?;
            let method = w.method.ok_or_else(|| bad("rpc:call needs `method`"))?;
            if !method_ok(&method) {
                let m = format!(
                    "method is 1 to {MAX_METHOD_LEN} bytes without spaces or control characters"
                );
                return Err(bad(&m));
            }
            let params = json(w.params.unwrap_or(RawValue::NULL), "params")?;
            if w.timeout_ms == Some(0) {
                return Err(bad("timeout_ms must be at least 1"));
            }
            RpcRequest::Call {
                to,
                method,
                params,
                timeout_ms: w.timeout_ms,
            }
        }
        _ => match (w.result, w.error) {
            (Some(r), None) => RpcRequest::Result(Outcome::Ok(json(r, "result")?)),
            (None, Some(e)) => {
                if !code_ok(&e.code) {
                    let m = format!(
                        "error.code is 1 to {MAX_ERROR_CODE_LEN} characters from A-Z a-z 0-9 _ . : -"
                    );
                    return Err(bad(&m));
                }
                if e.message.len() > MAX_ERROR_MESSAGE_LEN {
                    let m = format!("error.message is longer than {MAX_ERROR_MESSAGE_LEN} bytes");
                    return Err(bad(&m));
                }
                RpcRequest::Result(Outcome::Err {
                    code: e.code,
                    message: e.message,
                })
            }
            _ => return Err(bad("rpc:result needs exactly one of `result` and `error`")),
        },
    };
    Ok(Request {
        frame: ClientFrame::Rpc(rpc),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        parse(text.as_bytes()).unwrap().unwrap_err().code
    }

    #[test]
    fn frames_parse_into_requests_or_clear_codes() {
        let r = parse(br#"{"type":"rpc:call","id":"1","to":"s3@b","method":"m","params":{"a":1}}"#)
            .unwrap()
            .unwrap();
        let ClientFrame::Rpc(RpcRequest::Call { to, params, .. }) = r.frame else {
            panic!("not a call")
        };
        assert!(matches!(to, Target::Session(ref s) if s.to_string() == "s3@b"));
        assert_eq!(params.get(), r#"{"a":1}"#);
        let r = parse(br#"{"type":"rpc:call","id":"1","to":"user:s3","method":"m"}"#)
            .unwrap()
            .unwrap();
        assert!(matches!(
            r.frame,
            ClientFrame::Rpc(RpcRequest::Call { to: Target::User(ref u), ref params, .. })
                if u.as_str() == "s3" && params.get() == "null"
        ));
        let r = parse(br#"{"type":"rpc:result","id":"c1","error":{"code":"nope"}}"#)
            .unwrap()
            .unwrap();
        assert!(matches!(
            r.frame,
            ClientFrame::Rpc(RpcRequest::Result(Outcome::Err { .. }))
        ));
        for bad in [
            r#"{"type":"rpc:call","to":"bot","method":"m"}"#,
            r#"{"type":"rpc:call","id":"1","method":"m"}"#,
            r#"{"type":"rpc:call","id":"1","to":"bot"}"#,
            r#"{"type":"rpc:call","id":"1","to":"bot","method":"a b"}"#,
            r#"{"type":"rpc:call","id":"1","to":"bot","method":"m","timeout_ms":0}"#,
            r#"{"type":"rpc:call","id":"1","to":"bot","method":"m","timeout_ms":-5}"#,
            r#"{"type":"rpc:call","id":"1","to":"bot","method":"m","result":1}"#,
            r#"{"type":"rpc:call","id":"1","to":"a b","method":"m"}"#,
            r#"{"type":"rpc:call","id":"1","to":"bot","method":"m","params":1e999}"#,
            r#"{"type":"rpc:result","id":"c1"}"#,
            r#"{"type":"rpc:result","id":"c1","result":1,"error":{"code":"x"}}"#,
            r#"{"type":"rpc:result","id":"c1","error":{"code":"a b"}}"#,
            r#"{"type":"rpc:result","id":"c1","error":{"code":"x","extra":1}}"#,
            r#"{"type":"rpc:result","id":"c1","error":"x"}"#,
            r#"{"type":"rpc:result","result":1}"#,
            r#"{"type":"rpc:call","id":7,"to":"bot","method":"m"}"#,
        ] {
            assert_eq!(code(bad), ErrorCode::BadRequest, "{bad}");
        }
        assert_eq!(
            code(r#"{"type":"rpc:cancel","id":"1"}"#),
            ErrorCode::UnknownType
        );
    }
}
