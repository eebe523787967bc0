//! Notifications: `POST /api/notify`, live `notification:new` and
//! `notification:count`, listing and marking read, across sessions and restarts.

use crate::common::{token, Client, Server};
use serde_json::{json, Value};
use std::time::Duration;

fn service() -> String {
    token("backend", json!({"role": "service"}))
}

async fn notify(s: &Server, body: Value) -> (u16, Value) {
    let (st, b) = s
        .http(
            "POST",
            "/api/notify",
            Some(&service()),
            Some(&body.to_string()),
        )
        .await;
    (
        st,
        serde_json::from_str(&b).unwrap_or_else(|_| panic!("not JSON: {b}")),
    )
}

/// Connects `sub` and reads until `connected` and the personal `room:joined`
/// have come; returns the client and every other frame seen meanwhile.
async fn connect(s: &Server, sub: &str) -> (Client, Vec<Value>) {
    let mut c = s.ws(&format!("/ws?token={}", token(sub, json!({})))).await;
    let (mut greeted, mut joined, mut other) = (false, false, Vec::new());
    while !(greeted && joined) {
        let f = c.recv().await;
        match f["type"].as_str() {
            Some("connected") => greeted = true,
            Some("room:joined") => joined = true,
            _ => other.push(f),
        }
    }
    (c, other)
}

/// The unread count a fresh connection of `sub` is told (0: no frame).
async fn unread_on_connect(s: &Server, sub: &str) -> (Client, u64) {
    let (mut c, early) = connect(s, sub).await;
    if let Some(f) = early.iter().find(|f| f["type"] == "notification:count") {
        return (c, f["unread"].as_u64().unwrap());
    }
    let mut next = c.try_recv(Duration::from_millis(700)).await;
    // (With several nodes, this session may hear of the user's earlier one
    // joining the personal room: a set add, see PROTOCOL.md.)
    while next
        .as_ref()
        .is_some_and(|f| f["type"] == "room:session_joined")
    {
        next = c.try_recv(Duration::from_millis(700)).await;
    }
    match next {
        Some(f) if f["type"] == "notification:count" => {
            let n = f["unread"].as_u64().unwrap();
            (c, n)
        }
        Some(f) => panic!("unexpected {f}"),
        None => (c, 0),
    }
}

async fn list(c: &mut Client, query: Value) -> Value {
    let mut f = json!({"type": "notification:list", "id": "l"});
    for (k, v) in query.as_object().unwrap() {
        f[k] = v.clone();
    }
    c.send(f).await;
    let p = c.recv_type("notification:page").await;
    assert_eq!(p["id"], "l");
    p
}

