//! Faults: a node killed mid-stream, Redis restarted (its data lost), a
//! node paused, Redis down.

use super::messages::record;
use super::redis::Redis;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_of_a_killed_node_recover_everything_on_another() {
    let redis = Redis::start();
    let mut nodes = redis.nodes(3, &[]);
    let mut rec_a = nodes[0].user("ra").await;
    let j = rec_a.join("live").await;
    let epoch = j["epoch"].as_str().unwrap().to_string();
    let mut rec_c = nodes[2].user("rc").await;
    rec_c.join("live").await;
    let mut pubb = nodes[1].user("pb").await;
    pubb.join("live").await;
    for i in 0..20 {
        pubb.send(json!({"type": "message:send", "room": "live", "data": i}))
            .await;
    }
    let before = record(&mut rec_a, "live", 20).await;
    let last = *before.keys().last().unwrap();
    // Node a dies; publishing goes on meanwhile.
    let mut a = nodes.remove(0);
    a.restart(true, &[("SWITCHBOARD_NODE_ID", "a2")]);
    drop(rec_a);
    for i in 20..50 {
        pubb.send(json!({"type": "message:send", "room": "live", "data": i}))
            .await;
    }
    // Its client comes back on node c with where it was.
    let mut again = nodes[1].user("ra").await;
    again
        .send(json!({"type": "room:join", "room": "live", "since": last, "epoch": epoch}))
        .await;
    let j = again.recv_type("room:joined").await;
    assert_eq!(j["recovered"], true, "{j}");
    let rest = record(&mut again, "live", 30).await;
    assert_eq!(rest.keys().next(), Some(&21));
    let all_c = record(&mut rec_c, "live", 50).await;
    let mut joined = before;
    joined.extend(rest);
    assert_eq!(
        joined, all_c,
        "the recovered client has exactly what the others have"
    );
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_that_lost_its_data_starts_a_new_epoch_and_says_so() {
    let mut redis = Redis::start();
    let nodes = redis.nodes(2, &[]);
    let mut a = nodes[0].user("ann").await;
    let j = a.join("r").await;
    let old = j["epoch"].as_str().unwrap().to_string();
    let mut b = nodes[1].user("ben").await;
    b.join("r").await;
    for i in 0..3 {
        a.send(json!({"type": "message:send", "room": "r", "data": i}))
            .await;
    }
    record(&mut b, "r", 3).await;
    redis.restart();
    // Sends while it is away or just back may be refused; retry until one
    // gets through (bounded).
    let sent = super::messages::send_until_acked(&mut a, "r", "after").await;
    assert!(sent, "publishing works again after Redis came back");
    // Ben is told the numbering changed, then gets the new message.
    let j = b.recv_type("room:joined").await;
    assert_eq!(j["recovered"], false, "{j}");
    assert_ne!(j["epoch"], old.as_str(), "{j}");
    let m = b.recv_type("message:receive").await;
    assert_eq!(m["data"], "after", "{m}");
    assert_eq!(
        m["seq"].as_u64(),
        Some(j["seq"].as_u64().unwrap() + 1),
        "{m} after {j}"
    );
    // A rejoin with the old epoch is not recovered.
    let mut c = nodes[1].user("cy").await;
    c.send(json!({"type": "room:join", "room": "r", "since": 3, "epoch": old}))
        .await;
    let j = c.recv_type("room:joined").await;
    assert_eq!(j["recovered"], false, "{j}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_node_catches_up_in_order() {
    let redis = Redis::start();
    let nodes = redis.nodes(2, &[]);
    let mut slow = nodes[1].user("sl").await;
    slow.join("p").await;
    let mut talker = nodes[0].user("tk").await;
    talker.join("p").await;
    let pid = nodes[1].pid().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    for i in 0..40 {
        talker
            .send(json!({"type": "message:send", "room": "p", "data": i}))
            .await;
    }
    record(&mut talker, "p", 40).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    let got = record(&mut slow, "p", 40).await;
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (1..=40).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_down_a_send_is_refused_as_unavailable() {
    let mut redis = Redis::start();
    let nodes = redis.nodes(1, &[]);
    let mut a = nodes[0].user("ann").await;
    a.join("d").await;
    redis.kill();
    a.send(json!({"type": "message:send", "room": "d", "data": 1, "id": "m1"}))
        .await;
    let e = a.recv_type("error").await;
    assert_eq!(e["code"], "unavailable", "{e}");
    assert_eq!(e["ref"], "m1", "{e}");
    let (s, h) = nodes[0].get_json("/healthz", None).await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["cluster"]["redis"], "down", "{h}");
    assert_eq!(h["cluster"]["node"], "a", "{h}");
    assert_eq!(
        nodes[0].metric("switchboard_redis_up{node=\"a\"}").await,
        0.0
    );
}

/// A node whose subscription dropped while it was paused, after more than
/// its socket could hold, and whose missed messages were partly trimmed
/// from the stream: its members get what arrived, then are told what is
/// lost (`room:joined` `recovered:false`), then what the stream kept, in
/// order, then live messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_behind_the_stream_says_what_is_lost_and_goes_on() {
    let redis = Redis::start();
    let nodes = redis.nodes(
        2,
        &[
            ("SWITCHBOARD_RETENTION_COUNT", "5"),
            ("SWITCHBOARD_OUTBOX", "4096"),
        ],
    );
    let mut slow = nodes[1].user("sl").await;
    slow.join("t").await;
    let mut talker = nodes[0].user_with("tk", json!({"role": "service"})).await;
    talker.join("t").await;
    let pid = nodes[1].pid().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    // ~8 MB: more than the paused node's socket buffers hold.
    let pad = "x".repeat(20_000);
    const N: u64 = 400;
    for i in 0..N {
        talker
            .send(json!({"type": "message:send", "room": "t", "data": {"i": i, "pad": pad}}))
            .await;
    }
    record(&mut talker, "t", N as usize).await;
    // Its subscription is cut while it sleeps: what Redis held for it is gone.
    let killed = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "CLIENT",
            "KILL",
            "TYPE",
            "pubsub",
        ])
        .output()
        .unwrap();
    assert!(killed.status.success());
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    let mut last = 0;
    let lost = loop {
        let f = slow.recv().await;
        match f["type"].as_str() {
            Some("message:receive") => {
                assert_eq!(f["seq"].as_u64(), Some(last + 1), "in order until the gap");
                last += 1;
            }
            Some("room:joined") => break f,
            _ => {}
        }
    };
    assert!(
        last < N - 5,
        "the socket held it all ({last}): the test did not test a gap"
    );
    assert_eq!(lost["recovered"], false, "{lost}");
    assert_eq!(lost["seq"].as_u64(), Some(N - 5), "{lost}");
    let got = record(&mut slow, "t", 5).await;
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (N - 4..=N).collect::<Vec<_>>()
    );
    talker
        .send(json!({"type": "message:send", "room": "t", "data": "live"}))
        .await;
    let m = slow.recv_type("message:receive").await;
    assert_eq!(
        (m["seq"].as_u64(), &m["data"]),
        (Some(N + 1), &json!("live")),
        "{m}"
    );
}
