//! Start the real server, mint tokens, talk WebSocket and HTTP.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "integration-test-secret";
/// How long any single expected frame may take to arrive.
pub const WAIT: Duration = Duration::from_secs(10);

/// Whether the suite runs against Redis (`SB_TEST_REDIS_URL`, set by
/// scripts/test.sh for its second pass).
pub fn with_redis() -> bool {
    std::env::var_os("SB_TEST_REDIS_URL").is_some()
}

/// For tests of single-node internals (the embedded database's failures
/// and crash numbering, the idle-room LRU): with Redis, rooms live there
/// instead, so these do not apply (docs/SCALEOUT.md). Says why when skipped.
pub fn single_node_only(why: &str) -> bool {
    if with_redis() {
        eprintln!("not run against Redis: {why}");
    }
    with_redis()
}

pub struct Server {
    child: Child,
    pub addr: String,
    /// The settings it was started with, for `restart`.
    env: Vec<(String, String)>,
    /// The per-server database file this harness made (removed on drop).
    temp_db: Option<std::path::PathBuf>,
    /// A command the binary is started through (e.g. `prlimit --nofile=…`).
    prefix: Vec<String>,
}

static NEXT_DB: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Server {
    pub fn start() -> Server {
        Server::with_env(&[])
    }

    /// Starts the binary with test defaults overridden by `env`. Each server
    /// gets its own database file unless `env` names `SWITCHBOARD_DB`.
    pub fn with_env(env: &[(&str, &str)]) -> Server {
        Server::wrapped(&[], env)
    }

    /// Starts the binary as the last argument of `prefix` (a command that
    /// execs it, such as `prlimit --nofile=N:N --`), with settings as in
    /// [`Server::with_env`].
    pub fn wrapped(prefix: &[&str], env: &[(&str, &str)]) -> Server {
        let prefix: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut temp_db = None;
        if !env.iter().any(|(k, _)| k == "SWITCHBOARD_DB") {
            let n = NEXT_DB.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("switchboard-it-{}-{n}.db", std::process::id()));
            remove_db(&path);
            env.push(("SWITCHBOARD_DB".into(), path.display().to_string()));
            temp_db = Some(path);
        }
        // The whole suite runs again against Redis (scripts/test.sh): each
        // server is then a one-node cluster of its own (its own key prefix,
        // kept across restarts), unless the test set up a cluster itself.
        if let Ok(url) = std::env::var("SB_TEST_REDIS_URL") {
            if !env.iter().any(|(k, _)| k == "SWITCHBOARD_REDIS_URL") {
                let n = NEXT_DB.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                env.push(("SWITCHBOARD_REDIS_URL".into(), url));
                env.push((
                    "SWITCHBOARD_REDIS_PREFIX".into(),
                    format!("t{}x{n}", std::process::id()),
                ));
            }
        }
        let (child, addr) = Server::spawn(&prefix, &env);
        Server {
            child,
            addr,
            env,
            temp_db,
            prefix,
        }
    }

    /// The database file this server uses, unless storage is off.
    pub fn db_path(&self) -> Option<std::path::PathBuf> {
        self.env
            .iter()
            .find(|(k, _)| k == "SWITCHBOARD_DB")
            .filter(|(_, v)| v != "off")
            .map(|(_, v)| v.into())
    }

    /// Stops the server with SIGTERM (or SIGKILL when `kill`) and starts it
    /// again with the same settings and database; `extra` overrides settings.
    pub fn restart(&mut self, kill: bool, extra: &[(&str, &str)]) {
        if kill {
            let _ = self.child.kill();
            let _ = self.child.wait();
        } else {
            assert!(self.terminate().is_some(), "server did not stop on SIGTERM");
        }
        for (k, v) in extra {
            self.env.retain(|(name, _)| name != k);
            self.env.push((k.to_string(), v.to_string()));
        }
        let (child, addr) = Server::spawn(&self.prefix, &self.env);
        self.child = child;
        self.addr = addr;
    }

    fn spawn(prefix: &[String], env: &[(String, String)]) -> (Child, String) {
        let bin = env!("CARGO_BIN_EXE_switchboard");
        let mut cmd = match prefix.split_first() {
            None => Command::new(bin),
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
        };
        cmd.env("PORT", "0")
            .env("SWITCHBOARD_HOST", "127.0.0.1")
            .env("SWITCHBOARD_JWT_SECRET", SECRET)
            // Tests of expiry want it exact; tests of the leeway set it.
            .env("SWITCHBOARD_JWT_LEEWAY_MS", "0")
            .env("SWITCHBOARD_WORKERS", "2")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn switchboard");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("switchboard listening on http://") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("server did not print its address");
        (child, addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub async fn ws(&self, path_and_query: &str) -> Client {
        Client::connect(&self.url(path_and_query))
            .await
            .expect("websocket connect")
    }

    /// A user connection: consumes `connected` and the personal room's `room:joined`.
    pub async fn user(&self, sub: &str) -> Client {
        let t = token(sub, json!({}));
        let mut c = self.ws(&format!("/ws?token={t}")).await;
        c.greeted().await;
        c
    }

    pub async fn user_with(&self, sub: &str, extra: Value) -> Client {
        let t = token(sub, extra);
        let mut c = self.ws(&format!("/ws?token={t}")).await;
        c.greeted().await;
        c
    }

    pub async fn guest(&self, name: &str) -> Client {
        let mut c = self.ws(&format!("/ws?name={name}")).await;
        c.greeted().await;
        c
    }

    /// A plain HTTP/1.1 request; returns (status, body).
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let r = self.request(method, path, &headers, body).await;
        (r.status, String::from_utf8_lossy(&r.body).to_string())
    }

    /// One HTTP/1.1 request on a fresh connection; a chunked body is decoded.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> HttpResponse {
        request_to(&self.addr, method, path, headers, body).await
    }

    /// A GET to the server at `addr`, for tasks that do not hold the Server.
    pub async fn request_at(addr: &str, path: &str) -> HttpResponse {
        request_to(addr, "GET", path, &[], None).await
    }
}

