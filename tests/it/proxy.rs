//! Behind a reverse proxy: the client's address comes from `X-Forwarded-For`
//! only when the socket's peer is in `SWITCHBOARD_TRUSTED_PROXIES`, and it is
//! what the per-address guest limit counts and the monitor shows.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A WebSocket connection whose handshake carries `X-Forwarded-For: xff`.
/// `Err(status)` when the handshake is refused.
pub async fn ws_via(addr: &str, path: &str, xff: &str) -> Result<Client, u16> {
    let mut req = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("X-Forwarded-For", xff.parse().expect("header"));
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(Client::from_stream(ws)),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("handshake: {e}"),
    }
}

async fn guest_via(s: &Server, name: &str, xff: &str) -> Result<Client, u16> {
    let mut c = ws_via(&s.addr, &format!("/ws?name={name}"), xff).await?;
    c.greeted().await;
    Ok(c)
}

/// The `connect` events the monitor kept for guests named `name`.
pub async fn connect_addrs(s: &Server, user_prefix: &str) -> Vec<Value> {
    let admin = token("ops", json!({"role": "admin"}));
    let (status, body) = s.get_json("/api/events", Some(&admin)).await;
    assert_eq!(status, 200, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "connect")
        .filter(|e| e["user"].as_str().unwrap_or("").starts_with(user_prefix))
        .map(|e| e["addr"].clone())
        .collect()
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client_whose_guests_are_counted() {
    let s = Server::with_env(&[
        ("SWITCHBOARD_TRUSTED_PROXIES", "10.9.9.9, 127.0.0.0/8"),
        ("SWITCHBOARD_GUESTS_PER_IP", "2"),
    ]);
    let a = "203.0.113.7";
    // The left part is the client's to write; the rightmost untrusted hop counts.
    let _g1 = guest_via(&s, "g1", a).await.expect("first guest");
    let _g2 = guest_via(&s, "g2", &format!("6.6.6.6, {a}, 10.9.9.9"))
        .await
        .expect("second guest");
    assert_eq!(guest_via(&s, "g3", a).await.err(), Some(429));
    // The same limit on the HTTP transports, by the same address.
    let r = s
        .request(
            "POST",
            "/poll/open?name=g4",
            &[("X-Forwarded-For", a)],
            None,
        )
        .await;
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["code"], "rate_limited");
    // Another address has room of its own; so has the proxy itself.
    let _other = guest_via(&s, "g5", "198.51.100.1").await.expect("other");
    let mut direct = s.guest("g6").await;
    // A connection that becomes a guest later (no name, a first frame) is
    // counted too: refused with an error frame and 1008.
    let mut late = ws_via(&s.addr, "/ws", a).await.expect("handshake");
    late.send(json!({"type": "ping"})).await;
    assert_eq!(late.recv_type("error").await["code"], "rate_limited");
    assert_eq!(late.close_code(WAIT).await, Some(1008));
    // Closing a guest gives its place back.
    direct.send(json!({"type": "ping"})).await;
    drop(_g1);
    let mut again = None;
    for _ in 0..100 {
        if let Ok(c) = guest_via(&s, "g7", a).await {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "a closed guest's place was not given back");
    // The monitor shows who connected from where.
    let addrs = connect_addrs(&s, "guest-").await;
    for want in [a, "198.51.100.1", "127.0.0.1"] {
        assert!(addrs.iter().any(|x| x == want), "{want} not in {addrs:?}");
    }
    assert!(!addrs.iter().any(|x| x == "6.6.6.6"), "{addrs:?}");
}

#[tokio::test]
async fn forwarded_addresses_from_untrusted_peers_are_ignored() {
    let s = Server::with_env(&[
        ("SWITCHBOARD_TRUSTED_PROXIES", "10.9.9.9"),
        ("SWITCHBOARD_GUESTS_PER_IP", "2"),
    ]);
    // Three different claimed addresses, one real peer: 127.0.0.1.
    let _g1 = guest_via(&s, "g1", "203.0.113.1").await.expect("first");
    let _g2 = guest_via(&s, "g2", "203.0.113.2").await.expect("second");
    assert_eq!(guest_via(&s, "g3", "203.0.113.3").await.err(), Some(429));
    let addrs = connect_addrs(&s, "guest-").await;
    assert_eq!(addrs, vec![json!("127.0.0.1"), json!("127.0.0.1")]);
    // Signed-in users are not guests: not counted.
    let _u = s.user("alice").await;
}

#[tokio::test]
async fn a_bad_trusted_proxy_list_stops_the_server() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env("SWITCHBOARD_TRUSTED_PROXIES", "127.0.0.1,10.0.0.0/40")
        .env("SWITCHBOARD_DB", "off")
        .env("PORT", "0")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SWITCHBOARD_TRUSTED_PROXIES"), "{err}");
}
