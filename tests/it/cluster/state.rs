//! Shared state across nodes: every write is decided by one script in
//! Redis, so concurrent sets from two nodes have exactly one winner per
//! version, and members on both nodes end with the same value.

use super::redis::Redis;
use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

async fn join_state(c: &mut Client, room: &str) -> Value {
    c.send(json!({"type":"room:join","room":room,"state":true}))
        .await;
    c.recv_type("room:joined").await;
    c.recv_type("state:snapshot").await
}

/// Increments counter `n` `rounds` times on version compare-and-set,
/// merging on conflicts; answers the (version, value) pairs it won.
async fn race(mut c: Client, tag: String, rounds: u64) -> (Client, Vec<(u64, u64)>, u64) {
    let (mut version, mut value, mut won, mut tries) = (0u64, 0u64, Vec::new(), 0);
    // The newest state:update this member received.
    let mut seen = 0;
    while (won.len() as u64) < rounds {
        tries += 1;
        assert!(tries < 2000, "no progress");
        let id = format!("{tag}-{tries}");
        c.send(json!({"type":"state:set","room":"shared","key":"n","value":value + 1,"version":version,"id":id}))
            .await;
        let f = loop {
            let f = c.recv().await;
            if f["type"] == "state:update" {
                seen = seen.max(f["version"].as_u64().unwrap());
            }
            if f["id"] == id.as_str() || f["ref"] == id.as_str() {
                break f;
            }
        };
        match (f["type"].as_str(), f["code"].as_str()) {
            (Some("ack"), _) => {
                version = f["version"].as_u64().unwrap();
                value += 1;
                won.push((version, value));
            }
            (_, Some("version_conflict")) => {
                version = f["version"].as_u64().unwrap();
                value = f["value"].as_u64().unwrap_or(0);
            }
            (_, Some("rate_limited")) => {
                tokio::time::sleep(Duration::from_millis(
                    f["retry_after_ms"].as_u64().unwrap_or(50),
                ))
                .await;
            }
            _ => panic!("unexpected answer {f}"),
        }
    }
    (c, won, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sets_from_two_nodes_have_one_winner_per_version() {
    const PER_NODE: usize = 3;
    const ROUNDS: u64 = 5;
    let redis = Redis::start();
    let nodes = redis.nodes(2, &[]);
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for i in 0..PER_NODE {
            let mut c = node.user(&format!("u{n}x{i}")).await;
            join_state(&mut c, "shared").await;
            tasks.push(tokio::spawn(race(c, format!("n{n}c{i}"), ROUNDS)));
        }
    }
    let mut won = Vec::new();
    let mut clients = Vec::new();
    for t in tasks {
        let (c, w, seen) = t.await.unwrap();
        won.extend(w);
        clients.push((c, seen));
    }
    let total = (2 * PER_NODE) as u64 * ROUNDS;
    let mut versions: Vec<u64> = won.iter().map(|w| w.0).collect();
    versions.sort();
    versions.dedup();
    assert_eq!(versions.len() as u64, total, "a version was won twice");
    let mut values: Vec<u64> = won.iter().map(|w| w.1).collect();
    values.sort();
    assert_eq!(values, (1..=total).collect::<Vec<_>>());
    // Every member, on either node, gets the update of the final value
    // (its node applies other nodes' changes a moment after their acks),
    // and its node's copy then answers exactly that.
    let last = *versions.last().unwrap();
    for (c, seen) in clients.iter_mut() {
        while *seen < last {
            let u = c.recv_type("state:update").await;
            *seen = u["version"].as_u64().unwrap();
        }
        assert_eq!(*seen, last);
        c.send(json!({"type":"state:get","room":"shared","id":"g"}))
            .await;
        let snap = loop {
            let f = c.recv().await;
            if f["type"] == "state:snapshot" && f["id"] == "g" {
                break f;
            }
        };
        assert_eq!(snap["entries"][0]["value"], total, "{snap}");
        assert_eq!(snap["entries"][0]["version"], last, "{snap}");
    }
    // A member joining late on either node gets the same snapshot, and a
    // REST read on the other node agrees.
    let mut late = nodes[1].user("late").await;
    let snap = join_state(&mut late, "shared").await;
    assert_eq!(snap["entries"][0]["value"], total);
    let svc = token("svc", json!({"role":"service"}));
    let (st, b) = nodes[0]
        .get_json("/api/rooms/shared/state/n", Some(&svc))
        .await;
    assert_eq!(
        (st, b["entry"]["version"].clone()),
        (200, json!(last)),
        "{b}"
    );
    // A REST conflict is answered the same on any node.
    let r = nodes[1]
        .request(
            "PUT",
            "/api/rooms/shared/state/n",
            &[
                ("Authorization", &format!("Bearer {svc}")),
                ("If-Match", "1"),
            ],
            Some(r#"{"value":0}"#),
        )
        .await;
    assert_eq!((r.status, r.json()["value"].clone()), (409, json!(total)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expiry_is_told_once_on_every_node() {
    let redis = Redis::start();
    let nodes = redis.nodes(2, &[]);
    let mut a = nodes[0].user("alice").await;
    let mut b = nodes[1].user("bob").await;
    join_state(&mut a, "eph").await;
    join_state(&mut b, "eph").await;
    a.send(json!({"type":"state:set","room":"eph","key":"screen","value":"alice","version":0,"ttl_ms":300,"id":"s"}))
        .await;
    for c in [&mut a, &mut b] {
        let u = c.recv_type("state:update").await;
        assert_eq!(u["version"], 1, "{u}");
        let gone = c.recv_type("state:update").await;
        assert_eq!(
            (gone["expired"].clone(), gone["version"].clone()),
            (json!(true), json!(2)),
            "{gone}"
        );
        c.expect_no("state:update", Duration::from_millis(600))
            .await;
    }
}
