//! The MqttBridge actor: owns the broker subscriptions, routes messages from
//! the broker to mapped rooms (through the Hub, so they get a room `seq` and
//! history) and to subscribed sessions, and carries client publishes to the
//! broker, acknowledging each after the broker's PUBACK (QoS 1).
//!
//! It runs on its own arbiter. Requests to rumqttc use the non-blocking
//! `try_*` calls; what does not fit waits in the [`Pipeline`] and is retried
//! as the broker acknowledges. Nothing here ever waits for the event loop, and
//! the event loop never waits for this actor.

use super::link;
use super::message::MqttMessage;
use super::payload;
use super::pipeline::{Outgoing, Pipeline, Refused};
use super::status::BridgeStatus;
use super::subs::{Change, SubError, Subscriptions};
use super::topic::{TopicFilter, TopicName};
use crate::config::MqttConfig;
use crate::error::ErrorCode;
use crate::hub::{Hub, MqttToRoom};
use crate::ids::{now_ms, RoomName, SessionId};
use crate::metrics::METRICS;
use crate::monitor::events::{self, Event};
use crate::monitor::flow::{self, FlowKind, SenderKind};
use crate::outbox::Outbox;
use crate::protocol::{encode, error_frame, ServerFrame};
use actix::prelude::*;
use bytes::Bytes;
use rumqttc::{AsyncClient, QoS, SubscribeFilter, SubscribeReasonCode};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Who is told when a client publish is done.
pub struct Done {
    outbox: Outbox,
    id: Option<String>,
}

/// A session waiting for the broker to confirm a subscription.
struct Waiter {
    session: SessionId,
    filter: TopicFilter,
    id: Option<String>,
    outbox: Outbox,
}

pub struct MqttBridge {
    cfg: MqttConfig,
    hub: Addr<Hub>,
    status: Arc<BridgeStatus>,
    client: Option<AsyncClient>,
    connected: bool,
    /// Whether the bridge has ever connected (later connections are reconnects).
    ever_connected: bool,
    subs: Subscriptions<Outbox>,
    pipeline: Pipeline<Done>,
    waiting: Vec<Waiter>,
    /// The latest health, published retained on every (re)connect.
    health: Option<Bytes>,
}

impl MqttBridge {
    pub fn new(cfg: MqttConfig, hub: Addr<Hub>, status: Arc<BridgeStatus>) -> MqttBridge {
        let configured = cfg
            .subscriptions
            .iter()
            .cloned()
            .chain(cfg.rooms.iter().map(|(f, _)| f.clone()))
            .collect();
        MqttBridge {
            subs: Subscriptions::new(configured, cfg.filters_per_session),
            pipeline: Pipeline::new(cfg.queue),
            cfg,
            hub,
            status,
            client: None,
            connected: false,
            ever_connected: false,
            waiting: Vec::new(),
            health: None,
        }
    }

    fn sync_status(&self) {
        let (queued, subscriptions) = (self.pipeline.pending(), self.subs.broker_len());
        self.status.update(|l| {
            l.queued = queued;
            l.subscriptions = subscriptions;
        });
    }

    /// Hands whatever is waiting to rumqttc, as far as it takes it.
    fn pump(&mut self) {
        let (Some(client), true) = (&self.client, self.connected) else {
            return;
        };
        let done = self.pipeline.pump(|p| {
            let qos = if p.qos1 {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            };
            client
                .try_publish(p.topic.clone(), qos, p.retain, p.payload.clone())
                .is_ok()
        });
        for d in done {
            self.status.published.fetch_add(1, Relaxed);
            ack(d);
        }
        self.sync_status();
    }

    fn subscribe(&mut self, filters: Vec<TopicFilter>) {
        let (Some(client), true) = (&self.client, self.connected) else {
            return;
        };
        if filters.is_empty() {
            return;
        }
        let req: Vec<SubscribeFilter> = filters
            .iter()
            .map(|f| SubscribeFilter::new(f.as_str().to_string(), QoS::AtLeastOnce))
            .collect();
        match client.try_subscribe_many(req) {
            Ok(()) => self.pipeline.subscribe_handed(filters),
            // rumqttc's queue is full of publishes: resubscribing on the next
            // reconnect is the fallback; say so rather than hide it.
            Err(e) => self.note_error(&format!("subscribe not sent: {e}")),
        }
    }

