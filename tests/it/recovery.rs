//! History and recovery with `since`: full replay, `recovered:false` beyond
//! history (never a partial replay), epochs, histories of idle rooms (kept in
//! the LRU, and lost when evicted), the history API, and joins racing live
//! publishes.

use crate::common::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sends `n` messages to `room` (ids `{tag}{i}`), waits for their acks, and
/// returns the sender's own `message:receive` copies (the sender must be the
/// only one talking in the room meanwhile).
async fn say_n(c: &mut Client, room: &str, tag: &str, n: usize) -> Vec<Value> {
    for i in 0..n {
        c.send(json!({"type": "message:send", "room": room,
                      "data": {"tag": tag, "i": i}, "id": format!("{tag}{i}")}))
            .await;
    }
    let (mut acks, mut got) = (Vec::new(), Vec::new());
    while acks.len() < n || got.len() < n {
        let f = c.recv().await;
        match f["type"].as_str() {
            Some("ack") => {
                assert_eq!(f["id"], format!("{tag}{}", acks.len()), "{f}");
                acks.push(f["seq"].as_u64().expect("ack has a seq"));
            }
            Some("message:receive") if f["room"] == room => {
                assert_eq!(f["id"], format!("{tag}{}", got.len()), "{f}");
                got.push(f);
            }
            _ => {}
        }
    }
    assert_eq!(acks, seqs_of(&got), "acks carry the seqs of the messages");
    got
}

/// The next `n` `message:receive` frames of `room` (other frames are skipped).
async fn messages(c: &mut Client, room: &str, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = c.recv_type("message:receive").await;
        assert_eq!(m["room"], room, "{m}");
        out.push(m);
    }
    out
}

fn seqs_of(ms: &[Value]) -> Vec<u64> {
    ms.iter().map(|m| m["seq"].as_u64().unwrap()).collect()
}

/// Sends a join with `since` (and `epoch`) and returns its `room:joined`.
async fn join_since(c: &mut Client, room: &str, since: u64, epoch: Option<&str>) -> Value {
    let mut f = json!({"type": "room:join", "room": room, "since": since});
    if let Some(e) = epoch {
        f["epoch"] = json!(e);
    }
    c.send(f).await;
    let j = c.recv_type("room:joined").await;
    assert_eq!(j["room"], room, "{j}");
    j
}

/// The `n` frames right after a `room:joined`: they must all be the replay.
async fn replay(c: &mut Client, room: &str, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        let f = c.recv().await;
        assert_eq!(f["type"], "message:receive", "replay interrupted by {f}");
        assert_eq!(f["room"], room, "{f}");
        out.push(f);
    }
    out
}

fn epoch(j: &Value) -> String {
    j["epoch"]
        .as_str()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| panic!("no epoch: {j}"))
        .to_string()
}

