//! Property tests of the frame decoder over an in-memory reader that hands
//! out the bytes in arbitrary pieces: it never panics, never holds more than
//! the cap plus a header and one read chunk, and refuses every frame or
//! fragmented message past the cap with `Overflow` as soon as its header says
//! so, whatever follows.

use super::*;
use proptest::prelude::*;
use std::collections::VecDeque;

/// An `AsyncRead` over a byte string, handing out one piece per read; an
/// empty piece is one `Pending` (with a wake-up) first.
struct Pieces(VecDeque<Vec<u8>>);

impl Pieces {
    fn new(bytes: &[u8], cuts: &[usize]) -> Pieces {
        let mut out = VecDeque::new();
        let mut rest = bytes;
        for &cut in cuts.iter().cycle().take(bytes.len() + cuts.len()) {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at(cut.min(rest.len()));
            out.push_back(piece.to_vec());
            rest = tail;
        }
        if !rest.is_empty() {
            out.push_back(rest.to_vec());
        }
        Pieces(out)
    }
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let Some(mut piece) = self.0.pop_front() else {
            return Poll::Ready(Ok(()));
        };
        if piece.is_empty() {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = piece.len().min(buf.remaining());
        buf.put_slice(&piece[..n]);
        if n < piece.len() {
            self.0.push_front(piece.split_off(n));
        }
        Poll::Ready(Ok(()))
    }
}

/// A decoded item, reduced to what the properties compare.
#[derive(Debug, PartialEq, Eq, Clone)]
enum Seen {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    First(bool, Vec<u8>),
    More(Vec<u8>),
    Last(Vec<u8>),
    Ping(Vec<u8>),
    /// Pong, close.
    Control,
    Overflow,
    Error,
}

fn seen(item: Result<Frame, FrameError>) -> Seen {
    match item {
        Ok(Frame::Text(b)) => Seen::Text(b.to_vec()),
        Ok(Frame::Binary(b)) => Seen::Binary(b.to_vec()),
        Ok(Frame::Continuation(Item::FirstText(b))) => Seen::First(true, b.to_vec()),
        Ok(Frame::Continuation(Item::FirstBinary(b))) => Seen::First(false, b.to_vec()),
        Ok(Frame::Continuation(Item::Continue(b))) => Seen::More(b.to_vec()),
        Ok(Frame::Continuation(Item::Last(b))) => Seen::Last(b.to_vec()),
        Ok(Frame::Ping(b)) => Seen::Ping(b.to_vec()),
        Ok(_) => Seen::Control,
        Err(FrameError::Protocol(ProtocolError::Overflow)) => Seen::Overflow,
        Err(_) => Seen::Error,
    }
}

/// Runs the decoder over `bytes` cut into `cuts`; returns what it yielded
/// and the most it ever held buffered.
fn decode_all(bytes: &[u8], cuts: &[usize], cap: usize) -> (Vec<Seen>, usize) {
    let mut frames = WsFrames::new(Pieces::new(bytes, cuts), cap, BytesMut::new());
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut out = Vec::new();
    // Each poll yields, ends, or consumes a piece: this bounds the loop.
    for _ in 0..(bytes.len() + cuts.len()) * 2 + 8 {
        match Pin::new(&mut frames).poll_next(&mut cx) {
            Poll::Ready(Some(item)) => out.push(seen(item)),
            Poll::Ready(None) => return (out, frames.peak),
            Poll::Pending => {}
        }
    }
    panic!("the decoder did not finish: {out:?}");
}

