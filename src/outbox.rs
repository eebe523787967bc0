//! A session's bounded outbound queue, and the WebSocket body that drains it.
//!
//! Rooms, the Hub and the session itself push encoded frames (`Bytes`, shared
//! between all recipients) with a non-blocking `try_send`. When the queue is
//! full the pusher gets `false` and the session is told to close with 4008
//! (slow consumer): no sender ever waits on a slow socket.
//!
//! The queue is drained by [`WsBody`], the HTTP response body of the upgraded
//! connection, which frames every queued message and writes as many as are
//! ready in one chunk. The session actor runs independently of the socket, so
//! its timers and mailbox keep working while a client is not reading.

use crate::metrics::METRICS;
use actix::prelude::*;
use actix_web::body::{BodySize, MessageBody};
use bytes::{BufMut, Bytes, BytesMut};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};

/// One item in the queue.
#[derive(Debug)]
pub enum Out {
    Text(Bytes),
    /// Several frames that must stay together (a join's replay); one queue slot.
    Batch(Vec<Bytes>),
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
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Out>,
    evict: Recipient<Evict>,
}

impl Outbox {
    /// Queues one frame. `false` means the session is gone or too slow (and is
    /// being evicted): the caller should forget it.
    pub fn push(&self, frame: Bytes) -> bool {
        self.send(Out::Text(frame))
    }

    pub fn send(&self, item: Out) -> bool {
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.evict.do_send(Evict);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Counts a connection for `/metrics` and the connection limit for exactly as
/// long as its socket is served: it lives in the [`WsBody`], which actix drops
/// when the connection ends, so a closed session whose socket is still stuck
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
    pub rx: mpsc::Receiver<Out>,
    pub close: oneshot::Receiver<(u16, String)>,
}

/// Creates a queue of `capacity` items for the session at `evict`, for any
/// transport to drain.
pub fn queue(capacity: usize, evict: Recipient<Evict>) -> (Outbox, CloseSender, Queue) {
    let (tx, rx) = mpsc::channel(capacity);
    let (close_tx, close) = oneshot::channel();
    (Outbox { tx, evict }, close_tx, Queue { rx, close })
}

/// Creates a queue of `capacity` items for the session at `evict`, drained
/// by a WebSocket body.
pub fn channel(
    capacity: usize,
    evict: Recipient<Evict>,
    conn: ConnGuard,
) -> (Outbox, CloseSender, WsBody) {
    let (outbox, close_tx, q) = queue(capacity, evict);
    (
        outbox,
        close_tx,
        WsBody {
            rx: q.rx,
            close: Some(q.close),
            done: false,
            capacity,
            _conn: conn,
        },
    )
}

/// Largest chunk assembled before handing it to the HTTP layer.
const CHUNK: usize = 64 * 1024;

/// The response body of a WebSocket connection.
pub struct WsBody {
    rx: mpsc::Receiver<Out>,
    close: Option<oneshot::Receiver<(u16, String)>>,
    done: bool,
    capacity: usize,
    _conn: ConnGuard,
}

/// Appends one server-to-client (unmasked) WebSocket frame.
pub fn put_frame(buf: &mut BytesMut, opcode: u8, payload: &[u8]) {
    buf.reserve(payload.len() + 10);
    buf.put_u8(0x80 | opcode);
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

fn put_out(buf: &mut BytesMut, item: Out) {
    match item {
        Out::Text(b) => put_frame(buf, 0x1, &b),
        Out::Batch(v) => v.iter().for_each(|b| put_frame(buf, 0x1, b)),
        Out::Ping => put_frame(buf, 0x9, b""),
        Out::Pong(b) => put_frame(buf, 0xA, &b),
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

impl MessageBody for WsBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut buf = BytesMut::new();
        if let Some(close) = this.close.as_mut() {
            match Pin::new(close).poll(cx) {
                Poll::Ready(Ok((code, reason))) => {
                    // Flush what was queued before the close (bounded by the capacity).
                    for _ in 0..this.capacity {
                        match this.rx.try_recv() {
                            Ok(item) => put_out(&mut buf, item),
                            Err(_) => break,
                        }
                    }
                    put_close(&mut buf, code, &reason);
                    this.done = true;
                    return Poll::Ready(Some(Ok(buf.freeze())));
                }
                Poll::Ready(Err(_)) => {
                    // The session ended without a close frame (transport already gone).
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => {}
            }
        }
        while buf.len() < CHUNK {
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(item)) => put_out(&mut buf, item),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        if buf.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(Some(Ok(buf.freeze())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
