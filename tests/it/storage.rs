//! Embedded storage: room history across restarts, acks after the write,
//! storage errors (a locked file, a full database), retention, and storage off.

use crate::common::{single_node_only, token, with_redis, Client, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Sends `n` messages tagged `tag` to `room` and waits for every ack;
/// returns the acked seqs.
async fn send_acked(c: &mut Client, room: &str, tag: &str, n: usize) -> Vec<u64> {
    let frames = (0..n)
        .map(|i| json!({"type": "message:send", "room": room, "data": {"tag": tag, "i": i}, "id": format!("{tag}{i}")}))
        .collect();
    let answers = c.burst(frames, n).await;
    answers
        .iter()
        .map(|a| {
            assert_eq!(a["type"], "ack", "{a}");
            a["seq"].as_u64().expect("seq")
        })
        .collect()
}

/// Joins with `since` (and `epoch`); returns `room:joined` and the replay.
async fn join_since(
    c: &mut Client,
    room: &str,
    since: u64,
    epoch: Option<&str>,
) -> (Value, Vec<Value>) {
    let mut f = json!({"type": "room:join", "room": room, "since": since});
    if let Some(e) = epoch {
        f["epoch"] = json!(e);
    }
    c.send(f).await;
    let j = c.recv_type("room:joined").await;
    let mut replay = Vec::new();
    let expected = if j["recovered"] == true {
        j["seq"].as_u64().unwrap() - since
    } else {
        0
    };
    while (replay.len() as u64) < expected {
        let m = c.recv().await;
        if m["type"] == "message:receive" && m["room"] == room {
            replay.push(m);
        }
    }
    (j, replay)
}

/// The seqs of the messages a REST history request answers, as `user`.
async fn history_seqs(s: &Server, path: &str, user: &str) -> Vec<u64> {
    let (st, h) = s.get_json(path, Some(&token(user, json!({})))).await;
    assert_eq!(st, 200, "{h}");
    h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

fn tags(replay: &[Value]) -> Vec<(u64, String)> {
    replay
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                format!("{}{}", m["data"]["tag"].as_str().unwrap(), m["data"]["i"]),
            )
        })
        .collect()
}

#[tokio::test]
async fn room_history_survives_a_restart_with_the_same_epoch() {
    let mut s = Server::start();
    let mut a = s.user("alice").await;
    let epoch = a.join("general").await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        send_acked(&mut a, "general", "m", 5).await,
        vec![1, 2, 3, 4, 5]
    );
    drop(a);
    s.restart(false, &[]);

    // Over REST before anyone joins: the room is read from the database.
    let (st, h) = s
        .get_json(
            "/api/rooms/general/history?since=0",
            Some(&token("alice", json!({}))),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        (h["epoch"].as_str(), h["seq"].as_u64()),
        (Some(epoch.as_str()), Some(5)),
        "{h}"
    );
    assert_eq!(h["messages"].as_array().unwrap().len(), 5);

    let mut a = s.user("alice").await;
    let (j, replay) = join_since(&mut a, "general", 2, Some(&epoch)).await;
    assert_eq!(j["recovered"], true, "{j}");
    assert_eq!(
        (j["seq"].as_u64(), j["epoch"].as_str()),
        (Some(5), Some(epoch.as_str()))
    );
    assert_eq!(
        tags(&replay),
        vec![(3, "m2".into()), (4, "m3".into()), (5, "m4".into())]
    );
    // The numbering continues.
    assert_eq!(send_acked(&mut a, "general", "n", 1).await, vec![6]);
}