    fn apply(&mut self, change: Change) {
        let unsub = change.unsubscribe;
        self.subscribe(change.subscribe);
        if let (Some(client), true) = (&self.client, self.connected) {
            for f in unsub {
                let _ = client.try_unsubscribe(f.as_str());
            }
        }
        self.sync_status();
    }

    fn note_error(&self, message: &str) {
        log::warn!("mqtt: {message}");
        self.status.update(|l| {
            l.last_error = Some(message.to_string());
            l.last_error_ts = Some(now_ms());
        });
        events::record(Event::new("mqtt_error", message));
    }

    /// Answers waiters whose filter is now confirmed (or all, `force`, as not yet active).
    fn answer_waiters(&mut self, force: bool) {
        let subs = &self.subs;
        let (ready, still): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| force || subs.is_active(&w.filter));
        self.waiting = still;
        for w in ready {
            let active = self.subs.is_active(&w.filter);
            w.outbox
                .push(subscribed(&w.filter, active, w.id.as_deref()));
        }
    }

    fn on_message(&mut self, p: rumqttc::Publish) {
        // Over the setting but under rumqttc's ceiling (link::INCOMING_CEILING):
        // dropped here, before anyone sees it (rumqttc has acknowledged it).
        if p.size() > self.cfg.max_packet {
            let n = self.status.oversized.fetch_add(1, Relaxed);
            let log = if n == 0 {
                log::Level::Warn
            } else {
                log::Level::Debug
            };
            log::log!(
                log,
                "MQTT message on {:?} dropped: {} bytes, over SWITCHBOARD_MQTT_MAX_PACKET ({}); \
                 counted in switchboard_mqtt_oversized_total",
                p.topic,
                p.size(),
                self.cfg.max_packet
            );
            return;
        }
        self.status.received.fetch_add(1, Relaxed);
        flow::record(
            FlowKind::MqttIn,
            &p.topic,
            p.payload.len(),
            SenderKind::Mqtt,
        );
        let qos = match p.qos {
            QoS::AtMostOnce => 0,
            _ => 1,
        };
        let msg = Arc::new(MqttMessage::new(
            &p.topic,
            payload::render(&p.payload),
            qos,
            p.retain,
        ));
        let mut rooms: Vec<&RoomName> = self
            .cfg
            .rooms
            .iter()
            .filter(|(f, _)| f.matches(&p.topic))
            .map(|(_, r)| r)
            .collect();
        rooms.sort();
        rooms.dedup();
        for room in rooms {
            self.hub.do_send(MqttToRoom {
                room: room.clone(),
                msg: msg.clone(),
            });
        }
        let targets = self.subs.targets(&p.topic);
        if !targets.is_empty() {
            let frame = msg.frame(None);
            let n = targets.iter().filter(|o| o.push(frame.clone())).count();
            METRICS.deliveries.fetch_add(n as u64, Relaxed);
        }
    }

    fn on_connected(&mut self) {
        self.connected = true;
        let reconnect = std::mem::replace(&mut self.ever_connected, true);
        self.status.update(|l| {
            l.connected = true;
            if reconnect {
                l.reconnects += 1;
            }
        });
        log::info!("mqtt: connected to {}", self.status.get().broker);
        events::record(Event::new("mqtt_connected", &self.status.get().broker));
        // A clean session: the broker remembers nothing of the last one.
        self.subs.disconnected();
        let all = self.subs.broker();
        self.subscribe(all);
        if let Some(h) = self.health.clone() {
            self.publish_health(h);
        }
        self.pump();
    }

    fn on_down(&mut self, error: String) {
        let was = std::mem::replace(&mut self.connected, false);
        let changed = self.status.get().last_error.as_deref() != Some(error.as_str());
        self.status.update(|l| {
            l.connected = false;
            l.last_error = Some(error.clone());
            l.last_error_ts = Some(now_ms());
        });
        // Repeated identical connect failures are one event, not one per retry.
        if was || changed {
            log::warn!("mqtt: disconnected: {error}");
            events::record(Event::new("mqtt_disconnected", &error));
        }
        self.subs.disconnected();
        self.pipeline.disconnected();
        self.answer_waiters(true);
        self.sync_status();
    }

    fn publish_health(&mut self, frame: Bytes) {
        if self.cfg.health_prefix.is_empty() || !self.connected {
            return;
        }
        self.pipeline.offer_internal(Outgoing {
            topic: format!("{}/health", self.cfg.health_prefix),
            payload: frame.to_vec(),
            // At most once: a fresh one follows every interval and reconnect,
            // and it never takes a slot of the client publish bound.
            qos1: false,
            retain: true,
            reply: None,
        });
        self.pump();
    }
}

