//! permessage-deflate (RFC 7692) on WebSocket: what a connection negotiated,
//! and the compressing and inflating of whole messages.
//!
//! No context is taken over in either direction (the answer always says
//! `server_no_context_takeover; client_no_context_takeover`), so every
//! message is compressed and inflated on its own. A connection therefore
//! keeps no compressor state at all: each worker thread has one compressor
//! and one inflater, reset per message, and a small cache of what it last
//! compressed, keyed by the identity of the frame's shared `Bytes`. A room
//! queues the same `Bytes` to every member, so a broadcast is compressed
//! once per worker thread and the compressed bytes are shared by every
//! member that negotiated the extension (the output does not depend on the
//! connection's parameters; only whether to compress does).
//!
//! The offer is parsed in [`offer`].

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

pub mod offer;
#[cfg(test)]
mod proptests;

/// The empty stored block a sync flush ends with: removed from every
/// compressed message, put back before inflating (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];
/// Compressed frames remembered per thread for sharing, at most… (enough
/// for members whose writers lag thousands of messages behind others: a
/// miss costs a compression for that one member)
const CACHE_ENTRIES: usize = 8192;
/// …and with at most this many bytes (originals and compressed) in all.
const CACHE_BYTES: usize = 8 << 20;

/// The settings (`SWITCHBOARD_WS_DEFLATE*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Negotiate the extension with clients that offer it.
    pub enabled: bool,
    /// Messages shorter than this go out uncompressed.
    pub threshold: usize,
    /// Compression level, 1 (fastest) to 9 (smallest).
    pub level: u32,
}

/// How a connection that negotiated the extension compresses what it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outbound {
    /// Shorter messages are sent as they are.
    pub threshold: usize,
    /// Longer messages are sent as they are: the client limited the
    /// server's window (`server_max_window_bits`), and a message no longer
    /// than the window cannot refer back further than it.
    pub max: usize,
    pub level: u32,
}

impl Outbound {
    /// The message compressed (with the tail removed), if it is worth it:
    /// within the size bounds and smaller compressed. Shared through the
    /// thread's cache with every other connection sending the same `Bytes`.
    pub fn compress(&self, msg: &Bytes) -> Option<Bytes> {
        if msg.len() < self.threshold || msg.len() > self.max {
            return None;
        }
        THREAD.with(|t| t.borrow_mut().compressed(msg, self.level))
    }
}

/// Why a compressed message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates to more than the cap (close 1009).
    TooBig,
    /// It is not valid deflate data (close 1007).
    Corrupt,
}

/// Inflates one whole message (its frames' payloads joined), refusing it as
/// soon as the output passes `cap` bytes: never more than `cap + 1` bytes
/// are produced, whatever the input claims.
pub fn inflate(data: &[u8], cap: usize) -> Result<Vec<u8>, InflateError> {
    THREAD.with(|t| {
        let mut t = t.borrow_mut();
        let d = t.inflater.get_or_insert_with(|| Decompress::new(false));
        d.reset(false);
        inflate_with(d, data, cap)
    })
}

fn inflate_with(d: &mut Decompress, data: &[u8], cap: usize) -> Result<Vec<u8>, InflateError> {
    let limit = cap.saturating_add(1);
    let mut out: Vec<u8> = Vec::new();
    for (part, is_tail) in [(data, false), (&TAIL[..], true)] {
        let mut at = 0;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= limit {
                    return Err(InflateError::TooBig);
                }
                let want = (out.capacity() * 2).max(4096).min(limit);
                out.reserve_exact(want - out.len());
            }
            let (in0, out0) = (d.total_in(), out.len());
            let status = d
                .decompress_vec(&part[at..], &mut out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            at += (d.total_in() - in0) as usize;
            if out.len() > cap {
                return Err(InflateError::TooBig);
            }
            if status == Status::StreamEnd {
                // A final block (BFINAL) ends the message; only our tail may
                // follow it.
                return if is_tail || at == part.len() {
                    Ok(out)
                } else {
                    Err(InflateError::Corrupt)
                };
            }
            let progress = d.total_in() != in0 || out.len() != out0;
            // Done with this part once it is consumed and the output has room
            // left (so nothing is held back waiting for space).
            if (at == part.len() && out.len() < out.capacity()) || !progress {
                break;
            }
        }
    }
    Ok(out)
}

/// Compresses `msg` on its own with `c` (reset first); `None` if the result,
/// without its tail, is not smaller than `msg`.
fn deflate_with(c: &mut Compress, msg: &[u8]) -> Option<Vec<u8>> {
    c.reset();
    // Room for the tail too; an output that does not fit is not worth sending.
    let mut out = Vec::with_capacity(msg.len() + TAIL.len());
    let in0 = c.total_in();
    loop {
        let before = (c.total_in(), out.len());
        let at = (before.0 - in0) as usize;
        c.compress_vec(&msg[at..], &mut out, FlushCompress::Sync)
            .ok()?;
        if out.len() == out.capacity() {
            return None;
        }
        // All taken, and the flush had room to finish.
        if (c.total_in() - in0) as usize == msg.len() {
            break;
        }
        if before == (c.total_in(), out.len()) {
            return None;
        }
    }
    // A completed sync flush ends with the empty stored block.
    if !out.ends_with(&TAIL) || out.len() - TAIL.len() >= msg.len() {
        return None;
    }
    out.truncate(out.len() - TAIL.len());
    Some(out)
}

