//! WebRTC signaling (`signal`) from the wire: relayed to exactly one session
//! that shares the room, over WebSocket, SSE and long-polling; session ids
//! in member lists; refusals with clear codes; the rate limit.

use crate::common::*;
use crate::fallback::{Poller, Sse};
use serde_json::{json, Value};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(400);

/// A user's WebSocket session and its id (from `connected`).
async fn session(s: &Server, sub: &str) -> (Client, String) {
    let t = token(sub, json!({}));
    let mut c = s.ws(&format!("/ws?token={t}")).await;
    let hello = c.greeted().await;
    let id = hello["session"].as_str().expect("session").to_string();
    (c, id)
}

fn signal(to: &str, room: &str, kind: &str, data: Value, id: &str) -> Value {
    json!({"type": "signal", "to": to, "room": room, "kind": kind, "data": data, "id": id})
}

/// The answer (`ack` or `error`) to the frame with `id`.
async fn answer(c: &mut Client, id: &str) -> Value {
    loop {
        let f = c.recv().await;
        if matches!(f["type"].as_str(), Some("ack" | "error")) && f["id"] == id
            || f["type"] == "error" && f["ref"] == id
        {
            return f;
        }
    }
}

fn code(f: &Value) -> &str {
    assert_eq!(f["type"], "error", "{f}");
    f["code"].as_str().unwrap()
}

