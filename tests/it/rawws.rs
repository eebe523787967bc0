//! A WebSocket client on a raw socket, for what the library clients will not
//! do: frames announcing anything, reserved bits, hand-made compression.

use crate::common::*;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// A WebSocket connection on a raw socket: the handshake is done, the rest is ours.
pub async fn raw_ws(s: &Server, path: &str) -> TcpStream {
    let (sock, head) = crate::common::raw_upgrade(&s.addr, path).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    sock
}

/// A client frame header (masked, with a zero key so the payload goes as is).
pub fn header(opcode: u8, fin: bool, len: u64) -> Vec<u8> {
    let mut h = vec![if fin { 0x80 } else { 0 } | opcode];
    match len {
        n if n < 126 => h.push(0x80 | n as u8),
        n if n <= u16::MAX as u64 => {
            h.push(0x80 | 126);
            h.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            h.push(0x80 | 127);
            h.extend_from_slice(&n.to_be_bytes());
        }
    }
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

pub fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = header(opcode, fin, payload.len() as u64);
    f.extend_from_slice(payload);
    f
}

/// Reads server frames (unmasked) from a raw socket.
pub struct Frames<R> {
    r: R,
    buf: Vec<u8>,
}

impl<R: AsyncReadExt + Unpin> Frames<R> {
    pub fn new(r: R) -> Self {
        Frames { r, buf: Vec::new() }
    }

    /// The next frame as (opcode, payload); `None` when the socket ends.
    /// Panics after `WAIT`.
    pub async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        self.next_raw().await.map(|(first, p)| (first & 0x0f, p))
    }

    /// The next frame as (first header byte: FIN, RSV bits, opcode; payload).
    pub async fn next_raw(&mut self) -> Option<(u8, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let b = &self.buf;
            let (len, at) = match b.get(1).map(|l| l & 0x7f) {
                Some(126) if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
                Some(127) if b.len() >= 10 => (
                    u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                Some(n) if n < 126 => (n as usize, 2),
                _ => (usize::MAX, 0),
            };
            if len != usize::MAX && b.len() >= at + len {
                let first = b[0];
                let payload = b[at..at + len].to_vec();
                self.buf.drain(..at + len);
                return Some((first, payload));
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.r.read(&mut chunk)).await {
                Err(_) => panic!("no whole frame within {WAIT:?}"),
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Skips frames until a close frame; returns its code (`None`: the
    /// socket ended without one).
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.next().await? {
                (0x8, p) => return (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]])),
                _ => continue,
            }
        }
    }

    /// Skips frames until a text frame of `ty`; returns it.
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        loop {
            match self.next().await {
                Some((0x1, p)) => {
                    let v: Value = serde_json::from_slice(&p).expect("JSON");
                    if v["type"] == ty {
                        return v;
                    }
                }
                Some((0x8, p)) => panic!("closed waiting for {ty}: {p:?}"),
                Some(_) => {}
                None => panic!("connection ended waiting for {ty}"),
            }
        }
    }
}
