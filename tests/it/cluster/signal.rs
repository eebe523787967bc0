//! `signal` between sessions on two nodes: routed through the target
//! node's channel, membership checked where each session lives, and
//! sessions of other nodes listed in member lists.

use super::redis::Redis;
use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

async fn session(s: &Server, sub: &str) -> (Client, String) {
    let t = token(sub, json!({}));
    let mut c = s.ws(&format!("/ws?token={t}")).await;
    let id = c.greeted().await["session"].as_str().unwrap().to_string();
    (c, id)
}

async fn answer(c: &mut Client, id: &str) -> Value {
    loop {
        let f = c.recv().await;
        if f["type"] == "ack" && f["id"] == id || f["type"] == "error" && f["ref"] == id {
            return f;
        }
    }
}

fn signal(to: &str, room: &str, kind: &str, data: Value, id: &str) -> Value {
    json!({"type": "signal", "to": to, "room": room, "kind": kind, "data": data, "id": id})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signal_crosses_nodes_to_the_one_session_named() {
    let redis = Redis::start();
    let nodes = redis.nodes(2, &[]);
    let (mut alice, a_id) = session(&nodes[0], "alice").await;
    let (mut bob, b_id) = session(&nodes[1], "bob").await;
    let (mut bob2, _) = session(&nodes[1], "bob").await;
    let (mut carol, c_id) = session(&nodes[1], "carol").await;
    assert!(a_id.contains('@'), "a node-qualified session id: {a_id}");
    alice.join("call").await;
    let j = bob.join("call").await;
    let listed = j["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"] == "alice")
        .cloned();
    // Alice's join is registered in Redis by its own script: a member list
    // read before it lands has no alice, and `room:member_joined` follows
    // (PROTOCOL.md, eventually the same set).
    let alice_entry = match listed {
        Some(e) => e,
        None => {
            let mj = bob.recv_type("room:member_joined").await;
            assert_eq!(mj["user"]["user"], "alice", "{mj}");
            json!({"user": "alice"})
        }
    };
    // Sessions are announced by their own script, after the member's join:
    // a member list read in between has alice without them, and
    // `room:session_joined` follows.
    if alice_entry["sessions"] != json!([a_id]) {
        assert!(alice_entry["sessions"].is_null(), "{j}");
        let sj = bob.recv_type("room:session_joined").await;
        assert_eq!(
            (&sj["session"], &sj["user"]),
            (&json!(a_id), &json!("alice"))
        );
    }
    let sj = alice.recv_type("room:session_joined").await;
    assert_eq!(sj["session"], b_id, "{sj}");
    bob2.join("call").await;
    carol.join("elsewhere").await;

    alice
        .send(signal(&b_id, "call", "offer", json!({"sdp": "o"}), "o1"))
        .await;
    assert_eq!(answer(&mut alice, "o1").await["type"], "ack");
    let got = bob.recv_type("signal").await;
    assert_eq!(
        (&got["session"], &got["from"]["user"]),
        (&json!(a_id), &json!("alice")),
        "{got}"
    );
    bob.send(signal(&a_id, "call", "answer", json!({"sdp": "a"}), "a1"))
        .await;
    assert_eq!(answer(&mut bob, "a1").await["type"], "ack");
    let back = alice.recv_type("signal").await;
    assert_eq!(
        (&back["kind"], &back["session"]),
        (&json!("answer"), &json!(b_id))
    );
    bob2.expect_no("signal", Duration::from_millis(400)).await;

    // Refusals decided on the target's node come back to the sender.
    alice
        .send(signal(&c_id, "call", "ice", json!(1), "f1"))
        .await;
    let e = answer(&mut alice, "f1").await;
    assert_eq!(e["code"], "forbidden", "{e}");
    let node1 = b_id.split_once('@').unwrap().1;
    alice
        .send(signal(
            &format!("s999999@{node1}"),
            "call",
            "ice",
            json!(1),
            "n1",
        ))
        .await;
    assert_eq!(answer(&mut alice, "n1").await["code"], "not_found");
    alice
        .send(signal("s1@ghost-node", "call", "ice", json!(1), "n2"))
        .await;
    assert_eq!(answer(&mut alice, "n2").await["code"], "not_found");
    carol.expect_no("signal", Duration::from_millis(100)).await;

    // A session of another node leaving is told to this one.
    bob.close().await;
    let sl = alice.recv_type("room:session_left").await;
    assert_eq!(sl["session"], b_id, "{sl}");
}
