//! The command lane: every Redis command of the node goes through one
//! connection, in the order it was asked for. Whatever is waiting when a
//! round trip ends goes out as the next pipeline, so a busy node sends
//! few, large pipelines and a quiet one pays one round trip per command.

use super::scripts::{self, Lua};
use super::Cluster;
use crate::error::HubError;
use redis::aio::ConnectionManager;
use redis::Value;
use tokio::sync::{mpsc, oneshot};

pub enum Op {
    /// EVALSHA of `Lua` with these keys and arguments (the run id first).
    Script(Lua, Vec<String>, Vec<Vec<u8>>),
    Cmd(redis::Cmd),
}

pub struct Req {
    pub op: Op,
    pub tx: oneshot::Sender<Result<Value, HubError>>,
}

/// Most commands in one pipeline.
const BATCH: usize = 512;

/// Connects, retrying for a while; each failure is written to `last` (so
/// a caller that stops waiting can say why).
pub async fn connect(
    client: &redis::Client,
    last: &std::sync::Mutex<String>,
) -> Result<ConnectionManager, String> {
    let cfg = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
        .set_response_timeout(Some(std::time::Duration::from_secs(5)))
        .set_number_of_retries(2)
        .set_max_delay(std::time::Duration::from_millis(500));
    let mut error = String::new();
    for _ in 0..20 {
        match client.get_connection_manager_with_config(cfg.clone()).await {
            Ok(c) => return Ok(c),
            Err(e) => error = e.to_string(),
        }
        *last.lock().unwrap_or_else(|e| e.into_inner()) = error.clone();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(error)
}

fn build(op: &Op, run_id: &str) -> redis::Cmd {
    match op {
        Op::Script(lua, keys, args) => {
            let mut c = redis::cmd("EVALSHA");
            c.arg(lua.sha()).arg(keys.len()).arg(keys).arg(run_id);
            for a in args {
                c.arg(&a[..]);
            }
            c
        }
        Op::Cmd(c) => c.clone(),
    }
}

/// What to do with one reply.
enum Outcome {
    Done(Result<Value, HubError>),
    /// Not run: run it again (scripts missing after a Redis restart, or a
    /// room's meta from another Redis run — the run id has been updated).
    Again,
}

fn judge(c: &Cluster, op: &Op, v: Value) -> Outcome {
    match v {
        Value::ServerError(e) if e.code() == "NOSCRIPT" => Outcome::Again,
        Value::ServerError(e) => Outcome::Done(Err(HubError::new(
            crate::error::ErrorCode::Internal,
            format!("Redis: {e:?}"),
        ))),
        v => match (op, scripts::stale_run(&v)) {
            (Op::Script(..), Some(run)) => {
                log::warn!("Redis run id is now {run}: rooms written before start new epochs");
                c.set_run_id(&run);
                Outcome::Again
            }
            _ => Outcome::Done(Ok(v)),
        },
    }
}

pub async fn run(c: Cluster, mut conn: ConnectionManager, mut rx: mpsc::UnboundedReceiver<Req>) {
    let mut batch: Vec<Req> = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        // Each request is tried at most three times (a NOSCRIPT, then a
        // stale run id); what is left is answered with the last error.
        for attempt in 0..3 {
            let run_id = c.run_id();
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for r in &batch {
                pipe.add_command(build(&r.op, &run_id));
            }
            let replies: Vec<Value> = match pipe.query_async(&mut conn).await {
                Ok(v) => v,
                Err(e) => {
                    log::warn!("Redis: {e}");
                    c.set_up(false);
                    for r in batch.drain(..) {
                        let _ = r.tx.send(Err(super::unavailable()));
                    }
                    break;
                }
            };
            c.set_up(true);
            let mut again = Vec::new();
            let mut load = false;
            for (r, v) in batch.drain(..).zip(replies) {
                let noscript = matches!(&v, Value::ServerError(e) if e.code() == "NOSCRIPT");
                match judge(&c, &r.op, v) {
                    Outcome::Again if attempt < 2 => {
                        load |= noscript;
                        again.push(r);
                    }
                    Outcome::Again => {
                        let _ = r.tx.send(Err(super::unavailable()));
                    }
                    Outcome::Done(v) => {
                        let _ = r.tx.send(v);
                    }
                }
            }
            if load {
                if let Err(e) = scripts::load_all(&mut conn).await {
                    log::warn!("Redis: cannot load scripts: {e}");
                }
            }
            if again.is_empty() {
                break;
            }
            batch = again;
        }
        batch.clear();
    }
}