/// A client frame, masked with `mask`, announcing `len` (whatever `payload` is).
fn client_frame(opcode: u8, fin: bool, len: u64, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = vec![u8::from(fin) << 7 | opcode];
    match len {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&n.to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// A message a well-behaved client might send.
#[derive(Debug, Clone)]
enum Msg {
    Single {
        text: bool,
        len: usize,
    },
    /// A first fragment, continuations, with a ping between the first two.
    Fragmented {
        text: bool,
        parts: Vec<usize>,
    },
    Ping {
        len: usize,
    },
}

fn len() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0usize..300, 1 => 65_530usize..65_540]
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        (any::<bool>(), len()).prop_map(|(text, len)| Msg::Single { text, len }),
        (any::<bool>(), prop::collection::vec(len(), 2..5))
            .prop_map(|(text, parts)| Msg::Fragmented { text, parts }),
        (0usize..=125).prop_map(|len| Msg::Ping { len }),
    ]
}

/// Encodes `msgs` and the items the decoder must yield for them under `cap`:
/// every frame up to the first that would pass the cap, then `Overflow`.
/// The bytes stop after that frame's header and `junk`: the decoder must
/// not wait for the rest.
fn scenario(msgs: &[Msg], cap: usize, mask: [u8; 4], junk: &[u8]) -> (Vec<u8>, Vec<Seen>) {
    let payload =
        |n: usize, salt: usize| -> Vec<u8> { (0..n).map(|i| (i * 7 + salt) as u8).collect() };
    let mut frames: Vec<(u8, bool, Vec<u8>, Seen, usize)> = Vec::new();
    for (k, m) in msgs.iter().enumerate() {
        match m {
            Msg::Single { text, len } => {
                let p = payload(*len, k);
                let seen = if *text {
                    Seen::Text(p.clone())
                } else {
                    Seen::Binary(p.clone())
                };
                frames.push((if *text { 1 } else { 2 }, true, p, seen, *len));
            }
            Msg::Fragmented { text, parts } => {
                let mut total = 0;
                for (i, n) in parts.iter().enumerate() {
                    let p = payload(*n, k + i);
                    total += n;
                    let last = i + 1 == parts.len();
                    let (op, seen) = match (i, last) {
                        (0, _) => (if *text { 1 } else { 2 }, Seen::First(*text, p.clone())),
                        (_, false) => (0, Seen::More(p.clone())),
                        (_, true) => (0, Seen::Last(p.clone())),
                    };
                    frames.push((op, last, p, seen, total));
                    if i == 0 {
                        frames.push((9, true, vec![1, 2], Seen::Ping(vec![1, 2]), 0));
                    }
                }
            }
            Msg::Ping { len } => {
                let p = payload(*len, k);
                frames.push((9, true, p.clone(), Seen::Ping(p), 0));
            }
        }
    }
    let (mut bytes, mut expect) = (Vec::new(), Vec::new());
    for (op, fin, p, seen, total) in frames {
        if total > cap || p.len() > cap {
            bytes.extend(client_frame(op, fin, p.len() as u64, &[], mask));
            bytes.extend_from_slice(junk);
            expect.push(Seen::Overflow);
            return (bytes, expect);
        }
        bytes.extend(client_frame(op, fin, p.len() as u64, &p, mask));
        expect.push(seen);
    }
    (bytes, expect)
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![Just(0usize), 1usize..16, 1usize..9000], 1..12)
}

