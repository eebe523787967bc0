//! The whole cluster's figures on every node: `/healthz`, `/metrics` and
//! the monitor's `health:update` (as of each node's last heartbeat).

use super::redis::Redis;
use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Waits (bounded) until `node`'s `/healthz` shows `want` as the cluster's
/// figures; answers what it showed last.
async fn figures_become(node: &Server, want: &Value) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (_, h) = node.get_json("/healthz", None).await;
        last = h["cluster"]["figures"].clone();
        if last == *want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_shows_the_whole_clusters_figures() {
    let redis = Redis::start();
    let mut nodes = redis.nodes(
        2,
        &[
            ("SWITCHBOARD_NODE_TTL_MS", "2000"),
            ("SWITCHBOARD_HEALTH_INTERVAL_MS", "300"),
        ],
    );
    // Alice on both nodes, Bob on b: two users online, three sessions, and
    // four rooms with members (r1, r2 and the two personal rooms).
    let mut alice_a = nodes[0].user("alice").await;
    alice_a.join("r1").await;
    let _alice_b = nodes[1].user("alice").await;
    let mut bob = nodes[1].user("bob").await;
    bob.join("r1").await;
    bob.join("r2").await;
    let want = json!({"nodes": 2, "connections": 3, "sessions": 3, "users_online": 2, "rooms": 4});
    for n in &nodes {
        assert_eq!(figures_become(n, &want).await, want);
    }
    let (_, m) = nodes[0].http("GET", "/metrics", None, None).await;
    for line in [
        "switchboard_cluster_nodes{node=\"a\"} 2",
        "switchboard_cluster_users_online{node=\"a\"} 2",
        "switchboard_cluster_rooms{node=\"a\"} 4",
    ] {
        assert!(m.contains(line), "{line}: {m}");
    }
    // The monitor on node b shows them too (its own session adds one
    // connection, session, user and personal room).
    let mut ops = nodes[1].user_with("ops", json!({"role": "admin"})).await;
    ops.send(json!({"type": "room:join", "room": "monitor"}))
        .await;
    let want = json!({"nodes": 2, "connections": 4, "sessions": 4, "users_online": 3, "rooms": 5});
    let mut seen = Value::Null;
    for _ in 0..40 {
        let h = ops.recv_type("health:update").await;
        let c = &h["components"]["cluster"];
        assert_eq!(
            (&c["status"], &c["node"], &c["redis_each"]),
            (&json!("up"), &json!("b"), &json!(["up"])),
            "{h}"
        );
        seen = c["figures"].clone();
        if seen == want {
            break;
        }
    }
    assert_eq!(seen, want);
    // On a live node: Bob leaves r2 (now empty), then disconnects (his
    // personal room empties and he goes offline); the monitor leaves.
    bob.send(json!({"type": "room:leave", "room": "r2"})).await;
    bob.recv_type("room:left").await;
    let want = json!({"nodes": 2, "connections": 4, "sessions": 4, "users_online": 3, "rooms": 4});
    assert_eq!(figures_become(&nodes[0], &want).await, want);
    drop(bob);
    drop(ops);
    let want = json!({"nodes": 2, "connections": 2, "sessions": 2, "users_online": 1, "rooms": 2});
    assert_eq!(figures_become(&nodes[0], &want).await, want);
    // Node b dies: once it is taken for dead, its sessions, users and
    // rooms leave the figures (Alice stays online through node a).
    let b = nodes.remove(1);
    drop(b);
    let want = json!({"nodes": 1, "connections": 1, "sessions": 1, "users_online": 1, "rooms": 2});
    assert_eq!(figures_become(&nodes[0], &want).await, want);
    drop(alice_a);
}
