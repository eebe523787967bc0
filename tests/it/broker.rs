//! A real MQTT broker for the tests: `mosquitto` on a free loopback port,
//! configured from a temp dir, stopped when the guard drops (also on panic);
//! and an MQTT peer (a rumqttc client) to publish and subscribe with.

#![allow(dead_code)]

use crate::common::WAIT;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Waits (bounded) until something accepts connections on 127.0.0.1:`port`.
pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn mosquitto_bin() -> String {
    for p in [
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/usr/bin/mosquitto",
    ] {
        if std::path::Path::new(p).exists() {
            return p.to_string();
        }
    }
    "mosquitto".to_string()
}

pub struct Mosquitto {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Mosquitto::on(free_port())
    }

    /// A broker on `port` (which the tests may have handed to a hub already).
    pub fn on(port: u16) -> Mosquitto {
        let dir =
            std::env::temp_dir().join(format!("switchboard-mqtt-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 10000\n"
        );
        std::fs::write(dir.join("mosquitto.conf"), conf).expect("write config");
        let mut m = Mosquitto {
            child: None,
            port,
            dir,
        };
        m.run();
        m
    }

    /// A broker that speaks only TLS, with a certificate for 127.0.0.1 signed
    /// by a fresh test CA (made with `openssl`); returns it and the CA file.
    pub fn tls() -> (Mosquitto, PathBuf) {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("switchboard-mqtts-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        test_ca(&dir);
        // mosquitto started as root reads its files as user `mosquitto`.
        use std::os::unix::fs::PermissionsExt;
        for f in ["ca.pem", "server.pem", "server.key"] {
            let _ = std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644));
        }
        let conf = format!(
            "listener {port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\nallow_anonymous true\npersistence false\n",
            d = dir.display()
        );
        std::fs::write(dir.join("mosquitto.conf"), conf).expect("write config");
        let ca = dir.join("ca.pem");
        let mut m = Mosquitto {
            child: None,
            port,
            dir,
        };
        m.run();
        (m, ca)
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let log = std::fs::File::create(self.dir.join("mosquitto.log")).expect("log file");
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosquitto (scripts/deps.sh installs it)");
        self.child = Some(child);
        wait_listening(self.port, "mosquitto");
    }

    /// SIGKILL: the broker vanishes at once, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the peer's event loop saw.
#[derive(Debug)]
pub enum Seen {
    Message(rumqttc::Publish),
    SubAck,
    PubAck,
}

/// An MQTT client for the tests; its event loop runs in a task.
pub struct Peer {
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Peer {
    pub async fn connect(port: u16, id: &str) -> Peer {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut el) = AsyncClient::new(o, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (up_tx, up_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut up = Some(up_tx);
            loop {
                let seen = match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(u) = up.take() {
                            let _ = u.send(());
                        }
                        continue;
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => Seen::Message(p),
                    Ok(Event::Incoming(Packet::SubAck(_))) => Seen::SubAck,
                    Ok(Event::Incoming(Packet::PubAck(_))) => Seen::PubAck,
                    Ok(_) => continue,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.send(seen).is_err() {
                    return;
                }
            }
        });
        tokio::time::timeout(WAIT, up_rx)
            .await
            .expect("peer did not connect")
            .expect("peer task");
        Peer { client, rx, task }
    }

    async fn wait_for(&mut self, want: fn(&Seen) -> bool) -> Seen {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(s)) if want(&s) => return s,
                Ok(Some(_)) => continue,
                _ => panic!("peer: timed out"),
            }
        }
    }

    pub async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        self.wait_for(|s| matches!(s, Seen::SubAck)).await;
    }

    /// Publishes and, for QoS 1, waits for the broker's PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: &[u8], qos1: bool, retain: bool) {
        let qos = if qos1 {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        self.client
            .publish(topic, qos, retain, payload.to_vec())
            .await
            .expect("publish");
        if qos1 {
            self.wait_for(|s| matches!(s, Seen::PubAck)).await;
        }
    }

    /// The next message the peer receives.
    pub async fn message(&mut self) -> rumqttc::Publish {
        match self.wait_for(|s| matches!(s, Seen::Message(_))).await {
            Seen::Message(p) => p,
            _ => unreachable!(),
        }
    }

    /// The next message within `d`, if any.
    pub async fn try_message(&mut self, d: Duration) -> Option<rumqttc::Publish> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(Seen::Message(p))) => return Some(p),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fresh test CA in `dir` (`ca.pem`) and a certificate for 127.0.0.1 it
/// signed (`server.pem`, `server.key`), made with `openssl`.
pub fn test_ca(dir: &std::path::Path) {
    let ssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (scripts/deps.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ext =
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
    std::fs::write(dir.join("ext.cnf"), ext).expect("ext");
    ssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=switchboard test CA",
    ]);
    ssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    ssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}
