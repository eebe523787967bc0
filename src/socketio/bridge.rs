//! Socket.IO on the hub: namespace `/` of a connection is a [`Session`]
//! like any other, fed with our JSON frames and drained into events.
//!
//! - `CONNECT /` authenticates (`auth.token`, else the handshake's `?token=`
//!   or bearer header, else a guest if guests are allowed) and starts the
//!   session; a refusal is `CONNECT_ERROR {message, data:{code}}`. Other
//!   namespaces get `CONNECT_ERROR "Invalid namespace"`.
//! - `EVENT [name, {…}]` becomes the frame `{"type":name, …}`; with an ack
//!   id, the frame gets `"id":"sio:<tag>:<ack id>"` and the reply our
//!   protocol sends for that id (`ack`, `room:joined`, `error` with `ref`, …)
//!   goes back as the `ACK`, its one argument the whole frame.
//! - every other frame the session sends is `EVENT [type, frame]`.
//! - binary attachments become `{"$binary":"<base64>"}` in frames, and such
//!   objects in frames going out become attachments again.

use super::engine::{Engine, Layer};
use super::event;
use super::packet::{Data, Packet};
use super::parser::{self, Kind, SioPacket};
use super::recovery::{self, Offset, Tracker};
use crate::error::{close, ErrorCode, HubError};
use crate::outbox;
use crate::outbox::Out;
use crate::protocol::error_frame;
use crate::session::{self, Session, Transport};
use actix::prelude::*;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{BTreeSet, HashMap, VecDeque};

/// Most ack ids awaiting their reply; past it the oldest is forgotten.
const MAX_PENDING_ACKS: usize = 4096;

/// The hub's layer on an Engine.IO connection.
pub struct Hub {
    pub(super) st: crate::AppState,
    pub(super) sio: Sio,
}

impl Hub {
    pub fn new(st: crate::AppState) -> Hub {
        Hub {
            st,
            sio: Sio::default(),
        }
    }
}

impl Layer for Hub {
    fn on_message(e: &mut Engine<Hub>, data: Data, ctx: &mut Context<Engine<Hub>>) {
        e.on_message(data, ctx)
    }

    fn connected(&self) -> bool {
        self.sio.ever_connected()
    }

    fn on_close(e: &mut Engine<Hub>, code: u16, reason: &str) {
        // A link lost (not a close asked for by either side) may come back.
        if matches!(code, close::GOING_AWAY | close::HEARTBEAT_TIMEOUT) && !e.cfg.recovery.is_zero()
        {
            if let Some(t) = e.layer.sio.take_tracker() {
                e.layer.st.engines.saved.save(t, e.cfg.recovery);
            }
        }
        e.layer.sio.end_session(code, reason);
    }

    fn on_stop(&mut self) {
        self.sio.end_session(close::GOING_AWAY, "transport closed");
    }
}

/// The Socket.IO state of one connection.
#[derive(Default)]
pub struct Sio {
    /// Namespace `/`: the session and the generation of its queue stream.
    session: Option<(u64, Addr<Session>)>,
    gen: u64,
    /// A random tag in our ack ids, so no other client's ids can match.
    tag: String,
    acks: BTreeSet<u64>,
    /// A binary packet waiting for its attachments (`None` packet: discard).
    partial: Option<(Option<SioPacket>, usize, Vec<Bytes>)>,
    /// Recovery: what the session sent (with a `pid`; not for guests).
    track: Option<Tracker>,
    /// Recovery: the room joins sent for a recovered connection, unanswered.
    rejoins: usize,
    /// A CONNECT is with the connect hook (`hook.rs`).
    pub(super) connecting: bool,
}

impl Sio {
    pub fn ever_connected(&self) -> bool {
        self.gen > 0
    }

    /// What this connection knew, for a client that comes back (its
    /// session must be running: a closed one was left on purpose).
    pub fn take_tracker(&mut self) -> Option<Tracker> {
        self.session.as_ref()?;
        self.track.take()
    }

