//! SSE and long-polling at the HTTP level: the same session core as WebSocket,
//! resume by cursor, expiry, auth failures, slow consumers.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One SSE event as read off the wire.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub id: String,
    pub event: String,
    pub data: Value,
}

impl Event {
    fn cursor(&self) -> u64 {
        self.id.rsplit(':').next().unwrap().parse().unwrap()
    }
}

/// A raw `GET /sse` stream, decoded chunk by chunk.
pub(crate) struct Sse {
    sock: TcpStream,
    raw: Vec<u8>,
    text: String,
    pub status: u16,
    pub key: String,
}

impl Sse {
    pub(crate) async fn open(s: &Server, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut sock = TcpStream::connect(&s.addr).await.expect("connect");
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", s.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        sock.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let split = loop {
            if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, sock.read(&mut buf))
                .await
                .expect("sse headers")
                .unwrap();
            assert!(n > 0, "closed before headers");
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let raw = raw[split + 4..].to_vec();
        Sse {
            sock,
            raw,
            text: String::new(),
            status,
            key: String::new(),
        }
    }

    /// Opens a stream that must succeed and reads its `connected` frame.
    pub(crate) async fn connect(s: &Server, path: &str) -> Sse {
        let mut sse = Sse::open(s, path, &[]).await;
        assert_eq!(sse.status, 200, "{path}");
        let hello = sse.recv_type("connected").await;
        assert_eq!(hello.data["transport"], "sse");
        sse.key = hello.data["key"].as_str().unwrap().to_string();
        assert_eq!(sse.key.len(), 32);
        sse
    }

    /// The body so far, dechunked, then the next whole event (comments skipped).
    pub(crate) async fn next(&mut self) -> Option<Event> {
        loop {
            while let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), Vec::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_string();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push(v.to_string());
                    }
                }
                if event.is_empty() {
                    continue; // a comment or the retry line
                }
                let data = serde_json::from_str(&data.join("\n")).expect("event data is JSON");
                return Some(Event { id, event, data });
            }
            let (chunk, used, ended) = dechunk(&self.raw);
            self.raw.drain(..used);
            self.text
                .push_str(&String::from_utf8(chunk).expect("utf-8"));
            if ended {
                if self.text.contains("\n\n") {
                    continue;
                }
                return None;
            }
            if used > 0 {
                continue;
            }
            let mut buf = [0u8; 16384];
            let n = tokio::time::timeout(WAIT, self.sock.read(&mut buf))
                .await
                .expect("no SSE event in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.raw.extend_from_slice(&buf[..n]);
        }
    }

    pub(crate) async fn recv_type(&mut self, ty: &str) -> Event {
        loop {
            let e = self
                .next()
                .await
                .unwrap_or_else(|| panic!("stream ended before {ty}"));
            assert_eq!(e.event, e.data["type"].as_str().unwrap_or("close"));
            if e.event == ty {
                return e;
            }
        }
    }

    pub(crate) async fn joined(&mut self, room: &str) -> Event {
        loop {
            let e = self.recv_type("room:joined").await;
            if e.data["room"] == room {
                return e;
            }
        }
    }

    pub(crate) async fn send(&self, s: &Server, frames: Value) -> u16 {
        let path = format!("/sse/send?key={}", self.key);
        s.http("POST", &path, None, Some(&frames.to_string()))
            .await
            .0
    }
}

/// A long-polling session. Frames of one answer that the test has not read
/// yet wait in `pending`, so none is skipped.
pub(crate) struct Poller {
    key: String,
    cursor: u64,
    pending: std::collections::VecDeque<Value>,
}

