//! Tool calls (`rpc:call` / `rpc:result`) from the wire: a user calls a
//! service and a service calls a browser's session, over WebSocket and
//! SSE; timeouts, a target closing mid-call, absent targets, the limits
//! and hostile frames, each answered with its code.

use crate::common::*;
use crate::fallback::{Poller, Sse};
use serde_json::{json, Value};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);

/// A WebSocket session of `sub` (with extra claims) and its id.
pub async fn session(s: &Server, sub: &str, extra: Value) -> (Client, String) {
    let t = token(sub, extra);
    let mut c = s.ws(&format!("/ws?token={t}")).await;
    let id = c.greeted().await["session"].as_str().unwrap().to_string();
    (c, id)
}

pub fn service() -> Value {
    json!({"role": "service"})
}

pub fn call(to: &str, method: &str, params: Value, id: &str) -> Value {
    json!({"type": "rpc:call", "to": to, "method": method, "params": params, "id": id})
}

/// The `rpc:result` or `error` that answers the call (or frame) `id`.
pub async fn answer(c: &mut Client, id: &str) -> Value {
    loop {
        let f = c.recv().await;
        if f["type"] == "rpc:result" && f["id"] == id || f["type"] == "error" && f["ref"] == id {
            return f;
        }
    }
}

pub fn code(f: &Value) -> &str {
    assert_eq!(f["type"], "error", "{f}");
    f["code"].as_str().unwrap()
}

#[tokio::test]
async fn a_user_calls_a_service_and_a_service_calls_a_browser() {
    let s = Server::start();
    let (mut bot, bot_id) = session(&s, "bot", service()).await;
    let (mut alice, alice_id) = session(&s, "alice", json!({})).await;

    // By user id: the service's session gets it, with who calls.
    alice
        .send(call("bot", "weather", json!({"city": "Oslo"}), "1"))
        .await;
    let got = bot.recv_type("rpc:call").await;
    assert_eq!(got["method"], "weather", "{got}");
    assert_eq!(got["params"], json!({"city": "Oslo"}), "{got}");
    assert_eq!(got["from"]["user"], "alice", "{got}");
    assert_eq!(got["session"], alice_id, "{got}");
    assert_eq!(got["timeout_ms"], 10000, "the default: {got}");
    let cid = got["id"].as_str().unwrap().to_string();
    bot.send(json!({"type": "rpc:result", "id": cid, "result": {"temp": 3}}))
        .await;
    let r = answer(&mut alice, "1").await;
    assert_eq!(r["type"], "rpc:result", "{r}");
    assert_eq!(r["result"], json!({"temp": 3}), "{r}");
    assert_eq!(r["session"], bot_id, "{r}");
    // A call is answered once.
    bot.send(json!({"type": "rpc:result", "id": cid, "result": 1}))
        .await;
    assert_eq!(code(&answer(&mut bot, &cid).await), "not_found");

    // By session id, the other way, answered with the app's own error.
    bot.send(json!({"type": "rpc:call", "to": alice_id, "method": "pick_file", "id": "b1"}))
        .await;
    let got = alice.recv_type("rpc:call").await;
    assert_eq!(
        (&got["from"]["user"], &got["params"]),
        (&json!("bot"), &Value::Null),
        "{got}"
    );
    alice
        .send(json!({"type": "rpc:result", "id": got["id"], "error": {"code": "cancelled", "message": "user said no"}}))
        .await;
    let r = answer(&mut bot, "b1").await;
    assert_eq!(r["type"], "rpc:result", "{r}");
    assert_eq!(
        r["error"],
        json!({"code": "cancelled", "message": "user said no"}),
        "{r}"
    );
    assert!(r.get("result").is_none(), "{r}");

    // Users may call services and admins only.
    let (mut carol, carol_id) = session(&s, "carol", json!({})).await;
    alice.send(call(&carol_id, "x", json!(1), "u1")).await;
    assert_eq!(code(&answer(&mut alice, "u1").await), "forbidden");
    carol.expect_no("rpc:call", QUIET).await;
}