    /// Ends namespace `/`'s session, if one is running.
    pub fn end_session(&mut self, code: u16, reason: &str) {
        if let Some((_, s)) = self.session.take() {
            s.do_send(session::Close {
                code,
                reason: reason.to_string(),
            });
        }
    }

    /// The id of the room joins of a recovery.
    fn rejoin_id(&self) -> String {
        format!("sio:{}:rejoin", self.tag)
    }

    fn ack_id(&self, n: u64) -> String {
        format!("sio:{}:{n}", self.tag)
    }

    /// The client's ack id in one of our frame ids.
    fn ack_of(&self, id: &str) -> Option<u64> {
        id.strip_prefix("sio:")?
            .strip_prefix(self.tag.as_str())?
            .strip_prefix(':')?
            .parse()
            .ok()
    }
}

#[derive(Deserialize)]
struct ConnectAuth {
    token: Option<String>,
    name: Option<String>,
    /// Recovery (socket.io-client v4.6+): the private session id we gave,
    /// and the last offset the client saw (absent if it saw none).
    pid: Option<String>,
    offset: Option<String>,
}

/// The correlation id of a server frame: `id`, or `ref` in an `error`.
#[derive(Deserialize)]
struct ReplyIds<'a> {
    #[serde(borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "ref", borrow)]
    reference: Option<std::borrow::Cow<'a, str>>,
}

/// Frames that carry a sender's id but are deliveries, not replies.
fn is_delivery(ty: &str) -> bool {
    matches!(ty, "message:receive" | "direct:receive")
}

impl Engine<Hub> {
    fn send_sio(&mut self, text: String, ctx: &mut Context<Self>) {
        self.send(Packet::Message(Data::Text(text)), ctx);
    }

    fn connect_error(&mut self, nsp: &str, e: &HubError, ctx: &mut Context<Self>) {
        self.connect_refused(nsp, e.code.as_str(), &e.message, ctx)
    }

    /// `CONNECT_ERROR {message, data:{code}}` (`code` may be a hook's own).
    pub(super) fn connect_refused(
        &mut self,
        nsp: &str,
        code: &str,
        message: &str,
        ctx: &mut Context<Self>,
    ) {
        let body = serde_json::json!({"message": message, "data": {"code": code}});
        let text = parser::encode(Kind::ConnectError, nsp, None, 0, Some(&body.to_string()));
        self.send_sio(text, ctx);
    }

    /// An Engine.IO message: a Socket.IO packet or one of its attachments.
    fn on_message(&mut self, data: Data, ctx: &mut Context<Self>) {
        if let Some((_, want, got)) = self.layer.sio.partial.as_mut() {
            let Data::Binary(b) = data else {
                return self.close("parse error: attachment expected", close::PROTOCOL, ctx);
            };
            got.push(b);
            if got.len() == *want {
                if let Some((Some(p), _, got)) = self.layer.sio.partial.take() {
                    self.on_event(p, &got, ctx);
                }
            }
            return;
        }
        let Data::Text(text) = data else {
            return self.close("parse error: unexpected binary", close::PROTOCOL, ctx);
        };
        let p = match parser::parse(&text) {
            Ok(p) => p,
            Err(e) => return self.close(&format!("parse error: {e}"), close::PROTOCOL, ctx),
        };
        let main = p.nsp == "/";
        match p.kind {
            Kind::Connect if main => self.on_connect(p.data.as_deref(), ctx),
            Kind::Connect => {
                let e = HubError::new(ErrorCode::NotFound, "Invalid namespace");
                self.connect_error(&p.nsp, &e, ctx);
            }
            Kind::Disconnect if main => {
                self.layer
                    .sio
                    .end_session(close::NORMAL, "client namespace disconnect");
            }
            Kind::Event | Kind::BinaryEvent if main && self.layer.sio.session.is_some() => {
                if p.attachments > 0 {
                    let n = p.attachments;
                    self.layer.sio.partial = Some((Some(p), n, Vec::new()));
                } else {
                    self.on_event(p, &[], ctx);
                }
            }
            // Acks of ours (we ask none) and packets for namespaces not
            // connected are dropped, their attachments too.
            _ if p.attachments > 0 => {
                self.layer.sio.partial = Some((None, p.attachments, Vec::new()))
            }
            _ => {}
        }
    }

