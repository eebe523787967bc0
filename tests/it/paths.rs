//! One canonical request path (src/http/path.rs): percent-encoded, doubled
//! slash and dot-segment spellings of a route reach the same route and the
//! same rules (CORS, access checks, the WebSocket endpoint) as the plain one.

use crate::common::*;
use serde_json::{json, Value};

const EVIL: (&str, &str) = ("Origin", "https://evil.example");

/// Spellings of `/api/<rest>` that all name the same route (`rest` starts
/// with a lower-case letter).
fn spellings(rest: &str) -> Vec<String> {
    let (first, tail) = rest.split_at(1);
    let last = rest.chars().last().unwrap();
    let head = &rest[..rest.len() - 1];
    vec![
        format!("/api/{rest}"),
        format!("/api/%{:02x}{tail}", first.as_bytes()[0]),
        format!("/api/{head}%{:02x}", last as u32),
        format!("/api/{head}%{:02X}", last as u32),
        format!("/%61pi/{rest}"),
        format!("/%41PI/../api/{rest}"),
        format!("//api/{rest}"),
        format!("/api//{rest}"),
        format!("/api/./{rest}"),
        format!("/api/x/../{rest}"),
        format!("/api/%2e/{rest}"),
        format!("/api/x/%2E%2e/{rest}"),
        format!("/../api/{rest}"),
        format!("/api/x/%%32e%%32e/{rest}"),
    ]
}

async fn preflight(s: &Server, path: &str, method: &str) -> HttpResponse {
    s.request(
        "OPTIONS",
        path,
        &[
            EVIL,
            ("Access-Control-Request-Method", method),
            ("Access-Control-Request-Headers", "authorization"),
        ],
        None,
    )
    .await
}

#[tokio::test]
async fn no_spelling_of_the_dev_token_route_is_open_to_other_origins() {
    let s = Server::with_env(&[("SWITCHBOARD_DEV", "true")]);
    let mut paths = spellings("dev/token");
    assert_eq!(paths[1], "/api/%64ev/token");
    assert_eq!(paths[3], "/api/dev/toke%6E");
    // Spellings the router does not take for the route: still no header.
    let not_the_route = [
        "/api/%44ev/token",
        "/api%2Fdev/token",
        "/api%2fdev%2ftoken",
        "/api/dev%2Ftoken",
    ];
    paths.extend(not_the_route.iter().map(|p| p.to_string()));
    for path in &paths {
        let q = format!("{path}?sub=root&role=admin");
        let r = s.request("GET", &q, &[EVIL], None).await;
        assert_eq!(r.header("access-control-allow-origin"), None, "GET {q}");
        if not_the_route.contains(&path.as_str()) {
            assert_eq!(r.status, 404, "GET {q}");
        } else {
            // Same-origin use goes on working under every spelling: it is
            // the route, and CORS saw that it was.
            assert_eq!(r.status, 200, "GET {q}");
            let body: Value = serde_json::from_slice(&r.body).expect("JSON");
            assert!(body["token"].is_string(), "{body}");
        }
        let pre = preflight(&s, &q, "GET").await;
        assert_eq!(
            pre.header("access-control-allow-origin"),
            None,
            "OPTIONS {q}"
        );
        assert_ne!(pre.status, 204, "OPTIONS {q}");
    }
}

#[tokio::test]
async fn no_spelling_of_the_event_ring_is_open_or_unchecked() {
    let s = Server::start();
    let admin = token("root", json!({ "role": "admin" }));
    let user = token("ann", json!({}));
    for path in spellings("events") {
        let auth = format!("Bearer {admin}");
        let r = s
            .request("GET", &path, &[EVIL, ("Authorization", &auth)], None)
            .await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), None, "{path}");
        let pre = preflight(&s, &path, "GET").await;
        assert_eq!(
            pre.header("access-control-allow-origin"),
            None,
            "OPTIONS {path}"
        );
        // The access check runs under every spelling.
        assert_eq!(s.http("GET", &path, None, None).await.0, 401, "{path}");
        assert_eq!(
            s.http("GET", &path, Some(&user), None).await.0,
            403,
            "{path}"
        );
    }
}

#[tokio::test]
async fn admin_routes_check_the_caller_under_every_spelling() {
    let s = Server::start();
    let user = token("ann", json!({}));
    let admin = token("root", json!({ "role": "admin" }));
    let body = r#"{"data":{"text":"hi"}}"#;
    for path in spellings("broadcast") {
        assert_eq!(
            s.http("POST", &path, None, Some(body)).await.0,
            401,
            "{path}"
        );
        assert_eq!(
            s.http("POST", &path, Some(&user), Some(body)).await.0,
            403,
            "{path}"
        );
        assert_eq!(
            s.http("POST", &path, Some(&admin), Some(body)).await.0,
            200,
            "{path}"
        );
    }
}

#[tokio::test]
async fn cors_still_covers_the_transports_and_the_rest_api() {
    let s = Server::start();
    let origin = ("Origin", "https://app.example");
    for path in [
        "/api/rooms/general/history",
        "/api/%72ooms/general/history",
        "//api/rooms/general/history",
        "/api/./rooms/general/history",
        "/api/rooms/user%3Aann/history",
    ] {
        let r = s.request("GET", path, &[origin], None).await;
        assert_ne!(r.status, 404, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
    }
    for (path, method) in [
        ("/sse", "GET"),
        ("/%73se", "GET"),
        ("/poll/send?key=x", "POST"),
        ("/poll//send?key=x", "POST"),
        ("/api/rooms/general/history", "GET"),
        ("/api/publish", "POST"),
    ] {
        let pre = s
            .request(
                "OPTIONS",
                path,
                &[origin, ("Access-Control-Request-Method", method)],
                None,
            )
            .await;
        assert_eq!(pre.status, 204, "{path}");
        assert_eq!(
            pre.header("access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
    }
    for path in [
        "/poll/open?name=far",
        "/%70oll/open?name=far",
        "/x/../poll/open?name=far",
    ] {
        let r = s.request("POST", path, &[origin], None).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
    }
}

/// A raw WebSocket handshake on `path`; returns the status line's code.
async fn handshake(s: &Server, path: &str) -> u16 {
    let (_, head) = crate::common::raw_upgrade(&s.addr, path).await;
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status")
}

#[tokio::test]
async fn the_websocket_endpoint_is_the_same_under_every_spelling() {
    let s = Server::start();
    for path in [
        "/ws", "//ws", "/%77s", "/%57s", "/./ws", "/x/../ws", "/%2e/ws", "/ws/",
    ] {
        let q = format!("{path}?name=ann");
        let upgraded = handshake(&s, &q).await;
        // Without the upgrade headers, the router's answer for /ws (400) or
        // for anything else (404): the same decision the upgrade made.
        let plain = s.http("GET", &q, None, None).await.0;
        match (path, upgraded) {
            ("/%57s" | "/ws/", _) => {
                assert_eq!(upgraded, 404, "{path}");
                assert_eq!(plain, 404, "{path}");
            }
            _ => {
                assert_eq!(upgraded, 101, "{path}");
                assert_eq!(plain, 400, "{path}");
            }
        }
    }
    // And a real client on a non-canonical spelling gets a session.
    let mut c = s.ws("//ws?name=bob").await;
    let hello = c.greeted().await;
    assert_eq!(hello["type"], "connected");
}
