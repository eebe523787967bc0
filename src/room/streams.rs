//! The room's live AI response streams (`src/streams`): starts, chunks,
//! ends, errors, cancels, the catch-up a joining member gets, the stall
//! timeout, and a producer's departure. On one node the room's actor
//! decides everything in the order it handles messages, which is what the
//! catch-up rule rests on; with Redis the producer's node decides and every
//! node's replica applies what the room's channel carries
//! (`cluster/streams.rs`).

use super::publish::{Origin, Publish};
use super::Room;
use crate::ids::{SessionAddr, SessionId};
use crate::outbox::Outbox;
use crate::protocol::{encode, error_frame, PublishOptions, ServerFrame};
use crate::streams::wire::StreamCall;
use crate::streams::{self, Live, Refusal, Streams};
use actix::prelude::*;
use bytes::Bytes;
use serde_json::value::RawValue;
use std::time::Instant;

/// A `stream:*` frame from a member session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StreamOp {
    pub session: SessionId,
    pub outbox: Outbox,
    /// `{"user","name"}` of the session.
    pub from: Box<RawValue>,
    pub stream: String,
    pub call: StreamCall,
    pub id: Option<String>,
}

impl StreamOp {
    pub(super) fn refuse(&self, r: Refusal) {
        let m = r.message(&self.stream);
        self.outbox
            .push(error_frame(r.code(), &m, self.id.as_deref(), None));
    }

    /// Redis could not be reached: nothing changed.
    pub(super) fn refuse_unavailable(&self) {
        let m = "the room's streams are unreachable (Redis); nothing changed";
        let code = crate::error::ErrorCode::Unavailable;
        self.outbox
            .push(error_frame(code, m, self.id.as_deref(), None));
    }

    pub(super) fn ack(&self) {
        if let Some(id) = &self.id {
            self.outbox
                .push(encode(&ServerFrame::Ack { id, seq: None }));
        }
    }
}

/// What every copy of a room's streams applies (one node: at once; with
/// Redis: from the room's channel).
pub(super) enum Event {
    Start {
        stream: String,
        live: Live,
    },
    Data {
        stream: String,
        index: u64,
        chunk: String,
    },
    End {
        stream: String,
    },
    Error {
        stream: String,
        reason: String,
    },
    Cancel {
        stream: String,
        by: Box<RawValue>,
    },
}

impl Handler<StreamOp> for Room {
    type Result = ();

    fn handle(&mut self, op: StreamOp, ctx: &mut Context<Self>) {
        if !self.members.contains_key(&op.session) {
            let m = "join the room before using its streams";
            let f = error_frame(
                crate::error::ErrorCode::NotMember,
                m,
                op.id.as_deref(),
                None,
            );
            op.outbox.push(f);
            return;
        }
        let e = self.engine;
        e.stream(self, op, ctx);
    }
}

impl Room {
    /// A stream op on one node: checked and applied here.
    pub(super) fn stream_here(&mut self, op: StreamOp, ctx: &mut Context<Self>) {
        let me = SessionAddr::here(op.session);
        let limits = self.stream_limits;
        let s = &self.streams;
        let checked = match &op.call {
            StreamCall::Start { .. } => s.can_start(&op.stream, &limits),
            StreamCall::Data { chunk } => s
                .owned(&op.stream, &me)
                .and_then(|l| Streams::fits(l, chunk, &limits)),
            StreamCall::End { last } => s.owned(&op.stream, &me).and_then(|l| match last {
                Some(c) => Streams::fits(l, c, &limits),
                None => Ok(()),
            }),
            StreamCall::Error { .. } => s.owned(&op.stream, &me).map(|_| ()),
            StreamCall::Cancel => s.live.get(&op.stream).map(|_| ()).ok_or(Refusal::Unknown),
        };
        if let Err(r) = checked {
            return op.refuse(r);
        }
        let stream = op.stream.clone();
        let index = self.streams.live.get(&stream).map_or(0, |l| l.next);
        let events = match &op.call {
            StreamCall::Start { meta } => vec![Event::Start {
                stream,
                live: streams::live(me, op.from.clone(), meta.clone()),
            }],
            StreamCall::Data { chunk } => vec![Event::Data {
                stream,
                index,
                chunk: chunk.clone(),
            }],
            StreamCall::End { last } => {
                let mut v = Vec::new();
                if let Some(c) = last {
                    v.push(Event::Data {
                        stream: stream.clone(),
                        index,
                        chunk: c.clone(),
                    });
                }
                v.push(Event::End { stream });
                v
            }
            StreamCall::Error { reason } => vec![Event::Error {
                stream,
                reason: reason.clone(),
            }],
            StreamCall::Cancel => vec![Event::Cancel {
                stream,
                by: op.from.clone(),
            }],
        };
        let end = matches!(op.call, StreamCall::End { .. });
        for e in events {
            let finished = self.apply_stream(e, Some(op.session), ctx);
            if let (Some((stream, live)), true) = (finished, end) {
                // The whole text becomes one ordinary message: seq, history,
                // storage, and the producer's ack (with the seq) as for a
                // `message:send`.
                return self.publish_stream(&stream, live, Some(&op), ctx);
            }
        }
        op.ack();
    }
}

