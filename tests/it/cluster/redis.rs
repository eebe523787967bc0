//! A real Redis for the tests: `redis-server` on a free loopback port, no
//! persistence unless asked, stopped when the guard drops (also on panic).

use crate::broker::{free_port, wait_listening};
use crate::common::Server;
use std::process::{Child, Command, Stdio};

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    /// Speaking only TLS: the directory with its test CA (`ca.pem`).
    tls: Option<std::path::PathBuf>,
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
            tls: None,
        };
        r.run();
        r
    }

    /// A Redis that speaks only TLS (`rediss://`), with a certificate for
    /// 127.0.0.1 from a fresh test CA; answers it and the CA file.
    pub fn tls() -> (Redis, std::path::PathBuf) {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("switchboard-rediss-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        crate::broker::test_ca(&dir);
        let mut r = Redis {
            child: None,
            port,
            tls: Some(dir.clone()),
        };
        r.run();
        (r, dir.join("ca.pem"))
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let port = self.port.to_string();
        let listen: Vec<String> = match &self.tls {
            None => vec!["--port".into(), port],
            Some(d) => {
                let f = |n: &str| d.join(n).display().to_string();
                vec![
                    "--port".into(),
                    "0".into(),
                    "--tls-port".into(),
                    port,
                    "--tls-cert-file".into(),
                    f("server.pem"),
                    "--tls-key-file".into(),
                    f("server.key"),
                    "--tls-ca-cert-file".into(),
                    f("ca.pem"),
                    "--tls-auth-clients".into(),
                    "no".into(),
                ]
            }
        };
        let child = Command::new("redis-server")
            .args(&listen)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (scripts/deps.sh installs it)");
        self.child = Some(child);
        wait_listening(self.port, "redis-server");
    }

    /// `redis-cli` against it; answers its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--raw"])
            .args(args)
            .output()
            .expect("redis-cli");
        assert!(out.status.success(), "redis-cli {args:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// SIGKILL: everything it held is gone (no persistence).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it and starts an empty one on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }

    /// `n` hub nodes sharing this Redis, named a, b, c…
    pub fn nodes(&self, n: usize, extra: &[(&str, &str)]) -> Vec<Server> {
        Redis::nodes_over(&[self], n, extra)
    }

    /// `n` hub nodes sharing these Redis (`SWITCHBOARD_REDIS_URL` lists
    /// them all, in this order), named a, b, c…
    pub fn nodes_over(all: &[&Redis], n: usize, extra: &[(&str, &str)]) -> Vec<Server> {
        let url = all.iter().map(|r| r.url()).collect::<Vec<_>>().join(",");
        (0..n)
            .map(|i| {
                let id = ((b'a' + i as u8) as char).to_string();
                let mut env = vec![
                    ("SWITCHBOARD_REDIS_URL", url.as_str()),
                    ("SWITCHBOARD_NODE_ID", id.as_str()),
                    ("SWITCHBOARD_WORKERS", "1"),
                ];
                env.extend_from_slice(extra);
                Server::with_env(&env)
            })
            .collect()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