    fn on_connect(&mut self, auth_raw: Option<&RawValue>, ctx: &mut Context<Self>) {
        if self.layer.sio.session.is_some() || self.layer.sio.connecting {
            let e = HubError::new(ErrorCode::BadRequest, "already connected to /");
            return self.connect_error("/", &e, ctx);
        }
        let auth = match auth_raw.map(|a| serde_json::from_str::<ConnectAuth>(a.get())) {
            None => ConnectAuth {
                token: None,
                name: None,
                pid: None,
                offset: None,
            },
            Some(Ok(a)) => a,
            Some(Err(_)) => {
                let e = HubError::new(
                    ErrorCode::BadRequest,
                    "auth: `token`, `name`, `pid` and `offset` must be strings",
                );
                return self.connect_error("/", &e, ctx);
            }
        };
        let shared = self.layer.st.shared.clone();
        let token = auth.token.or_else(|| self.handshake.token.clone());
        let name = auth.name.or_else(|| self.handshake.name.clone());
        if let Some(info) = self.hook_decides(&token, &name) {
            let (data, resume) = (auth_raw.map(RawValue::to_owned), (auth.pid, auth.offset));
            return self.connect_through_hook(info, data, resume, ctx);
        }
        let addr = self.handshake.addr;
        let mut client = crate::session::Client { addr, guest: None };
        let ident = match token {
            Some(t) => shared.auth.verify(&t, addr),
            None if shared.auth.guests => shared.guest_slot(addr).map(|slot| {
                client.guest = Some(slot);
                shared.auth.guest(name.as_deref())
            }),
            None => {
                let why = "guests are disabled: a token is required";
                crate::monitor::events::auth_failure(Some(addr), why);
                Err(HubError::new(ErrorCode::Unauthorized, why))
            }
        };
        match ident {
            Ok(i) => self.start_session(i, client, (auth.pid, auth.offset), ctx),
            Err(e) => self.connect_error("/", &e, ctx),
        }
    }

    /// Answers the CONNECT and starts namespace `/`'s session as `ident`;
    /// `resume` is the client's recovery `pid` and `offset`. With Redis the
    /// state the `pid` names is fetched first (it may have been left on
    /// another node).
    pub(super) fn start_session(
        &mut self,
        ident: crate::auth::Identity,
        client: crate::session::Client,
        resume: (Option<String>, Option<String>),
        ctx: &mut Context<Self>,
    ) {
        let (pid, offset) = resume;
        let user = ident.user.as_str().to_string();
        let pid = pid.filter(|_| !self.cfg.recovery.is_zero() && !ident.guest);
        let saved = &self.layer.st.engines.saved;
        match (pid, saved.shared()) {
            (Some(pid), Some(c)) => {
                let fut = recovery::take_shared(c.clone(), pid, user, self.cfg.queue);
                self.layer.sio.connecting = true;
                ctx.spawn(fut.into_actor(self).map(move |old, act, ctx| {
                    act.layer.sio.connecting = false;
                    act.open_session(ident, client, old, offset, ctx);
                }));
            }
            (pid, _) => {
                let old = pid.and_then(|p| saved.take(&p, &user));
                self.open_session(ident, client, old, offset, ctx);
            }
        }
    }

