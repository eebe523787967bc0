//! WebRTC signaling: `signal {to, room, kind, data}` relayed to exactly one
//! session that shares `room` with the sender. Nothing is stored; the Hub
//! routes it (`hub/signal.rs`), through the target node's channel when the
//! session is on another node.

use crate::error::ErrorCode;
use crate::ids::{RoomName, SessionAddr};
use serde::Serialize;
use serde_json::value::RawValue;

/// Largest `data` of a `signal` (an SDP offer with many codecs is ~10 KB).
pub const MAX_SIGNAL_DATA: usize = 32 * 1024;

/// What a signal carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Offer,
    Answer,
    Ice,
    Bye,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "offer" => Kind::Offer,
            "answer" => Kind::Answer,
            "ice" => Kind::Ice,
            "bye" => Kind::Bye,
            _ => return None,
        })
    }
}

/// A parsed `signal` frame.
#[derive(Debug)]
pub struct Signal {
    pub to: SessionAddr,
    pub room: RoomName,
    pub kind: Kind,
    /// Any JSON (`null` when a `bye` has none).
    pub data: Box<RawValue>,
}

/// The raw fields of a `signal`, read by `protocol::parse`.
pub struct SignalFields<'a> {
    pub to: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub data: Option<&'a RawValue>,
}

impl Signal {
    pub fn parse(room: RoomName, f: &SignalFields) -> Result<Signal, (ErrorCode, String)> {
        let bad = |m: &str| (ErrorCode::BadRequest, m.to_string());
        let to =
            f.to.ok_or_else(|| bad("signal needs `to` (a session id)"))?;
        let to = SessionAddr::parse(to)
            .ok_or_else(|| bad("`to` is not a session id (s<n> or s<n>@<node>)"))?;
        let kind = f
            .kind
            .and_then(Kind::parse)
            .ok_or_else(|| bad("signal needs `kind`: offer, answer, ice or bye"))?;
        let data = match f.data {
            Some(d) => d,
            None if kind == Kind::Bye => RawValue::NULL,
            None => return Err(bad("signal needs `data` (but for kind bye)")),
        };
        if data.get().len() > MAX_SIGNAL_DATA {
            return Err((
                ErrorCode::TooLarge,
                format!("signal data is over {MAX_SIGNAL_DATA} bytes"),
            ));
        }
        if let Some(why) = crate::protocol::data_problem(data.get()) {
            return Err((ErrorCode::BadRequest, why));
        }
        Ok(Signal {
            to,
            room,
            kind,
            data: data.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorCode;
    use crate::protocol::{parse, ClientFrame};

    fn code(text: &str) -> ErrorCode {
        parse(text.as_bytes()).unwrap_err().code
    }

    #[test]
    fn signals_are_read_into_types_or_refused_with_a_code() {
        let ok = parse(br#"{"type":"signal","to":"s3@b","room":"r","kind":"ice","data":{"c":1}}"#)
            .unwrap();
        let ClientFrame::Signal(s) = ok.frame else {
            panic!("not a signal")
        };
        assert_eq!(s.to.to_string(), "s3@b");
        let bye = parse(br#"{"type":"signal","to":"s3","room":"r","kind":"bye"}"#).unwrap();
        assert!(matches!(bye.frame, ClientFrame::Signal(ref s) if s.data.get() == "null"));
        let big = format!(
            r#"{{"type":"signal","to":"s1","room":"r","kind":"offer","data":"{}"}}"#,
            "x".repeat(super::MAX_SIGNAL_DATA)
        );
        assert_eq!(code(&big), ErrorCode::TooLarge);
        for bad in [
            r#"{"type":"signal","room":"r","kind":"ice","data":1}"#,
            r#"{"type":"signal","to":"bob","room":"r","kind":"ice","data":1}"#,
            r#"{"type":"signal","to":"s1","room":"r","kind":"hello","data":1}"#,
            r#"{"type":"signal","to":"s1","room":"r","kind":"offer"}"#,
            r#"{"type":"signal","to":"s1","room":"r","kind":"ice","data":1,"seq":2}"#,
            r#"{"type":"signal","to":"s1","kind":"ice","data":1}"#,
            r#"{"type":"signal","to":7,"room":"r","kind":"ice","data":1}"#,
        ] {
            assert_eq!(code(bad), ErrorCode::BadRequest, "{bad}");
        }
        assert_eq!(
            code(r#"{"type":"signal","to":"s1","room":"a b","kind":"ice","data":1}"#),
            ErrorCode::InvalidRoom
        );
    }
}
