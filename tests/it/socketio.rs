//! Socket.IO at `/socket.io/`, from the wire: Engine.IO's handshake,
//! long-polling and WebSocket, its refusals (unknown sid, bad transport or
//! version, payload over maxPayload, unreadable packets), the pong
//! deadline, and a Socket.IO connection in a room with a native client.

use crate::common::{raw_upgrade, token, Server, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const EIO: &str = "/socket.io/?EIO=4&transport=polling";

/// A new long-polling connection: its sid and handshake.
async fn handshake(s: &Server) -> (String, Value) {
    let r = s.request("GET", EIO, &[], None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = String::from_utf8(r.body).expect("utf-8");
    let open: Value = serde_json::from_str(body.strip_prefix('0').expect("open packet")).unwrap();
    (open["sid"].as_str().expect("sid").to_string(), open)
}

async fn get(s: &Server, sid: &str) -> (u16, String) {
    s.http("GET", &format!("{EIO}&sid={sid}"), None, None).await
}

async fn post(s: &Server, sid: &str, body: &str) -> (u16, String) {
    s.http("POST", &format!("{EIO}&sid={sid}"), None, Some(body))
        .await
}

/// A long-polling client's packets not yet looked at, per sid.
#[derive(Default)]
struct Received(std::collections::HashMap<String, std::collections::VecDeque<String>>);

impl Received {
    /// The first packet starting with `prefix`, polling (bounded) until one
    /// arrives; packets before it are dropped, pings answered.
    async fn next(&mut self, s: &Server, sid: &str, prefix: &str) -> String {
        for _ in 0..20 {
            let q = self.0.entry(sid.to_string()).or_default();
            while let Some(p) = q.pop_front() {
                if p.starts_with(prefix) {
                    return p;
                }
            }
            let (status, body) = get(s, sid).await;
            assert_eq!(status, 200, "{body}");
            if body.split('\x1e').any(|p| p == "2") {
                post(s, sid, "3").await;
            }
            q.extend(body.split('\x1e').map(str::to_string));
        }
        panic!("no packet starting with {prefix}");
    }
}

/// Polls until a packet starting with `prefix` arrives (bounded); returns it.
async fn poll_for(s: &Server, sid: &str, prefix: &str) -> String {
    Received::default().next(s, sid, prefix).await
}

fn eio_error(body: &str) -> i64 {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    v["code"].as_i64().expect("code")
}

#[tokio::test]
async fn refusals_follow_the_reference_server() {
    let s = Server::start();
    let (status, body) = get(&s, "no-such-sid").await;
    assert_eq!(
        (status, body.as_str()),
        (400, r#"{"code":1,"message":"Session ID unknown"}"#)
    );
    assert_eq!(post(&s, "no-such-sid", "4x").await.0, 400);
    let (status, body) = s
        .http("GET", "/socket.io/?EIO=4&transport=flash", None, None)
        .await;
    assert_eq!((status, eio_error(&body)), (400, 0));
    let (status, body) = s.http("GET", "/socket.io/?EIO=4", None, None).await;
    assert_eq!((status, eio_error(&body)), (400, 0));
    let (status, body) = s
        .http("GET", "/socket.io/?EIO=3&transport=polling", None, None)
        .await;
    assert_eq!((status, eio_error(&body)), (400, 5));
    assert_eq!(
        body,
        r#"{"code":5,"message":"Unsupported protocol version"}"#
    );
    let (status, body) = s.http("POST", EIO, None, Some("40")).await;
    assert_eq!((status, eio_error(&body)), (400, 2));
    // A WebSocket is asked for with an upgrade.
    let (status, body) = s
        .http("GET", "/socket.io/?EIO=4&transport=websocket", None, None)
        .await;
    assert_eq!((status, eio_error(&body)), (400, 3));
    let refused = |path: &'static str| {
        let addr = s.addr.clone();
        async move {
            let (mut sock, head) = raw_upgrade(&addr, path).await;
            let mut body = String::new();
            tokio::time::timeout(WAIT, sock.read_to_string(&mut body))
                .await
                .unwrap()
                .unwrap();
            (head, body)
        }
    };
    let (head, body) = refused("/socket.io/?EIO=4&transport=websocket&sid=forged").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert_eq!(body, r#"{"code":1,"message":"Session ID unknown"}"#);
    let (head, body) = refused("/socket.io/?EIO=5&transport=websocket").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert_eq!(eio_error(&body), 5);
}

#[tokio::test]
async fn polling_connects_joins_and_meets_a_native_client() {
    let s = Server::start();
    let (sid, open) = handshake(&s).await;
    let mut rx = Received::default();
    assert_eq!(open["upgrades"], json!(["websocket"]));
    assert!(open["pingInterval"].as_u64().is_some() && open["maxPayload"].as_u64().is_some());
    let t = token("sio-ann", json!({}));
    assert_eq!(
        post(&s, &sid, &format!(r#"40{{"token":"{t}"}}"#)).await,
        (200, "ok".into())
    );
    let connect = rx.next(&s, &sid, "40").await;
    let answer: Value = serde_json::from_str(&connect[2..]).unwrap();
    assert!(answer["sid"].is_string(), "{connect}");
    // A user (not a guest) gets a pid for connection state recovery.
    assert_eq!(answer["pid"].as_str().map(str::len), Some(32), "{connect}");
    let hello = rx.next(&s, &sid, r#"42["connected""#).await;
    assert!(hello.contains(r#""user":"sio-ann""#), "{hello}");

    // Two packets in one POST: a join and a send, both with acks.
    let body = "420[\"room:join\",{\"room\":\"sio-it\"}]\x1e421[\"message:send\",{\"room\":\"sio-it\",\"data\":{\"n\":1}}]";
    assert_eq!(post(&s, &sid, body).await.0, 200);
    let joined = rx.next(&s, &sid, "430[").await;
    assert!(joined.contains(r#""type":"room:joined""#), "{joined}");
    let ack = rx.next(&s, &sid, "431[").await;
    let ack: Value = serde_json::from_str(&ack[3..]).unwrap();
    assert_eq!(
        (ack[0]["type"].clone(), ack[0]["seq"].clone()),
        (json!("ack"), json!(1))
    );

    let mut bob = s.user("sio-bob").await;
    bob.join("sio-it").await;
    bob.send(json!({"type":"message:send","room":"sio-it","data":{"from":"bob"}}))
        .await;
    let m = rx.next(&s, &sid, r#"42["message:receive""#).await;
    let m: Value = serde_json::from_str(&m[2..]).unwrap();
    assert_eq!(m[1]["from"]["user"], "sio-bob");
    assert_eq!(m[1]["seq"], 2);

    // Leaving the namespace ends the session; bob sees the user go.
    assert_eq!(post(&s, &sid, "41").await.0, 200);
    let left = bob.recv_type("room:member_left").await;
    assert_eq!(left["user"]["user"], "sio-ann");
}

#[tokio::test]
async fn a_bad_token_and_other_namespaces_are_connect_errors() {
    let s = Server::start();
    let (sid, _) = handshake(&s).await;
    post(&s, &sid, r#"40{"token":"garbage"}"#).await;
    let err = poll_for(&s, &sid, "44").await;
    let v: Value = serde_json::from_str(&err[2..]).unwrap();
    assert_eq!(v["data"]["code"], "unauthorized", "{err}");
    assert!(
        v["message"].as_str().unwrap().contains("invalid token"),
        "{err}"
    );
    post(&s, &sid, r#"40/admin,{}"#).await;
    let err = poll_for(&s, &sid, "44/admin,").await;
    assert_eq!(
        err,
        r#"44/admin,{"data":{"code":"not_found"},"message":"Invalid namespace"}"#
    );
}

#[tokio::test]
async fn a_post_over_max_payload_is_refused_and_ends_the_connection() {
    let s = Server::with_env(&[
        ("SWITCHBOARD_MAX_FRAME", "512"),
        ("SWITCHBOARD_HARD_MAX_FRAME", "1024"),
    ]);
    let (sid, open) = handshake(&s).await;
    assert_eq!(open["maxPayload"], 1024);
    let big = format!("4{}", "x".repeat(2000));
    assert_eq!(post(&s, &sid, &big).await.0, 413);
    // The connection is over: as on the reference server, its sid is
    // unknown at once (the client takes the 400 for the end).
    let (status, body) = get(&s, &sid).await;
    assert_eq!((status, eio_error(&body)), (400, 1));

    // Over WebSocket: a message over maxPayload closes with 1009.
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", s.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("ws");
    let open = ws.next().await.unwrap().unwrap();
    assert!(open.to_text().unwrap().starts_with("0{"));
    ws.send(Message::Text(big)).await.unwrap();
    let code = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(c)))) => return Some(u16::from(c.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(code, Some(1009));
}

#[tokio::test]
async fn unreadable_packets_are_refused_without_harm() {
    let s = Server::start();
    for bad in [
        "9",
        "4\u{1e}",
        "bnot-base64!",
        "0{}",
        "42[\"a\"",
        "2[]",
        "40[]",
    ] {
        let (sid, _) = handshake(&s).await;
        let (status, _) = post(&s, &sid, bad).await;
        if status == 200 {
            // A Socket.IO parse error closes the connection after the POST.
            let (status, body) = get(&s, &sid).await;
            assert!(
                status == 400 || body.ends_with('1'),
                "{bad:?}: {status} {body}"
            );
        } else {
            assert_eq!(status, 400, "{bad:?}");
        }
    }
    // Invalid UTF-8 in a body.
    let (sid, _) = handshake(&s).await;
    let mut sock = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let head = format!(
        "POST {EIO}&sid={sid} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(b"4\xff\xfe").await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, sock.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    assert!(
        raw.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let (status, _) = s.http("GET", "/healthz", None, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn no_pong_within_the_deadline_closes_the_connection() {
    let s = Server::with_env(&[
        ("SWITCHBOARD_PING_INTERVAL_MS", "200"),
        ("SWITCHBOARD_PONG_TIMEOUT_MS", "300"),
    ]);
    let (quiet, _) = handshake(&s).await;
    let (alive, _) = handshake(&s).await;
    // `alive` answers every ping; `quiet` polls but never answers.
    assert_eq!(poll_for(&s, &quiet, "2").await, "2");
    let mut quiet_closed = false;
    for _ in 0..20 {
        let (status, body) = get(&s, &alive).await;
        assert_eq!(status, 200, "the answering connection was closed");
        if body.split('\x1e').any(|p| p == "2") {
            assert_eq!(post(&s, &alive, "3").await.0, 200);
        }
        let (status, body) = get(&s, &quiet).await;
        if status == 400 || body.split('\x1e').any(|p| p == "1") {
            quiet_closed = true;
            break;
        }
    }
    assert!(quiet_closed, "the silent connection was never closed");
}

#[tokio::test]
async fn websocket_directly_and_as_an_upgrade() {
    let s = Server::start();
    // Directly: no upgrades offered; CONNECT as a guest, an event with an ack.
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", s.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("ws");
    let open = ws.next().await.unwrap().unwrap();
    assert!(
        open.to_text().unwrap().contains(r#""upgrades":[]"#),
        "{open:?}"
    );
    ws.send(Message::Text(r#"40{"name":"Wanda"}"#.into()))
        .await
        .unwrap();
    ws.send(Message::Text(
        r#"427["room:join",{"room":"general"}]"#.into(),
    ))
    .await
    .unwrap();
    let mut got_ack = false;
    for _ in 0..10 {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if m.to_text()
            .unwrap_or("")
            .starts_with("437[{\"type\":\"room:joined\"")
        {
            got_ack = true;
            break;
        }
    }
    assert!(got_ack, "no ack for the join");

    // As an upgrade: probe, the pending poll is released with a noop, `5`.
    let (sid, _) = handshake(&s).await;
    let addr = s.addr.clone();
    let path = format!("{EIO}&sid={sid}");
    let pending =
        tokio::spawn(async move { crate::common::Server::request_at(&addr, &path).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket&sid={sid}",
        s.addr
    );
    let (mut up, _) = tokio_tungstenite::connect_async(&url).await.expect("ws");
    up.send(Message::Text("2probe".into())).await.unwrap();
    let m = tokio::time::timeout(WAIT, up.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m.to_text().unwrap(), "3probe");
    let released = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(String::from_utf8_lossy(&released.body), "6");
    up.send(Message::Text("5".into())).await.unwrap();
    up.send(Message::Text("40".into())).await.unwrap();
    let m = tokio::time::timeout(WAIT, up.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(m.to_text().unwrap().starts_with("40{\"sid\""), "{m:?}");
    // Polling is over for this connection.
    assert_eq!(get(&s, &sid).await.0, 400);
    assert_eq!(post(&s, &sid, "3").await.0, 400);
}
