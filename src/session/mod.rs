//! One Session actor per connection. It owns the connection's identity, rate
//! limits, joined rooms and timers, turns client frames into typed messages
//! for the Hub, Rooms and Presence, and writes only through its [`Outbox`].
//! It runs on its own `Context`, not the socket's: a client that stops reading
//! cannot stall its timers, and overflowing its outbox closes it with 4008.

use crate::auth::{Identity, Role};
use crate::error::{close, ErrorCode};
use crate::hub::{self, Hub};
use crate::ids::{RoomName, SessionId};
use crate::metrics::METRICS;
use crate::outbox::{CloseSender, Evict, Out, Outbox};
use crate::presence::{self, Presence};
use crate::protocol::{self, encode, error_frame, ClientFrame, From, Request, ServerFrame};
use crate::ratelimit::TokenBucket;
use crate::room::{self, Origin, Room};
use crate::wsframes::FrameError;
use crate::Shared;
use actix::prelude::*;
use actix_http::ws::Frame;
use bytes::Bytes;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// Suggested wait after a "room is busy" refusal.
const ROOM_BUSY_RETRY_MS: u64 = 50;

mod dispatch;
mod docs;
mod hooks;
mod scrollback;
mod server;

mod rpc;
mod signal;
mod state;
mod streams;
mod watch;

/// The Hub's answer to a join or open, or why there is none.
fn hub_answer<T>(
    res: Result<Result<T, crate::error::HubError>, MailboxError>,
) -> Result<T, String> {
    match res {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.message.to_string()),
        Err(_) => Err("hub unavailable".to_string()),
    }
}

/// A frame for a room the session has joined.
enum RoomFrame {
    Send {
        data: Box<RawValue>,
        id: Option<String>,
        opts: crate::protocol::PublishOptions,
        received: Instant,
    },
    Typing {
        on: bool,
        id: Option<String>,
    },
}

/// What carries a session's frames. The session core is the same for all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    /// Server-sent events; `key` names the session in `POST /sse/send`.
    Sse {
        key: String,
    },
    /// Long-polling; `key` names the session in `/poll` requests.
    Polling {
        key: String,
    },
    /// Socket.IO (namespace `/` of an Engine.IO connection, `src/socketio`).
    SocketIo,
    /// A service's `POST /api/streams/{stream}` while its body streams
    /// (`src/http/streams.rs`).
    Rest,
}

impl Transport {
    pub fn name(&self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Sse { .. } => "sse",
            Transport::Polling { .. } => "polling",
            Transport::SocketIo => "socket.io",
            Transport::Rest => "rest",
        }
    }

    pub fn key(&self) -> Option<&str> {
        match self {
            Transport::WebSocket | Transport::SocketIo | Transport::Rest => None,
            Transport::Sse { key } | Transport::Polling { key } => Some(key),
        }
    }
}

/// The client's address, and a guest's place in its count (released when
/// the session ends).
pub struct Client {
    pub addr: std::net::IpAddr,
    pub guest: Option<crate::clientaddr::GuestSlot>,
}

pub struct Session {
    id: SessionId,
    client: Client,
    transport: Transport,
    /// `switchboard_sessions{transport}` while the session lives.
    _counted: crate::metrics::SessionCount,
    /// `None` until the connection authenticates or becomes a guest.
    ident: Option<Identity>,
    from: Option<From>,
    shared: Arc<Shared>,
    hub: Addr<Hub>,
    presence: Addr<Presence>,
    outbox: Outbox,
    close_tx: Option<CloseSender>,
    /// Rooms joined, with their actors. A join completes before the next
    /// client frame is read (see `join`), so there is no in-between state.
    rooms: HashMap<RoomName, Addr<Room>>,
    messages: TokenBucket,
    frames: TokenBucket,
    /// `signal` frames (`session/signal.rs`).
    signals: TokenBucket,
    awaiting_pong: Option<Instant>,
    last_activity_report: Instant,
    exp_timer: Option<SpawnHandle>,
    fragments: crate::wsframes::Fragments,
    closing: bool,
    /// The close code and reason sent (none: the connection was lost).
    closed: Option<(u16, String)>,
    /// Documents open, with their actors (see `session/docs.rs`).
    docs: HashMap<RoomName, Addr<crate::document::Document>>,
    /// MQTT subscriptions and publishes (`mqtt::session`).
    mqtt: crate::mqtt::session::SessionMqtt,
    /// Whether the session watches the `monitor` channel.
    watching: bool,
    /// `history:get` pages being read (at most `PAGES_IN_FLIGHT`).
    pages: usize,
    /// Tool calls both ways (`session/rpc.rs`), and their rate.
    rpc: crate::rpc::SessionRpc,
    calls: TokenBucket,
    /// `room:watch` patterns (`session/watch.rs`).
    watches: Vec<crate::watch::Pattern>,
    /// The streams this session produces, with their rooms (`streams.rs`).
    producing: HashMap<String, (RoomName, u64)>,
    producing_n: u64,
    /// What the connect hook is told, until it has answered (`session/hooks.rs`).
    connect: Option<crate::proxy::connect::ConnectInfo>,
}

