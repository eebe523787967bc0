//! Delivery classes (`priority`, `volatile`) from the wire, and what a
//! session's queue does with them under a real slow reader: low and
//! volatile frames dropped first and counted (the client is told), critical
//! frames delivered, 4008 only when a normal frame cannot be queued.

use crate::common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

/// A connection with a tiny kernel receive buffer, for a client that stops reading.
async fn small_buffer_client(s: &Server, path: &str) -> Client {
    let addr: std::net::SocketAddr = s.addr.parse().expect("addr");
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(addr).await.expect("connect");
    let (ws, _) = tokio_tungstenite::client_async(s.url(path), MaybeTlsStream::Plain(stream))
        .await
        .expect("upgrade");
    Client::from_stream(ws)
}

/// Sends a message and returns its answer (`ack` or `error`).
async fn answer(c: &mut Client, frame: Value) -> Value {
    let id = frame["id"].as_str().unwrap().to_string();
    c.send(frame).await;
    loop {
        let f = c.recv().await;
        if f["type"] == "ack" && f["id"] == id || f["type"] == "error" && f["ref"] == id {
            return f;
        }
    }
}

async fn dropped_metric(s: &Server, class: &str) -> f64 {
    let (_, body) = s.http("GET", "/metrics", None, None).await;
    let line = format!("switchboard_dropped_frames_total{{class=\"{class}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in /metrics"))
}

#[tokio::test]
async fn priority_and_volatile_are_carried_checked_and_volatile_is_never_kept() {
    let s = Server::start();
    let mut a = s.user("alice").await;
    let mut b = s.user("bob").await;
    a.join("classes").await;
    b.join("classes").await;
    let send = |id: &str, extra: Value| {
        let mut f =
            json!({"type": "message:send", "room": "classes", "data": {"id": id}, "id": id});
        for (k, v) in extra.as_object().unwrap() {
            f[k] = v.clone();
        }
        f
    };
    let ack = answer(&mut a, send("n1", json!({"priority": "normal"}))).await;
    assert_eq!(ack["seq"], 1, "{ack}");
    let ack = answer(&mut a, send("c1", json!({"priority": "critical"}))).await;
    assert_eq!(ack["seq"], 2, "{ack}");
    let ack = answer(
        &mut a,
        send("v1", json!({"volatile": true, "priority": "high"})),
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert!(
        ack.get("seq").is_none(),
        "a volatile message takes no seq: {ack}"
    );
    // (The critical one may overtake the others while they are queued.)
    let mut got = std::collections::HashMap::new();
    for _ in 0..3 {
        let m = b.recv_type("message:receive").await;
        got.insert(m["id"].as_str().unwrap().to_string(), m);
    }
    let n1 = &got["n1"];
    assert!(n1.get("priority").is_none(), "normal is not shown: {n1}");
    let c1 = &got["c1"];
    assert_eq!(
        (&c1["seq"], &c1["priority"]),
        (&json!(2), &json!("critical")),
        "{c1}"
    );
    let v1 = &got["v1"];
    assert_eq!(
        (&v1["volatile"], &v1["priority"]),
        (&json!(true), &json!("high")),
        "{v1}"
    );
    assert!(v1.get("seq").is_none(), "{v1}");

    for (frame, why) in [
        (
            send("x1", json!({"priority": "urgent"})),
            "unknown priority",
        ),
        (send("x2", json!({"priority": 3})), "priority not a string"),
        (
            send("x3", json!({"volatile": "yes"})),
            "volatile not a boolean",
        ),
        (
            send("x4", json!({"volatile": true, "idempotency_key": "k"})),
            "volatile with a key",
        ),
        (
            json!({"type": "direct:send", "to": "bob", "data": 1, "priority": "low", "id": "x5"}),
            "priority on a DM",
        ),
    ] {
        let e = answer(&mut a, frame).await;
        assert_eq!(
            (&e["type"], &e["code"]),
            (&json!("error"), &json!("bad_request")),
            "{why}: {e}"
        );
    }

    // REST: the same options; a volatile publish answers without a seq.
    let svc = token("backend", json!({"role": "service"}));
    let body = json!({"room": "classes", "data": {"rest": 1}, "volatile": true}).to_string();
    let (st, r) = s
        .http("POST", "/api/publish", Some(&svc), Some(&body))
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        serde_json::from_str::<Value>(&r).unwrap(),
        json!({"room": "classes", "volatile": true})
    );
    let body = json!({"room": "classes", "data": {"rest": 2}, "priority": "low"}).to_string();
    let (st, r) = s
        .http("POST", "/api/publish", Some(&svc), Some(&body))
        .await;
    assert_eq!(
        (
            st,
            serde_json::from_str::<Value>(&r).unwrap()["seq"].clone()
        ),
        (200, json!(3)),
        "{r}"
    );
    let body = json!({"room": "classes", "data": 1, "priority": "top"}).to_string();
    let (st, _) = s
        .http("POST", "/api/publish", Some(&svc), Some(&body))
        .await;
    assert_eq!(st, 400);

    // Volatile messages are in no history and in no replay.
    let (st, h) = s.get_json("/api/rooms/classes/history", Some(&svc)).await;
    assert_eq!(st, 200, "{h}");
    let seqs: Vec<u64> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3], "{h}");
    let mut c = s.user("carol").await;
    c.send(json!({"type": "room:join", "room": "classes", "since": 0, "epoch": h["epoch"]}))
        .await;
    let j = c.recv_type("room:joined").await;
    assert_eq!(j["recovered"], true, "{j}");
    let mut replayed = Vec::new();
    while let Some(f) = c.try_recv(Duration::from_millis(300)).await {
        if f["type"] == "message:receive" {
            replayed.push(f["seq"].clone());
        }
    }
    assert_eq!(replayed, vec![json!(1), json!(2), json!(3)]);
}

