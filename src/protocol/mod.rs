//! The native wire protocol: JSON text frames tagged by `"type"`.
//!
//! Client frames are parsed exactly once, in [`parse`], into [`Request`]; every
//! failure becomes a [`FrameError`] with a stable code. Server frames are
//! [`ServerFrame`] values encoded once by [`encode`] into shared bytes.
//! docs/PROTOCOL.md documents every frame and field below.

use crate::error::ErrorCode;
use crate::ids::{RoomName, UserId};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Longest client `id` accepted (it is echoed in acks and errors).
pub const MAX_ID_LEN: usize = 128;
/// Longest presence `activity` text.
pub const MAX_ACTIVITY_LEN: usize = 140;
/// Deepest nesting of arrays/objects accepted inside `data`. The server only
/// forwards `data`, but clients with a recursion limit (serde_json: 128) could
/// not parse a frame nested deeper, so one such message would poison a room.
pub const MAX_DATA_DEPTH: usize = 64;
/// Longest token accepted in an `auth` frame.
pub const MAX_TOKEN_LEN: usize = 8192;

/// A presence status a client may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Online,
    Away,
    Busy,
    Offline,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Away => "away",
            Status::Busy => "busy",
            Status::Offline => "offline",
        }
    }
}

/// Which notifications to mark read (`notification:read`).
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    Ids(Vec<u64>),
    All,
}

/// A parsed, validated client frame.
#[derive(Debug)]
pub enum ClientFrame {
    /// `token` and/or `data` (for the connect hook); neither: the connect
    /// hook decides from the connection's cookies and headers.
    Auth {
        token: Option<String>,
        data: Option<Box<RawValue>>,
    },
    Join {
        room: RoomName,
        since: Option<u64>,
        epoch: Option<String>,
        /// `state: true`: a `state:snapshot` follows `room:joined`.
        state: bool,
    },
    Leave {
        room: RoomName,
    },
    Send {
        room: RoomName,
        data: Box<RawValue>,
        opts: PublishOptions,
    },
    Direct {
        to: UserId,
        data: Box<RawValue>,
    },
    Typing {
        room: RoomName,
        on: bool,
    },
    Presence {
        status: Status,
        activity: Option<String>,
    },
    Ping,
    /// A `doc:*` frame (collaborative editing), parsed by `document::wire`.
    Doc(crate::document::wire::DocRequest),
    /// A `state:*` frame (shared state), parsed by `state::wire`.
    State(crate::state::wire::StateRequest),
    /// `mqtt:subscribe`, `mqtt:unsubscribe`, `mqtt:publish`.
    Mqtt(crate::mqtt::frame::MqttFrame),
    /// A page of the user's notifications, newest first.
    NotificationList {
        before: Option<u64>,
        limit: usize,
        unread_only: bool,
    },
    /// Marks some (`ids`) or all of the user's notifications read.
    NotificationRead {
        mark: Mark,
    },
    /// A page of a room's history before a seq (`history:get`).
    HistoryGet {
        room: RoomName,
        page: page::PageRequest,
    },
    /// WebRTC signaling to one session sharing `room` (`signal`).
    Signal(crate::signal::Signal),
    /// `rpc:call`, `rpc:result` (tool calls), parsed by `rpc::wire`.
    Rpc(crate::rpc::wire::RpcRequest),
    /// `room:watch`, `room:unwatch` (services), parsed by `watch`.
    Watch(crate::watch::wire::WatchRequest),
    /// A `stream:*` frame (AI response streams), parsed by `streams::wire`.
    Stream(crate::streams::wire::StreamRequest),
}

/// The options of a `message:send` (and, but for `exclude_self`, of
/// `POST /api/publish`).
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Deliver to every member but the sending session.
    pub exclude_self: bool,
    /// A publish with a key the room accepted within the window is answered
    /// with the first one's seq, not delivered again (`idempotency.rs`).
    pub key: Option<crate::idempotency::IdemKey>,
    /// How outboxes treat it under pressure (`delivery.rs`).
    pub priority: crate::delivery::Priority,
    /// Not numbered, not kept, dropped first.
    pub volatile: bool,
}

impl PublishOptions {
    pub fn class(&self) -> crate::delivery::Class {
        crate::delivery::Class::of(self.priority, self.volatile)
    }

