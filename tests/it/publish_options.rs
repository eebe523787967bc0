//! Publish options of `message:send` and `POST /api/publish`:
//! `exclude_self` and `idempotency_key`, seen from the wire.

use crate::common::{token, Client, Server};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(400);

fn send(room: &str, id: &str, key: Option<&str>) -> Value {
    let mut f = json!({"type": "message:send", "room": room, "data": {"id": id}, "id": id});
    if let Some(k) = key {
        f["idempotency_key"] = json!(k);
    }
    f
}

/// Sends one frame and returns its answer (`ack` or `error`).
async fn answer(c: &mut Client, frame: Value) -> Value {
    answer_seeing(c, frame).await.0
}

/// Sends one frame; returns its answer and the `message:receive` frames
/// that arrived before it.
async fn answer_seeing(c: &mut Client, frame: Value) -> (Value, Vec<Value>) {
    c.send(frame).await;
    let mut seen = Vec::new();
    loop {
        let f = c.recv().await;
        match f["type"].as_str() {
            Some("ack" | "error") => return (f, seen),
            Some("message:receive") => seen.push(f),
            _ => {}
        }
    }
}

/// The ack of a first (not duplicate) publish: its seq.
fn fresh(ack: &Value) -> u64 {
    assert_eq!(ack["type"], "ack", "{ack}");
    assert!(ack.get("duplicate").is_none(), "{ack}");
    ack["seq"].as_u64().expect("seq")
}

/// The ack of a duplicate: the first message's seq.
fn dup(ack: &Value) -> u64 {
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["duplicate"], true, "{ack}");
    ack["seq"].as_u64().expect("seq")
}

/// The `message:receive` frames of `room` that arrive within QUIET.
async fn received(c: &mut Client, room: &str) -> Vec<Value> {
    let mut got = Vec::new();
    while let Some(f) = c.try_recv(QUIET).await {
        if f["type"] == "message:receive" && f["room"] == room {
            got.push(f);
        }
    }
    got
}

/// How many messages the room's history holds, over REST.
async fn stored(s: &Server, room: &str) -> usize {
    let svc = token("backend", json!({"role": "service"}));
    let (st, h) = s
        .get_json(&format!("/api/rooms/{room}/history"), Some(&svc))
        .await;
    assert_eq!(st, 200, "{h}");
    h["messages"].as_array().expect("messages").len()
}

async fn rest_publish(s: &Server, body: Value) -> (u16, Value) {
    let svc = token("backend", json!({"role": "service"}));
    let (st, b) = s
        .http("POST", "/api/publish", Some(&svc), Some(&body.to_string()))
        .await;
    (st, serde_json::from_str(&b).unwrap_or(Value::Null))
}

#[tokio::test]
async fn exclude_self_skips_only_the_sending_connection() {
    let s = Server::start();
    let mut a1 = s.user("alice").await;
    let mut a2 = s.user("alice").await;
    let mut b = s.user("bob").await;
    for c in [&mut a1, &mut a2, &mut b] {
        c.join("r").await;
    }
    let mut f = send("r", "m1", None);
    f["exclude_self"] = json!(true);
    let (ack, mut own) = answer_seeing(&mut a1, f).await;
    let seq = fresh(&ack);
    own.extend(received(&mut a1, "r").await);
    assert!(own.is_empty(), "the sender got its own message: {own:?}");
    for c in [&mut a2, &mut b] {
        let got = received(c, "r").await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            (got[0]["seq"].as_u64(), &got[0]["data"]["id"]),
            (Some(seq), &json!("m1"))
        );
    }
    // Without the option the sender hears its message as before.
    let (ack, mut got) = answer_seeing(&mut a1, send("r", "m2", None)).await;
    let seq2 = fresh(&ack);
    got.extend(received(&mut a1, "r").await);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["seq"].as_u64(), Some(seq2));
    // It is in history like any message: a join with `since` replays it to the sender.
    let mut a3 = s.user("alice").await;
    a3.send(json!({"type": "room:join", "room": "r", "since": 0}))
        .await;
    let j = a3.recv_type("room:joined").await;
    assert_eq!(j["recovered"], true, "{j}");
    let replay = received(&mut a3, "r").await;
    let ids: Vec<&Value> = replay.iter().map(|m| &m["data"]["id"]).collect();
    assert_eq!(ids, vec![&json!("m1"), &json!("m2")]);
}