#[tokio::test]
async fn under_a_slow_reader_low_and_volatile_go_first_critical_gets_through_and_4008_comes_only_for_normal(
) {
    let s = Server::with_env(&[("SWITCHBOARD_OUTBOX", "16")]);
    const N: usize = 300;
    let pad = "x".repeat(30_000);
    let mut p = s.user_with("publisher", json!({"role": "service"})).await;
    p.join("firehose").await;
    let mut slow =
        small_buffer_client(&s, &format!("/ws?token={}", token("sloth", json!({})))).await;
    slow.greeted().await;
    slow.join("firehose").await;

    // The slow client stops reading. Low and volatile messages, each far
    // larger than its buffers, then three critical ones.
    for i in 0..2 * N {
        let class = if i % 2 == 0 {
            json!({"priority": "low"})
        } else {
            json!({"volatile": true})
        };
        let mut f = json!({"type": "message:send", "room": "firehose", "data": {"n": i, "pad": pad}, "id": format!("m{i}"), "exclude_self": true});
        for (k, v) in class.as_object().unwrap() {
            f[k] = v.clone();
        }
        assert_eq!(answer(&mut p, f).await["type"], "ack");
    }
    for i in 0..3 {
        let f = json!({"type": "message:send", "room": "firehose", "data": {"critical": i}, "id": format!("c{i}"), "priority": "critical", "exclude_self": true});
        assert_eq!(answer(&mut p, f).await["type"], "ack");
    }
    let (low, volatile) = (
        dropped_metric(&s, "low").await,
        dropped_metric(&s, "volatile").await,
    );
    assert!(
        low > 0.0 && volatile > 0.0,
        "dropped: low {low}, volatile {volatile}"
    );
    assert_eq!(
        s.metric("switchboard_slow_consumers_total").await,
        0.0,
        "nothing closed for droppable frames"
    );

    // It reads again: every low and volatile message either arrives or is
    // counted in a `dropped` frame; the critical ones all arrive, ahead of
    // the low and volatile ones still queued for it.
    let (mut got_low, mut got_volatile, mut told_low, mut told_volatile) = (0u64, 0u64, 0u64, 0u64);
    let mut criticals = Vec::new();
    let mut after_critical = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got_low + told_low < N as u64
        || got_volatile + told_volatile < N as u64
        || criticals.len() < 3
    {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let f = slow.try_recv(left).await.unwrap_or_else(|| {
            panic!("stalled: low {got_low}+{told_low}, volatile {got_volatile}+{told_volatile}, critical {criticals:?}")
        });
        match (
            f["type"].as_str(),
            f["priority"].as_str(),
            f["volatile"].as_bool(),
        ) {
            (Some("message:receive"), Some("critical"), _) => {
                criticals.push(f["data"]["critical"].clone())
            }
            (Some("message:receive"), _, Some(true)) => {
                got_volatile += 1;
                after_critical += !criticals.is_empty() as usize;
            }
            (Some("message:receive"), Some("low"), _) => {
                got_low += 1;
                after_critical += !criticals.is_empty() as usize;
            }
            (Some("dropped"), _, _) => {
                told_low += f["counts"]["low"].as_u64().unwrap_or(0);
                told_volatile += f["counts"]["volatile"].as_u64().unwrap_or(0);
            }
            _ => {}
        }
    }
    assert_eq!(criticals, vec![json!(0), json!(1), json!(2)]);
    assert_eq!(
        (got_low + told_low, got_volatile + told_volatile),
        (N as u64, N as u64)
    );
    assert!(
        told_low > 0 && told_volatile > 0,
        "the client is told: {told_low}, {told_volatile}"
    );
    assert_eq!(
        (told_low as f64, told_volatile as f64),
        (low, volatile),
        "told what was counted"
    );
    assert!(
        after_critical > 0,
        "queued low/volatile frames came after the critical ones"
    );
    slow.send(json!({"type": "ping", "id": "alive"})).await;
    assert_eq!(slow.recv_type("pong").await["id"], "alive");

    // It stops reading again: normal messages fill its queue, and only
    // then is it closed as a slow consumer.
    for i in 0..N {
        let f = json!({"type": "message:send", "room": "firehose", "data": {"n": i, "pad": pad}, "id": format!("n{i}"), "exclude_self": true});
        assert_eq!(answer(&mut p, f).await["type"], "ack");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let close = loop {
        match tokio::time::timeout_at(deadline, slow.inner().next()).await {
            Err(_) => panic!("the slow consumer was never closed"),
            Ok(None) | Ok(Some(Err(_))) => break None,
            Ok(Some(Ok(Message::Close(c)))) => break c.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
        }
    };
    assert_eq!(close, Some(4008));
    assert!(s.metric("switchboard_slow_consumers_total").await >= 1.0);
}
