//! `state:get`, `state:set`, `state:delete`: handed to the room the session
//! has joined (membership is the access rule, as for `message:send`); the
//! room answers on the session's outbox.

use super::*;
use crate::state::wire::StateRequest;

impl Session {
    pub(super) fn state(&mut self, req: StateRequest, id: Option<String>, now: Instant) {
        let (room, call) = match req {
            StateRequest::Get { room, keys } => (room, room::StateCall::Get { keys }),
            StateRequest::Write { room, write } => {
                // Writes count as messages (the guest limit applies).
                if !self.limit_messages(now, id.as_deref()) {
                    return;
                }
                let Some(by) = self.by_json() else { return };
                (room, room::StateCall::Write { write, by })
            }
        };
        let Some(addr) = self.rooms.get(&room) else {
            let msg = format!("join {room} before using its state");
            return self.error(ErrorCode::NotMember, &msg, id.as_deref());
        };
        let op = room::StateOp {
            call,
            origin: room::StateOrigin::Session {
                session: self.id,
                outbox: self.outbox.clone(),
                id,
            },
        };
        if let Err(e) = addr.try_send(op) {
            self.room_refused(e, |op| op.origin.id());
        }
    }

    /// `{"user","name"}` of this session, as `by` of its writes.
    fn by_json(&self) -> Option<Box<RawValue>> {
        let from = self.from.as_ref()?;
        serde_json::value::to_raw_value(from).ok()
    }
}
