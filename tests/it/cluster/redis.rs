//! A real Redis for the tests: `redis-server` on a free loopback port, no
//! persistence unless asked, stopped when the guard drops (also on panic).

use crate::broker::{free_port, wait_listening};
use crate::common::Server;
use std::process::{Child, Command, Stdio};

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
        };
        r.run();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (scripts/deps.sh installs it)");
        self.child = Some(child);
        wait_listening(self.port, "redis-server");
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
        (0..n)
            .map(|i| {
                let id = ((b'a' + i as u8) as char).to_string();
                let url = self.url();
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
