//! Publishing in a room: numbering, the fan-out, and the hand-off to
//! storage, for members' messages, REST publishes and the broker messages
//! of mapped rooms.
//!
//! A stored room hands out no seq before the database holds a reservation
//! covering it (`StoreHandle::seq_block` at a time, the next asked for when
//! half is left), so a crash can never make the room give a delivered seq
//! to a different message (DESIGN.md, "Sequence numbers after a crash").

use super::Room;
use crate::error::{ErrorCode, HubError};
use crate::ids::{now_ms, SessionId};
use crate::metrics::METRICS;
use crate::outbox::Outbox;
use crate::protocol::{encode, error_frame, From, PublishOptions, ServerFrame};
use crate::store::{Job, RoomMode, Waiter};
use actix::prelude::*;
use bytes::Bytes;
use serde_json::value::RawValue;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// Where a publish came from.
pub enum Origin {
    /// A member session; acks and errors go to its outbox.
    Session { session: SessionId, outbox: Outbox },
    /// The REST API, through the Hub.
    Api,
}

/// What a publish was answered: the seq its message has, and whether that
/// message was published before with the same idempotency key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accepted {
    pub seq: u64,
    pub duplicate: bool,
}

/// A message for the room. Answers the seq it was given.
#[derive(Message)]
#[rtype(result = "Result<Accepted, HubError>")]
pub struct Publish {
    pub from: From,
    pub data: Box<RawValue>,
    pub id: Option<String>,
    pub opts: PublishOptions,
    pub origin: Origin,
    /// When the server received it, for the delivery latency histogram.
    pub received: Instant,
}

impl Handler<Publish> for Room {
    type Result = ResponseFuture<Result<Accepted, HubError>>;

    fn handle(&mut self, msg: Publish, ctx: &mut Context<Self>) -> Self::Result {
        let e = self.engine;
        e.publish(self, msg, ctx)
    }
}

impl Room {
    /// `Publish` on one node: numbered here once the seq is reserved.
    pub(super) fn publish_here(
        &mut self,
        msg: Publish,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<Accepted, HubError>> {
        if self.seq_reserved(ctx) {
            let r = self.publish(msg);
            self.reserve_ahead(ctx);
            return Box::pin(r.answer());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.when_reserved(ctx, move |act, reserved| {
            let r = match reserved {
                Ok(()) => act.publish(msg),
                Err(e) => act.refuse(msg, e),
            };
            let _ = tx.send(r);
        });
        Box::pin(async move {
            match rx.await {
                Ok(r) => r.answer().await,
                Err(_) => Err(HubError::new(
                    ErrorCode::Unavailable,
                    "the room has stopped",
                )),
            }
        })
    }
}

/// A publish's answer: at once, or when its write has committed.
enum Published {
    Now(Result<Accepted, HubError>),
    AfterWrite(
        Accepted,
        tokio::sync::oneshot::Receiver<Result<(), HubError>>,
    ),
}

impl Published {
    async fn answer(self) -> Result<Accepted, HubError> {
        match self {
            Published::Now(r) => r,
            Published::AfterWrite(a, rx) => crate::store::reply(rx).await.map(|_| a),
        }
    }
}

/// A message from the MQTT broker for a mapped room (forwarded by the Hub):
/// it gets a `seq` and goes into history like any room message.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MqttRelay {
    pub msg: std::sync::Arc<crate::mqtt::message::MqttMessage>,
}

impl Handler<MqttRelay> for Room {
    type Result = ();