fn ack(d: Done) {
    if let Some(id) = &d.id {
        d.outbox.push(encode(&ServerFrame::Ack { id, seq: None }));
    }
}

/// `mqtt:subscribed` / `mqtt:unsubscribed` (`active` only on the first).
fn reply(ty: &str, filter: &TopicFilter, active: Option<bool>, id: Option<&str>) -> Bytes {
    let mut v = serde_json::json!({ "type": ty, "filter": filter });
    if let Some(a) = active {
        v["active"] = a.into();
    }
    if let Some(id) = id {
        v["id"] = id.into();
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

fn subscribed(filter: &TopicFilter, active: bool, id: Option<&str>) -> Bytes {
    reply("mqtt:subscribed", filter, Some(active), id)
}

impl Actor for MqttBridge {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(usize::MAX >> 4);
        match link::options(&self.cfg) {
            Ok(o) => self.client = Some(link::start(&self.cfg, o, ctx.address())),
            Err(e) => self.note_error(&e),
        }
        self.sync_status();
    }
}

/// From the event loop (link.rs).
#[derive(Message)]
#[rtype(result = "()")]
pub enum Link {
    Connected,
    Down(String),
    Message(rumqttc::Publish),
    Written(u16),
    PubAck(u16),
    SubscribeWritten(u16),
    SubAck(rumqttc::SubAck),
    Collision(u16),
}

impl Handler<Link> for MqttBridge {
    type Result = ();

    fn handle(&mut self, msg: Link, _: &mut Context<Self>) {
        match msg {
            Link::Connected => self.on_connected(),
            Link::Down(e) => self.on_down(e),
            Link::Message(p) => self.on_message(p),
            Link::Written(pkid) => self.pipeline.written(pkid),
            Link::PubAck(pkid) => {
                if let Some(d) = self.pipeline.acked(pkid) {
                    self.status.published.fetch_add(1, Relaxed);
                    ack(d);
                }
                self.pump();
            }
            Link::SubscribeWritten(pkid) => self.pipeline.subscribe_written(pkid),
            Link::SubAck(s) => {
                let filters = self.pipeline.subscribe_acked(s.pkid);
                for (f, code) in filters.iter().zip(s.return_codes.iter()) {
                    let ok = matches!(code, SubscribeReasonCode::Success(_));
                    self.subs.confirmed(f, ok);
                    if !ok {
                        self.note_error(&format!("the broker refused the subscription {f}"));
                        self.refuse_waiters(f);
                    }
                }
                self.answer_waiters(false);
            }
            // Cannot happen while the hand-off window stays below rumqttc's
            // inflight (pipeline.rs); if it did, that publish's ack may be lost.
            Link::Collision(pkid) => log::warn!("mqtt: packet id collision on {pkid}"),
        }
    }
}

impl MqttBridge {
    /// The broker refused `f`: the sessions waiting on it get `forbidden`,
    /// and their filters are dropped.
    fn refuse_waiters(&mut self, f: &TopicFilter) {
        let (refused, still): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| f.covers(&w.filter));
        self.waiting = still;
        for w in refused {
            let _ = self.subs.remove(w.session, &w.filter);
            w.outbox.push(error_frame(
                ErrorCode::Forbidden,
                &format!("the broker refused the subscription {f}"),
                w.id.as_deref(),
                None,
            ));
        }
    }
}

/// `mqtt:subscribe` from a session (access was checked by the session).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub session: SessionId,
    pub filter: TopicFilter,
    pub id: Option<String>,
    pub outbox: Outbox,
}

