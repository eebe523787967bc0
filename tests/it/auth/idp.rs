//! Tokens shaped like those of real identity providers (Auth0, Keycloak, …):
//! `aud` and `iss` with and without `SWITCHBOARD_JWT_AUDIENCE` /
//! `SWITCHBOARD_JWT_ISSUER`, `nbf`, the clock leeway, and `sub` values such as
//! `auth0|abc` or numbers, with their personal rooms and direct messages.

use super::{assert_alive, now_s, refused, signed};
use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// `claims` plus a `sub` of `alice` and an `exp` an hour out, unless given.
fn idp_token(claims: Value) -> String {
    let mut c = json!({"sub": "alice", "exp": now_s() + 3600});
    for (k, v) in claims.as_object().expect("an object") {
        c[k] = v.clone();
    }
    signed(c, SECRET)
}

/// Connects with `t`, expecting to be admitted; returns the `connected` frame.
async fn admitted(s: &Server, t: &str, what: &str) -> (Client, Value) {
    let mut c = Client::connect(&s.url(&format!("/ws?token={t}")))
        .await
        .unwrap_or_else(|e| panic!("{what}: refused: {e}"));
    let hello = c.greeted().await;
    assert_eq!(hello["guest"], false, "{what}: {hello}");
    (c, hello)
}

/// Connects with `t`, expecting 401 `unauthorized` whose message mentions `why`.
async fn refused_for(s: &Server, t: &str, why: &str, what: &str) {
    let (status, body) = refused(&s.url(&format!("/ws?token={t}"))).await;
    assert_eq!(status, 401, "{what}: {body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{what}: {body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(why),
        "{what}: {msg:?} does not mention {why:?}"
    );
}

#[tokio::test]
async fn aud_and_iss_are_accepted_when_no_audience_or_issuer_is_configured() {
    let s = Server::start();
    for (what, claims) in [
        ("aud string", json!({"aud": "https://api.example"})),
        (
            "aud array",
            json!({"aud": ["https://api.example", "account"]}),
        ),
        ("iss", json!({"iss": "https://idp.example/realms/x"})),
    ] {
        let (mut c, hello) = admitted(&s, &idp_token(claims), what).await;
        assert_eq!(hello["user"], "alice", "{what}: {hello}");
        assert_alive(&mut c, what).await;
    }
}

#[tokio::test]
async fn configured_audiences_and_issuers_are_enforced() {
    let s = Server::with_env(&[
        (
            "SWITCHBOARD_JWT_AUDIENCE",
            "switchboard, https://api.example",
        ),
        (
            "SWITCHBOARD_JWT_ISSUER",
            "https://a.example/,https://b.example/",
        ),
    ]);
    let iss = "https://b.example/";
    for (what, claims) in [
        ("aud string", json!({"aud": "switchboard", "iss": iss})),
        (
            "aud array naming one",
            json!({"aud": ["account", "https://api.example"], "iss": iss}),
        ),
        (
            "the other issuer",
            json!({"aud": "switchboard", "iss": "https://a.example/"}),
        ),
    ] {
        admitted(&s, &idp_token(claims), what).await;
    }
    for (what, claims, why) in [
        ("other aud", json!({"aud": "account", "iss": iss}), "aud"),
        (
            "aud array naming none",
            json!({"aud": ["account", "x"], "iss": iss}),
            "aud",
        ),
        ("no aud", json!({"iss": iss}), "aud"),
        (
            "other iss",
            json!({"aud": "switchboard", "iss": "https://c.example/"}),
            "iss",
        ),
        ("no iss", json!({"aud": "switchboard"}), "iss"),
    ] {
        refused_for(&s, &idp_token(claims), why, what).await;
    }
}

#[tokio::test]
async fn nbf_in_the_future_is_refused() {
    // The test servers run with no leeway.
    let s = Server::start();
    refused_for(
        &s,
        &idp_token(json!({"nbf": now_s() + 120})),
        "nbf",
        "future nbf",
    )
    .await;
    admitted(&s, &idp_token(json!({"nbf": now_s() - 5})), "past nbf").await;
}