    /// Reads `priority` and `volatile` into the options (`message:send`,
    /// `POST /api/publish`).
    pub fn with_class(
        mut self,
        priority: Option<&str>,
        volatile: Option<bool>,
    ) -> Result<PublishOptions, String> {
        if let Some(p) = priority {
            self.priority = crate::delivery::Priority::parse(p)
                .ok_or("priority must be critical, high, normal or low")?;
        }
        self.volatile = volatile.unwrap_or(false);
        if self.volatile && self.key.is_some() {
            return Err("a volatile message takes no idempotency_key (it is not kept)".into());
        }
        Ok(self)
    }
}

/// Default and largest page of `notification:list`.
pub const NOTIFICATION_PAGE: (usize, usize) = (20, 100);
/// Most ids in one `notification:read`.
pub const MAX_READ_IDS: usize = 1000;

/// A client frame with its optional correlation `id`.
#[derive(Debug)]
pub struct Request {
    pub frame: ClientFrame,
    pub id: Option<String>,
}

/// Why a client frame was refused; `id` is the frame's own id when it could be read.
#[derive(Debug, PartialEq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
    pub id: Option<String>,
}

/// Every client frame type, for `unknown_type` messages and the docs.
pub const CLIENT_TYPES: [&str; 32] = [
    "auth",
    "room:join",
    "room:leave",
    "message:send",
    "direct:send",
    "typing:start",
    "typing:stop",
    "presence:update",
    "ping",
    "mqtt:subscribe",
    "mqtt:unsubscribe",
    "mqtt:publish",
    "doc:open",
    "doc:op",
    "doc:cursor",
    "doc:close",
    "notification:list",
    "notification:read",
    "history:get",
    "state:get",
    "state:set",
    "state:delete",
    "signal",
    "rpc:call",
    "rpc:result",
    "room:watch",
    "room:unwatch",
    "stream:start",
    "stream:data",
    "stream:end",
    "stream:error",
    "stream:cancel",
];

/// The union of all client fields, read in one pass. Unknown fields are an error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    id: Option<String>,
    token: Option<String>,
    room: Option<String>,
    since: Option<u64>,
    epoch: Option<String>,
    state: Option<bool>,
    #[serde(default, borrow, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    to: Option<String>,
    status: Option<Status>,
    activity: Option<String>,
    filter: Option<String>,
    topic: Option<String>,
    #[serde(default, borrow, deserialize_with = "present")]
    payload: Option<&'a RawValue>,
    qos: Option<u8>,
    retain: Option<bool>,
    binary: Option<bool>,
    before: Option<u64>,
    limit: Option<u64>,
    unread: Option<bool>,
    ids: Option<Vec<u64>>,
    all: Option<bool>,
    exclude_self: Option<bool>,
    idempotency_key: Option<String>,
    kind: Option<String>,
    priority: Option<String>,
    volatile: Option<bool>,
}

/// `data` may be any JSON, `null` included: a present field is always `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Read only when the full parse failed, to name the type and id in the error.
/// Both are raw values so that a wrongly typed `type` still lets us read `id`.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "type", default)]
    ty: Option<serde_json::Value>,
    #[serde(default)]
    id: Option<serde_json::Value>,
}

fn err(code: ErrorCode, message: impl Into<String>, id: &Option<String>) -> FrameError {
    FrameError {
        code,
        message: message.into(),
        id: id.clone(),
    }
}