impl Room {
    /// Applies one event and tells the members. `producer`: the session
    /// that made it, left out of the start and the chunks (it has them);
    /// ends, errors and cancels go to everyone. Answers the stream an end
    /// or error removed.
    pub(super) fn apply_stream(
        &mut self,
        e: Event,
        producer: Option<SessionId>,
        ctx: &mut Context<Self>,
    ) -> Option<(String, Live)> {
        match e {
            Event::Start { stream, live } => {
                if self.streams.live.contains_key(&stream) {
                    return None;
                }
                let f = streams::start_frame(&self.name, &stream, &live);
                self.streams.live.insert(stream, live);
                self.broadcast(&f, producer);
                self.schedule_stall(ctx);
                None
            }
            Event::Data {
                stream,
                index,
                chunk,
            } => {
                if self.streams.append(&stream, index, &chunk) {
                    let f = streams::data_frame(&self.name, &stream, index, &chunk);
                    self.broadcast(&f, producer);
                }
                None
            }
            Event::End { stream } => {
                let live = self.streams.live.remove(&stream)?;
                let f = streams::end_frame(&self.name, &stream, &live);
                self.broadcast(&f, None);
                Some((stream, live))
            }
            Event::Error { stream, reason } => {
                let live = self.streams.live.remove(&stream)?;
                let f = streams::error_frame(&self.name, &stream, &reason);
                self.broadcast(&f, None);
                Some((stream, live))
            }
            Event::Cancel { stream, by } => {
                let live = self.streams.live.get_mut(&stream)?;
                live.cancelled = true;
                let f = streams::cancelled_frame(&self.name, &stream, &by);
                self.broadcast(&f, None);
                None
            }
        }
    }

    /// Stores a finished stream's text as one room message from its producer.
    pub(super) fn publish_stream(
        &mut self,
        stream: &str,
        live: Live,
        op: Option<&StreamOp>,
        ctx: &mut Context<Self>,
    ) {
        #[derive(serde::Deserialize)]
        struct Who {
            user: String,
            name: String,
        }
        let Some(from) = serde_json::from_str::<Who>(live.from.get())
            .ok()
            .and_then(|w| {
                Some(crate::protocol::From {
                    user: crate::ids::UserId::parse(&w.user)?,
                    name: w.name.into(),
                })
            })
        else {
            return;
        };
        let origin = match op {
            Some(op) => Origin::Session {
                session: op.session,
                outbox: op.outbox.clone(),
            },
            None => Origin::Api,
        };
        let msg = Publish {
            from,
            data: streams::message_data(stream, &live),
            id: op.and_then(|o| o.id.clone()),
            opts: PublishOptions::default(),
            origin,
            received: Instant::now(),
        };
        if matches!(msg.origin, Origin::Api) {
            // Publish counts API publishes as Hub operations; this one is not.
            self.hub_ops = self.hub_ops.saturating_sub(1);
        }
        let answer = <Room as Handler<Publish>>::handle(self, msg, ctx);
        ctx.spawn(answer.into_actor(self).map(|_, _, _| ()));
    }

    /// The catch-up frames for a joining member: each live stream's text
    /// so far, in one `stream:start`.
    pub(super) fn stream_catch_up(&self) -> impl Iterator<Item = Bytes> + '_ {
        self.streams
            .live
            .iter()
            .map(|(k, s)| streams::start_frame(&self.name, k, s))
    }

    /// A session left: the streams it produced end with `producer_left`.
    pub(super) fn producer_left(&mut self, session: SessionId, ctx: &mut Context<Self>) {
        let e = self.engine;
        e.producer_left(self, session);
        let me = SessionAddr::here(session);
        let gone: Vec<String> = self
            .streams
            .live
            .iter()
            .filter(|(_, s)| s.producer == me)
            .map(|(k, _)| k.clone())
            .collect();
        for stream in gone {
            self.fail_stream(stream, "producer_left", ctx);
        }
    }

    /// Ends a stream with an error made by the server.
    fn fail_stream(&mut self, stream: String, reason: &str, ctx: &mut Context<Self>) {
        let e = self.engine;
        e.fail_stream(self, stream, reason, ctx);
    }

    /// `fail_stream` on one node: ended here.
    pub(super) fn fail_stream_here(
        &mut self,
        stream: String,
        reason: &str,
        ctx: &mut Context<Self>,
    ) {
        let e = Event::Error {
            stream,
            reason: reason.into(),
        };
        self.apply_stream(e, None, ctx);
    }

    /// Re-arms the timer for the earliest stall.
    pub(super) fn schedule_stall(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.stream_timer.take() {
            ctx.cancel_future(h);
        }
        let after = self.stall_after();
        let Some(at) = self.streams.next_stall(after) else {
            return;
        };
        // Chunks move the deadline; the timer checks again then, not each chunk.
        let delay = at.saturating_duration_since(Instant::now()) + after / 8;
        self.stream_timer = Some(ctx.run_later(delay, |act, ctx| {
            act.stream_timer = None;
            let after = act.stall_after();
            for stream in act.streams.stalled(Instant::now(), after) {
                let mine = act.streams.live.get(&stream).is_some_and(|s| {
                    s.producer.is_here() || Instant::now().duration_since(s.last) >= after * 2
                });
                if mine {
                    act.fail_stream(stream, "timeout", ctx);
                }
            }
            act.schedule_stall(ctx);
        }));
    }

    /// When a stream counts as stalled: its producer's node ends it then;
    /// another node (with Redis) only at twice that, should that node be gone.
    fn stall_after(&self) -> std::time::Duration {
        self.stream_limits.stall
    }
}