async fn request_to(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> HttpResponse {
    {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        } else if method == "POST" {
            req.push_str("Content-Length: 0\r\n");
        }
        req.push_str("\r\n");
        if let Some(b) = body {
            req.push_str(b);
        }
        s.write_all(req.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        tokio::time::timeout(WAIT * 4, s.read_to_end(&mut raw))
            .await
            .expect("http timeout")
            .expect("read");
        HttpResponse::parse(&raw)
    }
}

impl Server {
    pub async fn get_json(&self, path: &str, bearer: Option<&str>) -> (u16, Value) {
        let (s, b) = self.http("GET", path, bearer, None).await;
        (
            s,
            serde_json::from_str(&b).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {b}")),
        )
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.http("GET", "/metrics", None, None).await;
        body.lines()
            .find(|l| l.split(' ').next() == Some(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not found"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(p) = &self.temp_db {
            remove_db(p);
        }
    }
}

/// Removes a database file and its WAL, shared-memory and lock files.
pub fn remove_db(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// An HS256 token for `sub`, valid one hour, with extra claims merged in.
pub fn token(sub: &str, extra: Value) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let mut claims = json!({ "sub": sub, "name": format!("{sub} name"), "exp": exp });
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn connect(url: &str) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Client { ws })
    }

    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        Client { ws }
    }

    /// Reads `connected` and the personal room's `room:joined`; returns `connected`.
    pub async fn greeted(&mut self) -> Value {
        let c = self.recv().await;
        assert_eq!(c["type"], "connected", "{c}");
        let j = self.recv().await;
        assert_eq!(j["type"], "room:joined", "{j}");
        assert_eq!(j["room"], format!("user:{}", c["user"].as_str().unwrap()));
        c
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_text(&mut self, t: &str) {
        self.ws
            .send(Message::Text(t.to_string()))
            .await
            .expect("send");
    }

    /// The next text frame as JSON (control frames are handled by the library).
    pub async fn recv(&mut self) -> Value {
        self.try_recv(WAIT)
            .await
            .expect("timed out waiting for a frame")
    }

    /// The next text frame within `d`, or `None`. Panics if the connection closes.
    pub async fn try_recv(&mut self, d: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) => panic!("connection ended"),
                Ok(Some(Err(e))) => panic!("websocket error: {e}"),
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                Message::Text(t) => {
                    return Some(
                        serde_json::from_str(&t).unwrap_or_else(|e| panic!("bad JSON {e}: {t}")),
                    )
                }
                Message::Close(c) => panic!("connection closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// The next frame of type `ty`, skipping others.
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_recv(left).await {
                Some(v) if v["type"] == ty => return v,
                Some(_) => continue,
                None => panic!("timed out waiting for {ty}"),
            }
        }
    }

    /// Asserts no frame of type `ty` arrives within `d` (others are skipped).
    pub async fn expect_no(&mut self, ty: &str, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_recv(left).await {
                Some(v) if v["type"] == ty => panic!("unexpected {ty}: {v}"),
                Some(_) => continue,
                None => return,
            }
        }
    }

    /// Joins `room`; returns its `room:joined`.
    pub async fn join(&mut self, room: &str) -> Value {
        self.send(json!({"type": "room:join", "room": room})).await;
        let j = self.recv_type("room:joined").await;
        assert_eq!(j["room"], room, "{j}");
        j
    }

    /// Reads until the server closes; returns the close code (text frames are skipped).
    pub async fn close_code(&mut self, d: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("no close within {d:?}"),
                Ok(None) | Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(Message::Close(c)))) => return c.map(|f| u16::from(f.code)),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Like `close_code`, also returning the reason text.
    pub async fn close_frame(&mut self, d: Duration) -> Option<(u16, String)> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("no close within {d:?}"),
                Ok(None) | Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(Message::Close(c)))) => {
                    return c.map(|f| (u16::from(f.code), f.reason.to_string()))
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }

    /// Sends `frames` as fast as the socket takes them while reading at the
    /// same time (so the sender is never a slow consumer), until `answers`
    /// `ack`/`error` frames have arrived; returns those, in arrival order.
    pub async fn burst(&mut self, frames: Vec<Value>, answers: usize) -> Vec<Value> {
        let (mut tx, mut rx) = (&mut self.ws).split();
        let send = async {
            for f in frames {
                tx.send(Message::Text(f.to_string())).await.expect("send");
            }
        };
        let read = async {
            let mut got = Vec::with_capacity(answers);
            while got.len() < answers {
                let msg = tokio::time::timeout(WAIT, rx.next())
                    .await
                    .expect("timed out waiting for answers")
                    .expect("connection ended")
                    .expect("websocket error");
                let Message::Text(t) = msg else { continue };
                let f: Value = serde_json::from_str(&t).expect("JSON");
                if f["type"] == "ack" || f["type"] == "error" {
                    got.push(f);
                }
            }
            got
        };
        tokio::join!(send, read).1
    }

    pub fn inner(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        &mut self.ws
    }
}

