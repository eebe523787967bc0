//! Decodes the client's side of an upgraded connection into WebSocket frames.
//!
//! An idle connection holds no read buffer: bytes are read into a small stack
//! buffer and copied into `buf` only while a frame is incomplete, and `buf`'s
//! allocation is released as soon as every frame in it has been decoded.

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, ProtocolError};
use bytes::BytesMut;
use futures_core::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// Bytes read from the socket per read call.
const READ_CHUNK: usize = 4096;

pub struct WsFrames<R> {
    io: R,
    codec: Codec,
    buf: BytesMut,
    eof: bool,
}

impl<R> WsFrames<R> {
    /// `max_size` is the hard frame cap: a larger frame yields
    /// `ProtocolError::Overflow`. `leftover` is what was read past the upgrade
    /// request (a client may send frames right behind it).
    pub fn new(io: R, max_size: usize, leftover: BytesMut) -> Self {
        WsFrames {
            io,
            codec: Codec::new().max_size(max_size),
            buf: leftover,
            eof: false,
        }
    }
}

impl<R: AsyncRead + Unpin> Stream for WsFrames<R> {
    type Item = Result<Frame, ProtocolError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if !this.buf.is_empty() {
                match this.codec.decode(&mut this.buf) {
                    Ok(Some(frame)) => {
                        if this.buf.is_empty() {
                            // Decoded frames share the old allocation; drop ours.
                            this.buf = BytesMut::new();
                        }
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    Ok(None) => {}
                    Err(e) => return Poll::Ready(Some(Err(e))),
                }
            }
            if this.eof {
                return Poll::Ready(None);
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => this.eof = true,
                Poll::Ready(Ok(())) => this.buf.extend_from_slice(rb.filled()),
                Poll::Ready(Err(e)) => {
                    this.eof = true;
                    return Poll::Ready(Some(Err(ProtocolError::Io(e))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