#[tokio::test]
async fn bad_options_are_refused_with_bad_request() {
    let s = Server::start();
    let mut a = s.user("alice").await;
    a.join("r").await;
    let long = "k".repeat(129);
    let cases = [
        json!({"type": "message:send", "room": "r", "data": 1, "id": "e1", "exclude_self": "yes"}),
        json!({"type": "message:send", "room": "r", "data": 1, "id": "e2", "idempotency_key": 7}),
        json!({"type": "message:send", "room": "r", "data": 1, "id": "e3", "idempotency_key": long}),
        json!({"type": "message:send", "room": "r", "data": 1, "id": "e4", "idempotency_key": ""}),
        json!({"type": "direct:send", "to": "bob", "data": 1, "id": "e5", "exclude_self": true}),
    ];
    for (i, f) in cases.into_iter().enumerate() {
        let e = answer(&mut a, f).await;
        assert_eq!(e["type"], "error", "{e}");
        assert_eq!(e["code"], "bad_request", "{e}");
        assert_eq!(e["ref"], format!("e{}", i + 1), "{e}");
    }
    // A 128-byte key is fine; nothing refused was delivered.
    let k = "k".repeat(128);
    assert_eq!(fresh(&answer(&mut a, send("r", "ok", Some(&k))).await), 1);
    assert_eq!(stored(&s, "r").await, 1);
    // Over REST: a bad key and exclude_self (there is no sending session) are 400.
    let (st, e) = rest_publish(&s, json!({"room": "r", "data": 1, "idempotency_key": long})).await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (400, &json!("bad_request")),
        "{e}"
    );
    let (st, e) = rest_publish(&s, json!({"room": "r", "data": 1, "exclude_self": true})).await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (400, &json!("bad_request")),
        "{e}"
    );
    assert_eq!(stored(&s, "r").await, 1);
}

#[tokio::test]
async fn a_repeated_key_is_acked_with_the_first_seq_and_delivered_once() {
    let s = Server::start();
    let mut a = s.user("alice").await;
    let mut b = s.user("bob").await;
    a.join("r").await;
    b.join("r").await;
    let first = fresh(&answer(&mut a, send("r", "m1", Some("k1"))).await);
    assert_eq!(
        dup(&answer(&mut a, send("r", "m2", Some("k1"))).await),
        first
    );
    let other = fresh(&answer(&mut a, send("r", "m3", Some("k2"))).await);
    assert_eq!(other, first + 1, "a duplicate takes no seq");
    let got = received(&mut b, "r").await;
    let ids: Vec<&Value> = got.iter().map(|m| &m["data"]["id"]).collect();
    assert_eq!(ids, vec![&json!("m1"), &json!("m3")]);
    assert_eq!(stored(&s, "r").await, 2);
    // The same key in another room is another key.
    a.join("r2").await;
    assert_eq!(fresh(&answer(&mut a, send("r2", "x", Some("k1"))).await), 1);
    assert_eq!(dup(&answer(&mut a, send("r2", "y", Some("k1"))).await), 1);
}

/// Keys outlive the connection, and the room going idle: with storage on
/// and off (then in memory only, in the idle room's history).
#[tokio::test]
async fn a_key_is_recognised_after_a_reconnect() {
    for db in [None, Some("off")] {
        let env: Vec<(&str, &str)> = db.iter().map(|v| ("SWITCHBOARD_DB", *v)).collect();
        let s = Server::with_env(&env);
        let mut a = s.user("alice").await;
        a.join("r").await;
        let first = fresh(&answer(&mut a, send("r", "m1", Some("retry-1"))).await);
        a.close().await;
        let mut a = s.user("alice").await;
        a.join("r").await;
        assert_eq!(
            dup(&answer(&mut a, send("r", "m1", Some("retry-1"))).await),
            first
        );
        assert_eq!(stored(&s, "r").await, 1, "storage {db:?}");
    }
}

