//! `/metrics`: what clients did, sessions by transport, the process's own
//! figures.

use crate::common::*;
use crate::http::{get_raw, header};
use serde_json::json;
use std::time::Duration;

/// The samples of a Prometheus text body, in order: (name with labels, value).
pub fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let v: f64 = v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in line {l:?}"));
            (k.to_string(), v)
        })
        .collect()
}

pub fn sample(s: &[(String, f64)], name: &str) -> f64 {
    s.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("metric {name} not found"))
}

/// Fetches `/metrics` until `ok` holds (at most ~3 s); returns the last samples.
pub async fn metrics_until(
    s: &Server,
    ok: impl Fn(&[(String, f64)]) -> bool,
) -> Vec<(String, f64)> {
    let mut last = Vec::new();
    for _ in 0..60 {
        let (status, body) = s.http("GET", "/metrics", None, None).await;
        assert_eq!(status, 200, "{body}");
        last = samples(&body);
        if ok(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

#[tokio::test]
async fn metrics_count_what_clients_did() {
    let s = Server::start();
    let (status, headers, body) = get_raw(&s, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type").is_some_and(|c| c.starts_with("text/plain")),
        "{headers:?}"
    );
    assert!(
        body.contains("# TYPE switchboard_connections gauge"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE switchboard_delivery_latency_seconds histogram"),
        "{body}"
    );
    let base = samples(&body);
    assert_eq!(sample(&base, "switchboard_connections"), 0.0);
    assert_eq!(sample(&base, "switchboard_messages_published_total"), 0.0);
    assert_eq!(
        sample(&base, "switchboard_errors_total{code=\"bad_json\"}"),
        0.0
    );
    assert_eq!(
        sample(&base, "switchboard_errors_total{code=\"forbidden\"}"),
        0.0
    );
    assert_eq!(
        sample(&base, "switchboard_delivery_latency_seconds_count"),
        0.0
    );

    const M: usize = 3;
    const N: usize = 12;
    let mut clients = Vec::new();
    for u in ["m1", "m2", "m3"] {
        let mut c = s.user(u).await;
        c.join("general").await;
        clients.push(c);
    }
    assert_eq!(s.metric("switchboard_connections").await, M as f64);
    let deliveries0 = s.metric("switchboard_deliveries_total").await;

    for i in 0..N {
        clients[0]
            .send(json!({"type": "message:send", "room": "general", "data": {"n": i}, "id": format!("c{i}")}))
            .await;
    }
    for c in clients.iter_mut() {
        for i in 0..N {
            let m = c.recv_type("message:receive").await;
            assert_eq!(m["data"]["n"], i, "{m}");
        }
    }

    // One bad JSON frame, one forbidden join (someone else's personal room).
    clients[1].send_text("{not json").await;
    let e = clients[1].recv_type("error").await;
    assert_eq!(e["code"], "bad_json", "{e}");
    clients[2]
        .send(json!({"type": "room:join", "room": "user:m1", "id": "j"}))
        .await;
    let e = clients[2].recv_type("error").await;
    assert_eq!(e["code"], "forbidden", "{e}");

    let m = metrics_until(&s, |m| {
        sample(m, "switchboard_delivery_latency_seconds_count") >= N as f64
            && sample(m, "switchboard_deliveries_total") - deliveries0 >= (N * M) as f64
    })
    .await;
    assert_eq!(sample(&m, "switchboard_connections"), M as f64);
    assert_eq!(
        sample(&m, "switchboard_messages_published_total"),
        N as f64,
        "exactly the N room messages were published"
    );
    let delivered = sample(&m, "switchboard_deliveries_total") - deliveries0;
    assert!(
        delivered >= (N * M) as f64,
        "deliveries grew by {delivered}, expected >= {}",
        N * M
    );
    assert!(sample(&m, "switchboard_errors_total{code=\"bad_json\"}") >= 1.0);
    assert!(sample(&m, "switchboard_errors_total{code=\"forbidden\"}") >= 1.0);
    assert!(sample(&m, "switchboard_rooms") >= 1.0);

    // The latency histogram: cumulative buckets ending in +Inf == count.
    let count = sample(&m, "switchboard_delivery_latency_seconds_count");
    assert!(count >= N as f64, "histogram count {count} < {N}");
    let buckets: Vec<(f64, f64)> = m
        .iter()
        .filter_map(|(k, v)| {
            let le = k
                .strip_prefix("switchboard_delivery_latency_seconds_bucket{le=\"")?
                .strip_suffix("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            Some((le, *v))
        })
        .collect();
    assert!(buckets.len() >= 2, "{buckets:?}");
    for w in buckets.windows(2) {
        assert!(w[0].0 < w[1].0, "bucket bounds not increasing: {buckets:?}");
        assert!(w[0].1 <= w[1].1, "buckets not cumulative: {buckets:?}");
    }
    let last = buckets.last().unwrap();
    assert!(
        last.0.is_infinite(),
        "last bucket must be +Inf: {buckets:?}"
    );
    assert_eq!(last.1, count, "+Inf bucket must equal the count");
    let sum = sample(&m, "switchboard_delivery_latency_seconds_sum");
    assert!(sum >= 0.0 && sum < count * 10.0, "sum {sum}");

    // A bad token is an auth failure (and an HTTP 401 before the upgrade).
    let fails0 = s.metric("switchboard_auth_failures_total").await;
    let r = Client::connect(&s.url("/ws?token=not.a.token")).await;
    match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 401)
        }
        Err(e) => panic!("expected HTTP 401, got {e}"),
        Ok(_) => panic!("a bad token was accepted"),
    }
    let m = metrics_until(&s, |m| {
        sample(m, "switchboard_auth_failures_total") >= fails0 + 1.0
    })
    .await;
    assert_eq!(sample(&m, "switchboard_auth_failures_total"), fails0 + 1.0);
    assert_eq!(
        sample(&m, "switchboard_connections"),
        M as f64,
        "rejected upgrade is no connection"
    );

    // Closing clients brings the gauge back down.
    let mut it = clients.into_iter();
    let keep = it.next().unwrap();
    for c in it {
        c.close().await;
    }
    let m = metrics_until(&s, |m| sample(m, "switchboard_connections") == 1.0).await;
    assert_eq!(sample(&m, "switchboard_connections"), 1.0);
    drop(keep);
    let m = metrics_until(&s, |m| sample(m, "switchboard_connections") == 0.0).await;
    assert_eq!(
        sample(&m, "switchboard_connections"),
        0.0,
        "a dropped TCP connection must be uncounted too"
    );
    assert!(sample(&m, "switchboard_connections_total") >= M as f64);
}

/// `/metrics` counts sessions by transport while they live, and reports the
/// process's own figures and the build (docs/PROTOCOL.md, HTTP endpoints).
#[tokio::test]
async fn sessions_are_counted_by_transport_with_process_figures() {
    use crate::fallback::{Poller, Sse};
    let s = Server::start();
    let ws = s.user("metered").await;
    let _sse = Sse::connect(&s, "/sse?name=sse-guest").await;
    let _poll = Poller::open(&s, "name=poll-guest").await;
    let by = |t: &str| format!("switchboard_sessions{{transport=\"{t}\"}}");
    let m = metrics_until(&s, |m| {
        ["websocket", "sse", "polling"]
            .iter()
            .all(|t| sample(m, &by(t)) == 1.0)
    })
    .await;
    for t in ["websocket", "sse", "polling"] {
        assert_eq!(sample(&m, &by(t)), 1.0, "{t}");
        let total = format!("switchboard_sessions_total{{transport=\"{t}\"}}");
        assert_eq!(sample(&m, &total), 1.0, "{t}");
    }
    let version = env!("CARGO_PKG_VERSION");
    let build = format!("switchboard_build_info{{version=\"{version}\"}}");
    assert_eq!(sample(&m, &build), 1.0);
    assert!(sample(&m, "process_resident_memory_bytes") > 1e6);
    assert!(
        sample(&m, "process_virtual_memory_bytes") >= sample(&m, "process_resident_memory_bytes")
    );
    let fds = sample(&m, "process_open_fds");
    assert!(
        fds >= 6.0,
        "listener, three client sockets, database: {fds}"
    );
    assert!(sample(&m, "process_max_fds") >= fds);
    assert!(sample(&m, "process_cpu_seconds_total") >= 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = sample(&m, "process_start_time_seconds");
    assert!(
        started <= now + 2.0 && started > now - 300.0,
        "start {started}, now {now}"
    );

    ws.close().await;
    let m = metrics_until(&s, |m| sample(m, &by("websocket")) == 0.0).await;
    assert_eq!(
        sample(&m, &by("websocket")),
        0.0,
        "a closed session is uncounted"
    );
    assert_eq!(sample(&m, &by("sse")), 1.0);
}
