//! `--deflate`: the load clients offer permessage-deflate, and this wrapper
//! around their socket inflates the server's compressed frames (RSV1 set)
//! before tungstenite, which knows no extensions, reads them. What the
//! clients send goes uncompressed (RFC 7692 allows either). The server
//! never fragments a compressed message and takes over no context
//! (`server_no_context_takeover`), so each frame inflates on its own.

use bytes::{Buf, BufMut, BytesMut};
use flate2::{Decompress, FlushDecompress};
use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// A client socket; with `inflate`, compressed server frames come out plain.
pub struct Conn {
    io: TcpStream,
    inflate: bool,
    /// Bytes read and not yet a whole frame.
    raw: BytesMut,
    /// Frames ready for the reader, inflated.
    out: BytesMut,
    /// The HTTP answer to the handshake has been passed on; frames follow.
    head_done: bool,
}

impl Conn {
    pub fn new(io: TcpStream, inflate: bool) -> Conn {
        Conn {
            io,
            inflate,
            raw: BytesMut::new(),
            out: BytesMut::new(),
            head_done: false,
        }
    }
}

/// The length of the whole server frame at the front of `b`, once it is there.
fn whole_frame(b: &[u8]) -> Option<(usize, usize)> {
    let (len, at) = match *b.get(1)? & 0x7f {
        126 => (
            u16::from_be_bytes(b.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    (b.len() >= at + len).then_some((at, at + len))
}

thread_local! {
    static INFLATER: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

fn inflate(z: &[u8]) -> io::Result<Vec<u8>> {
    INFLATER.with(|d| {
        let mut d = d.borrow_mut();
        d.reset(false);
        let mut out = Vec::with_capacity(z.len() * 4 + 64);
        for part in [z, &[0, 0, 0xff, 0xff][..]] {
            let mut at = 0;
            loop {
                if out.len() == out.capacity() {
                    out.reserve(out.capacity());
                }
                let before = d.total_in();
                d.decompress_vec(&part[at..], &mut out, FlushDecompress::Sync)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                at += (d.total_in() - before) as usize;
                if at == part.len() && out.len() < out.capacity() {
                    break;
                }
            }
        }
        Ok(out)
    })
}

/// Moves whole frames from `raw` to `out`, inflating compressed ones.
fn unpack(raw: &mut BytesMut, out: &mut BytesMut) -> io::Result<()> {
    while let Some((at, end)) = whole_frame(raw) {
        let frame = raw.split_to(end);
        if frame[0] & 0x40 == 0 {
            out.extend_from_slice(&frame);
            continue;
        }
        let plain = inflate(&frame[at..])?;
        out.put_u8(frame[0] & !0x40);
        match plain.len() {
            n if n < 126 => out.put_u8(n as u8),
            n if n <= u16::MAX as usize => {
                out.put_u8(126);
                out.put_u16(n as u16);
            }
            n => {
                out.put_u8(127);
                out.put_u64(n as u64);
            }
        }
        out.extend_from_slice(&plain);
    }
    Ok(())
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.inflate {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out[..n]);
                this.out.advance(n);
                if this.out.is_empty() {
                    this.out = BytesMut::new();
                }
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    this.raw.extend_from_slice(rb.filled());
                    if !this.head_done {
                        // The handshake's answer goes through as it is.
                        let Some(end) = this.raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        this.out.extend_from_slice(&this.raw.split_to(end + 4));
                        this.head_done = true;
                    }
                    unpack(&mut this.raw, &mut this.out)?;
                    if this.raw.is_empty() {
                        this.raw = BytesMut::new();
                    }
                }
                other => return other,
            }
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, b)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    #[test]
    fn compressed_frames_come_out_plain_and_others_untouched() {
        let msg = b"{\"type\":\"message:receive\"}".repeat(20);
        let mut c = Compress::new(Compression::default(), false);
        let mut z = Vec::with_capacity(msg.len() + 64);
        c.compress_vec(&msg, &mut z, FlushCompress::Sync).unwrap();
        z.truncate(z.len() - 4);
        let mut raw = BytesMut::new();
        raw.extend_from_slice(&[0x89, 1, b'p']); // a ping
        raw.extend_from_slice(&[0xC1, z.len() as u8]);
        raw.extend_from_slice(&z);
        raw.extend_from_slice(&[0x81, 5]); // a frame not yet whole
        let mut out = BytesMut::new();
        unpack(&mut raw, &mut out).unwrap();
        assert_eq!(&out[..3], &[0x89, 1, b'p']);
        let len = (msg.len() as u16).to_be_bytes();
        assert_eq!(&out[3..7], &[0x81, 126, len[0], len[1]]);
        assert_eq!(&out[7..], &msg[..]);
        assert_eq!(&raw[..], &[0x81, 5]);
    }
}