/// Parses one text frame.
pub fn parse(text: &[u8]) -> Result<Request, FrameError> {
    if let Some(doc) = crate::document::wire::parse(text) {
        return doc;
    }
    if let Some(state) = crate::state::wire::parse(text) {
        return state;
    }
    if let Some(rpc) = crate::rpc::wire::parse(text) {
        return rpc;
    }
    if let Some(watch) = crate::watch::wire::parse(text) {
        return watch;
    }
    if let Some(stream) = crate::streams::wire::parse(text) {
        return stream;
    }
    let wire: Wire = match serde_json::from_slice(text) {
        Ok(w) => w,
        Err(e) => return Err(classify(text, e)),
    };
    let id = wire.id.clone();
    if let Some(i) = &id {
        if i.len() > MAX_ID_LEN {
            return Err(err(
                ErrorCode::BadRequest,
                format!("id is longer than {MAX_ID_LEN} bytes"),
                &None,
            ));
        }
    }
    let ty = wire.ty.as_ref();
    let fields: [(&str, bool); 25] = [
        ("token", wire.token.is_some()),
        ("state", wire.state.is_some()),
        ("room", wire.room.is_some()),
        ("since", wire.since.is_some()),
        ("epoch", wire.epoch.is_some()),
        ("data", wire.data.is_some()),
        ("to", wire.to.is_some()),
        ("status", wire.status.is_some()),
        ("activity", wire.activity.is_some()),
        ("filter", wire.filter.is_some()),
        ("topic", wire.topic.is_some()),
        ("payload", wire.payload.is_some()),
        ("qos", wire.qos.is_some()),
        ("retain", wire.retain.is_some()),
        ("binary", wire.binary.is_some()),
        ("before", wire.before.is_some()),
        ("limit", wire.limit.is_some()),
        ("unread", wire.unread.is_some()),
        ("ids", wire.ids.is_some()),
        ("all", wire.all.is_some()),
        ("exclude_self", wire.exclude_self.is_some()),
        ("idempotency_key", wire.idempotency_key.is_some()),
        ("kind", wire.kind.is_some()),
        ("priority", wire.priority.is_some()),
        ("volatile", wire.volatile.is_some()),
    ];
    let allowed: &[&str] = match ty {
        "auth" => &["token", "data"],
        "room:join" => &["room", "since", "epoch", "state"],
        "room:leave" | "typing:start" | "typing:stop" => &["room"],
        "message:send" => &[
            "room",
            "data",
            "exclude_self",
            "idempotency_key",
            "priority",
            "volatile",
        ],
        "direct:send" => &["to", "data"],
        "presence:update" => &["status", "activity"],
        "ping" => &[],
        "mqtt:subscribe" | "mqtt:unsubscribe" => &["filter"],
        "mqtt:publish" => &["topic", "payload", "qos", "retain", "binary"],
        "notification:list" => &["before", "limit", "unread"],
        "notification:read" => &["ids", "all"],
        "history:get" => &["room", "before", "limit"],
        "signal" => &["to", "room", "kind", "data"],
        other => {
            return Err(err(
                ErrorCode::UnknownType,
                format!(
                    "unknown frame type {other:?}; expected one of {}",
                    CLIENT_TYPES.join(", ")
                ),
                &id,
            ))
        }
    };
    if let Some((name, _)) = fields.iter().find(|(n, set)| *set && !allowed.contains(n)) {
        return Err(err(
            ErrorCode::BadRequest,
            format!("field `{name}` is not allowed in {ty}"),
            &id,
        ));
    }
    let room = |w: &Wire| -> Result<RoomName, FrameError> {
        let raw = w
            .room
            .as_deref()
            .ok_or_else(|| err(ErrorCode::BadRequest, format!("{ty} needs `room`"), &id))?;
        RoomName::parse(raw).ok_or_else(|| {
            err(
                ErrorCode::InvalidRoom,
                "room names are 1-64 characters from A-Z a-z 0-9 _ - . : @, or user:<user id>",
                &id,
            )
        })
    };
    let data = |w: &Wire| -> Result<Box<RawValue>, FrameError> {
        let d = w
            .data
            .ok_or_else(|| err(ErrorCode::BadRequest, format!("{ty} needs `data`"), &id))?;
        if let Some(why) = data_problem(d.get()) {
            return Err(err(ErrorCode::BadRequest, why, &id));
        }
        Ok(d.to_owned())
    };
    let frame = match ty {
        "auth" => {
            if wire.token.as_ref().is_some_and(|t| t.len() > MAX_TOKEN_LEN) {
                return Err(err(ErrorCode::BadRequest, "token is too long", &id));
            }
            ClientFrame::Auth {
                token: wire.token.clone(),
                data: wire.data.is_some().then(|| data(&wire)).transpose()?,
            }
        }
        "room:join" => ClientFrame::Join {
            room: room(&wire)?,
            since: wire.since,
            epoch: wire.epoch.clone(),
            state: wire.state.unwrap_or(false),
        },
        "room:leave" => ClientFrame::Leave { room: room(&wire)? },
        "typing:start" => ClientFrame::Typing {
            room: room(&wire)?,
            on: true,
        },
        "typing:stop" => ClientFrame::Typing {
            room: room(&wire)?,
            on: false,
        },
        "message:send" => {
            let key = wire
                .idempotency_key
                .as_deref()
                .map(crate::idempotency::IdemKey::parse);
            let opts = PublishOptions {
                exclude_self: wire.exclude_self.unwrap_or(false),
                key: key
                    .transpose()
                    .map_err(|m| err(ErrorCode::BadRequest, m, &id))?,
                ..Default::default()
            };
            let opts = opts
                .with_class(wire.priority.as_deref(), wire.volatile)
                .map_err(|m| err(ErrorCode::BadRequest, m, &id))?;
            ClientFrame::Send {
                room: room(&wire)?,
                data: data(&wire)?,
                opts,
            }
        }
        "direct:send" => {
            let raw = wire
                .to
                .as_deref()
                .ok_or_else(|| err(ErrorCode::BadRequest, "direct:send needs `to`", &id))?;
            let to = UserId::parse(raw)
                .ok_or_else(|| err(ErrorCode::BadRequest, "`to` is not a valid user id", &id))?;
            ClientFrame::Direct {
                to,
                data: data(&wire)?,
            }
        }
        "presence:update" => {
            let status = wire
                .status
                .ok_or_else(|| err(ErrorCode::BadRequest, "presence:update needs `status`", &id))?;
            if status == Status::Offline {
                return Err(err(
                    ErrorCode::BadRequest,
                    "status must be online, away or busy",
                    &id,
                ));
            }
            let activity = wire.activity.clone();
            if activity
                .as_ref()
                .is_some_and(|a| a.chars().count() > MAX_ACTIVITY_LEN)
            {
                return Err(err(
                    ErrorCode::BadRequest,
                    format!("activity is longer than {MAX_ACTIVITY_LEN} characters"),
                    &id,
                ));
            }
            ClientFrame::Presence { status, activity }
        }
        "mqtt:subscribe" | "mqtt:unsubscribe" | "mqtt:publish" => {
            let fields = crate::mqtt::frame::MqttFields {
                filter: wire.filter.as_deref(),
                topic: wire.topic.as_deref(),
                payload: wire.payload,
                qos: wire.qos,
                retain: wire.retain,
                binary: wire.binary,
            };
            let frame = crate::mqtt::frame::MqttFrame::parse(ty, &fields);
            ClientFrame::Mqtt(frame.map_err(|(code, m)| err(code, m, &id))?)
        }
        "notification:list" => {
            let (default, max) = NOTIFICATION_PAGE;
            let limit = match wire.limit {
                None => default,
                Some(n) if (1..=max as u64).contains(&n) => n as usize,
                Some(_) => {
                    return Err(err(
                        ErrorCode::BadRequest,
                        format!("limit must be 1 to {max}"),
                        &id,
                    ))
                }
            };
            ClientFrame::NotificationList {
                before: wire.before,
                limit,
                unread_only: wire.unread.unwrap_or(false),
            }
        }
        "notification:read" => {
            let mark = match (wire.ids.clone(), wire.all) {
                (Some(ids), None | Some(false)) if !ids.is_empty() && ids.len() <= MAX_READ_IDS => {
                    Mark::Ids(ids)
                }
                (None, Some(true)) => Mark::All,
                _ => {
                    return Err(err(
                        ErrorCode::BadRequest,
                        format!(
                            "notification:read needs `ids` (1 to {MAX_READ_IDS}) or `all`: true"
                        ),
                        &id,
                    ))
                }
            };
            ClientFrame::NotificationRead { mark }
        }
        "history:get" => ClientFrame::HistoryGet {
            room: room(&wire)?,
            page: page::PageRequest::new(wire.before, wire.limit),
        },
        "signal" => {
            let fields = crate::signal::SignalFields {
                to: wire.to.as_deref(),
                kind: wire.kind.as_deref(),
                data: wire.data,
            };
            let room = room(&wire)?;
            let signal = crate::signal::Signal::parse(room, &fields);
            ClientFrame::Signal(signal.map_err(|(code, m)| err(code, m, &id))?)
        }
        _ => ClientFrame::Ping,
    };
    Ok(Request { frame, id })
}

