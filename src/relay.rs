//! The HTTP transports' side of a session: one Relay actor per SSE or
//! long-polling session.
//!
//! A WebSocket session's queue is drained straight into its socket. An HTTP
//! session has no socket that outlives a request, so its Relay drains the
//! session's queue into a *window*: every frame gets a cursor (1, 2, 3, …) and
//! stays in the window until the client acknowledges it (a later poll's
//! `cursor`, an SSE `Last-Event-ID` or `?ack=`). A response lost on the way is
//! therefore sent again, never dropped. The window holds at most
//! `SWITCHBOARD_OUTBOX` frames; a client that lets more pile up is a slow
//! consumer and is closed with 4008, as on a WebSocket. For SSE, frames already
//! written to a live stream may leave the window early to make room (a resume
//! from before them then answers `resume_failed`, and the client rejoins its
//! rooms with `since`).
//!
//! The Relay also keeps the session alive: with no open stream and no waiting
//! poll for `SWITCHBOARD_HTTP_SESSION_TIMEOUT_MS` it closes the session (1001,
//! "session expired"), which then leaves its rooms and goes offline.

use crate::error::{close, ErrorCode, HubError};
use crate::ids::random_hex;
use crate::metrics::METRICS;
use crate::outbox::{ConnGuard, Out, Queue};
use crate::session::{self, Session};
use actix::prelude::*;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::task::Poll as TaskPoll;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How often an idle SSE stream gets a `: keepalive` comment, at most. A
/// client that vanished without a FIN is only noticed when a write fails, so
/// the interval is also kept under a third of the session timeout: a dead
/// stream is found, and its session expires, within about that timeout.
const KEEPALIVE: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sse,
    Polling,
}

/// A live HTTP session, as the routes find it by key.
#[derive(Clone)]
pub struct Entry {
    pub kind: Kind,
    pub relay: Addr<Relay>,
    pub session: Addr<Session>,
}

/// Every live HTTP session by key. Looked up on each request; held only for
/// the map operation, never across an await.
#[derive(Default)]
pub struct Registry {
    map: Mutex<HashMap<String, Entry>>,
}

impl Registry {
    pub fn get(&self, key: &str) -> Option<Entry> {
        self.lock().get(key).cloned()
    }

    fn insert(&self, key: String, entry: Entry) {
        self.lock().insert(key, entry);
    }

    fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every operation is a single insert/remove/get): keep serving.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A new session key: 128 random bits, hex.
pub fn new_key() -> String {
    random_hex(16)
}

/// An SSE stream's chunks (the response body reads the other end).
pub type StreamTx = mpsc::Sender<Bytes>;

pub struct Relay {
    key: String,
    session: Addr<Session>,
    registry: Arc<Registry>,
    /// Frames not yet acknowledged, oldest first, with their cursors.
    window: VecDeque<(u64, Bytes)>,
    /// The cursor the next frame gets.
    next: u64,
    /// SSE: the last cursor written to a live stream.
    written: u64,
    cap: usize,
    queue: Option<Queue>,
    stream: Option<StreamTx>,
    waiter: Option<(oneshot::Sender<Bytes>, SpawnHandle)>,
    flush_scheduled: bool,
    /// Set when the session has ended: (code, reason).
    closed: Option<(u16, String)>,
    /// Set when the window overflowed: nothing more is accepted.
    evicted: bool,
    /// When the last stream or poll went away (`None` while one is attached).
    idle_since: Option<Instant>,
    timeout: Duration,
    poll_timeout: Duration,
    conn: Option<ConnGuard>,
}