    /// [`Engine::start_session`] once the dropped connection's state
    /// (`old`) is known.
    fn open_session(
        &mut self,
        ident: crate::auth::Identity,
        client: crate::session::Client,
        old: Option<Tracker>,
        offset: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let shared = self.layer.st.shared.clone();
        if self.layer.sio.tag.is_empty() {
            self.layer.sio.tag = crate::ids::random_hex(4);
        }
        let (track, rejoins) = self.recover(&ident, old, offset);
        // The CONNECT answer goes out before anything the session sends.
        let mut answer = serde_json::json!({ "sid": crate::ids::random_hex(10) });
        if let Some(t) = &track {
            answer["pid"] = t.pid.clone().into();
        }
        let answer = answer.to_string();
        self.send_sio(
            parser::encode(Kind::Connect, "/", None, 0, Some(&answer)),
            ctx,
        );
        self.layer.sio.track = track;
        self.layer.sio.gen += 1;
        let gen = self.layer.sio.gen;
        let sctx = Context::<Session>::new();
        let cap = shared.cfg.outbox;
        // Room messages come encoded as events, once for all recipients
        // (`event.rs`); with recovery, with their offsets.
        let flavor = outbox::Flavor::SocketIo {
            offsets: self.layer.sio.track.is_some(),
        };
        let (outbox, close_tx, queue) = outbox::queue_as(cap, sctx.address().recipient(), flavor);
        let batches = Batches { q: Some(queue) };
        ctx.add_stream(batches.map(move |(items, closed)| FromSession { gen, items, closed }));
        let addr = sctx.run(Session::new(
            shared,
            self.layer.st.hub.clone(),
            self.layer.st.presence.clone(),
            crate::session::Admitted {
                ident: Some(ident),
                client,
                // Socket.IO authenticates in its CONNECT (token, guest, or
                // the connect hook before the session starts: `hook.rs`).
                connect: None,
            },
            outbox,
            close_tx,
            Transport::SocketIo,
        ));
        // The recovered rooms, rejoined from where the client was: our
        // history replays what it missed (the session reads these after
        // its own greeting and personal room).
        self.layer.sio.rejoins = rejoins.len();
        for r in rejoins {
            let mut join = serde_json::json!({
                "type": "room:join", "room": r.room, "since": r.since, "id": self.layer.sio.rejoin_id(),
            });
            if let Some(e) = r.epoch {
                join["epoch"] = e.into();
            }
            addr.do_send(session::Inbound(Bytes::from(join.to_string())));
        }
        self.layer.sio.session = Some((gen, addr));
    }

    /// The recovery state of a new connection, and the rooms to rejoin
    /// when `old` (the state its `pid` named) and its `offset` recover an
    /// earlier one.
    fn recover(
        &mut self,
        ident: &crate::auth::Identity,
        old: Option<Tracker>,
        offset: Option<String>,
    ) -> (Option<Tracker>, Vec<recovery::Rejoin>) {
        if self.cfg.recovery.is_zero() || ident.guest {
            return (None, Vec::new());
        }
        let user = ident.user.as_str().to_string();
        if let Some(mut t) = old {
            if let Some(plan) = t.plan(offset.as_deref()) {
                let mut fresh = Tracker::new(std::mem::take(&mut t.pid), user, self.cfg.queue);
                plan.iter().for_each(|r| fresh.resume(r));
                return (Some(fresh), plan);
            }
        }
        let pid = crate::ids::random_hex(16);
        (Some(Tracker::new(pid, user, self.cfg.queue)), Vec::new())
    }

    /// An event for namespace `/` (its attachments, if any, all there).
    fn on_event(&mut self, p: SioPacket, attachments: &[Bytes], ctx: &mut Context<Self>) {
        let frame = match event_frame(&p, attachments, |n| self.layer.sio.ack_id(n)) {
            Ok(f) => f,
            Err(msg) => {
                // Answered as our protocol answers a bad frame.
                let err = error_frame(ErrorCode::BadRequest, &msg, None, None);
                let ty = crate::protocol::event_name(&err);
                return self.emit_frame(&err, ty, p.id, None, ctx);
            }
        };
        let max = self.layer.st.shared.cfg.max_frame;
        if frame.len() > max {
            // The session would refuse it unread, naming no id: answered
            // here, where the ack id is known, so the client's ack resolves.
            let msg = format!("frame is {} bytes; the limit is {max}", frame.len());
            let err = error_frame(ErrorCode::TooLarge, &msg, None, None);
            let ty = crate::protocol::event_name(&err);
            return self.emit_frame(&err, ty, p.id, None, ctx);
        }
        if let Some(id) = p.id {
            self.layer.sio.acks.insert(id);
            if self.layer.sio.acks.len() > MAX_PENDING_ACKS {
                self.layer.sio.acks.pop_first();
            }
        }
        if let Some((_, s)) = &self.layer.sio.session {
            s.do_send(session::Inbound(frame));
        }
    }

