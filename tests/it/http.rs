//! Health, the REST room listing and history, static files,
//! heartbeats (WebSocket pings and the app-level `ping`), and SIGTERM.

use crate::common::*;
use crate::metrics::{metrics_until, sample};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// A raw HTTP/1.1 GET; returns (status, lower-cased headers, body).
pub async fn get_raw(s: &Server, path: &str) -> (u16, Vec<(String, String)>, String) {
    let r = s.request("GET", path, &[], None).await;
    let body = String::from_utf8_lossy(&r.body).to_string();
    (r.status, r.headers, body)
}

pub fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Polls `/healthz` until `ok` holds (at most ~3 s); returns the last body.
async fn health_until(s: &Server, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..60 {
        let (status, v) = s.get_json("/healthz", None).await;
        assert_eq!(status, 200, "{v}");
        last = v;
        if ok(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

fn room_names(v: &Value) -> Vec<String> {
    v["rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("no rooms array: {v}"))
        .iter()
        .map(|r| r["room"].as_str().unwrap().to_string())
        .collect()
}

fn is_public(room: &str) -> bool {
    matches!(room, "general" | "random" | "lobby") || room.starts_with("public-")
}

#[tokio::test]
async fn healthz_reports_live_counts() {
    let s = Server::start();
    let (status, headers, body) = get_raw(&s, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        header(&headers, "content-type").is_some_and(|c| c.starts_with("application/json")),
        "{headers:?}"
    );
    let h: Value = serde_json::from_str(&body).expect("healthz is JSON");
    assert_eq!(h["status"], "ok", "{h}");
    assert!(h["version"].as_str().is_some_and(|v| !v.is_empty()), "{h}");
    assert!(h["uptime_s"].is_u64(), "{h}");
    assert_eq!(h["connections"], 0, "{h}");
    assert_eq!(h["sessions"], 0, "{h}");

    let mut a = s.user("alice").await;
    let mut b = s.user("bob").await;
    a.join("general").await;
    b.join("general").await;
    let (status, h) = s.get_json("/healthz", None).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["connections"], 2, "{h}");
    assert_eq!(h["sessions"], 2, "{h}");
    assert_eq!(h["users"], 2, "{h}");
    // general + user:alice + user:bob
    assert!(h["rooms"].as_u64().is_some_and(|r| r >= 3), "{h}");

    // A second session of the same user is one more session, not one more user.
    let a2 = s.user("alice").await;
    let (_, h) = s.get_json("/healthz", None).await;
    assert_eq!(
        (h["sessions"].as_u64(), h["users"].as_u64()),
        (Some(3), Some(2)),
        "{h}"
    );

    a2.close().await;
    b.close().await;
    let h = health_until(&s, |h| h["sessions"] == 1 && h["connections"] == 1).await;
    assert_eq!(h["sessions"], 1, "closed sessions still counted: {h}");
    assert_eq!(h["connections"], 1, "{h}");
    assert_eq!(h["users"], 1, "{h}");
}

#[tokio::test]
async fn room_listing_shows_only_rooms_the_caller_may_join() {
    let s = Server::start();
    let mut a = s.user("alice").await;
    a.join("general").await;
    a.join("team-x").await;
    let mut b = s.user("bob").await;
    b.join("public-fun").await;
    b.join("general").await;
    let mut g = s.guest("gina").await;
    g.join("lobby").await;

    let (status, v) = s.get_json("/api/rooms", None).await;
    assert_eq!(status, 200, "{v}");
    let anon = room_names(&v);
    for r in ["general", "public-fun", "lobby"] {
        assert!(anon.contains(&r.to_string()), "{r} missing: {v}");
    }
    for r in &anon {
        assert!(
            is_public(r),
            "anonymous caller sees non-public room {r}: {v}"
        );
        assert!(
            !r.starts_with("user:"),
            "anonymous sees a personal room: {v}"
        );
    }
    let general = v["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room"] == "general")
        .unwrap();
    assert_eq!(general["sessions"], 2, "{v}");

    // An ordinary user sees its own personal room but not others'.
    let (status, v) = s
        .get_json("/api/rooms", Some(&token("alice", json!({}))))
        .await;
    assert_eq!(status, 200, "{v}");
    let mine = room_names(&v);
    assert!(mine.contains(&"user:alice".to_string()), "{v}");
    assert!(mine.contains(&"team-x".to_string()), "{v}");
    assert!(
        !mine
            .iter()
            .any(|r| r == "user:bob" || r.starts_with("user:guest-")),
        "{v}"
    );

    // An admin sees everything.
    let admin = token("root", json!({"role": "admin"}));
    let (status, v) = s.get_json("/api/rooms", Some(&admin)).await;
    assert_eq!(status, 200, "{v}");
    let all = room_names(&v);
    for r in [
        "general",
        "team-x",
        "public-fun",
        "lobby",
        "user:alice",
        "user:bob",
    ] {
        assert!(all.contains(&r.to_string()), "admin misses {r}: {v}");
    }
    assert!(all.iter().any(|r| r.starts_with("user:guest-")), "{v}");

    // A bad token is refused, not treated as anonymous.
    let (status, v) = s.get_json("/api/rooms", Some("garbage")).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["error"]["code"], "unauthorized", "{v}");

    // Only active rooms: once bob is gone, his personal room is no longer listed.
    b.close().await;
    let mut listed = true;
    for _ in 0..60 {
        let (_, v) = s.get_json("/api/rooms", Some(&admin)).await;
        listed = room_names(&v).iter().any(|r| r == "user:bob");
        if !listed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!listed, "user:bob still listed after bob left");
}

#[tokio::test]
async fn history_slices_with_since_and_limit() {
    let s = Server::start();
    let mut a = s.user("alice").await;
    a.join("general").await;
    for i in 1..=5u64 {
        a.send(json!({"type": "message:send", "room": "general", "data": {"n": i}, "id": format!("h{i}")}))
            .await;
        let ack = a.recv_type("ack").await;
        assert_eq!(ack["seq"], i, "{ack}");
    }
    let seqs = |v: &Value| -> Vec<u64> {
        v["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("no messages: {v}"))
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect()
    };

    let (status, v) = s.get_json("/api/rooms/general/history", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["room"], "general");
    assert_eq!(v["seq"], 5, "{v}");
    assert!(v["epoch"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    assert_eq!(seqs(&v), [1, 2, 3, 4, 5]);
    let m0 = &v["messages"][0];
    assert_eq!(m0["type"], "message:receive", "{m0}");
    assert_eq!(m0["room"], "general");
    assert_eq!(m0["data"], json!({"n": 1}));
    assert_eq!(m0["from"], json!({"user": "alice", "name": "alice name"}));
    assert_eq!(m0["id"], "h1");

    let (_, v) = s.get_json("/api/rooms/general/history?since=2", None).await;
    assert_eq!(seqs(&v), [3, 4, 5], "{v}");
    assert_eq!(v["seq"], 5);
    let (_, v) = s
        .get_json("/api/rooms/general/history?since=1&limit=2", None)
        .await;
    assert_eq!(seqs(&v), [2, 3], "{v}");
    // `limit` alone: the latest N, and whether older ones remain.
    let (_, v) = s.get_json("/api/rooms/general/history?limit=1", None).await;
    assert_eq!((seqs(&v), &v["more"]), (vec![5], &json!(true)), "{v}");
    let (_, v) = s.get_json("/api/rooms/general/history?since=5", None).await;
    assert_eq!(seqs(&v), Vec::<u64>::new(), "{v}");
    assert_eq!(v["seq"], 5, "{v}");
    let (status, v) = s
        .get_json("/api/rooms/general/history?since=abc", None)
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "bad_request", "{v}");

    // Invalid room names.
    for bad in ["bad!room", "a%20b", &"x".repeat(65)] {
        let (status, v) = s.get_json(&format!("/api/rooms/{bad}/history"), None).await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "invalid_room", "{bad}: {v}");
    }

    // A room nobody ever used: empty, not an error.
    let (status, v) = s
        .get_json("/api/rooms/public-never-used/history", None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["seq"], 0, "{v}");
    assert_eq!(v["messages"], json!([]), "{v}");

    // Private history needs a token that may join the room.
    a.join("team-x").await;
    a.send(json!({"type": "message:send", "room": "team-x", "data": "secret", "id": "t"}))
        .await;
    a.recv_type("ack").await;
    let (status, v) = s.get_json("/api/rooms/team-x/history", None).await;
    assert_eq!(status, 401, "{v}");
    let (status, v) = s
        .get_json(
            "/api/rooms/team-x/history",
            Some(&token("alice", json!({}))),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(seqs(&v), [1], "{v}");
}

#[tokio::test]
async fn static_page_and_unknown_paths() {
    let s = Server::start();
    let (status, headers, body) = get_raw(&s, "/").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        header(&headers, "content-type").is_some_and(|c| c.starts_with("text/html")),
        "{headers:?}"
    );
    assert!(body.to_ascii_lowercase().contains("<html"), "{body}");
    // The page's scripts, and the SDK modules they import, are served as
    // JavaScript (browsers refuse modules of another type).
    assert!(
        body.contains(r#"<script type="module" src="/demo.js">"#),
        "{body}"
    );
    // The SDK is also under its versioned prefix, with the same relative
    // imports.
    let versioned = format!("/sdk/{}/switchboard.js", env!("CARGO_PKG_VERSION"));
    for (path, imports) in [
        ("/demo.js", "from \"/switchboard.js\""),
        ("/switchboard.js", "from \"./switchboard-connection.js\""),
        (&versioned, "from \"./switchboard-connection.js\""),
        (
            "/switchboard-connection.js",
            "from \"./switchboard-transports.js\"",
        ),
        ("/switchboard-transports.js", "\"/ws\""),
    ] {
        let (status, headers, js) = get_raw(&s, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            header(&headers, "content-type").is_some_and(|c| c.starts_with("text/javascript")),
            "{path}: {headers:?}"
        );
        assert!(js.contains(imports), "{path} lacks {imports}");
    }

    let (status, _, body2) = get_raw(&s, "/index.html").await;
    assert_eq!(status, 200);
    assert_eq!(body2, body);

    for path in ["/nope", "/static/../Cargo.toml", "/api/nothing"] {
        let (status, v) = s.get_json(path, None).await;
        assert_eq!(status, 404, "{path}: {v}");
        assert_eq!(v["error"]["code"], "not_found", "{path}: {v}");
    }
}

#[tokio::test]
async fn app_level_ping_gets_pong() {
    let s = Server::start();
    let mut a = s.user("alice").await;
    a.send(json!({"type": "ping", "id": "p"})).await;
    assert_eq!(a.recv().await, json!({"type": "pong", "id": "p"}));
    a.send(json!({"type": "ping"})).await;
    assert_eq!(a.recv().await, json!({"type": "pong"}));
    let mut g = s.guest("gus").await;
    g.send_text(r#"{"type":"ping","id":"g1"}"#).await;
    assert_eq!(g.recv().await, json!({"type": "pong", "id": "g1"}));
}

const FAST_HEARTBEAT: &[(&str, &str)] = &[
    ("SWITCHBOARD_PING_INTERVAL_MS", "200"),
    ("SWITCHBOARD_PONG_TIMEOUT_MS", "300"),
];

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected() {
    let s = Server::with_env(FAST_HEARTBEAT);
    let mut a = s.user("alice").await;
    let end = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut pings = 0;
    loop {
        match tokio::time::timeout_at(end, a.inner().next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(Message::Close(c)))) => panic!("closed despite answering pings: {c:?}"),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("websocket error: {e}"),
            Ok(None) => panic!("connection ended"),
        }
    }
    assert!(pings >= 4, "only {pings} pings in 2 s at a 200 ms interval");
    a.send(json!({"type": "ping", "id": "still-here"})).await;
    assert_eq!(a.recv().await, json!({"type": "pong", "id": "still-here"}));
    assert_eq!(s.metric("switchboard_connections").await, 1.0);
}

/// Parses complete server frames off the front of `buf`: (opcode, payload).
fn parse_frames(buf: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        if buf.len() < 2 {
            return out;
        }
        assert_eq!(buf[1] & 0x80, 0, "server frames must not be masked");
        let (len, head) = match buf[1] & 0x7f {
            126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            127 if buf.len() >= 10 => (
                u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return out,
            n => (n as usize, 2),
        };
        if buf.len() < head + len {
            return out;
        }
        assert_ne!(buf[0] & 0x80, 0, "expected FIN set: {:#x}", buf[0]);
        let op = buf[0] & 0x0f;
        out.push((op, buf[head..head + len].to_vec()));
        buf.drain(..head + len);
    }
}

#[tokio::test]
async fn a_client_that_never_pongs_is_closed_with_4000() {
    let s = Server::with_env(FAST_HEARTBEAT);
    let mut sock = TcpStream::connect(&s.addr).await.expect("connect");
    let t = token("mute", json!({}));
    let req = format!(
        "GET /ws?token={t} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        s.addr
    );
    sock.write_all(req.as_bytes()).await.expect("write");
    let started = Instant::now();

    // Read the handshake response.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = tokio::time::timeout(WAIT, sock.read(&mut chunk))
            .await
            .expect("handshake timeout")
            .expect("read");
        assert!(n > 0, "EOF during handshake");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    buf.drain(..head_end);

    // Now only read, never write: no pong ever goes back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    let mut frames = Vec::new();
    let mut eof = false;
    while !eof {
        frames.extend(parse_frames(&mut buf));
        match tokio::time::timeout_at(deadline, sock.read(&mut chunk)).await {
            Err(_) => break,
            Ok(Ok(0)) | Ok(Err(_)) => eof = true,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    frames.extend(parse_frames(&mut buf));
    let elapsed = started.elapsed();
    let ops: Vec<u8> = frames.iter().map(|f| f.0).collect();

    let texts: Vec<Value> = frames
        .iter()
        .filter(|f| f.0 == 0x1)
        .map(|f| serde_json::from_slice(&f.1).expect("text frame is JSON"))
        .collect();
    assert_eq!(
        texts.first().map(|t| &t["type"]),
        Some(&json!("connected")),
        "{texts:?}"
    );
    let first_ping = ops
        .iter()
        .position(|&o| o == 0x9)
        .unwrap_or_else(|| panic!("no ping frame seen: opcodes {ops:?}"));
    let close = ops
        .iter()
        .position(|&o| o == 0x8)
        .unwrap_or_else(|| panic!("no close frame within 4 s: opcodes {ops:?}, eof {eof}"));
    assert!(first_ping < close, "close before any ping: {ops:?}");
    assert_eq!(close, ops.len() - 1, "frames after the close: {ops:?}");
    let payload = &frames[close].1;
    assert!(payload.len() >= 2, "close without a code");
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    assert_eq!(
        code,
        4000,
        "close reason: {}",
        String::from_utf8_lossy(&payload[2..])
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "closed only after {elapsed:?} (ping 200 ms, pong timeout 300 ms)"
    );
    assert!(
        eof,
        "the server did not drop the TCP connection after its close frame"
    );
    let m = metrics_until(&s, |m| sample(m, "switchboard_connections") == 0.0).await;
    assert_eq!(sample(&m, "switchboard_connections"), 0.0);
}

#[tokio::test]
async fn sigterm_closes_sessions_with_1001_and_exits_cleanly() {
    let mut s = Server::with_env(&[("SWITCHBOARD_SHUTDOWN_GRACE_MS", "2000")]);
    let addr = s.addr.clone();
    let mut a = s.user("alice").await;
    let mut b = s.user("bob").await;
    a.join("general").await;
    b.join("general").await;
    a.recv_type("room:member_joined").await;

    let started = Instant::now();
    let term = tokio::task::spawn_blocking(move || {
        let status = s.terminate();
        (status, started.elapsed(), s)
    });
    let (ca, cb) = tokio::join!(
        a.close_frame(Duration::from_secs(5)),
        b.close_frame(Duration::from_secs(5))
    );
    let (ca, cb) = (
        ca.expect("alice: no close frame"),
        cb.expect("bob: no close frame"),
    );
    assert_eq!(ca.0, 1001, "alice closed with {ca:?}");
    assert_eq!(cb.0, 1001, "bob closed with {cb:?}");

    let (status, took, _s) = term.await.expect("join");
    let status = status.expect("server did not exit within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");

    match TcpStream::connect(&addr).await {
        Err(_) => {}
        Ok(_) => panic!("the server still accepts connections after exiting"),
    }
}

#[tokio::test]
async fn sigterm_does_not_wait_forever_on_a_client_that_never_reads() {
    let mut s = Server::with_env(&[("SWITCHBOARD_SHUTDOWN_GRACE_MS", "1000")]);
    // A reading client and one that never reads nor answers anything.
    let mut a = s.user("alice").await;
    let _mute = s.user("mute").await;
    let started = Instant::now();
    let term = tokio::task::spawn_blocking(move || (s.terminate(), started.elapsed(), s));
    assert_eq!(a.close_code(Duration::from_secs(5)).await, Some(1001));
    let (status, took, _s) = term.await.expect("join");
    let status = status.expect("server did not exit within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
}

/// A port already in use stops the server at once with a message naming
/// the address and exit code 1, not a panic.
#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let db = std::env::temp_dir().join(format!("switchboard-it-port-{}.db", std::process::id()));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env("PORT", &port)
        .env("SWITCHBOARD_HOST", "127.0.0.1")
        .env("SWITCHBOARD_DB", &db)
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (status, err) = refused_start(child, Duration::from_secs(20));
    remove_db(&db);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")) && !err.contains("panicked"),
        "{err}"
    );
}
