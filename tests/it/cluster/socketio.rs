//! Socket.IO connection state recovery across nodes: a client whose link
//! dropped on one node comes back on another with its `pid` and last
//! offset, and gets `recovered` and exactly what it missed.

use super::redis::Redis;
use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next Engine.IO text message starting with `prefix` (pings answered).
async fn next_text(ws: &mut Ws, prefix: &str) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                    ws.send(Message::Text("3".into())).await.unwrap();
                }
                Some(Ok(Message::Text(t))) if t.starts_with(prefix) => return t.to_string(),
                Some(Ok(_)) => {}
                other => panic!("waiting for {prefix}: {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no message starting with {prefix}"))
}

/// A Socket.IO client on `node` over WebSocket, connected to `/` with
/// `auth`: the socket and the CONNECT answer.
async fn sio(node: &Server, auth: Value) -> (Ws, Value) {
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", node.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("ws");
    next_text(&mut ws, "0{").await;
    ws.send(Message::Text(format!("40{auth}"))).await.unwrap();
    let answer = next_text(&mut ws, "40").await;
    (
        ws,
        serde_json::from_str(&answer[2..]).expect("CONNECT answer"),
    )
}

/// The next `message:receive` of `room`: its `data.n` and offset.
async fn message(ws: &mut Ws, room: &str) -> (u64, String) {
    loop {
        let t = next_text(ws, r#"42["message:receive""#).await;
        let args: Value = serde_json::from_str(&t[2..]).unwrap();
        if args[1]["room"] == room {
            let offset = args[2].as_str().unwrap_or_else(|| panic!("an offset: {t}"));
            return (args[1]["data"]["n"].as_u64().unwrap(), offset.to_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_socketio_client_recovers_on_another_node() {
    let redis = Redis::start();
    let nodes = redis.nodes(2, &[]);
    let t = token("sio-alice", json!({}));
    let (mut ws, first) = sio(&nodes[0], json!({ "token": t })).await;
    let pid = first["pid"].as_str().expect("a pid").to_string();
    ws.send(Message::Text(r#"420["room:join",{"room":"sio-x"}]"#.into()))
        .await
        .unwrap();
    next_text(&mut ws, "430[").await;
    let mut bob = nodes[1].user("sio-bob").await;
    bob.join("sio-x").await;
    let say = |n: u64| json!({"type": "message:send", "room": "sio-x", "data": {"n": n}});
    bob.send(say(1)).await;
    let (n, offset) = message(&mut ws, "sio-x").await;
    assert_eq!(n, 1);

    // The link drops (no DISCONNECT, no close frame).
    drop(ws);
    let mut gone = false;
    for _ in 0..100 {
        let path = "/api/users/sio-alice/presence";
        let (_, r) = crate::server_api::call(&nodes[1], "GET", path, None).await;
        if r["status"] == "offline" {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "alice's session ended");
    bob.send(say(2)).await;
    bob.send(say(3)).await;
    // Numbered (and stored) once bob sees them.
    while bob.recv_type("message:receive").await["data"]["n"] != 3 {}

    // Back on the other node, with the pid and the last offset seen.
    let auth = json!({ "token": t, "pid": pid, "offset": offset });
    let (mut ws, again) = sio(&nodes[1], auth).await;
    assert_eq!(
        again["pid"],
        json!(pid),
        "recovered: the same pid ({again})"
    );
    assert_eq!(message(&mut ws, "sio-x").await.0, 2);
    assert_eq!(message(&mut ws, "sio-x").await.0, 3);
    // Joined again, silently: live messages come, once.
    bob.send(say(4)).await;
    assert_eq!(message(&mut ws, "sio-x").await.0, 4);

    // A pid recovers one connection: presented again, it is a new one.
    let (_, third) = sio(
        &nodes[0],
        json!({ "token": t, "pid": pid, "offset": offset }),
    )
    .await;
    assert!(
        third["pid"].is_string() && third["pid"] != json!(pid),
        "{third}"
    );
}