    /// A frame from the session: the ack it answers, or an event.
    fn on_frame(&mut self, frame: Bytes, ctx: &mut Context<Self>) {
        let ty = crate::protocol::event_name(&frame);
        let mut ack = None;
        if (!self.layer.sio.acks.is_empty() || self.layer.sio.rejoins > 0) && !is_delivery(ty) {
            if let Ok(ids) = serde_json::from_slice::<ReplyIds>(&frame) {
                let id = if ty == "error" { ids.reference } else { ids.id };
                if self.layer.sio.rejoins > 0
                    && id.as_deref() == Some(self.layer.sio.rejoin_id().as_str())
                {
                    self.layer.sio.rejoins -= 1;
                    // A rejoin that replays what was missed is silent, as
                    // a recovery is; `recovered:false` or an error is told.
                    let whole = ty == "room:joined"
                        && serde_json::from_slice::<serde_json::Value>(&frame)
                            .is_ok_and(|v| v["recovered"] == true);
                    if whole {
                        if let Some(t) = self.layer.sio.track.as_mut() {
                            t.observe(ty, &frame);
                        }
                        return;
                    }
                }
                ack = id
                    .and_then(|id| self.layer.sio.ack_of(&id))
                    .filter(|n| self.layer.sio.acks.remove(n));
            }
        }
        // A join's reply (an ack) is seen too: it starts the room's count.
        let offset = match &mut self.layer.sio.track {
            Some(t) => t.observe(ty, &frame).filter(|_| ack.is_none()),
            None => None,
        };
        self.emit_frame(&frame, ty, ack, offset, ctx);
    }

    /// Sends a frame as `ACK [frame]` (with `ack`) or `EVENT [type, frame]`
    /// (`[type, frame, "<seq>:<room>"]` with a recovery offset), as
    /// `BINARY_*` with attachments when it holds `$binary` objects. `ty` is
    /// its type.
    fn emit_frame(
        &mut self,
        frame: &Bytes,
        ty: &str,
        ack: Option<u64>,
        offset: Option<Offset>,
        ctx: &mut Context<Self>,
    ) {
        let Ok(text) = std::str::from_utf8(frame) else {
            return;
        };
        if event::has_binary(frame) {
            let o = offset
                .as_ref()
                .map(|(room, seq)| event::offset_of(*seq, room));
            if let Some((json, bins)) = with_attachments(ty, text, ack.is_some(), o.as_deref()) {
                let kind = if ack.is_some() {
                    Kind::BinaryAck
                } else {
                    Kind::BinaryEvent
                };
                let head = parser::encode(kind, "/", ack, bins.len(), Some(&json));
                self.send_sio(head, ctx);
                for b in bins {
                    self.send(Packet::Message(Data::Binary(b)), ctx);
                }
                return;
            }
        }
        match ack {
            Some(n) => {
                let args = format!("[{text}]");
                self.send_sio(parser::encode(Kind::Ack, "/", Some(n), 0, Some(&args)), ctx)
            }
            // Room names hold nothing to escape (`RoomName`), so the offset
            // is written as the fan-out writes it.
            None => {
                let o = offset.as_ref().map(|(room, seq)| (room.as_ref(), *seq));
                self.send_message(event::wrap(ty, frame, o), ctx)
            }
        }
    }