impl Handler<Subscribe> for MqttBridge {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        match self
            .subs
            .add(msg.session, msg.filter.clone(), msg.outbox.clone())
        {
            Err(SubError::TooMany(n)) => {
                msg.outbox.push(error_frame(
                    ErrorCode::TooManyFilters,
                    &format!("at most {n} MQTT filters per connection"),
                    msg.id.as_deref(),
                    None,
                ));
            }
            Err(SubError::NotSubscribed) => {}
            Ok(change) => {
                self.apply(change);
                if self.connected && !self.subs.is_active(&msg.filter) {
                    self.waiting.push(Waiter {
                        session: msg.session,
                        filter: msg.filter,
                        id: msg.id,
                        outbox: msg.outbox,
                    });
                } else {
                    let active = self.subs.is_active(&msg.filter);
                    msg.outbox
                        .push(subscribed(&msg.filter, active, msg.id.as_deref()));
                }
            }
        }
    }
}

/// `mqtt:unsubscribe` from a session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub session: SessionId,
    pub filter: TopicFilter,
    pub id: Option<String>,
    pub outbox: Outbox,
}

impl Handler<Unsubscribe> for MqttBridge {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
        match self.subs.remove(msg.session, &msg.filter) {
            Ok(change) => {
                self.waiting
                    .retain(|w| !(w.session == msg.session && w.filter == msg.filter));
                self.apply(change);
                msg.outbox.push(reply(
                    "mqtt:unsubscribed",
                    &msg.filter,
                    None,
                    msg.id.as_deref(),
                ));
            }
            Err(_) => {
                msg.outbox.push(error_frame(
                    ErrorCode::NotSubscribed,
                    &format!("not subscribed to {}", msg.filter),
                    msg.id.as_deref(),
                    None,
                ));
            }
        }
    }
}

/// A session with MQTT filters ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionGone {
    pub session: SessionId,
}

impl Handler<SessionGone> for MqttBridge {
    type Result = ();

    fn handle(&mut self, msg: SessionGone, _: &mut Context<Self>) {
        self.waiting.retain(|w| w.session != msg.session);
        let change = self.subs.remove_session(msg.session);
        self.apply(change);
    }
}

/// `mqtt:publish` from a session (access and syntax were checked).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub topic: TopicName,
    pub payload: Vec<u8>,
    pub qos1: bool,
    pub retain: bool,
    pub id: Option<String>,
    pub outbox: Outbox,
    pub sender: SenderKind,
}

impl Handler<Publish> for MqttBridge {
    type Result = ();

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        let size = msg.payload.len();
        let out = Outgoing {
            topic: msg.topic.as_str().to_string(),
            payload: msg.payload,
            qos1: msg.qos1,
            retain: msg.retain,
            reply: Some(Done {
                outbox: msg.outbox,
                id: msg.id,
            }),
        };
        match self.pipeline.offer(out, self.connected) {
            Ok(()) => {
                flow::record(FlowKind::MqttOut, msg.topic.as_str(), size, msg.sender);
                self.pump();
            }
            Err((why, p)) => {
                self.status.refused.fetch_add(1, Relaxed);
                let (code, text) = match why {
                    Refused::Full => (
                        ErrorCode::MqttQueueFull,
                        format!(
                            "{} publishes are already waiting for the MQTT broker; retry later",
                            self.pipeline.pending()
                        ),
                    ),
                    Refused::Away => (
                        ErrorCode::MqttUnavailable,
                        "the MQTT broker is not connected (QoS 0 publishes are not queued)"
                            .to_string(),
                    ),
                };
                if let Some(d) = p.reply {
                    d.outbox
                        .push(error_frame(code, &text, d.id.as_deref(), None));
                }
            }
        }
        self.sync_status();
    }
}

/// The monitor's latest `health:update`, for `<prefix>/health` (retained).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishHealth(pub Bytes);

impl Handler<PublishHealth> for MqttBridge {
    type Result = ();

    fn handle(&mut self, msg: PublishHealth, _: &mut Context<Self>) {
        self.health = Some(msg.0.clone());
        self.publish_health(msg.0);
    }
}
