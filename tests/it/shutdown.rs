//! SIGTERM ends the process within the grace period whatever is connected.
//! No tight timings (shared machines): a 5 s grace, and the exit must come
//! within 4 s, since nothing here should need the grace (before the fix an idle
//! keep-alive connection held the exit for the grace + 1 s).

use crate::common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const GRACE: &str = "5000";
const LIMIT: Duration = Duration::from_secs(4);

fn stop(mut s: Server) -> Duration {
    let started = Instant::now();
    let status = s
        .terminate()
        .expect("server did not exit within 10 s of SIGTERM");
    let took = started.elapsed();
    assert!(status.success(), "exit status {status:?}");
    took
}

#[test]
fn sigterm_with_nothing_connected() {
    let s = Server::with_env(&[("SWITCHBOARD_SHUTDOWN_GRACE_MS", GRACE)]);
    let took = stop(s);
    assert!(took < LIMIT, "shutdown took {took:?}");
}

/// An idle keep-alive HTTP/1.1 connection (nothing closes it from our side
/// before its keep-alive timeout) must not hold the exit back.
#[test]
fn sigterm_with_an_idle_keep_alive_connection() {
    let s = Server::with_env(&[("SWITCHBOARD_SHUTDOWN_GRACE_MS", GRACE)]);
    let mut tcp = std::net::TcpStream::connect(&s.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        tcp,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = tcp.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let took = stop(s);
    assert!(took < LIMIT, "shutdown took {took:?}");
    // The socket was dropped by the exit: EOF or reset, not a timeout.
    match tcp.read(&mut buf) {
        Ok(0) => {}
        Err(e)
            if e.kind() != std::io::ErrorKind::WouldBlock
                && e.kind() != std::io::ErrorKind::TimedOut => {}
        other => panic!("connection still open after exit: {other:?}"),
    }
}

#[tokio::test]
async fn sigterm_with_a_websocket_and_a_keep_alive_connection() {
    let s = Server::with_env(&[("SWITCHBOARD_SHUTDOWN_GRACE_MS", GRACE)]);
    let mut ws = s.user("alice").await;
    let mut tcp = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let term = tokio::task::spawn_blocking(move || stop(s));
    assert_eq!(ws.close_code(Duration::from_secs(5)).await, Some(1001));
    let took = term.await.expect("join");
    assert!(took < LIMIT, "shutdown took {took:?}");
}
