//! The room's shared state (`src/state`): reads, compare-and-set writes,
//! expiry, and the `state:update` fan-out to every member. On one node the
//! room's actor decides every write (it handles one message at a time) and
//! the writer thread stores it; with Redis, one script decides
//! (`cluster/state.rs`) and every node's replica applies what the room's
//! channel carries.

use super::Room;
use crate::error::{ErrorCode, HubError};
use crate::ids::{now_ms, SessionId};
use crate::outbox::Outbox;
use crate::protocol::error_frame;
use crate::state::{self, Change, Refusal, StateMap, Write};
use crate::store::{Job, StateJob};
use actix::prelude::*;
use bytes::Bytes;
use serde_json::value::RawValue;
use std::time::Duration;

/// Who asked.
pub enum StateOrigin {
    /// A session: answers (snapshot, ack, errors) go to its outbox.
    Session {
        session: SessionId,
        outbox: Outbox,
        id: Option<String>,
    },
    /// The REST API, through the Hub: answered with [`StateAnswer`].
    Api,
}

impl StateOrigin {
    pub fn id(&self) -> Option<&str> {
        match self {
            StateOrigin::Session { id, .. } => id.as_deref(),
            StateOrigin::Api => None,
        }
    }
}

pub enum StateCall {
    /// The live entries (of `keys`, when given).
    Get { keys: Option<Vec<String>> },
    /// A set or delete, by `by` (`{"user","name"}`).
    Write { write: Write, by: Box<RawValue> },
}

#[derive(Message)]
#[rtype(result = "StateAnswer")]
pub struct StateOp {
    pub call: StateCall,
    pub origin: StateOrigin,
}

/// What the REST API is answered (sessions get frames instead).
#[derive(Debug)]
pub enum StateAnswer {
    /// For `Get`: the live entries asked for.
    Map(StateMap),
    /// The write was accepted (and stored): the key's new version.
    Done {
        version: u64,
    },
    Conflict {
        version: u64,
        value: Option<Box<RawValue>>,
    },
    Failed(HubError),
}

impl Handler<StateOp> for Room {
    type Result = ResponseFuture<StateAnswer>;

    fn handle(&mut self, msg: StateOp, ctx: &mut Context<Self>) -> Self::Result {
        let ready = |a| -> ResponseFuture<StateAnswer> { Box::pin(std::future::ready(a)) };
        let api = matches!(msg.origin, StateOrigin::Api);
        if api {
            self.hub_ops += 1;
        }
        if let StateOrigin::Session {
            session,
            outbox,
            id,
        } = &msg.origin
        {
            if !self.members.contains_key(session) {
                let m = format!("join {} before using its state", self.name);
                outbox.push(error_frame(ErrorCode::NotMember, &m, id.as_deref(), None));
                return ready(StateAnswer::Failed(HubError::new(ErrorCode::NotMember, m)));
            }
        }
        let answer = match msg.call {
            StateCall::Get { keys } => match &msg.origin {
                StateOrigin::Session { outbox, id, .. } => {
                    outbox.push(self.state_snapshot(keys.as_deref(), id.as_deref()));
                    ready(StateAnswer::Map(StateMap::default()))
                }
                StateOrigin::Api => {
                    let now = now_ms();
                    let live = self
                        .state
                        .live(keys.as_deref(), now)
                        .map(|(k, e)| (k.clone(), e.clone()));
                    ready(StateAnswer::Map(StateMap::new(self.state.rev, live)))
                }
            },
            StateCall::Write { write, by } => {
                let e = self.engine;
                e.write_state(self, write, by, msg.origin, ctx)
            }
        };
        if api {
            self.report_if_idle();
        }
        answer
    }
}

impl Room {
    /// `state:snapshot` of the live entries (of `keys`).
    pub(super) fn state_snapshot(&self, keys: Option<&[String]>, id: Option<&str>) -> Bytes {
        state::snapshot_frame(self.name.as_str(), &self.state, keys, now_ms(), id)
    }

