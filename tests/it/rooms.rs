//! Join, leave, members, messages to rooms, acks, direct messages.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn join_lists_members_and_announces_newcomers() {
    let s = Server::start();
    let mut a = s.user("alice").await;
    let j = a.join("general").await;
    assert_eq!(j["seq"], 0);
    assert!(j["epoch"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(
        j.get("recovered").is_none(),
        "no since, nothing to recover: {j}"
    );
    assert_eq!(
        without_sessions(&j["members"]),
        json!([{"user": "alice", "name": "alice name", "status": "online"}])
    );

    let mut b = s.user("bob").await;
    let j = b.join("general").await;
    let users: Vec<&str> = j["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["alice", "bob"]);
    let ev = a.recv_type("room:member_joined").await;
    assert_eq!(ev["room"], "general");
    assert_eq!(ev["user"]["user"], "bob");

    b.send(json!({"type": "room:leave", "room": "general", "id": "l1"}))
        .await;
    let left = b.recv_type("room:left").await;
    assert_eq!(
        (left["room"].as_str(), left["id"].as_str()),
        (Some("general"), Some("l1"))
    );
    let ev = a.recv_type("room:member_left").await;
    assert_eq!(ev["user"]["user"], "bob");

    // After leaving, sending to the room is refused and the connection lives on.
    b.send(json!({"type": "message:send", "room": "general", "data": 1, "id": "x"}))
        .await;
    let e = b.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("not_member"), Some("x"))
    );
    b.send(json!({"type": "ping"})).await;
    assert_eq!(b.recv_type("pong").await["type"], "pong");
}

#[tokio::test]
async fn a_user_with_two_sessions_is_one_member() {
    let s = Server::start();
    let mut a = s.user("alice").await;
    a.join("general").await;
    let mut b1 = s.user("bob").await;
    let mut b2 = s.user("bob").await;
    b1.join("general").await;
    a.recv_type("room:member_joined").await;
    let j = b2.join("general").await;
    assert_eq!(j["members"].as_array().unwrap().len(), 2, "{j}");
    a.expect_no("room:member_joined", Duration::from_millis(300))
        .await;
    b1.close().await;
    a.expect_no("room:member_left", Duration::from_millis(300))
        .await;
    b2.close().await;
    assert_eq!(a.recv_type("room:member_left").await["user"]["user"], "bob");
}

#[tokio::test]
async fn messages_reach_every_member_once_in_order_with_acks() {
    let s = Server::start();
    let mut clients = Vec::new();
    for u in ["u1", "u2", "u3"] {
        let mut c = s.user(u).await;
        c.join("general").await;
        clients.push(c);
    }
    const N: u64 = 50;
    for i in 0..N {
        clients[0].send(json!({"type": "message:send", "room": "general", "data": {"n": i}, "id": format!("c{i}")})).await;
    }
    for (k, c) in clients.iter_mut().enumerate() {
        let mut acks = 0;
        let mut got = Vec::new();
        while got.len() < N as usize || (k == 0 && acks < N) {
            let f = c.recv().await;
            match f["type"].as_str().unwrap() {
                "message:receive" => {
                    assert_eq!(f["room"], "general");
                    assert_eq!(f["from"], json!({"user": "u1", "name": "u1 name"}));
                    assert!(f["ts"].as_u64().unwrap() > 1_600_000_000_000);
                    got.push((
                        f["seq"].as_u64().unwrap(),
                        f["data"]["n"].as_u64().unwrap(),
                        f["id"].clone(),
                    ));
                }
                "ack" => {
                    assert_eq!(k, 0, "only the sender gets acks");
                    assert_eq!(f["id"], format!("c{acks}"));
                    assert_eq!(f["seq"], acks + 1);
                    acks += 1;
                }
                _ => {}
            }
        }
        let expected: Vec<_> = (0..N).map(|i| (i + 1, i, json!(format!("c{i}")))).collect();
        assert_eq!(got, expected, "client {k}");
        c.expect_no("message:receive", Duration::from_millis(200))
            .await;
    }
}