impl Relay {
    /// Registers a new relay for `session` (whose queue is `queue`) under `key`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        key: String,
        kind: Kind,
        session: Addr<Session>,
        queue: Queue,
        registry: Arc<Registry>,
        cap: usize,
        timeout: Duration,
        poll_timeout: Duration,
    ) -> Addr<Relay> {
        let relay = Relay {
            key: key.clone(),
            session: session.clone(),
            registry: registry.clone(),
            window: VecDeque::new(),
            next: 1,
            written: 0,
            cap,
            queue: Some(queue),
            stream: None,
            waiter: None,
            flush_scheduled: false,
            closed: None,
            evicted: false,
            idle_since: Some(Instant::now()),
            timeout,
            poll_timeout,
            conn: Some(ConnGuard::new()),
        };
        let addr = relay.start();
        registry.insert(
            key,
            Entry {
                kind,
                relay: addr.clone(),
                session,
            },
        );
        addr
    }

    fn last_cursor(&self) -> u64 {
        self.next - 1
    }

    /// Drops every frame up to `cursor`: the client has it.
    fn ack(&mut self, cursor: u64) {
        while self.window.front().is_some_and(|(c, _)| *c <= cursor) {
            self.window.pop_front();
        }
    }

    fn push(&mut self, frame: Bytes, ctx: &mut Context<Self>) {
        if self.evicted {
            return;
        }
        let cursor = self.next;
        self.next += 1;
        if self.stream.is_some() {
            let mut buf = BytesMut::new();
            put_event(&mut buf, &self.key, cursor, &frame);
            self.write(buf.freeze(), cursor);
        }
        self.window.push_back((cursor, frame));
        while self.window.len() > self.cap {
            if self.window.front().is_some_and(|(c, _)| *c <= self.written) {
                self.window.pop_front();
            } else {
                self.evict();
                break;
            }
        }
        if self.waiter.is_some() && !self.flush_scheduled {
            // Answer on the next turn, so a burst goes out in one response.
            self.flush_scheduled = true;
            ctx.run_later(Duration::ZERO, |act, ctx| {
                act.flush_scheduled = false;
                act.answer_poll(ctx);
            });
        }
    }

    /// Writes a chunk to the SSE stream; `upto` is the last cursor it carries.
    fn write(&mut self, chunk: Bytes, upto: u64) {
        let Some(tx) = &self.stream else { return };
        match tx.try_send(chunk) {
            Ok(()) => self.written = self.written.max(upto),
            Err(mpsc::error::TrySendError::Full(_)) => {
                // The client reads nothing while frames keep coming.
                self.stream = None;
                self.idle_since = Some(Instant::now());
                self.evict();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.stream = None;
                self.idle_since = Some(Instant::now());
            }
        }
    }

    /// The client cannot keep up: close its session as a slow consumer. The
    /// frames already in the window are still delivered, then the close.
    fn evict(&mut self) {
        if !self.evicted && self.closed.is_none() {
            self.evicted = true;
            METRICS.slow_consumers.fetch_add(1, Relaxed);
            log::info!("http session {} is a slow consumer; closing", self.key);
            self.session.do_send(session::Close {
                code: close::SLOW_CONSUMER,
                reason: "slow consumer".into(),
            });
        }
    }

    /// Answers the waiting poll, if any, with every frame in the window (they
    /// stay there until the next poll acknowledges them). An answer that
    /// carries the close is the last: the key is then forgotten.
    fn answer_poll(&mut self, ctx: &mut Context<Self>) {
        let Some((reply, timer)) = self.waiter.take() else {
            return;
        };
        ctx.cancel_future(timer);
        self.idle_since = Some(Instant::now());
        let body = poll_body(
            self.window.iter().map(|(_, f)| f),
            self.last_cursor(),
            self.closed.as_ref(),
        );
        // A client that went away keeps its frames for the next poll.
        if reply.send(body).is_ok() && self.closed.is_some() {
            ctx.stop();
        }
    }

    fn on_session_closed(&mut self, code: u16, reason: String, ctx: &mut Context<Self>) {
        self.conn = None;
        self.closed = Some((code, reason));
        self.deliver_close(ctx);
    }

    /// Sends the close to whoever is listening; the relay ends once it has.
    fn deliver_close(&mut self, ctx: &mut Context<Self>) {
        let Some((code, reason)) = self.closed.clone() else {
            return;
        };
        if self.stream.is_some() {
            let mut buf = BytesMut::new();
            put_close_event(&mut buf, code, &reason);
            let upto = self.written;
            self.write(buf.freeze(), upto);
            if self.stream.take().is_some() {
                ctx.stop();
            }
        } else if self.waiter.is_some() {
            self.answer_poll(ctx);
        }
    }

    fn on_out(&mut self, item: Out, ctx: &mut Context<Self>) {
        match item {
            Out::Text(b) | Out::Droppable(b, _) => self.push(b, ctx),
            Out::Batch(v) => v.into_iter().for_each(|b| self.push(b, ctx)),
            Out::Binary(_) | Out::Ping | Out::Pong(_) => {}
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.stream.as_ref().is_some_and(|tx| tx.is_closed()) {
            self.stream = None;
            self.idle_since = Some(Instant::now());
        }
        if let Some(since) = self.idle_since {
            if self.stream.is_none() && self.waiter.is_none() && since.elapsed() >= self.timeout {
                log::debug!("http session {} expired", self.key);
                ctx.stop();
            }
        }
    }
}

impl Actor for Relay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(usize::MAX >> 4);
        if let Some(q) = self.queue.take() {
            ctx.add_stream(QueueStream::new(q, self.cap));
        }
        let tick = (self.timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        ctx.run_interval(tick, |act, ctx| act.tick(ctx));
        let keepalive = KEEPALIVE
            .min(self.timeout / 3)
            .max(Duration::from_millis(20));
        ctx.run_interval(keepalive, |act, _| {
            let upto = act.written;
            act.write(Bytes::from_static(b": keepalive\n\n"), upto);
        });
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.registry.remove(&self.key);
        if self.closed.is_none() {
            self.session.do_send(session::Close {
                code: close::GOING_AWAY,
                reason: "session expired".into(),
            });
        }
        if let Some((reply, _)) = self.waiter.take() {
            let _ = reply.send(poll_body(
                std::iter::empty(),
                self.last_cursor(),
                self.closed.as_ref(),
            ));
        }
        Running::Stop
    }
}