    fn handle(&mut self, msg: MqttRelay, ctx: &mut Context<Self>) {
        self.hub_ops += 1;
        let e = self.engine;
        e.relay_mqtt(self, &msg.msg, ctx);
    }
}

impl Room {
    /// `MqttRelay` on one node: numbered here once the seq is reserved.
    pub(super) fn relay_mqtt_here(
        &mut self,
        msg: &std::sync::Arc<crate::mqtt::message::MqttMessage>,
        ctx: &mut Context<Self>,
    ) {
        let msg = msg.clone();
        self.when_reserved(ctx, move |act, reserved| {
            if let Err(e) = reserved {
                // The broker was acknowledged on receipt; nobody can be told.
                METRICS.storage_errors.fetch_add(1, Relaxed);
                log::error!("room {}: MQTT message dropped: {}", act.name, e.message);
            } else {
                act.relay_mqtt(&msg);
            }
            act.report_if_idle();
        });
        self.reserve_ahead(ctx);
    }
}

impl Room {
    /// May the next message be numbered now? A numbering the database has
    /// never seen may hand out its first block at once: the reservation is
    /// sent to the writer first, and every message write carries it too, so
    /// whichever commit first records this numbering records the block; if
    /// none commits before a crash, the numbering is unknown after it and
    /// the room starts a new epoch (clients with the old one get
    /// `recovered:false`).
    fn seq_reserved(&mut self, ctx: &mut Context<Self>) -> bool {
        let Some((store, _)) = &self.storage else {
            return true;
        };
        if self.history.fresh && self.history.reserved == 0 {
            let block = store.seq_block();
            self.history.reserved = block;
            self.ask_reservation(ctx, block);
        }
        self.history.next_seq() <= self.history.reserved
    }

    /// Asks for the next block early, when half of this one is used.
    fn reserve_ahead(&mut self, ctx: &mut Context<Self>) {
        let Some((store, _)) = &self.storage else {
            return;
        };
        let block = store.seq_block();
        if !self.reserving && self.history.reserved < self.history.seq + block / 2 {
            self.ask_reservation(ctx, self.history.seq + block);
        }
    }

    /// Sends a reservation up to `upto` to the writer (at once, so it is
    /// ahead of the messages that follow) and records it when it commits,
    /// without waiting for it.
    fn ask_reservation(&mut self, ctx: &mut Context<Self>, upto: u64) {
        let Some((store, _)) = &self.storage else {
            return;
        };
        self.reserving = true;
        let h = &self.history;
        let fut = store.reserve_seqs(self.name.clone(), h.epoch.clone(), h.seq, upto);
        ctx.spawn(fut.into_actor(self).map(|r, act, _| {
            act.reserving = false;
            match r {
                Ok(upto) => act.history.reserved = act.history.reserved.max(upto),
                Err(e) => log::warn!("room {}: cannot reserve seqs: {}", act.name, e.message),
            }
        }));
    }

    /// Runs `then` once the next seq is reserved (at once if it is): the
    /// room handles nothing else meanwhile, so messages keep their order.
    /// `Err` when the reservation could not be stored.
    fn when_reserved<F>(&mut self, ctx: &mut Context<Self>, then: F)
    where
        F: FnOnce(&mut Room, Result<(), HubError>) + 'static,
    {
        if self.seq_reserved(ctx) {
            return then(self, Ok(()));
        }
        let Some((store, _)) = &self.storage else {
            return then(self, Ok(()));
        };
        let h = &self.history;
        let upto = h.seq + store.seq_block();
        let fut = store.reserve_seqs(self.name.clone(), h.epoch.clone(), h.seq, upto);
        ctx.wait(fut.into_actor(self).map(move |r, act, _| {
            let r = r.and_then(|upto| {
                act.history.reserved = act.history.reserved.max(upto);
                if act.history.next_seq() <= act.history.reserved {
                    Ok(())
                } else {
                    Err(HubError::new(
                        ErrorCode::StorageError,
                        "cannot reserve a seq",
                    ))
                }
            });
            if let Err(e) = &r {
                log::warn!("room {}: cannot reserve seqs: {}", act.name, e.message);
            }
            then(act, r)
        }));
    }

