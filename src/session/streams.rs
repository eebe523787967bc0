//! `stream:*` frames: handed to the room the session has joined, which
//! decides and answers on the session's outbox (`room/streams.rs`). A
//! producer's later frames may leave out the room: the session remembers
//! the room of each stream it started (the last `PRODUCING_MAX`; an entry
//! of a stream that ended is harmless, the room answers `not_found`, and
//! an end the room refused can be sent again).

use super::*;
use crate::streams::wire::{StreamCall, StreamRequest};

/// How many of its streams' rooms a session remembers.
const PRODUCING_MAX: usize = 256;

impl Session {
    pub(super) fn stream(&mut self, req: StreamRequest, id: Option<String>, now: Instant) {
        let StreamRequest { room, stream, call } = req;
        // A start and an end each make something every member sees (the
        // end, a stored message): they count as messages. Chunks are bounded
        // by the stream's byte limit and the frame flood limit.
        if matches!(call, StreamCall::Start { .. } | StreamCall::End { .. })
            && !self.limit_messages(now, id.as_deref())
        {
            return;
        }
        let room = match (room, &call) {
            (Some(r), _) => r,
            (None, _) => match self.producing.get(&stream) {
                Some((r, _)) => r.clone(),
                None => {
                    let m = format!("this session produces no stream {stream:?}; name its `room`");
                    return self.error(ErrorCode::NotFound, &m, id.as_deref());
                }
            },
        };
        let Some(addr) = self.rooms.get(&room).cloned() else {
            let msg = format!("join {room} before using its streams");
            return self.error(ErrorCode::NotMember, &msg, id.as_deref());
        };
        let Some(from) = self
            .from
            .as_ref()
            .and_then(|f| serde_json::value::to_raw_value(f).ok())
        else {
            return;
        };
        if let StreamCall::Start { .. } = call {
            self.remember_stream(&stream, &room);
        }
        let op = room::StreamOp {
            session: self.id,
            outbox: self.outbox.clone(),
            from,
            stream,
            call,
            id,
        };
        if let Err(e) = addr.try_send(op) {
            self.room_refused(e, |op| op.id.as_deref());
        }
    }
}

impl Session {
    /// Remembers the room of a stream this session starts, forgetting the
    /// oldest past `PRODUCING_MAX`.
    fn remember_stream(&mut self, stream: &str, room: &RoomName) {
        let (map, n) = (&mut self.producing, &mut self.producing_n);
        *n += 1;
        map.insert(stream.to_string(), (room.clone(), *n));
        if map.len() > PRODUCING_MAX {
            let oldest = map
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
    }
}