/// Waits (bounded) until `room` is no longer an active room, i.e. it was
/// freed and its history moved to the idle LRU.
async fn wait_freed(s: &Server, room: &str) {
    let t = token("observer", json!({"role": "admin"}));
    for _ in 0..200 {
        let (st, body) = s.get_json("/api/rooms", Some(&t)).await;
        assert_eq!(st, 200, "{body}");
        let active = body["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["room"] == room);
        if !active {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("room {room} was never freed");
}

#[tokio::test]
async fn rejoining_with_since_replays_exactly_the_missed_messages() {
    let s = Server::start();
    let mut a = s.user("alice").await;
    let j0 = a.join("ops").await;
    let mut b = s.user("bob").await;
    b.join("ops").await;

    let mut originals = say_n(&mut b, "ops", "first", 3).await;
    assert_eq!(seqs_of(&originals), [1, 2, 3]);
    let seen = messages(&mut a, "ops", 3).await;
    assert_eq!(seqs_of(&seen), [1, 2, 3]);
    let k = 3;
    a.close().await;
    b.recv_type("room:member_left").await;

    // Bob goes on while Alice is away.
    let missed = say_n(&mut b, "ops", "missed", 4).await;
    assert_eq!(seqs_of(&missed), [4, 5, 6, 7]);
    originals.extend(missed);

    let mut a = s.user("alice").await;
    let j = join_since(&mut a, "ops", k, None).await;
    assert_eq!(j["recovered"], true, "{j}");
    assert_eq!(j["seq"], 7, "{j}");
    assert_eq!(epoch(&j), epoch(&j0), "the numbering did not change");
    // Right after room:joined: exactly 4..7, in order, byte for byte what Bob got.
    let got = replay(&mut a, "ops", 4).await;
    assert_eq!(got, originals[3..].to_vec());
    assert_eq!(got[0]["data"], json!({"tag": "missed", "i": 0}));

    // A live message comes after the replay, once; nothing is replayed twice.
    assert_eq!(seqs_of(&say_n(&mut b, "ops", "live", 1).await), [8]);
    let live = a.recv_type("message:receive").await;
    assert_eq!(
        (live["seq"].as_u64(), live["data"]["tag"].as_str()),
        (Some(8), Some("live"))
    );
    a.expect_no("message:receive", Duration::from_millis(300))
        .await;

    // since=0 on a fresh connection replays everything, with the matching epoch too.
    let mut c = s.user("carol").await;
    let j = join_since(&mut c, "ops", 0, Some(&epoch(&j0))).await;
    assert_eq!(
        (j["recovered"].as_bool(), j["seq"].as_u64()),
        (Some(true), Some(8))
    );
    assert_eq!(
        seqs_of(&replay(&mut c, "ops", 8).await),
        (1..=8).collect::<Vec<_>>()
    );
    c.expect_no("message:receive", Duration::from_millis(200))
        .await;
}

#[tokio::test]
async fn recovered_false_when_the_gap_is_not_in_history() {
    let s = Server::with_env(&[("SWITCHBOARD_HISTORY_SIZE", "5")]);
    let mut p = s.user("pub").await;
    let j0 = p.join("busy").await;
    let e0 = epoch(&j0);
    assert_eq!(
        seqs_of(&say_n(&mut p, "busy", "m", 20).await),
        (1..=20).collect::<Vec<_>>()
    );

    // Only 16..20 are kept.
    let cases: [(u64, Option<&str>, bool, Vec<u64>); 8] = [
        (3, None, false, vec![]),
        (14, None, false, vec![]), // 15 is gone: no partial replay of 16..20
        (15, None, true, vec![16, 17, 18, 19, 20]),
        (18, Some(&e0), true, vec![19, 20]),
        (18, Some("not-the-epoch"), false, vec![]),
        (20, None, true, vec![]),
        (21, None, false, vec![]),
        (1_000, Some(&e0), false, vec![]),
    ];
    for (since, ep, recovered, expected) in cases {
        let mut c = s.user("reader").await;
        let j = join_since(&mut c, "busy", since, ep).await;
        let what = format!("since={since} epoch={ep:?}: {j}");
        assert_eq!(j["recovered"].as_bool(), Some(recovered), "{what}");
        assert_eq!(j["seq"], 20, "{what}");
        assert_eq!(epoch(&j), e0, "{what}");
        let got = replay(&mut c, "busy", expected.len()).await;
        assert_eq!(seqs_of(&got), expected, "{what}");
        c.expect_no("message:receive", Duration::from_millis(250))
            .await;
        c.close().await;
    }

    // Without `since` there is no `recovered` and no replay.
    let mut c = s.user("reader").await;
    let j = c.join("busy").await;
    assert!(j.get("recovered").is_none(), "{j}");
    c.expect_no("message:receive", Duration::from_millis(250))
        .await;
}

#[tokio::test]
async fn history_survives_a_room_without_members() {
    let s = Server::start();
    let mut a = s.user("alice").await;
    let j0 = a.join("quiet").await;
    let e0 = epoch(&j0);
    let originals = say_n(&mut a, "quiet", "m", 3).await;
    a.send(json!({"type": "room:leave", "room": "quiet"})).await;
    a.recv_type("room:left").await;
    wait_freed(&s, "quiet").await;

    // The idle room's history is still readable.
    let t = token("alice", json!({}));
    let (st, h) = s.get_json("/api/rooms/quiet/history", Some(&t)).await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(
        (h["epoch"].as_str(), h["seq"].as_u64()),
        (Some(&*e0), Some(3)),
        "{h}"
    );

    // Joining again recreates the room from its kept history: same epoch.
    let j = join_since(&mut a, "quiet", 1, None).await;
    assert_eq!(
        (j["recovered"].as_bool(), j["seq"].as_u64()),
        (Some(true), Some(3)),
        "{j}"
    );
    assert_eq!(epoch(&j), e0);
    assert_eq!(replay(&mut a, "quiet", 2).await, originals[1..].to_vec());
    // Numbering continues.
    assert_eq!(seqs_of(&say_n(&mut a, "quiet", "n", 1).await), [4]);

    // Leave and rejoin at once, repeatedly: whether or not the room was freed
    // in between, the history and epoch are kept.
    for round in 0..10u64 {
        a.send(json!({"type": "room:leave", "room": "quiet"})).await;
        a.recv_type("room:left").await;
        let j = join_since(&mut a, "quiet", 3, Some(&e0)).await;
        assert_eq!(
            (j["recovered"].as_bool(), j["seq"].as_u64()),
            (Some(true), Some(4)),
            "round {round}: {j}"
        );
        assert_eq!(
            seqs_of(&replay(&mut a, "quiet", 1).await),
            [4],
            "round {round}"
        );
    }
    a.expect_no("message:receive", Duration::from_millis(200))
        .await;
}

#[tokio::test]
async fn evicted_idle_history_is_lost_with_a_new_epoch() {
    if single_node_only("the idle-room LRU; with Redis nothing is evicted") {
        return;
    }
    // Without storage; with it, evicted histories come back from the
    // database (storage::an_evicted_idle_history_comes_back_from_storage).
    let s = Server::with_env(&[
        ("SWITCHBOARD_IDLE_ROOM_CACHE", "1"),
        ("SWITCHBOARD_DB", "off"),
    ]);
    let t = token("alice", json!({}));
    let mut a = s.user("alice").await;

    let e1 = epoch(&a.join("r1").await);
    say_n(&mut a, "r1", "a", 2).await;
    a.send(json!({"type": "room:leave", "room": "r1"})).await;
    a.recv_type("room:left").await;
    wait_freed(&s, "r1").await;

    let e2 = epoch(&a.join("r2").await);
    let r2_msgs = say_n(&mut a, "r2", "b", 3).await;
    a.send(json!({"type": "room:leave", "room": "r2"})).await;
    a.recv_type("room:left").await;
    wait_freed(&s, "r2").await;

    // The cache holds one room: r2 pushed r1 out.
    let (_, h) = s.get_json("/api/rooms/r1/history", Some(&t)).await;
    assert_eq!(
        (h["seq"].as_u64(), h["messages"].clone()),
        (Some(0), json!([])),
        "{h}"
    );
    let (_, h) = s.get_json("/api/rooms/r2/history", Some(&t)).await;
    assert_eq!(
        (h["seq"].as_u64(), h["epoch"].as_str()),
        (Some(3), Some(&*e2)),
        "{h}"
    );

    let mut c = s.user("carol").await;
    let j = join_since(&mut c, "r1", 1, None).await;
    assert_eq!(j["recovered"], false, "r1's history was evicted: {j}");
    assert_eq!(j["seq"], 0, "{j}");
    assert_ne!(
        epoch(&j),
        e1,
        "lost history must come with a new epoch: {j}"
    );
    c.expect_no("message:receive", Duration::from_millis(250))
        .await;

    let j = join_since(&mut c, "r2", 1, Some(&e2)).await;
    assert_eq!(
        (j["recovered"].as_bool(), j["seq"].as_u64()),
        (Some(true), Some(3)),
        "{j}"
    );
    assert_eq!(epoch(&j), e2);
    assert_eq!(replay(&mut c, "r2", 2).await, r2_msgs[1..].to_vec());
}

#[tokio::test]
async fn history_api_returns_the_requested_slice() {
    let s = Server::with_env(&[("SWITCHBOARD_HISTORY_SIZE", "8")]);
    let mut a = s.user("alice").await;
    let e = epoch(&a.join("general").await);
    let live = say_n(&mut a, "general", "m", 10).await;

    // A public room: no token needed. Kept: 3..10.
    let (st, h) = s.get_json("/api/rooms/general/history", None).await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(h["room"], "general");
    assert_eq!(h["epoch"], e.as_str());
    assert_eq!(
        (h["seq"].as_u64(), h["first_seq"].as_u64()),
        (Some(10), Some(3))
    );
    assert_eq!(
        h["messages"],
        json!(live[2..].to_vec()),
        "frames as delivered live"
    );

    let (_, h) = s
        .get_json("/api/rooms/general/history?since=4&limit=3", None)
        .await;
    assert_eq!(seqs_of(h["messages"].as_array().unwrap()), [5, 6, 7], "{h}");
    assert_eq!(
        (h["seq"].as_u64(), h["first_seq"].as_u64()),
        (Some(10), Some(3))
    );
    let (_, h) = s.get_json("/api/rooms/general/history?since=8", None).await;
    assert_eq!(seqs_of(h["messages"].as_array().unwrap()), [9, 10], "{h}");
    let (_, h) = s
        .get_json("/api/rooms/general/history?since=10", None)
        .await;
    assert_eq!(h["messages"], json!([]), "{h}");
    let (_, h) = s
        .get_json("/api/rooms/general/history?since=0&limit=0", None)
        .await;
    assert_eq!(h["messages"], json!([]), "{h}");

    // A room that never had messages.
    let (st, h) = s.get_json("/api/rooms/lobby/history", None).await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(
        (h["seq"].as_u64(), h["messages"].clone()),
        (Some(0), json!([])),
        "{h}"
    );

    // A non-public room: 401 without a token, 200 with one, 403 when not allowed.
    a.join("team-x").await;
    say_n(&mut a, "team-x", "t", 2).await;
    let (st, h) = s.get_json("/api/rooms/team-x/history", None).await;
    assert_eq!(st, 401, "{h}");
    let (st, h) = s
        .get_json(
            "/api/rooms/team-x/history?since=1",
            Some(&token("bob", json!({}))),
        )
        .await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(seqs_of(h["messages"].as_array().unwrap()), [2], "{h}");
    assert_eq!(h["messages"][0]["data"], json!({"tag": "t", "i": 1}));
    let other = token("bob", json!({"rooms": ["other-*"]}));
    let (st, h) = s.get_json("/api/rooms/team-x/history", Some(&other)).await;
    assert_eq!(st, 403, "{h}");
}

#[tokio::test]
async fn joins_racing_live_publishes_lose_and_duplicate_nothing() {
    let s = Server::with_env(&[("SWITCHBOARD_HISTORY_SIZE", "5000")]);
    let svc = token("feeder", json!({"role": "service"}));
    const PER_PUBLISHER: u64 = 150;
    let published = AtomicU64::new(0);

    let publisher = |tag: &'static str| {
        let (s, svc, published) = (&s, &svc, &published);
        async move {
            let mut seqs = Vec::new();
            for i in 0..PER_PUBLISHER {
                let body = json!({"room": "live", "data": {"p": tag, "i": i}}).to_string();
                let (st, resp) = s.http("POST", "/api/publish", Some(svc), Some(&body)).await;
                assert_eq!(st, 200, "{resp}");
                let v: Value = serde_json::from_str(&resp).unwrap();
                seqs.push(v["seq"].as_u64().unwrap());
                published.fetch_add(1, Ordering::SeqCst);
            }
            seqs
        }
    };
    // Joiners connect and send `room:join since=0` at different points of the
    // stream, without reading; they read everything afterwards.
    let joiners = async {
        let mut clients = Vec::new();
        for (k, at) in [0u64, 10, 60, 120, 200].into_iter().enumerate() {
            let mut waited = 0;
            while published.load(Ordering::SeqCst) < at {
                tokio::time::sleep(Duration::from_millis(1)).await;
                waited += 1;
                assert!(waited < 10_000, "publishers stalled");
            }
            let mut c = s.user(&format!("joiner{k}")).await;
            c.send(json!({"type": "room:join", "room": "live", "since": 0}))
                .await;
            clients.push(c);
        }
        clients
    };
    let (s1, s2, mut clients) = tokio::join!(publisher("x"), publisher("y"), joiners);

    // The server numbered every publish once, without gaps.
    let mut all: Vec<u64> = s1.iter().chain(&s2).copied().collect();
    all.sort_unstable();
    let last = 2 * PER_PUBLISHER;
    assert_eq!(all, (1..=last).collect::<Vec<_>>());
    assert!(
        s1.windows(2).all(|w| w[0] < w[1]),
        "one publisher's seqs increase"
    );

    for (k, c) in clients.iter_mut().enumerate() {
        // Nothing of the room before room:joined.
        let j = loop {
            let f = c.recv().await;
            assert_ne!(
                f["type"], "message:receive",
                "joiner{k}: before joined: {f}"
            );
            if f["type"] == "room:joined" && f["room"] == "live" {
                break f;
            }
        };
        assert_eq!(j["recovered"], true, "joiner{k}: {j}");
        let at_join = j["seq"].as_u64().unwrap();
        // Replay (1..=at_join) then live: one gapless, duplicate-free sequence.
        let mut expected = 1;
        while expected <= last {
            let m = c.recv_type("message:receive").await;
            assert_eq!(m["room"], "live");
            assert_eq!(
                m["seq"].as_u64(),
                Some(expected),
                "joiner{k} (joined at seq {at_join}): {m}"
            );
            expected += 1;
        }
        c.expect_no("message:receive", Duration::from_millis(200))
            .await;
    }
}

/// Documented choice (docs/DESIGN.md): a room that never had a message is
/// freed without keeping its epoch, so that empty rooms (every guest's
/// personal room) cannot push real histories out of the idle LRU. A client
/// coming back with the old epoch is told `recovered:false` with a new epoch;
/// nothing was lost, and the history it refetches is empty. Without an epoch,
/// `since: 0` recovers as usual.
#[tokio::test]
async fn a_freed_empty_room_gets_a_new_epoch_and_loses_nothing() {
    if single_node_only("a freed room's history is dropped from memory on one node; Redis keeps it")
    {
        return;
    }
    let s = Server::start();
    let mut a = s.user("alice").await;
    let j0 = a.join("empty").await;
    assert_eq!(j0["seq"], 0);
    let e0 = epoch(&j0);
    a.send(json!({"type": "room:leave", "room": "empty"})).await;
    a.recv_type("room:left").await;
    wait_freed(&s, "empty").await;

    let j = join_since(&mut a, "empty", 0, Some(&e0)).await;
    assert_eq!(j["recovered"], false, "{j}");
    assert_eq!(j["seq"], 0, "{j}");
    assert_ne!(j["epoch"].as_str(), Some(&*e0), "{j}");
    let alice = token("alice", json!({}));
    let (st, h) = s.get_json("/api/rooms/empty/history", Some(&alice)).await;
    assert_eq!(st, 200);
    assert_eq!(
        h["messages"],
        json!([]),
        "nothing was ever there to lose: {h}"
    );

    a.send(json!({"type": "room:leave", "room": "empty"})).await;
    a.recv_type("room:left").await;
    let j = join_since(&mut a, "empty", 0, None).await;
    assert_eq!(
        j["recovered"], true,
        "since 0 without an epoch misses nothing: {j}"
    );
}

/// History is bounded in bytes too: with SWITCHBOARD_HISTORY_BYTES=3000 and
/// ~1 KB messages a room keeps the newest few, and older gaps are not recovered.
#[tokio::test]
async fn history_is_bounded_in_bytes_per_room() {
    let s = Server::with_env(&[("SWITCHBOARD_HISTORY_BYTES", "3000")]);
    let svc = token("backend", json!({"role": "service"}));
    let body = json!({"room": "big", "data": "x".repeat(900)}).to_string();
    for _ in 0..10 {
        assert_eq!(
            s.http("POST", "/api/publish", Some(&svc), Some(&body))
                .await
                .0,
            200
        );
    }
    let (_, h) = s.get_json("/api/rooms/big/history", Some(&svc)).await;
    let kept = h["messages"].as_array().unwrap().len();
    assert!(
        (1..=3).contains(&kept),
        "kept {kept} of 10 ~1 KB messages in 3000 bytes"
    );
    assert_eq!(h["seq"], 10);
    assert_eq!(h["first_seq"], 11 - kept as u64);
    let mut c = s.user("reader").await;
    let j = join_since(&mut c, "big", 0, None).await;
    assert_eq!(j["recovered"], false, "{j}");
}

/// The idle-room LRU has a byte budget: a freed room's history pushes out the
/// least recently used one when both do not fit.
#[tokio::test]
async fn idle_histories_share_a_byte_budget() {
    if single_node_only("the idle-room LRU; with Redis nothing is kept idle") {
        return;
    }
    // The in-memory budget; storage would bring evicted histories back.
    let s = Server::with_env(&[
        ("SWITCHBOARD_IDLE_HISTORY_BYTES", "6000"),
        ("SWITCHBOARD_DB", "off"),
    ]);
    let svc = token("backend", json!({"role": "service"}));
    for room in ["r1", "r2"] {
        let body = json!({"room": room, "data": "x".repeat(900)}).to_string();
        for _ in 0..4 {
            assert_eq!(
                s.http("POST", "/api/publish", Some(&svc), Some(&body))
                    .await
                    .0,
                200
            );
        }
        // Published to a room without members: it is freed into the idle LRU.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (_, list) = s.get_json("/api/rooms", Some(&svc)).await;
            if !list["rooms"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["room"] == room)
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{room} never freed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // ~4 KB each: both do not fit in 6000 bytes, so r1 (least recent) went.
    let (_, h1) = s.get_json("/api/rooms/r1/history", Some(&svc)).await;
    let (_, h2) = s.get_json("/api/rooms/r2/history", Some(&svc)).await;
    assert_eq!(
        (h1["seq"].as_u64(), h1["epoch"].is_null()),
        (Some(0), true),
        "{h1}"
    );
    assert_eq!(h2["seq"], 4, "{h2}");
    assert_eq!(h2["messages"].as_array().unwrap().len(), 4);
}
