//! Rooms' messages spread over several Redis (`SWITCHBOARD_REDIS_URL`
//! listing more than one; docs/SCALEOUT.md "Several Redis").

use super::redis::Redis;
use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Reads message frames until `total` arrived, per room seq → data; each
/// room's seqs in order without a gap, none twice.
async fn record_rooms(c: &mut Client, total: usize) -> BTreeMap<String, BTreeMap<u64, Value>> {
    let mut got: BTreeMap<String, BTreeMap<u64, Value>> = BTreeMap::new();
    for _ in 0..total {
        let f = c.recv_type("message:receive").await;
        let room = f["room"].as_str().unwrap().to_string();
        let seq = f["seq"].as_u64().unwrap();
        let seen = got.entry(room).or_default();
        let next = seen.keys().last().map_or(1, |l| l + 1);
        assert_eq!(seq, next, "each room in order, without a gap: {f}");
        seen.insert(seq, f["data"].clone());
    }
    got
}

/// Which of `all` holds `room`'s message stream (exactly one must).
fn holder(all: &[&Redis], room: &str) -> usize {
    let key = format!("sb:{{r:{room}}}:x");
    let on: Vec<usize> = (0..all.len())
        .filter(|i| all[*i].cli(&["EXISTS", &key]) == "1")
        .collect();
    assert_eq!(
        on.len(),
        1,
        "{room}'s stream is on exactly one Redis: {on:?}"
    );
    on[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rooms_spread_over_two_redis_and_each_keeps_one_order() {
    let (r0, r1) = (Redis::start(), Redis::start());
    // Each client sends 60 at once: over the default burst of 50.
    let nodes = Redis::nodes_over(&[&r0, &r1], 2, &[("SWITCHBOARD_USER_BURST", "500")]);
    let rooms: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    let mut a = nodes[0].user("alice").await;
    let mut b = nodes[1].user("bob").await;
    for r in &rooms {
        a.join(r).await;
        let j = b.join(r).await;
        // Members are on the first Redis: alice, on the other node, is listed.
        let mut listed: Vec<&str> = j["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["user"].as_str())
            .collect();
        listed.sort();
        assert_eq!(listed, ["alice", "bob"], "{j}");
    }
    let per = 10;
    for i in 0..per {
        for r in &rooms {
            a.send(json!({"type": "message:send", "room": r, "data": {"from": "a", "i": i}}))
                .await;
            b.send(json!({"type": "message:send", "room": r, "data": {"from": "b", "i": i}}))
                .await;
        }
    }
    let total = 2 * per * rooms.len();
    let seen_a = record_rooms(&mut a, total).await;
    let seen_b = record_rooms(&mut b, total).await;
    assert_eq!(
        seen_a, seen_b,
        "both members saw the same message at every seq"
    );
    for r in &rooms {
        assert_eq!(seen_a[r].len(), 2 * per, "{r}");
    }
    // Each room's messages are on one Redis, and both Redis hold some.
    let on: Vec<usize> = rooms.iter().map(|r| holder(&[&r0, &r1], r)).collect();
    assert!(on.contains(&0) && on.contains(&1), "{on:?}");
    // Members stay on the first.
    for r in &rooms {
        let key = format!("sb:{{r:{r}}}:mem");
        assert_eq!(
            (r0.cli(&["EXISTS", &key]), r1.cli(&["EXISTS", &key])),
            ("1".into(), "0".into())
        );
    }
    // A room with no actor on node b: its history and scroll-back are read
    // from the Redis of its messages.
    let svc = token("backend", json!({"role": "service"}));
    let far = rooms[on.iter().position(|s| *s == 1).unwrap()].clone();
    drop(b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = nodes[0].user("cy").await;
    c.join("solo1").await;
    for i in 0..3 {
        c.send(json!({"type": "message:send", "room": "solo1", "data": i, "id": format!("x{i}")}))
            .await;
        c.recv_type("ack").await;
    }
    for room in [far.as_str(), "solo1"] {
        let (st, h) = nodes[1]
            .get_json(&format!("/api/rooms/{room}/history?limit=500"), Some(&svc))
            .await;
        assert_eq!(st, 200, "{h}");
        let want = if room == "solo1" { 3 } else { 2 * per };
        assert_eq!(
            h["messages"].as_array().map(|m| m.len()),
            Some(want),
            "{room}: {h}"
        );
        let (st, p) = nodes[1]
            .get_json(
                &format!("/api/rooms/{room}/history?before=3&limit=10"),
                Some(&svc),
            )
            .await;
        assert_eq!(st, 200, "{p}");
        let seqs: Vec<u64> = p["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [1, 2], "{room}: {p}");
    }
    // /healthz and /metrics show each Redis.
    let (_, h) = nodes[0].get_json("/healthz", None).await;
    assert_eq!(h["cluster"]["redis_each"], json!(["up", "up"]), "{h}");
    let (_, m) = nodes[0].http("GET", "/metrics", None, None).await;
    assert!(
        m.contains("switchboard_redis_link_up{node=\"a\",redis=\"1\"} 1"),
        "{m}"
    );
}

/// One of two Redis loses its data: only the rooms whose messages it held
/// start a new epoch (and say so); the others recover as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_one_redis_starts_new_epochs_only_for_its_rooms() {
    let (r0, mut r1) = (Redis::start(), Redis::start());
    let nodes = Redis::nodes_over(&[&r0, &r1], 2, &[]);
    let mut a = nodes[0].user("ann").await;
    let rooms: Vec<String> = (0..6).map(|i| format!("e{i}")).collect();
    let mut epochs = BTreeMap::new();
    for r in &rooms {
        let j = a.join(r).await;
        epochs.insert(r.clone(), j["epoch"].as_str().unwrap().to_string());
        for i in 0..3 {
            a.send(json!({"type": "message:send", "room": r, "data": i, "id": format!("{r}-{i}")}))
                .await;
            a.recv_type("ack").await;
        }
    }
    let on: BTreeMap<String, usize> = rooms
        .iter()
        .map(|r| (r.clone(), holder(&[&r0, &r1], r)))
        .collect();
    assert!(
        on.values().any(|s| *s == 0) && on.values().any(|s| *s == 1),
        "{on:?}"
    );
    r1.restart();
    // Each room takes a message again once its Redis answers (bounded).
    for r in &rooms {
        let sent = super::messages::send_until_acked(&mut a, r, "after").await;
        assert!(sent, "{r} takes messages again");
    }
    // A client on the other node comes back with where it was.
    let mut c = nodes[1].user("cy").await;
    for r in &rooms {
        c.send(json!({"type": "room:join", "room": r, "since": 3, "epoch": epochs[r]}))
            .await;
        let j = c.recv_type("room:joined").await;
        if on[r] == 1 {
            assert_eq!(
                j["recovered"], false,
                "{r} was on the Redis that lost it: {j}"
            );
            assert_ne!(j["epoch"], epochs[r].as_str(), "{j}");
        } else {
            assert_eq!(j["recovered"], true, "{r} was on the other Redis: {j}");
            assert_eq!(j["epoch"], epochs[r].as_str(), "{j}");
            let m = c.recv_type("message:receive").await;
            assert_eq!(
                (m["room"].as_str(), m["seq"].as_u64(), &m["data"]),
                (Some(r.as_str()), Some(4), &json!("after")),
                "{m}"
            );
        }
    }
}
