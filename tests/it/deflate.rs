//! permessage-deflate (RFC 7692) from the wire: a raw-socket client offers
//! it, compresses what it sends with flate2 (whole and in fragments) and
//! inflates what it gets; plain library clients in the same rooms are
//! unaffected; hostile compressed input gets its close code (a deflate bomb
//! 1009, garbage 1007, RSV1 without the extension 1002) and the server
//! carries on.

use crate::common::*;
use crate::hostile::{assert_bounded, rss_kb, still_serves};
use crate::rawws::{frame, Frames};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
const TEXT: u8 = 0x1;
const CONTINUE: u8 = 0x0;

/// The answer's `Sec-WebSocket-Extensions`, if any.
fn extensions(head: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("sec-websocket-extensions")
            .then(|| v.trim().to_string())
    })
}

/// `msg` compressed as RFC 7692 says: raw deflate, sync flush, tail removed.
fn compress(msg: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::best(), false);
    let mut out = Vec::with_capacity(msg.len() / 2 + 1024);
    loop {
        let at = c.total_in() as usize;
        c.compress_vec(&msg[at..], &mut out, FlushCompress::Sync)
            .unwrap();
        if c.total_in() as usize == msg.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity());
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// A server message's payload inflated (the tail put back).
fn inflate(z: &[u8]) -> Vec<u8> {
    let mut d = Decompress::new(false);
    let mut input = z.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(z.len() * 20 + 1024);
    d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .expect("the server's deflate data inflates");
    assert_eq!(d.total_in() as usize, input.len(), "all inflated");
    out
}

/// A client frame with RSV1 set: the first frame of a compressed message.
fn compressed(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = frame(opcode, fin, payload);
    f[0] |= 0x40;
    f
}

/// A raw connection as user `sub`, sending `extra` header lines; the answer's head.
async fn connect(
    s: &Server,
    sub: &str,
    extra: &str,
) -> (Frames<OwnedReadHalf>, OwnedWriteHalf, String) {
    let t = token(sub, json!({}));
    let (sock, head) = raw_upgrade_with(&s.addr, &format!("/ws?token={t}"), extra).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (r, w) = sock.into_split();
    (Frames::new(r), w, head)
}

/// The next text message of type `ty` (inflated if it came compressed), and
/// whether it did.
async fn recv_msg(f: &mut Frames<OwnedReadHalf>, ty: &str) -> (bool, Value) {
    recv_msgs(f, &[ty]).await.remove(0)
}

/// The next message of each type in `tys`, in that order whatever the order
/// they arrive in (others are skipped).
async fn recv_msgs(f: &mut Frames<OwnedReadHalf>, tys: &[&str]) -> Vec<(bool, Value)> {
    let mut got: Vec<Option<(bool, Value)>> = vec![None; tys.len()];
    while got.iter().any(Option::is_none) {
        let (first, p) = f.next_raw().await.expect("connection open");
        let compressed = first & 0x40 != 0;
        match first & 0x0f {
            0x1 => {
                let text = if compressed { inflate(&p) } else { p };
                let v: Value = serde_json::from_slice(&text).expect("JSON");
                if let Some(i) = tys.iter().position(|t| v["type"] == *t) {
                    if got[i].is_none() {
                        got[i] = Some((compressed, v));
                    }
                }
            }
            0x8 => panic!("closed waiting for {tys:?}: {p:?}"),
            op => assert!(!compressed, "RSV1 on opcode {op}"),
        }
    }
    got.into_iter().flatten().collect()
}

/// Reads `connected` and the personal room's `room:joined`.
async fn greeted(f: &mut Frames<OwnedReadHalf>) {
    let both = recv_msgs(f, &["connected", "room:joined"]).await;
    assert_eq!(
        both[1].1["room"],
        format!("user:{}", both[0].1["user"].as_str().unwrap())
    );
}

