//! `POST /api/streams/{stream}`: a service streams a response over plain
//! HTTP, its chunked request body being the text. Members see it grow as
//! the body is written, the end of the body stores it, a member's cancel
//! answers the request at once, and refusals have clear codes. The body is
//! written by hand, part by part, on a raw socket.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn service_token() -> String {
    token("bot", json!({"role": "service", "name": "Bot"}))
}

/// A stream request whose head is written; the body follows part by part.
async fn open(s: &Server, path_and_query: &str, bearer: &str) -> TcpStream {
    let mut t = TcpStream::connect(&s.addr).await.expect("connect");
    let head = format!(
        "POST {path_and_query} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {bearer}\r\n\
         Content-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.addr
    );
    t.write_all(head.as_bytes()).await.expect("write head");
    t
}

async fn part(t: &mut TcpStream, bytes: &[u8]) {
    t.write_all(format!("{:x}\r\n", bytes.len()).as_bytes())
        .await
        .unwrap();
    t.write_all(bytes).await.unwrap();
    t.write_all(b"\r\n").await.unwrap();
}

/// The response, read until its `Content-Length` is in (the server may keep
/// the connection open while a body it did not read is still coming).
async fn response(t: &mut TcpStream) -> HttpResponse {
    let mut raw = Vec::new();
    let read = async {
        loop {
            let mut buf = [0u8; 4096];
            let n = t.read(&mut buf).await.expect("read");
            raw.extend_from_slice(&buf[..n]);
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = HttpResponse::parse(&raw[..end + 4]);
                let len: usize = head
                    .header("content-length")
                    .and_then(|l| l.parse().ok())
                    .expect("a Content-Length");
                if raw.len() >= end + 4 + len || n == 0 {
                    return;
                }
            }
            assert!(n > 0, "closed before a whole response");
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the stream request is answered");
    HttpResponse::parse(&raw)
}

/// Ends the body and reads the response.
async fn finish(mut t: TcpStream) -> HttpResponse {
    t.write_all(b"0\r\n\r\n").await.unwrap();
    response(&mut t).await
}

/// The text of the `stream:data` frames `c` gets until it has `want` bytes.
async fn text_until(c: &mut Client, want: &str) -> String {
    let mut text = String::new();
    while text.len() < want.len() {
        let d = c.recv_type("stream:data").await;
        text.push_str(d["chunk"].as_str().unwrap());
    }
    text
}

#[tokio::test]
async fn a_body_streams_into_a_room_as_it_is_written_and_is_stored() {
    let s = Server::start();
    let mut alice = s.user("alice").await;
    alice.join("chat").await;
    let meta = "%7B%22model%22%3A%22words%22%7D";
    let mut t = open(
        &s,
        &format!("/api/streams/r1?room=chat&meta={meta}"),
        &service_token(),
    )
    .await;
    part(&mut t, b"Hello, ").await;
    let start = alice.recv_type("stream:start").await;
    assert_eq!(
        (&start["stream"], &start["from"]["user"], &start["meta"]),
        (&json!("r1"), &json!("bot"), &json!({"model": "words"})),
        "{start}"
    );
    assert_eq!(text_until(&mut alice, "Hello, ").await, "Hello, ");
    // A character split between two parts of the body arrives whole.
    let euro = "€".as_bytes();
    let mut first = b"world ".to_vec();
    first.push(euro[0]);
    part(&mut t, &first).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    part(&mut t, &euro[1..]).await;
    assert_eq!(text_until(&mut alice, "world €").await, "world €");
    let r = finish(t).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let answer = r.json();
    assert_eq!(
        (&answer["room"], &answer["stream"], &answer["length"]),
        (&json!("chat"), &json!("r1"), &json!("Hello, world €".len())),
        "{answer}"
    );
    assert!(answer.get("cancelled").is_none(), "{answer}");
    let end = alice.recv_type("stream:end").await;
    assert_eq!(end["length"], json!("Hello, world €".len()), "{end}");
    let m = alice.recv_type("message:receive").await;
    assert_eq!(
        m["data"],
        json!({"stream": "r1", "text": "Hello, world €", "meta": {"model": "words"}}),
        "{m}"
    );
    assert_eq!(
        (&m["seq"], &m["from"]["user"]),
        (&answer["seq"], &json!("bot"))
    );

    // To one user: the stream goes to that user's personal room.
    let mut t = open(&s, "/api/streams/dm1?to=alice", &service_token()).await;
    part(&mut t, b"just for you").await;
    let start = alice.recv_type("stream:start").await;
    assert_eq!(start["room"], "user:alice", "{start}");
    let r = finish(t).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let m = alice.recv_type("message:receive").await;
    assert_eq!(
        (&m["room"], &m["data"]["text"]),
        (&json!("user:alice"), &json!("just for you"))
    );
}

#[tokio::test]
async fn a_members_cancel_answers_the_request_and_keeps_what_was_sent() {
    let s = Server::start();
    let mut alice = s.user("alice").await;
    alice.join("chat").await;
    let mut t = open(&s, "/api/streams/r2?room=chat", &service_token()).await;
    part(&mut t, b"partial ").await;
    assert_eq!(text_until(&mut alice, "partial ").await, "partial ");
    alice
        .send(json!({"type": "stream:cancel", "room": "chat", "stream": "r2"}))
        .await;
    // Answered while the body is still open: the service stops writing.
    let r = response(&mut t).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let answer = r.json();
    assert_eq!(answer["cancelled"]["by"]["user"], "alice", "{answer}");
    assert_eq!(answer["length"], 8, "{answer}");
    let m = alice.recv_type("message:receive").await;
    assert_eq!(m["data"]["text"], "partial ", "{m}");
    assert_eq!(m["seq"], answer["seq"]);
}

async fn refused(s: &Server, path: &str, bearer: Option<&str>, body: &[u8]) -> (u16, Value) {
    let mut t = match bearer {
        Some(b) => open(s, path, b).await,
        None => {
            let mut t = TcpStream::connect(&s.addr).await.unwrap();
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            );
            t.write_all(head.as_bytes()).await.unwrap();
            t
        }
    };
    part(&mut t, body).await;
    let _ = t.write_all(b"0\r\n\r\n").await;
    let r = response(&mut t).await;
    (r.status, r.json())
}

