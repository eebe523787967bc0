//! One Engine actor per Engine.IO connection: its transports (long-polling,
//! WebSocket, the upgrade between them), the heartbeat, and the packets in
//! both directions. What the messages mean is its [`Layer`]'s business:
//! the hub's Socket.IO bridge (`bridge.rs`, on the same actor), or the
//! conformance server's (`src/bin/socketio-conformance`).
//!
//! Outgoing packets go straight to the WebSocket's queue (drained by
//! `outbox::write_ws`, as for `/ws`) once the connection is on WebSocket;
//! on long-polling they wait in `pending` for the next `GET`, which takes
//! them all. Incoming packets come from `POST` bodies ([`Post`]) or from the
//! WebSocket's frames ([`WsIn`]), parsed once by `packet.rs`.

use super::bridge::Hub;
use super::packet::{self, Data, Packet};
use super::{EioError, EngineConfig, Registry};
use crate::error::close;
use crate::metrics::METRICS;
use crate::outbox::{self, CloseSender, ConnGuard, Evict, Out, Outbox};
use crate::wsframes::WsFrames;
use actix::prelude::*;
use actix_http::ws::Frame;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;

/// A WebSocket attached to the connection: its queue and its close.
struct WsLink {
    gen: u64,
    out: Outbox,
    close: Option<CloseSender>,
}

impl WsLink {
    fn shut(&mut self, code: u16) {
        if let Some(tx) = self.close.take() {
            let _ = tx.send((code, String::new()));
        }
    }
}

/// What the handshake request said about the client (for the Socket.IO CONNECT).
#[derive(Clone)]
pub struct Handshake {
    pub token: Option<String>,
    pub name: Option<String>,
    /// The client's address (`SWITCHBOARD_TRUSTED_PROXIES`).
    pub addr: std::net::IpAddr,
    /// With a connect hook: the handshake request's cookies and headers.
    pub connect: Option<crate::proxy::connect::ConnectInfo>,
}

impl Handshake {
    /// What the connect hook (if one is set) is told of `head`.
    pub fn connect_info(
        head: &actix_web::dev::RequestHead,
        shared: &crate::Shared,
    ) -> Option<crate::proxy::connect::ConnectInfo> {
        let proxy = &shared.cfg.proxy;
        proxy.connect.as_ref()?;
        Some(crate::proxy::connect::ConnectInfo::of_request(
            head,
            &proxy.connect_headers,
        ))
    }
}

/// What runs on an Engine.IO connection: its messages, and its end. The
/// engine calls these on its own actor, so a layer may send (`Engine::send`)
/// and close (`Engine::close`) at once. Statically dispatched: the hub's
/// bridge ([`Hub`]) costs what it cost before the seam.
pub trait Layer: Sized + Unpin + 'static {
    /// A message from the client.
    fn on_message(e: &mut Engine<Self>, data: Data, ctx: &mut Context<Engine<Self>>);
    /// Whether the client has connected (else the connect timeout closes).
    fn connected(&self) -> bool;
    /// The connection is closing with `code` (a lost link: `GOING_AWAY` or
    /// `HEARTBEAT_TIMEOUT`).
    fn on_close(e: &mut Engine<Self>, code: u16, reason: &str);
    /// The actor stops (after `on_close`, or alone if it never ran).
    fn on_stop(&mut self);
}

pub struct Engine<L: Layer = Hub> {
    pub(super) sid: String,
    pub(super) registry: Arc<Registry<L>>,
    pub cfg: EngineConfig,
    pub(super) handshake: Handshake,
    /// The WebSocket carrying packets: set for a direct WebSocket connection
    /// and after an upgrade. `None`: long-polling.
    ws: Option<WsLink>,
    /// A WebSocket being probed for the upgrade, and whether it sent `2probe`.
    probe: Option<(WsLink, bool)>,
    gen: u64,
    /// Long-polling: packets waiting for the next `GET`.
    pending: VecDeque<Packet>,
    waiter: Option<oneshot::Sender<Result<Bytes, EioError>>>,
    flush_scheduled: bool,
    /// The pong deadline's timer, and the deadline.
    pong_due: Option<(SpawnHandle, Instant)>,
    /// When the `open` packet was made: pings are due every `ping_interval`
    /// from then, as the client counts them.
    born: Instant,
    pings: u32,
    /// Set once the connection is closing, with why.
    closing: Option<String>,
    fragments: crate::wsframes::Fragments,
    conn: Option<ConnGuard>,
    pub layer: L,
}

