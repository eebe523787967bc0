//! Decodes the client's side of an upgraded connection into WebSocket frames.
//!
//! An idle connection holds no read buffer: bytes are read into a small stack
//! buffer and copied into `buf` only while a frame is incomplete, and `buf`'s
//! allocation is released as soon as every frame in it has been decoded.
//!
//! This is the one place the hard cap (`SWITCHBOARD_HARD_MAX_FRAME`) is
//! enforced: each frame header is read here before the codec sees it, and a
//! frame announcing more than the cap, or a continuation that would take its
//! fragmented message past it, is refused with `ProtocolError::Overflow`
//! before a byte of its payload is buffered. So whatever a peer announces, a
//! connection holds at most the cap plus one read chunk. The first error
//! ends the stream.

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, Item, ProtocolError};
use bytes::BytesMut;
use futures_core::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// Bytes read from the socket per read call.
pub const READ_CHUNK: usize = 4096;
/// Longest client frame header: 2 bytes, a 64-bit length, the mask.
pub const MAX_HEADER: usize = 14;
/// Largest payload of a control frame (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

pub struct WsFrames<R> {
    io: R,
    codec: Codec,
    buf: BytesMut,
    eof: bool,
    /// The hard cap on a frame, and on a fragmented message in total.
    cap: usize,
    /// Payload bytes so far of the fragmented message in progress.
    message: Option<usize>,
    /// The most `buf` ever held, for the property tests.
    #[cfg(test)]
    peak: usize,
}

/// What the start of a frame header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub opcode: u8,
    pub len: u64,
}

/// Reads the opcode and payload length at the front of `buf`; `None` until
/// enough of the header has arrived (2, 4 or 10 bytes).
pub fn peek_header(buf: &[u8]) -> Option<Header> {
    let (first, second) = (*buf.first()?, *buf.get(1)?);
    let len = match second & 0x7f {
        126 => u64::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
        127 => u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?),
        n => u64::from(n),
    };
    Some(Header {
        opcode: first & 0x0f,
        len,
    })
}

/// Whether a frame with `header` may be read, given `message`, the payload
/// so far of the fragmented message in progress.
pub fn admit(header: Header, message: Option<usize>, cap: usize) -> Result<(), ProtocolError> {
    let so_far = match header.opcode {
        0x0 => message.unwrap_or(0) as u64,
        _ => 0,
    };
    if so_far.saturating_add(header.len) > cap as u64 {
        return Err(ProtocolError::Overflow);
    }
    if header.opcode & 0x8 != 0 && header.len > MAX_CONTROL_PAYLOAD {
        return Err(ProtocolError::InvalidLength(header.len as usize));
    }
    Ok(())
}

/// A fragmented message being put back together: whether it is text, and
/// its bytes so far. `WsFrames` has already refused one past the hard cap.
pub type Fragments = Option<(bool, BytesMut)>;

/// A continuation frame out of sequence (RFC 6455 §5.4).
#[derive(Debug)]
pub struct BadSequence;

/// Adds a continuation frame to `fragments`: `Ok(Some((text, message)))`
/// once the last one is in.
pub fn reassemble(
    fragments: &mut Fragments,
    item: Item,
) -> Result<Option<(bool, bytes::Bytes)>, BadSequence> {
    let (first, last, chunk) = match item {
        Item::FirstText(b) => (Some(true), false, b),
        Item::FirstBinary(b) => (Some(false), false, b),
        Item::Continue(b) => (None, false, b),
        Item::Last(b) => (None, true, b),
    };
    match (first, fragments.as_mut()) {
        (Some(text), None) => *fragments = Some((text, BytesMut::from(&chunk[..]))),
        (None, Some((_, buf))) => buf.extend_from_slice(&chunk),
        _ => return Err(BadSequence),
    }
    Ok(if last {
        fragments.take().map(|(text, buf)| (text, buf.freeze()))
    } else {
        None
    })
}

impl<R> WsFrames<R> {
    /// `max_size` is the hard cap: a larger frame or fragmented message yields
    /// `ProtocolError::Overflow`. `leftover` is what was read past the upgrade
    /// request (a client may send frames right behind it).
    pub fn new(io: R, max_size: usize, leftover: BytesMut) -> Self {
        WsFrames {
            io,
            codec: Codec::new().max_size(max_size),
            buf: leftover,
            eof: false,
            cap: max_size,
            message: None,
            #[cfg(test)]
            peak: 0,
        }
    }

    /// The next whole frame in `buf`, if there is one and it may be read.
    fn decode(&mut self) -> Result<Option<Frame>, ProtocolError> {
        let Some(header) = peek_header(&self.buf) else {
            return Ok(None);
        };
        admit(header, self.message, self.cap)?;
        let Some(frame) = self.codec.decode(&mut self.buf)? else {
            return Ok(None);
        };
        if let Frame::Continuation(item) = &frame {
            self.message = match item {
                Item::FirstText(b) | Item::FirstBinary(b) => Some(b.len()),
                Item::Continue(b) => Some(self.message.unwrap_or(0) + b.len()),
                Item::Last(_) => None,
            };
        }
        if self.buf.is_empty() {
            // Decoded frames share the old allocation; drop ours.
            self.buf = BytesMut::new();
        }
        Ok(Some(frame))
    }
}

impl<R: AsyncRead + Unpin> Stream for WsFrames<R> {
    type Item = Result<Frame, ProtocolError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.decode() {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) => {}
                Err(e) => {
                    this.eof = true;
                    this.buf = BytesMut::new();
                    return Poll::Ready(Some(Err(e)));
                }
            }
            if this.eof {
                return Poll::Ready(None);
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => this.eof = true,
                Poll::Ready(Ok(())) => {
                    this.buf.extend_from_slice(rb.filled());
                    #[cfg(test)]
                    {
                        this.peak = this.peak.max(this.buf.len());
                    }
                }
                Poll::Ready(Err(e)) => {
                    this.eof = true;
                    return Poll::Ready(Some(Err(ProtocolError::Io(e))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod proptests;