#[tokio::test]
async fn direct_messages_reach_every_session_of_the_user() {
    let s = Server::start();
    let mut a = s.user("alice").await;
    let mut b1 = s.user("bob").await;
    let mut b2 = s.user("bob").await;
    a.send(json!({"type": "direct:send", "to": "bob", "data": {"text": "hi"}, "id": "d1"}))
        .await;
    for b in [&mut b1, &mut b2] {
        let d = b.recv_type("direct:receive").await;
        assert_eq!(d["from"], json!({"user": "alice", "name": "alice name"}));
        assert_eq!(d["data"], json!({"text": "hi"}));
        assert_eq!(d["id"], "d1");
    }
    let ack = a.recv_type("ack").await;
    assert_eq!(ack["id"], "d1");
    assert!(ack.get("seq").is_none());

    // A user with no session: stored for later (tests/it/offline.rs), acked as such.
    a.send(json!({"type": "direct:send", "to": "nobody", "data": 1, "id": "d2"}))
        .await;
    let ack = a.recv_type("ack").await;
    assert_eq!(ack, json!({"type": "ack", "id": "d2", "offline": true}));
    b1.expect_no("direct:receive", Duration::from_millis(200))
        .await;
}

#[tokio::test]
async fn personal_room_is_private_and_reachable_by_service_publish() {
    let s = Server::start();
    let mut a = s.user("alice").await;
    let mut b = s.user("bob").await;
    b.send(json!({"type": "room:join", "room": "user:alice", "id": "j"}))
        .await;
    let e = b.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("forbidden"), Some("j"))
    );

    let svc = token("backend", json!({"role": "service"}));
    let (st, body) = s
        .http(
            "POST",
            "/api/publish",
            Some(&svc),
            Some(r#"{"room":"user:alice","data":{"note":"for alice"}}"#),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let m = a.recv_type("message:receive").await;
    assert_eq!(
        (m["room"].as_str(), m["seq"].as_u64()),
        (Some("user:alice"), Some(1))
    );
    assert_eq!(m["from"]["user"], "backend");
    b.expect_no("message:receive", Duration::from_millis(200))
        .await;

    // An admin may join anyone's personal room.
    let mut admin = s.user_with("root", json!({"role": "admin"})).await;
    admin.join("user:alice").await;
}

/// REST publish and broadcast hold their `data` to the rules of
/// `message:send`: size, depth, escapes. Nothing refused reaches anyone.
#[tokio::test]
async fn rest_publish_and_broadcast_check_data_as_message_send_does() {
    let s = Server::with_env(&[("SWITCHBOARD_MAX_FRAME", "1000")]);
    let mut a = s.user("alice").await;
    a.join("news").await;
    let svc = token("backend", json!({"role": "service"}));
    let big = format!("\"{}\"", "x".repeat(1200));
    let deep = "[".repeat(65) + &"]".repeat(65);
    for (data, status, code) in [
        (big.as_str(), 413, "too_large"),
        (deep.as_str(), 400, "bad_request"),
        (r#""\ud800""#, 400, "bad_request"),
    ] {
        for body in [
            format!(r#"{{"room":"news","data":{data}}}"#),
            format!(r#"{{"data":{data}}}"#),
        ] {
            let path = if body.starts_with(r#"{"room""#) {
                "/api/publish"
            } else {
                "/api/broadcast"
            };
            let (st, r) = s.http("POST", path, Some(&svc), Some(&body)).await;
            let r: serde_json::Value = serde_json::from_str(&r).unwrap();
            assert_eq!(
                (st, r["error"]["code"].as_str()),
                (status, Some(code)),
                "{path} {r}"
            );
        }
    }
    a.expect_no("message:receive", Duration::from_millis(200))
        .await;
    a.expect_no("broadcast", Duration::from_millis(100)).await;
    // Within the limits it goes through, numbered 1: nothing refused took a seq.
    let (st, r) = s
        .http(
            "POST",
            "/api/publish",
            Some(&svc),
            Some(r#"{"room":"news","data":[[1]]}"#),
        )
        .await;
    assert_eq!((st, r.as_str()), (200, r#"{"room":"news","seq":1}"#));
}

#[tokio::test]
async fn rest_publish_and_broadcast() {
    let s = Server::start();
    let mut a = s.user("alice").await;
    a.join("news").await;
    let mut g = s.guest("gus").await;
    let svc = token("backend", json!({"role": "service"}));

    let (st, body) = s
        .http(
            "POST",
            "/api/publish",
            Some(&svc),
            Some(r#"{"room":"news","data":"extra","id":"p1"}"#),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        json!({"room": "news", "seq": 1})
    );
    let m = a.recv_type("message:receive").await;
    assert_eq!(
        (m["data"].as_str(), m["id"].as_str()),
        (Some("extra"), Some("p1"))
    );

    let (st, body) = s
        .http(
            "POST",
            "/api/broadcast",
            Some(&svc),
            Some(r#"{"data":{"motd":"hello all"}}"#),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["delivered"],
        2
    );
    for c in [&mut a, &mut g] {
        let b = c.recv_type("broadcast").await;
        assert_eq!(b["data"], json!({"motd": "hello all"}));
        assert_eq!(b["from"]["user"], "backend");
    }

    // Users and anonymous callers may not publish or broadcast.
    let user = token("alice", json!({}));
    assert_eq!(
        s.http(
            "POST",
            "/api/publish",
            Some(&user),
            Some(r#"{"room":"news","data":1}"#)
        )
        .await
        .0,
        403
    );
    assert_eq!(
        s.http("POST", "/api/broadcast", None, Some(r#"{"data":1}"#))
            .await
            .0,
        401
    );
    let (st, body) = s
        .http(
            "POST",
            "/api/publish",
            Some(&svc),
            Some(r#"{"room":"bad room","data":1}"#),
        )
        .await;
    assert_eq!(st, 400);
    assert!(body.contains("invalid_room"), "{body}");
    let (st, body) = s
        .http("POST", "/api/publish", Some(&svc), Some("{not json"))
        .await;
    assert_eq!(st, 400);
    assert!(body.contains("bad_json"), "{body}");
}

/// Frames sent right behind a `room:join`, without waiting for `room:joined`,
/// are all accepted in order: the session reads nothing more until the join is
/// done, so no buffer can overflow (a 256-frame buffer used to refuse some).
#[tokio::test]
async fn a_burst_right_after_join_is_accepted_in_order() {
    // Queues big enough for the burst (4000 frames back to the pump): this
    // test is about join ordering, not about slow consumers.
    let s = Server::with_env(&[("SWITCHBOARD_OUTBOX", "10000")]);
    let mut watcher = s.user("watcher").await;
    watcher.join("burst").await;
    let mut p = s.user_with("pump", json!({"role": "service"})).await;
    const N: u64 = 2000;
    let mut frames = vec![json!({"type": "room:join", "room": "burst"})];
    frames.extend((0..N).map(
        |i| json!({"type": "message:send", "room": "burst", "data": i, "id": format!("b{i}")}),
    ));
    let answers = p.burst(frames, N as usize).await;
    for (i, f) in answers.iter().enumerate() {
        assert_eq!(f["type"], "ack", "{f}");
        assert_eq!(f["id"], format!("b{i}"));
        assert_eq!(f["seq"], i as u64 + 1);
    }
    for i in 0..N {
        let m = watcher.recv_type("message:receive").await;
        assert_eq!(
            (m["seq"].as_u64(), m["data"].as_u64()),
            (Some(i + 1), Some(i))
        );
    }
}
