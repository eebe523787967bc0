//! Room messages across nodes: one numbering, the same order for every
//! member on every node, recovery and history on any node, idempotency
//! keys and exclude-self across nodes.

use super::redis::Redis;
use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Reads `room`'s messages until `n` were seen (acks and others skipped);
/// answers seq → data.
pub async fn record(c: &mut Client, room: &str, n: usize) -> BTreeMap<u64, Value> {
    let mut got = BTreeMap::new();
    let mut last = None;
    while got.len() < n {
        let f = c.recv_type("message:receive").await;
        if f["room"] != room {
            continue;
        }
        let seq = f["seq"].as_u64().unwrap();
        if let Some(l) = last {
            assert_eq!(
                seq,
                l + 1,
                "seqs are delivered in order, without a gap: {f}"
            );
        }
        last = Some(seq);
        assert!(got.insert(seq, f["data"].clone()).is_none(), "twice: {f}");
    }
    got
}

/// Sends `data` to `room` until it is acknowledged, while Redis is away
/// or just back (`unavailable` is the only refusal allowed), at most 50
/// times 200 ms apart; answers whether it was.
pub async fn send_until_acked(c: &mut Client, room: &str, data: &str) -> bool {
    for i in 0..50 {
        let id = format!("{room}-retry{i}");
        c.send(json!({"type": "message:send", "room": room, "data": data, "id": id}))
            .await;
        loop {
            let f = c.recv().await;
            match f["type"].as_str() {
                Some("ack") => return true,
                Some("error") => {
                    assert_eq!(f["code"], "unavailable", "{f}");
                    break;
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_member_on_every_node_sees_one_gapless_order() {
    let redis = Redis::start();
    let nodes = redis.nodes(3, &[]);
    let mut clients = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for k in 0..2 {
            let mut c = n.user(&format!("u{i}{k}")).await;
            c.join("lobby").await;
            clients.push(c);
        }
    }
    // Everyone is registered before anyone talks.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per = 15;
    for round in 0..per {
        for (i, c) in clients.iter_mut().enumerate() {
            c.send(json!({"type": "message:send", "room": "lobby",
                          "data": {"from": i, "n": round}, "id": format!("{i}-{round}")}))
                .await;
        }
    }
    let total = per * clients.len();
    let mut seen = Vec::new();
    for c in clients.iter_mut() {
        seen.push(record(c, "lobby", total).await);
    }
    let first = &seen[0];
    assert_eq!(
        first.keys().copied().collect::<Vec<_>>(),
        (1..=total as u64).collect::<Vec<_>>()
    );
    for s in &seen[1..] {
        assert_eq!(s, first, "every member saw the same message at every seq");
    }
    // Each sender's messages kept the order they were sent in.
    for i in 0..clients.len() {
        let mine: Vec<u64> = first
            .values()
            .filter(|d| d["from"] == i)
            .map(|d| d["n"].as_u64().unwrap())
            .collect();
        assert_eq!(mine, (0..per as u64).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_recovers_on_another_node_and_history_reads_on_any() {
    let redis = Redis::start();
    let nodes = redis.nodes(3, &[]);
    let mut alice = nodes[0].user("alice").await;
    let j = alice.join("news").await;
    let epoch = j["epoch"].as_str().unwrap().to_string();
    let mut bob = nodes[1].user("bob").await;
    bob.join("news").await;
    for i in 0..5 {
        bob.send(json!({"type": "message:send", "room": "news", "data": {"i": i}}))
            .await;
    }
    let seen = record(&mut alice, "news", 5).await;
    let last = *seen.keys().last().unwrap();
    alice.close().await;
    for i in 5..12 {
        bob.send(json!({"type": "message:send", "room": "news", "data": {"i": i}}))
            .await;
    }
    record(&mut bob, "news", 12).await;
    // Back on the third node, with where it was.
    let mut alice = nodes[2].user("alice").await;
    alice
        .send(json!({"type": "room:join", "room": "news", "since": last, "epoch": epoch}))
        .await;
    let j = alice.recv_type("room:joined").await;
    assert_eq!(j["recovered"], true, "{j}");
    assert_eq!(j["epoch"], epoch.as_str());
    let missed = record(&mut alice, "news", 7).await;
    assert_eq!(
        missed.keys().copied().collect::<Vec<_>>(),
        (6..=12).collect::<Vec<_>>()
    );
    assert_eq!(missed[&6]["i"], 5);
    // The REST history on a node where nobody is in the room.
    let admin = token("svc", json!({"role": "admin"}));
    let mut lone = redis.nodes(1, &[("SWITCHBOARD_NODE_ID", "z")]);
    let (status, body) = lone[0]
        .get_json("/api/rooms/news/history?since=10", Some(&admin))
        .await;
    assert_eq!(status, 200, "{body}");
    let seqs: Vec<u64> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![11, 12], "{body}");
    assert_eq!(body["epoch"], epoch.as_str());
    lone.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_keys_and_exclude_self_hold_across_nodes() {
    let redis = Redis::start();
    let nodes = redis.nodes(2, &[]);
    let mut a = nodes[0].user("ann").await;
    a.join("k").await;
    let mut b = nodes[1].user("ben").await;
    b.join("k").await;
    a.send(
        json!({"type": "message:send", "room": "k", "data": 1, "id": "x1",
                  "idempotency_key": "order-7"}),
    )
    .await;
    let ack = a.recv_type("ack").await;
    let seq = ack["seq"].as_u64().unwrap();
    b.send(
        json!({"type": "message:send", "room": "k", "data": 2, "id": "y1",
                  "idempotency_key": "order-7"}),
    )
    .await;
    let dup = b.recv_type("ack").await;
    assert_eq!(dup["seq"].as_u64(), Some(seq), "{dup}");
    assert_eq!(dup["duplicate"], true, "{dup}");
    // (b's copy of message 1 was skipped while waiting for its ack.)
    // exclude_self: the other node's member gets it, the sender does not.
    a.send(
        json!({"type": "message:send", "room": "k", "data": 3, "id": "x2",
                  "exclude_self": true}),
    )
    .await;
    let got = record(&mut b, "k", 1).await;
    assert_eq!(
        got.values().cloned().collect::<Vec<Value>>(),
        vec![json!(3)]
    );
    assert_eq!(
        got.keys().next(),
        Some(&(seq + 1)),
        "the duplicate took no seq"
    );
    let ack = a.recv_type("ack").await;
    assert_eq!(ack["id"], "x2");
    a.expect_no("message:receive", Duration::from_millis(500))
        .await;
}