/// What the session's queue yields to its relay: frames, then (once) the close.
pub enum Queued {
    Frame(Out),
    Closed(u16, String),
}

/// The session's queue as one ordered stream: every frame queued before the
/// close comes before it (at most `left` of them, as a WebSocket flushes).
pub struct QueueStream {
    q: Queue,
    closing: Option<(u16, String)>,
    left: usize,
}

impl QueueStream {
    /// The stream of `q`; at most `cap` frames are flushed after the close.
    pub fn new(q: Queue, cap: usize) -> QueueStream {
        QueueStream {
            q,
            closing: None,
            left: cap,
        }
    }
}

impl futures_core::Stream for QueueStream {
    type Item = Queued;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> TaskPoll<Option<Queued>> {
        use std::future::Future;
        let this = self.get_mut();
        if this.left == 0 {
            return TaskPoll::Ready(None);
        }
        if this.closing.is_none() {
            // Once ready, the oneshot is never polled again.
            match Pin::new(&mut this.q.close).poll(cx) {
                TaskPoll::Ready(Ok(c)) => this.closing = Some(c),
                TaskPoll::Ready(Err(_)) => this.closing = Some((1006, "session ended".into())),
                TaskPoll::Pending => {}
            }
        }
        match this.closing.take() {
            Some(c) => match this.q.rx.try_recv() {
                Ok(item) => {
                    this.left -= 1;
                    this.closing = Some(c);
                    TaskPoll::Ready(Some(Queued::Frame(item)))
                }
                Err(_) => {
                    this.left = 0;
                    TaskPoll::Ready(Some(Queued::Closed(c.0, c.1)))
                }
            },
            // With every sender gone the close is still to come (it wakes us).
            None => match this.q.rx.poll_recv(cx) {
                TaskPoll::Ready(Some(item)) => TaskPoll::Ready(Some(Queued::Frame(item))),
                TaskPoll::Ready(None) | TaskPoll::Pending => TaskPoll::Pending,
            },
        }
    }
}

impl StreamHandler<Queued> for Relay {
    fn handle(&mut self, item: Queued, ctx: &mut Context<Self>) {
        match item {
            Queued::Frame(out) => self.on_out(out, ctx),
            Queued::Closed(code, reason) => self.on_session_closed(code, reason, ctx),
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // The relay outlives its session until the close is delivered.
    }
}

/// Attaches an SSE stream, resuming after `after` (0 for a new stream). The
/// previous stream, if any, ends.
#[derive(Message)]
#[rtype(result = "Result<(), HubError>")]
pub struct Attach {
    pub after: u64,
    pub tx: StreamTx,
}

impl Handler<Attach> for Relay {
    type Result = Result<(), HubError>;

    fn handle(&mut self, msg: Attach, ctx: &mut Context<Self>) -> Self::Result {
        let first_kept = self.window.front().map_or(self.next, |(c, _)| *c);
        if msg.after > self.last_cursor() {
            return Err(HubError::new(
                ErrorCode::ResumeFailed,
                format!(
                    "cursor {} is ahead of the session (last {})",
                    msg.after,
                    self.last_cursor()
                ),
            ));
        }
        if msg.after + 1 < first_kept {
            return Err(HubError::new(
                ErrorCode::ResumeFailed,
                format!(
                    "frames after {} are no longer kept; open a new session and rejoin with since",
                    msg.after
                ),
            ));
        }
        self.ack(msg.after);
        self.stream = Some(msg.tx);
        self.idle_since = None;
        self.written = msg.after;
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"retry: 1000\n\n");
        for (c, f) in &self.window {
            put_event(&mut buf, &self.key, *c, f);
        }
        let last = self.last_cursor();
        self.write(buf.freeze(), last);
        if self.closed.is_some() {
            self.deliver_close(ctx);
        }
        Ok(())
    }
}

/// A long-poll: acknowledges up to `cursor`, then answers with the frames
/// after it on `reply`, at once or when some arrive (or empty at the timeout).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Poll {
    pub cursor: u64,
    pub reply: oneshot::Sender<Bytes>,
}

impl Handler<Poll> for Relay {
    type Result = ();

