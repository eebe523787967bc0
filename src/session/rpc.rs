//! Tool calls in a session (`rpc.rs`): the calls it makes (each waited
//! for with its own timer) and the calls it is given (answered once, or
//! `rpc_disconnected` when it closes first).

use super::*;
use crate::ids::SessionAddr;
use crate::rpc::wire::{Outcome, RpcRequest};
use crate::rpc::{self as tool, Answered, Incoming, Route, Target};
use std::time::Duration;

impl Session {
    pub(super) fn rpc(
        &mut self,
        req: RpcRequest,
        id: Option<String>,
        now: Instant,
        ctx: &mut Context<Self>,
    ) {
        // Both frames need an id (the parser made sure).
        let Some(id) = id else { return };
        match req {
            RpcRequest::Call {
                to,
                method,
                params,
                timeout_ms,
            } => self.call(to, method, params, timeout_ms, id, now, ctx),
            RpcRequest::Result(outcome) => self.answer_call(&id, outcome),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        to: Target,
        method: String,
        params: Box<RawValue>,
        timeout_ms: Option<u64>,
        id: String,
        now: Instant,
        ctx: &mut Context<Self>,
    ) {
        let Some((user, name, privileged)) =
            self.ident.as_ref().zip(self.from.as_ref()).map(|(i, f)| {
                let user = f.user.as_str().to_string();
                (user, f.name.to_string(), i.role.privileged())
            })
        else {
            return;
        };
        let limits = self.shared.cfg.rpc;
        let refuse = |code, msg: String| error_frame(code, &msg, Some(&id), None);
        if !self.privileged_rate() {
            if let Err(wait) = self.calls.take(now) {
                let retry = Some(wait.as_millis() as u64 + 1);
                let msg = "rpc:call rate limit reached; retry later";
                return self.push(error_frame(ErrorCode::RateLimited, msg, Some(&id), retry));
            }
        }
        if params.get().len() > limits.max_params {
            let msg = format!("params is over {} bytes", limits.max_params);
            return self.push(refuse(ErrorCode::TooLarge, msg));
        }
        let timeout_ms = timeout_ms.unwrap_or(limits.timeout_ms.min(limits.max_timeout_ms));
        if timeout_ms > limits.max_timeout_ms {
            let msg = format!("timeout_ms is over {}", limits.max_timeout_ms);
            return self.push(refuse(ErrorCode::BadRequest, msg));
        }
        if self.rpc.is_waiting(&id) {
            let msg = format!("a call with id {id:?} is already waiting for its result");
            return self.push(refuse(ErrorCode::BadRequest, msg));
        }
        if self.rpc.waiting() >= limits.in_flight {
            let msg = format!(
                "at most {} calls in flight per connection",
                limits.in_flight
            );
            return self.push(refuse(ErrorCode::TooManyCalls, msg));
        }
        if matches!(&to, Target::Session(s) if s.session == self.id && s.is_here()) {
            let msg = "a session cannot call itself".to_string();
            return self.push(refuse(ErrorCode::BadRequest, msg));
        }
        let n = self.rpc.next_n();
        let call = Incoming {
            route: Route {
                caller: SessionAddr::here(self.id),
                id: id.clone(),
                n,
            },
            user,
            name,
            privileged,
            method,
            params,
            timeout_ms,
        };
        let shown = to.to_string();
        let timer_id = id.clone();
        let timer = ctx.run_later(Duration::from_millis(timeout_ms), move |act, _| {
            if act.rpc.take(&timer_id, n).is_some() {
                let msg = format!("no result from {shown} within {timeout_ms} ms");
                act.error(ErrorCode::RpcTimeout, &msg, Some(&timer_id));
            }
        });
        self.rpc.wait(id, n, timer);
        self.hub.do_send(hub::RpcCall { to, call });
    }

    /// `rpc:result` for a call this session was given.
    fn answer_call(&mut self, id: &str, outcome: Outcome) {
        let Some(route) = self.rpc.answer(id) else {
            let msg = format!(
                "no call {id} is waiting for a result (it timed out, was answered, or never came)"
            );
            return self.error(ErrorCode::NotFound, &msg, Some(id));
        };
        let max = self.shared.cfg.rpc.max_params;
        let me = SessionAddr::here(self.id);
        let frame = match &outcome {
            Outcome::Ok(r) if r.get().len() > max => {
                // The caller learns that the answer was refused, not nothing.
                let msg = format!("the result was over {max} bytes");
                self.error(ErrorCode::TooLarge, &msg, Some(id));
                tool::encode(&tool::ResultFrame {
                    id: &route.id,
                    session: &me,
                    result: None,
                    error: Some(tool::ErrorBody {
                        code: "too_large",
                        message: &msg,
                    }),
                })
            }
            Outcome::Ok(r) => tool::encode(&tool::ResultFrame {
                id: &route.id,
                session: &me,
                result: Some(r),
                error: None,
            }),
            Outcome::Err { code, message } => tool::encode(&tool::ResultFrame {
                id: &route.id,
                session: &me,
                result: None,
                error: Some(tool::ErrorBody { code, message }),
            }),
        };
        self.hub.do_send(hub::RpcAnswer { route, frame });
    }

    /// The session closes: every caller still waiting is told.
    pub(super) fn rpc_closing(&mut self) {
        for route in self.rpc.abandon() {
            let msg = format!(
                "session {} closed before answering",
                SessionAddr::here(self.id)
            );
            let frame = error_frame(ErrorCode::RpcDisconnected, &msg, Some(&route.id), None);
            self.hub.do_send(hub::RpcAnswer { route, frame });
        }
    }
}

impl Session {
    /// A call for this session, from the Hub (`hub::Order::Call`).
    pub(super) fn on_call(&mut self, call: Incoming) {
        let me = SessionAddr::here(self.id);
        let refuse = |code, msg: &str| error_frame(code, msg, Some(&call.route.id), None);
        let mine = self.ident.as_ref().is_some_and(|i| i.role.privileged());
        let refusal = if self.closing {
            Some(refuse(
                ErrorCode::RpcDisconnected,
                &format!("session {me} is closing"),
            ))
        } else if !call.privileged && !mine {
            Some(refuse(
                ErrorCode::Forbidden,
                &format!("session {me} is a user's: users may call only services and admins"),
            ))
        } else {
            None
        };
        if let Some(frame) = refusal {
            return self.hub.do_send(hub::RpcAnswer {
                route: call.route,
                frame,
            });
        }
        let cap = self.shared.cfg.rpc.in_flight;
        let timeout = Duration::from_millis(call.timeout_ms);
        let Some(given) = self.rpc.give(call.route.clone(), timeout, cap) else {
            let msg = format!("session {me} has {cap} calls waiting for its results");
            let frame = refuse(ErrorCode::TooManyCalls, &msg);
            return self.hub.do_send(hub::RpcAnswer {
                route: call.route,
                frame,
            });
        };
        METRICS.deliveries.fetch_add(1, Relaxed);
        self.push(tool::encode(&tool::CallFrame {
            id: &given,
            method: &call.method,
            params: &call.params,
            from: tool::FromFrame {
                user: &call.user,
                name: &call.name,
            },
            session: &call.route.caller,
            timeout_ms: call.timeout_ms,
        }));
    }
}

impl Session {
    /// An answer for a call of this session's (`hub::Order::Answer`).
    pub(super) fn on_answer(&mut self, a: Answered, ctx: &mut Context<Self>) {
        if let Some(timer) = self.rpc.take(&a.id, a.n) {
            ctx.cancel_future(timer);
            self.push(a.frame);
        }
    }
}
