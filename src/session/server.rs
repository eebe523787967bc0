//! Orders of the server API for this session (`hub/users.rs`): join or
//! leave a room because the application's backend said so.

use super::*;

/// Join `room` without the token's room rules (the backend decided); the
/// client gets an unsolicited `room:joined` (no `id`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ServerJoin(pub RoomName);

/// Leave `room`; the client gets `room:left` (no `id`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ServerLeave(pub RoomName);

impl Handler<ServerJoin> for Session {
    type Result = ();

    fn handle(&mut self, msg: ServerJoin, ctx: &mut Context<Self>) {
        if self.ident.is_some() && !self.rooms.contains_key(&msg.0) {
            self.join_allowed(msg.0, None, None, false, None, None, ctx);
        }
    }
}

impl Handler<ServerLeave> for Session {
    type Result = ();

    fn handle(&mut self, msg: ServerLeave, _: &mut Context<Self>) {
        if self.rooms.contains_key(&msg.0) && msg.0.personal_owner().is_none() {
            self.leave(msg.0, None);
        }
    }
}
