//! Tool calls: `rpc:call {to, method, params, id, timeout_ms}` from one
//! session to another session (or to one session of a user), answered by
//! the target's `rpc:result`, routed back to the caller. Nothing is
//! stored. The caller's session keeps its calls in flight (each with its
//! timer), the target's session the calls it has not answered yet (so a
//! target can answer only calls it was given, and its close answers them
//! all `rpc_disconnected`); the Hub routes both ways (`hub/rpc.rs`),
//! through the target's or the caller's node channel with Redis.

pub mod wire;

use crate::config::RateSpec;
use crate::ids::{SessionAddr, UserId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The bounds of tool calls (`SWITCHBOARD_RPC_*`).
#[derive(Debug, Clone, Copy)]
pub struct RpcLimits {
    /// `SWITCHBOARD_RPC_RATE` / `_BURST` (600/min, burst 100): calls per connection.
    pub rate: RateSpec,
    /// `SWITCHBOARD_RPC_IN_FLIGHT` (32): calls a session waits for at
    /// once, and calls it has been given and not answered.
    pub in_flight: usize,
    /// `SWITCHBOARD_RPC_MAX_PARAMS` (32768): bytes of `params`, and of a `result`.
    pub max_params: usize,
    /// `SWITCHBOARD_RPC_TIMEOUT_MS` (10000): a call's timeout when it names none.
    pub timeout_ms: u64,
    /// `SWITCHBOARD_RPC_MAX_TIMEOUT_MS` (60000): the longest `timeout_ms`.
    pub max_timeout_ms: u64,
}

/// Whom a call is for.
#[derive(Debug, Clone)]
pub enum Target {
    Session(SessionAddr),
    /// One of the user's sessions (`hub/rpc.rs` says which).
    User(UserId),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Session(s) => write!(f, "session {s}"),
            Target::User(u) => write!(f, "user {u}"),
        }
    }
}

/// Where an answer goes: the caller's session, the caller's `id`, and the
/// number the caller's session gave the call (an id used again after a
/// timeout does not take the old call's late answer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Route {
    pub caller: SessionAddr,
    pub id: String,
    pub n: u64,
}

/// A call on its way to the target's session (over Redis as JSON).
#[derive(Debug, Serialize, Deserialize, actix::Message)]
#[rtype(result = "()")]
pub struct Incoming {
    pub route: Route,
    pub user: String,
    pub name: String,
    /// The caller's role is service or admin.
    pub privileged: bool,
    pub method: String,
    pub params: Box<RawValue>,
    pub timeout_ms: u64,
}

/// The answer (an `rpc:result`, or an `error` naming the call) for a
/// session that is waiting for it.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub struct Answered {
    pub id: String,
    pub n: u64,
    pub frame: bytes::Bytes,
}

/// A call this session waits for.
struct Outgoing {
    n: u64,
    timer: actix::SpawnHandle,
}

/// A call this session was given and has not answered.
struct Given {
    route: Route,
    deadline: Instant,
}

/// A session's tool calls, both ways.
#[derive(Default)]
pub struct SessionRpc {
    next_n: u64,
    out: HashMap<String, Outgoing>,
    given: HashMap<String, Given>,
    next_given: u64,
}

impl SessionRpc {
    pub fn waiting(&self) -> usize {
        self.out.len()
    }

    pub fn is_waiting(&self, id: &str) -> bool {
        self.out.contains_key(id)
    }

    /// Numbers a new call of the caller's.
    pub fn next_n(&mut self) -> u64 {
        self.next_n += 1;
        self.next_n
    }

    pub fn wait(&mut self, id: String, n: u64, timer: actix::SpawnHandle) {
        self.out.insert(id, Outgoing { n, timer });
    }

    /// Takes the call `id` numbered `n`, if it is still waited for; its timer.
    pub fn take(&mut self, id: &str, n: u64) -> Option<actix::SpawnHandle> {
        if self.out.get(id)?.n != n {
            return None;
        }
        self.out.remove(id).map(|o| o.timer)
    }

    /// Records a call given to this session, if it has room for one;
    /// answers the id it is given under.
    pub fn give(&mut self, route: Route, timeout: Duration, cap: usize) -> Option<String> {
        let now = Instant::now();
        if self.given.len() >= cap {
            self.given.retain(|_, g| g.deadline > now);
        }
        if self.given.len() >= cap {
            return None;
        }
        self.next_given += 1;
        let id = format!("c{}", self.next_given);
        let deadline = now + timeout;
        self.given.insert(id.clone(), Given { route, deadline });
        Some(id)
    }

    /// The caller of the given call `id`, if it is still waiting.
    pub fn answer(&mut self, id: &str) -> Option<Route> {
        let g = self.given.remove(id)?;
        (g.deadline > Instant::now()).then_some(g.route)
    }

    /// The callers still waiting for this session (it is closing).
    pub fn abandon(&mut self) -> Vec<Route> {
        let now = Instant::now();
        self.given
            .drain()
            .filter(|(_, g)| g.deadline > now)
            .map(|(_, g)| g.route)
            .collect()
    }
}

/// `rpc:call` as the target gets it.
#[derive(Serialize)]
#[serde(tag = "type", rename = "rpc:call")]
pub struct CallFrame<'a> {
    pub id: &'a str,
    pub method: &'a str,
    pub params: &'a RawValue,
    pub from: FromFrame<'a>,
    pub session: &'a SessionAddr,
    pub timeout_ms: u64,
}

#[derive(Serialize)]
pub struct FromFrame<'a> {
    pub user: &'a str,
    pub name: &'a str,
}

/// `rpc:result` as the caller gets it.
#[derive(Serialize)]
#[serde(tag = "type", rename = "rpc:result")]
pub struct ResultFrame<'a> {
    pub id: &'a str,
    pub session: &'a SessionAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody<'a>>,
}

#[derive(Serialize)]
pub struct ErrorBody<'a> {
    pub code: &'a str,
    pub message: &'a str,
}

/// Encodes a frame of this module.
pub fn encode<T: Serialize>(frame: &T) -> bytes::Bytes {
    serde_json::to_vec(frame)
        .map(bytes::Bytes::from)
        .unwrap_or_default()
}