impl<L: Layer> Engine<L> {
    pub fn new(
        sid: String,
        registry: Arc<Registry<L>>,
        cfg: EngineConfig,
        handshake: Handshake,
        layer: L,
    ) -> Engine<L> {
        Engine {
            sid,
            registry,
            cfg,
            handshake,
            ws: None,
            probe: None,
            gen: 0,
            pending: VecDeque::new(),
            waiter: None,
            flush_scheduled: false,
            pong_due: None,
            born: Instant::now(),
            pings: 0,
            closing: None,
            fragments: None,
            conn: Some(ConnGuard::new()),
            layer,
        }
    }

    /// The handshake packet.
    pub fn open_packet(&self) -> Packet {
        Packet::Open(
            serde_json::json!({
                "sid": self.sid,
                "upgrades": if self.ws.is_some() { vec![] } else { vec!["websocket"] },
                "pingInterval": self.cfg.ping_interval.as_millis() as u64,
                "pingTimeout": self.cfg.ping_timeout.as_millis() as u64,
                "maxPayload": self.cfg.max_payload,
            })
            .to_string(),
        )
    }

    /// Starts reading and writing an upgraded socket; returns its link.
    fn attach_ws(
        &mut self,
        read: OwnedReadHalf,
        write: OwnedWriteHalf,
        leftover: BytesMut,
        ctx: &mut Context<Self>,
    ) -> WsLink {
        self.gen += 1;
        let gen = self.gen;
        let (out, close, queue) = outbox::queue(self.cfg.queue, ctx.address().recipient());
        actix_web::rt::spawn(outbox::write_ws(queue, write, self.cfg.queue, None, None));
        let frames = WsFrames::new(read, self.cfg.max_payload, leftover)
            .map(move |item| WsIn {
                gen,
                item: Some(item),
            })
            .chain(futures_util::stream::iter([WsIn { gen, item: None }]));
        ctx.add_stream(frames);
        WsLink {
            gen,
            out,
            close: Some(close),
        }
    }

    /// Serves a direct WebSocket connection (no long-polling before it).
    pub fn start_ws(
        mut self,
        read: OwnedReadHalf,
        write: OwnedWriteHalf,
        leftover: BytesMut,
    ) -> Addr<Engine<L>> {
        Engine::create(move |ctx| {
            let link = self.attach_ws(read, write, leftover, ctx);
            self.ws = Some(link);
            let open = self.open_packet();
            self.send(open, ctx);
            self
        })
    }

    /// Queues a packet for the client.
    pub fn send(&mut self, p: Packet, ctx: &mut Context<Self>) {
        if self.closing.is_some() {
            return;
        }
        if let Some(ws) = &self.ws {
            let item = match p.ws_frame() {
                Ok(text) => Out::Text(text),
                Err(bin) => Out::Binary(bin),
            };
            ws.out.send(item);
            return;
        }
        if self.pending.len() >= self.cfg.queue {
            METRICS.slow_consumers.fetch_add(1, Relaxed);
            return self.close("slow consumer", close::SLOW_CONSUMER, ctx);
        }
        self.pending.push_back(p);
        self.schedule_flush(ctx);
    }

    /// Queues a text message already encoded for a WebSocket (`4` and its
    /// data): as it is on WebSocket, as a packet on long-polling.
    pub fn send_message(&mut self, ws_text: Bytes, ctx: &mut Context<Self>) {
        if self.closing.is_some() {
            return;
        }
        if let Some(ws) = &self.ws {
            ws.out.send(Out::Text(ws_text));
            return;
        }
        let text = String::from_utf8_lossy(ws_text.get(1..).unwrap_or_default()).into_owned();
        self.send(Packet::Message(Data::Text(text)), ctx);
    }

    /// Queues text messages already encoded for a WebSocket, in order (on
    /// WebSocket: under one lock, with one wake-up of the writer).
    pub fn send_messages(&mut self, msgs: Vec<Bytes>, ctx: &mut Context<Self>) {
        if msgs.is_empty() || self.closing.is_some() {
            return;
        }
        if let Some(ws) = &self.ws {
            ws.out.send_many(msgs.into_iter().map(Out::Text));
            return;
        }
        for m in msgs {
            self.send_message(m, ctx);
        }
    }

