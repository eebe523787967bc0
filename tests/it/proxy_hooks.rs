//! Proxy hooks and room rules (#15): a real HTTP server of the test's own,
//! on 127.0.0.1:0, plays the app's backend; real clients see its answers.

use crate::common::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The backend: answers by path and body, and keeps every request body.
struct Backend {
    addr: String,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Backend {
    async fn start() -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(serve(s, log.clone()));
            }
        });
        Backend { addr, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn bodies(&self, path: &str) -> Vec<Value> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// One keep-alive connection: reads requests (Content-Length bodies) and answers each.
async fn serve(mut s: tokio::net::TcpStream, log: Arc<Mutex<Vec<(String, Value)>>>) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Value =
            serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
        buf.drain(..head_end + len);
        log.lock().unwrap().push((path.clone(), body.clone()));
        let (status, answer) = decide(&path, &body).await;
        let text = answer.to_string();
        let reply = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if s.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn decide(path: &str, b: &Value) -> (u16, Value) {
    match path {
        "/connect" => match (b["data"]["pass"].as_str(), b["cookies"]["sid"].as_str()) {
            (Some("ok"), _) | (None, Some("good")) => (
                200,
                json!({"user": 4711, "name": "Cookie User", "rooms": ["vip-*", "mod-*", "general"]}),
            ),
            (Some("401"), _) => (401, json!({})),
            _ => (
                200,
                json!({"error": {"code": "bad_login", "message": "who are you"}}),
            ),
        },
        "/subscribe" => match b["room"].as_str() {
            Some("vip-no") => (
                403,
                json!({"error": {"code": "not_a_vip", "message": "VIP only"}}),
            ),
            Some("vip-slow") => {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                (200, json!({}))
            }
            Some("vip-big") => (200, json!({"info": "x".repeat(5000)})),
            _ => (200, json!({"info": {"tier": "gold", "seat": b["user"]}})),
        },
        "/publish" => match b["data"]["text"].as_str() {
            Some("spam") => (200, json!({"error": {"code": "spam", "message": "no ads"}})),
            Some("rewrite") => (200, json!({"data": {"text": "clean", "by": b["user"]}})),
            Some("slow") => {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                (200, json!({}))
            }
            _ => (200, json!({})),
        },
        _ => (404, json!({})),
    }
}

/// A WebSocket with a cookie and a header on the upgrade.
async fn ws_with(server: &Server, cookie: &str, tenant: &str) -> Client {
    let mut req = server.url("/ws").into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    req.headers_mut()
        .insert("x-tenant", tenant.parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    Client::from_stream(ws)
}

#[tokio::test]
async fn connect_hook_names_or_refuses_connections() {
    let backend = Backend::start().await;
    let url = backend.url("/connect");
    let server = Server::with_env(&[
        ("SWITCHBOARD_PROXY_CONNECT_URL", &url),
        ("SWITCHBOARD_PROXY_CONNECT_HEADERS", "X-Tenant"),
    ]);
    // Cookie, forwarded header and the auth frame's data reach the backend.
    let mut c = ws_with(&server, "theme=dark; sid=other", "acme").await;
    c.send(json!({"type": "auth", "data": {"pass": "ok"}}))
        .await;
    let hello = c.greeted().await;
    assert_eq!(hello["user"], "4711");
    assert_eq!(hello["name"], "Cookie User");
    let seen = backend.bodies("/connect");
    let b = seen.last().unwrap();
    assert_eq!(b["cookies"]["sid"], "other", "{b}");
    assert_eq!(b["cookies"]["theme"], "dark", "{b}");
    assert_eq!(b["headers"]["x-tenant"], "acme", "{b}");
    assert_eq!(b["data"]["pass"], "ok", "{b}");
    assert_eq!(b["transport"], "websocket", "{b}");
    // The identity's rooms rule applies.
    c.send(json!({"type": "room:join", "room": "other", "id": "j"}))
        .await;
    assert_eq!(c.recv_type("error").await["code"], "forbidden");

    // A cookie alone: any first frame asks the hook, then is handled.
    let mut c = ws_with(&server, "sid=good", "acme").await;
    c.send(json!({"type": "ping", "id": "p"})).await;
    // `connected` first; with Redis the personal room's join may follow the pong.
    assert_eq!(c.recv().await["type"], "connected");
    assert_eq!(c.recv_type("pong").await["id"], "p");

    // The backend's own code, then close 1008; a 401 gives `unauthorized`.
    for (pass, code) in [("nope", "bad_login"), ("401", "unauthorized")] {
        let mut c = ws_with(&server, "sid=bad", "acme").await;
        c.send(json!({"type": "auth", "data": {"pass": pass}}))
            .await;
        let e = c.recv_type("error").await;
        assert_eq!(e["code"], code, "{e}");
        assert_eq!(c.close_code(WAIT).await, Some(1008));
    }
    // A token on the upgrade is checked as before, without the hook.
    let before = backend.bodies("/connect").len();
    server.user("alice").await;
    assert_eq!(backend.bodies("/connect").len(), before);
}

#[tokio::test]
async fn subscribe_hook_allows_refuses_and_times_out() {
    let backend = Backend::start().await;
    let url = backend.url("/subscribe");
    let server = Server::with_env(&[
        ("SWITCHBOARD_PROXY_SUBSCRIBE_URL", &url),
        ("SWITCHBOARD_PROXY_SUBSCRIBE_ROOMS", "vip-*"),
        ("SWITCHBOARD_PROXY_TIMEOUT_MS", "500"),
    ]);
    let mut c = server.user("alice").await;
    let j = c.join("vip-ok").await;
    assert_eq!(j["type"], "room:joined", "{j}");
    let b = backend.bodies("/subscribe").pop().unwrap();
    assert_eq!(
        (b["user"].as_str(), b["room"].as_str()),
        (Some("alice"), Some("vip-ok")),
        "{b}"
    );

    c.send(json!({"type": "room:join", "room": "vip-no", "id": "n"}))
        .await;
    let e = c.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("not_a_vip"), Some("n")),
        "{e}"
    );
    assert_eq!(e["message"], "VIP only");

    // Slow backend: `unavailable` within the timeout, and the session carries on.
    c.send(json!({"type": "room:join", "room": "vip-slow", "id": "s"}))
        .await;
    let e = c.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("unavailable"), Some("s")),
        "{e}"
    );
    c.send(json!({"type": "ping", "id": "p"})).await;
    assert_eq!(c.recv_type("pong").await["id"], "p");
    // Rooms outside the pattern do not ask.
    let n = backend.bodies("/subscribe").len();
    c.join("general").await;
    assert_eq!(backend.bodies("/subscribe").len(), n);
}

