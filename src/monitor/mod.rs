//! The live monitor: a `monitor` channel that admins (or anyone, with
//! `SWITCHBOARD_MONITOR_PUBLIC`) join with `room:join`, which receives
//! `health:update` (every `SWITCHBOARD_HEALTH_INTERVAL_MS` and whenever a
//! component changes state) and `message:flow` (every second). Health is also
//! handed to the MQTT bridge, which publishes it retained at `<prefix>/health`.
//!
//! The Monitor actor only reads counters and asks the Hub for its counts; it is
//! never on a message's path. [`flow`] records messages, [`events`] keeps the
//! system event ring behind `GET /api/events`.

pub mod events;
pub mod flow;

use crate::auth::Identity;
use crate::config::Config;
use crate::hub::{GetStats, Hub, Stats};
use crate::ids::{now_ms, RoomName, SessionId};
use crate::metrics::METRICS;
use crate::mqtt::bridge::{MqttBridge, PublishHealth};
use crate::mqtt::status::BridgeStatus;
use crate::outbox::Outbox;
use crate::protocol::{encode, ServerFrame};
use actix::prelude::*;
use bytes::Bytes;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The channel's name, reserved: it is not a room.
pub const ROOM: &str = "monitor";
/// How often `message:flow` is sent.
pub const FLOW_INTERVAL: Duration = Duration::from_secs(1);
/// How often the bridge's state is checked for a change.
const CHANGE_CHECK: Duration = Duration::from_millis(200);

/// May `who` join the monitor (and read `GET /api/events`)?
pub fn may_watch(who: &Identity, cfg: &Config) -> bool {
    cfg.monitor.public || who.role == crate::auth::Role::Admin
}

/// The MQTT bridge, as the monitor and the HTTP routes see it.
#[derive(Clone)]
pub struct BridgeHandle {
    pub addr: Addr<MqttBridge>,
    pub status: Arc<BridgeStatus>,
}

/// Messages in and out per second, sampled every [`FLOW_INTERVAL`].
struct Rates {
    at: Instant,
    total_in: u64,
    total_out: u64,
    in_per_s: f64,
    out_per_s: f64,
}

pub struct Monitor {
    hub: Addr<Hub>,
    bridge: Option<BridgeHandle>,
    started: Instant,
    interval: Duration,
    watchers: HashMap<SessionId, Outbox>,
    rates: Rates,
    seen_version: u64,
    store: Arc<crate::store::status::StoreStatus>,
    /// With several nodes: the Redis links and the cluster-wide figures.
    cluster: Option<crate::cluster::Cluster>,
    /// Whether every Redis answered, as last shown.
    redis_up: bool,
}

/// Every message that left the hub: frames queued to sessions, publishes sent to the broker.
fn total_out(bridge: &Option<BridgeHandle>) -> u64 {
    METRICS.deliveries.load(Relaxed)
        + bridge
            .as_ref()
            .map_or(0, |b| b.status.published.load(Relaxed))
}

impl Monitor {
    pub fn new(
        hub: Addr<Hub>,
        bridge: Option<BridgeHandle>,
        started: Instant,
        cfg: &Config,
        store: Arc<crate::store::status::StoreStatus>,
    ) -> Monitor {
        let rates = Rates {
            at: Instant::now(),
            total_in: flow::FLOW.messages_in.load(Relaxed),
            total_out: total_out(&bridge),
            in_per_s: 0.0,
            out_per_s: 0.0,
        };
        Monitor {
            hub,
            bridge,
            started,
            interval: cfg.monitor.health_interval,
            watchers: HashMap::new(),
            rates,
            seen_version: 0,
            store,
            cluster: None,
            redis_up: true,
        }
    }

    /// Shows the cluster (`components.cluster`).
    pub fn with_cluster(mut self, c: Option<crate::cluster::Cluster>) -> Monitor {
        self.cluster = c;
        self
    }

    fn sample(&mut self) {
        let now = Instant::now();
        let (i, o) = (
            flow::FLOW.messages_in.load(Relaxed),
            total_out(&self.bridge),
        );
        let secs = now.duration_since(self.rates.at).as_secs_f64().max(0.001);
        self.rates.in_per_s = (i - self.rates.total_in) as f64 / secs;
        self.rates.out_per_s = (o.saturating_sub(self.rates.total_out)) as f64 / secs;
        self.rates = Rates {
            at: now,
            total_in: i,
            total_out: o,
            ..self.rates
        };
    }

    fn push_all(&mut self, frame: &Bytes) {
        // A watcher whose queue is full is being closed (4008): forget it.
        // Not counted as deliveries: watching must not change what is watched.
        self.watchers.retain(|_, o| o.push(frame.clone()));
        if self.watchers.is_empty() {
            flow::FLOW.set_watching(false);
        }
    }

    fn flow_tick(&mut self) {
        self.sample();
        if self.watchers.is_empty() {
            return;
        }
        let (entries, omitted) = flow::FLOW.take();
        let frame = serde_json::to_vec(&json!({
            "type": "message:flow",
            "ts": now_ms(),
            "entries": entries,
            "omitted": omitted,
            "msgs_in_per_s": round(self.rates.in_per_s),
            "msgs_out_per_s": round(self.rates.out_per_s),
        }));
        if let Ok(f) = frame {
            self.push_all(&Bytes::from(f));
        }
    }