#[tokio::test]
async fn timeouts_closed_targets_and_absent_ones_answer_the_caller() {
    let s = Server::start();
    let (mut bot, _) = session(&s, "bot", service()).await;
    let (mut alice, _) = session(&s, "alice", json!({})).await;

    let mut slow = call("bot", "slow", json!({}), "t1");
    slow["timeout_ms"] = json!(150);
    alice.send(slow).await;
    let got = bot.recv_type("rpc:call").await;
    assert_eq!(got["timeout_ms"], 150);
    let e = answer(&mut alice, "t1").await;
    assert_eq!(code(&e), "rpc_timeout", "{e}");
    // A late result reaches nobody.
    bot.send(json!({"type": "rpc:result", "id": got["id"], "result": "late"}))
        .await;
    alice.expect_no("rpc:result", QUIET).await;

    // The target closes mid-call: the caller hears at once, not at its timeout.
    let mut long = call("bot", "long", json!({}), "d1");
    long["timeout_ms"] = json!(60000);
    alice.send(long).await;
    bot.recv_type("rpc:call").await;
    bot.close().await;
    let e = answer(&mut alice, "d1").await;
    assert_eq!(code(&e), "rpc_disconnected", "{e}");

    // Nobody there.
    alice.send(call("bot", "m", json!(1), "o1")).await;
    assert_eq!(code(&answer(&mut alice, "o1").await), "user_offline");
    alice.send(call("s999999", "m", json!(1), "o2")).await;
    assert_eq!(code(&answer(&mut alice, "o2").await), "not_found");
    alice.send(call("s1@elsewhere", "m", json!(1), "o3")).await;
    assert_eq!(code(&answer(&mut alice, "o3").await), "not_found");
}

