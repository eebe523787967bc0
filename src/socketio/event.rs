//! A server frame as the Socket.IO event a client gets, encoded once per
//! fan-out rather than once per connection.
//!
//! A room that fans a frame out to its members hands each queue the
//! encoding its flavor asks for (`outbox::Fanout`): our frame for native
//! sessions, `42["<type>",<frame>]` for Socket.IO ones, and
//! `42["<type>",<frame>,"<offset>"]` for Socket.IO ones that recover
//! (they have a `pid`). The offset names the message itself,
//! `"<seq>:<room>"`, so it is the same for every recipient and the bytes are
//! shared as the native frame is. The engine recognises an encoded event by
//! its first bytes (a frame of ours starts with `{`) and sends it as it is.

use bytes::{BufMut, Bytes, BytesMut};
use std::sync::LazyLock;

/// The first bytes of an encoded event (Engine.IO message, Socket.IO EVENT).
const HEAD: &[u8] = b"42[\"";

/// Whether `b` is an event this module encoded (else: one of our frames).
pub fn is_encoded(b: &[u8]) -> bool {
    b.starts_with(HEAD)
}

/// Whether a frame holds a `{"$binary":…}` object (an attachment to be).
pub fn has_binary(frame: &[u8]) -> bool {
    static FINDER: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(br#""$binary""#));
    FINDER.find(frame).is_some()
}

/// Frames the engine must see as frames: the ones recovery reads for a
/// room's position, and those with binaries (sent as attachments).
fn per_connection(ty: &str, frame: &[u8]) -> bool {
    matches!(ty, "room:joined" | "room:left") || has_binary(frame)
}

/// Rooms every session joins by itself carry no offset (not recovered).
pub fn personal(room: &str) -> bool {
    room.starts_with("user:")
}

/// The room and `seq` of a `message:receive` frame as the rooms write it,
/// `{"type":"message:receive","room":"<room>","seq":<n>,…`, read without a
/// parse (this runs for every delivery); `None` for any other shape, which
/// is then parsed. The room is as it is in the frame, with no escapes.
pub fn message_head(frame: &[u8]) -> Option<(&str, u64)> {
    let rest = frame.strip_prefix(br#"{"type":"message:receive","room":""#)?;
    let end = memchr::memchr(b'"', rest)?;
    let room = &rest[..end];
    if room.contains(&b'\\') {
        return None;
    }
    let rest = rest[end..].strip_prefix(br#"","seq":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 || !matches!(rest.get(digits), Some(b',' | b'}')) {
        return None;
    }
    let seq = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    Some((std::str::from_utf8(room).ok()?, seq))
}

/// The offset of a room message, and the room message an offset names.
pub fn offset_of(seq: u64, room: &str) -> String {
    format!("{seq}:{room}")
}

pub fn parse_offset(s: &str) -> Option<(u64, &str)> {
    let (seq, room) = s.split_once(':')?;
    Some((seq.parse().ok()?, room)).filter(|(_, r)| !r.is_empty())
}

/// The event for `frame`, with the offset when `offsets` (a recovering
/// connection) and the frame is a room message; `None` for a frame each
/// connection must handle itself.
pub fn encode(frame: &[u8], offsets: bool) -> Option<Bytes> {
    let ty = crate::protocol::event_name(frame);
    if per_connection(ty, frame) {
        return None;
    }
    let head = if offsets && ty == "message:receive" {
        message_head(frame).filter(|(room, _)| !personal(room))
    } else {
        None
    };
    Some(wrap(ty, frame, head))
}

/// `42["<type>",<frame>(,"<seq>:<room>")]` in one buffer. `ty` is plain
/// (protocol::event_name lets only [A-Za-z0-9_:.-] through), and so is the
/// room (`message_head` takes none with an escape).
pub fn wrap(ty: &str, frame: &[u8], offset: Option<(&str, u64)>) -> Bytes {
    let mut m = BytesMut::with_capacity(frame.len() + ty.len() + 48);
    m.extend_from_slice(HEAD);
    m.extend_from_slice(ty.as_bytes());
    m.extend_from_slice(b"\",");
    m.extend_from_slice(frame);
    if let Some((room, seq)) = offset {
        m.put_u8(b',');
        m.put_u8(b'"');
        push_decimal(&mut m, seq);
        m.put_u8(b':');
        m.extend_from_slice(room.as_bytes());
        m.put_u8(b'"');
    }
    m.put_u8(b']');
    m.freeze()
}

/// The room message an encoded event carries an offset for, read from the
/// offset at its end (`,"<seq>:<room>"]`: room names hold no `"`).
pub fn delivered(event: &[u8]) -> Option<(&str, u64)> {
    let tail = event.strip_suffix(b"\"]")?;
    if !event.starts_with(br#"42["message:receive","#) {
        return None;
    }
    let from = memchr::memrchr(b'"', tail)? + 1;
    let (seq, room) = parse_offset(std::str::from_utf8(&tail[from..]).ok()?)?;
    Some((room, seq))
}

/// `n` in decimal, without an allocation.
fn push_decimal(m: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    m.put_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_heads_are_read_without_a_parse_or_left_to_it() {
        let f = br#"{"type":"message:receive","room":"general","seq":58,"from":{}}"#;
        assert_eq!(message_head(f), Some(("general", 58)));
        // Escapes, another order, a bad number: left to the parser.
        let escaped = br#"{"type":"message:receive","room":"a\"b","seq":1}"#;
        assert_eq!(message_head(escaped), None);
        let other = br#"{"type":"message:receive","seq":1,"room":"r"}"#;
        assert_eq!(message_head(other), None);
        let bad = br#"{"type":"message:receive","room":"r","seq":1x}"#;
        assert_eq!(message_head(bad), None);
        assert_eq!(
            message_head(br#"{"type":"message:receive","room":"r","seq":}"#),
            None
        );
    }

    #[test]
    fn events_are_encoded_once_with_the_offset_of_the_message() {
        let f = br#"{"type":"message:receive","room":"general","seq":58,"data":1}"#;
        let plain = encode(f, false).unwrap();
        assert_eq!(
            &plain[..],
            br#"42["message:receive",{"type":"message:receive","room":"general","seq":58,"data":1}]"#
        );
        let with = encode(f, true).unwrap();
        assert!(with.ends_with(br#"},"58:general"]"#), "{with:?}");
        assert!(is_encoded(&with) && !is_encoded(f));
        assert_eq!(delivered(&with), Some(("general", 58)));
        assert_eq!(delivered(&plain), None, "no offset, nothing delivered");
        assert_eq!(parse_offset("58:general"), Some((58, "general")));
        assert_eq!(parse_offset(&offset_of(7, "a:b")), Some((7, "a:b")));
        assert_eq!(parse_offset("58"), None);
        assert_eq!(parse_offset("x:general"), None);
        // Personal rooms and other frames carry none.
        let own = br#"{"type":"message:receive","room":"user:u","seq":3}"#;
        assert!(encode(own, true).unwrap().ends_with(b"}]"));
        let p = br#"{"type":"presence:update","user":"u"}"#;
        assert_eq!(
            &encode(p, true).unwrap()[..],
            br#"42["presence:update",{"type":"presence:update","user":"u"}]"#
        );
        // What recovery or attachments need per connection stays a frame.
        assert!(encode(br#"{"type":"room:joined","room":"r","seq":1}"#, true).is_none());
        assert!(encode(br#"{"type":"m","data":{"$binary":"aGk="}}"#, false).is_none());
    }
}