/// A whole HTTP response.
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn parse(raw: &[u8]) -> HttpResponse {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of headers");
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .expect("status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        if chunked {
            body = dechunk(&body).0;
        }
        HttpResponse {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Decodes as many whole chunks as `raw` holds: (data, bytes consumed, ended).
pub fn dechunk(raw: &[u8]) -> (Vec<u8>, usize, bool) {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let Some(eol) = raw[at..].windows(2).position(|w| w == b"\r\n") else {
            return (out, at, false);
        };
        let size_line = String::from_utf8_lossy(&raw[at..at + eol]).to_string();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
            .expect("chunk size");
        let start = at + eol + 2;
        if size == 0 {
            return (out, start + 2, true);
        }
        if raw.len() < start + size + 2 {
            return (out, at, false);
        }
        out.extend_from_slice(&raw[start..start + size]);
        at = start + size + 2;
    }
}

/// A WebSocket handshake on a raw socket to `addr` for `path`: returns the
/// socket and the response head. The head is read byte by byte, so no frame
/// behind it is consumed: after a 101 the connection is the caller's.
pub async fn raw_upgrade(addr: &str, path: &str) -> (TcpStream, String) {
    raw_upgrade_with(addr, path, "").await
}

/// `raw_upgrade` with `extra` header lines (each ending in `\r\n`).
pub async fn raw_upgrade_with(addr: &str, path: &str, extra: &str) -> (TcpStream, String) {
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    sock.write_all(req.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 4096, "response head too long");
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(WAIT, sock.read(&mut b))
            .await
            .expect("handshake timeout")
            .expect("read");
        assert_eq!(n, 1, "closed before the end of the answer to {path}");
        head.push(b[0]);
    }
    (sock, String::from_utf8_lossy(&head).to_string())
}

/// A member list with each member's `sessions` taken out (asserted to be a
/// non-empty list of session ids), for comparing the rest exactly.
pub fn without_sessions(members: &Value) -> Value {
    let mut v = members.clone();
    for m in v.as_array_mut().expect("a member list") {
        let s = m.as_object_mut().expect("a member").remove("sessions");
        let ok = s.as_ref().and_then(Value::as_array).is_some_and(|a| {
            !a.is_empty()
                && a.iter()
                    .all(|x| x.as_str().is_some_and(|x| x.starts_with('s')))
        });
        assert!(ok, "a member lists their sessions: {s:?}");
    }
    v
}

/// Waits (at most `within`) for a server that must refuse to start to exit:
/// its status and what it wrote to stderr (piped). Kills it and panics if
/// it is still running then.
pub fn refused_start(
    mut child: std::process::Child,
    within: Duration,
) -> (std::process::ExitStatus, String) {
    let deadline = std::time::Instant::now() + within;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    (status, String::from_utf8_lossy(&out.stderr).into_owned())
}
