//! A session's bounded outbound queue, and the WebSocket body that drains it.
//!
//! Rooms, the Hub and the session itself push encoded frames (`Bytes`, shared
//! between all recipients) with a non-blocking `try_send`. When the queue is
//! full the pusher gets `false` and the session is told to close with 4008
//! (slow consumer): no sender ever waits on a slow socket.
//!
//! A WebSocket session's queue is drained by [`write_ws`], which frames every
//! queued message and writes as many as are ready in one write; an HTTP
//! session's by its Relay. The session actor runs independently of the
//! socket, so its timers and mailbox keep working while a client is not
//! reading.

use crate::deflate::Outbound;
use crate::delivery::{Class, Dropped};
use crate::metrics::METRICS;
use actix::prelude::*;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::sync::oneshot;

/// One item in the queue.
#[derive(Debug)]
pub enum Out {
    Text(Bytes),
    /// A low-priority or volatile frame: dropped first (`delivery.rs`).
    Droppable(Bytes, Class),
    /// Several frames that must stay together (a join's replay); one queue slot.
    Batch(Vec<Bytes>),
    /// A binary frame (Socket.IO attachments).
    Binary(Bytes),
    Ping,
    Pong(Bytes),
}

/// Sent to a session whose queue overflowed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Evict;

/// For tests: a session stand-in that ignores evictions.
#[cfg(test)]
pub struct Sink;

#[cfg(test)]
impl Actor for Sink {
    type Context = actix::Context<Self>;
}

#[cfg(test)]
impl Handler<Evict> for Sink {
    type Result = ();
    fn handle(&mut self, _: Evict, _: &mut actix::Context<Self>) {}
}

/// The sending side, cloned into every room the session is in.
///
/// The queue is a `VecDeque` behind a mutex rather than a channel: an empty
/// queue holds no allocation (a channel keeps a block of slots for life,
/// about 2.7 KiB a connection), a clone is one reference count, and a
/// receiver takes everything ready under one lock.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    capacity: usize,
    /// How the queue's reader wants fanned-out frames.
    flavor: Flavor,
    /// Told once when the queue overflows.
    evict: Recipient<Evict>,
}

struct State {
    items: VecDeque<Out>,
    /// The receiver, waiting for an item.
    waker: Option<Waker>,
    /// The receiver is gone: pushes fail.
    closed: bool,
    /// Critical frames at the front of `items`.
    critical: usize,
    /// `Out::Droppable` frames in `items`.
    droppable: usize,
    /// Frames dropped and not yet told to the client.
    dropped: Dropped,
}

impl State {
    /// Drops one queued droppable frame (volatile before low, oldest
    /// first) to make room; `false` when there is none.
    fn make_room(&mut self) -> bool {
        if self.droppable == 0 {
            return false;
        }
        let pick = |c: Class| {
            let at = |o: &Out| matches!(o, Out::Droppable(_, k) if *k == c);
            self.items.iter().position(at)
        };
        let Some(i) = pick(Class::Volatile).or_else(|| pick(Class::Low)) else {
            return false;
        };
        if let Some(Out::Droppable(_, class)) = self.items.remove(i) {
            self.droppable -= 1;
            self.dropped.count(class);
        }
        true
    }

    /// Takes the front item, keeping the counts.
    fn pop(&mut self) -> Option<Out> {
        let item = self.items.pop_front()?;
        if self.critical > 0 {
            self.critical -= 1;
        }
        if matches!(item, Out::Droppable(..)) {
            self.droppable -= 1;
        }
        Some(item)
    }

    /// Once the queue is down to a quarter of `capacity`, the client is
    /// told what it missed (one `dropped` frame, behind what is queued).
    fn tell_dropped(&mut self, capacity: usize) {
        if self.dropped.any() && self.items.len() <= capacity / 4 {
            let counts = std::mem::take(&mut self.dropped);
            let frame = crate::protocol::encode(&crate::protocol::ServerFrame::Dropped { counts });
            self.items.push_back(Out::Text(frame));
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section is a push or a pop: a panic in one cannot
        // leave the queue inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a queue's reader reads: our frames, or Socket.IO events (with
/// recovery offsets or without).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Native,
    SocketIo { offsets: bool },
}

/// One frame on its way to many queues: encoded for each flavor once, by
/// the first queue that wants it, and shared by the others.
pub struct Fanout<'a> {
    frame: &'a Bytes,
    sio: [std::cell::OnceCell<Option<Bytes>>; 2],
}

impl<'a> Fanout<'a> {
    pub fn new(frame: &'a Bytes) -> Fanout<'a> {
        Fanout {
            frame,
            sio: Default::default(),
        }
    }

    /// The bytes for a queue of `flavor` (the frame itself where the
    /// Socket.IO engine must handle it per connection).
    fn for_flavor(&self, flavor: Flavor) -> Bytes {
        match flavor {
            Flavor::Native => self.frame.clone(),
            Flavor::SocketIo { offsets } => self.sio[offsets as usize]
                .get_or_init(|| crate::socketio::event::encode(self.frame, offsets))
                .clone()
                .unwrap_or_else(|| self.frame.clone()),
        }
    }
}

impl Outbox {
    /// Queues a fanned-out frame as this queue's reader wants it (else as
    /// [`Outbox::push_as`]).
    pub fn push_fanout(&self, f: &Fanout, class: Class) -> bool {
        self.push_as(f.for_flavor(self.inner.flavor), class)
    }