/// Acks come only after the commit, so an acknowledged message survives a
/// SIGKILL right after its ack, and a room that starts after a restart
/// loads its history before it handles the first message.
#[tokio::test]
async fn acked_messages_survive_a_kill() {
    if single_node_only("numbering after a crash of the embedded database; Redis keeps numbering across a node's death (tests/it/cluster)") {
        return;
    }
    let mut s = Server::start();
    // A service token: exempt from the message rate limit.
    let mut a = s.user_with("alice", json!({"role": "service"})).await;
    a.join("r").await;
    let seqs = send_acked(&mut a, "r", "k", 200).await;
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    s.restart(true, &[]);

    // Two clients pipe a join and a message at once into the cold room: the
    // message must get a seq above every one given out before the kill,
    // never a number of a fresh history. After a kill the room continues
    // above its stored reservation (seqs up to it may have been delivered
    // and never stored), so no replay is offered from before it.
    let mut b = s.user("bob").await;
    let mut c = s.user("carol").await;
    for (cl, tag) in [(&mut b, "b"), (&mut c, "c")] {
        cl.send(json!({"type": "room:join", "room": "r"})).await;
        cl.send(
            json!({"type": "message:send", "room": "r", "data": {"tag": tag, "i": 0}, "id": tag}),
        )
        .await;
    }
    let mut got = Vec::new();
    let mut head = u64::MAX;
    for cl in [&mut b, &mut c] {
        let j = cl.recv_type("room:joined").await;
        head = head.min(j["seq"].as_u64().unwrap());
        got.push(cl.recv_type("ack").await["seq"].as_u64().unwrap());
    }
    assert!(head >= 200, "{head}");
    got.sort();
    assert!(got[0] > 200 && got[1] == got[0] + 1, "{got:?}");
    let (j, _) = join_since(&mut b, "r", 2, None).await;
    assert_eq!(j["recovered"], false, "{j}");
    let (j, replay) = join_since(&mut b, "r", got[0] - 1, None).await;
    assert_eq!((j["recovered"].as_bool(), replay.len()), (Some(true), 2));
    // Every acknowledged message is still there to read.
    let seqs = history_seqs(&s, "/api/rooms/r/history?since=0&limit=1000", "bob").await;
    // Memory keeps the newest 200 (SWITCHBOARD_HISTORY_SIZE).
    let mut want: Vec<u64> = (3..=200).collect();
    want.extend(&got);
    assert_eq!(seqs, want);
}

/// Another process holds the database's write lock for a while.
fn lock(path: &std::path::Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).expect("open the database");
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.execute_batch("BEGIN EXCLUSIVE")
        .expect("take the write lock");
    c
}

#[tokio::test]
async fn the_fan_out_never_waits_for_the_write_but_the_ack_does() {
    if single_node_only("the embedded database's write path") {
        return;
    }
    let s = Server::with_env(&[
        ("SWITCHBOARD_DB_BUSY_MS", "10000"),
        ("SWITCHBOARD_FAST_ACK_ROOMS", "fast-*"),
    ]);
    let mut a = s.user("alice").await;
    let mut b = s.user("bob").await;
    for r in ["slow", "fast-1"] {
        a.join(r).await;
        b.join(r).await;
    }
    let locked = lock(&s.db_path().unwrap());
    let sent = Instant::now();
    a.send(json!({"type": "message:send", "room": "slow", "data": 1, "id": "s1"}))
        .await;
    let m = b.recv_type("message:receive").await;
    assert_eq!(m["seq"], 1);
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "the fan-out waited for the disk"
    );
    a.recv_type("message:receive").await;
    a.expect_no("ack", Duration::from_millis(800)).await;

    // A room flagged for fast acks is acked after its fan-out, write or not.
    a.send(json!({"type": "message:send", "room": "fast-1", "data": 2, "id": "f1"}))
        .await;
    let ack = a.recv_type("ack").await;
    assert_eq!(
        (ack["id"].as_str(), ack["seq"].as_u64()),
        (Some("f1"), Some(1))
    );

    drop(locked); // rolls back, releasing the lock
    let ack = a.recv_type("ack").await;
    assert_eq!(
        (ack["id"].as_str(), ack["seq"].as_u64()),
        (Some("s1"), Some(1))
    );
}

#[tokio::test]
async fn a_locked_database_gives_storage_errors_and_the_server_carries_on() {
    if single_node_only("room messages are not written to the embedded database") {
        return;
    }
    let mut s = Server::with_env(&[("SWITCHBOARD_DB_BUSY_MS", "300")]);
    let mut a = s.user("alice").await;
    let mut b = s.user("bob").await;
    a.join("r").await;
    b.join("r").await;
    let locked = lock(&s.db_path().unwrap());
    a.send(json!({"type": "message:send", "room": "r", "data": "lost", "id": "x1"}))
        .await;
    assert_eq!(b.recv_type("message:receive").await["data"], "lost");
    let e = a.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("storage_error"), Some("x1")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("locked"), "{e}");
    assert!(s.metric("switchboard_storage_errors_total").await >= 1.0);
    assert!(
        s.metric("switchboard_errors_total{code=\"storage_error\"}")
            .await
            >= 1.0
    );
    // Everything else still works, for everyone.
    a.send(json!({"type": "ping", "id": "p"})).await;
    assert_eq!(a.recv_type("pong").await["id"], "p");
    let (st, _) = s.http("GET", "/healthz", None, None).await;
    assert_eq!(st, 200);

    drop(locked);
    assert_eq!(send_acked(&mut a, "r", "ok", 2).await, vec![2, 3]);
    drop((a, b));
    s.restart(false, &[]);
    let mut a = s.user("alice").await;
    // Message 1 was never acknowledged and is not stored: a replay from 0
    // would skip it, so none is offered; what was acknowledged is all there.
    let (j, _) = join_since(&mut a, "r", 0, None).await;
    assert_eq!(
        (j["recovered"].as_bool(), j["seq"].as_u64()),
        (Some(false), Some(3)),
        "{j}"
    );
    let (j, replay) = join_since(&mut a, "r", 1, None).await;
    assert_eq!(j["recovered"], true);
    assert_eq!(tags(&replay), vec![(2, "ok0".into()), (3, "ok1".into())]);
}

