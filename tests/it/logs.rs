//! The log as operators read it: `SWITCHBOARD_LOG_FORMAT=json` writes one
//! JSON object per line, with an access line per HTTP request (never the
//! query string) and a line per auth failure.

use crate::common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary with its stderr collected line by line.
struct Logged {
    child: Child,
    addr: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Logged {
    fn start(env: &[(&str, &str)]) -> Logged {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.env("PORT", "0")
            .env("SWITCHBOARD_HOST", "127.0.0.1")
            .env("SWITCHBOARD_JWT_SECRET", SECRET)
            .env("SWITCHBOARD_DB", "off")
            .env("SWITCHBOARD_WORKERS", "1")
            .env("RUST_LOG", "info")
            .env_remove("SB_TEST_REDIS_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn");
        let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l2.lock().unwrap().push(line);
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("switchboard listening on http://") {
                    let _ = tx.send(a.to_string());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(20)).expect("address");
        Logged { child, addr, lines }
    }

    /// Waits (bounded) until `done` holds for the lines so far; returns them.
    fn wait_for(&self, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let lines = self.lines.lock().unwrap().clone();
            if done(&lines) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} in the log: {lines:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn access_line<'a>(lines: &'a [Value], method: &str, path: &str) -> Option<&'a Value> {
    lines.iter().find(|l| {
        l["target"] == "switchboard::access" && l["method"] == method && l["path"] == path
    })
}

#[tokio::test]
async fn json_logs_have_an_access_line_per_request_and_auth_failures() {
    let s = Logged::start(&[("SWITCHBOARD_LOG_FORMAT", "json")]);
    let secretish = "tok-not-to-be-logged";
    let r = request_at_with(&s.addr, "/api/rooms?token=tok-not-to-be-logged").await;
    assert_eq!(r, 200);
    assert_eq!(request_at_with(&s.addr, "/nope").await, 404);
    // A refused token on the WebSocket: a 401 access line and an auth failure.
    let refused = Client::connect(&format!("ws://{}/ws?token={secretish}", s.addr)).await;
    assert!(refused.is_err());
    let mut g = Client::connect(&format!("ws://{}/ws?name=logged", s.addr))
        .await
        .expect("guest");
    g.greeted().await;
    g.send(json!({"type": "ping"})).await;
    let lines = s.wait_for("access lines", |ls| {
        ls.iter()
            .filter(|l| l.contains("switchboard::access"))
            .count()
            >= 4
            && ls.iter().any(|l| l.contains("auth failure"))
    });
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for (v, raw) in parsed.iter().zip(&lines) {
        assert!(v["ts"].as_str().is_some_and(|t| t.contains('T')), "{raw}");
        assert!(v["level"].is_string() && v["target"].is_string(), "{raw}");
        assert!(!raw.contains(secretish), "a token reached the log: {raw}");
    }
    let rooms = access_line(&parsed, "GET", "/api/rooms").expect("GET /api/rooms line");
    assert_eq!(rooms["status"], 200);
    assert_eq!(rooms["client"], "127.0.0.1");
    assert!(
        rooms["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{rooms}"
    );
    assert_eq!(
        access_line(&parsed, "GET", "/nope").expect("404 line")["status"],
        404
    );
    let ws: Vec<u64> = parsed
        .iter()
        .filter(|l| l["target"] == "switchboard::access" && l["path"] == "/ws")
        .map(|l| l["status"].as_u64().unwrap())
        .collect();
    assert!(ws.contains(&401) && ws.contains(&101), "{ws:?}");
    let failure = parsed
        .iter()
        .find(|l| {
            l["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("auth failure"))
        })
        .unwrap();
    assert!(
        failure["msg"].as_str().unwrap().contains("from 127.0.0.1"),
        "{failure}"
    );
}

#[tokio::test]
async fn text_logs_stay_the_default() {
    let s = Logged::start(&[]);
    assert_eq!(request_at_with(&s.addr, "/healthz?x=1").await, 200);
    let lines = s.wait_for("the access line", |ls| {
        ls.iter().any(|l| l.contains("GET /healthz 200"))
    });
    assert!(lines.iter().all(|l| !l.starts_with('{')), "{lines:#?}");
    assert!(lines.iter().all(|l| !l.contains("x=1")), "{lines:#?}");
}

#[test]
fn a_bad_log_format_stops_the_server() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env("SWITCHBOARD_LOG_FORMAT", "xml")
        .env("PORT", "0")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SWITCHBOARD_LOG_FORMAT"));
}

async fn request_at_with(addr: &str, path: &str) -> u16 {
    Server::request_at(addr, path).await.status
}