    /// Answers a publish that cannot be numbered (its seq could not be
    /// reserved): nobody sees it, the sender gets the error.
    fn refuse(&mut self, msg: Publish, e: HubError) -> Published {
        match &msg.origin {
            Origin::Session { outbox, .. } => {
                outbox.push(error_frame(e.code, &e.message, msg.id.as_deref(), None));
            }
            Origin::Api => {
                self.hub_ops += 1;
                self.report_if_idle();
            }
        }
        Published::Now(Err(e))
    }
}

impl Room {
    /// Hands a stored room's message to the writer, after its fan-out, in
    /// the slot `reserve` took before it. Answers the receiver an API
    /// publish waits on, in a durable room.
    fn persist(
        &self,
        seq: u64,
        ts: u64,
        frame: &Bytes,
        msg: &Publish,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<(), HubError>>> {
        let (_, mode) = self.storage.as_ref()?;
        let (waiter, rx) = match &msg.origin {
            Origin::Session { outbox, .. } => (
                Waiter::Session {
                    outbox: outbox.clone(),
                    id: msg.id.clone(),
                    ack: *mode == RoomMode::Durable,
                },
                None,
            ),
            Origin::Api => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                (Waiter::Api(tx), (*mode == RoomMode::Durable).then_some(rx))
            }
        };
        if let Some((store, _)) = &self.storage {
            store.send_reserved(Job::Message {
                room: self.name.clone(),
                epoch: self.history.epoch.clone(),
                seq,
                reserved: self.history.reserved,
                ts,
                frame: frame.clone(),
                idem: msg.opts.key.clone(),
                waiter,
            });
        }
        rx
    }

    fn acks_after_write(&self) -> bool {
        matches!(self.storage, Some((_, RoomMode::Durable)))
    }

    fn publish(&mut self, msg: Publish) -> Published {
        match &msg.origin {
            Origin::Session { session, outbox } if !self.members.contains_key(session) => {
                outbox.push(error_frame(
                    ErrorCode::NotMember,
                    "join the room before sending to it",
                    msg.id.as_deref(),
                    None,
                ));
                return Published::Now(Err(HubError::new(ErrorCode::NotMember, "not a member")));
            }
            Origin::Session { .. } => {}
            Origin::Api => self.hub_ops += 1,
        }
        let ts = now_ms();
        if msg.opts.volatile {
            return self.publish_volatile(msg, ts);
        }
        if let Some(first) = msg
            .opts
            .key
            .as_ref()
            .and_then(|k| self.history.key_seq(k, ts))
        {
            return self.duplicate(msg, first);
        }
        let seq = self.history.next_seq();
        let frame = encode(&ServerFrame::Message {
            room: &self.name,
            seq,
            from: &msg.from,
            data: &msg.data,
            ts,
            id: msg.id.as_deref(),
            priority: msg.opts.priority.shown(),
        });
        // A slot in the writer's queue is taken before the fan-out, so a
        // message refused because storage is busy is never seen by anyone.
        let reserved = self.storage.as_ref().is_none_or(|(s, _)| s.reserve());
        if !reserved {
            return self.busy(&msg);
        }
        self.history.push(seq, frame.clone());
        if let Some(key) = &msg.opts.key {
            self.history.remember_key(key.clone(), seq, ts);
        }
        METRICS.messages_published.fetch_add(1, Relaxed);
        if crate::webhooks::messages_of(self.name.as_str()) {
            crate::webhooks::emit(crate::webhooks::Event::MessagePublished {
                room: self.name.as_str(),
                seq,
                user: msg.from.user.as_str(),
                name: &msg.from.name,
                data: &msg.data,
            });
        }
        let except = match &msg.origin {
            Origin::Session { session, .. } if msg.opts.exclude_self => Some(*session),
            _ => None,
        };
        self.broadcast_as(&frame, except, msg.opts.class());
        crate::watch::deliver(&self.name, &frame, except, msg.opts.class());
        METRICS.delivery_latency(msg.received.elapsed());
        // Only now the writer: the fan-out never waits for it, not even to wake it.
        let written = self.persist(seq, ts, &frame, &msg);
        match (&msg.origin, &msg.id) {
            // A durable room's ack comes from the writer, after the commit.
            (Origin::Session { outbox, .. }, Some(id)) if !self.acks_after_write() => {
                outbox.push(encode(&ServerFrame::Ack { id, seq: Some(seq) }));
            }
            (Origin::Api, _) => self.report_if_idle(),
            _ => {}
        }
        let accepted = Accepted {
            seq,
            duplicate: false,
        };
        match written {
            Some(rx) => Published::AfterWrite(accepted, rx),
            None => Published::Now(Ok(accepted)),
        }
    }