/// The sessions listed for `user` in a `room:joined`.
fn sessions_of(joined: &Value, user: &str) -> Vec<String> {
    let m = joined["members"].as_array().unwrap();
    let m = m.iter().find(|m| m["user"] == user).expect("member");
    let mut v: Vec<String> = m["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_signal_reaches_exactly_the_session_named_and_member_lists_name_sessions() {
    let s = Server::start();
    let (mut a1, a1_id) = session(&s, "alice").await;
    let (mut a2, a2_id) = session(&s, "alice").await;
    let (mut b, b_id) = session(&s, "bob").await;
    a1.join("call").await;
    b.join("call").await;
    assert_eq!(a1.recv_type("room:session_joined").await["session"], b_id);
    // A second session of a member: told as a session, not a member.
    let j = a2.join("call").await;
    let mut alice = vec![a1_id.clone(), a2_id.clone()];
    alice.sort();
    assert_eq!(sessions_of(&j, "alice"), alice, "{j}");
    assert_eq!(sessions_of(&j, "bob"), vec![b_id.clone()], "{j}");
    // (With several nodes, one for a1 may come first: a set add.)
    let sj = loop {
        let sj = b.recv_type("room:session_joined").await;
        if sj["session"] != a1_id {
            break sj;
        }
    };
    assert_eq!(
        (&sj["user"], &sj["session"]),
        (&json!("alice"), &json!(a2_id)),
        "{sj}"
    );

    let offer = json!({"sdp": "v=0 offer", "type": "offer"});
    a1.send(signal(&b_id, "call", "offer", offer.clone(), "o1"))
        .await;
    assert_eq!(answer(&mut a1, "o1").await["type"], "ack");
    let got = b.recv_type("signal").await;
    assert_eq!(got["room"], "call", "{got}");
    assert_eq!(got["from"]["user"], "alice", "{got}");
    assert_eq!(got["session"], a1_id, "{got}");
    assert_eq!(
        (&got["kind"], &got["data"]),
        (&json!("offer"), &offer),
        "{got}"
    );
    // The answer goes back to a1 only, not to alice's other session.
    b.send(signal(
        &a1_id,
        "call",
        "answer",
        json!({"sdp": "v=0 answer"}),
        "x1",
    ))
    .await;
    assert_eq!(answer(&mut b, "x1").await["type"], "ack");
    let back = a1.recv_type("signal").await;
    assert_eq!(
        (&back["kind"], &back["session"]),
        (&json!("answer"), &json!(b_id))
    );
    b.send(json!({"type": "signal", "to": a1_id, "room": "call", "kind": "bye"}))
        .await;
    let bye = a1.recv_type("signal").await;
    assert_eq!(
        (&bye["kind"], &bye["data"]),
        (&json!("bye"), &Value::Null),
        "{bye}"
    );
    a2.expect_no("signal", QUIET).await;

    // Leaving is told per session, before the member leaves.
    a2.send(json!({"type": "room:leave", "room": "call"})).await;
    let sl = b.recv_type("room:session_left").await;
    assert_eq!(sl["session"], a2_id, "{sl}");
    a1.close().await;
    let sl = b.recv_type("room:session_left").await;
    assert_eq!(sl["session"], a1_id, "{sl}");
    let ml = b.recv_type("room:member_left").await;
    assert_eq!(ml["user"]["user"], "alice", "{ml}");
    // A session that left the room can no longer be signalled there.
    b.send(signal(
        &a2_id,
        "call",
        "ice",
        json!({"candidate": ""}),
        "x2",
    ))
    .await;
    assert_eq!(code(&answer(&mut b, "x2").await), "forbidden");
}

#[tokio::test]
async fn signals_are_refused_with_clear_codes_and_hostile_ones_harm_nothing() {
    let s = Server::start();
    let (mut a, a_id) = session(&s, "alice").await;
    let (mut b, b_id) = session(&s, "bob").await;
    let (mut c, c_id) = session(&s, "carol").await;
    a.join("call").await;
    b.join("call").await;
    c.join("other").await;
    let ice = json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"});
    // The target is not in the room; the sender is not in the room.
    a.send(signal(&c_id, "call", "ice", ice.clone(), "f1"))
        .await;
    assert_eq!(code(&answer(&mut a, "f1").await), "forbidden");
    a.send(signal(&c_id, "other", "ice", ice.clone(), "f2"))
        .await;
    assert_eq!(code(&answer(&mut a, "f2").await), "forbidden");
    // Unknown sessions, here and on a node that does not exist.
    a.send(signal("s999999", "call", "ice", ice.clone(), "n1"))
        .await;
    assert_eq!(code(&answer(&mut a, "n1").await), "not_found");
    a.send(signal("s1@no-such-node", "call", "ice", ice.clone(), "n2"))
        .await;
    assert_eq!(code(&answer(&mut a, "n2").await), "not_found");
    // Malformed ones.
    let big = "x".repeat(40 * 1024);
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let cases: Vec<(Value, &str)> = vec![
        (
            signal(&a_id, "call", "offer", json!(1), "m1"),
            "bad_request",
        ),
        (
            signal(&b_id, "call", "hello", json!(1), "m2"),
            "bad_request",
        ),
        (signal("bob", "call", "ice", json!(1), "m3"), "bad_request"),
        (
            signal(&b_id, "call", "offer", json!(big), "m4"),
            "too_large",
        ),
        (
            signal(&b_id, "no room!", "ice", json!(1), "m5"),
            "invalid_room",
        ),
        (
            json!({"type": "signal", "to": b_id, "room": "call", "kind": "offer", "id": "m6"}),
            "bad_request",
        ),
        (
            json!({"type": "signal", "to": 5, "room": "call", "kind": "ice", "data": 1, "id": "m7"}),
            "bad_request",
        ),
        (
            json!({"type": "signal", "to": b_id, "room": "call", "kind": "ice", "data": 1, "seq": 1, "id": "m8"}),
            "bad_request",
        ),
        (
            json!({"type": "signal", "to": b_id, "room": "call", "kind": "ice", "data": serde_json::from_str::<Value>(&deep).unwrap(), "id": "m9"}),
            "bad_request",
        ),
    ];
    for (frame, want) in cases {
        let id = frame["id"].as_str().unwrap().to_string();
        a.send(frame).await;
        assert_eq!(code(&answer(&mut a, &id).await), want, "{id}");
    }
    a.send_text(
        r#"{"type":"signal","to":"s1","room":"call","kind":"ice","data":1e99999,"id":"m10"}"#,
    )
    .await;
    assert_eq!(code(&answer(&mut a, "m10").await), "bad_request");
    // None of it reached anyone, and the server is well.
    b.expect_no("signal", QUIET).await;
    c.expect_no("signal", Duration::from_millis(50)).await;
    a.send(json!({"type": "ping", "id": "p"})).await;
    assert_eq!(a.recv_type("pong").await["id"], "p");
}

#[tokio::test]
async fn signals_are_rate_limited_per_connection() {
    let s = Server::with_env(&[
        ("SWITCHBOARD_SIGNAL_RATE", "60"),
        ("SWITCHBOARD_SIGNAL_BURST", "3"),
    ]);
    let (mut a, _) = session(&s, "alice").await;
    let (mut b, b_id) = session(&s, "bob").await;
    a.join("call").await;
    b.join("call").await;
    for i in 0..3 {
        let id = format!("ok{i}");
        a.send(signal(&b_id, "call", "ice", json!(i), &id)).await;
        assert_eq!(answer(&mut a, &id).await["type"], "ack");
    }
    a.send(signal(&b_id, "call", "ice", json!(3), "over")).await;
    let e = answer(&mut a, "over").await;
    assert_eq!(code(&e), "rate_limited");
    assert!(e["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{e}");
    for i in 0..3 {
        assert_eq!(b.recv_type("signal").await["data"], i);
    }
    b.expect_no("signal", QUIET).await;
}

#[tokio::test]
async fn sse_and_long_polling_sessions_signal_and_are_signalled() {
    let s = Server::start();
    let (mut ws, ws_id) = session(&s, "alice").await;
    ws.join("call").await;
    let mut sse = Sse::connect(&s, &format!("/sse?token={}", token("bob", json!({})))).await;
    let sse_id = {
        // `connected` was read by `connect`; the session id is in the member list.
        sse.send(&s, json!({"type": "room:join", "room": "call"}))
            .await;
        let j = sse.joined("call").await;
        sessions_of(&j.data, "bob")[0].clone()
    };
    let mut poll = Poller::open(&s, &format!("token={}", token("carol", json!({})))).await;
    assert_eq!(
        poll.send(&s, json!({"type": "room:join", "room": "call"}))
            .await,
        202
    );
    let j = poll.joined(&s, "call").await;
    let poll_id = sessions_of(&j, "carol")[0].clone();

    ws.send(signal(
        &sse_id,
        "call",
        "offer",
        json!({"sdp": "to sse"}),
        "w1",
    ))
    .await;
    assert_eq!(answer(&mut ws, "w1").await["type"], "ack");
    let got = sse.recv_type("signal").await;
    assert_eq!(
        (&got.data["session"], &got.data["data"]["sdp"]),
        (&json!(ws_id), &json!("to sse"))
    );

    let status = sse
        .send(
            &s,
            signal(&poll_id, "call", "offer", json!({"sdp": "to poll"}), "s1"),
        )
        .await;
    assert_eq!(status, 202);
    let (got, _) = poll.recv_type(&s, "signal").await;
    assert_eq!(
        (&got["session"], &got["data"]["sdp"]),
        (&json!(sse_id), &json!("to poll"))
    );

    poll.send(
        &s,
        signal(&ws_id, "call", "answer", json!({"sdp": "to ws"}), "p1"),
    )
    .await;
    let got = ws.recv_type("signal").await;
    assert_eq!(
        (&got["session"], &got["data"]["sdp"]),
        (&json!(poll_id), &json!("to ws"))
    );
    // A refusal reaches an HTTP sender as an error frame too.
    poll.send(&s, signal("s999999", "call", "bye", Value::Null, "p2"))
        .await;
    let (e, _) = poll.recv_type(&s, "error").await;
    assert_eq!(
        (&e["code"], &e["ref"]),
        (&json!("not_found"), &json!("p2")),
        "{e}"
    );
}