    /// Namespace `/`'s session ended on the server's side: `DISCONNECT`,
    /// then the connection closes.
    fn on_session_closed(&mut self, gen: u64, ctx: &mut Context<Self>) {
        if self
            .layer
            .sio
            .session
            .as_ref()
            .is_some_and(|(g, _)| *g == gen)
        {
            self.layer.sio.session = None;
            self.send_sio(parser::encode(Kind::Disconnect, "/", None, 0, None), ctx);
            self.close("server namespace disconnect", close::NORMAL, ctx);
        }
    }
}

/// Our frame for an event: `{"type":name,"id"?:…, …first argument}`.
fn event_frame(
    p: &SioPacket,
    attachments: &[Bytes],
    ack_id: impl Fn(u64) -> String,
) -> Result<Bytes, String> {
    let raw = p.data.as_ref().map_or("[]", |d| d.get());
    let filled;
    let raw = if attachments.is_empty() {
        raw
    } else {
        let mut v: serde_json::Value = serde_json::from_str(raw).map_err(|e| e.to_string())?;
        parser::fill_placeholders(&mut v, attachments)?;
        filled = v.to_string();
        &filled
    };
    let args: Vec<&RawValue> = serde_json::from_str(raw).map_err(|e| e.to_string())?;
    let name = match args
        .first()
        .map(|a| serde_json::from_str::<serde_json::Value>(a.get()))
    {
        Some(Ok(serde_json::Value::String(s))) => s,
        Some(Ok(serde_json::Value::Number(n))) => n.to_string(),
        _ => return Err("the event needs a name".into()),
    };
    let fields: HashMap<String, &RawValue> = match args.get(1) {
        // `emit(name)` with an ack sends `[name, null]`... or nothing at all.
        None => HashMap::new(),
        Some(a) if a.get() == "null" => HashMap::new(),
        Some(a) => serde_json::from_str(a.get())
            .map_err(|_| "the event's argument must be an object (the frame without `type`)")?,
    };
    let mut out = String::with_capacity(raw.len() + 48);
    out.push_str("{\"type\":");
    out.push_str(&serde_json::Value::String(name).to_string());
    if let Some(n) = p.id {
        out.push_str(",\"id\":");
        out.push_str(&serde_json::Value::String(ack_id(n)).to_string());
    }
    for (k, v) in &fields {
        if k == "type" || (k == "id" && p.id.is_some()) {
            continue;
        }
        out.push(',');
        out.push_str(&serde_json::Value::String(k.clone()).to_string());
        out.push(':');
        out.push_str(v.get());
    }
    out.push('}');
    Ok(Bytes::from(out))
}

/// `[type, frame]` (or `[frame]` for an ack) with its `$binary` objects as
/// placeholders, and their bytes; `None` if there were none after all.
fn with_attachments(
    ty: &str,
    frame: &str,
    ack: bool,
    offset: Option<&str>,
) -> Option<(String, Vec<Bytes>)> {
    let frame: serde_json::Value = serde_json::from_str(frame).ok()?;
    let mut args = match (ack, offset) {
        (true, _) => serde_json::json!([frame]),
        (false, Some(o)) => serde_json::json!([ty, frame, o]),
        (false, None) => serde_json::json!([ty, frame]),
    };
    let mut bins = Vec::new();
    parser::take_binaries(&mut args, &mut bins);
    (!bins.is_empty()).then(|| (args.to_string(), bins))
}

/// What namespace `/`'s session of generation `gen` queued: everything
/// at one wake-up, and at the end, after what it queued before it, its close.
pub struct FromSession {
    gen: u64,
    items: VecDeque<Out>,
    closed: Option<(u16, String)>,
}

/// A session's queue in batches (one lock and one wake-up for all that is
/// ready, where a stream of items takes one each).
struct Batches {
    q: Option<outbox::Queue>,
}