    fn schedule_flush(&mut self, ctx: &mut Context<Self>) {
        if self.waiter.is_some() && !self.flush_scheduled {
            // Answer on the next turn, so a burst goes out in one response.
            self.flush_scheduled = true;
            ctx.run_later(std::time::Duration::ZERO, |act, _| {
                act.flush_scheduled = false;
                act.answer_poll();
            });
        }
    }

    /// Answers the waiting `GET` with everything pending (a `noop` if
    /// nothing is, to release it).
    fn answer_poll(&mut self) {
        let Some(reply) = self.waiter.take() else {
            return;
        };
        if self.pending.is_empty() {
            self.pending.push_back(Packet::Noop);
        }
        let body = packet::encode_payload(self.pending.iter());
        if reply.send(Ok(body)).is_ok() {
            self.pending.clear();
        } else if self.pending.back() == Some(&Packet::Noop) {
            self.pending.pop_back();
        }
    }

    /// Schedules the next ping on the grid `born + k × ping_interval`.
    fn schedule_ping(&mut self, ctx: &mut Context<Self>) {
        self.pings = self.pings.saturating_add(1);
        let due = self.born + self.cfg.ping_interval * self.pings;
        ctx.run_later(
            due.saturating_duration_since(Instant::now()),
            move |act, ctx| {
                act.heartbeat(due, ctx);
                act.schedule_ping(ctx);
            },
        );
    }

    /// Pings (unless a pong is still awaited); no pong within `ping_timeout`
    /// of when the ping was due closes the connection.
    fn heartbeat(&mut self, due: Instant, ctx: &mut Context<Self>) {
        if self.pong_due.is_some() || self.closing.is_some() {
            return;
        }
        self.send(Packet::Ping(String::new()), ctx);
        let deadline = due + self.cfg.ping_timeout;
        let timer = ctx.run_later(
            deadline.saturating_duration_since(Instant::now()),
            |act, ctx| {
                act.pong_due = None;
                act.close("ping timeout", close::HEARTBEAT_TIMEOUT, ctx);
            },
        );
        self.pong_due = Some((timer, deadline));
    }

    /// Closes the connection if its pong deadline has passed (a request
    /// may arrive before the timer fires): whether it did.
    fn pong_overdue(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.pong_due.is_some_and(|(_, d)| Instant::now() >= d) {
            self.pong_due = None;
            self.close("ping timeout", close::HEARTBEAT_TIMEOUT, ctx);
            return true;
        }
        false
    }

    /// Ends the connection: the layer's session (if any) with `code`, the
    /// WebSockets with a close frame, a waiting `GET` with a `close` packet.
    /// As in the reference server, the sid is forgotten at once: on
    /// long-polling with no `GET` waiting, the next one is refused (400,
    /// unknown sid), which the client takes for the end.
    pub fn close(&mut self, reason: &str, code: u16, ctx: &mut Context<Self>) {
        self.shut(reason, code, Packet::Close, ctx)
    }

    /// [`Engine::close`], with `last` for a waiting `GET`: the client's own
    /// `close` packet releases it with a `noop`, as the reference does.
    fn shut(&mut self, reason: &str, code: u16, last: Packet, ctx: &mut Context<Self>) {
        if self.closing.is_some() {
            return;
        }
        log::debug!("engine.io {} closing: {reason}", self.sid);
        self.closing = Some(reason.to_string());
        L::on_close(self, code, reason);
        self.conn = None;
        if let Some((mut p, _)) = self.probe.take() {
            p.shut(close::NORMAL);
        }
        match self.ws.as_mut() {
            Some(ws) => ws.shut(close::NORMAL),
            None if self.waiter.is_some() => {
                self.pending.push_back(last);
                self.answer_poll();
            }
            None => {}
        }
        // Unknown from now on: a request racing the stop gets the 400.
        self.registry.remove(&self.sid);
        ctx.stop();
    }

    /// A packet from the client, on its current transport.
    fn on_packet(&mut self, p: Packet, ctx: &mut Context<Self>) {
        match p {
            Packet::Pong(_) => {
                if let Some((h, _)) = self.pong_due.take() {
                    ctx.cancel_future(h);
                }
            }
            // As a lost link (the reference server says "transport close"):
            // a client leaving for good says DISCONNECT first.
            Packet::Close => self.shut("transport close", close::GOING_AWAY, Packet::Noop, ctx),
            Packet::Message(data) => L::on_message(self, data, ctx),
            // Pings come from the server in v4; upgrades only on the probe.
            Packet::Ping(_) | Packet::Noop | Packet::Upgrade | Packet::Open(_) => {}
        }
    }

