//! Connection state recovery, as socket.io-client v4.6+ asks for it.
//!
//! The `CONNECT` answer carries a private session id (`pid`), and every
//! room message (`message:receive` with a `seq`) goes out with one more
//! argument, an `offset`: this connection's count of such messages, as a
//! string. When the link drops (transport close, ping timeout), what the
//! connection knew is kept here under its `pid` for the recovery window. A
//! client coming back sends `pid` and its last `offset` in `CONNECT`; we then
//! know, per room, the last message it saw, and the new session rejoins each
//! room with `since` (our per-room history replays what it missed, once, in
//! order). The answer then repeats the `pid`, which the client reads as
//! `socket.recovered === true`.
//!
//! Per room the last `seq` sent is kept, and a ring of the last messages
//! sent (offset, room, seq): the first message after the client's offset in
//! a room is where its replay starts. An offset older than the ring, another
//! user, or an expired or unknown `pid`: no recovery, a new session.

use bytes::Bytes;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a connection is in one room.
#[derive(Clone, Debug, PartialEq)]
struct RoomPos {
    /// The room's name, shared by its entries in the ring.
    name: Arc<str>,
    epoch: Option<String>,
    /// The last `seq` sent to the client.
    seq: u64,
}

/// What one connection's session sent that recovery needs.
#[derive(Debug)]
pub struct Tracker {
    pub pid: String,
    pub user: String,
    /// Offsets handed out so far (the last one).
    offset: u64,
    rooms: HashMap<String, RoomPos>,
    ring: VecDeque<(u64, Arc<str>, u64)>,
    cap: usize,
}

/// The fields of a server frame that recovery reads.
#[derive(Deserialize)]
struct Seen<'a> {
    #[serde(borrow)]
    room: Option<std::borrow::Cow<'a, str>>,
    seq: Option<u64>,
    epoch: Option<String>,
    recovered: Option<bool>,
}

/// A room to rejoin: its name, the epoch the client's `seq` belongs to, and
/// the last `seq` the client saw.
#[derive(Debug, PartialEq)]
pub struct Rejoin {
    pub room: String,
    pub epoch: Option<String>,
    pub since: u64,
}