/// Text of `n` bytes that compresses well (like chat JSON).
fn chatter(n: usize) -> String {
    "the quick brown fox jumps over the lazy dog; "
        .repeat(n / 45 + 1)
        .chars()
        .take(n)
        .collect()
}

#[tokio::test]
async fn an_offer_is_answered_and_messages_go_compressed_both_ways() {
    let s = Server::start();
    let (mut rx, mut tx, head) = connect(&s, "alice", OFFER).await;
    assert_eq!(extensions(&head).as_deref(), Some(ANSWER), "{head}");
    greeted(&mut rx).await;
    let mut bob = s.user("bob").await;
    bob.send(json!({"type": "room:join", "room": "zipped"}))
        .await;
    bob.recv_type("room:joined").await;

    // A small compressed frame is as good as a plain one.
    let join = json!({"type": "room:join", "room": "zipped"}).to_string();
    tx.write_all(&compressed(TEXT, true, &compress(join.as_bytes())))
        .await
        .unwrap();
    let (_, joined) = recv_msg(&mut rx, "room:joined").await;
    assert_eq!(joined["room"], "zipped");

    // A long message, compressed and cut into three fragments.
    let long = chatter(3000);
    let send =
        json!({"type": "message:send", "room": "zipped", "id": "m1", "data": {"text": long}});
    let z = compress(send.to_string().as_bytes());
    assert!(z.len() < 500, "{}", z.len());
    let (a, b) = (z.len() / 3, 2 * z.len() / 3);
    let mut wire = compressed(TEXT, false, &z[..a]);
    wire.extend(frame(CONTINUE, false, &z[a..b]));
    wire.extend(frame(CONTINUE, true, &z[b..]));
    tx.write_all(&wire).await.unwrap();

    // Back to the sender compressed; the ack, short, plain.
    let both = recv_msgs(&mut rx, &["message:receive", "ack"]).await;
    let ((zipped, got), (ack_zipped, ack)) = (&both[0], &both[1]);
    assert!(zipped, "a 3,000-byte message goes out compressed");
    assert_eq!(got["data"]["text"], long.as_str());
    assert!(!ack_zipped, "an ack is under the threshold");
    assert_eq!(ack["id"], "m1");
    // The library client without the extension gets it plain (it would
    // fail the connection on RSV1).
    let got = bob.recv_type("message:receive").await;
    assert_eq!(got["data"]["text"], long.as_str());

    // A short message, plain both ways.
    let short =
        json!({"type": "message:send", "room": "zipped", "id": "m2", "data": {"text": "hi"}});
    tx.write_all(&frame(TEXT, true, short.to_string().as_bytes()))
        .await
        .unwrap();
    let (zipped, got) = recv_msg(&mut rx, "message:receive").await;
    assert!(!zipped, "under the threshold: plain");
    assert_eq!(got["data"]["text"], "hi");
    assert_eq!(bob.recv_type("message:receive").await["data"]["text"], "hi");
}

#[tokio::test]
async fn offers_are_read_in_order_and_the_window_limit_is_kept() {
    let s = Server::start();
    // The first offer is invalid (16 bits) and declined; the second is taken.
    let offer = "Sec-WebSocket-Extensions: x-unknown; a=\"b,c\", permessage-deflate; server_max_window_bits=16\r\n\
                 Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=\"10\"; client_max_window_bits=10; client_no_context_takeover, permessage-deflate\r\n";
    let (mut rx, mut tx, head) = connect(&s, "carol", offer).await;
    assert_eq!(
        extensions(&head),
        Some(format!("{ANSWER}; server_max_window_bits=10")),
        "{head}"
    );
    greeted(&mut rx).await;
    let join = json!({"type": "room:join", "room": "window"}).to_string();
    tx.write_all(&frame(TEXT, true, join.as_bytes()))
        .await
        .unwrap();
    recv_msg(&mut rx, "room:joined").await;
    // A message within the 1,024-byte window goes compressed; a longer one
    // could refer back further than the client allows, so it goes plain.
    for (id, len, expect_zipped) in [("w1", 800, true), ("w2", 3000, false)] {
        let send = json!({"type": "message:send", "room": "window", "id": id, "data": {"text": chatter(len)}});
        tx.write_all(&frame(TEXT, true, send.to_string().as_bytes()))
            .await
            .unwrap();
        let (zipped, got) = recv_msg(&mut rx, "message:receive").await;
        assert_eq!(zipped, expect_zipped, "{id}");
        assert_eq!(got["data"]["text"], chatter(len).as_str());
    }
}

