//! Tool call routing (`rpc.rs`): a call to the target's session, the
//! answer to the caller's, here or through the other node's channel
//! (`<prefix>:node:<node>:sig`, shared with `signal`):
//! - `P<json {to, call}>`: a call for session `to` of that node;
//! - `Q<json route>\n<frame>`: the answer for a caller of that node.
//!
//! A call to a user goes to the user's most recently connected session
//! on this node, else (with Redis) to one of their sessions on other
//! nodes, picked at random from the user's personal room's sessions
//! (`<prefix>:{r:user:<id>}:ses`, where every session is listed).

use super::*;
use crate::ids::SessionAddr;
use crate::rpc::{Answered, Incoming, Route, Target};
use serde::{Deserialize, Serialize};

/// A call from a session here, to be routed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RpcCall {
    pub to: Target,
    pub call: Incoming,
}

/// An answer (or an error naming the call) for the caller of `route`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RpcAnswer {
    pub route: Route,
    pub frame: Bytes,
}

/// A `P` payload.
#[derive(Serialize, Deserialize)]
struct Routed {
    to: u64,
    call: Incoming,
}

impl Handler<RpcCall> for Hub {
    type Result = ();

    fn handle(&mut self, msg: RpcCall, _: &mut Context<Self>) {
        match msg.to {
            Target::Session(addr) => self.rpc_to_session(addr, msg.call),
            Target::User(user) => self.rpc_to_user(user, msg.call),
        }
    }
}

impl Handler<RpcAnswer> for Hub {
    type Result = ();

    fn handle(&mut self, msg: RpcAnswer, _: &mut Context<Self>) {
        self.rpc_answer(msg.route, msg.frame);
    }
}

fn refusal(route: &Route, code: ErrorCode, msg: &str) -> Bytes {
    error_frame(code, msg, Some(&route.id), None)
}

impl Hub {
    fn rpc_to_user(&self, user: UserId, call: Incoming) {
        let caller = call.route.caller.clone();
        let here = self.users.get(&user).and_then(|list| {
            list.iter()
                .rev()
                .find(|s| !(caller.is_here() && caller.session == **s))
                .copied()
        });
        if let Some(s) = here {
            return self.rpc_to_session(SessionAddr::here(s), call);
        }
        let offline = format!("user {user} has no open session");
        let Some(me) = self.me.clone() else { return };
        // Another node's sessions of the user, if there are other nodes.
        let Some(listed) = self.directory.sessions_of(&user) else {
            let frame = refusal(&call.route, ErrorCode::UserOffline, &offline);
            return self.rpc_answer(call.route, frame);
        };
        actix::spawn(async move {
            // This node's own are known to be none (above): one still
            // listed has closed, its removal not yet in Redis.
            let sessions: Vec<SessionAddr> = match listed.await {
                Ok(v) => v
                    .into_iter()
                    .filter(|s| *s != caller && !s.is_here())
                    .collect(),
                Err(e) => {
                    let frame = refusal(&call.route, e.code, &e.message);
                    return me.do_send(RpcAnswer {
                        route: call.route,
                        frame,
                    });
                }
            };
            if sessions.is_empty() {
                let frame = refusal(&call.route, ErrorCode::UserOffline, &offline);
                return me.do_send(RpcAnswer {
                    route: call.route,
                    frame,
                });
            }
            let pick = u64::from_str_radix(&crate::ids::random_hex(4), 16).unwrap_or(0);
            let to = sessions[(pick % sessions.len() as u64) as usize].clone();
            me.do_send(RpcCall {
                to: Target::Session(to),
                call,
            });
        });
    }

    fn rpc_to_session(&self, to: SessionAddr, call: Incoming) {
        let gone = format!("no session {to}: it closed, or the id is wrong");
        if to.is_here() {
            return match self.sessions.get(&to.session) {
                Some(t) => t.addr.do_send(super::Order::Call(call)),
                None => {
                    let frame = refusal(&call.route, ErrorCode::NotFound, &gone);
                    self.rpc_answer(call.route, frame)
                }
            };
        }
        let Some(node) = to.node.as_deref() else {
            let frame = refusal(&call.route, ErrorCode::NotFound, &gone);
            return self.rpc_answer(call.route, frame);
        };
        let routed = Routed {
            to: to.session.0,
            call,
        };
        let mut payload = b"P".to_vec();
        if serde_json::to_writer(&mut payload, &routed).is_err() {
            return;
        }
        let route = routed.call.route;
        let Some(me) = self.me.clone() else { return };
        let Some(sent) = self.directory.to_node(node, payload) else {
            let frame = refusal(&route, ErrorCode::NotFound, &gone);
            return self.rpc_answer(route, frame);
        };
        actix::spawn(async move {
            let frame = match sent.await {
                Ok(false) => refusal(&route, ErrorCode::NotFound, &gone),
                Ok(true) => return,
                Err(e) => refusal(&route, e.code, &e.message),
            };
            me.do_send(RpcAnswer { route, frame });
        });
    }

    /// Gives the caller its answer: here, or through its node's channel.
    fn rpc_answer(&self, route: Route, frame: Bytes) {
        if route.caller.is_here() {
            if let Some(s) = self.sessions.get(&route.caller.session) {
                s.addr.do_send(super::Order::Answer(Answered {
                    id: route.id,
                    n: route.n,
                    frame,
                }));
            }
            return;
        }
        let Some(node) = route.caller.node.as_deref() else {
            return;
        };
        let mut payload = b"Q".to_vec();
        if serde_json::to_writer(&mut payload, &route).is_err() {
            return;
        }
        payload.push(b'\n');
        payload.extend_from_slice(&frame);
        if let Some(sent) = self.directory.to_node(node, payload) {
            actix::spawn(async move {
                if let Err(e) = sent.await {
                    log::warn!("rpc answer not sent: {}", e.message);
                }
            });
        }
    }

    /// `P` or `Q` on this node's channel.
    pub(super) fn on_rpc_feed(&self, p: &Bytes) {
        match p.first() {
            Some(b'P') => {
                let Ok(r) = serde_json::from_slice::<Routed>(&p[1..]) else {
                    return log::warn!("unreadable call on the node channel");
                };
                self.rpc_to_session(SessionAddr::here(SessionId(r.to)), r.call);
            }
            Some(b'Q') => {
                let body = &p[1..];
                let Some(nl) = body.iter().position(|b| *b == b'\n') else {
                    return;
                };
                let Ok(route) = serde_json::from_slice::<Route>(&body[..nl]) else {
                    return log::warn!("unreadable answer on the node channel");
                };
                // An answer for a caller of this node only.
                if route.caller.is_here() {
                    let frame = p.slice_ref(&body[nl + 1..]);
                    self.rpc_answer(route, frame);
                }
            }
            _ => {}
        }
    }
}