/// Why client `data` (already valid JSON) cannot be forwarded, if it cannot.
/// The rule for anything relayed as JSON: a strict receiver must be able to read it.
pub fn data_problem(data: &str) -> Option<String> {
    if json_depth(data) > MAX_DATA_DEPTH {
        return Some(format!(
            "data is nested deeper than {MAX_DATA_DEPTH} levels"
        ));
    }
    if let Some(n) = unreadable_number(data) {
        let shown = if n.len() > 32 {
            format!("{}…", &n[..32])
        } else {
            n.into()
        };
        return Some(format!(
            "data has a number beyond the range of a double: {shown}"
        ));
    }
    // Lone surrogates (`"\ud800"`) pass a skip-parse; receivers that decode
    // strictly would reject the whole frame. Only text with `\u` needs the full check.
    if data.contains("\\u") && serde_json::from_str::<serde_json::Value>(data).is_err() {
        return Some("data has an invalid \\u escape".into());
    }
    None
}

/// The bytes of already-validated JSON text that are outside strings, with
/// their offsets.
fn outside_strings(json: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
    let (mut in_str, mut escaped) = (false, false);
    json.bytes().enumerate().filter(move |&(_, b)| {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            return false;
        }
        in_str = b == b'"';
        !in_str
    })
}

/// The first number in already-validated JSON text that a parser cannot read
/// as a finite double (`1e999999`, 400 digits); what skip-parsing (`RawValue`)
/// lets through and serde_json, JavaScript and others refuse or turn into
/// infinity. Only numbers with an exponent or over 300 characters can be.
pub fn unreadable_number(json: &str) -> Option<&str> {
    let unreadable = |n: &str| {
        let suspect = n.len() > 300 || n.bytes().any(|b| b == b'e' || b == b'E');
        suspect && !n.parse::<f64>().is_ok_and(f64::is_finite)
    };
    let mut start = None;
    for (i, b) in outside_strings(json) {
        let in_number = matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E');
        match start {
            None if b == b'-' || b.is_ascii_digit() => start = Some(i),
            Some(s) if !in_number => {
                start = None;
                if unreadable(&json[s..i]) {
                    return Some(&json[s..i]);
                }
            }
            _ => {}
        }
    }
    start.map(|s| &json[s..]).filter(|n| unreadable(n))
}

