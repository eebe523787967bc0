//! `room:watch` from the wire: a service session gets every message of
//! every room matching its pattern (rooms started later too, REST
//! publishes too), once even when patterns overlap, without being a
//! member; users may not watch; the pattern limit and bad patterns.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);

pub async fn watch(c: &mut Client, pattern: &str) -> Value {
    c.send(json!({"type": "room:watch", "pattern": pattern, "id": pattern}))
        .await;
    let w = c.recv_type("room:watching").await;
    assert_eq!(
        (&w["pattern"], &w["id"]),
        (&json!(pattern), &json!(pattern)),
        "{w}"
    );
    w
}

pub fn send(room: &str, text: &str) -> Value {
    json!({"type": "message:send", "room": room, "data": {"text": text}})
}

/// The next `message:receive`: its room, seq and text.
pub async fn next_message(c: &mut Client) -> (String, u64, String) {
    let m = c.recv_type("message:receive").await;
    (
        m["room"].as_str().unwrap().to_string(),
        m["seq"].as_u64().unwrap(),
        m["data"]["text"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_service_watches_every_matching_room_without_joining() {
    let s = Server::start();
    let mut bot = s.user_with("bot", json!({"role": "service"})).await;
    watch(&mut bot, "team-*").await;
    // Overlapping patterns: still one copy per message.
    watch(&mut bot, "team-a*").await;

    // A room that did not exist when the watch began.
    let mut alice = s.user("alice").await;
    let j = alice.join("team-a").await;
    let listed: Vec<&Value> = j["members"].as_array().unwrap().iter().collect();
    assert!(
        listed.iter().all(|m| m["user"] != "bot"),
        "a watcher is not a member: {j}"
    );
    alice.join("lobby").await;
    alice.send(send("lobby", "not watched")).await;
    alice.send(send("team-a", "one")).await;
    alice.send(send("team-a", "two")).await;
    assert_eq!(
        next_message(&mut bot).await,
        ("team-a".into(), 1, "one".into())
    );
    assert_eq!(
        next_message(&mut bot).await,
        ("team-a".into(), 2, "two".into())
    );

    // A REST publish into another matching room.
    let svc = token("backend", json!({"role": "service"}));
    let body = json!({"room": "team-b", "data": {"text": "rest"}}).to_string();
    let (st, r) = s
        .http("POST", "/api/publish", Some(&svc), Some(&body))
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        next_message(&mut bot).await,
        ("team-b".into(), 1, "rest".into())
    );

    // Unwatching both patterns stops it.
    for p in ["team-*", "team-a*"] {
        bot.send(json!({"type": "room:unwatch", "pattern": p, "id": "u"}))
            .await;
        let u = bot.recv_type("room:unwatched").await;
        assert_eq!(u["pattern"], p, "{u}");
    }
    alice.send(send("team-a", "three")).await;
    bot.expect_no("message:receive", QUIET).await;
    bot.send(json!({"type": "room:unwatch", "pattern": "team-*", "id": "u2"}))
        .await;
    let e = bot.recv_type("error").await;
    assert_eq!((&e["code"], &e["ref"]), (&json!("not_found"), &json!("u2")));
}

#[tokio::test]
async fn users_may_not_watch_and_patterns_are_bounded() {
    let s = Server::with_env(&[("SWITCHBOARD_WATCH_PATTERNS", "2")]);
    let mut alice = s.user("alice").await;
    alice
        .send(json!({"type": "room:watch", "pattern": "team-*", "id": "w"}))
        .await;
    let e = alice.recv_type("error").await;
    assert_eq!(
        (&e["code"], &e["ref"]),
        (&json!("forbidden"), &json!("w")),
        "{e}"
    );

    let mut admin = s.user_with("root", json!({"role": "admin"})).await;
    watch(&mut admin, "a*").await;
    watch(&mut admin, "b*").await;
    // The same pattern again is no new one.
    watch(&mut admin, "b*").await;
    admin
        .send(json!({"type": "room:watch", "pattern": "c*", "id": "c"}))
        .await;
    let e = admin.recv_type("error").await;
    assert_eq!(e["code"], "too_many_rooms", "{e}");
    for (f, want) in [
        (
            json!({"type": "room:watch", "pattern": "user:*"}),
            "invalid_room",
        ),
        (
            json!({"type": "room:watch", "pattern": "a b"}),
            "invalid_room",
        ),
        (json!({"type": "room:watch", "pattern": ""}), "invalid_room"),
        (json!({"type": "room:watch"}), "bad_request"),
        (json!({"type": "room:watch", "pattern": 5}), "bad_request"),
        (
            json!({"type": "room:watch", "pattern": "a", "room": "a"}),
            "bad_request",
        ),
        (
            json!({"type": "room:watchall", "pattern": "a"}),
            "unknown_type",
        ),
    ] {
        admin.send(f.clone()).await;
        let e = admin.recv_type("error").await;
        assert_eq!(e["code"], want, "{f} → {e}");
    }
    // A personal room is never delivered, whatever the pattern.
    let mut sam = s.user_with("sam", json!({"role": "service"})).await;
    watch(&mut sam, "*").await;
    alice.send(send("user:alice", "mine")).await;
    alice.join("open").await;
    alice.send(send("open", "public")).await;
    assert_eq!(
        next_message(&mut sam).await,
        ("open".into(), 1, "public".into())
    );
}
