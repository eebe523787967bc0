//! Authentication and access: tokens in the query, the `Authorization` header
//! and `auth` frames; 401 before the upgrade, 1008 after it; guests; the
//! `rooms` claim and roles; expiry during a session; the dev token route.

mod idp;

use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Error as WsError;

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 token with exactly these claims, signed with `secret`.
fn signed(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// A token for `sub` expiring at `exp` (seconds since the epoch).
fn token_exp(sub: &str, exp: u64) -> String {
    signed(
        json!({"sub": sub, "name": format!("{sub} name"), "exp": exp}),
        SECRET,
    )
}

/// Connects expecting the upgrade to be refused; returns (status, JSON body).
async fn refused(url: &str) -> (u16, Value) {
    refused_req(url.into_client_request().unwrap()).await
}

async fn refused_req(
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> (u16, Value) {
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => panic!("the upgrade was accepted"),
        Err(WsError::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            let text = String::from_utf8_lossy(&body).to_string();
            let v = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("body is not JSON ({e}): {text:?}"));
            (resp.status().as_u16(), v)
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// Sends an app-level ping and waits for its pong: the connection is usable.
async fn assert_alive(c: &mut Client, tag: &str) {
    c.send(json!({"type": "ping", "id": tag})).await;
    let p = c.recv_type("pong").await;
    assert_eq!(p["id"], tag, "{p}");
}

#[tokio::test]
async fn token_in_query_connects_as_that_user() {
    let s = Server::start();
    let t = token("alice", json!({"name": "Alice A."}));
    let mut c = s.ws(&format!("/ws?token={t}")).await;
    let hello = c.greeted().await;
    assert_eq!(hello["guest"], false, "{hello}");
    assert_eq!(hello["user"], "alice");
    assert_eq!(hello["name"], "Alice A.");
    assert_eq!(hello["role"], "user");
    assert!(hello["session"].as_str().is_some_and(|x| !x.is_empty()));
    assert!(
        hello["exp"].as_u64().is_some_and(|e| e > now_s()),
        "{hello}"
    );
    assert_alive(&mut c, "q").await;
}

#[tokio::test]
async fn bearer_header_on_the_upgrade_connects_with_role() {
    let s = Server::start();
    let t = token("ops", json!({"role": "admin"}));
    let mut req = s.url("/ws").into_client_request().unwrap();
    req.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
    );
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade with a bearer header");
    let mut c = Client::from_stream(ws);
    let hello = c.greeted().await;
    assert_eq!(
        (
            hello["guest"].as_bool(),
            hello["user"].as_str(),
            hello["role"].as_str()
        ),
        (Some(false), Some("ops"), Some("admin")),
        "{hello}"
    );

    // A bad token in the header is refused like one in the query.
    let mut req = s.url("/ws").into_client_request().unwrap();
    req.headers_mut().insert(
        "Authorization",
        HeaderValue::from_static("Bearer not-a-token"),
    );
    let (status, body) = refused_req(req).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
}

#[tokio::test]
async fn bad_tokens_get_401_with_a_json_body_before_the_upgrade() {
    let s = Server::start();
    let exp = now_s() + 3600;
    let wrong_secret = signed(json!({"sub": "mallory", "exp": exp}), "some-other-secret");
    let expired = token_exp("alice", now_s() - 30);
    let no_sub = signed(json!({"exp": exp}), SECRET);
    let bad_sub = signed(json!({"sub": "has space", "exp": exp}), SECRET);
    for (what, t) in [
        ("wrong secret", wrong_secret.as_str()),
        ("expired", expired.as_str()),
        ("garbage", "garbage"),
        ("three garbage parts", "aaa.bbb.ccc"),
        ("no sub", no_sub.as_str()),
        ("invalid sub", bad_sub.as_str()),
    ] {
        let (status, body) = refused(&s.url(&format!("/ws?token={t}"))).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
    }
    // The server is unharmed: a good token still connects.
    let mut ok = s.user("alice").await;
    assert_alive(&mut ok, "after").await;
    assert!(s.metric("switchboard_auth_failures_total").await >= 5.0);
}

// BUG (server): a correctly signed, unexpired token whose `sub` is not a valid
// user id is refused with 401 (right), but is not counted in
// `switchboard_auth_failures_total` ("Rejected tokens and auth frames"): the
// counter is only bumped when `jsonwebtoken::decode` fails (src/auth.rs,
// `Auth::verify`), not on the `UserId::parse` failure after it.
#[tokio::test]
async fn every_refused_token_counts_as_an_auth_failure() {
    let s = Server::start();
    let before = s.metric("switchboard_auth_failures_total").await;
    let bad_sub = signed(json!({"sub": "has space", "exp": now_s() + 3600}), SECRET);
    let (status, body) = refused(&s.url(&format!("/ws?token={bad_sub}"))).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    let after = s.metric("switchboard_auth_failures_total").await;
    assert_eq!(
        after,
        before + 1.0,
        "a token refused for its `sub` is not counted as an auth failure"
    );
}

/// Guests' ids (`guest-…`) are the hub's to give: a token may not claim one,
/// not even a live guest's, on any route or in an `auth` frame.
#[tokio::test]
async fn a_token_may_not_claim_a_guest_id() {
    let s = Server::with_env(&[("SWITCHBOARD_DEV", "true")]);
    let mut gina = s.ws("/ws?name=gina").await;
    let hello = gina.greeted().await;
    let live = hello["user"].as_str().expect("guest id").to_string();
    for sub in [live.as_str(), "guest-0123456789abcdef", "GUEST-x"] {
        let t = token(sub, json!({"role": "admin"}));
        let (status, body) = refused(&s.url(&format!("/ws?token={t}"))).await;
        assert_eq!(status, 401, "{sub}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("guest-")),
            "{sub}: {body}"
        );
        let (status, body) = s.http("GET", "/api/rooms", Some(&t), None).await;
        assert_eq!(status, 401, "{sub}: {body}");
        let mut c = s.ws("/ws").await;
        c.send(json!({"type": "auth", "token": t})).await;
        assert_eq!(
            c.close_code(Duration::from_secs(5)).await,
            Some(1008),
            "{sub}"
        );
    }
    let (status, v) = s.get_json("/api/dev/token?sub=guest-1", None).await;
    assert_eq!(status, 400, "{v}");
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["token", "--sub", "guest-1"])
        .env("SWITCHBOARD_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&cli.stderr).contains("guest-"));
    // The guest itself is untouched, and ids that merely contain the word pass.
    assert_alive(&mut gina, "the guest").await;
    let mut ok = s.user("guesthouse-guest-1").await;
    assert_alive(&mut ok, "guesthouse").await;
}

#[tokio::test]
async fn auth_frame_authenticates_a_connection_without_credentials() {
    let s = Server::start();
    let mut c = s.ws("/ws").await;
    // Nothing is said until the client speaks (or the grace period ends).
    assert!(c.try_recv(Duration::from_millis(200)).await.is_none());
    let t = token("carol", json!({"role": "service"}));
    c.send(json!({"type": "auth", "token": t})).await;
    let hello = c.greeted().await;
    assert_eq!(hello["guest"], false, "{hello}");
    assert_eq!(hello["user"], "carol");
    assert_eq!(hello["role"], "service");
    c.join("team-z").await;
    assert_alive(&mut c, "a").await;
}

#[tokio::test]
async fn bad_auth_frame_closes_with_1008() {
    let s = Server::start();
    let expired = token_exp("alice", now_s() - 30);
    let wrong = signed(
        json!({"sub": "alice", "exp": now_s() + 3600}),
        "some-other-secret",
    );
    for (what, t) in [
        ("garbage", "garbage"),
        ("expired", expired.as_str()),
        ("wrong secret", wrong.as_str()),
    ] {
        let mut c = s.ws("/ws").await;
        c.send(json!({"type": "auth", "token": t})).await;
        let (code, reason) = c
            .close_frame(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("{what}: no close frame"));
        assert_eq!(code, 1008, "{what}: {reason}");
        assert!(!reason.is_empty(), "{what}: a close reason is expected");
    }
}

#[tokio::test]
async fn without_guests_no_auth_frame_within_grace_closes_1008() {
    let s = Server::with_env(&[
        ("SWITCHBOARD_GUESTS", "false"),
        ("SWITCHBOARD_AUTH_GRACE_MS", "600"),
    ]);
    let started = Instant::now();
    let mut c = s.ws("/ws").await;
    let (code, reason) = c
        .close_frame(Duration::from_secs(5))
        .await
        .expect("a close frame");
    let took = started.elapsed();
    assert_eq!(code, 1008, "{reason}");
    assert!(!reason.is_empty());
    assert!(
        took >= Duration::from_millis(500),
        "closed before the grace period ended: {took:?}"
    );

    // An auth frame within the grace period is accepted.
    let mut c = s.ws("/ws").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.send(json!({"type": "auth", "token": token("dave", json!({}))}))
        .await;
    assert_eq!(c.greeted().await["user"], "dave");
    // ...and the grace timer does not close it later.
    assert!(c.try_recv(Duration::from_millis(800)).await.is_none());
    assert_alive(&mut c, "g").await;
}

#[tokio::test]
async fn with_guests_an_idle_connection_becomes_a_guest_after_grace() {
    let s = Server::with_env(&[("SWITCHBOARD_AUTH_GRACE_MS", "300")]);
    let mut c = s.ws("/ws").await;
    let hello = c.greeted().await;
    assert_eq!(hello["guest"], true, "{hello}");
    assert!(hello["user"].as_str().unwrap().starts_with("guest-"));
    assert_alive(&mut c, "g").await;
}

#[tokio::test]
async fn without_guests_a_non_auth_first_frame_closes_1008() {
    let s = Server::with_env(&[("SWITCHBOARD_GUESTS", "false")]);
    for first in [
        json!({"type": "ping"}),
        json!({"type": "room:join", "room": "general"}),
    ] {
        let mut c = s.ws("/ws").await;
        c.send(first.clone()).await;
        let (code, reason) = c
            .close_frame(Duration::from_secs(5))
            .await
            .expect("a close frame");
        assert_eq!(code, 1008, "{first}: {reason}");
    }
    // Invalid JSON as the first frame is not a way in either.
    let mut c = s.ws("/ws").await;
    c.send_text("{not json").await;
    assert_eq!(c.close_code(Duration::from_secs(5)).await, Some(1008));
}

#[tokio::test]
async fn without_guests_a_nickname_is_refused_with_401() {
    let s = Server::with_env(&[("SWITCHBOARD_GUESTS", "false")]);
    let (status, body) = refused(&s.url("/ws?name=x")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    // Tokens still work.
    let mut c = s.user("erin").await;
    assert_alive(&mut c, "t").await;
}

#[tokio::test]
async fn guests_get_an_id_a_nickname_and_public_rooms_only() {
    let s = Server::start();
    let mut g = s.ws("/ws?name=Zed").await;
    let hello = g.greeted().await;
    assert_eq!(hello["guest"], true, "{hello}");
    assert_eq!(hello["name"], "Zed");
    assert_eq!(hello["role"], "user");
    let id = hello["user"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("guest-") && id.len() > "guest-".len(),
        "{id}"
    );
    assert!(hello.get("exp").is_none(), "{hello}");

    // Another guest gets another id.
    let mut g2 = s.ws("/ws?name=Zed").await;
    assert_ne!(g2.greeted().await["user"], id.as_str());

    for room in ["general", "random", "lobby", "public-chat"] {
        let j = g.join(room).await;
        assert_eq!(j["members"][0]["name"], "Zed", "{j}");
    }
    for (i, room) in ["team-a", "publicity", "user:alice", "private"]
        .iter()
        .enumerate()
    {
        let rid = format!("f{i}");
        g.send(json!({"type": "room:join", "room": room, "id": rid}))
            .await;
        let e = g.recv_type("error").await;
        assert_eq!(
            (e["code"].as_str(), e["ref"].as_str()),
            (Some("forbidden"), Some(rid.as_str())),
            "{room}: {e}"
        );
    }
    // Still usable, and still a member of the public rooms it joined.
    assert_alive(&mut g, "after-forbidden").await;
    g.send(json!({"type": "message:send", "room": "general", "data": "hi", "id": "m1"}))
        .await;
    let m = g.recv_type("message:receive").await;
    assert_eq!(m["from"], json!({"user": id, "name": "Zed"}));
    assert_eq!(g.recv_type("ack").await["id"], "m1");

    // A guest cannot upgrade itself with an auth frame; it is told so and stays.
    g.send(json!({"type": "auth", "token": token("alice", json!({})), "id": "a1"}))
        .await;
    let e = g.recv_type("error").await;
    assert_eq!(e["code"], "bad_request", "{e}");
    assert_eq!(e["ref"], "a1");
    assert_alive(&mut g, "after-auth").await;
}

#[tokio::test]
async fn public_room_patterns_are_configurable() {
    let s = Server::with_env(&[("SWITCHBOARD_PUBLIC_ROOMS", "open-*")]);
    let mut g = s.guest("Yan").await;
    g.join("open-1").await;
    g.send(json!({"type": "room:join", "room": "general", "id": "j"}))
        .await;
    assert_eq!(g.recv_type("error").await["code"], "forbidden");
    assert_alive(&mut g, "p").await;
}

#[tokio::test]
async fn rooms_claim_limits_joins_and_admin_joins_anything() {
    let s = Server::start();
    let mut u = s.user_with("tess", json!({"rooms": ["team-*"]})).await;
    u.join("team-x").await;
    u.join("team-").await;
    for (i, room) in ["general", "teams", "user:bob"].iter().enumerate() {
        let rid = format!("r{i}");
        u.send(json!({"type": "room:join", "room": room, "id": rid}))
            .await;
        let e = u.recv_type("error").await;
        assert_eq!(
            (e["code"].as_str(), e["ref"].as_str()),
            (Some("forbidden"), Some(rid.as_str())),
            "{room}: {e}"
        );
    }
    assert_alive(&mut u, "after").await;
    // Without a `rooms` claim a user may join any ordinary room...
    let mut plain = s.user("uma").await;
    plain.join("general").await;
    plain.join("team-x").await;
    // ...but not someone else's personal room.
    plain
        .send(json!({"type": "room:join", "room": "user:tess", "id": "p"}))
        .await;
    assert_eq!(plain.recv_type("error").await["code"], "forbidden");

    let mut admin = s
        .user_with("root", json!({"role": "admin", "rooms": ["nothing-*"]}))
        .await;
    for room in ["general", "team-x", "secret", "user:tess"] {
        admin.join(room).await;
    }
    assert_alive(&mut admin, "admin").await;
}

#[tokio::test]
async fn token_expiry_during_a_session_closes_with_1008() {
    let s = Server::start();
    let exp = now_s() + 2;
    let mut c = s
        .ws(&format!("/ws?token={}", token_exp("alice", exp)))
        .await;
    let hello = c.greeted().await;
    assert_eq!(hello["exp"], exp);
    assert_alive(&mut c, "before").await;
    let started = Instant::now();
    let (code, reason) = c
        .close_frame(Duration::from_secs(6))
        .await
        .expect("a close frame");
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("expired"), "{reason}");
    // Not before exp (whole seconds): allow for the clock's sub-second part.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        now_ms + 100 >= exp * 1000,
        "closed {}ms before exp (waited {:?})",
        exp * 1000 - now_ms,
        started.elapsed()
    );
}

#[tokio::test]
async fn fresh_auth_frame_before_expiry_keeps_the_session() {
    let s = Server::start();
    let exp = now_s() + 2;
    let mut c = s
        .ws(&format!("/ws?token={}", token_exp("alice", exp)))
        .await;
    c.greeted().await;
    c.join("general").await;
    let later = now_s() + 3600;
    c.send(json!({"type": "auth", "token": token_exp("alice", later), "id": "re"}))
        .await;
    let ok = c.recv_type("auth:ok").await;
    assert_eq!(ok["user"], "alice", "{ok}");
    assert_eq!(ok["exp"], later, "{ok}");
    assert_eq!(ok["id"], "re", "{ok}");
    // Well past the old expiry: no close (try_recv panics if the connection closes).
    let until = Duration::from_millis(exp * 1000 + 1500).saturating_sub(Duration::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    ));
    c.expect_no("error", until).await;
    assert_alive(&mut c, "after-old-exp").await;
    // Rooms survive the re-auth.
    c.send(json!({"type": "message:send", "room": "general", "data": 1, "id": "m"}))
        .await;
    assert_eq!(c.recv_type("ack").await["id"], "m");
}

