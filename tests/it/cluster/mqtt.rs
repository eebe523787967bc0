//! MQTT with several nodes: every node runs a bridge, one (the holder of
//! the lease) numbers broker messages into mapped rooms, so each reaches
//! every member once; when it dies, another takes over.

use super::redis::Redis;
use crate::broker::{Mosquitto, Peer};
use crate::common::Client;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The next `n` broker messages of `room`, in order and without a gap; seq → frame.
async fn record(c: &mut Client, room: &str, n: usize) -> BTreeMap<u64, Value> {
    let mut got = BTreeMap::new();
    while got.len() < n {
        let f = c.recv_type("mqtt:message").await;
        assert_eq!(f["room"], room, "{f}");
        let seq = f["seq"].as_u64().unwrap();
        if let Some((last, _)) = got.last_key_value() {
            assert_eq!(seq, last + 1, "in order, no gap: {f}");
        }
        assert!(got.insert(seq, f).is_none());
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mapped_room_gets_each_broker_message_once_whatever_the_bridges() {
    let broker = Mosquitto::start();
    let redis = Redis::start();
    let url = broker.url();
    let mut nodes = redis.nodes(
        2,
        &[
            ("SWITCHBOARD_MQTT_URL", url.as_str()),
            ("SWITCHBOARD_MQTT_ROOMS", "dev/+=iot"),
            ("SWITCHBOARD_MQTT_RECONNECT_MIN_MS", "100"),
            ("SWITCHBOARD_MQTT_RECONNECT_MAX_MS", "400"),
            ("SWITCHBOARD_NODE_TTL_MS", "2000"),
        ],
    );
    // Both bridges connected (only one holds the lease).
    for n in &nodes {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while n.get_json("/healthz", None).await.1["mqtt"]["connected"] != true {
            assert!(std::time::Instant::now() < deadline, "bridge not connected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // One of them takes the lease; the member is on the other one.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let holder = loop {
        let mut holders = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            if n.get_json("/healthz", None).await.1["cluster"]["mqtt_lease"] == true {
                holders.push(i);
            }
        }
        assert!(holders.len() <= 1, "two holders: {holders:?}");
        if let Some(&h) = holders.first() {
            break h;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nobody took the lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut on_b = nodes[1 - holder].user("bea").await;
    on_b.join("iot").await;
    let mut peer = Peer::connect(broker.port, "dev-1").await;
    for i in 0..10 {
        peer.publish("dev/t", format!("{{\"i\":{i}}}").as_bytes(), true, false)
            .await;
    }
    let got = record(&mut on_b, "iot", 10).await;
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    on_b.expect_no("mqtt:message", Duration::from_millis(800))
        .await;
    // The holder dies; the other node takes over.
    let mut a = nodes.remove(holder);
    a.restart(
        true,
        &[
            ("SWITCHBOARD_NODE_ID", "a2"),
            ("SWITCHBOARD_MQTT_URL", ""),
            ("SWITCHBOARD_MQTT_ROOMS", ""),
        ],
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for i in 10..15 {
        peer.publish("dev/t", format!("{{\"i\":{i}}}").as_bytes(), true, false)
            .await;
    }
    let got = record(&mut on_b, "iot", 5).await;
    let data: Vec<u64> = got
        .values()
        .map(|d| d["payload"]["i"].as_u64().unwrap())
        .collect();
    assert_eq!(data, (10..15).collect::<Vec<_>>());
    assert_eq!(got.keys().next(), Some(&11));
    drop(a);
}
