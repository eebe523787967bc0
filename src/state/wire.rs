//! The `state:*` client frames, parsed once into [`StateRequest`].
//! docs/PROTOCOL.md ("Shared state") documents them.

use super::{valid_key, Write, MAX_TTL_MS};
use crate::error::ErrorCode;
use crate::ids::RoomName;
use crate::protocol::{ClientFrame, FrameError, Request};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Every client frame type of shared state.
pub const STATE_TYPES: [&str; 3] = ["state:get", "state:set", "state:delete"];

/// Most keys named in one `state:get`.
pub const MAX_GET_KEYS: usize = 1000;

/// A parsed `state:*` client frame.
#[derive(Debug)]
pub enum StateRequest {
    Get {
        room: RoomName,
        keys: Option<Vec<String>>,
    },
    /// `state:set` (a value) or `state:delete` (none).
    Write { room: RoomName, write: Write },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    id: Option<String>,
    room: Option<String>,
    key: Option<String>,
    keys: Option<Vec<String>>,
    #[serde(default, borrow, deserialize_with = "present")]
    value: Option<&'a RawValue>,
    version: Option<u64>,
    ttl_ms: Option<u64>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

fn err(code: ErrorCode, message: impl Into<String>, id: &Option<String>) -> FrameError {
    FrameError {
        code,
        message: message.into(),
        id: id.clone(),
    }
}

const KEY_RULE: &str =
    "keys are 1 to SWITCHBOARD_STATE_MAX_KEY_LEN (default 128) characters from A-Z a-z 0-9 _ - . : @";

/// Parses `text` if it is a `state:*` frame; `None` leaves it to the
/// general parser. Frames that cannot be state frames cost one byte scan.
pub fn parse(text: &[u8]) -> Option<Result<Request, FrameError>> {
    Some(crate::protocol::parse_family::<Wire>(text, "state:")?.and_then(build))
}

impl crate::protocol::Typed for Wire<'_> {
    fn frame_type(&self) -> &str {
        &self.ty
    }
}

/// Checks a key from a frame or a URL.
pub fn key(raw: &str) -> Result<String, (ErrorCode, &'static str)> {
    if valid_key(raw) {
        Ok(raw.to_string())
    } else {
        Err((ErrorCode::BadRequest, KEY_RULE))
    }
}

/// Checks a value from a frame or a request body: any JSON a strict
/// receiver can read (the rule for `message:send` data).
pub fn value(raw: &RawValue) -> Result<Box<RawValue>, String> {
    match crate::protocol::data_problem(raw.get()) {
        Some(why) => Err(why.replace("data", "value")),
        None => Ok(raw.to_owned()),
    }
}

/// Checks a `ttl_ms`.
pub fn ttl(t: Option<u64>) -> Result<Option<u64>, String> {
    match t {
        Some(t) if t == 0 || t > MAX_TTL_MS => Err(format!("ttl_ms must be 1 to {MAX_TTL_MS}")),
        t => Ok(t),
    }
}

fn build(w: Wire) -> Result<Request, FrameError> {
    let id = w.id.clone();
    crate::protocol::check_id(&id)?;
    let ty = w.ty.as_ref();
    let allowed: &[&str] = match ty {
        "state:get" => &["keys"],
        "state:set" => &["key", "value", "version", "ttl_ms"],
        "state:delete" => &["key", "version"],
        other => {
            return Err(crate::protocol::unknown_type(
                other,
                "state",
                &STATE_TYPES,
                &id,
            ))
        }
    };
    let fields = [
        ("key", w.key.is_some()),
        ("keys", w.keys.is_some()),
        ("value", w.value.is_some()),
        ("version", w.version.is_some()),
        ("ttl_ms", w.ttl_ms.is_some()),
    ];
    crate::protocol::check_fields(ty, allowed, &fields, &id)?;
    let raw_room = w
        .room
        .as_deref()
        .ok_or_else(|| err(ErrorCode::BadRequest, format!("{ty} needs `room`"), &id))?;
    let room = RoomName::parse(raw_room).ok_or_else(|| {
        err(
            ErrorCode::InvalidRoom,
            "room names are 1-64 characters from A-Z a-z 0-9 _ - . : @, or user:<user id>",
            &id,
        )
    })?;
    let need = |name: &str| err(ErrorCode::BadRequest, format!("{ty} needs `{name}`"), &id);
    let state = match ty {
        "state:get" => {
            let keys = match w.keys {
                Some(ks) if ks.len() > MAX_GET_KEYS => {
                    let m = format!("at most {MAX_GET_KEYS} keys");
                    return Err(err(ErrorCode::BadRequest, m, &id));
                }
                Some(ks) => Some(
                    ks.iter()
                        .map(|k| key(k))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|(c, m)| err(c, m, &id))?,
                ),
                None => None,
            };
            StateRequest::Get { room, keys }
        }
        _ => {
            let k = key(w.key.as_deref().ok_or_else(|| need("key"))?)
                .map_err(|(c, m)| err(c, m, &id))?;
            let version = w.version.ok_or_else(|| need("version"))?;
            let value = match ty {
                "state:set" => Some(
                    value(w.value.ok_or_else(|| need("value"))?)
                        .map_err(|m| err(ErrorCode::BadRequest, m, &id))?,
                ),
                _ => None,
            };
            if value.is_none() && version == 0 {
                let m = "state:delete needs the key's current `version` (not 0)";
                return Err(err(ErrorCode::BadRequest, m, &id));
            }
            let ttl_ms = ttl(w.ttl_ms).map_err(|m| err(ErrorCode::BadRequest, m, &id))?;
            StateRequest::Write {
                room,
                write: Write {
                    key: k,
                    value,
                    version,
                    ttl_ms,
                },
            }
        }
    };
    Ok(Request {
        frame: ClientFrame::State(state),
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
    fn frames_parse_into_requests() {
        let r = parse(br#"{"type":"state:set","room":"r","key":"k","value":{"a":1},"version":0,"ttl_ms":5,"id":"x"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(r.id.as_deref(), Some("x"));
        let ClientFrame::State(StateRequest::Write { write, .. }) = r.frame else {
            panic!("not a write");
        };
        assert_eq!((write.version, write.ttl_ms), (0, Some(5)));
        assert!(parse(br#"{"type":"message:send","room":"r","data":1}"#).is_none());
    }

    #[test]
    fn hostile_frames_get_codes() {
        assert_eq!(
            code(r#"{"type":"state:set","room":"r","key":"k","version":0}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"state:set","room":"r","key":"a b","value":1,"version":0}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"state:set","room":"r","key":"k","value":1,"version":-1}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"state:set","room":"r","key":"k","value":1e999,"version":0}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"state:set","room":"r","key":"k","value":1,"version":0,"ttl_ms":0}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"state:delete","room":"r","key":"k","version":0}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"state:delete","room":"r","key":"k","version":1,"value":1}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"state:get","room":"bad room"}"#),
            ErrorCode::InvalidRoom
        );
        assert_eq!(
            code(r#"{"type":"state:get","room":"r","keys":[""]}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"state:nope","room":"r"}"#),
            ErrorCode::UnknownType
        );
        assert_eq!(
            code(r#"{"type":"state:get","room":"r","extra":1}"#),
            ErrorCode::BadRequest
        );
    }
}
