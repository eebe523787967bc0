//! `switchboard-load`: drives a Switchboard server with many WebSocket clients
//! speaking the native protocol, and reports deliveries, loss, latency and the
//! server's CPU and memory. See docs/LOAD_TESTING.md.
//!
//! ```text
//! switchboard-load fanout --subscribers 1000 --publishers 1 --rate 1000 --duration 10 --pid PID
//! switchboard-load rooms  --rooms 100 --clients 2000 --rate 2000 --duration 10 --pid PID
//! switchboard-load idle   --conns 10000 --hold 10 --pid PID --sources 127.0.0.1,127.0.0.2
//! switchboard-load fanout --url ws://127.0.0.1:8081/ws,ws://127.0.0.1:8082/ws  # nodes of a cluster
//! switchboard-load fanout --url ws://127.0.0.1:8080/socket.io/  # as Socket.IO clients (socketio.rs)
//! ```
//! Latency is measured with one clock: the send time (µs since the run began)
//! travels in each message's payload and the receiving task subtracts it.

mod inflate;
mod opts;
mod socketio;
mod stats;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use opts::{parse_opts, Opts, Target, USAGE};
use stats::{proc_sample, raise_fd_limit, ProcSample, Samples};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<inflate::Conn>;

fn token(secret: &str, sub: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 86_400;
    let claims = serde_json::json!({ "sub": sub, "exp": exp, "role": "service" });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

/// Connections whose answer named an extension (permessage-deflate).
static NEGOTIATED: AtomicU64 = AtomicU64::new(0);

/// Opens a connection to `to` as user `sub`, joins `room`, and waits for `room:joined`.
async fn connect(
    o: &Opts,
    to: &Target,
    sub: &str,
    room: &str,
    source: Option<IpAddr>,
) -> Result<Ws, String> {
    let sock = if to.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| e.to_string())?;
    if let Some(src) = source {
        sock.bind(SocketAddr::new(src, 0))
            .map_err(|e| format!("bind {src}: {e}"))?;
    }
    let stream = sock
        .connect(to.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (token, sio) = (token(&o.secret, sub), socketio::is_socketio(&to.path));
    let url = if sio {
        socketio::url(&to.host, &to.path, &token)
    } else {
        format!("ws://{}{}?token={token}", to.host, to.path)
    };
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    if o.deflate {
        req.headers_mut().insert(
            "Sec-WebSocket-Extensions",
            inflate::OFFER.parse().expect("a valid header value"),
        );
    }
    let stream = inflate::Conn::new(stream, o.deflate);
    let (mut ws, answer) = tokio_tungstenite::client_async(req, stream)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    if answer.headers().contains_key("Sec-WebSocket-Extensions") {
        NEGOTIATED.fetch_add(1, Relaxed);
    }
    let mut join = format!(r#"{{"type":"room:join","room":"{room}"}}"#);
    if sio {
        socketio::open(&mut ws, &token).await?;
        join = socketio::event("room:join", &join);
    }
    ws.send(Message::Text(join))
        .await
        .map_err(|e| e.to_string())?;
    let want = format!(r#""type":"room:joined","room":"{room}""#);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err("no room:joined within 30 s".into()),
            Ok(Some(Ok(Message::Text(t)))) if t.contains(&want) => return Ok(ws),
            Ok(Some(Ok(Message::Close(c)))) => return Err(format!("closed: {c:?}")),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("connection ended".into()),
        }
    }
}

/// Opens `n` connections, `concurrency` at a time; client number `k = offset + i`
/// is user `{tag}-{k}`, in room `room_of(k)`, connected to URL `k mod count`.
/// `on_open` gets each connection as soon as it has joined.
async fn connect_all<T: Send + 'static>(
    o: &Opts,
    n: usize,
    tag: &str,
    room_of: impl Fn(usize) -> String,
    on_open: impl Fn(Ws) -> T + Clone + Send + 'static,
) -> (Vec<T>, Duration, Samples) {
    let sem = Arc::new(tokio::sync::Semaphore::new(o.concurrency));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let k = o.offset + i;
        let (o, sem, room) = (o.clone(), sem.clone(), room_of(k));
        let source = (!o.sources.is_empty()).then(|| o.sources[i % o.sources.len()]);
        let to = o.targets[k % o.targets.len()].clone();
        let sub = format!("{tag}-{k}");
        let on_open = on_open.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.ok();
            let t0 = Instant::now();
            connect(&o, &to, &sub, &room, source)
                .await
                .map(|ws| (on_open(ws), t0.elapsed()))
        }));
    }
    let mut conns = Vec::with_capacity(n);
    let mut times = Samples::default();
    let mut failures = 0;
    for t in tasks {
        match t.await {
            Ok(Ok((ws, d))) => {
                times.us.push(d.as_micros().min(u32::MAX as u128) as u32);
                conns.push(ws);
            }
            Ok(Err(e)) => {
                if failures < 5 {
                    eprintln!("connect failed: {e}");
                }
                failures += 1;
            }
            Err(e) => eprintln!("connect task: {e}"),
        }
    }
    if failures > 0 {
        eprintln!("{failures} of {n} connections failed");
    }
    (conns, start.elapsed(), times)
}