impl Poller {
    pub(crate) async fn open(s: &Server, query: &str) -> Poller {
        let (status, body) = s
            .http("POST", &format!("/poll/open?{query}"), None, None)
            .await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["transport"], "polling");
        Poller {
            key: v["key"].as_str().unwrap().to_string(),
            cursor: 0,
            pending: Default::default(),
        }
    }

    /// One poll at `cursor`, without moving ours.
    pub(crate) async fn poll_at(&self, s: &Server, cursor: u64) -> HttpResponse {
        s.request(
            "GET",
            &format!("/poll?key={}&cursor={cursor}", self.key),
            &[],
            None,
        )
        .await
    }

    /// The next frame, polling (and so acknowledging) as needed.
    pub(crate) async fn next(&mut self, s: &Server) -> Value {
        let started = std::time::Instant::now();
        while started.elapsed() < WAIT * 3 {
            if let Some(f) = self.pending.pop_front() {
                return f;
            }
            let r = self.poll_at(s, self.cursor).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let v = r.json();
            self.cursor = v["cursor"].as_u64().unwrap();
            self.pending
                .extend(v["frames"].as_array().unwrap().iter().cloned());
            assert!(
                v.get("closed").is_none() || !self.pending.is_empty(),
                "closed: {v}"
            );
        }
        panic!("no frame within {:?}", WAIT * 3);
    }

    /// Reads until a frame of type `ty`; returns it and what came before.
    pub(crate) async fn recv_type(&mut self, s: &Server, ty: &str) -> (Value, Vec<Value>) {
        let mut seen = Vec::new();
        loop {
            let f = self.next(s).await;
            if f["type"] == ty {
                return (f, seen);
            }
            seen.push(f);
        }
    }

    pub(crate) async fn joined(&mut self, s: &Server, room: &str) -> Value {
        loop {
            let (f, _) = self.recv_type(s, "room:joined").await;
            if f["room"] == room {
                return f;
            }
        }
    }

    pub(crate) async fn send(&self, s: &Server, frames: Value) -> u16 {
        let path = format!("/poll/send?key={}", self.key);
        s.http("POST", &path, None, Some(&frames.to_string()))
            .await
            .0
    }
}

fn tok(sub: &str) -> String {
    token(sub, json!({}))
}

#[tokio::test]
async fn all_three_transports_carry_the_same_conversation() {
    let s = Server::start();
    let mut ws = s.user("wanda").await;
    ws.join("general").await;
    let mut sse = Sse::connect(&s, &format!("/sse?token={}", tok("sam"))).await;
    assert_eq!(
        sse.send(&s, json!({"type":"room:join","room":"general"}))
            .await,
        202
    );
    sse.joined("general").await;
    let mut poll = Poller::open(&s, &format!("token={}", tok("polly"))).await;
    let (hello, _) = poll.recv_type(&s, "connected").await;
    assert_eq!(hello["user"], "polly");
    assert_eq!(hello["transport"], "polling");
    assert_eq!(
        poll.send(&s, json!({"type":"room:join","room":"general"}))
            .await,
        202
    );
    poll.joined(&s, "general").await;

    // Each sends one message with an id, after the previous one was acked;
    // everyone gets all three, in one order, while waiting for acks too.
    fn note(f: &Value, got: &mut Vec<(u64, String)>) {
        if f["type"] == "message:receive" {
            got.push((
                f["seq"].as_u64().unwrap(),
                f["data"].as_str().unwrap().to_string(),
            ));
        }
    }
    let (mut got_ws, mut got_sse, mut got_poll) = (Vec::new(), Vec::new(), Vec::new());
    ws.send(json!({"type":"message:send","room":"general","data":"from ws","id":"w1"}))
        .await;
    loop {
        let f = ws.recv().await;
        note(&f, &mut got_ws);
        if f["type"] == "ack" {
            assert_eq!((f["id"].as_str(), f["seq"].as_u64()), (Some("w1"), Some(1)));
            break;
        }
    }
    sse.send(
        &s,
        json!([{"type":"message:send","room":"general","data":"from sse","id":"s1"}]),
    )
    .await;
    loop {
        let f = sse.next().await.expect("sse event").data;
        note(&f, &mut got_sse);
        if f["type"] == "ack" {
            assert_eq!((f["id"].as_str(), f["seq"].as_u64()), (Some("s1"), Some(2)));
            break;
        }
    }
    poll.send(
        &s,
        json!({"type":"message:send","room":"general","data":"from poll","id":"p1"}),
    )
    .await;
    loop {
        let f = poll.next(&s).await;
        note(&f, &mut got_poll);
        if f["type"] == "ack" {
            assert_eq!((f["id"].as_str(), f["seq"].as_u64()), (Some("p1"), Some(3)));
            break;
        }
    }
    while got_ws.len() < 3 {
        note(&ws.recv().await, &mut got_ws);
    }
    while got_sse.len() < 3 {
        note(&sse.next().await.expect("sse event").data, &mut got_sse);
    }
    while got_poll.len() < 3 {
        note(&poll.next(&s).await, &mut got_poll);
    }
    let want: Vec<(u64, String)> = [(1, "from ws"), (2, "from sse"), (3, "from poll")]
        .into_iter()
        .map(|(a, b)| (a, b.to_string()))
        .collect();
    assert_eq!(got_ws, want);
    assert_eq!(got_sse, want);
    assert_eq!(got_poll, want);

    // Errors carry their ref on every transport.
    sse.send(
        &s,
        json!({"type":"message:send","room":"nowhere","data":1,"id":"bad1"}),
    )
    .await;
    let e = sse.recv_type("error").await.data;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("not_member"), Some("bad1"))
    );
    poll.send(&s, json!({"type":"nope","id":"bad2"})).await;
    let (e, _) = poll.recv_type(&s, "error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("unknown_type"), Some("bad2"))
    );
    ws.send(json!({"type":"ping","id":"still"})).await;
    assert_eq!(ws.recv_type("pong").await["id"], "still");
}

