//! The `doc:*` frames: client frames parsed once into [`DocRequest`], server
//! frames encoded once into shared bytes. docs/PROTOCOL.md documents them.

use super::core::{DocError, DocFrame};
use crate::error::ErrorCode;
use crate::ids::RoomName;
use crate::ot::Op;
use crate::protocol::{ClientFrame, FrameError, Request};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;

/// Every client frame type of documents.
pub const DOC_TYPES: [&str; 4] = ["doc:open", "doc:op", "doc:close", "doc:cursor"];

/// Longest client id (`cid`).
pub const MAX_CID_LEN: usize = 64;

/// A parsed `doc:*` client frame. Document names follow the room name rules.
#[derive(Debug)]
pub enum DocRequest {
    Open {
        doc: RoomName,
        rev: Option<u64>,
    },
    /// `op` is checked by [`Op::parse`] where the refusal can name `seq`.
    Op {
        doc: RoomName,
        rev: u64,
        cid: Arc<str>,
        seq: u64,
        op: Box<RawValue>,
    },
    Close {
        doc: RoomName,
    },
    Cursor {
        doc: RoomName,
        cid: Arc<str>,
        rev: Option<u64>,
        anchor: u64,
        head: u64,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    id: Option<String>,
    doc: Option<String>,
    rev: Option<u64>,
    cid: Option<String>,
    seq: Option<u64>,
    #[serde(borrow)]
    op: Option<&'a RawValue>,
    anchor: Option<u64>,
    head: Option<u64>,
}

fn err(code: ErrorCode, message: impl Into<String>, id: &Option<String>) -> FrameError {
    FrameError {
        code,
        message: message.into(),
        id: id.clone(),
    }
}

fn valid_cid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'@'))
}

/// Parses `text` if it is a `doc:*` frame; `None` leaves it to the general
/// parser. Frames that cannot be documents cost one byte scan.
pub fn parse(text: &[u8]) -> Option<Result<Request, FrameError>> {
    Some(crate::protocol::parse_family::<Wire>(text, "doc:")?.and_then(build))
}

impl crate::protocol::Typed for Wire<'_> {
    fn frame_type(&self) -> &str {
        &self.ty
    }
}