#[tokio::test]
async fn a_full_database_refuses_writes_and_keeps_what_it_acknowledged() {
    if single_node_only("room messages are not written to the embedded database") {
        return;
    }
    let mut s = Server::with_env(&[("SWITCHBOARD_DB_MAX_BYTES", "327680")]);
    let mut a = s.user("alice").await;
    a.join("big").await;
    let blob = "x".repeat(8000);
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..200 {
        let id = format!("b{i}");
        a.send(json!({"type": "message:send", "room": "big", "data": {"tag": "b", "i": i, "pad": blob}, "id": id}))
            .await;
        let answer = loop {
            let f = a.recv().await;
            if f["type"] == "ack" || f["type"] == "error" {
                break f;
            }
        };
        if answer["type"] == "ack" {
            acked.push(answer["seq"].as_u64().unwrap());
        } else {
            refused = Some(answer);
            break;
        }
    }
    let e = refused.expect("the size limit was never reached");
    assert_eq!(
        (e["code"].as_str(), e["message"].as_str()),
        (Some("storage_error"), Some("storage is full")),
        "{e}"
    );
    assert!(acked.len() >= 5, "only {} messages fit", acked.len());

    // Other writes are refused the same way; the server keeps serving.
    // (A page or two may still be free for another table: fill them too.)
    let svc = token("backend", json!({"role": "service"}));
    let note = json!({"to": "carol", "data": {"pad": blob}}).to_string();
    let mut refused = None;
    for _ in 0..20 {
        let (st, body) = s.http("POST", "/api/notify", Some(&svc), Some(&note)).await;
        if st != 200 {
            refused = Some((st, body));
            break;
        }
    }
    let (st, body) = refused.expect("notifications kept fitting in a full database");
    assert_eq!(st, 503, "{body}");
    assert!(body.contains("storage_error"), "{body}");
    a.send(json!({"type": "ping", "id": "p"})).await;
    assert_eq!(a.recv_type("pong").await["id"], "p");
    // Health says so, while the hub itself stays in service.
    let (st, h) = s.get_json("/healthz", None).await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(h["store"]["status"], "failing", "{h}");
    assert!(
        h["store"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("full")),
        "{h}"
    );
    assert!(h["store"]["errors"].as_u64() >= Some(2), "{h}");
    // Reads still work on a full database: a new user connects and a room
    // that is not in memory starts (both read storage first).
    let mut b = s.user("bob").await;
    a.send(json!({"type": "room:leave", "room": "big"})).await;
    a.recv_type("room:left").await;
    assert_eq!(b.join("cold").await["seq"], 0);
    drop(b);

    drop(a);
    s.restart(false, &[("SWITCHBOARD_DB_MAX_BYTES", "0")]);
    let seqs = history_seqs(&s, "/api/rooms/big/history?limit=1000", "alice").await;
    assert_eq!(seqs, acked, "every acknowledged message, in order");
    let (_, h) = s.get_json("/healthz", None).await;
    assert_eq!(
        (
            h["store"]["status"].as_str(),
            h["store"]["durable"].as_bool()
        ),
        (Some("ok"), Some(true)),
        "{h}"
    );
    // The refused message's seq is never given out again once storage has
    // recorded it (a later write got through); then no replay skips it.
    let last = *acked.last().unwrap();
    let mut a = s.user("alice").await;
    let (j, _) = join_since(&mut a, "big", last, None).await;
    let seq = j["seq"].as_u64().unwrap();
    assert!(seq == last || seq == last + 1, "{j}");
    assert_eq!(j["recovered"].as_bool(), Some(seq == last), "{j}");
}