impl futures_core::Stream for Batches {
    type Item = (VecDeque<Out>, Option<(u16, String)>);

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::future::Future;
        use std::task::Poll;
        let this = self.get_mut();
        let Some(q) = this.q.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(c) = std::pin::Pin::new(&mut q.close).poll(cx) {
            // The close follows every frame queued before it (the queue's
            // capacity bounds them).
            let c = c.unwrap_or_else(|_| (close::GOING_AWAY, "session ended".into()));
            let items = q.rx.take_all();
            this.q = None;
            return Poll::Ready(Some((items, Some(c))));
        }
        q.rx.poll_recv_all(cx).map(|items| Some((items, None)))
    }
}

impl Engine<Hub> {
    /// A frame from the session's queue: a fan-out's event joins the `run`
    /// of them going out together; anything else goes after that run.
    fn on_queued(&mut self, b: Bytes, run: &mut Vec<Bytes>, ctx: &mut Context<Self>) {
        if event::is_encoded(&b) {
            if let Some(t) = self.layer.sio.track.as_mut() {
                t.observe_event(&b);
            }
            run.push(b);
            return;
        }
        self.send_messages(std::mem::take(run), ctx);
        self.on_frame(b, ctx);
    }
}

impl StreamHandler<FromSession> for Engine<Hub> {
    fn handle(&mut self, msg: FromSession, ctx: &mut Context<Self>) {
        let mut run = Vec::new();
        for item in msg.items {
            match item {
                // Low and volatile frames (delivery classes) are frames like
                // any other once the session's queue let them through.
                Out::Text(b) | Out::Droppable(b, _) => self.on_queued(b, &mut run, ctx),
                Out::Batch(v) => v.into_iter().for_each(|b| self.on_queued(b, &mut run, ctx)),
                // The session pings only a WebSocket of its own; binary
                // frames are the engine's, never the session's.
                Out::Binary(_) | Out::Ping | Out::Pong(_) => {}
            }
        }
        self.send_messages(run, ctx);
        if msg.closed.is_some() {
            self.on_session_closed(msg.gen, ctx);
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // The session's stream ends after its close; the connection goes on.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_frames() {
        let p = parser::parse(r#"23["room:join",{"room":"general","type":"x"}]"#).unwrap();
        let f = event_frame(&p, &[], |n| format!("sio:t:{n}")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&f).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"room:join","id":"sio:t:3","room":"general"})
        );
        let p = parser::parse(r#"2["ping"]"#).unwrap();
        assert_eq!(
            &event_frame(&p, &[], |_| String::new()).unwrap()[..],
            br#"{"type":"ping"}"#
        );
        let p = parser::parse(r#"2["message:send","hi"]"#).unwrap();
        assert!(event_frame(&p, &[], |_| String::new()).is_err());
        let p = parser::parse(r#"51-["up",{"data":{"_placeholder":true,"num":0}}]"#).unwrap();
        let f = event_frame(&p, &[Bytes::from_static(b"hi")], |_| String::new()).unwrap();
        assert_eq!(&f[..], br#"{"type":"up","data":{"$binary":"aGk="}}"#);
    }

    #[test]
    fn frames_with_binaries_become_attachments() {
        let (json, bins) = with_attachments(
            "m",
            r#"{"type":"m","data":{"$binary":"aGk="}}"#,
            false,
            None,
        )
        .unwrap();
        assert_eq!(
            json,
            r#"["m",{"data":{"_placeholder":true,"num":0},"type":"m"}]"#
        );
        assert_eq!(bins, vec![Bytes::from_static(b"hi")]);
        let bad = r#"{"type":"m","data":{"$binary":"!"}}"#;
        assert!(with_attachments("m", bad, false, None).is_none());
    }

    #[test]
    fn ack_ids_carry_the_tag() {
        let s = Sio {
            tag: "ab".into(),
            ..Default::default()
        };
        assert_eq!(s.ack_of(&s.ack_id(7)), Some(7));
        assert_eq!(s.ack_of("sio:cd:7"), None);
        assert_eq!(s.ack_of("sio:ab:x"), None);
    }
}
