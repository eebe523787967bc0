//! Shared state (`state:*` frames, `/api/rooms/{room}/state`): compare and
//! set with one winner per version, every member told, restarts, expiry,
//! REST with If-Match, the HTTP transports, hostile input. With
//! `SB_TEST_REDIS_URL` every server decides writes through Redis.

use crate::common::*;
use crate::fallback::{Poller, Sse};
use serde_json::{json, Value};
use std::time::Duration;

fn set(room: &str, key: &str, value: Value, version: u64, id: &str) -> Value {
    json!({"type":"state:set","room":room,"key":key,"value":value,"version":version,"id":id})
}

/// Reads frames until the `ack` or `error` answering `id`; the frames before.
async fn answer(c: &mut Client, id: &str) -> (Value, Vec<Value>) {
    let mut seen = Vec::new();
    loop {
        let f = c.recv().await;
        if (f["type"] == "ack" && f["id"] == id) || (f["type"] == "error" && f["ref"] == id) {
            return (f, seen);
        }
        seen.push(f);
    }
}

async fn join_state(c: &mut Client, room: &str) -> Value {
    c.send(json!({"type":"room:join","room":room,"state":true}))
        .await;
    let j = c.recv_type("room:joined").await;
    assert_eq!(j["room"], room);
    c.recv_type("state:snapshot").await
}