    /// Asks the Hub for its counts, then sends `health:update` everywhere.
    fn health(&mut self, ctx: &mut Context<Self>) {
        let fut = self
            .hub
            .send(GetStats)
            .into_actor(self)
            .map(|stats, act, _| {
                let frame = act.health_frame(stats.ok());
                act.push_all(&frame);
                if let Some(b) = &act.bridge {
                    b.addr.do_send(PublishHealth(frame));
                }
            });
        ctx.spawn(fut);
    }

    fn health_frame(&self, stats: Option<Stats>) -> Bytes {
        let mut components = serde_json::Map::new();
        components.insert(
            "hub".into(),
            json!({ "status": if stats.is_some() { "ok" } else { "down" } }),
        );
        let mut degraded = stats.is_none() || self.store.failing();
        components.insert("store".into(), self.store.report());
        if let Some(b) = &self.bridge {
            let l = b.status.get();
            degraded |= !l.connected;
            components.insert(
                "mqtt".into(),
                json!({
                    "status": if l.connected { "connected" } else { "disconnected" },
                    "connected": l.connected,
                    "broker": l.broker,
                    "last_error": l.last_error,
                    "last_error_ts": l.last_error_ts,
                    "reconnects": l.reconnects,
                    "queued": l.queued,
                    "subscriptions": l.subscriptions,
                    "received": b.status.received.load(Relaxed),
                    "published": b.status.published.load(Relaxed),
                    "refused": b.status.refused.load(Relaxed),
                }),
            );
        }
        if let Some(c) = &self.cluster {
            let up = c.link_up();
            degraded |= !up;
            let each: Vec<&str> = c
                .links_up()
                .iter()
                .map(|u| if *u { "up" } else { "down" })
                .collect();
            components.insert(
                "cluster".into(),
                json!({
                    "status": if up { "up" } else { "down" },
                    "node": c.node(),
                    "redis_each": each,
                    "figures": c.figures(),
                }),
            );
        }
        let s = stats.as_ref();
        let body = json!({
            "type": "health:update",
            "ts": now_ms(),
            "status": if degraded { "degraded" } else { "ok" },
            "uptime_s": self.started.elapsed().as_secs(),
            "connections": METRICS.connections.load(Relaxed),
            "sessions": s.map(|s| s.sessions),
            "users": s.map(|s| s.users),
            "rooms": s.map(|s| s.rooms),
            "idle_rooms": s.map(|s| s.idle_rooms),
            "msgs_in_per_s": round(self.rates.in_per_s),
            "msgs_out_per_s": round(self.rates.out_per_s),
            "msgs_in_total": flow::FLOW.messages_in.load(Relaxed),
            "msgs_out_total": total_out(&self.bridge),
            "components": components,
        });
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }

    fn check_change(&mut self, ctx: &mut Context<Self>) {
        let v = self
            .bridge
            .as_ref()
            .map_or(0, |b| b.status.version.load(Relaxed))
            + self.store.version.load(Relaxed);
        let redis_up = self.cluster.as_ref().is_none_or(|c| c.link_up());
        if v != self.seen_version || redis_up != self.redis_up {
            self.seen_version = v;
            self.redis_up = redis_up;
            self.health(ctx);
        }
    }
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl Actor for Monitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(FLOW_INTERVAL, |act, _| act.flow_tick());
        ctx.run_interval(self.interval, |act, ctx| act.health(ctx));
        ctx.run_interval(CHANGE_CHECK, |act, ctx| act.check_change(ctx));
        // The first health, for the broker's retained topic, once the bridge is up.
        ctx.run_later(Duration::from_millis(100), |act, ctx| act.health(ctx));
    }
}

/// A session joins the monitor (access was checked by the session).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watch {
    pub session: SessionId,
    pub outbox: Outbox,
    pub id: Option<String>,
}

impl Handler<Watch> for Monitor {
    type Result = ();

    fn handle(&mut self, msg: Watch, ctx: &mut Context<Self>) {
        let room = RoomName::parse(ROOM).expect("a valid room name");
        let joined = encode(&ServerFrame::Joined {
            room: &room,
            seq: 0,
            epoch: ROOM,
            recovered: None,
            members: &[],
            id: msg.id.as_deref(),
        });
        if msg.outbox.push(joined) {
            self.watchers.insert(msg.session, msg.outbox);
            flow::FLOW.set_watching(true);
            self.health(ctx);
        }
    }
}

/// A session leaves the monitor (`notify`: answer `room:left`) or ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unwatch {
    pub session: SessionId,
    pub id: Option<String>,
    pub notify: bool,
}

impl Handler<Unwatch> for Monitor {
    type Result = ();

    fn handle(&mut self, msg: Unwatch, _: &mut Context<Self>) {
        if let Some(o) = self.watchers.remove(&msg.session) {
            if msg.notify {
                let room = RoomName::parse(ROOM).expect("a valid room name");
                o.push(encode(&ServerFrame::Left {
                    room: &room,
                    id: msg.id.as_deref(),
                }));
            }
        }
        if self.watchers.is_empty() {
            flow::FLOW.set_watching(false);
        }
    }
}

/// The monitor's and the bridge's lines for `/metrics`.
pub fn render_metrics(shared: &crate::Shared, out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "# HELP switchboard_messages_in_total Messages that entered the hub (room, direct, MQTT both ways).\n# TYPE switchboard_messages_in_total counter\nswitchboard_messages_in_total {}",
        flow::FLOW.messages_in.load(Relaxed)
    );
    if let Some(b) = shared.services.get().and_then(|s| s.mqtt.as_ref()) {
        b.status.render(out);
    }
}