/// Counts `message:receive` frames and records their latency until `stop` is set.
async fn reader(
    mut rx: SplitStream<Ws>,
    origin: Instant,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Samples {
    let mut s = Samples::default();
    loop {
        let msg = match tokio::time::timeout(Duration::from_millis(200), rx.next()).await {
            Err(_) if stop.load(Relaxed) => break,
            Err(_) => continue,
            Ok(Some(Ok(m))) => m,
            Ok(_) => break,
        };
        if let Message::Text(t) = msg {
            if let Some(sent) = sent_at(socketio::frame_of(&t).unwrap_or(&t)) {
                let now = origin.elapsed().as_micros() as u64;
                s.us.push(now.saturating_sub(sent).min(u32::MAX as u64) as u32);
                received.fetch_add(1, Relaxed);
            }
        }
    }
    s
}

/// The send time carried in a `message:receive` payload: `"data":{"t":<µs>,…`.
fn sent_at(frame: &str) -> Option<u64> {
    if !frame.starts_with(r#"{"type":"message:receive""#) {
        return None;
    }
    let i = frame.find(r#""data":{"t":"#)? + r#""data":{"t":"#.len();
    let digits = &frame[i..];
    let end = digits.find(|c: char| !c.is_ascii_digit())?;
    digits[..end].parse().ok()
}

/// Sends `message:send` to `room` at `rate` per second until `until`; returns how many.
///
/// `phase` (0..1) delays the first send by that part of an interval, so many
/// slow publishers do not all fire on the same instant.
#[allow(clippy::too_many_arguments)]
async fn publisher(
    mut tx: SplitSink<Ws, Message>,
    room: String,
    rate: f64,
    phase: f64,
    until: Instant,
    origin: Instant,
    idx: usize,
    pad: String,
    sio: bool,
) -> u64 {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    tokio::time::sleep(interval.mul_f64(phase)).await;
    let start = Instant::now();
    let mut sent: u64 = 0;
    while Instant::now() < until {
        // Send everything due by now (keeps the rate above the timer's resolution).
        let due = (start.elapsed().as_secs_f64() / interval.as_secs_f64()) as u64 + 1;
        while sent < due {
            let t = origin.elapsed().as_micros() as u64;
            let mut frame = format!(
                r#"{{"type":"message:send","room":"{room}","data":{{"t":{t},"p":{idx},"pad":"{pad}"}}}}"#
            );
            if sio {
                frame = socketio::event("message:send", &frame);
            }
            if tx.feed(Message::Text(frame)).await.is_err() {
                return sent;
            }
            sent += 1;
        }
        if tx.flush().await.is_err() {
            return sent;
        }
        let next = start + interval.mul_f64(sent as f64);
        tokio::time::sleep_until(tokio::time::Instant::from_std(next.min(until))).await;
    }
    let _ = tx.flush().await;
    sent
}

struct Run {
    sent: u64,
    expected: u64,
    received: u64,
    window: Duration,
    latency: Samples,
}

/// Publishes from `pubs` (index, room) and reads on every connection; waits for
/// the expected deliveries (or 5 s without progress) after sending stops.
async fn traffic(
    o: &Opts,
    conns: Vec<Ws>,
    rooms_of: Vec<String>,
    pubs: Vec<usize>,
    rate_each: f64,
    members_of: impl Fn(&str) -> u64,
) -> Run {
    let origin = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let pad = "x".repeat(o.size);
    let is_pub: std::collections::HashSet<usize> = pubs.iter().copied().collect();
    // Every reader runs before the first message is sent, so start-up work
    // (spawning thousands of tasks) never shows up as latency.
    let mut readers = Vec::new();
    let mut halves = Vec::new();
    for (i, ws) in conns.into_iter().enumerate() {
        let (tx, rx) = ws.split();
        readers.push(tokio::spawn(reader(
            rx,
            origin,
            received.clone(),
            stop.clone(),
        )));
        halves.push((i, tx));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let until = Instant::now() + Duration::from_secs_f64(o.duration);
    let mut writers = Vec::new();
    let mut idle_writers = Vec::new();
    for (i, tx) in halves {
        if is_pub.contains(&i) {
            let room = rooms_of[i].clone();
            let weight = members_of(&room);
            let phase = writers.len() as f64 / pubs.len() as f64;
            writers.push((
                weight,
                tokio::spawn(publisher(
                    tx,
                    room,
                    rate_each,
                    phase,
                    until,
                    origin,
                    i,
                    pad.clone(),
                    socketio::is_socketio(&o.targets[(o.offset + i) % o.targets.len()].path),
                )),
            ));
        } else {
            // Keep the write half alive so the connection stays open.
            idle_writers.push(tx);
        }
    }
    let (mut sent, mut expected) = (0, 0);
    for (weight, w) in writers {
        let n = w.await.unwrap_or(0);
        sent += n;
        expected += n * weight;
    }
    let (mut last, mut last_change) = (received.load(Relaxed), Instant::now());
    while received.load(Relaxed) < expected && last_change.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = received.load(Relaxed);
        if now != last {
            (last, last_change) = (now, Instant::now());
        }
    }
    let window = origin
        .elapsed()
        .saturating_sub(if received.load(Relaxed) >= expected {
            Duration::ZERO
        } else {
            last_change.elapsed()
        });
    stop.store(true, Relaxed);
    drop(idle_writers);
    let mut latency = Samples::default();
    for r in readers {
        if let Ok(s) = r.await {
            latency.merge(s);
        }
    }
    Run {
        sent,
        expected,
        received: received.load(Relaxed),
        window,
        latency,
    }
}

/// One reading per `--pid`; None when none was given or one is gone.
fn sample_all(o: &Opts) -> Option<Vec<ProcSample>> {
    if o.pids.is_empty() {
        return None;
    }
    o.pids.iter().map(|&p| proc_sample(p)).collect()
}

/// The sum of several processes' readings.
fn total(s: Vec<ProcSample>) -> ProcSample {
    s.into_iter().fold(
        ProcSample {
            cpu: Duration::ZERO,
            rss_kib: 0,
        },
        |a, b| ProcSample {
            cpu: a.cpu + b.cpu,
            rss_kib: a.rss_kib + b.rss_kib,
        },
    )
}

/// Each server's CPU seconds between the readings and its RSS at the end.
fn server_delta(
    before: Option<Vec<ProcSample>>,
    after: Option<Vec<ProcSample>>,
) -> Option<Vec<(f64, u64)>> {
    let (before, after) = (before?, after?);
    Some(
        before
            .iter()
            .zip(&after)
            .map(|(b, a)| (a.cpu.saturating_sub(b.cpu).as_secs_f64(), a.rss_kib))
            .collect(),
    )
}

fn report_traffic(
    o: &Opts,
    conns: usize,
    connect: Duration,
    mut ctimes: Samples,
    mut run: Run,
    each: Option<Vec<(f64, u64)>>,
) {
    let server = each.as_ref().map(|e| {
        e.iter()
            .fold((0.0, 0), |(c, r), &(ec, er)| (c + ec, r + er))
    });
    let c = ctimes.percentiles();
    let l = run.latency.percentiles();
    let loss = run.expected.saturating_sub(run.received);
    let per_s = run.received as f64 / run.window.as_secs_f64().max(1e-9);
    println!(
        "mode {}: {} connections in {:.2} s ({:.0}/s), connect p50 {:.1} ms p99 {:.1} ms",
        o.mode,
        conns,
        connect.as_secs_f64(),
        conns as f64 / connect.as_secs_f64().max(1e-9),
        c[0],
        c[2]
    );
    println!(
        "sent {} messages at {:.0}/s for {:.1} s",
        run.sent,
        run.sent as f64 / o.duration.max(1e-9),
        o.duration
    );
    println!(
        "deliveries: expected {}, received {}, lost {} ({:.4}%), {:.0} deliveries/s",
        run.expected,
        run.received,
        loss,
        100.0 * loss as f64 / run.expected.max(1) as f64,
        per_s
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        l[0], l[1], l[2], l[3], l[4]
    );
    if let Some((cpu, rss)) = server {
        println!(
            "server: {:.2} CPU s ({:.0}% of a core), RSS {} KiB",
            cpu,
            100.0 * cpu / run.window.as_secs_f64().max(1e-9),
            rss
        );
    }
    let mut json = serde_json::json!({
        "mode": o.mode, "connections": conns, "connect_s": connect.as_secs_f64(),
        "connect_ms": {"p50": c[0], "p99": c[2]},
        "rate": o.rate, "duration_s": o.duration, "size": o.size, "sent": run.sent,
        "expected": run.expected, "received": run.received, "lost": loss, "deliveries_per_s": per_s,
        "latency_ms": {"p50": l[0], "p90": l[1], "p99": l[2], "p99_9": l[3], "max": l[4]},
        "server_cpu_s": server.map(|s| s.0), "server_rss_kib": server.map(|s| s.1),
        "deflate_negotiated": NEGOTIATED.load(Relaxed),
    });
    if let Some(e) = each.filter(|e| e.len() > 1) {
        json["server_each"] = e
            .iter()
            .zip(&o.pids)
            .map(|(&(cpu, rss), pid)| serde_json::json!({"pid": pid, "cpu_s": cpu, "rss_kib": rss}))
            .collect();
    }
    println!("{json}");
}

async fn fanout(o: Opts) {
    let room = "bench-fanout".to_string();
    let n = o.subscribers + o.publishers;
    let (conns, connect, ctimes) = connect_all(&o, n, "fan", |_| room.clone(), |ws| ws).await;
    let members = conns.len() as u64;
    let before = sample_all(&o);
    // The last `publishers` connections publish.
    let pubs: Vec<usize> = (conns.len().saturating_sub(o.publishers)..conns.len()).collect();
    let rooms_of = vec![room.clone(); conns.len()];
    let count = conns.len();
    let run = traffic(
        &o,
        conns,
        rooms_of,
        pubs,
        o.rate / o.publishers as f64,
        |_| members,
    )
    .await;
    let after = sample_all(&o);
    report_traffic(&o, count, connect, ctimes, run, server_delta(before, after));
}

async fn rooms(o: Opts) {
    let names: Vec<String> = (0..o.rooms).map(|k| format!("bench-room-{k}")).collect();
    let (conns, connect, ctimes) = connect_all(
        &o,
        o.clients,
        "room",
        |i| names[i % names.len()].clone(),
        |ws| ws,
    )
    .await;
    // Connections come back in order, so connection i is in room (offset + i) % K
    // (when none failed).
    let rooms_of: Vec<String> = (0..conns.len())
        .map(|i| names[(o.offset + i) % names.len()].clone())
        .collect();
    let mut size = std::collections::HashMap::new();
    for r in &rooms_of {
        *size.entry(r.clone()).or_insert(0u64) += 1;
    }
    let before = sample_all(&o);
    let count = conns.len();
    let pubs: Vec<usize> = (0..count).collect();
    let run = traffic(
        &o,
        conns,
        rooms_of,
        pubs,
        o.rate / count.max(1) as f64,
        |r| size.get(r).copied().unwrap_or(0),
    )
    .await;
    let after = sample_all(&o);
    report_traffic(&o, count, connect, ctimes, run, server_delta(before, after));
}

async fn idle(o: Opts) {
    let base = sample_all(&o).map(total);
    // Each connection is read from the moment it has joined, as a real idle
    // client's would be: that answers the server's pings (unanswered, they close
    // the connection after SWITCHBOARD_PING_INTERVAL_MS + SWITCHBOARD_PONG_TIMEOUT_MS)
    // and takes the room's presence frames.
    let closed = Arc::new(AtomicU64::new(0));
    let on_open = {
        let closed = closed.clone();
        move |mut ws: Ws| {
            let closed = closed.clone();
            tokio::spawn(async move {
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_close() {
                        break;
                    }
                }
                closed.fetch_add(1, Relaxed);
            })
        }
    };
    let (conns, connect, mut ctimes) = connect_all(
        &o,
        o.conns,
        "idle",
        |i| format!("bench-idle-{}", i / o.room_size),
        on_open,
    )
    .await;
    // Let the server settle before reading its memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = sample_all(&o).map(total);
    tokio::time::sleep(Duration::from_secs_f64(o.hold)).await;
    let end = sample_all(&o).map(total);
    let n = conns.len();
    let c = ctimes.percentiles();
    println!(
        "mode idle: {} connections in {:.2} s ({:.0}/s), connect p50 {:.1} ms p99 {:.1} ms",
        n,
        connect.as_secs_f64(),
        n as f64 / connect.as_secs_f64().max(1e-9),
        c[0],
        c[2]
    );
    let lost = closed.load(Relaxed);
    if lost > 0 {
        println!("{lost} connections were closed or broke after joining");
    }
    let mut json = serde_json::json!({ "mode": "idle", "connections": n, "closed_after_join": lost, "connect_s": connect.as_secs_f64(), "connects_per_s": n as f64 / connect.as_secs_f64().max(1e-9), "connect_ms": {"p50": c[0], "p99": c[2]}, "deflate_negotiated": NEGOTIATED.load(Relaxed) });
    if let (Some(b), Some(h), Some(e)) = (base, held, end) {
        let per_conn = (h.rss_kib.saturating_sub(b.rss_kib)) as f64 / n.max(1) as f64;
        let idle_cpu = (e.cpu.saturating_sub(h.cpu)).as_secs_f64() / o.hold.max(1e-9);
        println!(
            "server RSS: {} KiB before, {} KiB with {} connections: {:.2} KiB per connection",
            b.rss_kib, h.rss_kib, n, per_conn
        );
        println!(
            "server CPU while idle for {:.0} s: {:.2}% of a core",
            o.hold,
            idle_cpu * 100.0
        );
        json["rss_before_kib"] = b.rss_kib.into();
        json["rss_held_kib"] = h.rss_kib.into();
        json["kib_per_connection"] = per_conn.into();
        json["idle_cpu_fraction"] = idle_cpu.into();
    }
    println!("{json}");
    for c in conns {
        c.abort();
    }
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("switchboard-load: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let limit = raise_fd_limit();
    let want = o.conns.max(o.clients).max(o.subscribers + o.publishers) as u64 + 64;
    if limit < want {
        eprintln!("warning: open-file limit is {limit}; {want} are needed (raise `ulimit -n`)");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        match o.mode.as_str() {
            "fanout" => fanout(o).await,
            "rooms" => rooms(o).await,
            _ => idle(o).await,
        }
    });
    // Do not wait for thousands of sockets to close gracefully.
    std::process::exit(0);
}
