//! Socket.IO v4 at `/socket.io/`: Engine.IO v4 (long-polling, WebSocket,
//! the upgrade between them, heartbeat) and the Socket.IO v5 packets on
//! top, mapped onto the hub so that a Socket.IO connection is a Session like
//! any other. docs/PROTOCOL.md ("Socket.IO") has the mapping; docs/DESIGN.md
//! the choices.
//!
//! - `packet.rs`: Engine.IO packets and polling payloads;
//! - `parser.rs`: Socket.IO packets and binary placeholders;
//! - `event.rs`: a server frame as an event, encoded once per fan-out;
//! - `engine.rs`: the Engine actor (one per connection) and its transports,
//!   generic over the [`engine::Layer`] on top;
//! - `bridge.rs`: the hub's layer: namespace `/` as a Session;
//! - `hook.rs`: a CONNECT decided by the connect hook;
//! - `recovery.rs`: connection state recovery (`pid` and `offset`);
//! - `http.rs`: the long-polling routes; `ws.rs`: the WebSocket upgrade.

pub mod bridge;
pub mod engine;
pub mod event;
mod hook;
pub mod http;
pub mod packet;
pub mod parser;
pub mod recovery;
pub mod ws;

use actix::Addr;
use actix_web::dev::RequestHead;
use engine::{Engine, Handshake, Layer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where Engine.IO is served: its connections, settings and layer. The hub
/// ([`crate::AppState`], at `/socket.io/`) is one; the conformance server
/// (`src/bin/socketio-conformance`) has two more.
pub trait Mount: Clone + 'static {
    type Layer: Layer;
    fn engines(&self) -> &Arc<Registry<Self::Layer>>;
    fn config(&self) -> EngineConfig;
    /// Admits a new connection (or says why not) and reads its handshake.
    fn admit(&self, head: &RequestHead, q: &EioQuery) -> Result<Handshake, crate::error::HubError>;
    /// The layer of a new connection.
    fn layer(&self) -> Self::Layer;
}

impl Mount for crate::AppState {
    type Layer = bridge::Hub;

    fn engines(&self) -> &Arc<Registry> {
        &self.engines
    }

    fn config(&self) -> EngineConfig {
        EngineConfig::of(&self.shared.cfg)
    }

    fn admit(&self, head: &RequestHead, q: &EioQuery) -> Result<Handshake, crate::error::HubError> {
        // Shutting down, or at the connection limit: our usual 503.
        crate::http::admit_capacity(&self.shared)?;
        Ok(Handshake {
            token: q
                .token
                .clone()
                .or_else(|| crate::http::bearer_of(head).map(str::to_string)),
            name: q.name.clone(),
            addr: crate::http::client_addr(head, &self.shared),
            connect: Handshake::connect_info(head, &self.shared),
        })
    }

    fn layer(&self) -> bridge::Hub {
        bridge::Hub::new(self.clone())
    }
}

/// The Engine.IO settings of every connection.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Largest WebSocket message and long-polling `POST` body.
    pub max_payload: usize,
    /// How long a connection may stay without a Socket.IO `CONNECT`.
    pub connect_timeout: Duration,
    /// How long a probed WebSocket may take to send `5` (upgrade).
    pub upgrade_timeout: Duration,
    /// Packets waiting for the client, at most (then: slow consumer).
    pub queue: usize,
    /// How long a dropped connection's state is kept for recovery (zero:
    /// no recovery, no `pid` and no offsets).
    pub recovery: Duration,
}

impl EngineConfig {
    pub fn of(cfg: &crate::config::Config) -> EngineConfig {
        EngineConfig {
            ping_interval: cfg.ping_interval,
            ping_timeout: cfg.pong_timeout,
            max_payload: cfg.hard_max_frame,
            connect_timeout: cfg.auth_grace,
            upgrade_timeout: Duration::from_secs(10),
            queue: cfg.outbox,
            recovery: cfg.http_session_timeout,
        }
    }
}

/// The Engine.IO errors, as the reference server answers them: HTTP 400
/// (403 for `Forbidden`) with `{"code":n,"message":"…"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EioError {
    UnknownTransport,
    UnknownSid,
    BadHandshakeMethod,
    BadRequest,
    Forbidden,
    UnsupportedProtocolVersion,
}