    /// Queues one frame. `false` means the session is gone or too slow (and is
    /// being evicted): the caller should forget it.
    pub fn push(&self, frame: Bytes) -> bool {
        self.send(Out::Text(frame))
    }

    /// Queues one frame of a delivery class (`delivery.rs`). `false` means
    /// the session is gone or too slow (and is being evicted); a dropped
    /// low or volatile frame is counted and answers `true`.
    pub fn push_as(&self, frame: Bytes, class: Class) -> bool {
        if class == Class::Normal {
            return self.send(Out::Text(frame));
        }
        let mut st = self.inner.lock();
        if st.closed {
            return false;
        }
        let cap = self.inner.capacity;
        if class.droppable() {
            if st.items.len() >= cap / 2 {
                st.dropped.count(class);
                return true;
            }
            st.items.push_back(Out::Droppable(frame, class));
            st.droppable += 1;
        } else {
            if st.items.len() >= cap && !st.make_room() {
                drop(st);
                self.inner.evict.do_send(Evict);
                return false;
            }
            let at = st.critical;
            st.items.insert(at, Out::Text(frame));
            st.critical += 1;
        }
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Queues several items in order, under one lock and with one wake-up
    /// (the Socket.IO engine forwarding what its session queued).
    pub fn send_many(&self, items: impl IntoIterator<Item = Out>) -> bool {
        let mut st = self.inner.lock();
        if st.closed {
            return false;
        }
        for item in items {
            if st.items.len() >= self.inner.capacity && !st.make_room() {
                drop(st);
                self.inner.evict.do_send(Evict);
                return false;
            }
            st.items.push_back(item);
        }
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    pub fn send(&self, item: Out) -> bool {
        self.send_many([item])
    }
}

/// The receiving side of a session's queue.
pub struct Receiver {
    inner: Arc<Inner>,
}

/// Nothing is queued.
#[derive(Debug)]
pub struct Empty;

impl Receiver {
    pub fn try_recv(&mut self) -> Result<Out, Empty> {
        let mut st = self.inner.lock();
        let item = st.pop().ok_or(Empty)?;
        st.tell_dropped(self.inner.capacity);
        if st.items.is_empty() {
            // Release a grown buffer once the queue is drained.
            st.items = VecDeque::new();
        }
        Ok(item)
    }

    /// The next item; never ends (the close signal ends a session's queue).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Out>> {
        let mut st = self.inner.lock();
        match st.pop() {
            Some(item) => {
                st.tell_dropped(self.inner.capacity);
                if st.items.is_empty() {
                    st.items = VecDeque::new();
                }
                Poll::Ready(Some(item))
            }
            None => {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// The next item, waiting for it.
    pub async fn recv(&mut self) -> Option<Out> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Takes everything queued (at least one item, waiting for it).
    async fn recv_all(&mut self) -> VecDeque<Out> {
        std::future::poll_fn(|cx| self.poll_recv_all(cx)).await
    }

    /// Everything queued, or `Pending` (woken when something is).
    pub fn poll_recv_all(&mut self, cx: &mut Context<'_>) -> Poll<VecDeque<Out>> {
        let mut st = self.inner.lock();
        if st.items.is_empty() {
            st.waker = Some(cx.waker().clone());
            Poll::Pending
        } else {
            let items = std::mem::take(&mut st.items);
            (st.critical, st.droppable) = (0, 0);
            // Everything is taken: the pressure is off.
            st.tell_dropped(self.inner.capacity);
            Poll::Ready(items)
        }
    }

    /// Everything queued now, waiting for nothing.
    pub fn take_all(&mut self) -> VecDeque<Out> {
        let mut st = self.inner.lock();
        let items = std::mem::take(&mut st.items);
        (st.critical, st.droppable) = (0, 0);
        items
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        st.closed = true;
        st.items = VecDeque::new();
    }
}

/// Counts a connection for `/metrics` and the connection limit for exactly as
/// long as its socket is served: it lives in the task that writes to the
/// socket ([`write_ws`]), so a closed session whose socket is still stuck
/// behind an unread close frame keeps counting.
pub struct ConnGuard;

impl ConnGuard {
    pub fn new() -> ConnGuard {
        METRICS.connections.fetch_add(1, Relaxed);
        METRICS.connections_total.fetch_add(1, Relaxed);
        ConnGuard
    }
}

impl Default for ConnGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        METRICS.connections.fetch_sub(1, Relaxed);
    }
}

/// A close frame to send after what is already queued.
pub type CloseSender = oneshot::Sender<(u16, String)>;

/// The receiving ends of a session's queue: its frames, and the close signal
/// that follows the last of them.
pub struct Queue {
    pub rx: Receiver,
    pub close: oneshot::Receiver<(u16, String)>,
}

/// Creates a queue of `capacity` items for the session at `evict`, for any
/// transport to drain.
pub fn queue(capacity: usize, evict: Recipient<Evict>) -> (Outbox, CloseSender, Queue) {
    queue_as(capacity, evict, Flavor::Native)
}

/// [`queue`] for a reader of another flavor (a Socket.IO engine).
pub fn queue_as(
    capacity: usize,
    evict: Recipient<Evict>,
    flavor: Flavor,
) -> (Outbox, CloseSender, Queue) {
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            items: VecDeque::new(),
            waker: None,
            closed: false,
            critical: 0,
            droppable: 0,
            dropped: Dropped::default(),
        }),
        capacity,
        flavor,
        evict,
    });
    let (close_tx, close) = oneshot::channel();
    let rx = Receiver {
        inner: inner.clone(),
    };
    (Outbox { inner }, close_tx, Queue { rx, close })
}