impl Session {
    pub fn new(
        shared: Arc<Shared>,
        hub: Addr<Hub>,
        presence: Addr<Presence>,
        admitted: Admitted,
        outbox: Outbox,
        close_tx: CloseSender,
        transport: Transport,
    ) -> Session {
        let now = Instant::now();
        let cfg = &shared.cfg;
        let (messages, frames) = (
            TokenBucket::new(cfg.user_rate, now),
            TokenBucket::new(cfg.frame_rate, now),
        );
        Session {
            id: SessionId::next(),
            client: admitted.client,
            _counted: crate::metrics::SessionCount::new(transport.name()),
            transport,
            ident: admitted.ident,
            from: None,
            hub,
            presence,
            outbox,
            close_tx: Some(close_tx),
            rooms: HashMap::new(),
            messages,
            frames,
            signals: TokenBucket::new(cfg.signal_rate, now),
            awaiting_pong: None,
            last_activity_report: now,
            exp_timer: None,
            fragments: None,
            closing: false,
            closed: None,
            docs: HashMap::new(),
            mqtt: Default::default(),
            watching: false,
            pages: 0,
            rpc: Default::default(),
            calls: TokenBucket::new(cfg.rpc.rate, now),
            watches: Vec::new(),
            producing: HashMap::new(),
            producing_n: 0,
            connect: admitted.connect,
            shared,
        }
    }

    fn push(&self, frame: Bytes) {
        self.outbox.push(frame);
    }

    fn error(&self, code: ErrorCode, message: &str, reference: Option<&str>) {
        self.push(error_frame(code, message, reference, None));
    }

    /// Sends a close frame after what is queued, then stops. Idempotent.
    fn close(&mut self, code: u16, reason: &str, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        self.closing = true;
        self.closed = Some((code, reason.to_string()));
        log::debug!("session {} closing: {code} {reason}", self.id);
        if let Some(tx) = self.close_tx.take() {
            let _ = tx.send((code, reason.to_string()));
        }
        ctx.stop();
    }

    fn privileged_rate(&self) -> bool {
        self.ident.as_ref().is_some_and(|i| i.role == Role::Service)
    }

    /// The connection now has an identity: register with the Hub, greet the
    /// client, and join the personal room.
    fn register(&mut self, ident: Identity, ctx: &mut Context<Self>) {
        if ident.guest && self.client.guest.is_none() {
            match self.shared.guest_slot(self.client.addr) {
                Ok(slot) => self.client.guest = Some(slot),
                Err(e) => {
                    self.error(e.code, &e.message, None);
                    return self.close(
                        close::POLICY,
                        "too many guest sessions from this address",
                        ctx,
                    );
                }
            }
        }
        if ident.guest {
            self.messages = TokenBucket::new(self.shared.cfg.guest_rate, Instant::now());
        }
        let from = From {
            user: ident.user.clone(),
            name: ident.name.clone(),
        };
        // Greet first, so nothing routed by the Hub can arrive before `connected`.
        self.push(encode(&ServerFrame::Connected {
            session: crate::ids::SessionAddr::here(self.id).to_string(),
            user: &ident.user,
            name: &ident.name,
            guest: ident.guest,
            role: ident.role.as_str(),
            exp: ident.exp,
            transport: self.transport.name(),
            key: self.transport.key(),
        }));
        self.hub.do_send(hub::Connect {
            session: self.id,
            from: from.clone(),
            outbox: self.outbox.clone(),
            addr: ctx.address().recipient(),
            client: self.client.addr,
            guest: ident.guest,
        });
        log::debug!(
            "session {} from {} is {} ({})",
            self.id,
            self.client.addr,
            ident.user,
            if ident.guest {
                "guest"
            } else {
                ident.role.as_str()
            }
        );
        let personal = RoomName::personal(&ident.user);
        self.arm_expiry(ident.exp, ctx);
        self.ident = Some(ident);
        self.from = Some(from);
        self.join(personal, None, None, false, None, ctx);
    }