#[tokio::test]
async fn the_leeway_applies_to_exp_and_nbf() {
    let s = Server::with_env(&[("SWITCHBOARD_JWT_LEEWAY_MS", "30000")]);
    let now = now_s();
    admitted(
        &s,
        &idp_token(json!({"nbf": now + 10})),
        "nbf within leeway",
    )
    .await;
    refused_for(
        &s,
        &idp_token(json!({"nbf": now + 120})),
        "nbf",
        "nbf past leeway",
    )
    .await;
    refused_for(
        &s,
        &idp_token(json!({"exp": now - 120})),
        "expired",
        "exp past leeway",
    )
    .await;
    // Expired 10 s ago, inside the leeway: admitted, and kept until exp + leeway.
    let (mut c, hello) = admitted(
        &s,
        &idp_token(json!({"exp": now - 10})),
        "exp within leeway",
    )
    .await;
    assert_eq!(hello["exp"], now - 10, "{hello}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_alive(&mut c, "inside the leeway").await;
}

#[tokio::test]
async fn the_session_closes_at_exp_plus_the_leeway() {
    let s = Server::with_env(&[("SWITCHBOARD_JWT_LEEWAY_MS", "2000")]);
    let exp = now_s() + 1;
    let (mut c, _) = admitted(&s, &idp_token(json!({"exp": exp})), "short token").await;
    let (code, reason) = c
        .close_frame(Duration::from_secs(8))
        .await
        .expect("a close frame");
    assert_eq!(code, 1008, "{reason}");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        now_ms + 100 >= (exp + 2) * 1000,
        "closed {}ms before exp + leeway",
        (exp + 2) * 1000 - now_ms
    );
}

#[tokio::test]
async fn provider_subs_are_user_ids_with_their_own_personal_rooms() {
    let s = Server::start();
    let (mut a, hello) = admitted(&s, &idp_token(json!({"sub": "auth0|abc"})), "auth0 sub").await;
    assert_eq!(hello["user"], "auth0|abc");
    assert_eq!(hello["name"], "auth0|abc");
    let (mut n, hello) = admitted(&s, &idp_token(json!({"sub": 12345})), "numeric sub").await;
    assert_eq!(hello["user"], "12345", "{hello}");
    let (mut m, hello) =
        admitted(&s, &idp_token(json!({"sub": "auth0"})), "prefix of another").await;
    assert_eq!(hello["user"], "auth0");

    // The personal room of `auth0|abc` is its own, not that of `auth0`.
    a.send(json!({"type": "room:join", "room": "user:auth0|abc", "id": "own"}))
        .await;
    let j = a.recv().await;
    assert!(
        j["type"] == "room:joined" || (j["type"] == "ack" && j["id"] == "own"),
        "{j}"
    );
    m.send(json!({"type": "room:join", "room": "user:auth0|abc", "id": "theirs"}))
        .await;
    let e = m.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("forbidden"), Some("theirs")),
        "{e}"
    );

    // Direct messages reach the id with its `|`, and name it as the sender.
    n.send(json!({"type": "direct:send", "to": "auth0|abc", "data": "hi", "id": "d"}))
        .await;
    let d = a.recv_type("direct:receive").await;
    assert_eq!(
        (d["from"]["user"].as_str(), &d["data"]),
        (Some("12345"), &json!("hi")),
        "{d}"
    );
    m.expect_no("direct:receive", Duration::from_millis(200))
        .await;
}

#[tokio::test]
async fn subs_that_cannot_be_user_ids_are_refused() {
    let s = Server::start();
    for (what, sub) in [
        ("guest prefix", json!("guest-0123456789abcdef")),
        ("guest prefix in capitals", json!("GUEST-x")),
        ("empty", json!("")),
        ("whitespace", json!("a b")),
        ("too long", json!("x".repeat(129))),
        ("fraction", json!(1.5)),
        ("object", json!({"id": 1})),
    ] {
        let (status, body) =
            refused(&s.url(&format!("/ws?token={}", idp_token(json!({"sub": sub}))))).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{what}: {body}"
        );
    }
    admitted(&s, &idp_token(json!({"sub": "x".repeat(128)})), "128 bytes").await;
}