#[tokio::test]
async fn refusals_have_clear_codes_and_members_see_a_failed_stream_end() {
    let s = Server::with_env(&[("SWITCHBOARD_STREAM_MAX_BYTES", "16")]);
    let mut alice = s.user("alice").await;
    alice.join("chat").await;
    let svc = service_token();
    let user = token("carol", json!({}));
    for (path, bearer, status, code) in [
        ("/api/streams/a?room=chat", None, 401, "unauthorized"),
        (
            "/api/streams/a?room=chat",
            Some(user.as_str()),
            403,
            "forbidden",
        ),
        (
            "/api/streams/a%20b?room=chat",
            Some(svc.as_str()),
            400,
            "bad_request",
        ),
        ("/api/streams/a", Some(svc.as_str()), 400, "bad_request"),
        (
            "/api/streams/a?room=chat&to=alice",
            Some(svc.as_str()),
            400,
            "bad_request",
        ),
        (
            "/api/streams/a?room=no%20such",
            Some(svc.as_str()),
            400,
            "invalid_room",
        ),
        (
            "/api/streams/a?room=chat&meta=%7B",
            Some(svc.as_str()),
            400,
            "bad_request",
        ),
        (
            "/api/streams/a?room=chat&other=1",
            Some(svc.as_str()),
            400,
            "bad_request",
        ),
    ] {
        let (st, body) = refused(&s, path, bearer, b"x").await;
        assert_eq!(
            (st, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }
    // Over the stream's byte limit: 413, and members see the stream fail.
    let (st, body) = refused(&s, "/api/streams/big?room=chat", Some(&svc), &[b'y'; 40]).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (413, Some("too_large")),
        "{body}"
    );
    let e = alice.recv_type("stream:error").await;
    assert_eq!(
        (&e["stream"], &e["reason"]),
        (&json!("big"), &json!("too_large")),
        "{e}"
    );
    // Not UTF-8: 400, and the stream fails.
    let (st, body) = refused(&s, "/api/streams/bin?room=chat", Some(&svc), &[b'a', 0xFF]).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    let e = alice.recv_type("stream:error").await;
    assert_eq!(
        (&e["stream"], &e["reason"]),
        (&json!("bin"), &json!("bad_request")),
        "{e}"
    );
    // A stream id that is live already.
    let mut live = open(&s, "/api/streams/dup?room=chat", &svc).await;
    part(&mut live, b"one").await;
    alice.recv_type("stream:start").await;
    let (st, body) = refused(&s, "/api/streams/dup?room=chat", Some(&svc), b"two").await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    let r = finish(live).await;
    assert_eq!(r.status, 200);
    let m = alice.recv_type("message:receive").await;
    assert_eq!(
        m["data"]["text"], "one",
        "the other request's stream is untouched: {m}"
    );
}
