//! Tool calls and room watches across nodes: a call to a user or a
//! session on another node and its result back, a target on another node
//! closing mid-call; a watcher on one node seeing the messages of rooms
//! that only other nodes hold.

use super::redis::Redis;
use crate::common::*;
use crate::rpc::{answer, call, code, service, session};
use crate::watch::{next_message, send, watch};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_cross_nodes_both_ways() {
    let redis = Redis::start();
    let nodes = redis.nodes(2, &[]);
    let (mut alice, alice_id) = session(&nodes[0], "alice", json!({})).await;
    let (mut bot, bot_id) = session(&nodes[1], "bot", service()).await;
    assert!(bot_id.ends_with("@b"), "{bot_id}");

    // By user: the bot's session is found in Redis (its personal room's
    // sessions), written as it connects: probe with short calls until one
    // reaches it (it then times out, unanswered), then call for real.
    let mut reached = false;
    for i in 0..100 {
        let id = format!("p{i}");
        let mut probe = call("bot", "probe", json!(i), &id);
        probe["timeout_ms"] = json!(200);
        alice.send(probe).await;
        match code(&answer(&mut alice, &id).await) {
            "user_offline" => continue,
            "rpc_timeout" => {
                bot.recv_type("rpc:call").await;
                reached = true;
                break;
            }
            other => panic!("{other}"),
        }
    }
    assert!(reached, "the bot's session was never found");
    let id = "u1".to_string();
    alice
        .send(call("bot", "lookup", json!({"n": 1}), &id))
        .await;
    let got = bot.recv_type("rpc:call").await;
    assert_eq!(got["method"], "lookup", "{got}");
    assert_eq!(
        (&got["from"]["user"], &got["session"]),
        (&json!("alice"), &json!(alice_id))
    );
    bot.send(json!({"type": "rpc:result", "id": got["id"], "result": {"ok": 1}}))
        .await;
    let r = answer(&mut alice, &id).await;
    assert_eq!(
        (&r["result"], &r["session"]),
        (&json!({"ok": 1}), &json!(bot_id)),
        "{r}"
    );

    // By session, from the bot to alice's node, answered with an error.
    bot.send(call(&alice_id, "ask", json!("?"), "b1")).await;
    let got = alice.recv_type("rpc:call").await;
    assert_eq!(got["session"], bot_id);
    alice
        .send(json!({"type": "rpc:result", "id": got["id"], "error": {"code": "nope", "message": ""}}))
        .await;
    let r = answer(&mut bot, "b1").await;
    assert_eq!(r["error"]["code"], "nope", "{r}");

    // A user may not call another node's user session either.
    let (_carol, carol_id) = session(&nodes[1], "carol", json!({})).await;
    alice.send(call(&carol_id, "x", json!(1), "f1")).await;
    assert_eq!(code(&answer(&mut alice, "f1").await), "forbidden");
    // A session id of a node that is not there.
    alice.send(call("s1@zz", "x", json!(1), "g1")).await;
    assert_eq!(code(&answer(&mut alice, "g1").await), "not_found");

    // The target closes mid-call on its node: the caller on the other hears.
    let mut long = call(&bot_id, "long", json!(1), "d1");
    long["timeout_ms"] = json!(60000);
    alice.send(long).await;
    bot.recv_type("rpc:call").await;
    bot.close().await;
    assert_eq!(code(&answer(&mut alice, "d1").await), "rpc_disconnected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watcher_sees_rooms_held_only_by_other_nodes() {
    let redis = Redis::start();
    let nodes = redis.nodes(2, &[]);
    let mut bot = nodes[0].user_with("bot", json!({"role": "service"})).await;
    watch(&mut bot, "team-*").await;
    watch(&mut bot, "team-x*").await;
    // Node b holds team-x; node a has no member of it.
    let mut alice = nodes[1].user("alice").await;
    alice.join("team-x").await;
    alice.join("lobby").await;
    alice.send(send("lobby", "unwatched")).await;
    alice.send(send("team-x", "one")).await;
    alice.send(send("team-x", "two")).await;
    // One copy each, though both patterns match.
    assert_eq!(
        next_message(&mut bot).await,
        ("team-x".into(), 1, "one".into())
    );
    assert_eq!(
        next_message(&mut bot).await,
        ("team-x".into(), 2, "two".into())
    );
    // A second watcher of the same pattern on node a, and REST on node a.
    let mut sam = nodes[0].user_with("sam", json!({"role": "service"})).await;
    watch(&mut sam, "team-*").await;
    let svc = token("backend", json!({"role": "service"}));
    let body = json!({"room": "team-y", "data": {"text": "rest"}}).to_string();
    let (st, r) = nodes[0]
        .http("POST", "/api/publish", Some(&svc), Some(&body))
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        next_message(&mut bot).await,
        ("team-y".into(), 1, "rest".into())
    );
    assert_eq!(
        next_message(&mut sam).await,
        ("team-y".into(), 1, "rest".into())
    );
    // The first watcher leaving does not stop the node's other watcher
    // (REST on node b this time).
    bot.close().await;
    let body = json!({"room": "team-y", "data": {"text": "again"}}).to_string();
    let (st, _) = nodes[1]
        .http("POST", "/api/publish", Some(&svc), Some(&body))
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        next_message(&mut sam).await,
        ("team-y".into(), 2, "again".into())
    );
}
