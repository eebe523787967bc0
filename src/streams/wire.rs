//! The `stream:*` client frames, parsed once into [`StreamRequest`].
//! docs/PROTOCOL.md ("AI response streams") documents them.

use super::{valid_id, META_BYTES, REASON_LEN};
use crate::error::ErrorCode;
use crate::ids::{RoomName, UserId};
use crate::protocol::{ClientFrame, FrameError, Request};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Every client frame type of streams.
pub const STREAM_TYPES: [&str; 5] = [
    "stream:start",
    "stream:data",
    "stream:end",
    "stream:error",
    "stream:cancel",
];

/// A parsed `stream:*` client frame.
#[derive(Debug)]
pub struct StreamRequest {
    /// The room (`to: <user>` is the room `user:<user>`); `None` when the
    /// frame named none (the producer's own streams are found by id).
    pub room: Option<RoomName>,
    pub stream: String,
    pub call: StreamCall,
}

#[derive(Debug)]
pub enum StreamCall {
    Start {
        meta: Option<Box<RawValue>>,
    },
    Data {
        chunk: String,
    },
    /// `last`: the `final` chunk, added before the end.
    End {
        last: Option<String>,
    },
    Error {
        reason: String,
    },
    Cancel,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    id: Option<String>,
    room: Option<String>,
    to: Option<String>,
    stream: Option<String>,
    #[serde(default, borrow, deserialize_with = "present")]
    meta: Option<&'a RawValue>,
    chunk: Option<String>,
    #[serde(rename = "final")]
    last: Option<String>,
    reason: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

impl crate::protocol::Typed for Wire<'_> {
    fn frame_type(&self) -> &str {
        &self.ty
    }
}

/// Parses `text` if it is a `stream:*` frame; `None` leaves it to the
/// general parser.
pub fn parse(text: &[u8]) -> Option<Result<Request, FrameError>> {
    Some(crate::protocol::parse_family::<Wire>(text, "stream:")?.and_then(build))
}