#[tokio::test]
async fn publish_hook_accepts_refuses_rewrites_in_order() {
    let backend = Backend::start().await;
    let url = backend.url("/publish");
    let server = Server::with_env(&[
        ("SWITCHBOARD_PROXY_PUBLISH_URL", &url),
        ("SWITCHBOARD_PROXY_PUBLISH_ROOMS", "mod-*"),
        ("SWITCHBOARD_PROXY_TIMEOUT_MS", "500"),
    ]);
    let mut c = server.user("alice").await;
    c.join("mod-1").await;
    // Sent back to back: each is decided before the next is read, so the
    // room numbers them in the order sent (an ack waits for its write, so a
    // later refusal may overtake an earlier ack: matched by id).
    let texts = ["hi", "spam", "rewrite", "slow", "after"];
    for (i, t) in texts.iter().enumerate() {
        c.send(json!({"type": "message:send", "room": "mod-1", "data": {"text": t}, "id": format!("m{i}")}))
            .await;
    }
    let mut verdicts = std::collections::BTreeMap::new();
    let mut received = Vec::new();
    while verdicts.len() < texts.len() {
        let f = c.recv().await;
        match f["type"].as_str() {
            Some("ack") => {
                verdicts.insert(f["id"].as_str().unwrap().to_string(), f["seq"].to_string())
            }
            Some("error") => verdicts.insert(
                f["ref"].as_str().unwrap().to_string(),
                f["code"].as_str().unwrap().to_string(),
            ),
            Some("message:receive") => {
                received.push(f["data"].clone());
                None
            }
            _ => None,
        };
    }
    let expected: std::collections::BTreeMap<String, String> = [
        ("m0", "1"),
        ("m1", "spam"),
        ("m2", "2"),
        ("m3", "unavailable"),
        ("m4", "3"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(verdicts, expected);
    while received.len() < 3 {
        received.push(c.recv_type("message:receive").await["data"].clone());
    }
    assert_eq!(
        received,
        vec![
            json!({"text": "hi"}),
            json!({"text": "clean", "by": "alice"}),
            json!({"text": "after"})
        ]
    );
    // History holds only what the backend accepted, numbered without gaps.
    let (s, h) = server
        .get_json("/api/rooms/mod-1/history", Some(&token("alice", json!({}))))
        .await;
    assert_eq!(s, 200, "{h}");
    let kept: Vec<(Value, Value)> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["seq"].clone(), m["data"].clone()))
        .collect();
    assert_eq!(
        kept,
        vec![
            (json!(1), json!({"text": "hi"})),
            (json!(2), json!({"text": "clean", "by": "alice"})),
            (json!(3), json!({"text": "after"})),
        ]
    );
    let b = backend.bodies("/publish").pop().unwrap();
    assert_eq!(
        (b["room"].as_str(), b["user"].as_str()),
        (Some("mod-1"), Some("alice")),
        "{b}"
    );
    // Admin and service senders are trusted, as for read-only rooms: neither
    // a service's own connection nor a REST publish asks (a user's "spam"
    // was refused above).
    let service = json!({"role": "service"});
    let mut svc = server.user_with("svc", service.clone()).await;
    svc.join("mod-1").await;
    svc.send(
        json!({"type": "message:send", "room": "mod-1", "data": {"text": "spam"}, "id": "sv"}),
    )
    .await;
    assert_eq!(svc.recv_type("ack").await["seq"], 4);
    let (s, body) = server
        .http(
            "POST",
            "/api/publish",
            Some(&token("svc", service)),
            Some(r#"{"room":"mod-1","data":{"text":"spam"}}"#),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    for seq in [4, 5] {
        let m = c.recv_type("message:receive").await;
        assert_eq!(
            (m["seq"].clone(), m["data"].clone()),
            (json!(seq), json!({"text": "spam"}))
        );
    }
    // Other rooms do not ask; the metrics count the calls.
    c.join("free").await;
    c.send(json!({"type": "message:send", "room": "free", "data": 1, "id": "f"}))
        .await;
    assert_eq!(c.recv_type("ack").await["id"], "f");
    assert_eq!(backend.bodies("/publish").len(), 5);
    assert_eq!(
        server
            .metric("switchboard_proxy_calls_total{hook=\"publish\"}")
            .await,
        5.0
    );
    assert_eq!(
        server
            .metric("switchboard_proxy_refused_total{hook=\"publish\"}")
            .await,
        1.0
    );
    assert_eq!(
        server
            .metric("switchboard_proxy_errors_total{hook=\"publish\"}")
            .await,
        1.0
    );
}

/// Every frame that arrives within `d`.
async fn frames_for(c: &mut Client, d: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + d;
    let mut v = Vec::new();
    while let Some(f) = c
        .try_recv(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        v.push(f);
    }
    v
}

/// `(user, info)` of each member listed.
fn infos(members: &Value) -> Vec<(Value, Value)> {
    let list = members.as_array().expect("a member list");
    list.iter()
        .map(|m| (m["user"].clone(), m["info"].clone()))
        .collect()
}

fn seat(user: &str) -> Value {
    json!({"tier": "gold", "seat": user})
}

#[tokio::test]
async fn subscribe_hook_info_is_shown_in_member_lists() {
    let backend = Backend::start().await;
    let url = backend.url("/subscribe");
    let server = Server::with_env(&[
        ("SWITCHBOARD_PROXY_SUBSCRIBE_URL", &url),
        ("SWITCHBOARD_PROXY_SUBSCRIBE_ROOMS", "vip-*"),
    ]);
    let mut alice = server.user("alice").await;
    let j = alice.join("vip-lounge").await;
    assert_eq!(infos(&j["members"]), vec![(json!("alice"), seat("alice"))]);
    let mut bob = server.user("bob").await;
    let j = bob.join("vip-lounge").await;
    let both = vec![(json!("alice"), seat("alice")), (json!("bob"), seat("bob"))];
    assert_eq!(infos(&j["members"]), both, "{j}");
    let mj = alice.recv_type("room:member_joined").await;
    assert_eq!(mj["user"]["info"], seat("bob"), "{mj}");
    let admin = token("adm", json!({"role": "admin"}));
    let (s, p) = server
        .get_json("/api/rooms/vip-lounge/presence", Some(&admin))
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(infos(&p["members"]), both, "{p}");
    // Bob's second session, also through the hook: still one entry each.
    let mut bob2 = server.user("bob").await;
    let j = bob2.join("vip-lounge").await;
    assert_eq!(infos(&j["members"]), both, "{j}");
    bob2.close().await;
    // A room the hook does not cover lists no info.
    alice.join("lobby").await;
    let j = bob.join("lobby").await;
    assert_eq!(
        infos(&j["members"]),
        vec![(json!("alice"), Value::Null), (json!("bob"), Value::Null)],
        "{j}"
    );
    // The leave carries it too.
    bob.send(json!({"type": "room:leave", "room": "vip-lounge"}))
        .await;
    let ml = loop {
        let f = alice.recv_type("room:member_left").await;
        if f["room"] == "vip-lounge" {
            break f;
        }
    };
    assert_eq!(ml["user"]["info"], seat("bob"), "{ml}");
    // An info past 4096 bytes is not shown: the join is `unavailable`.
    alice
        .send(json!({"type": "room:join", "room": "vip-big", "id": "b"}))
        .await;
    let e = alice.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("unavailable"), Some("b")),
        "{e}"
    );
}