    fn arm_expiry(&mut self, exp: Option<u64>, ctx: &mut Context<Self>) {
        if let Some(h) = self.exp_timer.take() {
            ctx.cancel_future(h);
        }
        // A validly signed token may still carry an absurd `exp`: saturate, and
        // do not arm a timer more than a year out.
        const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;
        // The token stays good for the configured leeway past `exp`, as at verification.
        let exp = exp.map(|e| e.saturating_add(self.shared.auth.leeway_s));
        if let Some(exp) = exp.filter(|e| e.saturating_mul(1000) < crate::ids::now_ms() + YEAR_MS) {
            let left = exp
                .saturating_mul(1000)
                .saturating_sub(crate::ids::now_ms());
            self.exp_timer = Some(ctx.run_later(
                std::time::Duration::from_millis(left),
                |act, ctx| {
                    act.close(close::POLICY, "token expired", ctx);
                },
            ));
        }
    }

    fn become_guest(&mut self, ctx: &mut Context<Self>) {
        let ident = self.shared.auth.guest(None);
        self.register(ident, ctx);
    }

    fn on_text(&mut self, text: Bytes, ctx: &mut Context<Self>) {
        METRICS.frames_in.fetch_add(1, Relaxed);
        if text.len() > self.shared.cfg.max_frame {
            let msg = format!(
                "frame is {} bytes; the limit is {}",
                text.len(),
                self.shared.cfg.max_frame
            );
            self.error(ErrorCode::TooLarge, &msg, None);
            return;
        }
        let now = Instant::now();
        if !self.privileged_rate() {
            if let Err(wait) = self.frames.take(now) {
                // The refusal names the frame (`ref`), so a client waiting
                // for that id's answer gets it (a Socket.IO ack, an SDK call).
                let id = protocol::probe_id(&text);
                self.push(error_frame(
                    ErrorCode::RateLimited,
                    "too many frames",
                    id.as_deref(),
                    Some(wait.as_millis() as u64 + 1),
                ));
                return;
            }
        }
        let parsed = protocol::parse(&text);
        if let Err(e) = &parsed {
            // A bad auth frame (no token, token too long, stray fields) fails
            // authentication like a bad token: close 1008, never guest it.
            if protocol::frame_type(&text).as_deref() == Some("auth") {
                let reason = format!("bad auth frame: {}", e.message);
                crate::monitor::events::auth_failure(Some(self.client.addr), &reason);
                return self.close(close::POLICY, &reason, ctx);
            }
        }
        if self.ident.is_none() {
            if self.connect.is_some() {
                return self.connect_on_frame(parsed, text, ctx);
            }
            match &parsed {
                Ok(Request {
                    frame: ClientFrame::Auth { token: None, .. },
                    ..
                }) => {
                    let reason = "bad auth frame: auth needs `token`";
                    crate::monitor::events::auth_failure(Some(self.client.addr), reason);
                    return self.close(close::POLICY, reason, ctx);
                }
                Ok(Request {
                    frame:
                        ClientFrame::Auth {
                            token: Some(token), ..
                        },
                    ..
                }) => {
                    match self.shared.auth.verify(token, self.client.addr) {
                        Ok(ident) => self.register(ident, ctx),
                        Err(e) => self.close(close::POLICY, &e.message, ctx),
                    }
                    return;
                }
                _ if self.shared.auth.guests => {
                    self.become_guest(ctx);
                    if self.closing {
                        return;
                    }
                }
                _ => {
                    crate::monitor::events::auth_failure(
                        Some(self.client.addr),
                        "no auth frame and guests are disabled",
                    );
                    self.close(
                        close::POLICY,
                        "authentication required: send an auth frame first",
                        ctx,
                    );
                    return;
                }
            }
        }
        match parsed {
            Ok(req) => {
                // A presence:update resets idleness itself; reporting it as activity
                // first would flash "online" before the chosen status.
                if !matches!(req.frame, ClientFrame::Ping | ClientFrame::Presence { .. }) {
                    self.report_activity(now);
                }
                self.dispatch(req, now, ctx);
            }
            Err(e) => self.error(e.code, &e.message, e.id.as_deref()),
        }
    }

