//! Typed errors and the one place that maps them to wire codes, HTTP statuses
//! and WebSocket close codes.

use std::borrow::Cow;

/// Stable error codes sent in `{"type":"error","code":…}` frames and REST error
/// bodies. Clients match on these strings; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadJson,
    BadRequest,
    UnknownType,
    TooLarge,
    RateLimited,
    InvalidRoom,
    Forbidden,
    NotMember,
    TooManyRooms,
    UserOffline,
    Unauthorized,
    NotFound,
    SessionExpired,
    ResumeFailed,
    Unavailable,
    Internal,
    // Collaborative editing (documents).
    InvalidOp,
    RevTooOld,
    RevInFuture,
    TooManyDocs,
    // MQTT.
    InvalidTopic,
    NotSubscribed,
    TooManyFilters,
    MqttUnavailable,
    MqttQueueFull,
    /// The embedded database refused a write (full, locked, read-only, I/O error).
    StorageError,
    // Shared state.
    /// A `state:set`/`state:delete` whose `version` is not the key's current one.
    VersionConflict,
    /// A new key in a room that has `SWITCHBOARD_STATE_MAX_KEYS` already.
    TooManyKeys,
    /// REST only (HTTP 428): a state write without `If-Match`.
    PreconditionRequired,
    // Tool calls (`rpc:*`).
    /// No `rpc:result` within the call's `timeout_ms`.
    RpcTimeout,
    /// The called session closed before answering.
    RpcDisconnected,
    /// The caller's (or the target's) calls in flight are at `SWITCHBOARD_RPC_IN_FLIGHT`.
    TooManyCalls,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 32] = [
        ErrorCode::BadJson,
        ErrorCode::BadRequest,
        ErrorCode::UnknownType,
        ErrorCode::TooLarge,
        ErrorCode::RateLimited,
        ErrorCode::InvalidRoom,
        ErrorCode::Forbidden,
        ErrorCode::NotMember,
        ErrorCode::TooManyRooms,
        ErrorCode::UserOffline,
        ErrorCode::Unauthorized,
        ErrorCode::NotFound,
        ErrorCode::SessionExpired,
        ErrorCode::ResumeFailed,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::InvalidOp,
        ErrorCode::RevTooOld,
        ErrorCode::RevInFuture,
        ErrorCode::TooManyDocs,
        ErrorCode::InvalidTopic,
        ErrorCode::NotSubscribed,
        ErrorCode::TooManyFilters,
        ErrorCode::MqttUnavailable,
        ErrorCode::MqttQueueFull,
        ErrorCode::StorageError,
        ErrorCode::VersionConflict,
        ErrorCode::TooManyKeys,
        ErrorCode::PreconditionRequired,
        ErrorCode::RpcTimeout,
        ErrorCode::RpcDisconnected,
        ErrorCode::TooManyCalls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotMember => "not_member",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::UserOffline => "user_offline",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::ResumeFailed => "resume_failed",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::InvalidOp => "invalid_op",
            ErrorCode::RevTooOld => "rev_too_old",
            ErrorCode::RevInFuture => "rev_in_future",
            ErrorCode::TooManyDocs => "too_many_docs",
            ErrorCode::InvalidTopic => "invalid_topic",
            ErrorCode::NotSubscribed => "not_subscribed",
            ErrorCode::TooManyFilters => "too_many_filters",
            ErrorCode::MqttUnavailable => "mqtt_unavailable",
            ErrorCode::MqttQueueFull => "mqtt_queue_full",
            ErrorCode::StorageError => "storage_error",
            ErrorCode::VersionConflict => "version_conflict",
            ErrorCode::TooManyKeys => "too_many_keys",
            ErrorCode::PreconditionRequired => "precondition_required",
            ErrorCode::RpcTimeout => "rpc_timeout",
            ErrorCode::RpcDisconnected => "rpc_disconnected",
            ErrorCode::TooManyCalls => "too_many_calls",
        }
    }

    /// Position in [`ErrorCode::ALL`], for per-code counters.
    pub fn index(self) -> usize {
        ErrorCode::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadJson
            | ErrorCode::BadRequest
            | ErrorCode::UnknownType
            | ErrorCode::InvalidRoom
            | ErrorCode::TooManyRooms => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden | ErrorCode::NotMember => 403,
            ErrorCode::NotFound | ErrorCode::UserOffline | ErrorCode::SessionExpired => 404,
            ErrorCode::ResumeFailed => 409,
            ErrorCode::TooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable | ErrorCode::StorageError => 503,
            ErrorCode::Internal => 500,
            ErrorCode::InvalidOp | ErrorCode::TooManyDocs => 400,
            ErrorCode::RevTooOld | ErrorCode::RevInFuture => 409,
            ErrorCode::InvalidTopic | ErrorCode::TooManyFilters => 400,
            ErrorCode::NotSubscribed => 403,
            ErrorCode::MqttUnavailable => 503,
            ErrorCode::MqttQueueFull => 429,
            ErrorCode::VersionConflict => 409,
            ErrorCode::TooManyKeys => 413,
            ErrorCode::PreconditionRequired => 428,
            ErrorCode::RpcTimeout => 504,
            ErrorCode::RpcDisconnected => 502,
            ErrorCode::TooManyCalls => 429,
        }
    }
}

/// An error with a stable code and a human-readable message.
#[derive(Debug, Clone, PartialEq)]
pub struct HubError {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
}

impl HubError {
    /// The JSON body of an HTTP error response.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": { "code": self.code.as_str(), "message": self.message }
        })
    }

    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> HubError {
        HubError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for HubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for HubError {}

impl actix_web::ResponseError for HubError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::from_u16(self.code.http_status())
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
    }
    fn error_response(&self) -> actix_web::HttpResponse {
        crate::metrics::METRICS.error(self.code);
        crate::monitor::events::error(self.code, &self.message);
        actix_web::HttpResponse::build(self.status_code()).json(self.body())
    }
}

/// WebSocket close codes the server uses (documented in docs/PROTOCOL.md).
pub mod close {
    /// Normal closure, echoing a client's close.
    pub const NORMAL: u16 = 1000;
    /// Server shutting down (SIGTERM).
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol violation at the WebSocket layer (bad framing, binary data over the hard cap…).
    pub const PROTOCOL: u16 = 1002;
    /// A text message that is not valid UTF-8 (RFC 6455 §8.1).
    pub const INVALID_DATA: u16 = 1007;
    /// Authentication failed, missing, or the token expired.
    pub const POLICY: u16 = 1008;
    /// A frame, or fragmented message, larger than the hard cap (refused by `wsframes`).
    pub const TOO_BIG: u16 = 1009;
    /// No pong within the pong timeout.
    pub const HEARTBEAT_TIMEOUT: u16 = 4000;
    /// The session's outbound queue was full: it could not keep up.
    pub const SLOW_CONSUMER: u16 = 4008;
}
