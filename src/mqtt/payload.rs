//! MQTT payloads to and from the JSON wire protocol.
//!
//! From the broker: a payload that is UTF-8 JSON is forwarded as that JSON
//! (kept as raw text, never re-encoded); other UTF-8 text becomes a JSON
//! string; anything else is base64 with `"binary":true`. JSON that a strict
//! receiver could not parse (see [`data_problem`]: nested too deep, numbers
//! beyond a double, lone surrogate escapes) is forwarded as a string instead.
//!
//! From clients: a JSON string is published as its text (no quotes), any other
//! JSON value as its JSON text, and with `"binary":true` the string is base64
//! and published as the decoded bytes.

use crate::protocol::data_problem;
use base64::Engine;
use serde_json::value::RawValue;

/// A payload as it appears in `mqtt:message`.
#[derive(Debug)]
pub struct Rendered {
    pub payload: Box<RawValue>,
    pub binary: bool,
}

fn json_string(s: &str) -> Box<RawValue> {
    // Serialising a &str cannot fail.
    let text = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    RawValue::from_string(text).unwrap_or_else(|_| null())
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".into()).expect("null is JSON")
}

/// Renders bytes received from the broker.
pub fn render(bytes: &[u8]) -> Rendered {
    let Ok(text) = std::str::from_utf8(bytes) else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        return Rendered {
            payload: json_string(&b64),
            binary: true,
        };
    };
    let trimmed = text.trim();
    let as_json = !trimmed.is_empty()
        && serde_json::from_str::<&RawValue>(trimmed).is_ok()
        && data_problem(trimmed).is_none();
    let payload = if as_json {
        RawValue::from_string(trimmed.to_string()).unwrap_or_else(|_| json_string(text))
    } else {
        json_string(text)
    };
    Rendered {
        payload,
        binary: false,
    }
}

/// The bytes to publish for a client's `payload` (already valid JSON).
pub fn encode(payload: &RawValue, binary: bool) -> Result<Vec<u8>, &'static str> {
    let text = payload.get();
    if binary {
        let s: String = serde_json::from_str(text)
            .map_err(|_| "with \"binary\":true, payload must be a base64 string")?;
        return base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(|_| "payload is not valid base64");
    }
    if text.starts_with('"') {
        let s: String = serde_json::from_str(text).map_err(|_| "payload is not a valid string")?;
        return Ok(s.into_bytes());
    }
    Ok(text.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MAX_DATA_DEPTH;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn json_text_and_binary_payloads() {
        let r = render(br#"{"t": 21.5}"#);
        assert_eq!((r.payload.get(), r.binary), (r#"{"t": 21.5}"#, false));
        let r = render(b"42");
        assert_eq!(r.payload.get(), "42");
        let r = render(b"hello world");
        assert_eq!((r.payload.get(), r.binary), (r#""hello world""#, false));
        let r = render(b"");
        assert_eq!(r.payload.get(), r#""""#);
        let r = render(b"say \"hi\"\n");
        assert_eq!(r.payload.get(), r#""say \"hi\"\n""#);
        let r = render(&[0xff, 0x00, 0x10]);
        assert_eq!((r.payload.get(), r.binary), (r#""/wAQ""#, true));
        let deep = "[".repeat(MAX_DATA_DEPTH + 1) + &"]".repeat(MAX_DATA_DEPTH + 1);
        let r = render(deep.as_bytes());
        assert!(r.payload.get().starts_with('"') && !r.binary);
        let r = render(br#""\ud800""#);
        assert!(serde_json::from_str::<String>(r.payload.get()).is_ok());
        let r = render(br#"{"t":1e999999}"#);
        assert_eq!(r.payload.get(), r#""{\"t\":1e999999}""#);
    }

    #[test]
    fn client_payloads_to_bytes() {
        assert_eq!(encode(&raw(r#""on""#), false).unwrap(), b"on");
        assert_eq!(encode(&raw(r#"{"a":1}"#), false).unwrap(), br#"{"a":1}"#);
        assert_eq!(encode(&raw("null"), false).unwrap(), b"null");
        assert_eq!(
            encode(&raw(r#""/wAQ""#), true).unwrap(),
            vec![0xff, 0, 0x10]
        );
        assert!(encode(&raw(r#""not base64!""#), true).is_err());
        assert!(encode(&raw("12"), true).is_err());
        let back = render(&encode(&raw(r#""/wAQ""#), true).unwrap());
        assert_eq!((back.payload.get(), back.binary), (r#""/wAQ""#, true));
    }
}
