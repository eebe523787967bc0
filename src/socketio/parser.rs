//! Socket.IO v5 packets, carried in Engine.IO messages: parsed once from
//! untrusted text into [`SioPacket`], and encoded for the client.
//!
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`, e.g.
//! `2["room:join",{"room":"general"}]`, `0/admin,{"token":"…"}`,
//! `51-3["up",{"_placeholder":true,"num":0}]` followed by one binary message.
//! Binary attachments ([`fill_placeholders`], [`take_binaries`]) travel in
//! our JSON frames as `{"$binary":"<base64>"}`.

use base64::Engine as _;
use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::Value;

/// Most binary attachments one packet may announce.
pub const MAX_ATTACHMENTS: usize = 64;
/// The key of the object that stands for binary data in our frames.
pub const BINARY_KEY: &str = "$binary";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

impl Kind {
    fn digit(self) -> char {
        match self {
            Kind::Connect => '0',
            Kind::Disconnect => '1',
            Kind::Event => '2',
            Kind::Ack => '3',
            Kind::ConnectError => '4',
            Kind::BinaryEvent => '5',
            Kind::BinaryAck => '6',
        }
    }
}

/// A parsed packet. `data` is valid JSON of the shape its kind requires.
#[derive(Debug)]
pub struct SioPacket {
    pub kind: Kind,
    pub nsp: String,
    pub id: Option<u64>,
    pub attachments: usize,
    pub data: Option<Box<RawValue>>,
}

/// Event names the client may not send (they are the client's own events).
const RESERVED: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Reads a packet; the error says what is wrong.
pub fn parse(text: &str) -> Result<SioPacket, String> {
    let mut rest = text;
    let kind = match rest.as_bytes().first() {
        Some(b'0') => Kind::Connect,
        Some(b'1') => Kind::Disconnect,
        Some(b'2') => Kind::Event,
        Some(b'3') => Kind::Ack,
        Some(b'4') => Kind::ConnectError,
        Some(b'5') => Kind::BinaryEvent,
        Some(b'6') => Kind::BinaryAck,
        Some(_) => return Err("unknown packet type".into()),
        None => return Err("empty packet".into()),
    };
    rest = &rest[1..];
    let mut attachments = 0;
    if matches!(kind, Kind::BinaryEvent | Kind::BinaryAck) {
        let (n, after) = rest
            .split_once('-')
            .ok_or("binary packet without an attachment count")?;
        attachments = Some(n)
            .filter(|n| !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= MAX_ATTACHMENTS)
            .ok_or("bad attachment count")?;
        rest = after;
    }
    let mut nsp = "/".to_string();
    if rest.starts_with('/') {
        let (n, after) = match rest.find(',') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if n.len() > 256 {
            return Err("namespace is too long".into());
        }
        nsp = n.to_string();
        rest = after;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits > 0 {
        if digits > 15 {
            return Err("ack id is too long".into());
        }
        let id = rest[..digits].parse::<u64>().map_err(|_| "bad ack id")?;
        rest = &rest[digits..];
        Some(id)
    } else {
        None
    };
    let data = if rest.is_empty() {
        None
    } else {
        Some(
            serde_json::from_str::<Box<RawValue>>(rest)
                .map_err(|e| format!("packet data is not JSON: {e}"))?,
        )
    };
    check_shape(kind, data.as_deref())?;
    Ok(SioPacket {
        kind,
        nsp,
        id,
        attachments,
        data,
    })
}

/// The payload each packet type allows, as socket.io-parser checks it.
fn check_shape(kind: Kind, data: Option<&RawValue>) -> Result<(), String> {
    let first = data.map(|d| d.get().trim_start().as_bytes().first().copied());
    match kind {
        Kind::Connect => match first {
            None | Some(Some(b'{')) => Ok(()),
            _ => Err("CONNECT data must be an object".into()),
        },
        Kind::Disconnect => match first {
            None => Ok(()),
            _ => Err("DISCONNECT takes no data".into()),
        },
        Kind::ConnectError => Err("CONNECT_ERROR is sent by the server only".into()),
        Kind::Ack | Kind::BinaryAck => match first {
            Some(Some(b'[')) => Ok(()),
            _ => Err("ACK data must be an array".into()),
        },
        Kind::Event | Kind::BinaryEvent => {
            let args: Vec<&RawValue> = data
                .and_then(|d| serde_json::from_str(d.get()).ok())
                .ok_or("EVENT data must be an array")?;
            match args.first().map(|a| serde_json::from_str::<Value>(a.get())) {
                Some(Ok(Value::String(name))) if !RESERVED.contains(&name.as_str()) => Ok(()),
                Some(Ok(Value::String(_))) => Err("reserved event name".into()),
                Some(Ok(Value::Number(_))) => Ok(()),
                _ => Err("EVENT needs a name first".into()),
            }
        }
    }
}

/// Encodes a packet; `data` is JSON text.
pub fn encode(
    kind: Kind,
    nsp: &str,
    id: Option<u64>,
    attachments: usize,
    data: Option<&str>,
) -> String {
    let mut s = String::with_capacity(data.map_or(0, str::len) + 16);
    s.push(kind.digit());
    if matches!(kind, Kind::BinaryEvent | Kind::BinaryAck) {
        s.push_str(&attachments.to_string());
        s.push('-');
    }
    if nsp != "/" {
        s.push_str(nsp);
        s.push(',');
    }
    if let Some(id) = id {
        s.push_str(&id.to_string());
    }
    if let Some(d) = data {
        s.push_str(d);
    }
    s
}

/// Replaces every `{"_placeholder":true,"num":n}` with `{"$binary":"<base64>"}`
/// of attachment `n`. A placeholder naming no attachment is an error.
pub fn fill_placeholders(v: &mut Value, attachments: &[Bytes]) -> Result<(), String> {
    match v {
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|i| fill_placeholders(i, attachments)),
        Value::Object(map) => {
            if map.get("_placeholder") == Some(&Value::Bool(true)) {
                let n = map
                    .get("num")
                    .and_then(Value::as_u64)
                    .and_then(|n| attachments.get(n as usize))
                    .ok_or("placeholder names no attachment")?;
                *v = serde_json::json!({
                    BINARY_KEY: base64::engine::general_purpose::STANDARD.encode(n)
                });
                return Ok(());
            }
            map.values_mut()
                .try_for_each(|i| fill_placeholders(i, attachments))
        }
        _ => Ok(()),
    }
}

/// The reverse: every `{"$binary":"<base64>"}` becomes a placeholder, its
/// bytes appended to `out`. Objects whose base64 does not decode stay.
pub fn take_binaries(v: &mut Value, out: &mut Vec<Bytes>) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| take_binaries(i, out)),
        Value::Object(map) => {
            let decoded = match (map.len(), map.get(BINARY_KEY)) {
                (1, Some(Value::String(b64))) => {
                    base64::engine::general_purpose::STANDARD.decode(b64).ok()
                }
                _ => None,
            };
            match decoded {
                Some(bytes) if out.len() < MAX_ATTACHMENTS => {
                    *v = serde_json::json!({"_placeholder": true, "num": out.len()});
                    out.push(Bytes::from(bytes));
                }
                _ => map.values_mut().for_each(|i| take_binaries(i, out)),
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_parse() {
        let p = parse(r#"2["room:join",{"room":"general"}]"#).unwrap();
        assert_eq!((p.kind, p.nsp.as_str(), p.id), (Kind::Event, "/", None));
        let p = parse(r#"0/admin,{"token":"x"}"#).unwrap();
        assert_eq!((p.kind, p.nsp.as_str()), (Kind::Connect, "/admin"));
        let p = parse(r#"2/admin,12["a"]"#).unwrap();
        assert_eq!((p.nsp.as_str(), p.id), ("/admin", Some(12)));
        let p = parse(r#"51-3["up",{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!(
            (p.kind, p.attachments, p.id),
            (Kind::BinaryEvent, 1, Some(3))
        );
        assert!(parse("0").unwrap().data.is_none());
        assert!(parse("1").is_ok());
        assert!(parse("/").is_err());
        for bad in [
            "",
            "9",
            "2",
            "2{}",
            "2[]",
            r#"2["connect"]"#,
            "2[{}]",
            "0[]",
            "1{}",
            "3{}",
            "4{}",
            "5[\"a\"]",
            "5x-[\"a\"]",
            "5999-[\"a\"]",
            "2[\"a\"",
            "21234567890123456[\"a\"]",
            "5+1-[\"a\"]",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn binaries_round_trip() {
        let mut v: Value =
            serde_json::from_str(r#"["up",{"a":{"_placeholder":true,"num":0},"b":[1]}]"#).unwrap();
        fill_placeholders(&mut v, &[Bytes::from_static(b"\x00\x01")]).unwrap();
        assert_eq!(v[1]["a"]["$binary"], "AAE=");
        let mut out = Vec::new();
        take_binaries(&mut v, &mut out);
        assert_eq!(out, vec![Bytes::from_static(b"\x00\x01")]);
        assert_eq!(v[1]["a"]["num"], 0);
        let mut v: Value = serde_json::from_str(r#"[{"_placeholder":true,"num":1}]"#).unwrap();
        assert!(fill_placeholders(&mut v, &[]).is_err());
    }

    #[test]
    fn packets_encode() {
        assert_eq!(
            encode(Kind::Event, "/", None, 0, Some("[\"a\"]")),
            "2[\"a\"]"
        );
        assert_eq!(encode(Kind::Ack, "/x", Some(4), 0, Some("[]")), "3/x,4[]");
        assert_eq!(encode(Kind::BinaryEvent, "/", None, 2, Some("[]")), "52-[]");
        assert_eq!(encode(Kind::Disconnect, "/", None, 0, None), "1");
    }
}