/// Largest batch of frames assembled for one socket write.
const CHUNK: usize = 64 * 1024;

/// Drains a WebSocket session's queue into its socket until the session
/// closes: every frame that is ready goes out in one write (up to 64 KiB), and
/// the close frame follows whatever was queued before it. Holds no buffer
/// while the queue is empty. `conn` counts the connection until this returns
/// (a Socket.IO connection is counted by its Engine instead).
/// With `deflate` (permessage-deflate negotiated), text messages within its
/// bounds go out compressed (RSV1 set), shared with other connections.
pub async fn write_ws<W>(
    mut q: Queue,
    mut io: W,
    capacity: usize,
    conn: Option<ConnGuard>,
    deflate: Option<Outbound>,
) where
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let _conn = conn;
    loop {
        let ready = tokio::select! {
            biased;
            close = &mut q.close => {
                if let Ok((code, reason)) = close {
                    let mut buf = BytesMut::new();
                    // Flush what was queued before the close (bounded by the capacity).
                    for _ in 0..capacity {
                        match q.rx.try_recv() {
                            Ok(item) => {
                                put_out(&mut buf, item, deflate.as_ref());
                            }
                            Err(_) => break,
                        }
                    }
                    put_close(&mut buf, code, &reason);
                    let _ = io.write_all(&buf).await;
                }
                // Without a close the session ended because the transport had.
                let _ = io.shutdown().await;
                return;
            }
            ready = q.rx.recv_all() => ready,
        };
        let mut buf = BytesMut::new();
        let mut deflated = 0;
        for item in ready {
            deflated += put_out(&mut buf, item, deflate.as_ref());
            if buf.len() >= CHUNK {
                if io.write_all(&buf).await.is_err() {
                    return;
                }
                buf = BytesMut::new();
            }
        }
        if deflated > 0 {
            METRICS.ws_deflated.fetch_add(deflated, Relaxed);
        }
        if !buf.is_empty() && io.write_all(&buf).await.is_err() {
            return;
        }
    }
}

/// Appends one server-to-client (unmasked) WebSocket frame.
pub fn put_frame(buf: &mut BytesMut, opcode: u8, payload: &[u8]) {
    put_frame_with(buf, 0x80 | opcode, payload);
}

/// A final frame whose first byte (FIN, RSV bits, opcode) is `first`.
fn put_frame_with(buf: &mut BytesMut, first: u8, payload: &[u8]) {
    buf.reserve(payload.len() + 10);
    buf.put_u8(first);
    match payload.len() {
        n if n < 126 => buf.put_u8(n as u8),
        n if n <= u16::MAX as usize => {
            buf.put_u8(126);
            buf.put_u16(n as u16);
        }
        n => {
            buf.put_u8(127);
            buf.put_u64(n as u64);
        }
    }
    buf.extend_from_slice(payload);
}

/// A text message, compressed when `deflate` says it is worth it; 1 if it was.
fn put_text(buf: &mut BytesMut, msg: &Bytes, deflate: Option<&Outbound>) -> u64 {
    match deflate.and_then(|d| d.compress(msg)) {
        // FIN, RSV1 ("per-message compressed"), text.
        Some(c) => {
            put_frame_with(buf, 0xC1, &c);
            1
        }
        None => {
            put_frame(buf, 0x1, msg);
            0
        }
    }
}