/// Two nodes through a real Redis: a member's info reaches the other
/// node's member lists, and a presence-off room tells nothing there either.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn info_and_presence_off_across_nodes() {
    let backend = Backend::start().await;
    let url = backend.url("/subscribe");
    let redis = crate::cluster::redis::Redis::start();
    let nodes = redis.nodes(
        2,
        &[
            ("SWITCHBOARD_PROXY_SUBSCRIBE_URL", &url),
            ("SWITCHBOARD_PROXY_SUBSCRIBE_ROOMS", "vip-*"),
            (
                "SWITCHBOARD_ROOM_RULES",
                r#"[{"rooms":"quiet-*","presence":false}]"#,
            ),
        ],
    );
    let mut alice = nodes[0].user("alice").await;
    alice.join("vip-x").await;
    alice.join("quiet-x").await;
    // Alice's join reaches Redis just after her `room:joined`: node b reads
    // the room from Redis once it lists her (bounded), so bob's join does.
    let admin = token("adm", json!({"role": "admin"}));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, p) = nodes[1]
            .get_json("/api/rooms/vip-x/presence", Some(&admin))
            .await;
        if infos(&p["members"]) == vec![(json!("alice"), seat("alice"))] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{p}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut bob = nodes[1].user("bob").await;
    let j = bob.join("vip-x").await;
    let both = vec![(json!("alice"), seat("alice")), (json!("bob"), seat("bob"))];
    assert_eq!(infos(&j["members"]), both, "{j}");
    let mj = alice.recv_type("room:member_joined").await;
    assert_eq!(mj["user"]["info"], seat("bob"), "{mj}");
    let (_, p) = nodes[0]
        .get_json("/api/rooms/vip-x/presence", Some(&admin))
        .await;
    assert_eq!(infos(&p["members"]), both, "{p}");

    let j = bob.join("quiet-x").await;
    assert_eq!(j["members"], json!([]), "{j}");
    // Bob's status goes to both rooms: alice hears it in vip-x only.
    bob.send(json!({"type": "presence:update", "status": "busy"}))
        .await;
    let mut seen = Vec::new();
    loop {
        let f = alice.recv().await;
        let done = f["type"] == "presence:update" && f["room"] == "vip-x";
        seen.push(f);
        if done {
            break;
        }
    }
    bob.send(json!({"type": "room:leave", "room": "quiet-x", "id": "l"}))
        .await;
    assert_eq!(bob.recv_type("room:left").await["id"], "l");
    seen.extend(frames_for(&mut alice, Duration::from_millis(800)).await);
    let told: Vec<&Value> = seen.iter().filter(|f| f["room"] == "quiet-x").collect();
    assert!(told.is_empty(), "{told:?}");
    for node in &nodes {
        let (_, p) = node
            .get_json("/api/rooms/quiet-x/presence", Some(&admin))
            .await;
        assert_eq!(p["members"], json!([]), "{p}");
    }
}