    /// A packet on the WebSocket being probed.
    fn on_probe_packet(&mut self, p: Packet, ctx: &mut Context<Self>) {
        let Some((probe, pinged)) = self.probe.as_mut() else {
            return;
        };
        match p {
            Packet::Ping(d) if d == "probe" => {
                *pinged = true;
                if let Ok(t) = Packet::Pong("probe".into()).ws_frame() {
                    probe.out.send(Out::Text(t));
                }
                // Release the waiting GET so the client can pause polling.
                self.answer_poll();
            }
            Packet::Upgrade if *pinged => {
                let Some((link, _)) = self.probe.take() else {
                    return;
                };
                self.answer_poll();
                self.ws = Some(link);
                for p in std::mem::take(&mut self.pending) {
                    self.send(p, ctx);
                }
            }
            _ => {
                if let Some((mut p, _)) = self.probe.take() {
                    p.shut(close::PROTOCOL);
                }
            }
        }
    }

    /// A whole WebSocket message on the socket of generation `gen`.
    fn on_ws_message(&mut self, gen: u64, text: bool, bytes: Bytes, ctx: &mut Context<Self>) {
        let parsed = if text {
            match std::str::from_utf8(&bytes) {
                Ok(s) => packet::parse_text(s),
                Err(_) => Err(packet::PacketError::NotUtf8),
            }
        } else {
            Ok(Packet::Message(Data::Binary(bytes)))
        };
        let active = self.ws.as_ref().is_some_and(|w| w.gen == gen);
        if !active && self.probe.as_ref().is_none_or(|(p, _)| p.gen != gen) {
            return;
        }
        match parsed {
            Ok(p) if active => self.on_packet(p, ctx),
            Ok(p) => self.on_probe_packet(p, ctx),
            Err(e) if active => self.close(&format!("parse error: {e}"), close::PROTOCOL, ctx),
            Err(_) => {
                if let Some((mut p, _)) = self.probe.take() {
                    p.shut(close::PROTOCOL);
                }
            }
        }
    }

    /// The WebSocket of generation `gen` ended (or broke with `code`).
    fn on_ws_end(&mut self, gen: u64, code: u16, ctx: &mut Context<Self>) {
        if self.ws.as_ref().is_some_and(|w| w.gen == gen) {
            if let Some(ws) = self.ws.as_mut() {
                ws.shut(code);
            }
            self.close("transport close", close::GOING_AWAY, ctx);
        } else if self.probe.as_ref().is_some_and(|(p, _)| p.gen == gen) {
            if let Some((mut p, _)) = self.probe.take() {
                p.shut(code);
            }
        }
    }
}

impl<L: Layer> Actor for Engine<L> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(usize::MAX >> 4);
        self.schedule_ping(ctx);
        ctx.run_later(self.cfg.connect_timeout, |act, ctx| {
            if !act.layer.connected() {
                act.close("connect timeout", close::POLICY, ctx);
            }
        });
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.registry.remove(&self.sid);
        self.layer.on_stop();
        if let Some(reply) = self.waiter.take() {
            let _ = reply.send(Ok(packet::encode_payload([&Packet::Close])));
        }
        Running::Stop
    }
}

/// A frame (or the end, `None`) from the WebSocket of generation `gen`.
pub struct WsIn {
    gen: u64,
    item: Option<Result<Frame, crate::wsframes::FrameError>>,
}

