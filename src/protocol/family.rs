//! Frame families parsed outside the general parser (`doc:*`, `state:*`):
//! one shared first step finds a family's frames with a byte scan (other
//! frames pay nothing more) and answers a family frame that does not parse
//! with `bad_request`, keeping its `id` when that can be read.

use super::{frame_type, FrameError, MAX_ID_LEN};
use crate::error::ErrorCode;
use serde::Deserialize;

/// A family's wire struct: knows the frame's `type`.
pub trait Typed {
    fn frame_type(&self) -> &str;
}

/// `None` when `text` is not a frame of the family whose types start with
/// `prefix` (such as `"doc:"`); otherwise the decoded wire struct, or the
/// `bad_request` to answer.
pub fn parse_family<'a, W: Deserialize<'a> + Typed>(
    text: &'a [u8],
    prefix: &str,
) -> Option<Result<W, FrameError>> {
    let p = prefix.as_bytes();
    if !text
        .windows(p.len() + 1)
        .any(|w| w[0] == b'"' && &w[1..] == p)
    {
        return None;
    }
    match serde_json::from_slice::<W>(text) {
        Ok(w) if w.frame_type().starts_with(prefix) => Some(Ok(w)),
        Ok(_) => None,
        Err(e) => {
            if !frame_type(text)?.starts_with(prefix) {
                return None;
            }
            Some(Err(FrameError {
                code: ErrorCode::BadRequest,
                message: e.to_string(),
                id: probe_id(text),
            }))
        }
    }
}

/// The frame's `id`, when it is a string of the allowed length.
pub fn probe_id(text: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        id: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(text).ok()?.id {
        Some(serde_json::Value::String(s)) if s.len() <= MAX_ID_LEN => Some(s),
        _ => None,
    }
}

/// `unknown_type` for a frame of the family `family` (such as `"state"`)
/// whose types are `known`.
pub fn unknown_type(ty: &str, family: &str, known: &[&str], id: &Option<String>) -> FrameError {
    FrameError {
        code: ErrorCode::UnknownType,
        message: format!(
            "unknown frame type {ty:?}; the {family} frames are {}",
            known.join(", ")
        ),
        id: id.clone(),
    }
}

/// Refuses an `id` over [`MAX_ID_LEN`] (the error names no id: it is not echoed).
pub fn check_id(id: &Option<String>) -> Result<(), FrameError> {
    match id {
        Some(i) if i.len() > MAX_ID_LEN => Err(FrameError {
            code: ErrorCode::BadRequest,
            message: format!("id is longer than {MAX_ID_LEN} bytes"),
            id: None,
        }),
        _ => Ok(()),
    }
}

/// Refuses the first field that is set (`fields`: name, set) but not
/// `allowed` in a frame of type `ty`.
pub fn check_fields(
    ty: &str,
    allowed: &[&str],
    fields: &[(&str, bool)],
    id: &Option<String>,
) -> Result<(), FrameError> {
    match fields.iter().find(|(n, set)| *set && !allowed.contains(n)) {
        Some((name, _)) => Err(FrameError {
            code: ErrorCode::BadRequest,
            message: format!("field `{name}` is not allowed in {ty}"),
            id: id.clone(),
        }),
        None => Ok(()),
    }
}
