//! The MQTT bridge: devices and services on an MQTT broker appear in the same
//! realtime flow as WebSocket clients.
//!
//! ```text
//!  broker ◄──TCP/TLS──► rumqttc EventLoop (link.rs: its own task, polls only,
//!                          │ ▲                never waits on an actor)
//!                 do_send │ │ try_publish / try_subscribe (non-blocking)
//!                          ▼ │
//!                   MqttBridge actor (bridge.rs, own arbiter)
//!                     ├─► Hub ─► Room  (mapped rooms: seq, history)
//!                     └─► session outboxes (mqtt:subscribe filters)
//! ```
//!
//! - [`topic`]: topic names and filters, MQTT wildcard matching.
//! - [`payload`]: JSON / text / base64 payload rules.
//! - [`access`]: the `mqtt_sub` / `mqtt_pub` token claims.
//! - [`subs`]: who wants what, and the broker's subscription set.
//! - [`pipeline`]: publishes waiting for the broker, acks after PUBACK.
//! - [`status`]: the bridge state read by `/healthz`, `/metrics`, the monitor.
//! - [`frame`]: the client frames, parsed.
//! - [`session`]: the client frames, as a session handles them.
//! - [`ingest`]: which node numbers broker messages into mapped rooms.

pub mod access;
pub mod bridge;
pub mod frame;
pub mod ingest;
pub mod link;
pub mod message;
pub mod payload;
pub mod pipeline;
pub mod session;
pub mod status;
pub mod subs;
pub mod topic;
