//! The MQTT bridge against a real broker (mosquitto, started per test):
//! messages both ways, access rules, topic syntax, broker outages.

use crate::broker::{free_port, Mosquitto, Peer};
use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// A hub bridged to `url`, mapping `alicia/+/+` to room `iot`, with quick reconnects.
fn hub(url: &str, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("SWITCHBOARD_MQTT_URL", url),
        ("SWITCHBOARD_MQTT_ROOMS", "alicia/+/+=iot"),
        ("SWITCHBOARD_MQTT_RECONNECT_MIN_MS", "100"),
        ("SWITCHBOARD_MQTT_RECONNECT_MAX_MS", "400"),
        ("SWITCHBOARD_MQTT_HEALTH_PREFIX", "sbtest"),
    ];
    env.extend_from_slice(extra);
    Server::with_env(&env)
}

/// Polls `/healthz` until the bridge's `connected` is `want`; returns its `mqtt` object.
pub async fn bridge_connected(s: &Server, want: bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    loop {
        let (status, h) = s.get_json("/healthz", None).await;
        assert_eq!(status, 200, "{h}");
        // With Redis, mapped rooms are fed by the node holding the lease:
        // wait for it too (one node: this one takes it once connected).
        let leased = !want || h["cluster"]["mqtt_lease"] != false;
        if h["mqtt"]["connected"] == want && leased {
            return h["mqtt"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bridge never became connected={want}: {h}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn subscribe(c: &mut Client, filter: &str, id: &str) -> Value {
    c.send(json!({"type": "mqtt:subscribe", "filter": filter, "id": id}))
        .await;
    let r = c.recv().await;
    assert_eq!(
        (r["type"].as_str(), r["id"].as_str()),
        (Some("mqtt:subscribed"), Some(id)),
        "{r}"
    );
    r
}

fn error_of(v: &Value) -> (Option<&str>, Option<&str>) {
    assert_eq!(v["type"], "error", "{v}");
    (v["code"].as_str(), v["ref"].as_str())
}

#[tokio::test]
async fn broker_messages_reach_mapped_rooms_and_wildcard_subscribers() {
    let broker = Mosquitto::start();
    let s = hub(&broker.url(), &[]);
    bridge_connected(&s, true).await;
    let mut member = s.user("alice").await;
    member.join("iot").await;
    let mut watcher = s.user_with("bob", json!({"mqtt_sub": ["sensors/#"]})).await;
    let r = subscribe(&mut watcher, "sensors/+/temp", "s1").await;
    assert_eq!(
        (r["filter"].as_str(), r["active"].as_bool()),
        (Some("sensors/+/temp"), Some(true))
    );

    // Overlaps `sensors/+/temp` without covering it: the broker holds both.
    let mut other = s.user_with("dan", json!({"mqtt_sub": ["sensors/#"]})).await;
    subscribe(&mut other, "sensors/kitchen/+", "s2").await;

    let mut peer = Peer::connect(broker.port, "test-peer").await;
    // JSON is parsed, and a mapped room gives it a seq like any room message.
    peer.publish("alicia/kitchen/temp", br#"{"t": 21.5}"#, true, false)
        .await;
    let m = member.recv_type("mqtt:message").await;
    assert_eq!(m["room"], "iot");
    assert_eq!(m["seq"], 1);
    assert_eq!(m["topic"], "alicia/kitchen/temp");
    assert_eq!(m["payload"], json!({"t": 21.5}));
    assert_eq!(
        (m["qos"].as_u64(), m["retain"].as_bool()),
        (Some(1), Some(false))
    );
    assert!(
        m.get("binary").is_none() && m["ts"].as_u64().is_some(),
        "{m}"
    );

    // Wildcard subscribers: binary payloads are base64 and flagged, text is a string.
    peer.publish("sensors/kitchen/temp", &[0xff, 0x00, 0x10], true, false)
        .await;
    peer.publish("sensors/kitchen/hum", b"55", true, false)
        .await;
    peer.publish("sensors/hall/temp", b"warm", false, false)
        .await;
    let m = watcher.recv_type("mqtt:message").await;
    assert_eq!(
        (m["topic"].as_str(), m["payload"].as_str()),
        (Some("sensors/kitchen/temp"), Some("/wAQ"))
    );
    assert_eq!(m["binary"], true);
    assert!(m.get("room").is_none() && m.get("seq").is_none(), "{m}");
    let m = watcher.recv_type("mqtt:message").await;
    assert_eq!(
        (m["topic"].as_str(), m["payload"].as_str()),
        (Some("sensors/hall/temp"), Some("warm"))
    );
    assert_eq!(m["qos"], 0);
    // Exactly one copy each, though the broker holds two matching filters.
    let m = other.recv_type("mqtt:message").await;
    assert_eq!(m["topic"], "sensors/kitchen/temp");
    assert_eq!(
        other.recv_type("mqtt:message").await["topic"],
        "sensors/kitchen/hum"
    );
    other
        .expect_no("mqtt:message", Duration::from_millis(300))
        .await;
    // Not matched: `sensors/kitchen/hum`; not mapped: nothing reached the room.
    watcher
        .expect_no("mqtt:message", Duration::from_millis(300))
        .await;
    member
        .expect_no("mqtt:message", Duration::from_millis(100))
        .await;

    // The room's message is in its history: a late joiner recovers it.
    let mut late = s.user("carol").await;
    late.send(json!({"type": "room:join", "room": "iot", "since": 0}))
        .await;
    let j = late.recv_type("room:joined").await;
    assert_eq!(
        (j["seq"].as_u64(), j["recovered"].as_bool()),
        (Some(1), Some(true))
    );
    let replay = late.recv_type("mqtt:message").await;
    assert_eq!(
        (replay["seq"].as_u64(), &replay["payload"]),
        (Some(1), &json!({"t": 21.5}))
    );

    // Unsubscribed: nothing more arrives.
    watcher
        .send(json!({"type": "mqtt:unsubscribe", "filter": "sensors/+/temp", "id": "u1"}))
        .await;
    let u = watcher.recv().await;
    assert_eq!(
        (u["type"].as_str(), u["id"].as_str()),
        (Some("mqtt:unsubscribed"), Some("u1"))
    );
    peer.publish("sensors/hall/temp", b"1", true, false).await;
    watcher
        .expect_no("mqtt:message", Duration::from_millis(300))
        .await;
    watcher
        .send(json!({"type": "mqtt:unsubscribe", "filter": "sensors/+/temp", "id": "u2"}))
        .await;
    assert_eq!(
        error_of(&watcher.recv().await),
        (Some("not_subscribed"), Some("u2"))
    );
    // Each message came once from the broker: 4 before the unsubscribe, and
    // the last one only if the broker had not yet processed the UNSUBSCRIBE
    // (`mqtt:unsubscribed` does not wait for it; the bridge routes it to no one).
    let received = s.metric("switchboard_mqtt_received_total").await;
    assert!((4.0..=5.0).contains(&received), "{received}");
    // What the bridge holds now: `alicia/+/+` and dan's `sensors/kitchen/+`.
    assert_eq!(s.metric("switchboard_mqtt_subscriptions").await, 2.0);
}

/// A mapped room is stored like any room: broker messages and members'
/// messages share one numbering, and both survive a restart.
#[tokio::test]
async fn broker_messages_in_a_mapped_room_survive_a_restart() {
    let broker = Mosquitto::start();
    let mut s = hub(&broker.url(), &[]);
    bridge_connected(&s, true).await;
    let mut member = s.user("alice").await;
    let epoch = member.join("iot").await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    let mut peer = Peer::connect(broker.port, "store-peer").await;
    peer.publish("alicia/hall/temp", br#"{"t": 19}"#, true, false)
        .await;
    assert_eq!(member.recv_type("mqtt:message").await["seq"], 1);
    member
        .send(json!({"type": "message:send", "room": "iot", "data": "hi", "id": "m1"}))
        .await;
    assert_eq!(member.recv_type("ack").await["seq"], 2);
    peer.publish("alicia/hall/hum", b"40", true, false).await;
    assert_eq!(member.recv_type("mqtt:message").await["seq"], 3);
    drop(member);
    s.restart(false, &[]);

    let mut late = s.user("carol").await;
    late.send(json!({"type": "room:join", "room": "iot", "since": 0, "epoch": epoch}))
        .await;
    let j = late.recv_type("room:joined").await;
    assert_eq!(
        (
            j["seq"].as_u64(),
            j["recovered"].as_bool(),
            j["epoch"].as_str()
        ),
        (Some(3), Some(true), Some(epoch.as_str())),
        "{j}"
    );
    let replay: Vec<(String, u64)> = [late.recv().await, late.recv().await, late.recv().await]
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap().to_string(),
                f["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        replay,
        vec![
            ("mqtt:message".to_string(), 1),
            ("message:receive".to_string(), 2),
            ("mqtt:message".to_string(), 3)
        ]
    );
}

#[tokio::test]
async fn client_publishes_reach_the_broker_and_access_is_enforced() {
    let broker = Mosquitto::start();
    let s = hub(&broker.url(), &[("SWITCHBOARD_DEV", "true")]);
    bridge_connected(&s, true).await;
    let mut peer = Peer::connect(broker.port, "test-sub").await;
    peer.subscribe("cmd/#").await;
    let mut c = s
        .user_with(
            "dev",
            json!({"mqtt_pub": ["cmd/+"], "mqtt_sub": ["state/#"]}),
        )
        .await;

    c.send(
        json!({"type": "mqtt:publish", "topic": "cmd/lamp", "payload": "on", "qos": 1, "id": "c9"}),
    )
    .await;
    let ack = c.recv().await;
    assert_eq!(
        (ack["type"].as_str(), ack["id"].as_str()),
        (Some("ack"), Some("c9")),
        "{ack}"
    );
    let m = peer.message().await;
    assert_eq!((m.topic.as_str(), &m.payload[..]), ("cmd/lamp", &b"on"[..]));
    assert_eq!(m.qos, rumqttc::QoS::AtLeastOnce);

    c.send(json!({"type": "mqtt:publish", "topic": "cmd/fan", "payload": {"speed": 2}, "retain": true, "id": "c10"})).await;
    assert_eq!(c.recv().await["id"], "c10");
    let m = peer.message().await;
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        ("cmd/fan", &br#"{"speed":2}"#[..])
    );
    c.send(json!({"type": "mqtt:publish", "topic": "cmd/raw", "payload": "/wAQ", "binary": true, "qos": 1, "id": "c11"})).await;
    assert_eq!(c.recv().await["id"], "c11");
    assert_eq!(&peer.message().await.payload[..], &[0xff, 0x00, 0x10][..]);

    // Refusals, each with its own code; the connection carries on.
    let cases = [
        (
            json!({"type": "mqtt:publish", "topic": "cmd/lamp/x", "payload": 1, "id": "f1"}),
            "forbidden",
        ),
        (
            json!({"type": "mqtt:publish", "topic": "secret", "payload": 1, "id": "f2"}),
            "forbidden",
        ),
        (
            json!({"type": "mqtt:subscribe", "filter": "#", "id": "f3"}),
            "forbidden",
        ),
        (
            json!({"type": "mqtt:publish", "topic": "cmd/+", "payload": 1, "id": "f4"}),
            "invalid_topic",
        ),
        (
            json!({"type": "mqtt:publish", "topic": "x".repeat(300), "payload": 1, "id": "f5"}),
            "invalid_topic",
        ),
        (
            json!({"type": "mqtt:publish", "topic": "$SYS/x", "payload": 1, "id": "f6"}),
            "invalid_topic",
        ),
        (
            json!({"type": "mqtt:subscribe", "filter": "a/#/b", "id": "f7"}),
            "invalid_topic",
        ),
        (
            json!({"type": "mqtt:publish", "topic": "cmd/a", "payload": 1, "qos": 2, "id": "f8"}),
            "bad_request",
        ),
        (
            json!({"type": "mqtt:publish", "topic": "cmd/a", "id": "f9"}),
            "bad_request",
        ),
    ];
    for (frame, code) in cases {
        let id = frame["id"].as_str().unwrap().to_string();
        c.send(frame).await;
        assert_eq!(error_of(&c.recv().await), (Some(code), Some(id.as_str())));
    }
    assert!(peer.try_message(Duration::from_millis(300)).await.is_none());
    subscribe(&mut c, "state/+", "ok1").await;

    // Guests get no MQTT access by default, and users none without claims.
    let mut g = s.guest("g").await;
    g.send(json!({"type": "mqtt:publish", "topic": "cmd/lamp", "payload": 1, "id": "g1"}))
        .await;
    assert_eq!(error_of(&g.recv().await), (Some("forbidden"), Some("g1")));
    let mut plain = s.user("plain").await;
    plain
        .send(json!({"type": "mqtt:subscribe", "filter": "cmd/#", "id": "p1"}))
        .await;
    assert_eq!(
        error_of(&plain.recv().await),
        (Some("forbidden"), Some("p1"))
    );
    // A token with a malformed pattern is refused outright.
    let bad = token("odd", json!({"mqtt_sub": ["a/#/b"]}));
    assert_eq!(
        s.http("GET", &format!("/ws?token={bad}"), None, None)
            .await
            .0,
        401
    );
    // Dev tokens carry the claims too.
    let (status, t) = s
        .get_json("/api/dev/token?sub=devtool&mqtt_pub=cmd/%2B", None)
        .await;
    assert_eq!(status, 200, "{t}");
    let mut d = s
        .ws(&format!("/ws?token={}", t["token"].as_str().unwrap()))
        .await;
    d.greeted().await;
    d.send(json!({"type": "mqtt:publish", "topic": "cmd/dev", "payload": 1, "id": "d1"}))
        .await;
    assert_eq!(d.recv().await["id"], "d1");
    assert_eq!(peer.message().await.topic, "cmd/dev");
    let (status, _) = s
        .get_json("/api/dev/token?sub=x&mqtt_sub=a/%23/b", None)
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_outage_queues_qos1_within_the_bound_and_delivers_after_reconnect() {
    let mut broker = Mosquitto::start();
    let s = hub(&broker.url(), &[("SWITCHBOARD_MQTT_QUEUE", "5")]);
    bridge_connected(&s, true).await;
    // The publisher also subscribes through the bridge: after the restart the
    // bridge must resubscribe before its queued publishes come back.
    let claims = json!({"mqtt_pub": ["cmd/#"], "mqtt_sub": ["cmd/#"]});
    let mut c = s.user_with("dev", claims).await;
    subscribe(&mut c, "cmd/#", "s1").await;

    broker.kill();
    let state = bridge_connected(&s, false).await;
    assert!(state["last_error"].as_str().is_some(), "{state}");
    for i in 0..5 {
        c.send(json!({"type": "mqtt:publish", "topic": format!("cmd/{i}"), "payload": i, "qos": 1, "id": format!("q{i}")})).await;
    }
    c.send(json!({"type": "mqtt:publish", "topic": "cmd/5", "payload": 5, "qos": 1, "id": "q5"}))
        .await;
    assert_eq!(
        error_of(&c.recv().await),
        (Some("mqtt_queue_full"), Some("q5"))
    );
    c.send(json!({"type": "mqtt:publish", "topic": "cmd/x", "payload": 0, "qos": 0, "id": "z0"}))
        .await;
    assert_eq!(
        error_of(&c.recv().await),
        (Some("mqtt_unavailable"), Some("z0"))
    );
    // Not acknowledged while the broker is away.
    c.expect_no("ack", Duration::from_millis(500)).await;
    let (_, h) = s.get_json("/healthz", None).await;
    assert_eq!(h["mqtt"]["queued"], 5, "{h}");
    assert_eq!(s.metric("switchboard_mqtt_queued").await, 5.0);

    broker.restart();
    let state = bridge_connected(&s, true).await;
    assert_eq!(state["reconnects"], 1, "{state}");
    let mut acks = Vec::new();
    let mut echoed = Vec::new();
    while acks.len() < 5 || echoed.len() < 5 {
        let f = c.recv().await;
        match f["type"].as_str() {
            Some("ack") => acks.push(f["id"].as_str().unwrap().to_string()),
            Some("mqtt:message") => echoed.push(f["payload"].as_u64().unwrap()),
            _ => panic!("unexpected {f}"),
        }
    }
    assert_eq!(acks, ["q0", "q1", "q2", "q3", "q4"]);
    echoed.sort();
    assert_eq!(echoed, [0, 1, 2, 3, 4]);
    // The resubscribed filter also carries new messages from other clients.
    let mut peer = Peer::connect(broker.port, "test-after").await;
    peer.publish("cmd/late", b"\"late\"", true, false).await;
    let m = c.recv_type("mqtt:message").await;
    assert_eq!(
        (m["topic"].as_str(), m["payload"].as_str()),
        (Some("cmd/late"), Some("late"))
    );
    assert_eq!(s.metric("switchboard_mqtt_reconnects_total").await, 1.0);
    assert_eq!(s.metric("switchboard_mqtt_connected").await, 1.0);
    assert_eq!(s.metric("switchboard_mqtt_queued").await, 0.0);
}

#[tokio::test]
async fn the_hub_serves_with_the_broker_down_and_connects_when_it_comes() {
    let port = free_port();
    let s = hub(&format!("mqtt://127.0.0.1:{port}"), &[]);
    let state = bridge_connected(&s, false).await;
    assert_eq!(state["broker"], format!("127.0.0.1:{port}"));
    // WebSocket clients are served as usual.
    let mut a = s.user("alice").await;
    let mut b = s.user_with("bob", json!({"mqtt_sub": ["alicia/#"]})).await;
    a.join("general").await;
    b.join("general").await;
    a.send(json!({"type": "message:send", "room": "general", "data": {"text": "hi"}, "id": "m1"}))
        .await;
    assert_eq!(b.recv_type("message:receive").await["data"]["text"], "hi");
    assert_eq!(a.recv_type("ack").await["id"], "m1");
    // A subscription made now is kept and becomes active on connect.
    let r = subscribe(&mut b, "alicia/#", "s1").await;
    assert_eq!(r["active"], false);

    let broker = Mosquitto::on(port);
    bridge_connected(&s, true).await;
    let mut peer = Peer::connect(broker.port, "late-peer").await;
    peer.publish("alicia/hall/door", b"open", true, false).await;
    let m = b.recv_type("mqtt:message").await;
    assert_eq!(
        (m["topic"].as_str(), m["payload"].as_str()),
        (Some("alicia/hall/door"), Some("open"))
    );
    // The mapped room was subscribed on connect too.
    let mut member = s.user("carol").await;
    member
        .send(json!({"type": "room:join", "room": "iot", "since": 0}))
        .await;
    assert_eq!(
        member.recv_type("mqtt:message").await["topic"],
        "alicia/hall/door"
    );
}

#[tokio::test]
async fn without_a_broker_mqtt_frames_are_refused() {
    let s = Server::start();
    let mut c = s.user_with("dev", json!({"mqtt_pub": ["#"]})).await;
    c.send(json!({"type": "mqtt:publish", "topic": "a", "payload": 1, "id": "x"}))
        .await;
    assert_eq!(
        error_of(&c.recv().await),
        (Some("mqtt_unavailable"), Some("x"))
    );
    let (_, h) = s.get_json("/healthz", None).await;
    assert!(h["mqtt"].is_null(), "{h}");
}

#[tokio::test]
async fn mqtts_verifies_the_broker_with_the_configured_ca() {
    let (broker, ca) = Mosquitto::tls();
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let ca = ca.to_string_lossy().to_string();
    let s = hub(&url, &[("SWITCHBOARD_MQTT_CA_FILE", &ca)]);
    bridge_connected(&s, true).await;
    let mut c = s.user_with("ops", json!({"role": "admin"})).await;
    subscribe(&mut c, "secure/#", "s1").await;
    let out = std::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "--cafile",
            &ca,
        ])
        .args(["-q", "1", "-t", "secure/door", "-m", "{\"open\":true}"])
        .output()
        .expect("mosquitto_pub");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = c.recv_type("mqtt:message").await;
    assert_eq!(
        (m["topic"].as_str(), &m["payload"]),
        (Some("secure/door"), &json!({"open": true}))
    );

    // A broker whose certificate the CA did not sign is refused.
    let (other, _) = Mosquitto::tls();
    let s2 = hub(
        &format!("mqtts://127.0.0.1:{}", other.port),
        &[("SWITCHBOARD_MQTT_CA_FILE", &ca)],
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, h) = s2.get_json("/healthz", None).await;
        assert_eq!(h["mqtt"]["connected"], false, "{h}");
        if let Some(e) = h["mqtt"]["last_error"].as_str() {
            assert!(e.contains("TLS") || e.contains("certificate"), "{e}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no TLS error: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A broker message over `SWITCHBOARD_MQTT_MAX_PACKET` is dropped and
/// counted; the broker connection stays up, so the next one arrives.
#[tokio::test]
async fn an_oversized_broker_message_is_dropped_and_counted_not_a_reconnect() {
    let broker = Mosquitto::start();
    let s = hub(&broker.url(), &[("SWITCHBOARD_MQTT_MAX_PACKET", "2048")]);
    let before = bridge_connected(&s, true).await;
    let mut c = s.user_with("ops", json!({"role": "admin"})).await;
    subscribe(&mut c, "big/#", "s").await;
    let mut peer = Peer::connect(broker.port, "big-sender").await;
    // A QoS 1 PUBLISH on `big/x` is 1 + 2 (length) + 2 + 5 (topic) + 2 (id)
    // bytes plus the payload: 2036 bytes of payload make exactly 2048.
    let at_limit = "a".repeat(2036);
    let over = "b".repeat(2037);
    let after = "c".repeat(2036);
    for payload in [&at_limit, &over, &after] {
        peer.publish("big/x", payload.as_bytes(), true, false).await;
    }
    for want in [&at_limit, &after] {
        let m = c.recv_type("mqtt:message").await;
        assert_eq!(m["payload"].as_str(), Some(want.as_str()));
    }
    while let Some(f) = c.try_recv(Duration::from_millis(300)).await {
        assert_ne!(
            f["type"], "mqtt:message",
            "the oversized message was relayed"
        );
    }
    assert_eq!(s.metric("switchboard_mqtt_oversized_total").await, 1.0);
    assert_eq!(s.metric("switchboard_mqtt_received_total").await, 2.0);
    let after = bridge_connected(&s, true).await;
    assert_eq!(after["reconnects"], before["reconnects"], "{after}");
    assert_eq!(after["last_error"], before["last_error"], "{after}");
}
