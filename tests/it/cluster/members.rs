//! Members, typing, direct messages and broadcasts across nodes.

use super::redis::Redis;
use crate::common::*;
use serde_json::json;
use std::time::Duration;

fn users(joined: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = joined["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn member_lists_are_cluster_wide_and_a_user_leaves_with_their_last_session() {
    let redis = Redis::start();
    let nodes = redis.nodes(3, &[]);
    let mut alice_a = nodes[0].user("alice").await;
    alice_a.join("team").await;
    let mut bob = nodes[1].user("bob").await;
    let j = bob.join("team").await;
    assert_eq!(users(&j), vec!["alice", "bob"], "{j}");
    let mj = alice_a.recv_type("room:member_joined").await;
    assert_eq!(mj["user"]["user"], "bob", "{mj}");
    // Alice's second session, on another node: nobody is told she joined.
    let mut alice_c = nodes[2].user("alice").await;
    let j = alice_c.join("team").await;
    assert_eq!(users(&j), vec!["alice", "bob"], "{j}");
    bob.expect_no("room:member_joined", Duration::from_millis(400))
        .await;
    // Typing crosses nodes.
    alice_c
        .send(json!({"type": "typing:start", "room": "team"}))
        .await;
    let t = bob.recv_type("typing:update").await;
    assert_eq!(t["users"][0]["user"], "alice", "{t}");
    // She closes one session: still a member.
    alice_a.close().await;
    bob.expect_no("room:member_left", Duration::from_millis(500))
        .await;
    let (_, m) = nodes[1]
        .get_json(
            "/api/rooms/team/presence",
            Some(&token("svc", json!({"role": "admin"}))),
        )
        .await;
    assert!(m.to_string().contains("alice"), "{m}");
    // And the last one: now she has left.
    alice_c.close().await;
    let left = bob.recv_type("room:member_left").await;
    assert_eq!(left["user"]["user"], "alice", "{left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_nodes_members_leave_within_the_node_ttl() {
    let redis = Redis::start();
    let mut nodes = redis.nodes(2, &[("SWITCHBOARD_NODE_TTL_MS", "2000")]);
    let mut bob = nodes[0].user("bob").await;
    bob.join("ops").await;
    let mut carol = nodes[1].user("carol").await;
    carol.join("ops").await;
    bob.recv_type("room:member_joined").await;
    let killed = std::time::Instant::now();
    let mut dead = nodes.pop().unwrap();
    dead.restart(true, &[("SWITCHBOARD_NODE_ID", "b2")]);
    // Carol goes offline and leaves (in either order), each said once.
    let (mut offline, mut left) = (false, false);
    while !(offline && left) {
        let f = bob.recv().await;
        match f["type"].as_str() {
            Some("room:member_left") => {
                assert_eq!(f["user"]["user"], "carol", "{f}");
                assert!(!left, "twice: {f}");
                left = true;
            }
            Some("presence:update") if f["user"] == "carol" => {
                assert_eq!(f["status"], "offline", "{f}");
                assert!(!offline, "twice: {f}");
                offline = true;
            }
            _ => {}
        }
    }
    assert!(
        killed.elapsed() < Duration::from_secs(8),
        "{:?}",
        killed.elapsed()
    );
    drop(carol);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn direct_messages_broadcasts_and_notifications_are_shared_by_every_node() {
    let redis = Redis::start();
    let nodes = redis.nodes(3, &[]);
    let mut alice = nodes[0].user("alice").await;
    let mut bob_b = nodes[1].user("bob").await;
    let mut bob_c = nodes[2].user("bob").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    alice
        .send(json!({"type": "direct:send", "to": "bob", "data": {"hi": 1}, "id": "d1"}))
        .await;
    for b in [&mut bob_b, &mut bob_c] {
        let d = b.recv_type("direct:receive").await;
        assert_eq!(d["data"]["hi"], 1, "{d}");
        assert_eq!(d["from"]["user"], "alice", "{d}");
    }
    let ack = alice.recv_type("ack").await;
    assert_eq!(ack["id"], "d1", "{ack}");
    assert!(ack.get("offline").is_none(), "{ack}");
    // Dave has no session anywhere: stored, then delivered where he connects.
    alice
        .send(json!({"type": "direct:send", "to": "dave", "data": {"n": 1}, "id": "d2"}))
        .await;
    let ack = alice.recv_type("ack").await;
    assert_eq!(ack["offline"], true, "{ack}");
    let t = token("dave", json!({}));
    let mut dave = nodes[2].ws(&format!("/ws?token={t}")).await;
    let head = dave.recv_type("direct:offline").await;
    assert_eq!(head["count"], 1, "{head}");
    let d = dave.recv_type("direct:receive").await;
    assert_eq!(d["data"]["n"], 1, "{d}");
    // A guest with no session: refused, nothing stored.
    alice
        .send(json!({"type": "direct:send", "to": "guest-zz", "data": 1, "id": "d3"}))
        .await;
    let e = alice.recv_type("error").await;
    assert_eq!(e["code"], "user_offline", "{e}");
    // A broadcast from node a's API reaches sessions on every node.
    let admin = token("svc", json!({"role": "admin"}));
    let (s, body) = nodes[0]
        .http(
            "POST",
            "/api/broadcast",
            Some(&admin),
            Some(r#"{"data":{"b":1}}"#),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    for c in [&mut bob_b, &mut bob_c, &mut dave, &mut alice] {
        let f = c.recv_type("broadcast").await;
        assert_eq!(f["data"]["b"], 1, "{f}");
    }
    // A notification made on node a is pushed to Bob's sessions on b and c.
    let svc = token("backend", json!({"role": "service"}));
    let body = json!({"to": ["bob"], "data": {"title": "hi"}}).to_string();
    let (s, r) = nodes[0]
        .http("POST", "/api/notify", Some(&svc), Some(&body))
        .await;
    assert_eq!(s, 200, "{r}");
    for b in [&mut bob_b, &mut bob_c] {
        let n = b.recv_type("notification:new").await;
        assert_eq!(n["notification"]["data"]["title"], "hi", "{n}");
        let c = b.recv_type("notification:count").await;
        assert_eq!(c["unread"], 1, "{c}");
    }
    // The list and the count are shared: a second one from node b, then
    // node c lists both, newest first, with the id node a answered.
    let id_a = r_id(&r);
    let body = json!({"to": "bob", "data": {"title": "two"}}).to_string();
    let (s, r) = nodes[1]
        .http("POST", "/api/notify", Some(&svc), Some(&body))
        .await;
    assert_eq!(s, 200, "{r}");
    let id_b = r_id(&r);
    assert!(id_b > id_a, "one numbering per user: {id_a} then {id_b}");
    for b in [&mut bob_b, &mut bob_c] {
        assert_eq!(b.recv_type("notification:count").await["unread"], 2);
    }
    bob_c
        .send(json!({"type": "notification:list", "id": "l"}))
        .await;
    let page = bob_c.recv_type("notification:page").await;
    let listed: Vec<u64> = page["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, vec![id_b, id_a], "{page}");
    assert_eq!(page["unread"], 2, "{page}");
    assert_eq!(page["notifications"][0]["data"]["title"], "two", "{page}");
    // Marked read on node b: node c's session is told the new count, and a
    // session opened on node a later is told nothing is unread.
    bob_b
        .send(json!({"type": "notification:read", "ids": [id_a], "id": "m"}))
        .await;
    assert_eq!(bob_b.recv_type("ack").await["id"], "m");
    assert_eq!(bob_c.recv_type("notification:count").await["unread"], 1);
    let mut bob_a = nodes[0]
        .ws(&format!("/ws?token={}", token("bob", json!({}))))
        .await;
    assert_eq!(bob_a.recv_type("notification:count").await["unread"], 1);
    bob_a
        .send(json!({"type": "notification:list", "unread": true, "id": "u"}))
        .await;
    let page = bob_a.recv_type("notification:page").await;
    assert_eq!(page["notifications"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["notifications"][0]["id"], id_b, "{page}");
    assert_eq!(page["notifications"][0]["read"], false, "{page}");
}

/// The id `POST /api/notify` answered for its one recipient.
fn r_id(body: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["notifications"][0]["id"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_api_acts_on_a_users_sessions_on_every_node() {
    use crate::server_api::call;
    let redis = Redis::start();
    let nodes = redis.nodes(3, &[]);
    let mut alice_b = nodes[1]
        .user_with("alice", json!({"rooms": ["lobby"]}))
        .await;
    let mut alice_c = nodes[2]
        .user_with("alice", json!({"rooms": ["lobby"]}))
        .await;
    let mut bob = nodes[2].user("bob").await;
    bob.join("staff").await;
    // Asked of node a, which holds no session of alice's.
    let (st, r) = call(&nodes[0], "PUT", "/api/users/alice/rooms/staff", None).await;
    assert_eq!((st, r["online"].as_bool()), (200, Some(true)), "{r}");
    for a in [&mut alice_b, &mut alice_c] {
        assert_eq!(a.recv_type("room:joined").await["room"], "staff");
    }
    bob.send(json!({"type": "message:send", "room": "staff", "data": "hi"}))
        .await;
    for a in [&mut alice_b, &mut alice_c] {
        assert_eq!(a.recv_type("message:receive").await["data"], "hi");
    }
    let (_, r) = call(&nodes[0], "GET", "/api/users/alice/presence", None).await;
    assert_eq!(
        r,
        json!({"user": "alice", "status": "online", "rooms": ["staff"]})
    );
    let (st, _) = call(
        &nodes[0],
        "POST",
        "/api/users/alice/disconnect",
        Some(json!({"code": 4200, "reason": "bye"})),
    )
    .await;
    assert_eq!(st, 200);
    for a in [&mut alice_b, &mut alice_c] {
        assert_eq!(a.close_frame(WAIT).await, Some((4200, "bye".into())));
    }
    assert_eq!(
        bob.recv_type("room:member_left").await["user"]["user"],
        "alice"
    );
    let (_, r) = call(&nodes[0], "GET", "/api/users/alice/presence", None).await;
    assert_eq!(
        r,
        json!({"user": "alice", "status": "offline", "rooms": []})
    );
}
