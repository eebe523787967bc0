//! `signal`: checked here (rate, the sender's membership), encoded once,
//! and handed to the Hub, which finds the target session on any node.

use super::*;
use crate::ids::SessionAddr;
use crate::signal::Signal;

impl Session {
    pub(super) fn signal(&mut self, s: Signal, id: Option<String>, now: Instant) {
        let Some(from) = &self.from else { return };
        let id_ref = id.as_deref();
        if !self.privileged_rate() {
            if let Err(wait) = self.signals.take(now) {
                let retry = Some(wait.as_millis() as u64 + 1);
                let msg = "signal rate limit reached; retry later";
                self.push(error_frame(ErrorCode::RateLimited, msg, id_ref, retry));
                return;
            }
        }
        if !self.rooms.contains_key(&s.room) {
            let msg = format!("you are not in {}", s.room);
            return self.error(ErrorCode::Forbidden, &msg, id_ref);
        }
        if s.to.session == self.id && s.to.is_here() {
            return self.error(
                ErrorCode::BadRequest,
                "a session cannot signal itself",
                id_ref,
            );
        }
        let me = SessionAddr::here(self.id);
        let frame = encode(&ServerFrame::Signal {
            room: &s.room,
            from,
            session: &me,
            kind: s.kind,
            data: &s.data,
        });
        self.hub.do_send(hub::Signal {
            from: self.id,
            to: s.to,
            room: s.room,
            frame,
            id,
        });
    }
}
