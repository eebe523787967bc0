//! AI response streams (`stream:*` frames): a producer (a service, or any
//! member who may send in the room) streams a text into a room chunk by
//! chunk; members see it grow, and the whole text becomes one ordinary room
//! message when it ends. This module is a room's live streams and their
//! frames, with no actor in it: the Room actor owns a [`Streams`]
//! (`src/room/streams.rs`); with Redis, every node's replica keeps a copy
//! fed by the room's channel (`src/room/cluster/streams.rs`).
//!
//! The catch-up rule: a member who joins mid-stream gets one `stream:start`
//! carrying the text so far and `next`, the index of the next chunk; the
//! chunks after it follow in order. The room's actor handles one message at
//! a time, so a join sits between two chunks: the text it is given holds
//! every chunk before and none after, and no chunk is missed or repeated.

pub mod wire;

use crate::ids::{now_ms, RoomName, SessionAddr};
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Longest stream id.
pub const ID_LEN: usize = 64;
/// Longest `reason` of a `stream:error`.
pub const REASON_LEN: usize = 256;
/// Longest `meta` (bytes of JSON text).
pub const META_BYTES: usize = 4096;

/// The bounds of a room's streams (documented settings).
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// `SWITCHBOARD_STREAMS_PER_ROOM`: live streams in one room.
    pub per_room: usize,
    /// `SWITCHBOARD_STREAM_MAX_BYTES`: bytes of one stream's text.
    pub max_bytes: usize,
    /// `SWITCHBOARD_STREAM_STALL_MS`: a stream with no chunk for this long
    /// ends with `stream:error` `timeout`.
    pub stall: Duration,
}

impl Default for StreamLimits {
    fn default() -> StreamLimits {
        StreamLimits {
            per_room: 32,
            max_bytes: 65536,
            stall: Duration::from_secs(30),
        }
    }
}

/// Stream ids: 1 to 64 characters from `A-Z a-z 0-9 _ - . : @` (the
/// syntax of state keys).
pub fn valid_id(s: &str) -> bool {
    s.len() <= ID_LEN && crate::state::valid_key(s)
}

/// One live stream.
#[derive(Debug, Clone)]
pub struct Live {
    /// The session producing it (it alone may add to it or end it).
    pub producer: SessionAddr,
    /// `{"user","name"}` of the producer.
    pub from: Box<RawValue>,
    pub meta: Option<Box<RawValue>>,
    pub ts: u64,
    /// The text so far, and how many chunks made it.
    pub text: String,
    pub next: u64,
    /// When the last chunk (or the start) came.
    pub last: Instant,
    pub cancelled: bool,
}

/// Why a stream operation was refused.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    Unknown,
    NotProducer,
    Exists,
    Full(usize),
    TooLarge(usize),
}

impl Refusal {
    pub fn code(&self) -> crate::error::ErrorCode {
        use crate::error::ErrorCode::*;
        match self {
            Refusal::Unknown => NotFound,
            Refusal::NotProducer => Forbidden,
            Refusal::Exists => BadRequest,
            Refusal::Full(_) => RateLimited,
            Refusal::TooLarge(_) => TooLarge,
        }
    }

    pub fn message(&self, stream: &str) -> String {
        match self {
            Refusal::Unknown => format!("no live stream {stream:?} in this room"),
            Refusal::NotProducer => format!("stream {stream:?} is another session's"),
            Refusal::Exists => format!("stream {stream:?} is live in this room already"),
            Refusal::Full(n) => format!(
                "the room has {n} live streams (SWITCHBOARD_STREAMS_PER_ROOM); retry when one ends"
            ),
            Refusal::TooLarge(n) => format!(
                "a stream's text is at most {n} bytes (SWITCHBOARD_STREAM_MAX_BYTES); the chunk was refused"
            ),
        }
    }
}

/// A room's live streams, by id.
#[derive(Debug, Default)]
pub struct Streams {
    pub live: BTreeMap<String, Live>,
}

impl Streams {
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    pub fn can_start(&self, stream: &str, limits: &StreamLimits) -> Result<(), Refusal> {
        if self.live.contains_key(stream) {
            return Err(Refusal::Exists);
        }
        if self.live.len() >= limits.per_room {
            return Err(Refusal::Full(limits.per_room));
        }
        Ok(())
    }

    /// The stream, if `producer` produces it.
    pub fn owned(&self, stream: &str, producer: &SessionAddr) -> Result<&Live, Refusal> {
        let s = self.live.get(stream).ok_or(Refusal::Unknown)?;
        if &s.producer != producer {
            return Err(Refusal::NotProducer);
        }
        Ok(s)
    }

    /// Checks a chunk against the stream's byte bound.
    pub fn fits(live: &Live, chunk: &str, limits: &StreamLimits) -> Result<(), Refusal> {
        if live.text.len() + chunk.len() > limits.max_bytes {
            return Err(Refusal::TooLarge(limits.max_bytes));
        }
        Ok(())
    }