#[tokio::test]
async fn auth_frame_for_another_user_closes_with_1008() {
    let s = Server::start();
    let mut c = s.user("alice").await;
    c.send(json!({"type": "auth", "token": token("mallory", json!({}))}))
        .await;
    let (code, reason) = c
        .close_frame(Duration::from_secs(5))
        .await
        .expect("a close frame");
    assert_eq!(code, 1008, "{reason}");

    // A bad re-auth frame also closes.
    let mut c = s.user("alice").await;
    c.send(json!({"type": "auth", "token": "garbage"})).await;
    assert_eq!(c.close_code(Duration::from_secs(5)).await, Some(1008));
}

#[tokio::test]
async fn dev_token_route_mints_working_tokens_when_enabled() {
    let s = Server::with_env(&[("SWITCHBOARD_DEV", "true")]);
    let (status, v) = s
        .get_json("/api/dev/token?sub=zoe&role=admin&name=Zoe", None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["user"], "zoe");
    assert!(v["exp"].as_u64().is_some_and(|e| e > now_s()), "{v}");
    let t = v["token"].as_str().expect("token").to_string();
    let mut c = s.ws(&format!("/ws?token={t}")).await;
    let hello = c.greeted().await;
    assert_eq!(
        (
            hello["user"].as_str(),
            hello["role"].as_str(),
            hello["name"].as_str(),
            hello["guest"].as_bool()
        ),
        (Some("zoe"), Some("admin"), Some("Zoe"), Some(false)),
        "{hello}"
    );
    c.join("team-secret").await;

    let (status, v) = s.get_json("/api/dev/token?sub=bad%20sub", None).await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test]
