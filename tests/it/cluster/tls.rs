//! `rediss://`: nodes share rooms through a Redis that speaks only TLS,
//! verifying its certificate with `SWITCHBOARD_REDIS_CA_FILE`; a node that
//! cannot verify it does not start.

use super::redis::Redis;
use crate::common::refused_start;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_share_rooms_through_a_tls_redis_they_verify() {
    let (redis, ca) = Redis::tls();
    assert!(redis.url().starts_with("rediss://"));
    let ca = ca.display().to_string();
    let nodes = redis.nodes(2, &[("SWITCHBOARD_REDIS_CA_FILE", ca.as_str())]);
    let mut alice = nodes[0].user("alice").await;
    alice.join("tls").await;
    let mut bob = nodes[1].user("bob").await;
    bob.join("tls").await;
    alice
        .send(json!({"type": "message:send", "room": "tls", "data": "sealed", "id": "m"}))
        .await;
    assert_eq!(alice.recv_type("ack").await["seq"], 1);
    let got = bob.recv_type("message:receive").await;
    assert_eq!((&got["data"], &got["seq"]), (&json!("sealed"), &json!(1)));

    // Without the CA file the system's roots do not know the test CA: the
    // node refuses to start rather than trust the certificate.
    let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORT", "0")
        .env("SWITCHBOARD_DB", "off")
        .env("SWITCHBOARD_REDIS_URL", redis.url())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, err) = refused_start(child, Duration::from_secs(30));
    assert!(!status.success(), "{err}");
    assert!(err.contains("certificate"), "says why: {err}");
}
