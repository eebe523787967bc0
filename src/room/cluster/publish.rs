//! Publishing into a shared room: the publish script numbers the message in
//! Redis; members (here too) get it from the room's channel. The sender's
//! ack follows its own copy, and acks and errors keep the order of the
//! sends whatever order Redis's answers are handled in.

use super::super::{Accepted, Origin, Publish, Room};
use super::split_seq;
use crate::cluster::scripts::{self, Lua, Published};
use crate::error::{ErrorCode, HubError};
use crate::ids::{now_ms, random_hex};
use crate::metrics::METRICS;
use crate::outbox::Outbox;
use crate::protocol::{encode, error_frame, ServerFrame};
use actix::prelude::*;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// Redis answered publish number `ticket`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Answered {
    ticket: u64,
    answer: Answer,
}

impl Handler<Answered> for Room {
    type Result = ();

    fn handle(&mut self, msg: Answered, _: &mut Context<Self>) {
        self.replica().answers.insert(msg.ticket, msg.answer);
        self.answer_in_order();
    }
}

/// A publish's answer from Redis, waiting for its turn.
pub struct Answer {
    outcome: Result<Published, HubError>,
    /// The sending session's outbox (none for the REST API).
    outbox: Option<Outbox>,
    id: Option<String>,
    received: Instant,
}