#[tokio::test]
async fn sse_resumes_after_a_dropped_stream_without_loss_or_repeats() {
    let s = Server::start();
    let mut ws = s.user("wanda").await;
    ws.join("r").await;
    let mut sse = Sse::connect(&s, &format!("/sse?token={}", tok("sam"))).await;
    sse.send(&s, json!({"type":"room:join","room":"r"})).await;
    let joined = sse.joined("r").await;
    let key = sse.key.clone();
    let last = joined.id.clone();
    assert!(last.starts_with(&format!("{key}:")));
    drop(sse); // the stream drops; the session lives on

    for i in 0..5 {
        ws.send(json!({"type":"message:send","room":"r","data":i,"id":format!("m{i}")}))
            .await;
        ws.recv_type("ack").await;
    }
    let mut again = Sse::open(&s, "/sse", &[("Last-Event-ID", &last)]).await;
    assert_eq!(again.status, 200);
    let mut cursors = vec![joined.cursor()];
    let mut data = Vec::new();
    while data.len() < 5 {
        let e = again.next().await.expect("event");
        assert!(e.id.starts_with(&key), "same session: {e:?}");
        cursors.push(e.cursor());
        if e.event == "message:receive" {
            data.push(e.data["data"].as_u64().unwrap());
        }
        assert_ne!(e.event, "connected", "a resume is not a new session");
    }
    assert_eq!(data, vec![0, 1, 2, 3, 4]);
    assert!(cursors.windows(2).all(|w| w[1] == w[0] + 1), "{cursors:?}");

    // The same resume point through the query works too, and a live message
    // follows the replay.
    let mut third = Sse::open(&s, &format!("/sse?lastEventId={last}"), &[]).await;
    assert_eq!(third.status, 200);
    ws.send(json!({"type":"message:send","room":"r","data":99}))
        .await;
    let mut seen = Vec::new();
    while seen.last() != Some(&99) {
        let e = third.recv_type("message:receive").await;
        seen.push(e.data["data"].as_u64().unwrap());
    }
    assert_eq!(seen, vec![0, 1, 2, 3, 4, 99]);
    // The older stream was ended by the newer one.
    assert!(again.next().await.is_none());

    // A resume point after the acknowledged window fails clearly.
    let r = s
        .request(
            "GET",
            "/sse",
            &[("Last-Event-ID", &format!("{key}:999"))],
            None,
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"]["code"], "resume_failed");
    // An unknown session without credentials: session_expired.
    let r = s
        .request("GET", "/sse", &[("Last-Event-ID", "00ff:3")], None)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "session_expired");
}