    /// Loads the stored state before anything else is handled (one node).
    pub(super) fn load_state(&mut self, ctx: &mut Context<Self>) {
        let Some(store) = self.state_store.clone() else {
            return;
        };
        let room = self.name.clone();
        let load = async move {
            let mut delay = Duration::from_millis(100);
            loop {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let job = StateJob::Load {
                    room: room.clone(),
                    now: now_ms(),
                    reply: tx,
                };
                store.send(Job::State(job));
                match crate::store::reply(rx).await {
                    Ok(m) => return m,
                    Err(e) => {
                        log::error!("room {room}: cannot load its state ({e}); retrying");
                        actix_web::rt::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        };
        ctx.wait(load.into_actor(self).map(|m, act, ctx| {
            act.state = m;
            act.arm_state_timer(ctx);
        }));
    }

    /// Refuses a write: a conflict with the key's value and version, or
    /// another code.
    pub(super) fn refuse_state(&self, key: &str, r: Refusal, origin: &StateOrigin) -> StateAnswer {
        let outbox = match origin {
            StateOrigin::Session { outbox, .. } => Some(outbox),
            StateOrigin::Api => None,
        };
        match r {
            Refusal::Conflict { version, value } => {
                if let Some(o) = outbox {
                    let room = self.name.as_str();
                    o.push(state::conflict_frame(
                        room,
                        key,
                        version,
                        value.as_deref(),
                        origin.id(),
                    ));
                }
                StateAnswer::Conflict { version, value }
            }
            Refusal::Other(code, m) => {
                if let Some(o) = outbox {
                    let retry = (code == ErrorCode::RateLimited).then_some(50);
                    o.push(error_frame(code, &m, origin.id(), retry));
                }
                StateAnswer::Failed(HubError::new(code, m))
            }
        }
    }

    /// One node: decides, applies, tells the members, then stores; the
    /// sender's `ack` (or the API's answer) follows the commit.
    pub(super) fn state_write(
        &mut self,
        write: Write,
        by: Box<RawValue>,
        origin: StateOrigin,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<StateAnswer> {
        let now = now_ms();
        let key = write.key.clone();
        if let Err(r) = self.state.check(&write, &self.state_limits, now) {
            let a = self.refuse_state(&key, r, &origin);
            return Box::pin(std::future::ready(a));
        }
        if self.state_store.as_ref().is_some_and(|s| !s.reserve()) {
            let r = Refusal::Other(
                ErrorCode::RateLimited,
                "storage is busy; retry shortly".into(),
            );
            let a = self.refuse_state(&key, r, &origin);
            return Box::pin(std::future::ready(a));
        }
        let change = self.state.change(write, by, now);
        let version = change.version;
        let stored = self.commit_state(change, ctx);
        Box::pin(async move {
            let r = match stored {
                Some(rx) => crate::store::reply(rx).await,
                None => Ok(()),
            };
            if let StateOrigin::Session { outbox, id, .. } = &origin {
                match &r {
                    Ok(()) => {
                        if let Some(id) = id {
                            outbox.push(state::ack_frame(id, version));
                        }
                    }
                    Err(e) => {
                        outbox.push(error_frame(e.code, &e.message, id.as_deref(), None));
                    }
                }
            }
            match r {
                Ok(()) => StateAnswer::Done { version },
                Err(e) => StateAnswer::Failed(e),
            }
        })
    }

    /// Applies a decided change here (one node), tells the members and
    /// hands it to the writer (its slot already reserved).
    fn commit_state(
        &mut self,
        change: Change,
        ctx: &mut Context<Self>,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<(), HubError>>> {
        self.apply_state(&change, ctx);
        let store = self.state_store.as_ref()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        store.send_reserved(Job::State(StateJob::Write {
            room: self.name.clone(),
            change,
            reply: tx,
        }));
        Some(rx)
    }

    /// Applies a change to this copy of the state and sends its
    /// `state:update` to every member here (stale ones are dropped).
    pub(super) fn apply_state(&mut self, change: &Change, ctx: &mut Context<Self>) {
        if self.state.apply(change) {
            let frame = state::update_frame(self.name.as_str(), change);
            self.broadcast(&frame, None);
            self.arm_state_timer(ctx);
        }
    }

    /// Re-arms the timer for the earliest expiry.
    pub(super) fn arm_state_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.state_timer.take() {
            ctx.cancel_future(h);
        }
        let Some(at) = self.state.next_expiry() else {
            return;
        };
        let now = now_ms();
        // With Redis, a key the script found not yet expired (clocks
        // differ) is tried again a little later, not in a loop.
        let late = if at <= now {
            self.engine.late_expiry_retry()
        } else {
            Duration::ZERO
        };
        let delay = Duration::from_millis(at.saturating_sub(now)).max(late);
        self.state_timer = Some(ctx.run_later(delay, |act, ctx| {
            act.state_timer = None;
            act.expire_state(ctx);
        }));
    }

    /// Deletes the keys whose time is up: each takes a version and its
    /// members get a `state:update` with `deleted` and `expired`.
    fn expire_state(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        let due = self.state.due(now);
        let e = self.engine;
        e.expire_state(self, due, ctx);
        self.arm_state_timer(ctx);
    }

    /// Expiries on one node: applied and stored here.
    pub(super) fn expire_state_here(&mut self, due: Vec<(String, u64)>, ctx: &mut Context<Self>) {
        let now = now_ms();
        for (key, _) in due {
            let change = self.state.expiry(&key, now);
            // Not refused when storage is busy: an expiry must reach it.
            self.apply_state(&change, ctx);
            if let Some(store) = &self.state_store {
                let (tx, _) = tokio::sync::oneshot::channel();
                store.send(Job::State(StateJob::Write {
                    room: self.name.clone(),
                    change,
                    reply: tx,
                }));
            }
        }
    }
}
