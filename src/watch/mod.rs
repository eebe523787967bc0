//! Room watches: a service (or admin) session's `room:watch {pattern}`
//! gets every message published in any room whose name matches
//! (`team-*`), rooms created later included, as `message:receive`. A
//! watcher is not a member (no presence, no member lists, no history):
//! what it gets is live only.
//!
//! The watchers of this node are in one registry. With one node, a room
//! hands each message to the registry after its fan-out (one atomic load
//! when nobody watches). With Redis, rooms do not: every message of every
//! room passes its room channel, so the node PSUBSCRIBEs each watched
//! pattern's channels (`cluster.rs`) and delivers from there, whether or
//! not the room lives on this node.

mod cluster;

use crate::delivery::Class;
use crate::error::ErrorCode;
use crate::ids::{RoomName, SessionId};
use crate::outbox::Outbox;
use crate::protocol::{ClientFrame, FrameError, Request};
use bytes::Bytes;
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock, RwLock};

pub use cluster::{subscribe, unsubscribe};

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

/// A session that watches.
struct Watcher {
    session: SessionId,
    outbox: Outbox,
    /// Sorted: a message is delivered for the first pattern that matches.
    patterns: Vec<Pattern>,
}

/// This node's watchers.
#[derive(Default)]
struct Registry {
    /// Watchers, so that rooms skip the lock when there are none.
    count: AtomicUsize,
    /// Messages come from Redis (`cluster.rs`), not from this node's rooms.
    clustered: AtomicBool,
    watchers: RwLock<Vec<Watcher>>,
    /// Pattern subscriptions of this node (with Redis): pattern → watchers.
    subs: Mutex<std::collections::HashMap<Pattern, cluster::Sub>>,
}

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::default)
}

/// Adds `pattern` to the session's watch.
pub fn add(session: SessionId, outbox: &Outbox, pattern: &Pattern) {
    let r = registry();
    let mut ws = r.watchers.write().unwrap_or_else(|e| e.into_inner());
    match ws.iter_mut().find(|w| w.session == session) {
        Some(w) => {
            if let Err(at) = w.patterns.binary_search(pattern) {
                w.patterns.insert(at, pattern.clone());
            }
        }
        None => {
            ws.push(Watcher {
                session,
                outbox: outbox.clone(),
                patterns: vec![pattern.clone()],
            });
            r.count.store(ws.len(), Relaxed);
        }
    }
}

/// Removes `pattern` (or, `None`, every pattern) from the session's watch.
pub fn remove(session: SessionId, pattern: Option<&Pattern>) {
    let r = registry();
    let mut ws = r.watchers.write().unwrap_or_else(|e| e.into_inner());
    if let Some(w) = ws.iter_mut().find(|w| w.session == session) {
        w.patterns.retain(|p| pattern.is_some_and(|x| x != p));
    }
    ws.retain(|w| !w.patterns.is_empty());
    r.count.store(ws.len(), Relaxed);
}

/// One node: a room's message (`frame`, already encoded for members) goes
/// to every watcher with a matching pattern, once, but `except` (the
/// sender of an `exclude_self` message).
pub fn deliver(room: &RoomName, frame: &Bytes, except: Option<SessionId>, class: Class) {
    let r = registry();
    if r.count.load(Relaxed) == 0 || r.clustered.load(Relaxed) {
        return;
    }
    let ws = r.watchers.read().unwrap_or_else(|e| e.into_inner());
    for w in ws.iter() {
        if Some(w.session) != except && w.patterns.iter().any(|p| p.matches(room)) {
            w.outbox.push_as(frame.clone(), class);
        }
    }
}

/// With Redis: a message of `room` that arrived for `pattern`. Redis sends
/// one copy per matching pattern, so a watcher gets it for the first of
/// its patterns that matches, and only from that pattern's copy.
fn deliver_for(
    pattern: &Pattern,
    room: &RoomName,
    frame: &Bytes,
    except: Option<SessionId>,
    class: Class,
) {
    let ws = registry()
        .watchers
        .read()
        .unwrap_or_else(|e| e.into_inner());
    for w in ws.iter() {
        if Some(w.session) == except {
            continue;
        }
        if w.patterns.iter().find(|p| p.matches(room)) == Some(pattern) {
            w.outbox.push_as(frame.clone(), class);
        }
    }
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
