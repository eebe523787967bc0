//! Which sessions (on any node) are in a shared room, for member lists and
//! `signal`: kept in `<prefix>:{r:<room>}:ses` (session address → user)
//! and announced on the room's channel as `E<1|0> <address> <user> <frame>`
//! (`room:session_joined` / `room:session_left`), by one script.

use super::super::{Member, Room};
use crate::cluster::scripts::Lua;
use crate::ids::{SessionAddr, UserId};
use crate::protocol::{encode, ServerFrame};
use bytes::Bytes;

impl Room {
    /// Records a session of this node joining (`on`) or leaving the room
    /// in Redis; every node (this one too) announces it from the channel.
    pub(in crate::room) fn session_event(&self, m: &Member, on: bool) {
        let Some(r) = &self.replica else { return };
        let addr = SessionAddr::here(m.session);
        let frame = if on {
            encode(&ServerFrame::SessionJoined {
                room: &self.name,
                user: &m.user,
                session: &addr,
            })
        } else {
            encode(&ServerFrame::SessionLeft {
                room: &self.name,
                user: &m.user,
                session: &addr,
            })
        };
        let fut = r.c.script(
            Lua::Session,
            vec![r.c.room_key(&self.name, "ses"), r.chan.clone()],
            vec![
                addr.to_string().into_bytes(),
                m.user.as_str().as_bytes().to_vec(),
                if on { b"1".to_vec() } else { b"0".to_vec() },
                frame.to_vec(),
            ],
        );
        let room = self.name.clone();
        actix::spawn(async move {
            if let Err(e) = fut.await {
                log::warn!("room {room}: session not recorded: {}", e.message);
            }
        });
    }

    /// `E<1|0> <address> <user> <frame>` from the room's channel.
    pub(super) fn on_session(&mut self, p: &Bytes, body: &[u8]) {
        let Some((on, rest)) = super::word(body) else {
            return;
        };
        let Some((addr, rest)) = super::word(rest) else {
            return;
        };
        let Some((user, frame)) = super::word(rest) else {
            return;
        };
        let addr = std::str::from_utf8(addr).ok().and_then(SessionAddr::parse);
        let user = std::str::from_utf8(user).ok().and_then(UserId::parse);
        let (Some(addr), Some(user)) = (addr, user) else {
            return;
        };
        let joined = on == b"1";
        let except = (joined && addr.is_here()).then_some(addr.session);
        let sessions = &mut self.replica().sessions;
        if joined {
            sessions.insert(addr, user);
        } else if sessions.remove(&addr).is_none() {
            return;
        }
        // A room rule with `presence: false`: recorded (for `signal`), not told.
        if self.presence {
            self.broadcast(&p.slice_ref(frame), except);
        }
    }

    /// Takes the room's sessions as Redis has them; sessions of this node
    /// that Redis does not have (it lost them) are recorded again.
    pub(super) fn apply_sessions(&mut self, loaded: Vec<(SessionAddr, UserId)>) {
        self.replica().sessions = loaded.into_iter().collect();
        let missing: Vec<Member> = self
            .members
            .values()
            .filter(|m| {
                let a = SessionAddr::here(m.session);
                !self
                    .replica
                    .as_ref()
                    .is_some_and(|r| r.sessions.contains_key(&a))
            })
            .cloned()
            .collect();
        for m in missing {
            self.session_event(&m, true);
        }
    }
}