#[tokio::test]
async fn limits_and_hostile_frames_get_clear_codes() {
    let s = Server::with_env(&[
        ("SWITCHBOARD_RPC_IN_FLIGHT", "2"),
        ("SWITCHBOARD_RPC_MAX_PARAMS", "100"),
        ("SWITCHBOARD_RPC_MAX_TIMEOUT_MS", "5000"),
    ]);
    let (mut bot, bot_id) = session(&s, "bot", service()).await;
    let (mut alice, _) = session(&s, "alice", json!({})).await;
    let (mut dave, _) = session(&s, "dave", json!({})).await;

    alice.send(call("bot", "a", json!(1), "1")).await;
    alice.send(call("bot", "a", json!(1), "1")).await;
    let e = answer(&mut alice, "1").await;
    assert_eq!(code(&e), "bad_request", "the id is waiting: {e}");
    alice.send(call("bot", "b", json!(1), "2")).await;
    alice.send(call("bot", "c", json!(1), "3")).await;
    assert_eq!(code(&answer(&mut alice, "3").await), "too_many_calls");
    // The bot holds 2 unanswered calls: a third caller is refused too.
    bot.recv_type("rpc:call").await;
    bot.recv_type("rpc:call").await;
    dave.send(call(&bot_id, "d", json!(1), "x")).await;
    let e = answer(&mut dave, "x").await;
    assert_eq!(code(&e), "too_many_calls", "{e}");

    let big = json!("y".repeat(200));
    dave.send(call("bot", "m", big, "big")).await;
    assert_eq!(code(&answer(&mut dave, "big").await), "too_large");
    let mut long = call("bot", "m", json!(1), "long");
    long["timeout_ms"] = json!(6000);
    dave.send(long).await;
    assert_eq!(code(&answer(&mut dave, "long").await), "bad_request");
    bot.send(json!({"type": "rpc:call", "to": bot_id, "method": "me", "id": "self"}))
        .await;
    assert_eq!(code(&answer(&mut bot, "self").await), "bad_request");
    let hostile = [
        json!({"type": "rpc:call", "to": "bot", "method": "m"}),
        json!({"type": "rpc:call", "to": "bot", "id": "h"}),
        json!({"type": "rpc:call", "to": "bot bot", "method": "m", "id": "h"}),
        json!({"type": "rpc:call", "to": "bot", "method": "", "id": "h"}),
        json!({"type": "rpc:call", "to": "bot", "method": "m", "id": "h", "timeout_ms": "soon"}),
        json!({"type": "rpc:call", "to": "bot", "method": "m", "id": "h", "room": "r"}),
        json!({"type": "rpc:result", "id": "c1"}),
        json!({"type": "rpc:result", "id": "c1", "result": 1, "error": {"code": "x"}}),
        json!({"type": "rpc:result", "id": "c1", "error": {"code": "has space"}}),
    ];
    for f in hostile {
        alice.send(f.clone()).await;
        let e = alice.recv_type("error").await;
        assert_eq!(e["code"], "bad_request", "{f} → {e}");
    }
    alice
        .send_text(r#"{"type":"rpc:call","to":"bot","method":"m","id":"h","params":1e999}"#)
        .await;
    assert_eq!(alice.recv_type("error").await["code"], "bad_request");
    alice.send(json!({"type": "rpc:cancel", "id": "h"})).await;
    assert_eq!(alice.recv_type("error").await["code"], "unknown_type");
    alice
        .send(json!({"type": "rpc:result", "id": "c77", "result": 1}))
        .await;
    assert_eq!(code(&answer(&mut alice, "c77").await), "not_found");
    // The server is alive and well after all that.
    alice.send(json!({"type": "ping", "id": "p"})).await;
    alice.recv_type("pong").await;
}

#[tokio::test]
async fn results_over_the_cap_and_the_call_rate() {
    let s = Server::with_env(&[
        ("SWITCHBOARD_RPC_MAX_PARAMS", "100"),
        ("SWITCHBOARD_RPC_RATE", "1"),
        ("SWITCHBOARD_RPC_BURST", "2"),
    ]);
    let (mut bot, _) = session(&s, "bot", service()).await;
    let (mut alice, _) = session(&s, "alice", json!({})).await;
    alice.send(call("bot", "m", json!(1), "1")).await;
    let got = bot.recv_type("rpc:call").await;
    bot.send(json!({"type": "rpc:result", "id": got["id"], "result": "z".repeat(200)}))
        .await;
    assert_eq!(code(&bot.recv_type("error").await), "too_large");
    let r = answer(&mut alice, "1").await;
    assert_eq!(r["error"]["code"], "too_large", "{r}");
    alice.send(call("nobody", "m", json!(1), "2")).await;
    assert_eq!(code(&answer(&mut alice, "2").await), "user_offline");
    alice.send(call("nobody", "m", json!(1), "3")).await;
    let e = answer(&mut alice, "3").await;
    assert_eq!(code(&e), "rate_limited", "{e}");
    assert!(e["retry_after_ms"].as_u64().unwrap() > 0, "{e}");
    // Services are not rate limited.
    for i in 0..4 {
        bot.send(call("nobody", "m", json!(1), &format!("s{i}")))
            .await;
        assert_eq!(
            code(&answer(&mut bot, &format!("s{i}")).await),
            "user_offline"
        );
    }
}

#[tokio::test]
async fn calls_over_sse_both_ways() {
    let s = Server::start();
    let (mut bot, bot_id) = session(&s, "bot", service()).await;
    let mut sse = Sse::open(
        &s,
        &format!("/sse?token={}", token("alice", json!({}))),
        &[],
    )
    .await;
    assert_eq!(sse.status, 200);
    let hello = sse.recv_type("connected").await;
    sse.key = hello.data["key"].as_str().unwrap().to_string();
    let alice_id = hello.data["session"].as_str().unwrap().to_string();

    let status = sse
        .send(&s, call(&bot_id, "sum", json!([1, 2]), "q1"))
        .await;
    assert_eq!(status, 202);
    let got = bot.recv_type("rpc:call").await;
    assert_eq!(got["session"], alice_id, "{got}");
    bot.send(json!({"type": "rpc:result", "id": got["id"], "result": 3}))
        .await;
    let r = sse.recv_type("rpc:result").await;
    assert_eq!(
        (&r.data["id"], &r.data["result"]),
        (&json!("q1"), &json!(3))
    );

    bot.send(call(&alice_id, "confirm", json!({"q": "ok?"}), "b1"))
        .await;
    let got = sse.recv_type("rpc:call").await;
    assert_eq!(got.data["method"], "confirm");
    let status = sse
        .send(
            &s,
            json!({"type": "rpc:result", "id": got.data["id"], "result": true}),
        )
        .await;
    assert_eq!(status, 202);
    let r = answer(&mut bot, "b1").await;
    assert_eq!(
        (&r["result"], &r["session"]),
        (&json!(true), &json!(alice_id))
    );
}

#[tokio::test]
async fn calls_over_long_polling_both_ways() {
    let s = Server::start();
    let (mut bot, bot_id) = session(&s, "bot", service()).await;
    let mut poll = Poller::open(&s, &format!("token={}", token("polly", json!({})))).await;
    let (hello, _) = poll.recv_type(&s, "connected").await;
    let polly_id = hello["session"].as_str().unwrap().to_string();

    let status = poll
        .send(&s, call(&bot_id, "sum", json!([2, 3]), "p1"))
        .await;
    assert_eq!(status, 202);
    let got = bot.recv_type("rpc:call").await;
    assert_eq!(
        (&got["session"], &got["method"]),
        (&json!(polly_id), &json!("sum"))
    );
    bot.send(json!({"type": "rpc:result", "id": got["id"], "result": 5}))
        .await;
    let (r, _) = poll.recv_type(&s, "rpc:result").await;
    assert_eq!((&r["id"], &r["result"]), (&json!("p1"), &json!(5)), "{r}");

    bot.send(call(&polly_id, "pick", json!(["a", "b"]), "b1"))
        .await;
    let (got, _) = poll.recv_type(&s, "rpc:call").await;
    assert_eq!(got["params"], json!(["a", "b"]));
    let err = json!({"code": "declined", "message": "no"});
    let status = poll
        .send(
            &s,
            json!({"type": "rpc:result", "id": got["id"], "error": err}),
        )
        .await;
    assert_eq!(status, 202);
    let r = answer(&mut bot, "b1").await;
    assert_eq!(r["error"]["code"], "declined", "{r}");
}