async fn dev_token_route_is_404_by_default_with_a_secret() {
    let s = Server::start();
    let (status, v) = s.get_json("/api/dev/token?sub=zoe&role=admin", None).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    assert!(v.get("token").is_none());
}

#[tokio::test]
async fn without_a_secret_dev_tokens_work_and_foreign_tokens_do_not() {
    // An empty value counts as unset: a random secret and dev mode.
    let s = Server::with_env(&[("SWITCHBOARD_JWT_SECRET", "")]);
    let (status, v) = s.get_json("/api/dev/token?sub=kim", None).await;
    assert_eq!(status, 200, "{v}");
    let t = v["token"].as_str().unwrap().to_string();
    let mut c = s.ws(&format!("/ws?token={t}")).await;
    assert_eq!(c.greeted().await["user"], "kim");
    let (status, body) = refused(&s.url(&format!("/ws?token={}", token("kim", json!({}))))).await;
    assert_eq!(status, 401, "{body}");
}

/// RS256: with a public key configured, tokens signed by the matching private
/// key (a test-only key pair in tests/it/fixtures) are accepted, HS256 ones not.
#[tokio::test]
async fn rs256_tokens_verify_with_the_public_key() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/fixtures");
    let s = Server::with_env(&[(
        "SWITCHBOARD_JWT_PUBLIC_KEY_FILE",
        &format!("{dir}/rs256-test-public.pem"),
    )]);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let key = std::fs::read(format!("{dir}/rs256-test-private.pem")).unwrap();
    let rs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &json!({"sub": "rsa-user", "name": "Rsa", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_rsa_pem(&key).unwrap(),
    )
    .unwrap();
    let mut c = s.ws(&format!("/ws?token={rs}")).await;
    let hello = c.greeted().await;
    assert_eq!(
        (hello["user"].as_str(), hello["guest"].as_bool()),
        (Some("rsa-user"), Some(false))
    );

    let hs = token("rsa-user", json!({}));
    let (status, body) = s.http("GET", &format!("/ws?token={hs}"), None, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("unauthorized"), "{body}");
}