#[tokio::test]
async fn a_set_reaches_every_member_and_a_stale_version_is_a_conflict() {
    let s = Server::start();
    let (mut alice, mut bob) = (s.user("alice").await, s.user("bob").await);
    let snap = join_state(&mut alice, "board").await;
    assert_eq!(snap["entries"], json!([]), "{snap}");
    join_state(&mut bob, "board").await;

    alice
        .send(set("board", "topic", json!({"t":"hi"}), 0, "s1"))
        .await;
    let (ack, before) = answer(&mut alice, "s1").await;
    assert_eq!(ack["version"], 1, "{ack}");
    assert!(
        before.iter().any(|f| f["type"] == "state:update"),
        "own update before the ack"
    );
    let u = bob.recv_type("state:update").await;
    assert_eq!(
        (u["key"].clone(), u["value"].clone(), u["version"].clone()),
        (json!("topic"), json!({"t":"hi"}), json!(1))
    );
    assert_eq!(u["by"]["user"], "alice", "{u}");

    // Bob writes on what he did not see (create): the conflict carries the value.
    bob.send(set("board", "topic", json!("mine"), 0, "b1"))
        .await;
    let (e, _) = answer(&mut bob, "b1").await;
    assert_eq!(e["code"], "version_conflict", "{e}");
    assert_eq!(
        (e["version"].clone(), e["value"].clone(), e["key"].clone()),
        (json!(1), json!({"t":"hi"}), json!("topic"))
    );
    // Merging and retrying on version 1 works.
    bob.send(set("board", "topic", json!({"t":"hi!"}), 1, "b2"))
        .await;
    let (ack, _) = answer(&mut bob, "b2").await;
    assert_eq!(ack["version"], 2, "{ack}");

    // state:get, all and by key; a deleted key is gone and its version not reused.
    alice
        .send(json!({"type":"state:get","room":"board","keys":["topic","nope"],"id":"g"}))
        .await;
    let g = alice.recv_type("state:snapshot").await;
    assert_eq!(g["id"], "g");
    assert_eq!(g["entries"].as_array().unwrap().len(), 1, "{g}");
    assert_eq!(g["entries"][0]["version"], 2);
    alice
        .send(json!({"type":"state:delete","room":"board","key":"topic","version":2,"id":"d"}))
        .await;
    let (ack, _) = answer(&mut alice, "d").await;
    assert_eq!(ack["version"], 3);
    let d = bob.recv_type("state:update").await;
    let d = if d["version"] == 2 {
        bob.recv_type("state:update").await
    } else {
        d
    };
    assert_eq!(
        (d["deleted"].clone(), d["version"].clone()),
        (json!(true), json!(3)),
        "{d}"
    );
    alice.send(set("board", "topic", json!(1), 2, "s2")).await;
    let (e, _) = answer(&mut alice, "s2").await;
    assert_eq!(
        (e["code"].clone(), e["version"].clone()),
        (json!("version_conflict"), json!(0)),
        "{e}"
    );
    assert!(e.get("value").is_none(), "{e}");
    alice.send(set("board", "topic", json!(1), 0, "s3")).await;
    assert_eq!(answer(&mut alice, "s3").await.0["version"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sets_have_exactly_one_winner_per_version() {
    const CLIENTS: usize = 8;
    const ROUNDS: u64 = 6;
    let s = Server::start();
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let mut c = s.user(&format!("racer{i}")).await;
        join_state(&mut c, "race").await;
        tasks.push(tokio::spawn(async move {
            // Increment a counter ROUNDS times, merging on every conflict.
            let (mut version, mut value) = (0u64, 0u64);
            let mut won = Vec::new();
            let mut tries = 0;
            while (won.len() as u64) < ROUNDS {
                tries += 1;
                assert!(tries < 2000, "no progress");
                let id = format!("r{i}-{tries}");
                c.send(set("race", "n", json!(value + 1), version, &id))
                    .await;
                let (f, _) = answer(&mut c, &id).await;
                if f["type"] == "ack" {
                    version = f["version"].as_u64().unwrap();
                    value += 1;
                    won.push((version, value));
                } else if f["code"] == "rate_limited" {
                    let wait = f["retry_after_ms"].as_u64().unwrap_or(50);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                } else {
                    assert_eq!(f["code"], "version_conflict", "{f}");
                    version = f["version"].as_u64().unwrap();
                    value = f["value"].as_u64().unwrap_or(0);
                }
            }
            won
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let total = CLIENTS as u64 * ROUNDS;
    let mut versions: Vec<u64> = all.iter().map(|w| w.0).collect();
    versions.sort();
    versions.dedup();
    assert_eq!(versions.len() as u64, total, "a version was won twice");
    let mut values: Vec<u64> = all.iter().map(|w| w.1).collect();
    values.sort();
    assert_eq!(
        values,
        (1..=total).collect::<Vec<_>>(),
        "every increment counted once"
    );
    let (st, body) = s
        .get_json(
            "/api/rooms/race/state/n",
            Some(&token("svc", json!({"role":"service"}))),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["entry"]["value"], total);
}

#[tokio::test]
async fn state_survives_a_restart() {
    let mut s = Server::start();
    let mut a = s.user("alice").await;
    join_state(&mut a, "kept").await;
    a.send(set("kept", "k", json!({"n":[1,2,3]}), 0, "a")).await;
    assert_eq!(answer(&mut a, "a").await.0["version"], 1);
    a.send(set("kept", "gone", json!(0), 0, "b")).await;
    answer(&mut a, "b").await;
    a.send(json!({"type":"state:delete","room":"kept","key":"gone","version":2,"id":"c"}))
        .await;
    assert_eq!(answer(&mut a, "c").await.0["version"], 3);
    drop(a);
    s.restart(true, &[]);
    let mut b = s.user("bob").await;
    let snap = join_state(&mut b, "kept").await;
    assert_eq!(snap["entries"].as_array().unwrap().len(), 1, "{snap}");
    assert_eq!(snap["entries"][0]["value"], json!({"n":[1,2,3]}));
    assert_eq!(snap["rev"], 3, "{snap}");
    // The counter went on from where it was: no version is given twice.
    b.send(set("kept", "gone", json!(1), 0, "d")).await;
    assert_eq!(answer(&mut b, "d").await.0["version"], 4);
}

#[tokio::test]
async fn keys_with_a_ttl_expire_and_members_are_told() {
    let s = Server::start();
    let mut a = s.user("alice").await;
    join_state(&mut a, "cursors").await;
    let mut f = set("cursors", "alice", json!({"x":1}), 0, "t");
    f["ttl_ms"] = json!(300);
    a.send(f).await;
    let (ack, before) = answer(&mut a, "t").await;
    assert_eq!(ack["version"], 1);
    assert!(before.iter().any(|u| u["expires"].is_u64()), "{before:?}");
    let gone = a.recv_type("state:update").await;
    assert_eq!(
        (
            gone["deleted"].clone(),
            gone["expired"].clone(),
            gone["version"].clone()
        ),
        (json!(true), json!(true), json!(2)),
        "{gone}"
    );
    let (st, _) = s
        .http(
            "GET",
            "/api/rooms/cursors/state/alice",
            Some(&token("svc", json!({"role":"service"}))),
            None,
        )
        .await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn rest_reads_and_writes_with_if_match() {
    let s = Server::start();
    let svc = token("backend", json!({"role":"service"}));
    let auth = format!("Bearer {svc}");
    let mut m = s.user("member").await;
    join_state(&mut m, "ops").await;
    let put = |v: &'static str, ifm: Option<&'static str>| {
        let auth = auth.clone();
        let s = &s;
        async move {
            let mut h = vec![("Authorization", auth.as_str())];
            if let Some(i) = ifm {
                h.push(("If-Match", i));
            }
            let r = s
                .request("PUT", "/api/rooms/ops/state/mode", &h, Some(v))
                .await;
            (r.status, r.json())
        }
    };
    let (st, b) = put(r#"{"value":"green"}"#, None).await;
    assert_eq!(
        (st, b["error"]["code"].clone()),
        (428, json!("precondition_required")),
        "{b}"
    );
    let (st, b) = put(r#"{"value":"green"}"#, Some("0")).await;
    assert_eq!((st, b["version"].clone()), (200, json!(1)), "{b}");
    let u = m.recv_type("state:update").await;
    assert_eq!(
        (u["value"].clone(), u["by"]["user"].clone()),
        (json!("green"), json!("backend"))
    );
    let (st, b) = put(r#"{"value":"red"}"#, Some("0")).await;
    assert_eq!(st, 409, "{b}");
    assert_eq!(
        (
            b["error"]["code"].clone(),
            b["version"].clone(),
            b["value"].clone()
        ),
        (json!("version_conflict"), json!(1), json!("green"))
    );
    let (st, b) = put(r#"{"value":"red"}"#, Some("\"1\"")).await;
    assert_eq!((st, b["version"].clone()), (200, json!(2)), "{b}");
    let (st, b) = put(r#"{"value":"red"}"#, Some("soon")).await;
    assert_eq!(st, 400, "{b}");
    let (st, b) = put(r#"{"nope":1}"#, Some("2")).await;
    assert_eq!(st, 400, "{b}");

    let r = s
        .request(
            "GET",
            "/api/rooms/ops/state/mode",
            &[("Authorization", &auth)],
            None,
        )
        .await;
    assert_eq!((r.status, r.header("etag")), (200, Some("\"2\"")));
    assert_eq!(r.json()["entry"]["value"], "red");
    let (st, all) = s.get_json("/api/rooms/ops/state", Some(&svc)).await;
    assert_eq!(
        (
            st,
            all["rev"].clone(),
            all["entries"].as_array().unwrap().len()
        ),
        (200, json!(2), 1),
        "{all}"
    );

    // Writes need a service or admin token; reads follow the room's rules.
    let user = token("someone", json!({}));
    let r = s
        .request(
            "PUT",
            "/api/rooms/ops/state/mode",
            &[
                ("Authorization", &format!("Bearer {user}")),
                ("If-Match", "2"),
            ],
            Some(r#"{"value":1}"#),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = s
        .request(
            "PUT",
            "/api/rooms/ops/state/mode",
            &[("If-Match", "2")],
            Some(r#"{"value":1}"#),
        )
        .await;
    assert_eq!(r.status, 401);
    let (st, _) = s.http("GET", "/api/rooms/ops/state", None, None).await;
    assert_eq!(st, 401, "guests may not read a room that is not public");
    let (st, _) = s
        .http("GET", "/api/rooms/ops/state/bad%20key", Some(&svc), None)
        .await;
    assert_eq!(st, 400);

    let r = s
        .request(
            "DELETE",
            "/api/rooms/ops/state/mode",
            &[("Authorization", &auth), ("If-Match", "1")],
            None,
        )
        .await;
    assert_eq!((r.status, r.json()["version"].clone()), (409, json!(2)));
    let r = s
        .request(
            "DELETE",
            "/api/rooms/ops/state/mode",
            &[("Authorization", &auth), ("If-Match", "2")],
            None,
        )
        .await;
    assert_eq!((r.status, r.json()["version"].clone()), (200, json!(3)));
    let (st, _) = s
        .http("GET", "/api/rooms/ops/state/mode", Some(&svc), None)
        .await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn state_frames_work_over_sse_and_long_polling() {
    let s = Server::start();
    let mut ws = s.user("wanda").await;
    join_state(&mut ws, "general").await;
    let mut sse = Sse::connect(&s, &format!("/sse?token={}", token("sam", json!({})))).await;
    assert_eq!(
        sse.send(
            &s,
            json!({"type":"room:join","room":"general","state":true})
        )
        .await,
        202
    );
    sse.recv_type("state:snapshot").await;
    let mut poll = Poller::open(&s, &format!("token={}", token("polly", json!({})))).await;
    poll.recv_type(&s, "connected").await;
    assert_eq!(
        poll.send(
            &s,
            json!({"type":"room:join","room":"general","state":true})
        )
        .await,
        202
    );
    poll.recv_type(&s, "state:snapshot").await;

    assert_eq!(
        sse.send(&s, set("general", "poll", json!({"yes":1}), 0, "e1"))
            .await,
        202
    );
    let ack = sse.recv_type("ack").await;
    assert_eq!(ack.data["version"], 1);
    let (u, _) = poll.recv_type(&s, "state:update").await;
    assert_eq!(u["value"], json!({"yes":1}));
    assert_eq!(
        poll.send(&s, set("general", "poll", json!({"yes":2}), 0, "p1"))
            .await,
        202
    );
    let (e, _) = poll.recv_type(&s, "error").await;
    assert_eq!(
        (e["code"].clone(), e["version"].clone()),
        (json!("version_conflict"), json!(1)),
        "{e}"
    );
    assert_eq!(
        poll.send(&s, set("general", "poll", json!({"yes":2}), 1, "p2"))
            .await,
        202
    );
    let (ack, _) = poll.recv_type(&s, "ack").await;
    assert_eq!(ack["version"], 2);
    for want in [1, 2] {
        let u = ws.recv_type("state:update").await;
        assert_eq!(u["version"], want);
    }
    let u = sse.recv_type("state:update").await;
    let u = if u.data["version"] == 1 {
        sse.recv_type("state:update").await
    } else {
        u
    };
    assert_eq!(u.data["value"], json!({"yes":2}));
}

#[tokio::test]
async fn hostile_state_frames_get_clear_codes() {
    let s = Server::with_env(&[
        ("SWITCHBOARD_STATE_MAX_KEYS", "2"),
        ("SWITCHBOARD_STATE_MAX_VALUE_BYTES", "32"),
        ("SWITCHBOARD_STATE_MAX_KEY_LEN", "8"),
    ]);
    let mut c = s.user("mallory").await;
    // Not a member yet.
    for f in [
        json!({"type":"state:get","room":"h","id":"x"}),
        set("h", "k", json!(1), 0, "x"),
    ] {
        c.send(f).await;
        assert_eq!(c.recv_type("error").await["code"], "not_member");
    }
    join_state(&mut c, "h").await;
    let long = "k".repeat(2000);
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"type":"state:set","room":"h","key":"k","version":0,"id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"state:set","room":"h","key":"k","value":1,"id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"state:set","room":"h","key":"k","value":1,"version":-1,"id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"state:set","room":"h","key":"k","value":1,"version":"1","id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"state:set","room":"h","key":"a/b","value":1,"version":0,"id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"state:set","room":"h","key":"","value":1,"version":0,"id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"state:set","room":"h","key":long,"value":1,"version":0,"id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"state:set","room":"h","key":"ninechars","value":1,"version":0,"id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"state:set","room":"h","key":"k","value":"x".repeat(40),"version":0,"id":"x"}),
            "too_large",
        ),
        (
            json!({"type":"state:set","room":"h","key":"k","value":1,"version":0,"ttl_ms":0,"id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"state:set","room":"h","key":"k","value":1,"version":0,"ttl_ms":1e20,"id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"state:set","room":"h","key":"k","value":1,"version":0,"extra":true,"id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"state:delete","room":"h","key":"k","version":0,"id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"state:delete","room":"h","key":"k","id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"state:delete","room":"h","key":"k","version":5,"id":"x"}),
            "version_conflict",
        ),
        (
            json!({"type":"state:get","room":"h","keys":"k","id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"state:get","room":"h","keys":[1],"id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"state:get","room":"no room!","id":"x"}),
            "invalid_room",
        ),
        (json!({"type":"state:get","id":"x"}), "bad_request"),
        (
            json!({"type":"state:watch","room":"h","id":"x"}),
            "unknown_type",
        ),
        (
            json!({"type":"room:join","room":"h","state":"yes","id":"x"}),
            "bad_request",
        ),
    ];
    for (f, code) in cases {
        c.send(f.clone()).await;
        let e = c.recv_type("error").await;
        assert_eq!(e["code"], code, "{f} → {e}");
        assert_eq!(e["ref"], "x", "{e}");
    }
    c.send_text(
        r#"{"type":"state:set","room":"h","key":"k","value":{"a":1e99999},"version":0,"id":"x"}"#,
    )
    .await;
    assert_eq!(c.recv_type("error").await["code"], "bad_request");
    c.send_text(
        r#"{"type":"state:set","room":"h","key":"k","value":"\ud800","version":0,"id":"x"}"#,
    )
    .await;
    assert_eq!(c.recv_type("error").await["code"], "bad_request");
    // The key bound.
    for (i, k) in ["a", "b", "c"].iter().enumerate() {
        c.send(set("h", k, json!(i), 0, k)).await;
        let (f, _) = answer(&mut c, k).await;
        if i < 2 {
            assert_eq!(f["type"], "ack", "{f}");
        } else {
            assert_eq!(f["code"], "too_many_keys", "{f}");
        }
    }
    c.send(json!({"type":"ping","id":"p"})).await;
    assert_eq!(c.recv_type("pong").await["id"], "p");
}
