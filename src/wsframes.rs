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
//!
//! With permessage-deflate negotiated ([`WsFrames::inflating`]), a message
//! whose first frame has RSV1 set is inflated here (its fragments joined
//! first, within the same cap) and yielded as one plain `Text` or `Binary`
//! frame, inflating no further than the cap: the session never sees
//! compression. RSV1 anywhere else fails the connection with 1002.

use crate::deflate::{self, InflateError};
use crate::error::close;
use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, Item, ProtocolError};
use bytes::{Bytes, BytesMut};
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
/// RSV1: "per-message compressed" (RFC 7692 §6).
const RSV1: u8 = 0x40;

/// Why the stream of frames ended in error; each has its close code.
#[derive(Debug)]
pub enum FrameError {
    /// Broken RFC 6455 rules as found by the header check or actix-http's
    /// codec: 1002, or 1009 for `ProtocolError::Overflow` (past the cap).
    Protocol(ProtocolError),
    /// RSV1 where permessage-deflate does not allow it: not negotiated, or
    /// on a control frame or continuation (1002).
    Reserved(&'static str),
    /// A compressed message inflating past the cap (1009).
    TooBig,
    /// A compressed message that is not valid deflate data (1007).
    Corrupt,
}

impl From<ProtocolError> for FrameError {
    fn from(e: ProtocolError) -> Self {
        FrameError::Protocol(e)
    }
}

impl FrameError {
    /// The close code and reason the session answers with.
    pub fn close(&self) -> (u16, String) {
        match self {
            FrameError::Protocol(ProtocolError::Overflow) => {
                (close::TOO_BIG, "frame too large".into())
            }
            FrameError::Protocol(e) => (close::PROTOCOL, e.to_string()),
            FrameError::Reserved(why) => (close::PROTOCOL, (*why).into()),
            FrameError::TooBig => (
                close::TOO_BIG,
                "message inflates past the size limit".into(),
            ),
            FrameError::Corrupt => (
                close::INVALID_DATA,
                "compressed message is not valid deflate data".into(),
            ),
        }
    }
}

pub struct WsFrames<R> {
    io: R,
    codec: Codec,
    buf: BytesMut,
    eof: bool,
    /// The hard cap on a frame, and on a fragmented message in total.
    cap: usize,
    /// Payload bytes so far of the fragmented message in progress.
    message: Option<usize>,
    /// permessage-deflate was negotiated.
    inflating: bool,
    /// The frame at the front of `buf` had RSV1 set (cleared for the codec).
    front_compressed: bool,
    /// The compressed fragmented message in progress: text?, payload so far.
    deflated: Option<(bool, BytesMut)>,
    /// The most `buf` ever held, for the property tests.
    #[cfg(test)]
    peak: usize,
}

/// What the start of a frame header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub opcode: u8,
    pub len: u64,
    /// RSV1 is set.
    pub rsv1: bool,
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
        rsv1: first & RSV1 != 0,
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
            inflating: false,
            front_compressed: false,
            deflated: None,
            #[cfg(test)]
            peak: 0,
        }
    }

    /// Accepts compressed messages (permessage-deflate was negotiated).
    pub fn inflating(mut self) -> Self {
        self.inflating = true;
        self
    }

    /// The next whole message or control frame in `buf`, compressed
    /// messages inflated.
    fn decode(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            let Some((frame, compressed)) = self.decode_frame()? else {
                return Ok(None);
            };
            if let Some(frame) = self.inflate(frame, compressed)? {
                return Ok(Some(frame));
            }
        }
    }

    /// Passes plain frames on; joins a compressed message's frames and
    /// yields it inflated once whole.
    fn inflate(&mut self, frame: Frame, compressed: bool) -> Result<Option<Frame>, FrameError> {
        let whole = match frame {
            Frame::Text(b) if compressed => (true, b),
            Frame::Binary(b) if compressed => (false, b),
            Frame::Continuation(Item::FirstText(b)) if compressed => {
                self.deflated = Some((true, BytesMut::from(&b[..])));
                return Ok(None);
            }
            Frame::Continuation(Item::FirstBinary(b)) if compressed => {
                self.deflated = Some((false, BytesMut::from(&b[..])));
                return Ok(None);
            }
            Frame::Continuation(Item::Continue(b)) if self.deflated.is_some() => {
                if let Some((_, buf)) = &mut self.deflated {
                    buf.extend_from_slice(&b);
                }
                return Ok(None);
            }
            Frame::Continuation(Item::Last(b)) if self.deflated.is_some() => {
                let Some((text, mut buf)) = self.deflated.take() else {
                    return Ok(None);
                };
                buf.extend_from_slice(&b);
                (text, buf.freeze())
            }
            other => return Ok(Some(other)),
        };
        let (text, data) = whole;
        crate::metrics::METRICS
            .ws_inflated
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let plain = Bytes::from(deflate::inflate(&data, self.cap).map_err(|e| match e {
            InflateError::TooBig => FrameError::TooBig,
            InflateError::Corrupt => FrameError::Corrupt,
        })?);
        Ok(Some(if text {
            Frame::Text(plain)
        } else {
            Frame::Binary(plain)
        }))
    }

    /// The next whole frame in `buf`, if there is one and it may be read,
    /// and whether it had RSV1 set.
    fn decode_frame(&mut self) -> Result<Option<(Frame, bool)>, FrameError> {
        let Some(header) = peek_header(&self.buf) else {
            return Ok(None);
        };
        admit(header, self.message, self.cap)?;
        if header.rsv1 {
            if !self.inflating {
                return Err(FrameError::Reserved(
                    "RSV1 set but permessage-deflate was not negotiated",
                ));
            }
            if !matches!(header.opcode, 0x1 | 0x2) {
                return Err(FrameError::Reserved(
                    "RSV1 set on a control frame or a continuation",
                ));
            }
            // The codec refuses reserved bits: clear it, and remember.
            self.buf[0] &= !RSV1;
            self.front_compressed = true;
        }
        let Some(frame) = self.codec.decode(&mut self.buf)? else {
            return Ok(None);
        };
        let compressed = std::mem::take(&mut self.front_compressed);
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
        Ok(Some((frame, compressed)))
    }
}

impl<R: AsyncRead + Unpin> Stream for WsFrames<R> {
    type Item = Result<Frame, FrameError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.decode() {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) => {}
                Err(e) => {
                    this.eof = true;
                    this.buf = BytesMut::new();
                    this.deflated = None;
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
                    return Poll::Ready(Some(Err(ProtocolError::Io(e).into())));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod proptests;