fn build(w: Wire) -> Result<Request, FrameError> {
    crate::protocol::check_id(&w.id)?;
    let id = w.id.clone();
    let err = |code, message: String| FrameError {
        code,
        message,
        id: id.clone(),
    };
    let ty = w.ty.as_ref();
    let allowed: &[&str] = match ty {
        "stream:start" => &["room", "to", "meta"],
        "stream:data" => &["room", "chunk"],
        "stream:end" => &["room", "final"],
        "stream:error" => &["room", "reason"],
        "stream:cancel" => &["room"],
        other => {
            return Err(crate::protocol::unknown_type(
                other,
                "stream",
                &STREAM_TYPES,
                &id,
            ))
        }
    };
    let fields = [
        ("room", w.room.is_some()),
        ("to", w.to.is_some()),
        ("meta", w.meta.is_some()),
        ("chunk", w.chunk.is_some()),
        ("final", w.last.is_some()),
        ("reason", w.reason.is_some()),
    ];
    crate::protocol::check_fields(ty, allowed, &fields, &id)?;
    let need = |name: &str| err(ErrorCode::BadRequest, format!("{ty} needs `{name}`"));
    let stream = w.stream.clone().ok_or_else(|| need("stream"))?;
    if !valid_id(&stream) {
        let m = "stream ids are 1 to 64 characters from A-Z a-z 0-9 _ - . : @".to_string();
        return Err(err(ErrorCode::BadRequest, m));
    }
    let room = match (&w.room, &w.to) {
        (Some(_), Some(_)) => {
            return Err(err(
                ErrorCode::BadRequest,
                format!("{ty} takes `room` or `to`, not both"),
            ))
        }
        (Some(r), None) => Some(RoomName::parse(r).ok_or_else(|| {
            err(
                ErrorCode::InvalidRoom,
                "room names are 1-64 characters from A-Z a-z 0-9 _ - . : @, or user:<user id>"
                    .into(),
            )
        })?),
        (None, Some(u)) => {
            let user = UserId::parse(u)
                .ok_or_else(|| err(ErrorCode::BadRequest, "`to` is not a user id".into()))?;
            RoomName::parse(&format!("user:{user}"))
        }
        (None, None) => None,
    };
    let call = match ty {
        "stream:start" => {
            if room.is_none() {
                return Err(err(
                    ErrorCode::BadRequest,
                    "stream:start needs `room` or `to`".into(),
                ));
            }
            let meta = match w.meta {
                None => None,
                Some(m) if m.get().len() > META_BYTES => {
                    let m = format!("meta is at most {META_BYTES} bytes of JSON");
                    return Err(err(ErrorCode::TooLarge, m));
                }
                Some(m) => match crate::protocol::data_problem(m.get()) {
                    Some(why) => {
                        return Err(err(ErrorCode::BadRequest, why.replace("data", "meta")))
                    }
                    None => Some(m.to_owned()),
                },
            };
            StreamCall::Start { meta }
        }
        "stream:data" => {
            let chunk = w.chunk.ok_or_else(|| need("chunk"))?;
            if chunk.is_empty() {
                return Err(err(ErrorCode::BadRequest, "chunk is empty".into()));
            }
            StreamCall::Data { chunk }
        }
        "stream:end" => StreamCall::End {
            last: w.last.filter(|l| !l.is_empty()),
        },
        "stream:error" => {
            let reason = w.reason.ok_or_else(|| need("reason"))?;
            if reason.is_empty() || reason.len() > REASON_LEN {
                let m = format!("reason is 1 to {REASON_LEN} bytes");
                return Err(err(ErrorCode::BadRequest, m));
            }
            StreamCall::Error { reason }
        }
        _ => {
            if room.is_none() {
                return Err(need("room"));
            }
            StreamCall::Cancel
        }
    };
    Ok(Request {
        frame: ClientFrame::Stream(StreamRequest { room, stream, call }),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        match parse(text.as_bytes()) {
            Some(Err(e)) => e.code,
            other => panic!("{text}: {:?}", other.map(|r| r.map(|q| q.id))),
        }
    }

    #[test]
    fn good_frames_parse() {
        for f in [
            r#"{"type":"stream:start","room":"r","stream":"s1","meta":{"model":"x"},"id":"1"}"#,
            r#"{"type":"stream:start","to":"bob","stream":"s1"}"#,
            r#"{"type":"stream:data","stream":"s1","chunk":"hé"}"#,
            r#"{"type":"stream:end","stream":"s1","final":"."}"#,
            r#"{"type":"stream:error","stream":"s1","reason":"model down"}"#,
            r#"{"type":"stream:cancel","room":"r","stream":"s1"}"#,
        ] {
            assert!(matches!(parse(f.as_bytes()), Some(Ok(_))), "{f}");
        }
        let Some(Ok(r)) = parse(br#"{"type":"stream:start","to":"bob","stream":"s"}"#) else {
            panic!()
        };
        let ClientFrame::Stream(s) = r.frame else {
            panic!()
        };
        assert_eq!(s.room.unwrap().as_str(), "user:bob");
    }

    #[test]
    fn bad_frames_get_codes() {
        use ErrorCode::*;
        for (f, c) in [
            (r#"{"type":"stream:nope","stream":"s"}"#, UnknownType),
            (r#"{"type":"stream:start","stream":"s"}"#, BadRequest),
            (
                r#"{"type":"stream:start","room":"r","to":"u","stream":"s"}"#,
                BadRequest,
            ),
            (
                r#"{"type":"stream:start","room":"bad room","stream":"s"}"#,
                InvalidRoom,
            ),
            (
                r#"{"type":"stream:start","room":"r","stream":"a b"}"#,
                BadRequest,
            ),
            (r#"{"type":"stream:start","room":"r"}"#, BadRequest),
            (r#"{"type":"stream:data","stream":"s"}"#, BadRequest),
            (
                r#"{"type":"stream:data","stream":"s","chunk":""}"#,
                BadRequest,
            ),
            (
                r#"{"type":"stream:data","stream":"s","chunk":7}"#,
                BadRequest,
            ),
            (
                r#"{"type":"stream:data","stream":"s","chunk":"x","meta":1}"#,
                BadRequest,
            ),
            (r#"{"type":"stream:error","stream":"s"}"#, BadRequest),
            (r#"{"type":"stream:cancel","stream":"s"}"#, BadRequest),
            (
                r#"{"type":"stream:data","stream":"s","chunk":"x","zzz":1}"#,
                BadRequest,
            ),
        ] {
            assert_eq!(code(f), c, "{f}");
        }
        let big = format!(
            r#"{{"type":"stream:start","room":"r","stream":"s","meta":"{}"}}"#,
            "x".repeat(5000)
        );
        assert_eq!(code(&big), TooLarge);
        assert!(parse(br#"{"type":"message:send","room":"r","data":"stream:"}"#).is_none());
    }
}