    /// Applies a chunk numbered `index`: `false` (nothing changed) when
    /// the stream is unknown or the chunk is not the next one (a copy that
    /// already has it).
    pub fn append(&mut self, stream: &str, index: u64, chunk: &str) -> bool {
        match self.live.get_mut(stream) {
            Some(s) if s.next == index => {
                s.text.push_str(chunk);
                s.next += 1;
                s.last = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Streams whose last chunk is older than `after`.
    pub fn stalled(&self, now: Instant, after: Duration) -> Vec<String> {
        self.live
            .iter()
            .filter(|(_, s)| now.duration_since(s.last) >= after)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// When the earliest stream stalls.
    pub fn next_stall(&self, after: Duration) -> Option<Instant> {
        self.live.values().map(|s| s.last + after).min()
    }
}

/// `stream:start`: live (empty `text`, `next` 0) or a catch-up.
#[derive(Serialize)]
struct StartFrame<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    room: &'a RoomName,
    stream: &'a str,
    from: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a RawValue>,
    ts: u64,
    text: &'a str,
    next: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cancelled: bool,
}

pub fn start_frame(room: &RoomName, stream: &str, s: &Live) -> Bytes {
    json(&StartFrame {
        ty: "stream:start",
        room,
        stream,
        from: &s.from,
        meta: s.meta.as_deref(),
        ts: s.ts,
        text: &s.text,
        next: s.next,
        cancelled: s.cancelled,
    })
}

#[derive(Serialize)]
struct DataFrame<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    room: &'a RoomName,
    stream: &'a str,
    index: u64,
    chunk: &'a str,
}

pub fn data_frame(room: &RoomName, stream: &str, index: u64, chunk: &str) -> Bytes {
    json(&DataFrame {
        ty: "stream:data",
        room,
        stream,
        index,
        chunk,
    })
}

/// `stream:end` (`chunks`, `length`), `stream:error` (`reason`) and
/// `stream:cancelled` (`by`).
#[derive(Serialize)]
struct EndFrame<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    room: &'a RoomName,
    stream: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    chunks: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    by: Option<&'a RawValue>,
}

pub fn end_frame(room: &RoomName, stream: &str, s: &Live) -> Bytes {
    json(&EndFrame {
        ty: "stream:end",
        room,
        stream,
        chunks: Some(s.next),
        length: Some(s.text.len()),
        reason: None,
        by: None,
    })
}

pub fn error_frame(room: &RoomName, stream: &str, reason: &str) -> Bytes {
    json(&EndFrame {
        ty: "stream:error",
        room,
        stream,
        chunks: None,
        length: None,
        reason: Some(reason),
        by: None,
    })
}

pub fn cancelled_frame(room: &RoomName, stream: &str, by: &RawValue) -> Bytes {
    json(&EndFrame {
        ty: "stream:cancelled",
        room,
        stream,
        chunks: None,
        length: None,
        reason: None,
        by: Some(by),
    })
}

/// The `data` of the room message a finished stream becomes:
/// `{"stream","text","meta"?}`.
pub fn message_data(stream: &str, s: &Live) -> Box<RawValue> {
    #[derive(Serialize)]
    struct Data<'a> {
        stream: &'a str,
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        meta: Option<&'a RawValue>,
    }
    let d = Data {
        stream,
        text: &s.text,
        meta: s.meta.as_deref(),
    };
    serde_json::value::to_raw_value(&d).expect("plain strings and raw JSON serialize")
}

fn json<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("stream frames serialize"))
}

/// A new stream, started now.
pub fn live(producer: SessionAddr, from: Box<RawValue>, meta: Option<Box<RawValue>>) -> Live {
    Live {
        producer,
        from,
        meta,
        ts: now_ms(),
        text: String::new(),
        next: 0,
        last: Instant::now(),
        cancelled: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SessionId;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn chunks_apply_once_in_order_and_within_bounds() {
        let mut m = Streams::default();
        let limits = StreamLimits {
            per_room: 1,
            max_bytes: 5,
            stall: Duration::from_secs(1),
        };
        let p = SessionAddr::here(SessionId(1));
        m.can_start("a", &limits).unwrap();
        m.live.insert("a".into(), live(p.clone(), raw("{}"), None));
        assert_eq!(m.can_start("a", &limits), Err(Refusal::Exists));
        assert_eq!(m.can_start("b", &limits), Err(Refusal::Full(1)));
        assert!(m.append("a", 0, "he"));
        assert!(
            !m.append("a", 0, "he"),
            "a chunk seen before is not applied twice"
        );
        assert!(!m.append("a", 2, "x"), "a chunk after a gap is not applied");
        assert!(m.append("a", 1, "llo"));
        let s = m.owned("a", &p).unwrap();
        assert_eq!((s.text.as_str(), s.next), ("hello", 2));
        assert_eq!(Streams::fits(s, "!", &limits), Err(Refusal::TooLarge(5)));
        let other = SessionAddr::here(SessionId(2));
        assert_eq!(m.owned("a", &other).err(), Some(Refusal::NotProducer));
        assert_eq!(m.owned("z", &p).err(), Some(Refusal::Unknown));
    }

    #[test]
    fn ids_and_frames() {
        assert!(valid_id("r-1.a:b@c_d"));
        for bad in ["", "a b", "é", &"x".repeat(65), "a\"b"] {
            assert!(!valid_id(bad), "{bad}");
        }
        let room = RoomName::parse("r").unwrap();
        let mut s = live(
            SessionAddr::here(SessionId(1)),
            raw(r#"{"user":"u","name":"U"}"#),
            None,
        );
        s.text = "a\"b".into();
        let f = start_frame(&room, "s1", &s);
        let v: serde_json::Value = serde_json::from_slice(&f).unwrap();
        assert_eq!(v["text"], "a\"b");
        assert_eq!(v["next"], 0);
        let d: serde_json::Value = serde_json::from_str(message_data("s1", &s).get()).unwrap();
        assert_eq!(d, serde_json::json!({"stream":"s1","text":"a\"b"}));
    }
}