fn build(w: Wire) -> Result<Request, FrameError> {
    let id = w.id.clone();
    crate::protocol::check_id(&id)?;
    let ty = w.ty.as_ref();
    let allowed: &[&str] = match ty {
        "doc:open" => &["rev"],
        "doc:op" => &["rev", "cid", "seq", "op"],
        "doc:close" => &[],
        "doc:cursor" => &["rev", "cid", "anchor", "head"],
        other => return Err(crate::protocol::unknown_type(other, "doc", &DOC_TYPES, &id)),
    };
    let fields = [
        ("rev", w.rev.is_some()),
        ("cid", w.cid.is_some()),
        ("seq", w.seq.is_some()),
        ("op", w.op.is_some()),
        ("anchor", w.anchor.is_some()),
        ("head", w.head.is_some()),
    ];
    crate::protocol::check_fields(ty, allowed, &fields, &id)?;
    let need = |name: &str| err(ErrorCode::BadRequest, format!("{ty} needs `{name}`"), &id);
    let raw = w.doc.as_deref().ok_or_else(|| need("doc"))?;
    let doc = RoomName::parse(raw).ok_or_else(|| {
        err(
            ErrorCode::InvalidRoom,
            "document names are 1-64 characters from A-Z a-z 0-9 _ - . : @",
            &id,
        )
    })?;
    let cid = |w: &Wire| -> Result<Arc<str>, FrameError> {
        let c = w.cid.as_deref().ok_or_else(|| need("cid"))?;
        if !valid_cid(c) {
            let msg = "cid must be 1-64 characters from A-Z a-z 0-9 _ - . : @";
            return Err(err(ErrorCode::BadRequest, msg, &id));
        }
        Ok(Arc::from(c))
    };
    let frame = match ty {
        "doc:open" => DocRequest::Open { doc, rev: w.rev },
        "doc:op" => DocRequest::Op {
            rev: w.rev.ok_or_else(|| need("rev"))?,
            cid: cid(&w)?,
            seq: w.seq.ok_or_else(|| need("seq"))?,
            op: w.op.ok_or_else(|| need("op"))?.to_owned(),
            doc,
        },
        "doc:close" => DocRequest::Close { doc },
        _ => {
            let anchor = w.anchor.ok_or_else(|| need("anchor"))?;
            DocRequest::Cursor {
                cid: cid(&w)?,
                rev: w.rev,
                head: w.head.unwrap_or(anchor),
                anchor,
                doc,
            }
        }
    };
    Ok(Request {
        frame: ClientFrame::Doc(frame),
        id,
    })
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum Frame<'a> {
    #[serde(rename = "doc:snapshot")]
    Snapshot {
        doc: &'a str,
        rev: u64,
        text: &'a str,
    },
    #[serde(rename = "doc:op")]
    Op {
        doc: &'a str,
        rev: u64,
        cid: &'a str,
        seq: u64,
        user: &'a str,
        op: &'a Op,
    },
    #[serde(rename = "doc:ack")]
    Ack { doc: &'a str, rev: u64, seq: u64 },
    #[serde(rename = "doc:cursor")]
    Cursor {
        doc: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        rev: Option<u64>,
        cid: &'a str,
        user: &'a str,
        name: &'a str,
        anchor: Option<u64>,
        head: Option<u64>,
    },
    #[serde(rename = "error")]
    Error {
        code: &'static str,
        message: &'a str,
        doc: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

fn encode(f: &Frame) -> Bytes {
    match serde_json::to_vec(f) {
        Ok(v) => Bytes::from(v),
        Err(_) => {
            Bytes::from_static(br#"{"type":"error","code":"internal","message":"encoding failed"}"#)
        }
    }
}

/// The `doc:op` frame of a committed op (`rev` is the revision it produced).
pub fn op_frame(doc: &str, rev: u64, cid: &str, seq: u64, user: &str, op: &Op) -> Bytes {
    encode(&Frame::Op {
        doc,
        rev,
        cid,
        seq,
        user,
        op,
    })
}

/// Encodes a frame from the document core.
pub fn frame(doc: &str, f: &DocFrame) -> Bytes {
    match f {
        DocFrame::Snapshot { rev, text } => encode(&Frame::Snapshot {
            doc,
            rev: *rev,
            text,
        }),
        DocFrame::Op(c) => c.frame.clone(),
        DocFrame::Ack { rev, seq } => encode(&Frame::Ack {
            doc,
            rev: *rev,
            seq: *seq,
        }),
        DocFrame::Error(e) => error(doc, e, None),
    }
}

/// An `error` frame naming the document (and the op's `seq`, if any).
pub fn error(doc: &str, e: &DocError, reference: Option<&str>) -> Bytes {
    crate::metrics::METRICS.error(e.code);
    encode(&Frame::Error {
        code: e.code.as_str(),
        message: &e.message,
        doc,
        seq: e.seq,
        reference,
        retry_after_ms: e.retry_after_ms,
    })
}

/// A `doc:cursor` frame; `None` positions mean the cursor is gone.
pub fn cursor(
    doc: &str,
    rev: Option<u64>,
    cid: &str,
    user: &str,
    name: &str,
    at: Option<(u64, u64)>,
) -> Bytes {
    encode(&Frame::Cursor {
        doc,
        rev,
        cid,
        user,
        name,
        anchor: at.map(|a| a.0),
        head: at.map(|a| a.1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> DocRequest {
        match parse(text.as_bytes()) {
            Some(Ok(Request {
                frame: ClientFrame::Doc(d),
                ..
            })) => d,
            other => panic!("{text}: {:?}", other.map(|r| r.map(|q| q.id))),
        }
    }

    fn code(text: &str) -> ErrorCode {
        match parse(text.as_bytes()) {
            Some(Err(e)) => e.code,
            _ => panic!("{text} was not refused"),
        }
    }

    #[test]
    fn parses_doc_frames() {
        assert!(matches!(
            req(r#"{"type":"doc:open","doc":"d1","rev":12}"#),
            DocRequest::Open { rev: Some(12), .. }
        ));
        match req(r#"{"type":"doc:op","doc":"d1","rev":3,"cid":"c1","seq":7,"op":[1,"x"]}"#) {
            DocRequest::Op { rev, seq, op, .. } => {
                assert_eq!((rev, seq, op.get()), (3, 7, r#"[1,"x"]"#))
            }
            d => panic!("{d:?}"),
        }
        assert!(matches!(
            req(r#"{"type":"doc:cursor","doc":"d1","cid":"c1","anchor":4}"#),
            DocRequest::Cursor {
                anchor: 4,
                head: 4,
                ..
            }
        ));
        assert!(matches!(
            req(r#"{ "doc" : "d1", "type" : "doc:close" }"#),
            DocRequest::Close { .. }
        ));
    }

    #[test]
    fn leaves_other_frames_alone_and_refuses_bad_doc_frames() {
        assert!(parse(br#"{"type":"ping"}"#).is_none());
        assert!(parse(br#"{"type":"message:send","room":"r","data":"doc:x \"doc:y"}"#).is_none());
        assert!(
            parse(br#"{"type":"doc:open""#).is_none(),
            "bad JSON is the general parser's"
        );
        assert_eq!(
            code(r#"{"type":"doc:nope","doc":"d"}"#),
            ErrorCode::UnknownType
        );
        assert_eq!(code(r#"{"type":"doc:open"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(r#"{"type":"doc:open","doc":"a b"}"#),
            ErrorCode::InvalidRoom
        );
        assert_eq!(
            code(r#"{"type":"doc:open","doc":"d","seq":1}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"doc:open","doc":"d","x":1}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"doc:op","doc":"d","rev":1,"seq":1,"op":[]}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"doc:op","doc":"d","rev":-1,"cid":"c","seq":1,"op":[]}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"doc:op","doc":"d","rev":1,"cid":"c c","seq":1,"op":[]}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"doc:op","doc":"d","rev":1,"cid":"c","seq":1.5,"op":[]}"#),
            ErrorCode::BadRequest
        );
        let e = parse(br#"{"type":"doc:open","doc":"d","bogus":1,"id":"o1"}"#)
            .unwrap()
            .unwrap_err();
        assert_eq!(e.id.as_deref(), Some("o1"));
    }
}
