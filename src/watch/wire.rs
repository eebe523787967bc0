//! `room:watch` / `room:unwatch` as `protocol::parse` turns them into
//! types, and the room pattern they name.

use crate::error::ErrorCode;
use crate::ids::RoomName;
use crate::protocol::{ClientFrame, FrameError, Request};
use serde::Deserialize;
use std::borrow::Cow;

/// Longest pattern.
pub const MAX_PATTERN_LEN: usize = 64;

/// A room pattern: 1-64 characters of a room name, or `*` (any run of
/// characters). Personal rooms (`user:…`) are never watched.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pattern(String);

impl Pattern {
    pub fn parse(raw: &str) -> Option<Pattern> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_PATTERN_LEN
            && !raw.starts_with("user:")
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:@*".contains(&b));
        ok.then(|| Pattern(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, room: &RoomName) -> bool {
        room.personal_owner().is_none() && crate::auth::glob(&self.0, room.as_str())
    }
}

/// A parsed `room:watch` / `room:unwatch`.
#[derive(Debug)]
pub enum WatchRequest {
    Watch(Pattern),
    Unwatch(Pattern),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    id: Option<String>,
    pattern: Option<String>,
}

impl crate::protocol::Typed for Wire<'_> {
    fn frame_type(&self) -> &str {
        &self.ty
    }
}

/// Parses `text` if it is a `room:watch` or `room:unwatch` frame.
pub fn parse(text: &[u8]) -> Option<Result<Request, FrameError>> {
    let wire = crate::protocol::parse_family::<Wire>(text, "room:watch")
        .or_else(|| crate::protocol::parse_family::<Wire>(text, "room:unwatch"))?;
    Some(wire.and_then(build))
}

fn build(w: Wire) -> Result<Request, FrameError> {
    let id = w.id;
    let err = |code, m: String, id: &Option<String>| FrameError {
        code,
        message: m,
        id: id.clone(),
    };
    crate::protocol::check_id(&id)?;
    let ty = w.ty.as_ref();
    if ty != "room:watch" && ty != "room:unwatch" {
        let m = format!("unknown frame type {ty:?}; did you mean room:watch or room:unwatch?");
        return Err(err(ErrorCode::UnknownType, m, &id));
    }
    let Some(raw) = w.pattern.as_deref() else {
        return Err(err(
            ErrorCode::BadRequest,
            format!("{ty} needs `pattern`"),
            &id,
        ));
    };
    let Some(p) = Pattern::parse(raw) else {
        let m = format!(
            "patterns are 1-{MAX_PATTERN_LEN} characters from A-Z a-z 0-9 _ - . : @ and * (any run), not user:…"
        );
        return Err(err(ErrorCode::InvalidRoom, m, &id));
    };
    let req = if ty == "room:watch" {
        WatchRequest::Watch(p)
    } else {
        WatchRequest::Unwatch(p)
    };
    Ok(Request {
        frame: ClientFrame::Watch(req),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_frames() {
        let p = Pattern::parse("team-*").unwrap();
        assert!(p.matches(&RoomName::parse("team-a").unwrap()));
        assert!(!p.matches(&RoomName::parse("teams").unwrap()));
        let any = Pattern::parse("*").unwrap();
        assert!(!any.matches(&RoomName::parse("user:bob").unwrap()));
        for bad in ["", "user:*", "a b", "é", &"x".repeat(65)] {
            assert!(Pattern::parse(bad).is_none(), "{bad}");
        }
        let ok = parse(br#"{"type":"room:watch","pattern":"team-*","id":"w"}"#)
            .unwrap()
            .unwrap();
        assert!(matches!(
            ok.frame,
            ClientFrame::Watch(WatchRequest::Watch(_))
        ));
        let code = |t: &str| parse(t.as_bytes()).unwrap().unwrap_err().code;
        assert_eq!(code(r#"{"type":"room:unwatch"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(r#"{"type":"room:watch","pattern":"a b"}"#),
            ErrorCode::InvalidRoom
        );
        assert_eq!(
            code(r#"{"type":"room:watch","pattern":"a","room":"b"}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"room:watchers","pattern":"a"}"#),
            ErrorCode::UnknownType
        );
        // Other room frames are left to the general parser.
        assert!(parse(br#"{"type":"room:join","room":"room:watch"}"#).is_none());
    }
}