impl Room {
    /// Publishes a member's (or the API's) message through Redis. The
    /// sender's ack follows its own copy of the message.
    /// The caller's answer comes from Redis's (even if this actor stops
    /// meanwhile); the acks and errors are handled here, in order.
    pub(in crate::room) fn replica_publish(
        &mut self,
        msg: Publish,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<Accepted, HubError>> {
        let outbox = match &msg.origin {
            Origin::Session { session, outbox } => {
                if !self.members.contains_key(session) {
                    outbox.push(error_frame(
                        ErrorCode::NotMember,
                        "join the room before sending to it",
                        msg.id.as_deref(),
                        None,
                    ));
                    let e = HubError::new(ErrorCode::NotMember, "not a member");
                    return Box::pin(std::future::ready(Err(e)));
                }
                Some(outbox.clone())
            }
            Origin::Api => {
                self.hub_ops += 1;
                None
            }
        };
        if msg.opts.volatile {
            return self.replica_volatile(msg, outbox);
        }
        let frame = encode(&ServerFrame::Message {
            room: &self.name,
            seq: u64::MAX,
            from: &msg.from,
            data: &msg.data,
            ts: now_ms(),
            id: msg.id.as_deref(),
            priority: msg.opts.priority.shown(),
        });
        let excluded = match &msg.origin {
            Origin::Session { session, .. } if msg.opts.exclude_self => {
                format!("{}/{}", self.replica().c.node(), session.0)
            }
            _ => "-".to_string(),
        };
        let fut = self.publish_frame(&frame, msg.opts.key.as_ref(), excluded);
        // Emitted by the publishing node only, once Redis has numbered it.
        let hook = crate::webhooks::messages_of(self.name.as_str())
            .then(|| (self.name.clone(), msg.from.clone(), msg.data.clone()));
        let r = self.replica();
        let ticket = r.next_ticket;
        r.next_ticket += 1;
        let (id, received) = (msg.id, msg.received);
        let me = ctx.address();
        Box::pin(async move {
            let outcome = fut.await;
            if let (Ok(Published::New { seq, .. }), Some((room, from, data))) = (&outcome, &hook) {
                crate::webhooks::emit(crate::webhooks::Event::MessagePublished {
                    room: room.as_str(),
                    seq: *seq,
                    user: from.user.as_str(),
                    name: &from.name,
                    data,
                });
            }
            let result = match &outcome {
                Ok(Published::New { seq, .. }) => Ok(Accepted {
                    seq: *seq,
                    duplicate: false,
                }),
                Ok(Published::Duplicate { seq, .. }) => Ok(Accepted {
                    seq: *seq,
                    duplicate: true,
                }),
                Err(e) => Err(e.clone()),
            };
            me.do_send(Answered {
                ticket,
                answer: Answer {
                    outcome,
                    outbox,
                    id,
                    received,
                },
            });
            result
        })
    }

    /// Handles the answers whose turn has come.
    fn answer_in_order(&mut self) {
        loop {
            let r = self.replica();
            let Some(a) = r.answers.remove(&r.next_answer) else {
                return;
            };
            r.next_answer += 1;
            self.answer(a);
        }
    }

    fn answer(&mut self, a: Answer) {
        let Answer {
            outcome,
            outbox,
            id,
            received,
        } = a;
        match (outcome, &outbox) {
            (Ok(Published::New { seq, .. }), _) => {
                METRICS.messages_published.fetch_add(1, Relaxed);
                METRICS.delivery_latency(received.elapsed());
                if let (Some(outbox), Some(id)) = (outbox, id) {
                    // After the sender's own copy of the message.
                    if seq <= self.history.seq {
                        outbox.push(encode(&ServerFrame::Ack {
                            id: &id,
                            seq: Some(seq),
                        }));
                    } else {
                        let acks = &mut self.replica().acks;
                        acks.entry(seq).or_default().push((outbox, id));
                    }
                }
            }
            (Ok(Published::Duplicate { seq, .. }), Some(outbox)) => {
                if let Some(id) = &id {
                    outbox.push(encode(&ServerFrame::AckDuplicate {
                        id,
                        seq,
                        duplicate: true,
                    }));
                }
            }
            (Err(e), Some(outbox)) => {
                outbox.push(error_frame(e.code, &e.message, id.as_deref(), Some(500)));
            }
            (_, None) => self.report_if_idle(),
        }
    }

    /// Runs the publish script for `frame` (with the placeholder seq).
    /// A volatile message goes straight to the room's channel
    /// (`V<excluded> <frame>`): no seq, not in the stream.
    fn replica_volatile(
        &mut self,
        msg: Publish,
        outbox: Option<crate::outbox::Outbox>,
    ) -> ResponseFuture<Result<Accepted, HubError>> {
        let frame = encode(&ServerFrame::VolatileMessage {
            room: &self.name,
            from: &msg.from,
            data: &msg.data,
            ts: now_ms(),
            id: msg.id.as_deref(),
            priority: msg.opts.priority.shown(),
            volatile: true,
        });
        let r = self.replica();
        let excluded = match &msg.origin {
            Origin::Session { session, .. } if msg.opts.exclude_self => {
                format!("{}/{}", r.c.node(), session.0)
            }
            _ => "-".to_string(),
        };
        let mut payload = format!("V{excluded} ").into_bytes();
        payload.extend_from_slice(&frame);
        // On the Redis of the room's messages: the same channel as theirs.
        let fut =
            r.m.command(redis::cmd("PUBLISH").arg(&r.chan).arg(payload).clone());
        let id = msg.id;
        Box::pin(async move {
            if let Err(e) = fut.await {
                if let Some(outbox) = &outbox {
                    outbox.push(error_frame(e.code, &e.message, id.as_deref(), Some(500)));
                }
                return Err(e);
            }
            if let (Some(outbox), Some(id)) = (outbox, &id) {
                outbox.push(encode(&ServerFrame::Ack { id, seq: None }));
            }
            Ok(Accepted {
                seq: 0,
                duplicate: false,
            })
        })
    }

    fn publish_frame(
        &self,
        frame: &[u8],
        key: Option<&crate::idempotency::IdemKey>,
        excluded: String,
    ) -> impl std::future::Future<Output = Result<Published, HubError>> + 'static {
        let r = self.replica.as_ref().expect("cluster room");
        let c = &r.m;
        let (head, tail) = split_seq(frame).unwrap_or_default();
        let limits = self.history.limits();
        let fut = c.script(
            Lua::Publish,
            vec![
                c.room_key(&self.name, "m"),
                c.room_key(&self.name, "x"),
                r.chan.clone(),
                c.room_key(&self.name, &format!("k:{}", key.map_or("", |k| k.as_str()))),
            ],
            vec![
                random_hex(8).into_bytes(),
                r.keep.to_string().into_bytes(),
                head,
                tail,
                limits.keys.window_ms.max(1).to_string().into_bytes(),
                if key.is_some() && limits.keys.window_ms > 0 {
                    b"1".to_vec()
                } else {
                    b"0".to_vec()
                },
                excluded.into_bytes(),
            ],
        );
        async move {
            let v = fut.await?;
            scripts::published(&v)
                .ok_or_else(|| HubError::new(ErrorCode::Internal, "unexpected answer from Redis"))
        }
    }

    /// A broker message for a mapped room, numbered through Redis.
    pub(in crate::room) fn replica_mqtt(&mut self, msg: &crate::mqtt::message::MqttMessage) {
        let frame = msg.frame(Some((&self.name, u64::MAX)));
        let fut = self.publish_frame(&frame, None, "-".into());
        let room = self.name.clone();
        actix::spawn(async move {
            match fut.await {
                Ok(_) => {
                    METRICS.messages_published.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    METRICS.storage_errors.fetch_add(1, Relaxed);
                    log::error!("room {room}: MQTT message dropped: {}", e.message);
                }
            }
        });
    }
}
