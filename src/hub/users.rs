//! The server API's actions on a user's sessions (docs/PROTOCOL.md, "Server
//! API"): close them, make them join or leave a room. With Redis the order
//! goes out on the user's channel (`C<json>`) and every node with a
//! session of the user acts on its own sessions.

use super::*;
use serde::{Deserialize, Serialize};

/// What to do with every session of a user.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Action {
    Disconnect {
        code: u16,
        reason: String,
    },
    /// `room` was checked by the caller ([`RoomName::parse`]).
    Join {
        room: String,
    },
    Leave {
        room: String,
    },
}

/// Applies `action` to every session of `user` (on every node). Answers
/// whether the user had a session (with Redis: on any node).
#[derive(Message)]
#[rtype(result = "Result<bool, HubError>")]
pub struct UserAction {
    pub user: UserId,
    pub action: Action,
}

impl Handler<UserAction> for Hub {
    type Result = ResponseFuture<Result<bool, HubError>>;

    fn handle(&mut self, msg: UserAction, _: &mut Context<Self>) -> Self::Result {
        let directory = self.directory.clone();
        directory.order(self, msg.user, msg.action)
    }
}

impl Hub {
    /// Applies `action` to this node's sessions of `user`; answers how many.
    pub(super) fn act(&self, user: &UserId, action: &Action) -> usize {
        let room = match action {
            Action::Join { room } | Action::Leave { room } => RoomName::parse(room),
            Action::Disconnect { .. } => None,
        };
        let mut n = 0;
        for s in self.users.get(user).into_iter().flatten() {
            let Some(entry) = self.sessions.get(s) else {
                continue;
            };
            n += 1;
            match action {
                Action::Disconnect { code, reason } => entry.addr.do_send(Order::Close {
                    code: *code,
                    reason: reason.clone(),
                }),
                Action::Join { .. } => {
                    if let Some(r) = &room {
                        entry.addr.do_send(Order::Join(r.clone()))
                    }
                }
                Action::Leave { .. } => {
                    if let Some(r) = &room {
                        entry.addr.do_send(Order::Leave(r.clone()))
                    }
                }
            }
        }
        n
    }

    /// `C<json>` from the user's channel.
    pub(super) fn act_on_order(&self, user: &UserId, payload: &[u8]) {
        match serde_json::from_slice::<Action>(payload) {
            Ok(a) => {
                self.act(user, &a);
            }
            Err(e) => log::warn!("user {user}: unreadable order on their channel: {e}"),
        }
    }
}