#[tokio::test]
async fn a_lost_poll_response_is_delivered_again() {
    let s = Server::with_env(&[("SWITCHBOARD_POLL_TIMEOUT_MS", "300")]);
    let mut ws = s.user("wanda").await;
    ws.join("r").await;
    let mut p = Poller::open(&s, &format!("token={}", tok("polly"))).await;
    p.send(&s, json!({"type":"room:join","room":"r"})).await;
    p.joined(&s, "r").await;
    let base = p.cursor;
    ws.send(json!({"type":"message:send","room":"r","data":"one","id":"a"}))
        .await;
    ws.recv_type("ack").await;
    let first = p.poll_at(&s, base).await.json();
    let frames = first["frames"].as_array().unwrap().clone();
    assert!(frames.iter().any(|f| f["data"] == "one"), "{first}");
    // That response "was lost": the same cursor gets the same frames again.
    let again = p.poll_at(&s, base).await.json();
    assert_eq!(again["frames"], first["frames"]);
    assert_eq!(again["cursor"], first["cursor"]);
    // Acknowledged by the next cursor, they are not sent a third time: an
    // empty answer comes back when the hold times out.
    let next = p
        .poll_at(&s, first["cursor"].as_u64().unwrap())
        .await
        .json();
    assert_eq!(next["frames"], json!([]), "{next}");
    assert_eq!(next["cursor"], first["cursor"]);

    // A held poll is answered as soon as a frame arrives.
    let key = p.key.clone();
    let cursor = first["cursor"].as_u64().unwrap();
    let addr = s.addr.clone();
    let held = tokio::spawn(async move {
        let r = Server::request_at(&addr, &format!("/poll?key={key}&cursor={cursor}")).await;
        r.json()
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    ws.send(json!({"type":"message:send","room":"r","data":"two"}))
        .await;
    let mut got = held.await.unwrap();
    while got["frames"].as_array().unwrap().is_empty() {
        // The hold may have timed out just before the message; poll once more.
        got = p.poll_at(&s, cursor).await.json();
    }
    assert_eq!(got["frames"][0]["data"], "two", "{got}");
}

#[tokio::test]
async fn idle_http_sessions_expire_and_leave_their_rooms() {
    let s = Server::with_env(&[
        ("SWITCHBOARD_HTTP_SESSION_TIMEOUT_MS", "400"),
        ("SWITCHBOARD_POLL_TIMEOUT_MS", "200"),
    ]);
    let mut ws = s.user("wanda").await;
    ws.join("r").await;
    let mut p = Poller::open(&s, &format!("token={}", tok("polly"))).await;
    p.send(&s, json!({"type":"room:join","room":"r"})).await;
    p.joined(&s, "r").await;
    assert_eq!(
        ws.recv_type("room:member_joined").await["user"]["user"],
        "polly"
    );
    // Polling keeps it alive well past the timeout.
    for _ in 0..4 {
        let r = p.poll_at(&s, p.cursor).await;
        assert_eq!(r.status, 200);
        p.cursor = r.json()["cursor"].as_u64().unwrap();
    }
    // Then it stops polling: the session expires and leaves.
    let left = ws.recv_type("room:member_left").await;
    assert_eq!(left["user"]["user"], "polly");
    let r = p.poll_at(&s, p.cursor).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "session_expired");
    assert_eq!(p.send(&s, json!({"type":"ping"})).await, 404);

    // An SSE session whose stream dropped expires the same way.
    let sse = Sse::connect(&s, &format!("/sse?token={}", tok("sam"))).await;
    sse.send(&s, json!({"type":"room:join","room":"r"})).await;
    assert_eq!(
        ws.recv_type("room:member_joined").await["user"]["user"],
        "sam"
    );
    let key = sse.key.clone();
    drop(sse);
    assert_eq!(
        ws.recv_type("room:member_left").await["user"]["user"],
        "sam"
    );
    let (status, _) = s
        .http("POST", &format!("/sse/send?key={key}"), None, Some("{}"))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn http_transports_fail_auth_like_websocket() {
    let s = Server::with_env(&[
        ("SWITCHBOARD_GUESTS", "0"),
        ("SWITCHBOARD_AUTH_GRACE_MS", "3000"),
    ]);
    for path in ["/sse?token=not-a-jwt", "/sse?name=guest"] {
        let r = s.request("GET", path, &[], None).await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.json()["error"]["code"], "unauthorized");
    }
    let (status, body) = s.http("POST", "/poll/open?token=nope", None, None).await;
    assert_eq!(status, 401, "{body}");
    let r = s
        .request(
            "POST",
            "/poll/open",
            &[("Authorization", &format!("Bearer {}", tok("bea")))],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "a bearer header authenticates");

    // No credentials: an auth frame, sent as the first frame, authenticates.
    let mut p = Poller::open(&s, "").await;
    p.send(&s, json!({"type":"auth","token":tok("late")})).await;
    let (hello, _) = p.recv_type(&s, "connected").await;
    assert_eq!(hello["user"], "late");
    // A bad one closes the session with 1008, reported in the poll.
    let q = Poller::open(&s, "").await;
    q.send(&s, json!({"type":"auth","token":"garbage"})).await;
    let mut closed = Value::Null;
    for _ in 0..20 {
        let v = q.poll_at(&s, 0).await.json();
        if let Some(c) = v.get("closed") {
            closed = c.clone();
            break;
        }
    }
    assert_eq!(closed["code"], 1008, "{closed}");
    // A body that is not JSON is refused at the door.
    let (status, body) = s
        .http(
            "POST",
            &format!("/poll/send?key={}", p.key),
            None,
            Some("{nope"),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("bad_json"), "{body}");
}

#[tokio::test]
async fn an_http_client_that_never_collects_is_closed_as_slow_consumer() {
    let s = Server::with_env(&[("SWITCHBOARD_OUTBOX", "16")]);
    let mut ws = s.user_with("pub", json!({"role":"service"})).await;
    ws.join("r").await;
    let mut p = Poller::open(&s, &format!("token={}", tok("polly"))).await;
    p.send(&s, json!({"type":"room:join","room":"r"})).await;
    p.joined(&s, "r").await;
    for i in 0..40 {
        ws.send(json!({"type":"message:send","room":"r","data":i,"id":format!("{i}")}))
            .await;
        ws.recv_type("ack").await;
    }
    let v = p.poll_at(&s, p.cursor).await.json();
    assert_eq!(v["closed"]["code"], 4008, "{v}");
    let frames = v["frames"].as_array().unwrap();
    // What was kept arrives in order before the close; nothing past the bound.
    let got: Vec<u64> = frames
        .iter()
        .filter(|f| f["type"] == "message:receive")
        .map(|f| f["data"].as_u64().unwrap())
        .collect();
    assert!(!got.is_empty() && got.len() < 40, "{got:?}");
    assert_eq!(got, (0..got.len() as u64).collect::<Vec<_>>());
    assert!(s.metric("switchboard_slow_consumers_total").await >= 1.0);
    // The publisher carries on.
    ws.send(json!({"type":"ping","id":"ok"})).await;
    assert_eq!(ws.recv_type("pong").await["id"], "ok");
    // The key is forgotten after the close was delivered.
    assert_eq!(p.poll_at(&s, 0).await.status, 404);
}

#[tokio::test]
async fn closing_an_http_session_and_compression() {
    let s = Server::start();
    let mut ws = s.user("wanda").await;
    ws.join("r").await;
    let mut p = Poller::open(&s, &format!("token={}", tok("polly"))).await;
    p.send(&s, json!({"type":"room:join","room":"r"})).await;
    p.joined(&s, "r").await;
    ws.recv_type("room:member_joined").await;

    let r = s
        .request(
            "GET",
            &format!("/poll?key={}&cursor=0", p.key),
            &[("Accept-Encoding", "gzip")],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_ne!(r.body.first(), Some(&b'{'), "the body is compressed");

    let sse = Sse::open(
        &s,
        &format!("/sse?token={}", tok("sam")),
        &[("Accept-Encoding", "gzip")],
    )
    .await;
    assert_eq!(sse.status, 200);

    let (status, _) = s
        .http("POST", &format!("/poll/close?key={}", p.key), None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        ws.recv_type("room:member_left").await["user"]["user"],
        "polly"
    );
    assert_eq!(p.poll_at(&s, 0).await.status, 404);
}

#[tokio::test]
async fn sse_gets_a_close_event_on_shutdown() {
    let mut s = Server::start();
    let mut sse = Sse::connect(&s, &format!("/sse?token={}", tok("sam"))).await;
    s.terminate();
    let close = sse.recv_type("close").await;
    assert_eq!(close.data["code"], 1001, "{:?}", close.data);
    assert!(
        sse.next().await.is_none(),
        "the stream ends after the close"
    );
}

#[tokio::test]
async fn pages_on_other_origins_may_use_the_http_transports() {
    let s = Server::start();
    let origin = ("Origin", "https://app.example");
    // A preflight for a JSON send is answered, without touching a session.
    let pre = s
        .request(
            "OPTIONS",
            "/poll/send?key=x",
            &[
                origin,
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            None,
        )
        .await;
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    assert!(pre
        .header("access-control-allow-headers")
        .is_some_and(|h| h.contains("Content-Type") && h.contains("Authorization")));
    assert!(pre
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));
    // Real answers carry the header too, errors included.
    let opened = s
        .request("POST", "/poll/open?name=far", &[origin], None)
        .await;
    assert_eq!(opened.status, 200);
    assert_eq!(opened.header("access-control-allow-origin"), Some("*"));
    let gone = s
        .request("GET", "/poll?key=nope&cursor=0", &[origin], None)
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.header("access-control-allow-origin"), Some("*"));
    let history = s
        .request("GET", "/api/rooms/general/history", &[origin], None)
        .await;
    assert_eq!(history.header("access-control-allow-origin"), Some("*"));
    // No other site may mint development tokens, nor read the metrics.
    for path in ["/api/dev/token?sub=x", "/metrics"] {
        let r = s.request("GET", path, &[origin], None).await;
        assert_eq!(r.header("access-control-allow-origin"), None, "{path}");
    }

    // A list allows exactly its origins (echoed, with Vary); `none` nothing.
    let listed = Server::with_env(&[("SWITCHBOARD_CORS_ORIGINS", "https://app.example/")]);
    let ok = listed.request("POST", "/poll/open", &[origin], None).await;
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(ok.header("vary"), Some("Origin"));
    let other = listed
        .request(
            "POST",
            "/poll/open",
            &[("Origin", "https://evil.example")],
            None,
        )
        .await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    let off = Server::with_env(&[("SWITCHBOARD_CORS_ORIGINS", "none")]);
    let r = off.request("POST", "/poll/open", &[origin], None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
}
