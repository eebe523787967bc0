//! Webhooks with two nodes: each node queues and sends its own events, and
//! a room's occupied/vacated and a member's joined/left arrive once
//! cluster-wide whichever nodes the user's sessions are on (the node whose
//! script saw the change emits it). A tiny real HTTP receiver on 127.0.0.1.

use super::redis::Redis;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Accepts POSTs, answers 200, keeps every event of every batch.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let events = Arc::new(Mutex::new(Vec::new()));
    let got = events.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let got = got.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    // One request at a time on a keep-alive connection.
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Value = serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap();
                    buf.drain(..end + 4 + len);
                    for e in body["events"].as_array().unwrap() {
                        got.lock().unwrap().push(e.clone());
                    }
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                }
            });
        }
    });
    (url, events)
}

fn count(events: &[Value], ty: &str, key: &str, val: &str) -> usize {
    events
        .iter()
        .filter(|e| e["type"] == ty && e[key] == val)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn room_and_member_events_happen_once_across_nodes() {
    let redis = Redis::start();
    let (url, events) = receiver().await;
    let nodes = redis.nodes(
        2,
        &[
            ("SWITCHBOARD_WEBHOOK_URL", url.as_str()),
            ("SWITCHBOARD_WEBHOOK_SECRET", "s3cret"),
            ("SWITCHBOARD_WEBHOOK_LINGER_MS", "20"),
        ],
    );
    // Alice on both nodes, Bob on the second: one room.occupied, one
    // member.joined per user, however many sessions and nodes.
    let mut alice_a = nodes[0].user("alice").await;
    alice_a.join("hq").await;
    let mut alice_b = nodes[1].user("alice").await;
    alice_b.join("hq").await;
    let mut bob = nodes[1].user("bob").await;
    bob.join("hq").await;
    bob.send(json!({"type": "room:leave", "room": "hq", "id": "l"}))
        .await;
    bob.recv_type("room:left").await;
    alice_a
        .send(json!({"type": "room:leave", "room": "hq", "id": "l"}))
        .await;
    alice_a.recv_type("room:left").await;
    alice_b
        .send(json!({"type": "room:leave", "room": "hq", "id": "l"}))
        .await;
    alice_b.recv_type("room:left").await;
    for _ in 0..200 {
        if count(&events.lock().unwrap(), "room.vacated", "room", "hq") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A little longer: a duplicate from the other node would arrive by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = events.lock().unwrap().clone();
    let hq: Vec<&Value> = seen.iter().filter(|e| e["room"] == "hq").collect();
    assert_eq!(count(&seen, "room.occupied", "room", "hq"), 1, "{hq:?}");
    assert_eq!(count(&seen, "room.vacated", "room", "hq"), 1, "{hq:?}");
    for user in ["alice", "bob"] {
        let of = |ty: &str| {
            hq.iter()
                .filter(|e| e["type"] == ty && e["user"] == user)
                .count()
        };
        assert_eq!(of("member.joined"), 1, "{user}: {hq:?}");
        assert_eq!(of("member.left"), 1, "{user}: {hq:?}");
    }
    // Each node's events come in the order its scripts ran; the two nodes'
    // POSTs are not ordered with each other, and which of alice's two leaves
    // emptied the room is whichever LEAVE script Redis ran last (room:left
    // does not wait for it): her member.left and the room.vacated come
    // together from that node. Bob's come from node b, in order.
    let pos = |ty: &str, user: &str| {
        hq.iter()
            .position(|e| e["type"] == ty && e["user"].as_str().unwrap_or("") == user)
            .unwrap_or_else(|| panic!("no {ty} {user}: {hq:?}"))
    };
    assert!(
        pos("member.joined", "bob") < pos("member.left", "bob"),
        "{hq:?}"
    );
    assert!(
        pos("member.left", "alice") < pos("room.vacated", ""),
        "{hq:?}"
    );
    // Every event has its own id.
    let mut ids: Vec<&str> = seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate ids");
    drop(nodes);
}