/// A worker thread's compressor, inflater and recently compressed frames.
#[derive(Default)]
struct Thread {
    compressor: Option<(u32, Compress)>,
    inflater: Option<Decompress>,
    /// By (address, length) of the original: the original (held, so its
    /// address cannot be reused while listed) and its compressed form
    /// (`None`: not worth it).
    recent: HashMap<(usize, usize), (Bytes, Option<Bytes>)>,
    /// Keys, oldest first.
    order: VecDeque<(usize, usize)>,
    recent_bytes: usize,
}

thread_local! {
    static THREAD: RefCell<Thread> = RefCell::default();
}

fn size(m: &Bytes, o: &Option<Bytes>) -> usize {
    m.len() + o.as_ref().map_or(0, Bytes::len)
}

impl Thread {
    fn compressed(&mut self, msg: &Bytes, level: u32) -> Option<Bytes> {
        let key = (msg.as_ptr() as usize, msg.len());
        if let Some((_, c)) = self.recent.get(&key) {
            return c.clone();
        }
        let c = match &mut self.compressor {
            Some((l, c)) if *l == level => c,
            slot => {
                &mut slot
                    .insert((level, Compress::new(Compression::new(level), false)))
                    .1
            }
        };
        let out = deflate_with(c, msg).map(Bytes::from);
        self.remember(key, msg.clone(), out.clone());
        out
    }

    fn remember(&mut self, key: (usize, usize), msg: Bytes, out: Option<Bytes>) {
        self.recent_bytes += size(&msg, &out);
        self.recent.insert(key, (msg, out));
        self.order.push_back(key);
        while self.order.len() > CACHE_ENTRIES || self.recent_bytes > CACHE_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some((m, o)) = self.recent.remove(&old) {
                self.recent_bytes -= size(&m, &o);
            }
        }
        if self.order.is_empty() {
            // Release grown tables once everything has gone.
            *self = Thread {
                compressor: self.compressor.take(),
                inflater: self.inflater.take(),
                ..Thread::default()
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out() -> Outbound {
        Outbound {
            threshold: 16,
            max: usize::MAX,
            level: 6,
        }
    }

    #[test]
    fn round_trip_and_sharing() {
        let msg = Bytes::from("{\"type\":\"message:receive\",\"data\":\"".repeat(20));
        let c1 = out().compress(&msg).expect("compressible");
        assert!(c1.len() < msg.len());
        assert!(!c1.ends_with(&TAIL));
        assert_eq!(inflate(&c1, msg.len()).unwrap(), msg.to_vec());
        // The same Bytes: the same compressed allocation.
        let c2 = out().compress(&msg.clone()).unwrap();
        assert_eq!(c1.as_ptr(), c2.as_ptr());
        // Equal content in another allocation is compressed again, identically.
        let copy = Bytes::from(msg.to_vec());
        let c3 = out().compress(&copy).unwrap();
        assert_ne!(c1.as_ptr(), c3.as_ptr());
        assert_eq!(c1, c3);
    }

    #[test]
    fn bounds_and_incompressible() {
        assert_eq!(out().compress(&Bytes::from_static(b"short")), None);
        let long = Bytes::from(vec![b'a'; 1000]);
        let capped = Outbound { max: 512, ..out() };
        assert_eq!(capped.compress(&long), None);
        // Random-looking bytes do not shrink: sent as they are.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        assert_eq!(out().compress(&Bytes::from(noise)), None);
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        let mut c = Compress::new(Compression::best(), false);
        let big = deflate_with(&mut c, &vec![0u8; 10 << 20]).unwrap();
        assert!(big.len() < 20_000, "{}", big.len());
        assert_eq!(inflate(&big, 1 << 20), Err(InflateError::TooBig));
        assert_eq!(inflate(&big, 10 << 20).map(|v| v.len()), Ok(10 << 20));
    }

    #[test]
    fn corrupt_data_is_refused() {
        // BTYPE 11 is reserved.
        assert_eq!(
            inflate(&[0xff, 0xff, 0xff], 1000),
            Err(InflateError::Corrupt)
        );
        // A stored block whose length check fails.
        assert_eq!(
            inflate(&[0x00, 0x05, 0x00, 0x00, 0x00], 1000),
            Err(InflateError::Corrupt)
        );
    }

    #[test]
    fn a_final_block_ends_the_message() {
        // Compressed with BFINAL by another implementation (a whole raw stream).
        let mut c = Compress::new(Compression::default(), false);
        let mut v = Vec::with_capacity(100);
        c.compress_vec(b"hello hello hello", &mut v, FlushCompress::Finish)
            .unwrap();
        assert_eq!(inflate(&v, 100).unwrap(), b"hello hello hello");
        assert_eq!(inflate(b"", 100).unwrap(), b"");
    }
}