impl<L: Layer> StreamHandler<WsIn> for Engine<L> {
    fn handle(&mut self, msg: WsIn, ctx: &mut Context<Self>) {
        if self.closing.is_some() {
            return;
        }
        let gen = msg.gen;
        let active = self.ws.as_ref().is_some_and(|w| w.gen == gen);
        let frame = match msg.item {
            None => return self.on_ws_end(gen, close::GOING_AWAY, ctx),
            Some(Ok(f)) => f,
            Some(Err(e)) => return self.on_ws_end(gen, e.close().0, ctx),
        };
        match frame {
            Frame::Text(b) => self.on_ws_message(gen, true, b, ctx),
            Frame::Binary(b) => self.on_ws_message(gen, false, b, ctx),
            Frame::Continuation(item) if active => {
                match crate::wsframes::reassemble(&mut self.fragments, item) {
                    Ok(Some((text, msg))) => self.on_ws_message(gen, text, msg, ctx),
                    Ok(None) => {}
                    Err(_) => self.on_ws_end(gen, close::PROTOCOL, ctx),
                }
            }
            Frame::Continuation(_) => self.on_ws_end(gen, close::PROTOCOL, ctx),
            Frame::Ping(b) => {
                let link = match &self.ws {
                    Some(w) if w.gen == gen => Some(w),
                    _ => self.probe.as_ref().map(|(p, _)| p).filter(|p| p.gen == gen),
                };
                if let Some(l) = link {
                    l.out.send(Out::Pong(b));
                }
            }
            Frame::Pong(_) => {}
            Frame::Close(_) => self.on_ws_end(gen, close::NORMAL, ctx),
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // Each stream ends with its own `None` item; the engine goes on.
    }
}

/// A WebSocket's queue overflowed: the client does not read.
impl<L: Layer> Handler<Evict> for Engine<L> {
    type Result = ();

    fn handle(&mut self, _: Evict, ctx: &mut Context<Self>) {
        if self.closing.is_none() {
            METRICS.slow_consumers.fetch_add(1, Relaxed);
            self.close("slow consumer", close::SLOW_CONSUMER, ctx);
        }
    }
}

/// A long-polling `GET`: answered with the pending packets, at once or when
/// some arrive.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Poll(pub oneshot::Sender<Result<Bytes, EioError>>);

impl<L: Layer> Handler<Poll> for Engine<L> {
    type Result = ();

    fn handle(&mut self, Poll(reply): Poll, ctx: &mut Context<Self>) {
        if self.closing.is_some() || self.pong_overdue(ctx) {
            let _ = reply.send(Err(EioError::UnknownSid));
            return;
        }
        if self.ws.is_some() {
            // The connection is on WebSocket now.
            let _ = reply.send(Err(EioError::BadRequest));
            return;
        }
        if self.waiter.is_some() {
            // Two GETs at once: the reference server closes the session.
            let _ = reply.send(Err(EioError::BadRequest));
            return self.close("overlapping polls", close::PROTOCOL, ctx);
        }
        self.waiter = Some(reply);
        let probing = self.probe.as_ref().is_some_and(|(_, pinged)| *pinged);
        if !self.pending.is_empty() || probing {
            self.answer_poll();
        }
    }
}

/// The packets of a long-polling `POST`.
#[derive(Message)]
#[rtype(result = "Result<(), EioError>")]
pub struct Post(pub Vec<Packet>);

impl<L: Layer> Handler<Post> for Engine<L> {
    type Result = Result<(), EioError>;

    fn handle(&mut self, Post(packets): Post, ctx: &mut Context<Self>) -> Self::Result {
        if self.closing.is_some() || self.pong_overdue(ctx) {
            return Err(EioError::UnknownSid);
        }
        if self.ws.is_some() {
            return Err(EioError::BadRequest);
        }
        for p in packets {
            if self.closing.is_some() {
                break;
            }
            self.on_packet(p, ctx);
        }
        Ok(())
    }
}

/// Closes the connection (a refused request: too large, unreadable).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Kill(pub &'static str);

impl<L: Layer> Handler<Kill> for Engine<L> {
    type Result = ();

    fn handle(&mut self, Kill(why): Kill, ctx: &mut Context<Self>) {
        self.close(why, close::PROTOCOL, ctx);
    }
}

/// A WebSocket for the upgrade of a long-polling connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Probe {
    pub read: OwnedReadHalf,
    pub write: OwnedWriteHalf,
    pub leftover: BytesMut,
}

impl<L: Layer> Handler<Probe> for Engine<L> {
    type Result = ();

    fn handle(&mut self, msg: Probe, ctx: &mut Context<Self>) {
        let mut link = self.attach_ws(msg.read, msg.write, msg.leftover, ctx);
        if self.closing.is_some() || self.ws.is_some() || self.probe.is_some() {
            link.shut(close::POLICY);
            return;
        }
        let gen = link.gen;
        self.probe = Some((link, false));
        ctx.run_later(self.cfg.upgrade_timeout, move |act, _| {
            if act.probe.as_ref().is_some_and(|(p, _)| p.gen == gen) {
                if let Some((mut p, _)) = act.probe.take() {
                    p.shut(close::POLICY);
                }
            }
        });
    }
}
