//! Everything at once, bounded: three nodes, three rooms, members on every
//! node, a publisher per node; node c is killed mid-run (its members come
//! back on other nodes with `since`), node b is paused for a moment. Every
//! member ends with every room's messages 1..top, in order, once, the same
//! message at every seq as the others and as the history on any node.

use super::redis::Redis;
use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const ROOMS: [&str; 3] = ["s1", "s2", "s3"];

/// A member's record of each room: seq → data, with the epoch it joined.
struct Member {
    c: Client,
    seen: BTreeMap<String, BTreeMap<u64, Value>>,
    epoch: BTreeMap<String, String>,
    /// Rejoins with `since` answered (all `recovered:true`).
    rejoined: usize,
}

impl Member {
    async fn join_all(c: Client) -> Member {
        let mut m = Member {
            c,
            seen: BTreeMap::new(),
            epoch: BTreeMap::new(),
            rejoined: 0,
        };
        for r in ROOMS {
            let j = m.c.join(r).await;
            m.epoch
                .insert(r.into(), j["epoch"].as_str().unwrap().into());
            m.seen.insert(r.into(), BTreeMap::new());
        }
        m
    }

    /// Reads what is there (up to `quiet` of silence), checking order.
    async fn drain(&mut self, quiet: Duration) {
        while let Some(f) = self.c.try_recv(quiet).await {
            if f["type"] == "room:joined" && f.get("recovered").is_some() {
                assert_eq!(f["recovered"], true, "{f}");
                self.rejoined += 1;
            }
            if f["type"] != "message:receive" {
                continue;
            }
            let room = f["room"].as_str().unwrap().to_string();
            let seq = f["seq"].as_u64().unwrap();
            let seen = self.seen.get_mut(&room).unwrap();
            let last = seen.keys().next_back().copied().unwrap_or(0);
            assert_eq!(seq, last + 1, "in order, no gap, once: {f}");
            seen.insert(seq, f["data"].clone());
        }
    }
}

async fn publish(p: &mut Client, tag: &str, from: usize, to: usize) {
    for i in from..to {
        for r in ROOMS {
            p.send(json!({"type": "message:send", "room": r, "data": {"p": tag, "i": i}}))
                .await;
        }
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_on_every_node_agree_through_a_kill_and_a_pause() {
    let redis = Redis::start();
    let mut nodes = redis.nodes(3, &[]);
    let mut members = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for k in 0..2 {
            let c = n.user(&format!("m{i}{k}")).await;
            members.push(Member::join_all(c).await);
        }
    }
    let mut pubs = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let mut p = n
            .user_with(&format!("p{i}"), json!({"role": "service"}))
            .await;
        for r in ROOMS {
            p.join(r).await;
        }
        pubs.push(p);
    }
    for (i, p) in pubs.iter_mut().enumerate() {
        publish(p, &i.to_string(), 0, 20).await;
    }
    for m in members.iter_mut() {
        m.drain(Duration::from_millis(300)).await;
    }
    // Node c dies with two members and a publisher on it.
    let mut c = nodes.remove(2);
    c.restart(true, &[("SWITCHBOARD_NODE_ID", "c2")]);
    let mut gone: Vec<Member> = members.drain(4..).collect();
    pubs.truncate(2);
    for (i, p) in pubs.iter_mut().enumerate() {
        publish(p, &i.to_string(), 20, 40).await;
    }
    // Node b pauses while a goes on.
    let pid = nodes[1].pid().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    publish(&mut pubs[0], "0", 40, 60).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    publish(&mut pubs[1], "1", 40, 60).await;
    // c's members come back on a and b, each room from where it was.
    for (k, m) in gone.iter_mut().enumerate() {
        let node = &nodes[k % 2];
        let t = token(&format!("m2{k}"), json!({}));
        let mut fresh = node.ws(&format!("/ws?token={t}")).await;
        fresh.greeted().await;
        m.c = fresh;
        for r in ROOMS {
            let since = m.seen[r].keys().next_back().copied().unwrap_or(0);
            m.c.send(json!({"type": "room:join", "room": r, "since": since,
                            "epoch": m.epoch[r]}))
                .await;
        }
    }
    members.extend(gone);
    for m in members.iter_mut() {
        m.drain(Duration::from_millis(1000)).await;
    }
    assert!(members[4..].iter().all(|m| m.rejoined == ROOMS.len()));
    // Everyone has the same, gapless, and it is what the history says.
    let admin = token("svc", json!({"role": "admin"}));
    for r in ROOMS {
        let (_, h) = nodes[0]
            .get_json(
                &format!("/api/rooms/{r}/history?since=0&limit=1000"),
                Some(&admin),
            )
            .await;
        let history: BTreeMap<u64, Value> = h["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["seq"].as_u64().unwrap(), m["data"].clone()))
            .collect();
        let top = h["seq"].as_u64().unwrap();
        assert!(top >= 100, "{r}: {top}");
        assert_eq!(
            history.keys().copied().collect::<Vec<_>>(),
            (1..=top).collect::<Vec<_>>()
        );
        for (k, m) in members.iter().enumerate() {
            let first_diff = (1..=top).find(|s| m.seen[r].get(s) != history.get(s));
            assert_eq!(
                first_diff,
                None,
                "{r}: member {k} has {} of {top}; first difference at that seq",
                m.seen[r].len()
            );
        }
    }
    drop(c);
}