    /// A volatile message: delivered to the members now, dropped first by
    /// their queues, given no seq, kept nowhere (a rejoin with `since`
    /// cannot bring it back). The sender's `ack` has no `seq`.
    fn publish_volatile(&mut self, msg: Publish, ts: u64) -> Published {
        let frame = encode(&ServerFrame::VolatileMessage {
            room: &self.name,
            from: &msg.from,
            data: &msg.data,
            ts,
            id: msg.id.as_deref(),
            priority: msg.opts.priority.shown(),
            volatile: true,
        });
        let except = match &msg.origin {
            Origin::Session { session, .. } if msg.opts.exclude_self => Some(*session),
            _ => None,
        };
        self.broadcast_as(&frame, except, msg.opts.class());
        crate::watch::deliver(&self.name, &frame, except, msg.opts.class());
        match (&msg.origin, &msg.id) {
            (Origin::Session { outbox, .. }, Some(id)) => {
                outbox.push(encode(&ServerFrame::Ack { id, seq: None }));
            }
            (Origin::Api, _) => self.report_if_idle(),
            _ => {}
        }
        Published::Now(Ok(Accepted {
            seq: 0,
            duplicate: false,
        }))
    }

    /// Refuses a publish because the writer's queue is full: nobody saw it.
    fn busy(&mut self, msg: &Publish) -> Published {
        let why = "storage is busy; retry shortly";
        if let Origin::Session { outbox, .. } = &msg.origin {
            outbox.push(error_frame(
                ErrorCode::RateLimited,
                why,
                msg.id.as_deref(),
                Some(50),
            ));
        } else {
            self.report_if_idle();
        }
        Published::Now(Err(HubError::new(ErrorCode::RateLimited, why)))
    }

    /// Answers a publish whose idempotency key names message `seq`: the
    /// same seq, nothing delivered or stored. In a durable room the answer
    /// goes through the writer behind every job sent before, so it never
    /// comes before the first message's own commit (the first may still be
    /// in the writer's queue).
    fn duplicate(&mut self, msg: Publish, seq: u64) -> Published {
        let accepted = Accepted {
            seq,
            duplicate: true,
        };
        let durable = match &self.storage {
            Some((store, RoomMode::Durable)) => Some(store.clone()),
            _ => None,
        };
        let Some(store) = durable else {
            match (&msg.origin, &msg.id) {
                (Origin::Session { outbox, .. }, Some(id)) => {
                    outbox.push(encode(&ServerFrame::AckDuplicate {
                        id,
                        seq,
                        duplicate: true,
                    }));
                }
                (Origin::Api, _) => self.report_if_idle(),
                _ => {}
            }
            return Published::Now(Ok(accepted));
        };
        if !store.reserve() {
            return self.busy(&msg);
        }
        let (waiter, rx) = match msg.origin {
            Origin::Session { outbox, .. } => (
                Waiter::Session {
                    outbox,
                    id: msg.id,
                    ack: true,
                },
                None,
            ),
            Origin::Api => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                self.report_if_idle();
                (Waiter::Api(tx), Some(rx))
            }
        };
        store.send_reserved(Job::Duplicate { seq, waiter });
        match rx {
            Some(rx) => Published::AfterWrite(accepted, rx),
            None => Published::Now(Ok(accepted)),
        }
    }
}

impl Room {
    /// Numbers, delivers and stores a broker message. Nobody can be told to
    /// retry (the broker was acknowledged on receipt), so it is handed to
    /// the writer past `SWITCHBOARD_DB_QUEUE` rather than refused: its seq
    /// always reaches the database.
    fn relay_mqtt(&mut self, msg: &crate::mqtt::message::MqttMessage) {
        let seq = self.history.next_seq();
        let frame = msg.frame(Some((&self.name, seq)));
        self.history.push(seq, frame.clone());
        METRICS.messages_published.fetch_add(1, Relaxed);
        self.broadcast(&frame, None);
        crate::watch::deliver(&self.name, &frame, None, crate::delivery::Class::Normal);
        if let Some((store, _)) = &self.storage {
            store.send(Job::Message {
                room: self.name.clone(),
                epoch: self.history.epoch.clone(),
                seq,
                reserved: self.history.reserved,
                ts: msg.ts,
                frame,
                idem: None,
                waiter: Waiter::Nobody,
            });
        }
    }
}
