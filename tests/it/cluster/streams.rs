//! AI response streams across nodes: the producer on node A, members on
//! B and C; C starts serving the room mid-stream and its member gets the
//! text so far, then the live chunks; a cancel from C reaches A.

use super::redis::Redis;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_from_one_node_reaches_members_on_others_with_catch_up() {
    let redis = Redis::start();
    let nodes = redis.nodes(3, &[]);
    let mut bot = nodes[0].user_with("bot", json!({"role":"service"})).await;
    bot.join("ai").await;
    let mut bob = nodes[1].user("bob").await;
    bob.join("ai").await;
    bot.send(json!({"type":"stream:start","room":"ai","stream":"x","meta":{"n":1},"id":"s"}))
        .await;
    assert_eq!(bot.recv_type("ack").await["id"], "s");
    let st = bob.recv_type("stream:start").await;
    assert_eq!(
        (st["text"].clone(), st["meta"].clone()),
        (json!(""), json!({"n":1}))
    );
    let mut text = String::new();
    for i in 0..10 {
        let c = format!("w{i} ");
        text.push_str(&c);
        bot.send(json!({"type":"stream:data","stream":"x","chunk":c,"id":format!("d{i}")}))
            .await;
        // Each chunk is acked after Redis took it: the text so far is there.
        let a = bot.recv_type("ack").await;
        assert_eq!(a["id"], format!("d{i}"));
    }
    for i in 0..10 {
        let d = bob.recv_type("stream:data").await;
        assert_eq!(d["index"], i, "{d}");
    }
    // Node C has no member of the room yet: it starts serving it now.
    let mut carol = nodes[2].user("carol").await;
    carol.join("ai").await;
    let st = carol.recv_type("stream:start").await;
    assert_eq!(
        (st["text"].clone(), st["next"].clone()),
        (json!(text), json!(10)),
        "{st}"
    );
    bot.send(json!({"type":"stream:data","stream":"x","chunk":"more"}))
        .await;
    text.push_str("more");
    let d = carol.recv_type("stream:data").await;
    assert_eq!(
        (d["index"].clone(), d["chunk"].clone()),
        (json!(10), json!("more"))
    );
    // A member on C cancels; the producer on A hears it.
    carol
        .send(json!({"type":"stream:cancel","room":"ai","stream":"x","id":"k"}))
        .await;
    assert_eq!(carol.recv_type("ack").await["id"], "k");
    let c = bot.recv_type("stream:cancelled").await;
    assert_eq!(c["by"]["user"], "carol");
    // Another node's stream id is taken; chunks for others' streams refused.
    let mut eve = nodes[1].user("eve").await;
    eve.join("ai").await;
    eve.send(json!({"type":"stream:start","room":"ai","stream":"x","id":"dup"}))
        .await;
    let e = eve.recv_type("error").await;
    assert_eq!(
        (e["code"].clone(), e["ref"].clone()),
        (json!("bad_request"), json!("dup"))
    );
    eve.send(json!({"type":"stream:data","room":"ai","stream":"x","chunk":"no","id":"f"}))
        .await;
    assert_eq!(eve.recv_type("error").await["code"], "forbidden");
    bot.send(json!({"type":"stream:end","stream":"x","final":".","id":"e"}))
        .await;
    text.push('.');
    let ack = bot.recv_type("ack").await;
    assert!(ack["seq"].is_u64(), "{ack}");
    for m in [&mut bob, &mut carol] {
        let end = m.recv_type("stream:end").await;
        assert_eq!(end["length"], text.len(), "{end}");
        let msg = m.recv_type("message:receive").await;
        assert_eq!(
            (msg["data"]["text"].clone(), msg["seq"].clone()),
            (json!(text), ack["seq"].clone())
        );
    }
    // The producer's leaving fails its live streams on every node.
    bot.send(json!({"type":"stream:start","room":"ai","stream":"y"}))
        .await;
    carol.recv_type("stream:start").await;
    bot.close().await;
    let e = carol.recv_type("stream:error").await;
    assert_eq!(
        (e["stream"].clone(), e["reason"].clone()),
        (json!("y"), json!("producer_left"))
    );
}