    /// A whole WebSocket text message (one frame or reassembled fragments).
    /// RFC 6455 §8.1: text that is not UTF-8 fails the connection with 1007.
    fn on_ws_text(&mut self, text: Bytes, ctx: &mut Context<Self>) {
        if std::str::from_utf8(&text).is_err() {
            return self.close(close::INVALID_DATA, "text frame is not valid UTF-8", ctx);
        }
        self.on_text(text, ctx);
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.awaiting_pong.is_some() {
            return;
        }
        let sent = Instant::now();
        self.awaiting_pong = Some(sent);
        self.outbox.send(Out::Ping);
        ctx.run_later(self.shared.cfg.pong_timeout, move |act, ctx| {
            if act.awaiting_pong == Some(sent) {
                act.close(close::HEARTBEAT_TIMEOUT, "no pong received", ctx);
            }
        });
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(usize::MAX >> 4);
        let cfg = &self.shared.cfg;
        // HTTP transports have no pings: their open stream or repeated polls
        // are the heartbeat, watched by their relay.
        if self.transport == Transport::WebSocket {
            ctx.run_interval(cfg.ping_interval, |act, ctx| act.heartbeat(ctx));
        }
        match self.ident.take() {
            Some(ident) => self.register(ident, ctx),
            None if self.connect.as_ref().is_some_and(|c| c.at_start) => {
                self.connect_hook(None, None, ctx)
            }
            None => {
                ctx.run_later(cfg.auth_grace, |act, ctx| {
                    if act.ident.is_none() {
                        if act.connect.is_some() {
                            act.connect_hook(None, None, ctx);
                        } else if act.shared.auth.guests {
                            act.become_guest(ctx);
                        } else {
                            crate::monitor::events::auth_failure(
                                Some(act.client.addr),
                                "no auth frame in time",
                            );
                            act.close(close::POLICY, "authentication timeout: no auth frame", ctx);
                        }
                    }
                });
            }
        }
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        self.closing = true;
        self.mqtt.stopped(self.id, &self.shared);
        if self.watching {
            if let Some(s) = self.shared.services.get() {
                s.monitor.do_send(crate::monitor::Unwatch {
                    session: self.id,
                    id: None,
                    notify: false,
                });
            }
        }
        self.rpc_closing();
        self.unwatch_all();
        if let Some(from) = &self.from {
            self.hub.do_send(hub::Disconnect { session: self.id });
            if crate::webhooks::on() {
                let (code, reason) = self
                    .closed
                    .clone()
                    .unwrap_or((1006, "connection lost".into()));
                crate::webhooks::emit(crate::webhooks::Event::SessionClosed {
                    session: &crate::ids::SessionAddr::here(self.id).to_string(),
                    user: from.user.as_str(),
                    transport: self.transport.name(),
                    code,
                    reason: &reason,
                });
            }
        }
        for doc in self.docs.values() {
            doc.do_send(crate::document::Close { session: self.id });
        }
        Running::Stop
    }
}

impl StreamHandler<Result<Frame, FrameError>> for Session {
    fn handle(&mut self, item: Result<Frame, FrameError>, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        match item {
            Ok(Frame::Text(b)) => self.on_ws_text(b, ctx),
            Ok(Frame::Binary(_)) => self.error(
                ErrorCode::BadRequest,
                "binary frames are not supported; send JSON text",
                None,
            ),
            Ok(Frame::Continuation(item)) => {
                match crate::wsframes::reassemble(&mut self.fragments, item) {
                    Err(_) => self.close(close::PROTOCOL, "bad fragment sequence", ctx),
                    Ok(None) => {}
                    Ok(Some((true, text))) => self.on_ws_text(text, ctx),
                    Ok(Some((false, _))) => self.error(
                        ErrorCode::BadRequest,
                        "binary frames are not supported; send JSON text",
                        None,
                    ),
                }
            }
            Ok(Frame::Ping(b)) => {
                self.outbox.send(Out::Pong(b));
            }
            Ok(Frame::Pong(_)) => self.awaiting_pong = None,
            Ok(Frame::Close(reason)) => {
                self.close(close::NORMAL, "", ctx);
                // `session.closed` tells the client's own code (1005: it gave none).
                self.closed = Some(reason.map_or((1005, String::new()), |r| {
                    (r.code.into(), r.description.unwrap_or_default())
                }));
            }
            Err(e) => {
                let (code, reason) = e.close();
                self.close(code, &reason, ctx)
            }
        }
    }
}

/// Who a new session is: its identity if known at admission, and its
/// client's address with, for a guest, its place in the per-address count.
pub struct Admitted {
    pub ident: Option<Identity>,
    pub client: Client,
    /// Set when the connect hook is to decide who the session is.
    pub connect: Option<crate::proxy::connect::ConnectInfo>,
}

/// Close the session with a code, from its transport (the Hub's orders,
/// shutdown's 1001 included, come as `hub::Order::Close`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close {
    pub code: u16,
    pub reason: String,
}

impl Handler<Close> for Session {
    type Result = ();

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) {
        self.close(msg.code, &msg.reason, ctx);
    }
}

impl Handler<Evict> for Session {
    type Result = ();

    fn handle(&mut self, _: Evict, ctx: &mut Context<Self>) {
        if !self.closing {
            METRICS.slow_consumers.fetch_add(1, Relaxed);
            log::info!("session {} is a slow consumer; closing", self.id);
            self.close(close::SLOW_CONSUMER, "slow consumer", ctx);
        }
    }
}

/// A text frame from an HTTP transport (`POST /sse/send`, `POST /poll/send`),
/// handled exactly as a WebSocket text frame.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound(pub Bytes);

impl Handler<Inbound> for Session {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Context<Self>) {
        if !self.closing {
            self.on_text(msg.0, ctx);
        }
    }
}