/// Appends an item's frames; returns how many went compressed.
fn put_out(buf: &mut BytesMut, item: Out, deflate: Option<&Outbound>) -> u64 {
    match item {
        Out::Text(b) | Out::Droppable(b, _) => put_text(buf, &b, deflate),
        Out::Batch(v) => v.iter().map(|b| put_text(buf, b, deflate)).sum(),
        Out::Binary(b) => {
            put_frame(buf, 0x2, &b);
            0
        }
        Out::Ping => {
            put_frame(buf, 0x9, b"");
            0
        }
        Out::Pong(b) => {
            put_frame(buf, 0xA, &b);
            0
        }
    }
}

fn put_close(buf: &mut BytesMut, code: u16, reason: &str) {
    // A close reason may carry at most 123 bytes; cut on a char boundary.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    put_frame(buf, 0x8, &payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_and_volatile_go_first_critical_jumps_and_only_a_full_queue_of_the_rest_evicts() {
        actix::System::new().block_on(async {
            let sink = Sink.start().recipient::<Evict>();
            let (outbox, _close, mut q) = queue(8, sink);
            let f = |s: &'static str| Bytes::from_static(s.as_bytes());
            assert!(outbox.push(f("n1")));
            for _ in 0..5 {
                assert!(outbox.push_as(f("v"), Class::Volatile));
                assert!(outbox.push_as(f("l"), Class::Low));
            }
            // At half (4 queued) the other low and volatile ones were dropped.
            assert!(outbox.push_as(f("c1"), Class::Critical));
            assert!(outbox.push_as(f("c2"), Class::Critical));
            assert!(outbox.push(f("n2")));
            assert!(outbox.push(f("n3")));
            // Full (8): a normal frame takes the place of the oldest queued volatile.
            assert!(outbox.push(f("n4")));
            let mut got = Vec::new();
            while let Ok(Out::Text(b) | Out::Droppable(b, _)) = q.rx.try_recv() {
                got.push(String::from_utf8(b.to_vec()).unwrap());
            }
            let last = got.pop().unwrap();
            assert_eq!(got, ["c1", "c2", "n1", "l", "v", "n2", "n3", "n4"]);
            assert_eq!(
                last,
                r#"{"type":"dropped","counts":{"low":4,"volatile":4}}"#
            );
            // Full of frames none of which may be dropped: eviction.
            for _ in 0..8 {
                assert!(outbox.push(f("n")));
            }
            assert!(!outbox.push_as(f("c"), Class::Critical));
            assert!(!outbox.push(f("n")));
            assert!(outbox.push_as(f("l"), Class::Low), "dropped, not evicted");
        });
    }

    #[test]
    fn a_fanout_is_encoded_once_per_flavor_and_shared() {
        actix::System::new().block_on(async {
            let sink = Sink.start().recipient::<Evict>();
            let sio = Flavor::SocketIo { offsets: true };
            let queues = [
                Flavor::Native,
                sio,
                sio,
                Flavor::SocketIo { offsets: false },
            ]
            .map(|f| queue_as(4, sink.clone(), f));
            let frame = Bytes::from_static(br#"{"type":"message:receive","room":"r","seq":7}"#);
            let fanout = Fanout::new(&frame);
            for (o, _, _) in &queues {
                assert!(o.push_fanout(&fanout, Class::Normal));
            }
            let got: Vec<Bytes> = queues
                .into_iter()
                .map(|(_, _, mut q)| match q.rx.try_recv() {
                    Ok(Out::Text(b)) => b,
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(got[0], frame);
            assert!(got[1].ends_with(br#"},"7:r"]"#), "{:?}", got[1]);
            assert_eq!(got[1].as_ptr(), got[2].as_ptr(), "one buffer for both");
            assert!(got[3].starts_with(br#"42["message:receive",{"#) && got[3].ends_with(b"}]"));
            assert_ne!(got[3].as_ptr(), got[1].as_ptr());
        });
    }

    #[test]
    fn frame_lengths() {
        let mut b = BytesMut::new();
        put_frame(&mut b, 1, b"hi");
        assert_eq!(&b[..], &[0x81, 2, b'h', b'i']);
        let mut b = BytesMut::new();
        put_frame(&mut b, 1, &[b'x'; 200]);
        assert_eq!(&b[..4], &[0x81, 126, 0, 200]);
        let mut b = BytesMut::new();
        put_frame(&mut b, 1, &vec![b'x'; 70_000]);
        assert_eq!(&b[..10], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        let mut b = BytesMut::new();
        put_close(&mut b, 4008, &"é".repeat(100));
        assert_eq!(b[1] as usize, 2 + 122);
    }
}
