//! Hostile peers on the wire: frame headers announcing more than the hard cap
//! (alone or summed over fragments), text that is not UTF-8, numbers no JSON
//! parser can read as a double. The oversize cases write raw frames on a TCP
//! socket after a real handshake and watch the server's resident memory.

use crate::common::*;
use crate::rawws::{frame, header, raw_ws, Frames};
use futures_util::SinkExt;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

const TEXT: u8 = 0x1;
const CONTINUE: u8 = 0x0;
const MIB: usize = 1024 * 1024;
/// Payload streamed behind an oversize header: far more than the server may keep.
const STREAMED: usize = 24 * MIB;
/// How much the server's resident memory may grow while it refuses one.
const RSS_SLACK_KB: u64 = 4 * 1024;

/// The server's resident set size in KiB.
pub fn rss_kb(s: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Writes `prefix`, then streams `STREAMED` bytes of payload behind it while
/// reading the server's answer; returns the close code. Write errors end the
/// stream quietly: the server may well close while we are still sending.
async fn stream_behind(sock: TcpStream, prefix: Vec<u8>) -> Option<u16> {
    let (r, mut w) = sock.into_split();
    let writer = tokio::spawn(async move {
        if w.write_all(&prefix).await.is_err() {
            return;
        }
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..STREAMED / chunk.len() {
            match tokio::time::timeout(WAIT, w.write_all(&chunk)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    });
    let code = Frames::new(r).close_code().await;
    let _ = tokio::time::timeout(WAIT, writer).await;
    code
}

/// Asserts the server's memory grew by less than `RSS_SLACK_KB` since `before`.
pub fn assert_bounded(s: &Server, before: u64, what: &str) {
    let after = rss_kb(s);
    assert!(
        after < before + RSS_SLACK_KB,
        "{what}: RSS grew from {before} KiB to {after} KiB"
    );
}

/// A plain WebSocket client still works on this server.
pub async fn still_serves(s: &Server) {
    let mut c = s.user("witness").await;
    c.send(json!({"type": "ping", "id": "w"})).await;
    assert_eq!(c.recv_type("pong").await["id"], "w");
}

#[tokio::test]
async fn a_guest_announcing_a_huge_frame_is_closed_1009_before_its_payload() {
    let s = Server::start();
    let sock = raw_ws(&s, "/ws?name=x").await;
    let before = rss_kb(&s);
    let code = stream_behind(sock, header(TEXT, true, 1 << 62)).await;
    assert_eq!(code, Some(1009));
    assert_bounded(&s, before, "guest, 2^62 announced");
    still_serves(&s).await;
}

#[tokio::test]
async fn an_unauthenticated_connection_announcing_a_huge_frame_is_closed_1009() {
    let s = Server::with_env(&[("SWITCHBOARD_GUESTS", "false")]);
    let sock = raw_ws(&s, "/ws").await;
    let before = rss_kb(&s);
    // Just over the cap, and 2^62: both refused at the header.
    let code = stream_behind(sock, header(TEXT, true, MIB as u64 + 1)).await;
    assert_eq!(code, Some(1009));
    let sock = raw_ws(&s, "/ws").await;
    let code = stream_behind(sock, header(TEXT, true, 1 << 62)).await;
    assert_eq!(code, Some(1009));
    assert_bounded(&s, before, "no credentials, 2^62 announced");
    still_serves(&s).await;
}

/// `message:send` text of exactly `len` bytes.
fn message_of_len(id: &str, len: usize) -> Vec<u8> {
    let head = format!(r#"{{"type":"message:send","room":"frag","id":"{id}","data":""#);
    let pad = len - head.len() - 2;
    format!("{head}{}\"}}", "x".repeat(pad)).into_bytes()
}

#[tokio::test]
async fn fragments_adding_up_past_the_cap_are_refused_at_the_header() {
    const CAP: usize = 64 * 1024;
    let cap = CAP.to_string();
    let s = Server::with_env(&[
        ("SWITCHBOARD_MAX_FRAME", &cap),
        ("SWITCHBOARD_HARD_MAX_FRAME", &cap),
    ]);
    let t = token("fragger", json!({}));

    // Fragments adding up to exactly the cap are one message, delivered.
    let mut sock = raw_ws(&s, &format!("/ws?token={t}")).await;
    let text = message_of_len("exact", CAP);
    let mut out = frame(TEXT, false, &[]);
    for (i, part) in text.chunks(CAP / 4).enumerate() {
        out.extend(frame(CONTINUE, i == 3, part));
    }
    let join = frame(TEXT, true, br#"{"type":"room:join","room":"frag"}"#);
    sock.write_all(&[join, out].concat()).await.expect("write");
    let (r, mut w) = sock.into_split();
    let mut r = Frames::new(r);
    assert_eq!(r.recv_type("ack").await["id"], "exact");

    // One byte more, announced by a continuation's header alone: closed 1009
    // without waiting for its payload.
    let mut out = frame(TEXT, false, &text[..CAP / 2]);
    out.extend(header(CONTINUE, true, (CAP / 2 + 1) as u64));
    w.write_all(&out).await.expect("write");
    assert_eq!(r.close_code().await, Some(1009));

    // A first fragment, then a continuation announcing 2^62 with megabytes behind it.
    let sock = raw_ws(&s, &format!("/ws?token={t}")).await;
    let before = rss_kb(&s);
    let mut out = frame(TEXT, false, &text[..1000]);
    out.extend(header(CONTINUE, false, 1 << 62));
    assert_eq!(stream_behind(sock, out).await, Some(1009));
    // Many small continuations, each far under the cap, streamed on and on.
    let sock = raw_ws(&s, "/ws?name=x").await;
    let mut out = frame(TEXT, false, b"{");
    let piece = frame(CONTINUE, false, &[b' '; 1000]);
    for _ in 0..(2 * CAP / 1000) {
        out.extend_from_slice(&piece);
    }
    assert_eq!(stream_behind(sock, out).await, Some(1009));
    assert_bounded(&s, before, "fragments");
    still_serves(&s).await;
}

fn raw_text(payload: &[u8], op: Data, fin: bool) -> Message {
    Message::Frame(Frame::message(payload.to_vec(), OpCode::Data(op), fin))
}

#[tokio::test]
async fn text_that_is_not_utf8_closes_1007() {
    let s = Server::start();
    let mut c = s.user("alice").await;
    c.join("u").await;
    // A character split across fragments is fine once reassembled.
    let ok = r#"{"type":"message:send","room":"u","id":"é","data":"é"}"#.as_bytes();
    let cut = ok.iter().position(|&b| b >= 0x80).unwrap() + 1;
    c.inner()
        .send(raw_text(&ok[..cut], Data::Text, false))
        .await
        .unwrap();
    c.inner()
        .send(raw_text(&ok[cut..], Data::Continue, true))
        .await
        .unwrap();
    assert_eq!(c.recv_type("ack").await["id"], "é");

    let bad = b"{\"type\":\"ping\",\"id\":\"\xff\xfe\"}";
    c.inner()
        .send(raw_text(bad, Data::Text, true))
        .await
        .unwrap();
    assert_eq!(c.close_code(WAIT).await, Some(1007));

    // The same in a fragmented message: a lone continuation byte.
    let mut c = s.user("bob").await;
    c.inner()
        .send(raw_text(b"{\"type\":\"ping\",\"id\":\"", Data::Text, false))
        .await
        .unwrap();
    c.inner()
        .send(raw_text(b"\x80\"}", Data::Continue, true))
        .await
        .unwrap();
    assert_eq!(c.close_code(WAIT).await, Some(1007));

    // Before authentication too (guests off, no credentials yet).
    let s = Server::with_env(&[("SWITCHBOARD_GUESTS", "false")]);
    let mut c = s.ws("/ws").await;
    c.inner()
        .send(raw_text(b"\xc3\x28", Data::Text, true))
        .await
        .unwrap();
    assert_eq!(c.close_code(WAIT).await, Some(1007));
}

#[tokio::test]
async fn numbers_past_a_double_in_data_are_refused_over_ws_and_rest() {
    let s = Server::start();
    let mut c = s.user("alice").await;
    let mut watcher = s.user("bob").await;
    c.join("nums").await;
    watcher.join("nums").await;

    let long = format!("1{}", "0".repeat(400));
    let huge = ["1e999999", "-1e400", r#"{"a":[1,2E+309]}"#, long.as_str()];
    for (i, data) in huge.iter().enumerate() {
        let id = format!("huge{i}");
        c.send_text(&format!(
            r#"{{"type":"message:send","room":"nums","id":"{id}","data":{data}}}"#
        ))
        .await;
        let e = c.recv_type("error").await;
        assert_eq!(e["code"], "bad_request", "{data}: {e}");
        assert_eq!(e["ref"], id.as_str(), "{data}: {e}");
    }
    // The same text inside a string, and large but readable numbers, pass.
    c.send_text(
        r#"{"type":"message:send","room":"nums","id":"fine","data":{"s":"1e999999","n":1.5e308,"i":123456789012345678901234567890}}"#,
    )
    .await;
    assert_eq!(c.recv_type("ack").await["id"], "fine");
    let m = watcher.recv_type("message:receive").await;
    assert_eq!(m["id"], "fine", "{m}");
    assert_eq!(m["data"]["s"], "1e999999");

    let svc = token("backend", json!({"role": "service"}));
    for (data, status) in [(r#"{"n":1e999999}"#, 400), (r#"{"n":2}"#, 200)] {
        let body = format!(r#"{{"room":"nums","data":{data}}}"#);
        let (st, resp) = s
            .http("POST", "/api/publish", Some(&svc), Some(&body))
            .await;
        assert_eq!(st, status, "{data}: {resp}");
        if status == 400 {
            let v: Value = serde_json::from_str(&resp).unwrap();
            assert_eq!(v["error"]["code"], "bad_request", "{v}");
        }
    }
    // Only the readable messages reached the room.
    let m = watcher.recv_type("message:receive").await;
    assert_eq!(m["data"]["n"], 2, "{m}");
    watcher
        .expect_no("message:receive", Duration::from_millis(300))
        .await;
}

/// Reads an HTTP response head from `sock`; returns its status.
async fn response_status<R: AsyncReadExt + Unpin>(sock: &mut R) -> u16 {
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(WAIT, sock.read(&mut chunk))
            .await
            .expect("no response")
            .expect("read");
        assert!(n > 0, "closed without a response");
        head.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{head}"))
}

#[tokio::test]
async fn poll_send_bodies_over_the_cap_are_refused_without_reading_them() {
    let s = Server::start();
    let (st, body) = s.http("POST", "/poll/open?name=x", None, None).await;
    assert_eq!(st, 200, "{body}");
    let key = serde_json::from_str::<Value>(&body).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let head = |framing: &str| {
        format!(
            "POST /poll/send?key={key} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n",
            s.addr
        )
    };
    let before = rss_kb(&s);

    // A Content-Length over the cap is answered 413 before any body byte is sent.
    let mut sock = TcpStream::connect(&s.addr).await.expect("connect");
    let h = head(&format!("Content-Length: {}", 1u64 << 40));
    sock.write_all(h.as_bytes()).await.expect("write");
    assert_eq!(response_status(&mut sock).await, 413);

    // A chunked body is read only up to the cap, however long it goes on.
    let sock = TcpStream::connect(&s.addr).await.expect("connect");
    let (mut r, mut w) = sock.into_split();
    let h = head("Transfer-Encoding: chunked");
    let writer = tokio::spawn(async move {
        let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
        chunk.extend_from_slice(&[b' '; 64 * 1024]);
        chunk.extend_from_slice(b"\r\n");
        if w.write_all(h.as_bytes()).await.is_err() {
            return;
        }
        for _ in 0..STREAMED / (64 * 1024) {
            match tokio::time::timeout(WAIT, w.write_all(&chunk)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    });
    assert_eq!(response_status(&mut r).await, 413);
    let _ = tokio::time::timeout(WAIT, writer).await;
    assert_bounded(&s, before, "poll send bodies");

    // The session itself is still there and takes a normal send.
    let (st, body) = s
        .http(
            "POST",
            &format!("/poll/send?key={key}"),
            None,
            Some(r#"{"type":"ping","id":"p"}"#),
        )
        .await;
    assert_eq!(st, 202, "{body}");
}