#[tokio::test]
async fn without_the_extension_rsv1_closes_1002() {
    let on = Server::start();
    let off = Server::with_env(&[("SWITCHBOARD_WS_DEFLATE", "off")]);
    let z = compress(json!({"type": "ping", "id": "p"}).to_string().as_bytes());
    // No offer; an offer of something else; an offer to a server with it off.
    for (s, extra) in [
        (&on, ""),
        (&on, "Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n"),
        (&off, OFFER),
    ] {
        let (mut rx, mut tx, head) = connect(s, "dave", extra).await;
        assert_eq!(extensions(&head), None, "{head}");
        greeted(&mut rx).await;
        tx.write_all(&compressed(TEXT, true, &z)).await.unwrap();
        assert_eq!(rx.close_code().await, Some(1002), "{extra}");
    }
    // With it, RSV1 on a control frame is refused too.
    let (mut rx, mut tx, _) = connect(&on, "dave", OFFER).await;
    tx.write_all(&compressed(0x9, true, b"")).await.unwrap();
    assert_eq!(rx.close_code().await, Some(1002));
    still_serves(&on).await;
}

#[tokio::test]
async fn a_deflate_bomb_is_closed_1009_and_everyone_else_carries_on() {
    let s = Server::start();
    let mut erin = s.user("erin").await;
    erin.send(json!({"type": "room:join", "room": "blast"}))
        .await;
    erin.recv_type("room:joined").await;
    let (mut rx, mut tx, _) = connect(&s, "mallory", OFFER).await;
    greeted(&mut rx).await;
    let join = json!({"type": "room:join", "room": "blast"}).to_string();
    tx.write_all(&frame(TEXT, true, join.as_bytes()))
        .await
        .unwrap();
    recv_msg(&mut rx, "room:joined").await;

    // 64 MiB of JSON-looking text in under 100 KiB, well inside the 1 MiB
    // frame cap: only inflating it would find it too big.
    let mut bomb = b"{\"type\":\"message:send\",\"room\":\"blast\",\"data\":\"".to_vec();
    bomb.resize(64 << 20, b'A');
    let z = compress(&bomb);
    drop(bomb);
    assert!(z.len() < 100 << 10, "{}", z.len());
    let before = rss_kb(&s);
    tx.write_all(&compressed(TEXT, true, &z)).await.unwrap();
    assert_eq!(rx.close_code().await, Some(1009));
    assert_bounded(&s, before, "a deflate bomb");

    // Garbage where deflate data should be: 1007.
    let (mut rx, mut tx, _) = connect(&s, "mallory", OFFER).await;
    greeted(&mut rx).await;
    tx.write_all(&compressed(TEXT, true, &[0xff; 16]))
        .await
        .unwrap();
    assert_eq!(rx.close_code().await, Some(1007));

    // The room and the server go on.
    let mut frank = s.user("frank").await;
    frank
        .send(json!({"type": "room:join", "room": "blast"}))
        .await;
    frank.recv_type("room:joined").await;
    frank
        .send(json!({"type": "message:send", "room": "blast", "data": "still here"}))
        .await;
    assert_eq!(
        erin.recv_type("message:receive").await["data"],
        "still here"
    );
    still_serves(&s).await;
}
