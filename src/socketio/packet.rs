//! Engine.IO v4 packets: parsed once from untrusted input into [`Packet`],
//! encoded for a WebSocket frame or a long-polling payload.
//!
//! A text packet is its type digit followed by its data (`4hello`); over
//! WebSocket a binary message is the raw bytes of a binary frame, over
//! long-polling it is `b` followed by base64. A polling payload joins
//! packets with the record separator `\x1e`.

use base64::Engine as _;
use bytes::Bytes;

/// The record separator between packets of a long-polling payload.
pub const SEPARATOR: u8 = 0x1e;

/// A message's data: text or binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Text(String),
    Binary(Bytes),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Server only: the handshake (JSON).
    Open(String),
    Close,
    Ping(String),
    Pong(String),
    Message(Data),
    Upgrade,
    Noop,
}

/// Why a packet could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketError {
    Empty,
    UnknownType(char),
    BadBase64,
    NotUtf8,
    /// A packet only the server may send (`open`).
    ServerOnly,
}

impl std::fmt::Display for PacketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PacketError::Empty => write!(f, "empty packet"),
            PacketError::UnknownType(c) => write!(f, "unknown packet type {c:?}"),
            PacketError::BadBase64 => write!(f, "binary packet is not valid base64"),
            PacketError::NotUtf8 => write!(f, "payload is not valid UTF-8"),
            PacketError::ServerOnly => write!(f, "open packets are sent by the server only"),
        }
    }
}

/// A text packet as a client sends it (WebSocket text frame, or one record
/// of a polling payload that does not start with `b`).
pub fn parse_text(s: &str) -> Result<Packet, PacketError> {
    let mut chars = s.chars();
    let ty = chars.next().ok_or(PacketError::Empty)?;
    let data = chars.as_str();
    Ok(match ty {
        '0' => return Err(PacketError::ServerOnly),
        '1' => Packet::Close,
        '2' => Packet::Ping(data.to_string()),
        '3' => Packet::Pong(data.to_string()),
        '4' => Packet::Message(Data::Text(data.to_string())),
        '5' => Packet::Upgrade,
        '6' => Packet::Noop,
        c => return Err(PacketError::UnknownType(c)),
    })
}

/// A long-polling request body: every packet, or the first problem.
pub fn parse_payload(body: &[u8]) -> Result<Vec<Packet>, PacketError> {
    let text = std::str::from_utf8(body).map_err(|_| PacketError::NotUtf8)?;
    text.split(SEPARATOR as char)
        .map(|record| match record.strip_prefix('b') {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(|v| Packet::Message(Data::Binary(Bytes::from(v))))
                .map_err(|_| PacketError::BadBase64),
            None => parse_text(record),
        })
        .collect()
}

impl Packet {
    fn type_digit(&self) -> char {
        match self {
            Packet::Open(_) => '0',
            Packet::Close => '1',
            Packet::Ping(_) => '2',
            Packet::Pong(_) => '3',
            Packet::Message(_) => '4',
            Packet::Upgrade => '5',
            Packet::Noop => '6',
        }
    }

    /// The packet as a WebSocket frame: `Ok` text, `Err` binary.
    pub fn ws_frame(&self) -> Result<Bytes, Bytes> {
        match self {
            Packet::Message(Data::Binary(b)) => Err(b.clone()),
            Packet::Message(Data::Text(t)) => Ok(Bytes::from(format!("4{t}"))),
            Packet::Open(d) | Packet::Ping(d) | Packet::Pong(d) => {
                Ok(Bytes::from(format!("{}{d}", self.type_digit())))
            }
            p => Ok(Bytes::from(p.type_digit().to_string())),
        }
    }

    /// Appends the packet to a long-polling payload.
    fn put_polling(&self, out: &mut Vec<u8>) {
        match self {
            Packet::Message(Data::Binary(b)) => {
                out.push(b'b');
                out.extend_from_slice(
                    base64::engine::general_purpose::STANDARD
                        .encode(b)
                        .as_bytes(),
                );
            }
            p => match p.ws_frame() {
                Ok(t) | Err(t) => out.extend_from_slice(&t),
            },
        }
    }
}

/// A long-polling response body: the packets joined by `\x1e`.
pub fn encode_payload<'a>(packets: impl IntoIterator<Item = &'a Packet>) -> Bytes {
    let mut out = Vec::new();
    for (i, p) in packets.into_iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        p.put_polling(&mut out);
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let ps = vec![
            Packet::Message(Data::Text("hello €".into())),
            Packet::Message(Data::Binary(Bytes::from_static(&[1, 2, 3, 4]))),
            Packet::Ping(String::new()),
            Packet::Noop,
        ];
        let body = encode_payload(&ps);
        assert_eq!(&body[..], b"4hello \xe2\x82\xac\x1ebAQIDBA==\x1e2\x1e6");
        assert_eq!(parse_payload(&body).unwrap(), ps);
    }

    #[test]
    fn bad_packets_are_refused() {
        assert_eq!(parse_text(""), Err(PacketError::Empty));
        assert_eq!(parse_text("9x"), Err(PacketError::UnknownType('9')));
        assert_eq!(parse_text("0{}"), Err(PacketError::ServerOnly));
        assert_eq!(parse_payload(b"4a\x1e"), Err(PacketError::Empty));
        assert_eq!(parse_payload(b"b!!"), Err(PacketError::BadBase64));
        assert_eq!(parse_payload(b"4\xff"), Err(PacketError::NotUtf8));
        assert_eq!(parse_text("2probe"), Ok(Packet::Ping("probe".into())));
    }
}
