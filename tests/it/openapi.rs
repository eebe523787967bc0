//! The OpenAPI document at /api/openapi.json against the running server:
//! every operation it lists, sent as the document describes it (its path
//! parameter, header and body examples, an admin token where it asks for
//! one), is answered with a status the document lists, and a success
//! carries every field of the document's example answer. (The unit test in
//! src/http/ops.rs checks the other way: every route is documented.)

use crate::common::*;
use serde_json::{json, Value};

/// The order operations run in on one path: create before read before delete.
const METHODS: [&str; 4] = ["put", "post", "get", "delete"];

fn fill_path(path: &str, params: &[Value]) -> String {
    let mut out = path.to_string();
    for p in params.iter().filter(|p| p["in"] == "path") {
        let name = p["name"].as_str().unwrap();
        let example = p["example"].as_str().expect("path parameter example");
        out = out.replace(&format!("{{{name}}}"), example);
    }
    // Query parameters with an example are sent with it.
    let query: Vec<String> = params
        .iter()
        .filter(|p| p["in"] == "query" && p["example"].is_string())
        .map(|p| {
            format!(
                "{}={}",
                p["name"].as_str().unwrap(),
                p["example"].as_str().unwrap()
            )
        })
        .collect();
    if !query.is_empty() {
        out = format!("{out}?{}", query.join("&"));
    }
    out
}

#[tokio::test]
async fn every_documented_operation_answers_as_documented() {
    let s = Server::start();
    let (st, doc) = s.get_json("/api/openapi.json", None).await;
    assert_eq!(st, 200);
    let on_disk: Value = serde_json::from_str(include_str!("../../src/http/openapi.json")).unwrap();
    assert_eq!(doc, on_disk, "the server serves src/http/openapi.json");
    let admin = token("ops-admin", json!({"role": "admin"}));
    let auth = format!("Bearer {admin}");
    let mut ran = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(op) = ops.get(method) else { continue };
            let id = op["operationId"].as_str().unwrap();
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let url = fill_path(path, &params);
            let mut headers: Vec<(String, String)> = params
                .iter()
                .filter(|p| p["in"] == "header")
                .map(|p| {
                    let v = p["example"].as_str().expect("header example");
                    (p["name"].as_str().unwrap().to_string(), v.to_string())
                })
                .collect();
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                headers.push(("Authorization".into(), auth.clone()));
            }
            let content = &op["requestBody"]["content"];
            let body = match (
                &content["application/json"]["example"],
                &content["text/plain"]["example"],
            ) {
                (Value::Null, Value::String(text)) => Some(text.clone()),
                (Value::Null, _) => None,
                (json, _) => Some(json.to_string()),
            };
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let r = s
                .request(&method.to_uppercase(), &url, &h, body.as_deref())
                .await;
            let listed = &op["responses"][r.status.to_string()];
            assert!(
                !listed.is_null(),
                "{id}: {method} {url} answered {} (not documented): {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
            // The test server has a secret, so the development route is off
            // (documented as 404); everything else succeeds.
            let want = if id == "devToken" { 404 } else { 200 };
            assert_eq!(r.status, want, "{id}: {}", String::from_utf8_lossy(&r.body));
            let example = &listed["content"]["application/json"]["example"];
            if let (200, Some(fields)) = (r.status, example.as_object()) {
                let got = r.json();
                for k in fields.keys() {
                    assert!(got.get(k).is_some(), "{id}: answer lacks `{k}`: {got}");
                }
            }
            ran += 1;
        }
    }
    let listed: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|ops| ops.as_object().unwrap().len())
        .sum();
    assert!(listed > 10);
    assert_eq!(ran, listed, "an operation with a method the test skips");
}