fn ids(page: &Value) -> Vec<u64> {
    page["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn notifications_are_pushed_to_every_session_then_counted() {
    let s = Server::start();
    let (mut a1, _) = connect(&s, "alice").await;
    let (mut a2, _) = connect(&s, "alice").await;
    let (st, r) = notify(
        &s,
        json!({"to": ["alice", "bob", "alice"], "data": {"title": "hi"}}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let list = r["notifications"].as_array().unwrap();
    assert_eq!(list.len(), 2, "recipients are deduplicated: {r}");
    assert_eq!(list[0]["user"], "alice");
    let id = list[0]["id"].as_u64().unwrap();
    for c in [&mut a1, &mut a2] {
        // (On one node a1 was told of a2 joining their personal room first.)
        let n = c.recv_type("notification:new").await;
        assert_eq!(n["notification"]["id"], id);
        assert_eq!(n["notification"]["data"], json!({"title": "hi"}));
        assert_eq!(
            n["notification"]["from"],
            json!({"user": "backend", "name": "backend name"})
        );
        assert_eq!(n["notification"]["read"], false);
        assert!(n["notification"]["ts"].as_u64().unwrap() > 0);
        // With Redis, a2's `room:session_joined` comes on the room's
        // channel and the count on the user's: either may be first.
        let c = c.recv_type("notification:count").await;
        assert_eq!(c, json!({"type": "notification:count", "unread": 1}));
    }
    // bob was offline: he is told his count when he connects.
    let (_b, unread) = unread_on_connect(&s, "bob").await;
    assert_eq!(unread, 1);
    let (_c, unread) = unread_on_connect(&s, "carol").await;
    assert_eq!(unread, 0, "no notifications, no count frame");
}

#[tokio::test]
async fn notify_is_for_services_and_checks_its_input() {
    let s = Server::start();
    let body = json!({"to": "alice", "data": 1}).to_string();
    let (st, _) = s.http("POST", "/api/notify", None, Some(&body)).await;
    assert_eq!(st, 401);
    let user = token("mallory", json!({}));
    let (st, b) = s
        .http("POST", "/api/notify", Some(&user), Some(&body))
        .await;
    assert_eq!(st, 403, "{b}");
    for bad in [
        json!({"to": [], "data": 1}),
        json!({"to": "not valid", "data": 1}),
        json!({"to": "alice"}),
        json!({"to": "alice", "data": 1, "extra": true}),
        json!({"to": 5, "data": 1}),
        json!({"to": (0..1001).map(|i| format!("u{i}")).collect::<Vec<_>>(), "data": 1}),
    ] {
        let (st, r) = notify(&s, bad.clone()).await;
        assert_eq!(
            (st, r["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {r}"
        );
    }
    let deep = format!(
        r#"{{"to":"alice","data":{}}}"#,
        "[".repeat(65) + &"]".repeat(65)
    );
    let (st, _) = s
        .http("POST", "/api/notify", Some(&service()), Some(&deep))
        .await;
    assert_eq!(st, 400);
    let (mut a, _) = connect(&s, "alice").await;
    a.expect_no("notification:new", Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn list_pages_and_marking_read_keep_the_count_right() {
    let mut s = Server::start();
    let mut sent = Vec::new();
    for i in 0..5 {
        let (_, r) = notify(&s, json!({"to": "alice", "data": {"n": i}})).await;
        sent.push(r["notifications"][0]["id"].as_u64().unwrap());
    }
    let (mut a1, unread) = unread_on_connect(&s, "alice").await;
    assert_eq!(unread, 5);
    let (mut a2, _) = unread_on_connect(&s, "alice").await;

    let p = list(&mut a1, json!({"limit": 2})).await;
    assert_eq!(ids(&p), vec![sent[4], sent[3]], "newest first");
    assert_eq!(
        (p["more"].as_bool(), p["unread"].as_u64()),
        (Some(true), Some(5))
    );
    assert_eq!(p["notifications"][0]["data"], json!({"n": 4}));
    let p = list(&mut a1, json!({"before": sent[3]})).await;
    assert_eq!(ids(&p), vec![sent[2], sent[1], sent[0]]);
    assert_eq!(p["more"], false);

    a1.send(json!({"type": "notification:read", "ids": [sent[1], sent[2]], "id": "r1"}))
        .await;
    // The `ack` and the count may come in either order (with Redis the
    // count goes out on the user's channel from the marking script itself).
    let (mut acked, mut counted) = (false, false);
    while !(acked && counted) {
        let f = a1.recv().await;
        match f["type"].as_str() {
            Some("ack") => acked = f["id"] == "r1",
            Some("notification:count") => counted = f["unread"] == 3,
            _ => {}
        }
    }
    assert_eq!(a2.recv_type("notification:count").await["unread"], 3);
    let p = list(&mut a2, json!({"unread": true})).await;
    assert_eq!(ids(&p), vec![sent[4], sent[3], sent[0]]);

    // Another user cannot mark alice's notifications.
    let (mut m, _) = connect(&s, "mallory").await;
    m.send(json!({"type": "notification:read", "all": true}))
        .await;
    assert_eq!(m.recv_type("notification:count").await["unread"], 0);
    a1.expect_no("notification:count", Duration::from_millis(300))
        .await;

    drop((a1, a2, m));
    s.restart(false, &[]);
    let (mut a, unread) = unread_on_connect(&s, "alice").await;
    assert_eq!(unread, 3, "the count survives a restart");
    a.send(json!({"type": "notification:read", "all": true}))
        .await;
    assert_eq!(a.recv_type("notification:count").await["unread"], 0);
    let p = list(&mut a, json!({})).await;
    assert_eq!(ids(&p).len(), 5);
    assert!(p["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["read"] == true));
    let (_, r) = notify(&s, json!({"to": "alice", "data": "later"})).await;
    assert!(
        r["notifications"][0]["id"].as_u64().unwrap() > sent[4],
        "ids keep growing"
    );
    assert_eq!(
        a.recv_type("notification:new").await["notification"]["data"],
        "later"
    );
    assert_eq!(a.recv_type("notification:count").await["unread"], 1);
}

#[tokio::test]
async fn bad_notification_frames_get_errors() {
    let s = Server::start();
    let (mut a, _) = connect(&s, "alice").await;
    for (f, code) in [
        (
            json!({"type": "notification:read", "id": "x"}),
            "bad_request",
        ),
        (
            json!({"type": "notification:read", "ids": [], "id": "x"}),
            "bad_request",
        ),
        (
            json!({"type": "notification:list", "limit": 1000, "id": "x"}),
            "bad_request",
        ),
        (
            json!({"type": "notification:list", "room": "r", "id": "x"}),
            "bad_request",
        ),
    ] {
        a.send(f.clone()).await;
        let e = a.recv_type("error").await;
        assert_eq!(
            (e["code"].as_str(), e["ref"].as_str()),
            (Some(code), Some("x")),
            "{f}: {e}"
        );
    }
    a.send(json!({"type": "ping", "id": "alive"})).await;
    assert_eq!(a.recv_type("pong").await["id"], "alive");
}