    fn handle(&mut self, msg: Poll, ctx: &mut Context<Self>) {
        self.ack(msg.cursor);
        if let Some((older, timer)) = self.waiter.take() {
            ctx.cancel_future(timer);
            let _ = older.send(poll_body(std::iter::empty(), msg.cursor, None));
        }
        let timer = ctx.run_later(self.poll_timeout, |act, ctx| act.answer_poll(ctx));
        self.waiter = Some((msg.reply, timer));
        self.idle_since = None;
        if !self.window.is_empty() || self.closed.is_some() {
            self.answer_poll(ctx);
        }
    }
}

/// The client acknowledges every frame up to this cursor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ack(pub u64);

impl Handler<Ack> for Relay {
    type Result = ();

    fn handle(&mut self, msg: Ack, _: &mut Context<Self>) {
        self.ack(msg.0.min(self.last_cursor()));
    }
}

/// The client ends the session (`POST /sse/close`, `/poll/close`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct End;

impl Handler<End> for Relay {
    type Result = ();

    fn handle(&mut self, _: End, ctx: &mut Context<Self>) {
        if self.closed.is_none() {
            self.session.do_send(session::Close {
                code: close::NORMAL,
                reason: "closed by client".into(),
            });
            self.closed = Some((close::NORMAL, "closed by client".into()));
        }
        self.conn = None;
        self.deliver_close(ctx);
        ctx.stop();
    }
}

/// One SSE event. A frame is one JSON line, but client-sent `data` keeps its
/// own whitespace, which may hold line breaks: each line becomes a `data:`
/// line, which the event-stream format joins back with `\n`.
pub fn put_event(buf: &mut BytesMut, key: &str, cursor: u64, frame: &[u8]) {
    buf.reserve(frame.len() + key.len() + 48);
    buf.put_slice(b"id: ");
    buf.put_slice(key.as_bytes());
    buf.put_slice(format!(":{cursor}\nevent: ").as_bytes());
    buf.put_slice(crate::protocol::event_name(frame).as_bytes());
    buf.put_slice(b"\n");
    for line in frame.split(|&b| b == b'\n' || b == b'\r') {
        buf.put_slice(b"data: ");
        buf.put_slice(line);
        buf.put_slice(b"\n");
    }
    buf.put_slice(b"\n");
}

fn close_json(code: u16, reason: &str) -> String {
    serde_json::json!({"type": "close", "code": code, "reason": reason}).to_string()
}

fn put_close_event(buf: &mut BytesMut, code: u16, reason: &str) {
    buf.put_slice(b"event: close\ndata: ");
    buf.put_slice(close_json(code, reason).as_bytes());
    buf.put_slice(b"\n\n");
}

/// `{"cursor":N,"frames":[…],"closed"?:{…}}`: frames are already JSON.
fn poll_body<'a>(
    frames: impl Iterator<Item = &'a Bytes>,
    cursor: u64,
    closed: Option<&(u16, String)>,
) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_slice(format!(r#"{{"cursor":{cursor},"frames":["#).as_bytes());
    for (i, f) in frames.enumerate() {
        if i > 0 {
            buf.put_u8(b',');
        }
        buf.put_slice(f);
    }
    buf.put_u8(b']');
    if let Some((code, reason)) = closed {
        let c = serde_json::json!({"code": code, "reason": reason});
        buf.put_slice(format!(r#","closed":{c}"#).as_bytes());
    }
    buf.put_u8(b'}');
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_type_cursor_and_split_lines() {
        let mut b = BytesMut::new();
        put_event(
            &mut b,
            "k",
            7,
            br#"{"type":"message:receive","data":{"a":1}}"#,
        );
        assert_eq!(
            &b[..],
            b"id: k:7\nevent: message:receive\ndata: {\"type\":\"message:receive\",\"data\":{\"a\":1}}\n\n"
        );
        let mut b = BytesMut::new();
        put_event(&mut b, "k", 8, b"{\"type\":\"x\",\"data\":{\r\n\"a\":1}}");
        assert_eq!(
            &b[..],
            b"id: k:8\nevent: x\ndata: {\"type\":\"x\",\"data\":{\ndata: \ndata: \"a\":1}}\n\n"
        );
        assert_eq!(
            crate::protocol::event_name(br#"{"type":"a\nb"}"#),
            "message"
        );
        assert_eq!(crate::protocol::event_name(b"[]"), "message");
    }

    #[test]
    fn poll_bodies_are_json() {
        let f = [
            Bytes::from_static(br#"{"type":"pong"}"#),
            Bytes::from_static(b"{}"),
        ];
        let body = poll_body(f.iter(), 9, Some(&(4008, "slow \"consumer\"".into())));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["cursor"], 9);
        assert_eq!(v["frames"][0]["type"], "pong");
        assert_eq!(v["closed"]["code"], 4008);
        assert_eq!(v["closed"]["reason"], "slow \"consumer\"");
        let empty = poll_body(std::iter::empty(), 0, None);
        assert_eq!(&empty[..], br#"{"cursor":0,"frames":[]}"#);
    }
}
