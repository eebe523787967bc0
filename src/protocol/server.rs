//! Server frames: [`ServerFrame`] values encoded once by [`encode`] into
//! shared bytes, and the types they carry.

use super::Status;
use crate::error::ErrorCode;
use crate::ids::{RoomName, UserId};
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

/// Who sent a message, as shown to receivers.
#[derive(Debug, Clone, Serialize)]
pub struct From {
    pub user: UserId,
    pub name: std::sync::Arc<str>,
}

/// A room member as listed in `room:joined` and the presence API.
#[derive(Debug, Clone, Serialize)]
pub struct MemberInfo {
    pub user: UserId,
    pub name: std::sync::Arc<str>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity: Option<std::sync::Arc<str>>,
    /// What the subscribe hook attached to the join that made the user a
    /// member (docs/PROTOCOL.md, "Subscribe hook").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<std::sync::Arc<RawValue>>,
    /// The user's sessions in the room (`room:joined`, the presence API),
    /// for `signal`; not carried by `room:member_joined`/`_left`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<crate::ids::SessionAddr>,
}

/// A notification as clients see it (`notification:new`, `notification:page`).
#[derive(Debug, Serialize)]
pub struct NotificationInfo<'a> {
    pub id: u64,
    pub from: &'a RawValue,
    pub data: &'a RawValue,
    pub ts: u64,
    pub read: bool,
}

/// Every frame the server sends.
#[derive(Serialize)]
#[serde(tag = "type")]
pub enum ServerFrame<'a> {
    #[serde(rename = "connected")]
    Connected {
        session: String,
        user: &'a UserId,
        name: &'a str,
        guest: bool,
        role: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        exp: Option<u64>,
        /// `websocket`, `sse` or `polling`.
        transport: &'a str,
        /// The session key of an SSE or long-polling session (a bearer secret).
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<&'a str>,
    },
    #[serde(rename = "auth:ok")]
    AuthOk {
        user: &'a UserId,
        #[serde(skip_serializing_if = "Option::is_none")]
        exp: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
    },
    #[serde(rename = "room:joined")]
    Joined {
        room: &'a RoomName,
        seq: u64,
        epoch: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
        members: &'a [MemberInfo],
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
    },
    #[serde(rename = "room:left")]
    Left {
        room: &'a RoomName,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
    },
    #[serde(rename = "message:receive")]
    Message {
        room: &'a RoomName,
        seq: u64,
        from: &'a From,
        data: &'a RawValue,
        ts: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
        /// Absent for `normal`.
        #[serde(skip_serializing_if = "Option::is_none")]
        priority: Option<crate::delivery::Priority>,
    },
    /// A volatile room message: no `seq`, not kept, dropped first.
    #[serde(rename = "message:receive")]
    VolatileMessage {
        room: &'a RoomName,
        from: &'a From,
        data: &'a RawValue,
        ts: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        priority: Option<crate::delivery::Priority>,
        volatile: bool,
    },
    /// Frames this session's queue dropped under pressure since the last
    /// `dropped`, by class (sent once the queue has drained).
    #[serde(rename = "dropped")]
    Dropped { counts: crate::delivery::Dropped },
    #[serde(rename = "ack")]
    Ack {
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    #[serde(rename = "direct:receive")]
    Direct {
        from: &'a From,
        data: &'a RawValue,
        ts: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
    },
    #[serde(rename = "room:member_joined")]
    MemberJoined {
        room: &'a RoomName,
        user: &'a MemberInfo,
    },
    #[serde(rename = "room:member_left")]
    MemberLeft {
        room: &'a RoomName,
        user: &'a MemberInfo,
    },
    #[serde(rename = "typing:update")]
    Typing {
        room: &'a RoomName,
        users: &'a [From],
    },
    #[serde(rename = "presence:update")]
    Presence {
        room: &'a RoomName,
        user: &'a UserId,
        status: Status,
        #[serde(skip_serializing_if = "Option::is_none")]
        last_seen: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        activity: Option<&'a str>,
    },
    #[serde(rename = "broadcast")]
    Broadcast {
        from: &'a From,
        data: &'a RawValue,
        ts: u64,
    },
    #[serde(rename = "error")]
    Error {
        code: &'static str,
        message: &'a str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    #[serde(rename = "pong")]
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
    },
    #[serde(rename = "notification:new")]
    NotificationNew { notification: NotificationInfo<'a> },
    #[serde(rename = "notification:count")]
    NotificationCount { unread: u64 },
    #[serde(rename = "notification:page")]
    NotificationPage {
        notifications: &'a [NotificationInfo<'a>],
        unread: u64,
        more: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
    },
    /// Before the direct messages stored while the user had no session.
    #[serde(rename = "direct:offline")]
    DirectOffline { count: usize, dropped: u64 },
    /// The `ack` of a `message:send` or REST publish whose idempotency key
    /// the room had accepted: the first message's seq, nothing delivered.
    #[serde(rename = "ack")]
    AckDuplicate {
        id: &'a str,
        seq: u64,
        duplicate: bool,
    },
    /// One more session of `user` in the room (after its `room:member_joined`
    /// when it is the user's first).
    #[serde(rename = "room:session_joined")]
    SessionJoined {
        room: &'a RoomName,
        user: &'a UserId,
        session: &'a crate::ids::SessionAddr,
    },
    /// A session of `user` left the room (before its `room:member_left`
    /// when it was the user's last).
    #[serde(rename = "room:session_left")]
    SessionLeft {
        room: &'a RoomName,
        user: &'a UserId,
        session: &'a crate::ids::SessionAddr,
    },
    /// WebRTC signaling from `session` (of `from`), a member of `room`.
    #[serde(rename = "signal")]
    Signal {
        room: &'a RoomName,
        from: &'a From,
        session: &'a crate::ids::SessionAddr,
        kind: crate::signal::Kind,
        data: &'a RawValue,
    },
    /// The `ack` of a direct message stored for a user with no session.
    #[serde(rename = "ack")]
    AckOffline { id: &'a str, offline: bool },
}

/// Encodes a frame once; the bytes are shared by every recipient.
pub fn encode(frame: &ServerFrame) -> Bytes {
    match serde_json::to_vec(frame) {
        Ok(v) => Bytes::from(v),
        // Unreachable with these types (no non-string map keys); never panic on it.
        Err(_) => {
            Bytes::from_static(br#"{"type":"error","code":"internal","message":"encoding failed"}"#)
        }
    }
}

/// An `error` frame.
pub fn error_frame(
    code: ErrorCode,
    message: &str,
    reference: Option<&str>,
    retry_after_ms: Option<u64>,
) -> Bytes {
    crate::metrics::METRICS.error(code);
    crate::monitor::events::error(code, message);
    encode(&ServerFrame::Error {
        code: code.as_str(),
        message,
        reference,
        retry_after_ms,
    })
}

/// The frame's `type`, read from the front of an encoded server frame (they
/// all start with it); `message` for anything else.
pub fn event_name(frame: &[u8]) -> &str {
    const PREFIX: &[u8] = br#"{"type":""#;
    frame
        .strip_prefix(PREFIX)
        .and_then(|rest| {
            let end = rest.iter().position(|&b| b == b'"')?;
            let name = &rest[..end];
            name.iter()
                .all(|b| b.is_ascii_alphanumeric() || b"_:-.".contains(b))
                .then(|| std::str::from_utf8(name).ok())
                .flatten()
        })
        .filter(|n| !n.is_empty())
        .unwrap_or("message")
}
