//! AI response streams (`stream:*` frames): chunks to every member, the
//! end as one stored message, the catch-up of members who join or
//! reconnect mid-stream (also under a seeded random schedule), cancel, the
//! stall timeout, bounds, another transport, and hostile frames.

use crate::common::*;
use crate::fallback::{Poller, Sse};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

async fn service(s: &Server, name: &str) -> Client {
    s.user_with(name, json!({"role":"service"})).await
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

async fn code_of(c: &mut Client, frame: Value) -> String {
    c.send(frame).await;
    let (f, _) = answer(c, "x").await;
    assert_eq!(f["type"], "error", "{f}");
    f["code"].as_str().unwrap().to_string()
}

/// One connection's view of a room's streams, checked frame by frame: a
/// chunk must be the next one (never twice, never after a gap).
#[derive(Default)]
struct View {
    text: HashMap<String, (String, u64)>,
    ended: HashMap<String, String>,
    stored: HashMap<String, String>,
    seq: u64,
}

impl View {
    fn see(&mut self, f: &Value) {
        let stream = || f["stream"].as_str().unwrap().to_string();
        match f["type"].as_str().unwrap() {
            "stream:start" => {
                let prev = self.text.insert(
                    stream(),
                    (
                        f["text"].as_str().unwrap().into(),
                        f["next"].as_u64().unwrap(),
                    ),
                );
                assert!(prev.is_none(), "a second start of a live stream: {f}");
            }
            "stream:data" => {
                let (text, next) = self.text.get_mut(&stream()).expect("data before start");
                assert_eq!(
                    f["index"].as_u64().unwrap(),
                    *next,
                    "chunk out of order: {f}"
                );
                text.push_str(f["chunk"].as_str().unwrap());
                *next += 1;
            }
            "stream:end" => {
                let (text, next) = self.text.remove(&stream()).expect("end before start");
                assert_eq!(f["chunks"].as_u64().unwrap(), next, "{f}");
                assert_eq!(f["length"].as_u64().unwrap() as usize, text.len(), "{f}");
                self.ended.insert(stream(), text);
            }
            "message:receive" if f["data"]["stream"].is_string() => {
                let s = f["data"]["stream"].as_str().unwrap().to_string();
                let t = f["data"]["text"].as_str().unwrap().to_string();
                if let Some(seen) = self.ended.get(&s) {
                    assert_eq!(seen, &t, "the stored text is the text streamed");
                }
                assert!(
                    self.stored.insert(s, t).is_none(),
                    "stored message twice: {f}"
                );
                self.seq = self.seq.max(f["seq"].as_u64().unwrap());
            }
            "room:joined" => self.seq = self.seq.max(f["seq"].as_u64().unwrap()),
            _ => {}
        }
    }

    /// Reads until a `pong` answering `id`, checking every frame.
    async fn drain(&mut self, c: &mut Client, id: &str) {
        c.send(json!({"type":"ping","id":id})).await;
        loop {
            let f = c.recv().await;
            if f["type"] == "pong" && f["id"] == id {
                return;
            }
            self.see(&f);
        }
    }
}

#[tokio::test]
async fn a_stream_reaches_members_chunk_by_chunk_and_ends_as_one_stored_message() {
    let s = Server::start();
    let mut bot = service(&s, "bot").await;
    let (mut alice, mut bob) = (s.user("alice").await, s.user("bob").await);
    for c in [&mut bot, &mut alice, &mut bob] {
        c.join("chat").await;
    }
    bot.send(json!({"type":"stream:start","room":"chat","stream":"r1","meta":{"model":"words"},"id":"st"}))
        .await;
    let (ack, _) = answer(&mut bot, "st").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let start = alice.recv_type("stream:start").await;
    assert_eq!(
        (
            start["room"].clone(),
            start["stream"].clone(),
            start["meta"].clone(),
            start["text"].clone(),
            start["next"].clone()
        ),
        (
            json!("chat"),
            json!("r1"),
            json!({"model":"words"}),
            json!(""),
            json!(0)
        ),
        "{start}"
    );
    assert_eq!(start["from"]["user"], "bot", "{start}");
    bob.recv_type("stream:start").await;
    for (i, w) in ["Hel", "lo, ", "wor"].iter().enumerate() {
        bot.send(json!({"type":"stream:data","stream":"r1","chunk":w}))
            .await;
        for c in [&mut alice, &mut bob] {
            let d = c.recv_type("stream:data").await;
            assert_eq!(
                (d["index"].clone(), d["chunk"].clone()),
                (json!(i), json!(w)),
                "{d}"
            );
        }
    }
    bot.send(json!({"type":"stream:end","stream":"r1","final":"ld","id":"e"}))
        .await;
    let (ack, before) = answer(&mut bot, "e").await;
    assert!(
        ack["seq"].as_u64().unwrap() >= 1,
        "the producer's ack has the seq: {ack}"
    );
    assert!(
        before.iter().all(|f| f["type"] != "stream:data"),
        "the producer gets no echo of its chunks"
    );
    for c in [&mut alice, &mut bob] {
        let d = c.recv_type("stream:data").await;
        assert_eq!(
            (d["index"].clone(), d["chunk"].clone()),
            (json!(3), json!("ld"))
        );
        let end = c.recv_type("stream:end").await;
        assert_eq!(
            (end["chunks"].clone(), end["length"].clone()),
            (json!(4), json!(12)),
            "{end}"
        );
        let m = c.recv_type("message:receive").await;
        assert_eq!(
            m["data"],
            json!({"stream":"r1","text":"Hello, world","meta":{"model":"words"}}),
            "{m}"
        );
        assert_eq!(
            (m["from"]["user"].clone(), m["seq"].clone()),
            (json!("bot"), ack["seq"].clone())
        );
    }
    // The stored message is history: a later member recovers it.
    let mut carol = s.user("carol").await;
    carol
        .send(json!({"type":"room:join","room":"chat","since":0}))
        .await;
    carol.recv_type("room:joined").await;
    let m = carol.recv_type("message:receive").await;
    assert_eq!(m["data"]["text"], "Hello, world");
    // Ended: more chunks are refused.
    assert_eq!(
        code_of(
            &mut bot,
            json!({"type":"stream:data","room":"chat","stream":"r1","chunk":"x","id":"x"})
        )
        .await,
        "not_found"
    );
}

#[tokio::test]
async fn a_member_joining_mid_stream_gets_the_text_so_far_in_one_frame_then_live_chunks() {
    let s = Server::start();
    let mut bot = service(&s, "bot").await;
    bot.join("mid").await;
    bot.send(json!({"type":"stream:start","room":"mid","stream":"a"}))
        .await;
    bot.send(json!({"type":"stream:start","room":"mid","stream":"b","meta":null}))
        .await;
    for c in ["one ", "two "] {
        bot.send(json!({"type":"stream:data","stream":"a","chunk":c}))
            .await;
    }
    bot.send(json!({"type":"stream:data","stream":"b","chunk":"B","id":"last"}))
        .await;
    // The producer's frames reach the room before the join (which comes
    // through the Hub): the join is handled after them.
    answer(&mut bot, "last").await;
    let mut late = s.user("late").await;
    late.send(json!({"type":"room:join","room":"mid"})).await;
    late.recv_type("room:joined").await;
    let mut got = HashMap::new();
    for _ in 0..2 {
        let f = late.recv_type("stream:start").await;
        got.insert(
            f["stream"].as_str().unwrap().to_string(),
            (f["text"].clone(), f["next"].clone()),
        );
    }
    assert_eq!(got["a"], (json!("one two "), json!(2)));
    assert_eq!(got["b"], (json!("B"), json!(1)));
    bot.send(json!({"type":"stream:data","stream":"a","chunk":"three"}))
        .await;
    let d = late.recv_type("stream:data").await;
    assert_eq!(
        (d["stream"].clone(), d["index"].clone()),
        (json!("a"), json!(2)),
        "{d}"
    );
}

/// Tiny deterministic generator (xorshift64*), so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[tokio::test]
async fn members_joining_and_reconnecting_at_random_points_end_with_the_exact_text() {
    let seed: u64 = std::env::var("SB_STREAM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0013);
    eprintln!("stream catch-up seed {seed} (SB_STREAM_SEED)");
    let mut rng = Rng(seed | 1);
    let s = Server::start();
    let mut bot = service(&s, "bot").await;
    bot.join("rand").await;
    const MEMBERS: usize = 4;
    let mut members: Vec<Option<(Client, View)>> = (0..MEMBERS).map(|_| None).collect();
    let mut connects = 0;
    for round in 0..3 {
        let stream = format!("s{round}");
        bot.send(json!({"type":"stream:start","room":"rand","stream":stream}))
            .await;
        let mut text = String::new();
        for i in 0..40 {
            let chunk = format!("{i}:{}|", "x".repeat(rng.below(5) as usize));
            text.push_str(&chunk);
            bot.send(json!({"type":"stream:data","stream":stream,"chunk":chunk}))
                .await;
            let m = rng.below(MEMBERS as u64) as usize;
            match rng.below(4) {
                // Connect (or reconnect) and join, recovering from the last seq seen.
                0 => {
                    let since = match members[m].take() {
                        Some((c, v)) => {
                            c.close().await;
                            v.seq
                        }
                        None => 0,
                    };
                    // A new user each time: the harness's greeting expects
                    // no announcement of the user's own other sessions.
                    connects += 1;
                    let mut c = s.user(&format!("m{m}-{connects}")).await;
                    c.send(json!({"type":"room:join","room":"rand","since":since}))
                        .await;
                    members[m] = Some((
                        c,
                        View {
                            seq: since,
                            ..View::default()
                        },
                    ));
                }
                // Leave for good (until a later connect).
                1 => {
                    if let Some((mut c, mut v)) = members[m].take() {
                        v.drain(&mut c, "bye").await;
                        c.close().await;
                    }
                }
                // Read what has come so far.
                _ => {
                    if let Some((c, v)) = members[m].as_mut() {
                        v.drain(c, "p").await;
                    }
                }
            }
        }
        bot.send(json!({"type":"stream:end","stream":stream,"id":"end"}))
            .await;
        answer(&mut bot, "end").await;
        // Every member connected now ends with exactly the text; a member
        // who joined before the end saw it grow to the same text.
        for (c, v) in members.iter_mut().flatten() {
            loop {
                let f = c.recv().await;
                v.see(&f);
                if f["type"] == "message:receive" && f["data"]["stream"] == stream.as_str() {
                    break;
                }
            }
            assert_eq!(v.stored[&stream], text, "seed {seed}");
            if let Some(seen) = v.ended.get(&stream) {
                assert_eq!(seen, &text, "seed {seed}");
            }
        }
    }
}

#[tokio::test]
async fn cancel_reaches_the_producer_and_a_stalled_stream_ends_with_timeout() {
    let s = Server::with_env(&[("SWITCHBOARD_STREAM_STALL_MS", "2000")]);
    let mut bot = service(&s, "bot").await;
    let (mut alice, mut eve) = (s.user("alice").await, s.user("eve").await);
    bot.join("c").await;
    alice.join("c").await;
    bot.send(json!({"type":"stream:start","room":"c","stream":"q"}))
        .await;
    alice.recv_type("stream:start").await;
    alice
        .send(json!({"type":"stream:cancel","room":"c","stream":"q","id":"k"}))
        .await;
    let (ack, _) = answer(&mut alice, "k").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let c = bot.recv_type("stream:cancelled").await;
    assert_eq!(
        (c["stream"].clone(), c["by"]["user"].clone()),
        (json!("q"), json!("alice")),
        "{c}"
    );
    // Not a member: refused; an unknown stream: not_found.
    assert_eq!(
        code_of(
            &mut eve,
            json!({"type":"stream:cancel","room":"c","stream":"q","id":"x"})
        )
        .await,
        "not_member"
    );
    assert_eq!(
        code_of(
            &mut alice,
            json!({"type":"stream:cancel","room":"c","stream":"nope","id":"x"})
        )
        .await,
        "not_found"
    );
    // Only the producer adds to it.
    assert_eq!(
        code_of(
            &mut alice,
            json!({"type":"stream:data","room":"c","stream":"q","chunk":"hi","id":"x"})
        )
        .await,
        "forbidden"
    );
    // Nothing more comes: it ends with `timeout`, for members and the producer.
    let e = alice.recv_type("stream:error").await;
    assert_eq!(
        (e["stream"].clone(), e["reason"].clone()),
        (json!("q"), json!("timeout")),
        "{e}"
    );
    let e = bot.recv_type("stream:error").await;
    assert_eq!(e["reason"], "timeout");
    assert_eq!(
        code_of(
            &mut bot,
            json!({"type":"stream:data","stream":"q","chunk":"late","id":"x"})
        )
        .await,
        "not_found"
    );
    // A producer that leaves ends its streams.
    bot.send(json!({"type":"stream:start","room":"c","stream":"p"}))
        .await;
    alice.recv_type("stream:start").await;
    bot.close().await;
    let e = alice.recv_type("stream:error").await;
    assert_eq!(
        (e["stream"].clone(), e["reason"].clone()),
        (json!("p"), json!("producer_left")),
        "{e}"
    );
    alice
        .expect_no("message:receive", Duration::from_millis(200))
        .await;
}

#[tokio::test]
async fn bounds_errors_and_a_stream_to_one_user() {
    let s = Server::with_env(&[
        ("SWITCHBOARD_STREAMS_PER_ROOM", "2"),
        ("SWITCHBOARD_STREAM_MAX_BYTES", "10"),
    ]);
    let mut bot = service(&s, "bot").await;
    bot.join("b").await;
    let start = |id: &str| json!({"type":"stream:start","room":"b","stream":id,"id":"x"});
    bot.send(json!({"type":"stream:start","room":"b","stream":"one","id":"o"}))
        .await;
    answer(&mut bot, "o").await;
    assert_eq!(code_of(&mut bot, start("one")).await, "bad_request");
    bot.send(json!({"type":"stream:start","room":"b","stream":"two","id":"t"}))
        .await;
    answer(&mut bot, "t").await;
    assert_eq!(code_of(&mut bot, start("three")).await, "rate_limited");
    bot.send(json!({"type":"stream:data","stream":"one","chunk":"0123456789","id":"d"}))
        .await;
    assert_eq!(answer(&mut bot, "d").await.0["type"], "ack");
    assert_eq!(
        code_of(
            &mut bot,
            json!({"type":"stream:data","stream":"one","chunk":"!","id":"x"})
        )
        .await,
        "too_large"
    );
    assert_eq!(
        code_of(
            &mut bot,
            json!({"type":"stream:end","stream":"one","final":"!","id":"x"})
        )
        .await,
        "too_large"
    );
    // The refused chunk changed nothing: the stream still ends with its text.
    bot.send(json!({"type":"stream:end","stream":"one","id":"e"}))
        .await;
    let (ack, before) = answer(&mut bot, "e").await;
    assert!(ack["seq"].is_u64(), "{ack} {before:?}");
    // Not joined: not_member.
    assert_eq!(
        code_of(
            &mut bot,
            json!({"type":"stream:start","room":"elsewhere","stream":"z","id":"x"})
        )
        .await,
        "not_member"
    );

    // `to`: a stream in the user's personal room, which all their sessions are in.
    let (mut b1, mut b2) = (s.user("bob").await, s.user("bob").await);
    bot.join("user:bob").await;
    bot.send(json!({"type":"stream:start","to":"bob","stream":"dm","id":"s"}))
        .await;
    answer(&mut bot, "s").await;
    bot.send(json!({"type":"stream:end","stream":"dm","final":"hi bob","id":"e2"}))
        .await;
    answer(&mut bot, "e2").await;
    for b in [&mut b1, &mut b2] {
        let st = b.recv_type("stream:start").await;
        assert_eq!(st["room"], "user:bob");
        let m = b.recv_type("message:receive").await;
        assert_eq!(m["data"]["text"], "hi bob", "{m}");
    }
}

#[tokio::test]
async fn streams_work_over_sse() {
    let s = Server::start();
    let mut bot = service(&s, "bot").await;
    bot.join("web").await;
    let mut sse = Sse::connect(&s, &format!("/sse?token={}", token("sam", json!({})))).await;
    assert_eq!(
        sse.send(&s, json!({"type":"room:join","room":"web"})).await,
        202
    );
    sse.joined("web").await;
    bot.send(json!({"type":"stream:start","room":"web","stream":"w"}))
        .await;
    sse.recv_type("stream:start").await;
    bot.send(json!({"type":"stream:data","stream":"w","chunk":"ab"}))
        .await;
    let d = sse.recv_type("stream:data").await;
    assert_eq!(
        (d.data["index"].clone(), d.data["chunk"].clone()),
        (json!(0), json!("ab"))
    );
    // An SSE member may cancel (frames are POSTed).
    assert_eq!(
        sse.send(
            &s,
            json!({"type":"stream:cancel","room":"web","stream":"w"})
        )
        .await,
        202
    );
    bot.recv_type("stream:cancelled").await;
    bot.send(json!({"type":"stream:end","stream":"w"})).await;
    sse.recv_type("stream:end").await;
    let m = sse.recv_type("message:receive").await;
    assert_eq!(m.data["data"]["text"], "ab");
}

#[tokio::test]
async fn a_service_on_long_polling_produces_a_stream() {
    let s = Server::start();
    let mut alice = s.user("alice").await;
    alice.join("web").await;
    let svc = token("pbot", json!({"role": "service"}));
    let mut poll = Poller::open(&s, &format!("token={svc}")).await;
    poll.recv_type(&s, "connected").await;
    poll.send(&s, json!({"type": "room:join", "room": "web"}))
        .await;
    poll.joined(&s, "web").await;
    let frames = json!([
        {"type": "stream:start", "room": "web", "stream": "p", "id": "s"},
        {"type": "stream:data", "stream": "p", "chunk": "po"},
        {"type": "stream:end", "stream": "p", "final": "ll", "id": "e"}
    ]);
    assert_eq!(poll.send(&s, frames).await, 202);
    let (ack, _) = poll.recv_type(&s, "ack").await;
    assert_eq!(ack["id"], "s", "{ack}");
    let (end, _) = poll.recv_type(&s, "ack").await;
    assert_eq!(end["id"], "e", "{end}");
    let st = alice.recv_type("stream:start").await;
    assert_eq!(st["from"]["user"], "pbot", "{st}");
    let m = alice.recv_type("message:receive").await;
    assert_eq!(
        (&m["data"]["text"], &m["seq"]),
        (&json!("poll"), &end["seq"]),
        "{m}"
    );
}

#[tokio::test]
async fn hostile_stream_frames_get_clear_codes_and_never_hurt_the_server() {
    let s = Server::start();
    let mut c = s.user("h").await;
    c.join("h").await;
    let long = "y".repeat(300);
    for (frame, code) in [
        (
            json!({"type":"stream:start","room":"h","id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"stream:start","stream":"s","id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"stream:start","room":"h","to":"u","stream":"s","id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"stream:start","room":"no way","stream":"s","id":"x"}),
            "invalid_room",
        ),
        (
            json!({"type":"stream:start","room":"h","stream":"s s","id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"stream:start","room":"h","stream":"s","meta":"m".repeat(5000),"id":"x"}),
            "too_large",
        ),
        (
            json!({"type":"stream:start","room":"h","stream":7,"id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"stream:data","stream":"s","chunk":"","id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"stream:data","stream":"s","chunk":["a"],"id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"stream:data","stream":"s","chunk":"a","id":"x"}),
            "not_found",
        ),
        (
            json!({"type":"stream:end","stream":"s","final":5,"id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"stream:error","stream":"s","id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"stream:error","stream":"s","reason":long,"id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"stream:cancel","stream":"s","id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"stream:cancel","room":"h","stream":"s","chunk":"a","id":"x"}),
            "bad_request",
        ),
        (
            json!({"type":"stream:bogus","stream":"s","id":"x"}),
            "unknown_type",
        ),
        (
            json!({"type":"stream:data","stream":"s","chunk":"a","extra":1,"id":"x"}),
            "bad_request",
        ),
    ] {
        assert_eq!(code_of(&mut c, frame.clone()).await, code, "{frame}");
    }
    c.send_text(r#"{"type":"stream:data","stream":"s","chunk":"\ud800","id":"x"}"#)
        .await;
    let f = c.recv_type("error").await;
    assert_eq!(f["code"], "bad_request", "{f}");
    c.send(json!({"type":"ping","id":"alive"})).await;
    assert_eq!(c.recv_type("pong").await["id"], "alive");
}