#[tokio::test]
async fn retention_and_volatile_rooms() {
    let mut s = Server::with_env(&[
        ("SWITCHBOARD_RETENTION_RULES", "short-*=3/"),
        ("SWITCHBOARD_VOLATILE_ROOMS", "tmp-*"),
    ]);
    let mut a = s.user("alice").await;
    for r in ["short-1", "long", "tmp-1"] {
        a.join(r).await;
        send_acked(&mut a, r, r, 6).await;
    }
    drop(a);
    s.restart(false, &[]);
    let t = token("alice", json!({}));
    let (_, h) = s.get_json("/api/rooms/short-1/history", Some(&t)).await;
    assert_eq!(
        (h["seq"].as_u64(), h["first_seq"].as_u64()),
        (Some(6), Some(4)),
        "{h}"
    );
    assert_eq!(h["messages"].as_array().unwrap().len(), 3);
    let (_, h) = s.get_json("/api/rooms/long/history", Some(&t)).await;
    assert_eq!(
        (h["seq"].as_u64(), h["first_seq"].as_u64()),
        (Some(6), Some(1)),
        "{h}"
    );
    if with_redis() {
        // A volatile room's window lives in Redis, which outlives the node.
        return;
    }
    let (_, h) = s.get_json("/api/rooms/tmp-1/history", Some(&t)).await;
    assert_eq!(
        h["epoch"],
        Value::Null,
        "a volatile room keeps nothing: {h}"
    );
    let mut a = s.user("alice").await;
    let (j, _) = join_since(&mut a, "tmp-1", 6, None).await;
    assert_eq!(
        (j["recovered"].as_bool(), j["seq"].as_u64()),
        (Some(false), Some(0))
    );
}

/// Waits (bounded) until only `n` rooms have actors (freed ones are in the LRU).
async fn wait_rooms(s: &Server, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, health) = s.get_json("/healthz", None).await;
        if health["rooms"].as_u64() == Some(n) || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_room_back_from_the_idle_lru_is_still_stored() {
    let mut s = Server::start();
    let mut a = s.user("alice").await;
    a.join("r").await;
    assert_eq!(send_acked(&mut a, "r", "a", 2).await, vec![1, 2]);
    a.send(json!({"type": "room:leave", "room": "r"})).await;
    a.recv_type("room:left").await;
    wait_rooms(&s, 1).await; // only the personal room: r's history is in the LRU
    a.join("r").await;
    assert_eq!(send_acked(&mut a, "r", "b", 2).await, vec![3, 4]);
    drop(a);
    s.restart(false, &[]);
    let mut a = s.user("alice").await;
    let (j, replay) = join_since(&mut a, "r", 0, None).await;
    assert_eq!(j["recovered"], true, "{j}");
    assert_eq!(
        tags(&replay),
        vec![
            (1, "a0".into()),
            (2, "a1".into()),
            (3, "b0".into()),
            (4, "b1".into())
        ]
    );
}

#[tokio::test]
async fn an_evicted_idle_history_comes_back_from_storage() {
    let s = Server::with_env(&[("SWITCHBOARD_IDLE_ROOM_CACHE", "1")]);
    let mut a = s.user("alice").await;
    let e1 = a.join("r1").await["epoch"].as_str().unwrap().to_string();
    send_acked(&mut a, "r1", "a", 2).await;
    a.send(json!({"type": "room:leave", "room": "r1"})).await;
    a.recv_type("room:left").await;
    // r2's idle history pushes r1's out of the one-room LRU.
    a.join("r2").await;
    send_acked(&mut a, "r2", "z", 1).await;
    a.send(json!({"type": "room:leave", "room": "r2"})).await;
    a.recv_type("room:left").await;
    wait_rooms(&s, 1).await; // only the personal room is active
    let (j, replay) = join_since(&mut a, "r1", 0, Some(&e1)).await;
    assert_eq!(
        (j["recovered"].as_bool(), j["epoch"].as_str()),
        (Some(true), Some(e1.as_str())),
        "{j}"
    );
    assert_eq!(tags(&replay), vec![(1, "a0".into()), (2, "a1".into())]);
}

#[tokio::test]
async fn with_storage_off_history_does_not_survive_a_restart() {
    if single_node_only("with Redis, history lives in Redis, not in the node") {
        return;
    }
    let mut s = Server::with_env(&[("SWITCHBOARD_DB", "off")]);
    let mut a = s.user("alice").await;
    let e1 = a.join("general").await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    send_acked(&mut a, "general", "m", 2).await;
    drop(a);
    s.restart(false, &[]);
    let mut a = s.user("alice").await;
    let (j, _) = join_since(&mut a, "general", 2, Some(&e1)).await;
    assert_eq!(j["recovered"], false, "{j}");
    assert_ne!(j["epoch"].as_str(), Some(e1.as_str()));
    assert_eq!(j["seq"], 0);
}