/// The most the decoder may hold: the cap, a header, one read chunk.
fn bound(cap: usize) -> usize {
    cap + MAX_HEADER + READ_CHUNK
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Arbitrary bytes: no panic, bounded buffer, the stream ends after at
    /// most one error.
    #[test]
    fn arbitrary_bytes_decode_within_bounds(
        bytes in prop::collection::vec(any::<u8>(), 0..12_000),
        cuts in cuts(),
        cap in 0usize..600,
    ) {
        let (out, peak) = decode_all(&bytes, &cuts, cap);
        prop_assert!(peak <= bound(cap), "held {} with cap {}", peak, cap);
        let errors = out.iter().filter(|s| matches!(s, Seen::Overflow | Seen::Error)).count();
        prop_assert!(errors <= 1);
        prop_assert!(errors == 0 || matches!(out.last(), Some(Seen::Overflow | Seen::Error)));
    }

    /// Well-formed messages come out exactly; the first frame that would
    /// pass the cap alone or with its message's earlier fragments is
    /// `Overflow`, decided from its header alone.
    #[test]
    fn frames_past_the_cap_are_overflow_at_their_header(
        msgs in prop::collection::vec(msg(), 1..6),
        cap in prop_oneof![0usize..400, 65_530usize..65_545],
        mask in any::<[u8; 4]>(),
        junk in prop::collection::vec(any::<u8>(), 0..64),
        cuts in cuts(),
    ) {
        let (bytes, expect) = scenario(&msgs, cap, mask, &junk);
        let (out, peak) = decode_all(&bytes, &cuts, cap);
        prop_assert_eq!(out, expect);
        prop_assert!(peak <= bound(cap), "held {} with cap {}", peak, cap);
    }

    /// Whatever a header announces, up to 2^64-1, past the cap is `Overflow`
    /// with no payload at all behind it.
    #[test]
    fn any_announced_length_past_the_cap_is_overflow(
        cap in 0usize..70_000,
        over in prop_oneof![1u64..10, 1u64..70_000, Just(1u64 << 62), Just(u64::MAX / 2)],
        opcode in prop::sample::select(vec![0u8, 1, 2, 9, 10]),
        fin in any::<bool>(),
        cuts in cuts(),
    ) {
        let len = (cap as u64).saturating_add(over);
        let bytes = client_frame(opcode, fin, len, &[], [1, 2, 3, 4]);
        let (out, _) = decode_all(&bytes, &cuts, cap);
        prop_assert_eq!(out, vec![Seen::Overflow]);
    }
}

#[test]
fn a_message_may_fill_the_cap_exactly() {
    let mask = [9, 8, 7, 6];
    let mut bytes = client_frame(1, false, 3, b"abc", mask);
    bytes.extend(client_frame(0, true, 2, b"de", mask));
    let (out, _) = decode_all(&bytes, &[1], 5);
    assert_eq!(
        out,
        [
            Seen::First(true, b"abc".to_vec()),
            Seen::Last(b"de".to_vec())
        ]
    );
    // One more byte, announced by the last header: refused before its payload.
    let mut bytes = client_frame(1, false, 3, b"abc", mask);
    bytes.extend(client_frame(0, true, 3, b"", mask));
    let (out, _) = decode_all(&bytes, &[4096], 5);
    assert_eq!(out, [Seen::First(true, b"abc".to_vec()), Seen::Overflow]);
}

/// Like `decode_all`, with permessage-deflate negotiated.
fn inflate_all(bytes: &[u8], cuts: &[usize], cap: usize) -> (Vec<Seen>, Option<(u16, String)>) {
    let mut frames = WsFrames::new(Pieces::new(bytes, cuts), cap, BytesMut::new()).inflating();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut out = Vec::new();
    for _ in 0..(bytes.len() + cuts.len()) * 2 + 8 {
        match Pin::new(&mut frames).poll_next(&mut cx) {
            Poll::Ready(Some(Err(e))) => return (out, Some(e.close())),
            Poll::Ready(Some(item)) => out.push(seen(item)),
            Poll::Ready(None) => return (out, None),
            Poll::Pending => {}
        }
    }
    panic!("the decoder did not finish: {out:?}");
}

