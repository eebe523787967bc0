//! The command line and start-up settings: help and version, the secret
//! file, dev mode's default address, warnings about unknown variables.

use crate::common::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The binary with no `SWITCHBOARD_*` setting from the test's environment.
fn bare() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SWITCHBOARD_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "warn");
    c
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = bare();
    c.args(args).envs(env.iter().copied());
    c.output().expect("run switchboard")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_and_version_exit_0() {
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let out = run(args, &[]);
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
        let o = text(&out.stdout);
        assert!(o.contains("switchboard token --sub ID"), "{args:?}: {o}");
    }
    // Needs no secret: it only explains how to use one.
    for args in [
        &["token", "--help"][..],
        &["token", "-h"],
        &["token", "--sub", "a", "--help"],
    ] {
        let out = run(args, &[]);
        assert!(
            out.status.success(),
            "{args:?}: {:?} {}",
            out.status,
            text(&out.stderr)
        );
        let o = text(&out.stdout);
        assert!(
            o.contains("--rooms") && o.contains("--ttl"),
            "{args:?}: {o}"
        );
    }
    for args in [&["--version"][..], &["-V"]] {
        let out = run(args, &[]);
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
        assert_eq!(
            text(&out.stdout).trim(),
            format!("switchboard {}", env!("CARGO_PKG_VERSION"))
        );
    }
    // Help works whatever the environment holds.
    let out = run(&["--help"], &[("SWITCHBOARD_WORKERS", "many")]);
    assert!(out.status.success());
    // Mistakes still exit 2.
    let out = run(&["frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["token", "--sub"], &[("SWITCHBOARD_JWT_SECRET", "s")]);
    assert_eq!(out.status.code(), Some(2));
}

/// A token minted with the secret from a file (trailing newline and all)
/// is accepted by a server that has the same secret inline.
#[tokio::test]
async fn token_reads_the_secret_file() {
    let path = std::env::temp_dir().join(format!("switchboard-it-secret-{}", std::process::id()));
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    let p = path.display().to_string();
    let out = run(
        &["token", "--sub", "alice"],
        &[("SWITCHBOARD_JWT_SECRET_FILE", &p)],
    );
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let minted = text(&out.stdout).trim().to_string();
    let s = Server::start();
    let mut c = s.ws(&format!("/ws?token={minted}")).await;
    let hello = c.greeted().await;
    assert_eq!(hello["user"], "alice", "{hello}");
}

#[test]
fn a_missing_or_empty_secret_file_is_a_configuration_error() {
    let empty = std::env::temp_dir().join(format!("switchboard-it-empty-{}", std::process::id()));
    std::fs::write(&empty, "\n").unwrap();
    let e = empty.display().to_string();
    for (env, why) in [
        (
            vec![(
                "SWITCHBOARD_JWT_SECRET_FILE",
                "/nonexistent/switchboard-secret",
            )],
            "No such file",
        ),
        (
            vec![("SWITCHBOARD_JWT_SECRET_FILE", e.as_str())],
            "is empty",
        ),
        (
            vec![
                ("SWITCHBOARD_JWT_SECRET_FILE", e.as_str()),
                ("SWITCHBOARD_JWT_SECRET", "s"),
            ],
            "not both",
        ),
    ] {
        let mut env = env;
        env.extend([("PORT", "0"), ("SWITCHBOARD_DB", "off")]);
        let child = bare()
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (status, err) = refused_start(child, Duration::from_secs(20));
        assert_eq!(status.code(), Some(2), "{env:?}: {err}");
        assert!(
            err.contains("SWITCHBOARD_JWT_SECRET_FILE") && err.contains(why),
            "{env:?}: {err}"
        );
    }
    let _ = std::fs::remove_file(&empty);
}

#[tokio::test]
async fn the_server_uses_the_secret_file() {
    let path =
        std::env::temp_dir().join(format!("switchboard-it-srvsecret-{}", std::process::id()));
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    let p = path.display().to_string();
    let s = Server::with_env(&[
        ("SWITCHBOARD_JWT_SECRET", ""),
        ("SWITCHBOARD_JWT_SECRET_FILE", &p),
    ]);
    let _ = std::fs::remove_file(&path);
    let mut c = s
        .ws(&format!("/ws?token={}", token("alice", json!({}))))
        .await;
    let hello = c.greeted().await;
    assert_eq!(hello["user"], "alice", "{hello}");
    // A secret is set: no dev mode, so no dev tokens.
    let (status, _) = s.http("GET", "/api/dev/token?sub=x", None, None).await;
    assert_eq!(status, 404);
}

/// Starts the binary with `env` (and no other `SWITCHBOARD_*`), returns the
/// address it listens on and what it logged up to then; stops it.
fn started(env: &[(&str, &str)]) -> (String, String) {
    let mut child = bare()
        .env("PORT", "0")
        .env("SWITCHBOARD_DB", "off")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("switchboard listening on http://") {
                let _ = tx.send(a.to_string());
            }
        }
    });
    let (etx, erx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = etx.send(line);
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    let log: Vec<String> = erx.iter().collect();
    (
        addr.expect("server did not print its address"),
        log.join("\n"),
    )
}

#[test]
fn dev_mode_listens_on_loopback_unless_told_otherwise() {
    // No secret: dev mode, this machine only, and said loudly.
    let (addr, log) = started(&[]);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert!(log.contains("DEVELOPMENT MODE"), "{log}");
    // Asked for explicitly.
    let (addr, _) = started(&[("SWITCHBOARD_HOST", "0.0.0.0")]);
    assert!(addr.starts_with("0.0.0.0:"), "{addr}");
    // A deployment (the Procfile sets the secret): every interface, no warning.
    let (addr, log) = started(&[("SWITCHBOARD_JWT_SECRET", "s")]);
    assert!(addr.starts_with("0.0.0.0:"), "{addr}");
    assert!(!log.contains("DEVELOPMENT MODE"), "{log}");
}

#[test]
fn unknown_settings_are_warned_about() {
    let (_, log) = started(&[
        ("SWITCHBOARD_JWT_SECRT", "typo"),
        ("SWITCHBOARD_WORKERS", "1"),
    ]);
    assert!(
        log.contains("SWITCHBOARD_JWT_SECRT is set but is not a Switchboard setting"),
        "{log}"
    );
    assert!(!log.contains("SWITCHBOARD_WORKERS is set"), "{log}");
}

/// A Redis listed twice in `SWITCHBOARD_REDIS_URL` is refused at start
/// (exit 2), before anything connects.
#[test]
fn a_redis_listed_twice_is_refused() {
    for url in [
        "redis://127.0.0.1:1,redis://127.0.0.1:1",
        " redis://127.0.0.1:1 , redis://127.0.0.1:2, redis://127.0.0.1:1",
    ] {
        let child = bare()
            .envs([
                ("PORT", "0"),
                ("SWITCHBOARD_DB", "off"),
                ("SWITCHBOARD_REDIS_URL", url),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (status, err) = refused_start(child, Duration::from_secs(20));
        assert_eq!(status.code(), Some(2), "{url}: {err}");
        assert!(
            err.contains("lists redis://127.0.0.1:1 twice"),
            "{url}: {err}"
        );
    }
}
