//! The Hub's orders for this session (`hub::Order`): close, join or leave
//! a room because the application's backend said so (`hub/users.rs`), or
//! a tool call and its answer (`rpc.rs`).

use super::*;

impl Handler<crate::hub::Order> for Session {
    type Result = ();

    fn handle(&mut self, msg: crate::hub::Order, ctx: &mut Context<Self>) {
        use crate::hub::Order;
        match msg {
            Order::Close { code, reason } => self.close(code, &reason, ctx),
            // Without the token's room rules: the backend decided.
            Order::Join(room) => {
                if self.ident.is_some() && !self.rooms.contains_key(&room) {
                    self.join_allowed(room, None, None, false, None, None, ctx);
                }
            }
            Order::Leave(room) => {
                if self.rooms.contains_key(&room) && room.personal_owner().is_none() {
                    self.leave(room, None);
                }
            }
            Order::Call(call) => self.on_call(call),
            Order::Answer(a) => self.on_answer(a, ctx),
        }
    }
}