#[tokio::test]
async fn backend_down_gives_unavailable() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/publish");
    let server = Server::with_env(&[("SWITCHBOARD_PROXY_PUBLISH_URL", &url)]);
    let mut c = server.user("alice").await;
    c.join("general").await;
    c.send(json!({"type": "message:send", "room": "general", "data": 1, "id": "d"}))
        .await;
    let e = c.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("unavailable"), Some("d")),
        "{e}"
    );
    c.send(json!({"type": "ping", "id": "p"})).await;
    assert_eq!(c.recv_type("pong").await["id"], "p");
}

#[tokio::test]
async fn room_rules_read_only_and_presence_off() {
    let rules =
        r#"[{"rooms":"news-*","read_only":true},{"rooms":"quiet-*","presence":false,"history":0}]"#;
    let server = Server::with_env(&[("SWITCHBOARD_ROOM_RULES", rules)]);
    let mut alice = server.user("alice").await;
    alice.join("news-1").await;
    alice
        .send(json!({"type": "message:send", "room": "news-1", "data": 1, "id": "n"}))
        .await;
    let e = alice.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("forbidden"), Some("n")),
        "{e}"
    );
    // A service publishes there, over REST and over its own connection.
    let service = token("svc", json!({"role": "service"}));
    let (s, body) = server
        .http(
            "POST",
            "/api/publish",
            Some(&service),
            Some(r#"{"room":"news-1","data":"extra"}"#),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(alice.recv_type("message:receive").await["data"], "extra");
    let mut svc = server.user_with("svc", json!({"role": "service"})).await;
    svc.join("news-1").await;
    svc.send(json!({"type": "message:send", "room": "news-1", "data": 2, "id": "s"}))
        .await;
    assert_eq!(svc.recv_type("ack").await["id"], "s");

    // Presence off (also with Redis): no member list, and neither joins,
    // sessions, status changes nor leaves are told; messages flow.
    alice.join("quiet-1").await;
    let mut bob = server.user("bob").await;
    let j = bob.join("quiet-1").await;
    assert_eq!(j["members"], json!([]), "{j}");
    bob.send(json!({"type": "presence:update", "status": "busy"}))
        .await;
    bob.send(json!({"type": "message:send", "room": "quiet-1", "data": "hi", "id": "q"}))
        .await;
    assert_eq!(bob.recv_type("ack").await["id"], "q");
    let mut seen = Vec::new();
    loop {
        let f = alice.recv().await;
        let done = f["type"] == "message:receive";
        seen.push(f);
        if done {
            break;
        }
    }
    bob.send(json!({"type": "room:leave", "room": "quiet-1", "id": "l"}))
        .await;
    assert_eq!(bob.recv_type("room:left").await["id"], "l");
    seen.extend(frames_for(&mut alice, Duration::from_millis(500)).await);
    let told: Vec<&Value> = seen
        .iter()
        .filter(|f| f["room"] == "quiet-1" && f["type"] != "message:receive")
        .collect();
    assert!(told.is_empty(), "{told:?}");
    let admin = token("adm", json!({"role": "admin"}));
    let (s, p) = server
        .get_json("/api/rooms/quiet-1/presence", Some(&admin))
        .await;
    assert_eq!((s, &p["members"]), (200, &json!([])), "{p}");
    // A rule that is not valid JSON stops the server at start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env(
            "SWITCHBOARD_ROOM_RULES",
            "[{\"rooms\":\"a\",\"readonly\":true}]",
        )
        .env("PORT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SWITCHBOARD_ROOM_RULES"));
}