/// `msg` compressed as a client would (raw deflate, sync flush, tail removed).
fn deflated(msg: &[u8]) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(msg.len() + 64);
    c.compress_vec(msg, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// RSV1 set on a client frame.
fn compressed_frame(opcode: u8, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = client_frame(opcode, fin, payload.len() as u64, payload, mask);
    f[0] |= 0x40;
    f
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A compressed message, whole or in fragments with a ping among them,
    /// cut anywhere on the wire, comes out as one plain message; plain
    /// messages around it are untouched.
    #[test]
    fn compressed_messages_come_out_inflated(
        words in prop::collection::vec("[a-z\"{}:,]{1,12}", 1..200),
        splits in prop::collection::vec(0usize..4000, 0..4),
        text in any::<bool>(),
        mask in any::<[u8; 4]>(),
        cuts in cuts(),
    ) {
        let msg = words.concat().into_bytes();
        let z = deflated(&msg);
        let mut at: Vec<usize> = splits.iter().map(|s| s % (z.len() + 1)).collect();
        at.sort();
        let op = if text { 1 } else { 2 };
        let mut bytes = client_frame(1, true, 2, b"hi", mask);
        if at.is_empty() {
            bytes.extend(compressed_frame(op, true, &z, mask));
        } else {
            let mut bounds = vec![0];
            bounds.extend(&at);
            bounds.push(z.len());
            for (i, w) in bounds.windows(2).enumerate() {
                let last = i + 2 == bounds.len();
                let part = &z[w[0]..w[1]];
                bytes.extend(if i == 0 {
                    compressed_frame(op, false, part, mask)
                } else {
                    client_frame(0, last, part.len() as u64, part, mask)
                });
                if i == 0 {
                    bytes.extend(client_frame(9, true, 1, b"p", mask));
                }
            }
        }
        bytes.extend(client_frame(1, true, 3, b"bye", mask));
        let (out, err) = inflate_all(&bytes, &cuts, 1 << 16);
        prop_assert_eq!(err, None);
        let whole = if text { Seen::Text(msg.clone()) } else { Seen::Binary(msg.clone()) };
        let mut expect = vec![Seen::Text(b"hi".to_vec())];
        if !at.is_empty() {
            expect.push(Seen::Ping(b"p".to_vec()));
        }
        expect.extend([whole, Seen::Text(b"bye".to_vec())]);
        prop_assert_eq!(out, expect);
    }

    /// Arbitrary bytes with RSV1 allowed: no panic, at most one error, last.
    #[test]
    fn arbitrary_bytes_with_inflating_end_at_one_error(
        bytes in prop::collection::vec(any::<u8>(), 0..6000),
        cuts in cuts(),
        cap in 0usize..2000,
    ) {
        let (out, _) = inflate_all(&bytes, &cuts, cap);
        for s in &out {
            if let Seen::Text(b) | Seen::Binary(b) = s {
                prop_assert!(b.len() <= cap);
            }
        }
    }
}

#[test]
fn rsv1_is_refused_where_it_is_not_allowed() {
    let m = [1, 2, 3, 4];
    let z = deflated(b"hello hello hello");
    // Not negotiated: 1002, before anything is inflated.
    let mut frames = WsFrames::new(
        Pieces::new(&compressed_frame(1, true, &z, m), &[100]),
        1000,
        BytesMut::new(),
    );
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match Pin::new(&mut frames).poll_next(&mut cx) {
        Poll::Ready(Some(Err(e))) => assert_eq!(e.close().0, 1002),
        other => panic!("{other:?}"),
    }
    // On a control frame, and on a continuation.
    let (_, err) = inflate_all(&compressed_frame(9, true, b"", m), &[100], 1000);
    assert_eq!(err.unwrap().0, 1002);
    let mut b = compressed_frame(1, false, &z[..2], m);
    b.extend(compressed_frame(0, true, &z[2..], m));
    let (_, err) = inflate_all(&b, &[100], 1000);
    assert_eq!(err.unwrap().0, 1002);
}

#[test]
fn bombs_and_garbage_get_their_close_codes() {
    let m = [5, 6, 7, 8];
    let bomb = deflated(&vec![b'a'; 1 << 20]);
    assert!(bomb.len() < 2000);
    let (out, err) = inflate_all(&compressed_frame(1, true, &bomb, m), &[4096], 64 * 1024);
    assert_eq!((out, err.map(|e| e.0)), (vec![], Some(1009)));
    let (_, err) = inflate_all(&compressed_frame(1, true, &[0xff; 8], m), &[4096], 1000);
    assert_eq!(err.map(|e| e.0), Some(1007));
}
