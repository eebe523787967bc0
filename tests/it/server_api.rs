//! The server API on users: close a user's sessions, make them join or
//! leave a room, read their presence (docs/PROTOCOL.md, "Server API").

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

pub fn service() -> String {
    token("backend", json!({"role": "service"}))
}

pub async fn call(s: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    let (st, b) = s
        .http(method, path, Some(&service()), body.as_deref())
        .await;
    let v = serde_json::from_str(&b).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {b}"));
    (st, v)
}

#[tokio::test]
async fn a_service_closes_every_session_of_a_user_and_no_one_else() {
    let s = Server::start();
    let (mut a1, mut a2) = (s.user("alice").await, s.user("alice").await);
    let mut bob = s.user("bob").await;
    bob.join("lobby").await;
    let (st, r) = call(
        &s,
        "POST",
        "/api/users/alice/disconnect",
        Some(json!({"code": 4100, "reason": "account suspended"})),
    )
    .await;
    assert_eq!((st, &r), (200, &json!({"user": "alice", "online": true})));
    for a in [&mut a1, &mut a2] {
        let c = a.close_frame(WAIT).await;
        assert_eq!(c, Some((4100, "account suspended".into())));
    }
    // Bob carries on.
    bob.send(json!({"type": "message:send", "room": "lobby", "data": 1, "id": "m"}))
        .await;
    assert_eq!(bob.recv_type("ack").await["id"], "m");
    // No session left: nothing to close. Without a body: code 4010.
    let (st, r) = call(&s, "POST", "/api/users/alice/disconnect", None).await;
    assert_eq!((st, r["online"].as_bool()), (200, Some(false)));
    let (st, _) = call(&s, "POST", "/api/users/bob/disconnect", None).await;
    assert_eq!(st, 200);
    assert_eq!(
        bob.close_frame(WAIT).await,
        Some((4010, "disconnected by the server".into()))
    );
}

#[tokio::test]
async fn the_server_api_refuses_bad_requests_and_unprivileged_callers() {
    let s = Server::start();
    let mut alice = s.user("alice").await;
    let user = token("mallory", json!({}));
    for (method, path) in [
        ("POST", "/api/users/alice/disconnect"),
        ("PUT", "/api/users/alice/rooms/lobby"),
        ("DELETE", "/api/users/alice/rooms/lobby"),
        ("GET", "/api/users/alice/presence"),
    ] {
        let (st, _) = s.http(method, path, None, None).await;
        assert_eq!(st, 401, "{method} {path} without a token");
        let (st, b) = s.http(method, path, Some(&user), None).await;
        assert_eq!(st, 403, "{method} {path} as a user: {b}");
    }
    for (method, path, body, code) in [
        (
            "POST",
            "/api/users/alice/disconnect",
            json!({"code": 1000}),
            "bad_request",
        ),
        (
            "POST",
            "/api/users/alice/disconnect",
            json!({"code": 4008}),
            "bad_request",
        ),
        (
            "POST",
            "/api/users/alice/disconnect",
            json!({"reason": "x".repeat(124)}),
            "bad_request",
        ),
        (
            "POST",
            "/api/users/alice/disconnect",
            json!({"why": 1}),
            "bad_request",
        ),
        (
            "POST",
            "/api/users/alice/disconnect",
            json!({"code": "4100"}),
            "bad_request",
        ),
        (
            "POST",
            "/api/users/a%20b/disconnect",
            json!({}),
            "bad_request",
        ),
        (
            "PUT",
            "/api/users/alice/rooms/monitor",
            json!({}),
            "invalid_room",
        ),
        (
            "PUT",
            "/api/users/alice/rooms/user:bob",
            json!({}),
            "invalid_room",
        ),
        (
            "PUT",
            "/api/users/alice/rooms/bad%20room",
            json!({}),
            "invalid_room",
        ),
        (
            "DELETE",
            "/api/users/alice/rooms/user:alice",
            json!({}),
            "invalid_room",
        ),
        ("GET", "/api/users/%00/presence", json!({}), "bad_request"),
    ] {
        let (st, r) = call(&s, method, path, Some(body.clone())).await;
        assert_eq!(
            (st, r["error"]["code"].as_str()),
            (400, Some(code)),
            "{method} {path} {body}: {r}"
        );
    }
    let (st, _) = s
        .http(
            "POST",
            "/api/users/alice/disconnect",
            Some(&service()),
            Some("{not json"),
        )
        .await;
    assert_eq!(st, 400);
    // Nothing above touched alice's session.
    alice.join("lobby").await;
}

#[tokio::test]
async fn a_service_puts_a_users_sessions_in_a_room_and_takes_them_out() {
    let s = Server::start();
    // Alice's token allows only `lobby`: the backend's word is enough.
    let mut alice = s.user_with("alice", json!({"rooms": ["lobby"]})).await;
    let mut bob = s.user("bob").await;
    bob.join("staff").await;
    alice
        .send(json!({"type": "room:join", "room": "staff", "id": "j"}))
        .await;
    assert_eq!(alice.recv_type("error").await["code"], "forbidden");

    let (st, r) = call(&s, "PUT", "/api/users/alice/rooms/staff", None).await;
    assert_eq!(
        (st, &r),
        (
            200,
            &json!({"user": "alice", "room": "staff", "online": true})
        )
    );
    let j = alice.recv_type("room:joined").await;
    assert_eq!(j["room"], "staff", "{j}");
    assert!(j.get("id").is_none(), "unsolicited: {j}");
    assert_eq!(
        bob.recv_type("room:member_joined").await["user"]["user"],
        "alice"
    );
    bob.send(json!({"type": "message:send", "room": "staff", "data": "hi"}))
        .await;
    assert_eq!(alice.recv_type("message:receive").await["data"], "hi");
    assert_eq!(
        bob.recv_type("message:receive").await["data"],
        "hi",
        "his own"
    );
    alice
        .send(json!({"type": "message:send", "room": "staff", "data": "hello", "id": "m"}))
        .await;
    assert_eq!(alice.recv_type("ack").await["id"], "m");
    assert_eq!(bob.recv_type("message:receive").await["data"], "hello");

    let (st, r) = call(&s, "GET", "/api/users/alice/presence", None).await;
    assert_eq!(
        (st, &r),
        (
            200,
            &json!({"user": "alice", "status": "online", "rooms": ["staff"]})
        )
    );

    let (st, _) = call(&s, "DELETE", "/api/users/alice/rooms/staff", None).await;
    assert_eq!(st, 200);
    assert_eq!(alice.recv_type("room:left").await["room"], "staff");
    assert_eq!(
        bob.recv_type("room:member_left").await["user"]["user"],
        "alice"
    );
    bob.send(json!({"type": "message:send", "room": "staff", "data": "gone?"}))
        .await;
    alice
        .expect_no("message:receive", Duration::from_millis(300))
        .await;
    alice
        .send(json!({"type": "message:send", "room": "staff", "data": 1, "id": "n"}))
        .await;
    assert_eq!(alice.recv_type("error").await["code"], "not_member");

    // A user with no session: nothing happens, and they are offline.
    let (st, r) = call(&s, "PUT", "/api/users/carol/rooms/staff", None).await;
    assert_eq!((st, r["online"].as_bool()), (200, Some(false)));
    let (_, r) = call(&s, "GET", "/api/users/carol/presence", None).await;
    assert_eq!(
        r,
        json!({"user": "carol", "status": "offline", "rooms": []})
    );
}