impl EioError {
    pub fn code(self) -> u8 {
        match self {
            EioError::UnknownTransport => 0,
            EioError::UnknownSid => 1,
            EioError::BadHandshakeMethod => 2,
            EioError::BadRequest => 3,
            EioError::Forbidden => 4,
            EioError::UnsupportedProtocolVersion => 5,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            EioError::UnknownTransport => "Transport unknown",
            EioError::UnknownSid => "Session ID unknown",
            EioError::BadHandshakeMethod => "Bad handshake method",
            EioError::BadRequest => "Bad request",
            EioError::Forbidden => "Forbidden",
            EioError::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            EioError::Forbidden => 403,
            _ => 400,
        }
    }

    pub fn body(self) -> String {
        serde_json::json!({"code": self.code(), "message": self.message()}).to_string()
    }
}

/// Every live Engine.IO connection by sid. Held only for one map operation.
/// Also what dropped connections left for recovery, by `pid`.
pub struct Registry<L: Layer = bridge::Hub> {
    map: Mutex<HashMap<String, Addr<Engine<L>>>>,
    pub saved: recovery::Saved,
}

impl<L: Layer> Default for Registry<L> {
    fn default() -> Self {
        Registry {
            map: Mutex::default(),
            saved: recovery::Saved::default(),
        }
    }
}

impl<L: Layer> Registry<L> {
    /// With Redis, dropped connections' state is kept there.
    pub fn new(shared: Option<crate::cluster::Cluster>) -> Self {
        Registry {
            map: Mutex::default(),
            saved: recovery::Saved::new(shared),
        }
    }

    pub fn get(&self, sid: &str) -> Option<Addr<Engine<L>>> {
        self.lock().get(sid).cloned()
    }

    pub fn insert(&self, sid: String, engine: Addr<Engine<L>>) {
        self.lock().insert(sid, engine);
    }

    pub fn remove(&self, sid: &str) {
        self.lock().remove(sid);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Addr<Engine<L>>>> {
        // Every operation is one insert/remove/get: a panic cannot leave it half done.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The query of an Engine.IO request, read once.
#[derive(Debug, Default)]
pub struct EioQuery {
    pub eio: Option<String>,
    pub transport: Option<String>,
    pub sid: Option<String>,
    pub token: Option<String>,
    pub name: Option<String>,
}

impl EioQuery {
    pub fn parse(query: &str) -> Result<EioQuery, EioError> {
        let pairs: Vec<(String, String)> = query_pairs(query).ok_or(EioError::BadRequest)?;
        let mut q = EioQuery::default();
        for (k, v) in pairs {
            let slot = match k.as_str() {
                "EIO" => &mut q.eio,
                "transport" => &mut q.transport,
                "sid" => &mut q.sid,
                "token" => &mut q.token,
                "name" => &mut q.name,
                _ => continue,
            };
            *slot = Some(v);
        }
        Ok(q)
    }

    /// The transport asked for: `polling` or `websocket`.
    pub fn transport(&self) -> Result<Transport, EioError> {
        match self.transport.as_deref() {
            Some("polling") => Ok(Transport::Polling),
            Some("websocket") => Ok(Transport::WebSocket),
            _ => Err(EioError::UnknownTransport),
        }
    }

    /// A new connection must speak Engine.IO 4.
    pub fn check_version(&self) -> Result<(), EioError> {
        match self.eio.as_deref() {
            Some("4") => Ok(()),
            _ => Err(EioError::UnsupportedProtocolVersion),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Polling,
    WebSocket,
}

/// `a=1&b=2` into pairs, percent- and `+`-decoded; `None` if not UTF-8.
fn query_pairs(query: &str) -> Option<Vec<(String, String)>> {
    actix_web::web::Query::<Vec<(String, String)>>::from_query(query)
        .ok()
        .map(|q| q.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_errors() {
        let q = EioQuery::parse("EIO=4&transport=polling&t=N8hyd6w&sid=ab%2Bc").unwrap();
        assert_eq!(q.transport(), Ok(Transport::Polling));
        assert_eq!(q.sid.as_deref(), Some("ab+c"));
        assert!(q.check_version().is_ok());
        let q = EioQuery::parse("EIO=3&transport=flash").unwrap();
        assert_eq!(q.transport(), Err(EioError::UnknownTransport));
        assert_eq!(q.check_version(), Err(EioError::UnsupportedProtocolVersion));
        assert_eq!(
            EioError::UnknownSid.body(),
            r#"{"code":1,"message":"Session ID unknown"}"#
        );
    }
}
