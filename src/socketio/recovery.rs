//! Connection state recovery, as socket.io-client v4.6+ asks for it.
//!
//! The `CONNECT` answer carries a private session id (`pid`), and every
//! room message (`message:receive` with a `seq`) goes out with one more
//! argument, an `offset`: the message's `"<seq>:<room>"`, the same for every
//! recipient, so a fan-out encodes the event once (`event.rs`). When the link drops (transport close, ping timeout), what the
//! connection knew is kept here under its `pid` for the recovery window. A
//! client coming back sends `pid` and its last `offset` in `CONNECT`; we then
//! know, per room, the last message it saw, and the new session rejoins each
//! room with `since` (our per-room history replays what it missed, once, in
//! order). The answer then repeats the `pid`, which the client reads as
//! `socket.recovered === true`.
//!
//! Per room the last `seq` sent is kept, and a ring of the last messages
//! sent (room, seq), in the order this connection sent them: the first
//! message after the client's offset in a room is where its replay starts. An offset older than the ring, another
//! user, or an expired or unknown `pid`: no recovery, a new session.

use super::event::{self, personal};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a connection is in one room.
#[derive(Clone, Debug, PartialEq)]
struct RoomPos {
    name: Arc<str>,
    epoch: Option<String>,
    /// The last `seq` sent to the client.
    seq: u64,
    /// Joined (rejoined on recovery); a room only watched is not.
    followed: bool,
}

/// What one connection's session sent that recovery needs.
#[derive(Debug)]
pub struct Tracker {
    pub pid: String,
    pub user: String,
    /// Every room a message came from, by the index the ring names it by.
    rooms: Vec<RoomPos>,
    index: HashMap<Arc<str>, u32>,
    /// The room of the last message (most come from the room before).
    last: u32,
    /// The last room messages sent, oldest first: room and `seq`.
    ring: VecDeque<(u32, u64)>,
    cap: usize,
    /// The ring has let messages go: "saw none" can no longer be planned.
    overflowed: bool,
}