/// The room and `seq` of a `message:receive` frame as the rooms write it,
/// `{"type":"message:receive","room":"<room>","seq":<n>,…`, read without a
/// parse (this runs for every delivery); `None` for any other shape, which
/// is then parsed.
fn message_head(frame: &[u8]) -> Option<(&str, u64)> {
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

fn personal(room: &str) -> bool {
    room.starts_with("user:")
}

impl Tracker {
    pub fn new(pid: String, user: String, cap: usize) -> Tracker {
        Tracker {
            pid,
            user,
            offset: 0,
            rooms: HashMap::new(),
            ring: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// A rejoined room starts where the client was (its replay follows).
    pub fn resume(&mut self, r: &Rejoin) {
        let pos = RoomPos {
            name: Arc::from(r.room.as_str()),
            epoch: r.epoch.clone(),
            seq: r.since,
        };
        self.rooms.insert(r.room.clone(), pos);
    }

    /// A frame on its way to the client (`ty` is its type): the offset to
    /// send with it, for a room message.
    pub fn observe(&mut self, ty: &str, frame: &Bytes) -> Option<u64> {
        if !matches!(ty, "message:receive" | "room:joined" | "room:left") {
            return None;
        }
        if ty == "message:receive" {
            if let Some((room, seq)) = message_head(frame) {
                return self.delivered(room, seq);
            }
        }
        let seen: Seen = serde_json::from_slice(frame).ok()?;
        let room = seen.room?;
        if personal(&room) {
            // Every session joins its personal room by itself.
            return None;
        }
        match ty {
            "room:left" => {
                self.rooms.remove(room.as_ref());
                None
            }
            "room:joined" => {
                let known = self.rooms.contains_key(room.as_ref());
                // With `recovered:true` a replay follows: the position is
                // where it starts (a rejoin of ours), not the room's last seq.
                if !(known && seen.recovered == Some(true)) {
                    let pos = RoomPos {
                        name: Arc::from(room.as_ref()),
                        epoch: seen.epoch,
                        seq: seen.seq.unwrap_or(0),
                    };
                    self.rooms.insert(room.into_owned(), pos);
                }
                None
            }
            _ => self.delivered(&room, seen.seq?),
        }
    }

    /// A room message: its offset (none for a room not followed).
    fn delivered(&mut self, room: &str, seq: u64) -> Option<u64> {
        if personal(room) {
            return None;
        }
        let pos = self.rooms.get_mut(room)?;
        pos.seq = pos.seq.max(seq);
        self.offset += 1;
        if self.ring.len() == self.cap {
            self.ring.pop_front();
        }
        self.ring.push_back((self.offset, pos.name.clone(), seq));
        Some(self.offset)
    }

    /// The rooms to rejoin for a client whose last offset is `offset`;
    /// `None` if that cannot be known.
    pub fn plan(&self, offset: u64) -> Option<Vec<Rejoin>> {
        if offset > self.offset {
            return None;
        }
        // Every message after `offset` must still be in the ring.
        let oldest = self.ring.front().map_or(self.offset + 1, |e| e.0);
        if offset + 1 < oldest {
            return None;
        }
        let mut plan: Vec<Rejoin> = self
            .rooms
            .iter()
            .map(|(room, pos)| {
                let first_missed = self
                    .ring
                    .iter()
                    .find(|(o, r, _)| *o > offset && r.as_ref() == room.as_str());
                Rejoin {
                    room: room.clone(),
                    epoch: pos.epoch.clone(),
                    since: first_missed.map_or(pos.seq, |(_, _, seq)| seq - 1),
                }
            })
            .collect();
        plan.sort_by(|a, b| a.room.cmp(&b.room));
        Some(plan)
    }
}

/// What dropped connections left, by `pid`, for the recovery window.
#[derive(Default)]
pub struct Saved {
    map: Mutex<HashMap<String, (Instant, Tracker)>>,
    swept_at: Mutex<usize>,
}

impl Saved {
    pub fn save(&self, t: Tracker, window: Duration) {
        let now = Instant::now();
        let mut map = self.lock();
        let mut swept = self.swept_at.lock().unwrap_or_else(|e| e.into_inner());
        // Expired entries go once the map has doubled since the last sweep.
        if map.len() >= (*swept * 2).max(64) {
            map.retain(|_, (until, _)| *until > now);
            *swept = map.len();
        }
        map.insert(t.pid.clone(), (now + window, t));
    }

    /// The state kept for `pid` if it was `user`'s (once: a pid recovers
    /// one connection; another user presenting it takes nothing away).
    pub fn take(&self, pid: &str, user: &str) -> Option<Tracker> {
        let mut map = self.lock();
        if map.get(pid)?.1.user != user {
            return None;
        }
        let (until, t) = map.remove(pid)?;
        (until > Instant::now()).then_some(t)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Tracker)>> {
        // Every operation is one insert/remove/retain.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
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
        assert_eq!(
            message_head(br#"{"type":"message:receive","room":"r","seq":1x}"#),
            None
        );
        assert_eq!(
            message_head(br#"{"type":"message:receive","room":"r","seq":}"#),
            None
        );
        // Both ways give the same offsets.
        let mut t = Tracker::new("p".into(), "u".into(), 8);
        t.observe(
            "room:joined",
            &Bytes::from_static(br#"{"type":"room:joined","room":"r","seq":3}"#),
        );
        let fast = Bytes::from_static(br#"{"type":"message:receive","room":"r","seq":4,"data":1}"#);
        let slow = Bytes::from_static(br#"{"type":"message:receive","seq":5,"room":"r"}"#);
        assert_eq!(t.observe("message:receive", &fast), Some(1));
        assert_eq!(t.observe("message:receive", &slow), Some(2));
        assert_eq!(t.plan(1).unwrap()[0].since, 4);
    }

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    #[test]
    fn plans_start_after_the_last_offset_seen() {
        let mut t = Tracker::new("p".into(), "u".into(), 3);
        let j = r#"{"type":"room:joined","room":"a","seq":4,"epoch":"e","members":[]}"#;
        assert_eq!(t.observe("room:joined", &b(j)), None);
        let j = r#"{"type":"room:joined","room":"b","seq":0,"epoch":"f","members":[]}"#;
        t.observe("room:joined", &b(j));
        let p = r#"{"type":"room:joined","room":"user:u","seq":0,"epoch":"g","members":[]}"#;
        t.observe("room:joined", &b(p));
        let m = |room: &str, seq: u64| {
            b(&format!(
                r#"{{"type":"message:receive","room":"{room}","seq":{seq}}}"#
            ))
        };
        assert_eq!(t.observe("message:receive", &m("a", 5)), Some(1));
        assert_eq!(t.observe("message:receive", &m("b", 1)), Some(2));
        assert_eq!(t.observe("message:receive", &m("a", 6)), Some(3));
        assert_eq!(t.observe("message:receive", &m("user:u", 1)), None);
        let plan = t.plan(1).unwrap();
        assert_eq!(
            plan,
            vec![
                Rejoin {
                    room: "a".into(),
                    epoch: Some("e".into()),
                    since: 5
                },
                Rejoin {
                    room: "b".into(),
                    epoch: Some("f".into()),
                    since: 0
                },
            ]
        );
        assert_eq!(t.plan(3).unwrap()[0].since, 6);
        assert!(t.plan(4).is_none(), "an offset never handed out");
        // The ring holds 3: after a 4th, offset 0 cannot be planned.
        t.observe("message:receive", &m("b", 2));
        assert!(t.plan(0).is_none());
        assert!(t.plan(1).is_some());
        t.observe("room:left", &b(r#"{"type":"room:left","room":"a"}"#));
        assert_eq!(t.plan(4).unwrap().len(), 1);
    }

    #[test]
    fn saved_state_is_taken_once_and_expires() {
        let s = Saved::default();
        s.save(
            Tracker::new("p1".into(), "u".into(), 4),
            Duration::from_secs(60),
        );
        s.save(Tracker::new("p2".into(), "u".into(), 4), Duration::ZERO);
        assert!(s.take("p1", "v").is_none(), "another user's");
        assert!(s.take("p1", "u").is_some());
        assert!(s.take("p1", "u").is_none());
        assert!(s.take("p2", "u").is_none());
    }
}