/// An `auth` frame that does not even parse (no token, stray field) fails
/// authentication: close 1008, never a guest, before or after authenticating.
#[tokio::test]
async fn a_malformed_auth_frame_closes_with_1008() {
    let s = Server::start();
    for bad in [
        json!({"type": "auth"}),
        json!({"type": "auth", "token": "x", "extra": 1}),
    ] {
        let mut c = s.ws("/ws").await;
        c.send(bad.clone()).await;
        let (code, reason) = c
            .close_frame(Duration::from_secs(5))
            .await
            .expect("close frame");
        assert_eq!(code, 1008, "{bad}: {reason}");
        assert!(reason.contains("auth"), "{reason}");
    }
    let mut u = s.user("alice").await;
    u.send(json!({"type": "auth", "token": 42})).await;
    assert_eq!(u.close_code(Duration::from_secs(5)).await, Some(1008));
}

/// `switchboard token` mints what the server accepts, with every claim its
/// flags name.
#[tokio::test]
async fn the_token_command_mints_tokens_with_all_claims() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "token", "--sub", "ops", "--name", "Ops", "--role", "service",
        ])
        .args(["--rooms", "a, team-*", "--ttl", "600"])
        .args(["--mqtt-sub", "sensors/#,a/+", "--mqtt-pub", "cmd/+"])
        .env("SWITCHBOARD_JWT_SECRET", SECRET)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let t = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.validate_exp = true;
    let c = jsonwebtoken::decode::<Value>(
        &t,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(
        (&c["sub"], &c["name"], &c["role"], &c["rooms"]),
        (
            &json!("ops"),
            &json!("Ops"),
            &json!("service"),
            &json!(["a", "team-*"])
        )
    );
    assert_eq!(
        (&c["mqtt_sub"], &c["mqtt_pub"]),
        (&json!(["sensors/#", "a/+"]), &json!(["cmd/+"]))
    );
    let exp = c["exp"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now + 590..=now + 610).contains(&exp), "{exp} vs {now}");

    let s = Server::start();
    let mut c = s.ws(&format!("/ws?token={t}")).await;
    let g = c.greeted().await;
    assert_eq!(
        (&g["user"], &g["guest"]),
        (&json!("ops"), &json!(false)),
        "{g}"
    );

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["token", "--sub", "x", "--role", "root"])
        .env("SWITCHBOARD_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