/// A tracker as kept in Redis: its rooms (name, epoch, last `seq`,
/// followed) and ring.
#[derive(Serialize, Deserialize)]
struct Kept {
    rooms: Vec<(String, Option<String>, u64, bool)>,
    ring: Vec<(u32, u64)>,
    overflowed: bool,
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

/// The room message an offset names.
pub type Offset = (Arc<str>, u64);

impl Tracker {
    pub fn new(pid: String, user: String, cap: usize) -> Tracker {
        Tracker {
            pid,
            user,
            rooms: Vec::new(),
            index: HashMap::new(),
            last: 0,
            ring: VecDeque::new(),
            cap: cap.max(1),
            overflowed: false,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let kept = Kept {
            rooms: (self.rooms.iter())
                .map(|p| (p.name.to_string(), p.epoch.clone(), p.seq, p.followed))
                .collect(),
            ring: self.ring.iter().copied().collect(),
            overflowed: self.overflowed,
        };
        serde_json::to_vec(&kept).unwrap_or_default()
    }

    /// A tracker kept by another node (`None` if unreadable).
    fn decode(pid: String, user: String, cap: usize, bytes: &[u8]) -> Option<Tracker> {
        let kept: Kept = serde_json::from_slice(bytes).ok()?;
        let mut t = Tracker::new(pid, user, cap);
        for (name, epoch, seq, followed) in kept.rooms {
            let i = t.slot(&name) as usize;
            t.rooms[i] = RoomPos {
                name: t.rooms[i].name.clone(),
                epoch,
                seq,
                followed,
            };
        }
        let n = t.rooms.len() as u32;
        if kept.ring.iter().any(|(r, _)| *r >= n) {
            return None;
        }
        t.ring = kept.ring.into();
        t.overflowed = kept.overflowed;
        while t.ring.len() > t.cap {
            t.ring.pop_front();
            t.overflowed = true;
        }
        Some(t)
    }

    /// The index of `room` (a new slot, not followed, for a room never seen).
    fn slot(&mut self, room: &str) -> u32 {
        if self
            .rooms
            .get(self.last as usize)
            .is_some_and(|p| &*p.name == room)
        {
            return self.last;
        }
        let i = match self.index.get(room) {
            Some(i) => *i,
            None => {
                let name: Arc<str> = Arc::from(room);
                let i = self.rooms.len() as u32;
                self.rooms.push(RoomPos {
                    name: name.clone(),
                    epoch: None,
                    seq: 0,
                    followed: false,
                });
                self.index.insert(name, i);
                i
            }
        };
        self.last = i;
        i
    }

    fn follow(&mut self, room: &str, epoch: Option<String>, seq: u64) {
        let i = self.slot(room) as usize;
        self.rooms[i] = RoomPos {
            name: self.rooms[i].name.clone(),
            epoch,
            seq,
            followed: true,
        };
    }

    /// A rejoined room starts where the client was (its replay follows).
    pub fn resume(&mut self, r: &Rejoin) {
        self.follow(&r.room, r.epoch.clone(), r.since);
    }

    /// An event encoded for every recipient (`event.rs`) on its way to the
    /// client: a room message with an offset is recorded.
    pub fn observe_event(&mut self, ev: &[u8]) {
        if let Some((room, seq)) = event::delivered(ev) {
            self.record(room, seq);
        }
    }

    /// A frame on its way to the client (`ty` is its type): the room
    /// message to send an offset for.
    pub fn observe(&mut self, ty: &str, frame: &Bytes) -> Option<Offset> {
        if !matches!(ty, "message:receive" | "room:joined" | "room:left") {
            return None;
        }
        if ty == "message:receive" {
            if let Some((room, seq)) = event::message_head(frame) {
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
                if let Some(i) = self.index.get(room.as_ref()) {
                    self.rooms[*i as usize].followed = false;
                }
                None
            }
            "room:joined" => {
                let known = self
                    .index
                    .get(room.as_ref())
                    .is_some_and(|i| self.rooms[*i as usize].followed);
                // With `recovered:true` a replay follows: the position is
                // where it starts (a rejoin of ours), not the room's last seq.
                if !(known && seen.recovered == Some(true)) {
                    self.follow(&room, seen.epoch, seen.seq.unwrap_or(0));
                }
                None
            }
            _ => self.delivered(&room, seen.seq?),
        }
    }

    /// A room message sent (none in a personal room), and the offset to
    /// send with it.
    fn delivered(&mut self, room: &str, seq: u64) -> Option<Offset> {
        let i = self.record(room, seq)?;
        Some((self.rooms[i as usize].name.clone(), seq))
    }

    /// Records a room message sent (none in a personal room) in the ring,
    /// also for a room not followed (a watched one), so an offset of it can
    /// be found; its room's index.
    fn record(&mut self, room: &str, seq: u64) -> Option<u32> {
        if personal(room) {
            return None;
        }
        let i = self.slot(room);
        let pos = &mut self.rooms[i as usize];
        pos.seq = pos.seq.max(seq);
        if self.ring.len() == self.cap {
            self.ring.pop_front();
            self.overflowed = true;
        }
        self.ring.push_back((i, seq));
        Some(i)
    }

    /// The rooms to rejoin for a client whose last offset is `offset`
    /// (`None`: it saw no room message); `None` if that cannot be known.
    pub fn plan(&self, offset: Option<&str>) -> Option<Vec<Rejoin>> {
        let start = match offset {
            None if self.overflowed => return None,
            None => 0,
            Some(o) => {
                let (seq, room) = event::parse_offset(o)?;
                let room = *self.index.get(room)?;
                // The latest: a new epoch may have numbered it again.
                let at = self.ring.iter().rposition(|e| *e == (room, seq))?;
                at + 1
            }
        };
        let mut plan: Vec<Rejoin> = (0..self.rooms.len() as u32)
            .filter(|i| self.rooms[*i as usize].followed)
            .map(|i| {
                let pos = &self.rooms[i as usize];
                let first_missed = self.ring.range(start..).find(|(r, _)| *r == i);
                Rejoin {
                    room: pos.name.to_string(),
                    epoch: pos.epoch.clone(),
                    since: first_missed.map_or(pos.seq, |(_, seq)| seq.saturating_sub(1)),
                }
            })
            .collect();
        plan.sort_by(|a, b| a.room.cmp(&b.room));
        Some(plan)
    }
}

/// What dropped connections left, by `pid`, for the recovery window: in
/// this process, or with Redis in Redis, so a client may come back on any
/// node.
#[derive(Default)]
pub struct Saved {
    map: Mutex<HashMap<String, (Instant, Tracker)>>,
    swept_at: Mutex<usize>,
    shared: Option<crate::cluster::Cluster>,
}

/// Only a `pid` of ours (32 hex digits) is looked up.
fn plausible(pid: &str) -> bool {
    pid.len() == 32 && pid.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Saved {
    pub fn new(shared: Option<crate::cluster::Cluster>) -> Saved {
        Saved {
            shared,
            ..Saved::default()
        }
    }

    /// Redis, when the state is kept there.
    pub fn shared(&self) -> Option<&crate::cluster::Cluster> {
        self.shared.as_ref()
    }

    pub fn save(&self, t: Tracker, window: Duration) {
        if let Some(c) = &self.shared {
            let ms = window.as_millis().max(1).to_string();
            let key = c.key(&format!("sio:{}", t.pid));
            let args = vec![t.user.clone().into_bytes(), t.encode(), ms.into_bytes()];
            // Queued now, in order with the session's leave; nobody waits.
            drop(c.script(crate::cluster::scripts::Lua::SioSave, vec![key], args));
            return;
        }
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

/// [`Saved::take`] from Redis (`cap`: the new tracker's ring). A Redis
/// that cannot answer is no recovery, never an error.
pub async fn take_shared(
    c: crate::cluster::Cluster,
    pid: String,
    user: String,
    cap: usize,
) -> Option<Tracker> {
    if !plausible(&pid) {
        return None;
    }
    let key = c.key(&format!("sio:{pid}"));
    let args = vec![user.clone().into_bytes()];
    let answer = c.script(crate::cluster::scripts::Lua::SioTake, vec![key], args);
    match answer.await {
        Ok(redis::Value::BulkString(b)) => Tracker::decode(pid, user, cap, &b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    fn off(o: Option<Offset>) -> Option<String> {
        o.map(|(room, seq)| event::offset_of(seq, &room))
    }

    #[test]
    fn both_encodings_record_the_same_offsets() {
        let mut t = Tracker::new("p".into(), "u".into(), 8);
        t.observe(
            "room:joined",
            &Bytes::from_static(br#"{"type":"room:joined","room":"r","seq":3}"#),
        );
        let fast = Bytes::from_static(br#"{"type":"message:receive","room":"r","seq":4,"data":1}"#);
        let slow = Bytes::from_static(br#"{"type":"message:receive","seq":5,"room":"r"}"#);
        assert_eq!(off(t.observe("message:receive", &fast)), Some("4:r".into()));
        // Another field order: parsed.
        assert_eq!(off(t.observe("message:receive", &slow)), Some("5:r".into()));
        let ev = event::encode(br#"{"type":"message:receive","room":"r","seq":6}"#, true).unwrap();
        t.observe_event(&ev);
        assert_eq!(t.plan(Some("4:r")).unwrap()[0].since, 4);
        assert_eq!(t.plan(Some("5:r")).unwrap()[0].since, 5);
        assert_eq!(t.plan(Some("6:r")).unwrap()[0].since, 6);
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
        assert_eq!(
            off(t.observe("message:receive", &m("a", 5))),
            Some("5:a".into())
        );
        assert_eq!(
            off(t.observe("message:receive", &m("b", 1))),
            Some("1:b".into())
        );
        assert_eq!(
            off(t.observe("message:receive", &m("a", 6))),
            Some("6:a".into())
        );
        assert_eq!(t.observe("message:receive", &m("user:u", 1)), None);
        let plan = t.plan(Some("5:a")).unwrap();
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
        assert_eq!(t.plan(None).unwrap()[0].since, 4, "saw none");
        assert_eq!(t.plan(Some("6:a")).unwrap()[0].since, 6);
        assert!(t.plan(Some("7:a")).is_none(), "an offset never handed out");
        assert!(t.plan(Some("7")).is_none(), "not an offset");
        // The ring holds 3: after a 4th, the first is gone, and so is "saw none".
        t.observe("message:receive", &m("b", 2));
        assert!(t.plan(None).is_none());
        assert!(t.plan(Some("5:a")).is_none());
        assert!(t.plan(Some("1:b")).is_some());
        t.observe("room:left", &b(r#"{"type":"room:left","room":"a"}"#));
        assert_eq!(t.plan(Some("2:b")).unwrap().len(), 1);
        // A watched room's message (not followed) still locates an offset.
        assert!(off(t.observe("message:receive", &m("w", 9))).is_some());
        assert_eq!(t.plan(Some("9:w")).unwrap()[0].since, 2);
    }

    #[test]
    fn a_tracker_kept_elsewhere_plans_the_same() {
        let mut t = Tracker::new("p".into(), "u".into(), 4);
        let j = r#"{"type":"room:joined","room":"a","seq":4,"epoch":"e"}"#;
        t.observe("room:joined", &b(j));
        let m = |room: &str, seq: u64| {
            b(&format!(
                r#"{{"type":"message:receive","room":"{room}","seq":{seq}}}"#
            ))
        };
        for (room, seq) in [("a", 5), ("w", 1), ("a", 6)] {
            t.observe("message:receive", &m(room, seq));
        }
        let back = Tracker::decode("p".into(), "u".into(), 4, &t.encode()).unwrap();
        for offset in [None, Some("5:a"), Some("1:w"), Some("6:a"), Some("9:a")] {
            assert_eq!(back.plan(offset), t.plan(offset), "{offset:?}");
        }
        assert!(Tracker::decode("p".into(), "u".into(), 4, b"{}").is_none());
        let bad = br#"{"rooms":[],"ring":[[3,1]],"overflowed":false}"#;
        assert!(Tracker::decode("p".into(), "u".into(), 4, bad).is_none());
        assert!(plausible(&crate::ids::random_hex(16)) && !plausible("x"));
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
