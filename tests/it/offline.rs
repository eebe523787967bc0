//! Direct messages to a user with no session: stored, bounded, delivered in
//! order on the next connect (after a restart too), and told what was dropped.

use crate::common::{token, Client, Server};
use serde_json::{json, Value};
use std::time::Duration;

/// Sends `n` direct messages to `to`; every one must be acked as stored.
async fn dm_offline(a: &mut Client, to: &str, n: usize) {
    let frames = (0..n)
        .map(|i| json!({"type": "direct:send", "to": to, "data": {"n": i}, "id": format!("d{i}")}))
        .collect();
    for (i, ack) in a.burst(frames, n).await.iter().enumerate() {
        assert_eq!(
            ack,
            &json!({"type": "ack", "id": format!("d{i}"), "offline": true})
        );
    }
}

/// Connects `sub`; returns the client and the `direct:offline` header and
/// the `direct:receive` frames that follow it (none if nothing was stored).
async fn connect_and_drain(s: &Server, sub: &str) -> (Client, Option<Value>, Vec<Value>) {
    let mut c = s.ws(&format!("/ws?token={}", token(sub, json!({})))).await;
    let (mut header, mut dms) = (None, Vec::new());
    let mut seen = 0;
    loop {
        let Some(f) = c.try_recv(Duration::from_millis(1500)).await else {
            break;
        };
        match f["type"].as_str() {
            Some("connected" | "room:joined") => seen += 1,
            Some("direct:offline") => header = Some(f),
            Some("direct:receive") => dms.push(f),
            // With Redis its own session may be announced again (a set add).
            Some("room:session_joined") if f["user"] == sub => {}
            _ => panic!("unexpected {f}"),
        }
        let want = header
            .as_ref()
            .map_or(0, |h| h["count"].as_u64().unwrap() as usize);
        if seen == 2 && header.is_some() && dms.len() == want {
            break;
        }
    }
    assert_eq!(seen, 2, "connected and room:joined");
    (c, header, dms)
}

/// Closes `c` and waits (bounded) until the server has no session of `user`.
async fn go_offline(s: &Server, c: Client, user: &str) {
    c.close().await;
    let svc = token("backend", json!({"role": "service"}));
    let path = format!("/api/rooms/user:{user}/presence");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let (_, p) = s.get_json(&path, Some(&svc)).await;
        if p["members"].as_array().is_some_and(|m| m.is_empty()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{user} still has a session");
}

fn numbers(dms: &[Value]) -> Vec<u64> {
    dms.iter()
        .map(|d| d["data"]["n"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn messages_for_an_offline_user_wait_for_the_next_connect_even_across_a_restart() {
    let mut s = Server::start();
    let mut a = s.user("alice").await;
    dm_offline(&mut a, "bob", 3).await;
    drop(a);
    s.restart(false, &[]);

    let (mut b, header, dms) = connect_and_drain(&s, "bob").await;
    assert_eq!(
        header,
        Some(json!({"type": "direct:offline", "count": 3, "dropped": 0}))
    );
    assert_eq!(numbers(&dms), vec![0, 1, 2], "in order");
    assert_eq!(
        dms[0]["from"],
        json!({"user": "alice", "name": "alice name"})
    );
    assert_eq!(dms[0]["id"], "d0");
    // Delivered once: a second connection gets nothing more.
    let (_b2, header, dms) = connect_and_drain(&s, "bob").await;
    assert_eq!((header, dms.len()), (None, 0));
    b.expect_no("direct:receive", Duration::from_millis(200))
        .await;

    // Live again once bob is online.
    let mut a = s.user("alice").await;
    a.send(json!({"type": "direct:send", "to": "bob", "data": {"n": 9}, "id": "live"}))
        .await;
    assert_eq!(b.recv_type("direct:receive").await["data"]["n"], 9);
    let ack = a.recv_type("ack").await;
    assert_eq!(ack, json!({"type": "ack", "id": "live"}));
}

#[tokio::test]
async fn the_bound_drops_the_oldest_and_says_how_many() {
    let s = Server::with_env(&[("SWITCHBOARD_OFFLINE_DMS", "3")]);
    let mut a = s.user("alice").await;
    dm_offline(&mut a, "bob", 5).await;
    let (_b, header, dms) = connect_and_drain(&s, "bob").await;
    assert_eq!(
        header,
        Some(json!({"type": "direct:offline", "count": 3, "dropped": 2}))
    );
    assert_eq!(numbers(&dms), vec![2, 3, 4]);
    go_offline(&s, _b, "bob").await;
    // Told once: the next time bob is offline, the count starts again.
    dm_offline(&mut a, "bob", 1).await;
    let (_b, header, dms) = connect_and_drain(&s, "bob").await;
    assert_eq!(
        header,
        Some(json!({"type": "direct:offline", "count": 1, "dropped": 0}))
    );
    assert_eq!(numbers(&dms), vec![0]);
}

#[tokio::test]
async fn guests_and_a_zero_bound_still_get_user_offline() {
    let s = Server::with_env(&[("SWITCHBOARD_OFFLINE_DMS", "0")]);
    let mut a = s.user("alice").await;
    a.send(json!({"type": "direct:send", "to": "bob", "data": 1, "id": "z"}))
        .await;
    let e = a.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("user_offline"), Some("z"))
    );

    let s = Server::start();
    let mut a = s.user("alice").await;
    // Guest ids are never issued twice: nothing is kept for them.
    a.send(json!({"type": "direct:send", "to": "guest-0123456789abcdef", "data": 1, "id": "g"}))
        .await;
    let e = a.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("user_offline"), Some("g"))
    );
}