/// The `type` of a frame that failed to parse, if it has a readable one.
pub fn frame_type(text: &[u8]) -> Option<String> {
    let probe: Probe = serde_json::from_slice(text).ok()?;
    match probe.ty {
        Some(serde_json::Value::String(t)) => Some(t),
        _ => None,
    }
}

/// Maximum nesting depth of already-validated JSON text (brackets outside strings).
pub fn json_depth(json: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for (_, b) in outside_strings(json) {
        match b {
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn classify(text: &[u8], e: serde_json::Error) -> FrameError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => FrameError {
            code: ErrorCode::BadJson,
            message: format!("invalid JSON: {e}"),
            id: None,
        },
        Category::Data => {
            let probe: Option<Probe> = serde_json::from_slice(text).ok();
            let id = probe.as_ref().and_then(|p| match &p.id {
                Some(serde_json::Value::String(s)) if s.len() <= MAX_ID_LEN => Some(s.clone()),
                _ => None,
            });
            match probe.as_ref().map(|p| p.ty.as_ref().map(|t| t.as_str())) {
                None => FrameError {
                    code: ErrorCode::BadRequest,
                    message: "a frame must be a JSON object".into(),
                    id,
                },
                Some(None | Some(None)) => FrameError {
                    code: ErrorCode::BadRequest,
                    message: "a frame needs a string `type`".into(),
                    id,
                },
                Some(Some(Some(t))) if !CLIENT_TYPES.contains(&t) => FrameError {
                    code: ErrorCode::UnknownType,
                    message: format!(
                        "unknown frame type {t:?}; expected one of {}",
                        CLIENT_TYPES.join(", ")
                    ),
                    id,
                },
                Some(Some(Some(_))) => FrameError {
                    code: ErrorCode::BadRequest,
                    message: e.to_string(),
                    id,
                },
            }
        }
    }
}

mod family;
pub mod page;
mod server;
pub use family::{check_fields, check_id, parse_family, probe_id, unknown_type, Typed};
pub use server::*;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