#[tokio::test]
async fn a_key_is_recognised_after_a_clean_and_a_killed_restart() {
    let mut s = Server::start();
    let mut a = s.user("alice").await;
    a.join("r").await;
    let first = fresh(&answer(&mut a, send("r", "m1", Some("k1"))).await);
    drop(a);
    for kill in [false, true] {
        s.restart(kill, &[]);
        let mut a = s.user("alice").await;
        let mut b = s.user("bob").await;
        a.join("r").await;
        b.join("r").await;
        let again = answer(&mut a, send("r", "m1", Some("k1"))).await;
        assert_eq!(dup(&again), first, "after a restart (kill: {kill})");
        assert!(
            received(&mut b, "r").await.is_empty(),
            "delivered again (kill: {kill})"
        );
        assert_eq!(stored(&s, "r").await, 1, "stored again (kill: {kill})");
    }
    // A new key still gets a new seq after both restarts.
    let mut a = s.user("alice").await;
    a.join("r").await;
    assert!(fresh(&answer(&mut a, send("r", "m2", Some("k2"))).await) > first);
}

#[tokio::test]
async fn rest_publishes_share_the_room_keys() {
    let s = Server::start();
    let mut b = s.user("bob").await;
    b.join("r").await;
    let body = json!({"room": "r", "data": {"n": 1}, "idempotency_key": "svc-1"});
    let (st, r1) = rest_publish(&s, body.clone()).await;
    assert_eq!(st, 200, "{r1}");
    assert!(r1.get("duplicate").is_none(), "{r1}");
    let (st, r2) = rest_publish(&s, body).await;
    assert_eq!(
        (st, &r2["seq"], &r2["duplicate"]),
        (200, &r1["seq"], &json!(true))
    );
    // A session retrying with the key a service used gets the same answer.
    let seq = r1["seq"].as_u64().unwrap();
    let (ack, mut got) = answer_seeing(&mut b, send("r", "m", Some("svc-1"))).await;
    assert_eq!(dup(&ack), seq);
    got.extend(received(&mut b, "r").await);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(stored(&s, "r").await, 1);
}

/// Two connections send the same keys at once: each key is numbered,
/// delivered and stored once, and both senders are answered its seq.
#[tokio::test]
async fn racing_connections_with_the_same_key_publish_once() {
    let s = Server::start();
    let mut a = s.user("alice").await;
    let mut b = s.user("bob").await;
    let mut c = s.user("carol").await;
    for x in [&mut a, &mut b, &mut c] {
        x.join("r").await;
    }
    const N: usize = 30;
    let frames = |who: &str| -> Vec<Value> {
        (0..N)
            .map(|i| send("r", &format!("{who}{i}"), Some(&format!("k{i}"))))
            .collect()
    };
    let (fa, fb) = (frames("a"), frames("b"));
    let (ra, rb) = tokio::join!(a.burst(fa, N), b.burst(fb, N));
    let seq_of = |acks: &[Value]| -> HashMap<String, (u64, bool)> {
        acks.iter()
            .map(|k| {
                assert_eq!(k["type"], "ack", "{k}");
                let key = k["id"].as_str().unwrap()[1..].to_string();
                (key, (k["seq"].as_u64().unwrap(), k["duplicate"] == true))
            })
            .collect()
    };
    let (sa, sb) = (seq_of(&ra), seq_of(&rb));
    for i in 0..N {
        let (x, y) = (sa[&i.to_string()], sb[&i.to_string()]);
        assert_eq!(x.0, y.0, "key k{i}: {x:?} {y:?}");
        assert!(
            x.1 ^ y.1,
            "key k{i}: exactly one is the duplicate: {x:?} {y:?}"
        );
    }
    let got = received(&mut c, "r").await;
    assert_eq!(got.len(), N, "each key delivered once");
    assert_eq!(stored(&s, "r").await, N);
}

#[tokio::test]
async fn a_key_is_forgotten_after_the_window() {
    let mut s = Server::with_env(&[("SWITCHBOARD_IDEMPOTENCY_MS", "300")]);
    let mut a = s.user("alice").await;
    a.join("r").await;
    let first = fresh(&answer(&mut a, send("r", "m1", Some("k"))).await);
    assert_eq!(
        dup(&answer(&mut a, send("r", "m1", Some("k"))).await),
        first
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let second = fresh(&answer(&mut a, send("r", "m1", Some("k"))).await);
    assert_eq!(second, first + 1);
    // Nor is an expired key read back from the database at a restart.
    drop(a);
    tokio::time::sleep(Duration::from_millis(600)).await;
    s.restart(false, &[]);
    let mut a = s.user("alice").await;
    a.join("r").await;
    assert!(fresh(&answer(&mut a, send("r", "m1", Some("k"))).await) > second);
}
