//! deploy/nginx.conf for real: `nginx` on a free loopback port in front of a
//! hub, the three transports through it (a room message sent and received on
//! each), and the client's address reaching the hub through
//! `X-Forwarded-For` from the trusted proxy. The client connects from
//! 127.0.0.2 and nginx from 127.0.0.1, so the hub can tell them apart.

use crate::broker::{free_port, wait_listening};
use crate::common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Where the client connects from (all of 127.0.0.0/8 is loopback on Linux).
const CLIENT_IP: &str = "127.0.0.2";

fn nginx_bin() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// nginx, or `None` (with a message) when it is absent outside CI. In CI
/// (`CI` set) a missing nginx fails: scripts/deps.sh installs it.
fn nginx_or_skip() -> Option<PathBuf> {
    let found = nginx_bin();
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is missing (scripts/deps.sh installs the Debian package `nginx`)"
        );
        eprintln!(
            "SKIPPED: nginx is not installed (scripts/deps.sh installs it; CI runs this test)"
        );
    }
    found
}

struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    /// deploy/nginx.conf with its listen port, upstream and log directory
    /// replaced, inside a minimal main configuration in a temp dir.
    fn start(bin: &Path, upstream: &str) -> Nginx {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("switchboard-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let site =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx.conf"))
                .expect("deploy/nginx.conf");
        let d = dir.display().to_string();
        let mut templated = site.clone();
        for (from, to) in [
            (
                "listen 80;\n    server_name _;",
                format!("listen 127.0.0.1:{port};\n    server_name _;"),
            ),
            ("server 127.0.0.1:8080;", format!("server {upstream};")),
            ("/var/log/nginx/", format!("{d}/")),
        ] {
            assert!(
                templated.contains(from),
                "deploy/nginx.conf no longer has {from:?}"
            );
            templated = templated.replace(from, &to);
        }
        std::fs::write(dir.join("switchboard.conf"), templated).expect("site");
        // Run as root (a CI container), nginx's workers would otherwise switch to nobody.
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        let main = format!(
            "{user}\nworker_processes 1;\nerror_log {d}/error.log info;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             include {d}/switchboard.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).expect("main conf");
        let child = Command::new(bin)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        wait_listening(port, "nginx");
        Nginx { child, port, dir }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("switchboard.access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP connection to `addr` from CLIENT_IP.
async fn connect_from_client(addr: &str) -> TcpStream {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{CLIENT_IP}:0").parse().unwrap())
        .expect("bind 127.0.0.2");
    sock.connect(addr.parse().unwrap()).await.expect("connect")
}

/// One HTTP/1.1 request from CLIENT_IP, with a forged `X-Forwarded-For`.
async fn request(addr: &str, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
    let mut s = connect_from_client(addr).await;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nX-Forwarded-For: 6.6.6.6\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT * 4, s.read_to_end(&mut raw))
        .await
        .expect("http timeout")
        .expect("read");
    HttpResponse::parse(&raw)
}

async fn ws_client(addr: &str, path: &str) -> Client {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    req.headers_mut()
        .insert("X-Forwarded-For", "6.6.6.6".parse().unwrap());
    let stream = connect_from_client(addr).await;
    let (ws, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .expect("websocket through nginx");
    Client::from_stream(ws)
}

/// A raw SSE stream through nginx (chunked), decoded as it comes.
struct SseStream {
    sock: TcpStream,
    raw: Vec<u8>,
    text: String,
}

impl SseStream {
    /// The next event of type `ty` (earlier ones are passed over).
    async fn event(&mut self, ty: &str) -> Value {
        loop {
            let (chunk, used, _) = dechunk(&self.raw);
            self.raw.drain(..used);
            self.text
                .push_str(&String::from_utf8(chunk).expect("utf-8"));
            while let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                    let v: Value = serde_json::from_str(data).expect("event data");
                    if v["type"] == ty {
                        return v;
                    }
                }
            }
            let mut buf = [0u8; 8192];
            let n = tokio::time::timeout(WAIT, self.sock.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {ty} event through nginx"))
                .expect("read");
            assert!(n > 0, "SSE stream ended before {ty}");
            self.raw.extend_from_slice(&buf[..n]);
        }
    }
}

/// The watcher's next room message sent `via` a transport (its own echoes
/// and others are passed over).
async fn sent_via(watcher: &mut Client, via: &str) {
    loop {
        let m = watcher.recv_type("message:receive").await;
        if m["data"]["via"] == via {
            return;
        }
    }
}

/// Long-polls until a frame of type `ty` (bounded), returning it.
async fn poll_for(addr: &str, key: &str, cursor: &mut u64, ty: &str) -> Value {
    for _ in 0..20 {
        let r = request(
            addr,
            "GET",
            &format!("/poll?key={key}&cursor={cursor}"),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        *cursor = v["cursor"].as_u64().unwrap();
        if let Some(f) = v["frames"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["type"] == ty)
        {
            return f.clone();
        }
    }
    panic!("no {ty} frame through nginx");
}

#[tokio::test]
async fn the_three_transports_work_through_nginx_with_the_client_address() {
    let Some(bin) = nginx_or_skip() else { return };
    let hub = Server::with_env(&[
        ("SWITCHBOARD_TRUSTED_PROXIES", "127.0.0.1"),
        ("SWITCHBOARD_MONITOR_PUBLIC", "true"),
    ]);
    let nginx = Nginx::start(&bin, &hub.addr);
    let ngx = nginx.addr();

    // A watcher straight on the hub sees what each transport sends.
    let mut watcher = hub.user("watcher").await;
    watcher.join("general").await;

    // WebSocket through nginx: send and receive.
    let mut ws = ws_client(&ngx, "/ws?name=wsguest").await;
    let hello = ws.greeted().await;
    assert_eq!(hello["transport"], "websocket");
    ws.join("general").await;
    ws.send(json!({"type": "message:send", "room": "general", "data": {"via": "ws"}, "id": "w1"}))
        .await;
    assert_eq!(ws.recv_type("ack").await["id"], "w1");
    sent_via(&mut watcher, "ws").await;
    watcher
        .send(json!({"type": "message:send", "room": "general", "data": {"to": "ws"}}))
        .await;
    assert_eq!(ws.recv_type("message:receive").await["data"]["to"], "ws");

    // SSE through nginx: the stream arrives unbuffered, sends go by POST.
    let mut sse = connect_from_client(&ngx).await;
    let open = format!(
        "GET /sse?name=sseguest HTTP/1.1\r\nHost: {ngx}\r\nAccept: text/event-stream\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
    );
    sse.write_all(open.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(WAIT, sse.read(&mut b))
            .await
            .expect("sse head")
            .unwrap();
        assert_eq!(n, 1, "closed before the SSE head");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut sse = SseStream {
        sock: sse,
        raw: Vec::new(),
        text: String::new(),
    };
    let connected = sse.event("connected").await;
    let key = connected["key"].as_str().unwrap().to_string();
    let join = json!({"type": "room:join", "room": "general"}).to_string();
    assert_eq!(
        request(&ngx, "POST", &format!("/sse/send?key={key}"), Some(&join))
            .await
            .status,
        202
    );
    sse.event("room:joined").await;
    let send =
        json!({"type": "message:send", "room": "general", "data": {"via": "sse"}}).to_string();
    assert_eq!(
        request(&ngx, "POST", &format!("/sse/send?key={key}"), Some(&send))
            .await
            .status,
        202
    );
    sent_via(&mut watcher, "sse").await;
    watcher
        .send(json!({"type": "message:send", "room": "general", "data": {"to": "sse"}}))
        .await;
    loop {
        let m = sse.event("message:receive").await;
        if m["data"]["to"] == "sse" {
            break;
        }
    }

    // Long-polling through nginx: a held poll is answered by a new message.
    let r = request(&ngx, "POST", "/poll/open?name=pollguest", None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let key = r.json()["key"].as_str().unwrap().to_string();
    let mut cursor = 0;
    poll_for(&ngx, &key, &mut cursor, "connected").await;
    let r = request(&ngx, "POST", &format!("/poll/send?key={key}"), Some(&join)).await;
    assert_eq!(r.status, 202);
    poll_for(&ngx, &key, &mut cursor, "room:joined").await;
    let send =
        json!({"type": "message:send", "room": "general", "data": {"via": "poll"}}).to_string();
    assert_eq!(
        request(&ngx, "POST", &format!("/poll/send?key={key}"), Some(&send))
            .await
            .status,
        202
    );
    sent_via(&mut watcher, "poll").await;
    let held = {
        let (ngx, key, c) = (ngx.clone(), key.clone(), cursor);
        tokio::spawn(async move {
            let mut c = c;
            poll_for(&ngx, &key, &mut c, "message:receive").await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    watcher
        .send(json!({"type": "message:send", "room": "general", "data": {"to": "poll"}}))
        .await;
    let got = tokio::time::timeout(WAIT * 2, held)
        .await
        .expect("held poll")
        .unwrap();
    assert!(
        got["data"]["to"] == "poll" || got["data"]["via"] == "poll",
        "{got}"
    );

    // The hub saw the client's address (nginx is trusted), never the forged one.
    let (_, events) = hub.get_json("/api/events", None).await;
    let addrs: Vec<(&str, &str)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "connect")
        .map(|e| {
            (
                e["user"].as_str().unwrap_or(""),
                e["addr"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let guests: Vec<&(&str, &str)> = addrs
        .iter()
        .filter(|(u, _)| u.starts_with("guest-"))
        .collect();
    assert_eq!(guests.len(), 3, "{addrs:?}");
    assert!(guests.iter().all(|(_, a)| *a == CLIENT_IP), "{addrs:?}");
    // nginx's own log has the requests (a WebSocket or SSE line only once it
    // ends), without query strings: no session keys, names or tokens.
    let log = nginx.access_log();
    assert!(log.contains("\"POST /poll/send HTTP/1.1\" 202"), "{log}");
    assert!(!log.contains("key=") && !log.contains("name="), "{log}");
}
