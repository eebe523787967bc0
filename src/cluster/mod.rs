//! Scale-out: several nodes share rooms, members, direct messages and
//! broadcasts through Redis (`SWITCHBOARD_REDIS_URL`; docs/SCALEOUT.md).
//!
//! One Lua script per operation keeps each room's numbering in Redis: a
//! publish increments the room's `seq`, appends the frame to a capped stream
//! and publishes it on the room's channel, atomically. Every node with
//! members of the room subscribes to the channel and fans out locally (one
//! Redis message per publish per node); its Room actor is a replica that
//! delivers seqs in order and repairs gaps from the stream.
//!
//! Redis I/O runs on its own thread ([`start`]): per Redis, the command
//! lane (one connection, requests pipelined in the order they were made,
//! so one room's publishes keep their order) and the subscriber (a second
//! connection, re-established and re-subscribed after a drop, after which
//! every subscriber is told to check its position).
//!
//! With several Redis URLs the first holds everything but rooms' messages:
//! users, presence, members, sessions, state, documents, notifications,
//! the nodes and the lease. A room's messages (its numbering, stream,
//! idempotency keys, AI streams and their channel) are on the Redis its
//! name hashes to ([`Cluster::for_room`]), so message traffic is spread
//! over all of them (docs/SCALEOUT.md, "Several Redis").

mod doc_scripts;
pub mod docs;
mod feed;
pub mod inbox;
mod lane;
mod node;
mod note_scripts;
pub mod presence;
mod recovery_scripts;
pub mod scripts;
mod state_scripts;
pub mod stream_scripts;

pub use feed::{Feed, FeedEvent, PatternFeed};
pub use scripts::Lua;

use crate::config::ClusterConfig;
use crate::error::{ErrorCode, HubError};
use crate::ids::{RoomName, UserId};
use actix::prelude::*;
use redis::Value;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// A handle on the node's Redis links, pointing at one of them (the first,
/// unless it came from [`Cluster::for_room`]); cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
    link: usize,
}

/// One Redis: its command lane and its subscriber.
struct Link {
    lane: mpsc::UnboundedSender<lane::Req>,
    subs: mpsc::UnboundedSender<feed::Cmd>,
    /// The Redis server's `run_id` as last seen: a room whose numbering was
    /// written under another run gets a new epoch (scripts.rs, `meta`).
    run_id: Mutex<Arc<str>>,
    up: AtomicBool,
    /// Operations sent, for `/metrics` (`switchboard_redis_ops_total`).
    ops: AtomicU64,
}

struct Inner {
    node: Arc<str>,
    prefix: String,
    links: Vec<Link>,
    next_token: AtomicU64,
    node_ttl: std::time::Duration,
    gaps: AtomicU64,
    /// This node runs an MQTT bridge with mapped rooms and competes for
    /// the lease to ingest them (one node does, so each broker message
    /// is numbered once).
    wants_lease: AtomicBool,
    leader: AtomicBool,
    /// Whether this node can ingest now (its bridge is connected).
    lease_gate: std::sync::OnceLock<Box<dyn Fn() -> bool + Send + Sync>>,
    /// The cluster-wide figures as of this node's last heartbeat.
    figures: Mutex<Option<Figures>>,
}

/// Figures of the whole cluster, as of a heartbeat (`node.rs`): every
/// node writes its own there, the heartbeat's script sums the live ones.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Figures {
    /// Nodes alive (heard from within `SWITCHBOARD_NODE_TTL_MS`).
    pub nodes: u64,
    /// Their WebSocket connections and sessions (every transport).
    pub connections: u64,
    pub sessions: u64,
    /// Users with a session on any node.
    pub users_online: u64,
    /// Rooms with a member on any node.
    pub rooms: u64,
}

impl Cluster {
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    fn link(&self) -> &Link {
        &self.inner.links[self.link]
    }

    /// Whether the last operation succeeded on every Redis.
    pub fn link_up(&self) -> bool {
        self.inner
            .links
            .iter()
            .all(|l| l.up.load(Ordering::Relaxed))
    }

    /// Per Redis, in the order of `SWITCHBOARD_REDIS_URL`: whether its last
    /// operation succeeded.
    pub fn links_up(&self) -> Vec<bool> {
        let up = |l: &Link| l.up.load(Ordering::Relaxed);
        self.inner.links.iter().map(up).collect()
    }

    /// Operations sent, to every Redis.
    pub fn ops(&self) -> u64 {
        let ops = |l: &Link| l.ops.load(Ordering::Relaxed);
        self.inner.links.iter().map(ops).sum()
    }

    /// A handle on each Redis, in the order of `SWITCHBOARD_REDIS_URL`.
    pub fn each_redis(&self) -> Vec<Cluster> {
        (0..self.inner.links.len())
            .map(|link| Cluster {
                inner: self.inner.clone(),
                link,
            })
            .collect()
    }

    /// Whether both handles point at the same Redis.
    pub fn same_redis(&self, other: &Cluster) -> bool {
        self.link == other.link
    }

    /// The handle on the Redis that holds `room`'s messages: a stable hash
    /// of its name over the Redis URLs, the same on every node that lists
    /// the same URLs in the same order. With one Redis, this one.
    pub fn for_room(&self, room: &RoomName) -> Cluster {
        Cluster {
            inner: self.inner.clone(),
            link: shard_of(room.as_str(), self.inner.links.len()),
        }
    }

    /// Gaps found in a room's channel and repaired from its stream.
    pub fn gaps(&self) -> u64 {
        self.inner.gaps.load(Ordering::Relaxed)
    }

    pub(crate) fn count_gap(&self) {
        self.inner.gaps.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether this node runs a bridge with mapped rooms.
    pub fn competes_for_lease(&self) -> bool {
        self.inner.wants_lease.load(Ordering::Relaxed)
    }

    pub(crate) fn wants_lease(&self) -> bool {
        self.inner.wants_lease.load(Ordering::Relaxed)
            && self.inner.lease_gate.get().is_some_and(|ready| ready())
    }

    /// Whether this node holds the lease (ingests mapped rooms).
    pub fn mqtt_leader(&self) -> bool {
        self.inner.leader.load(Ordering::Relaxed)
    }

    pub(crate) fn set_leader(&self, on: bool) {
        if self.inner.leader.swap(on, Ordering::Relaxed) != on {
            log::info!(
                "node {} {} the MQTT ingestion lease",
                self.node(),
                if on { "holds" } else { "does not hold" }
            );
        }
    }

    /// The cluster-wide figures as of the last heartbeat (`None` before
    /// the first).
    pub fn figures(&self) -> Option<Figures> {
        *self.inner.figures.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_figures(&self, f: Option<Figures>) {
        *self.inner.figures.lock().unwrap_or_else(|e| e.into_inner()) = f;
    }

    pub fn node_ttl(&self) -> std::time::Duration {
        self.inner.node_ttl
    }

    pub(crate) fn set_up(&self, up: bool) {
        self.link().up.store(up, Ordering::Relaxed);
    }

    pub fn run_id(&self) -> Arc<str> {
        self.link()
            .run_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_run_id(&self, id: &str) {
        *self.link().run_id.lock().unwrap_or_else(|e| e.into_inner()) = id.into();
    }

    /// `<prefix>:{r:<room>}:<part>`: every key of a room shares one hash tag.
    pub fn room_key(&self, room: &RoomName, part: &str) -> String {
        format!("{}:{{r:{}}}:{}", self.inner.prefix, room, part)
    }

    pub fn user_key(&self, user: &UserId, part: &str) -> String {
        format!("{}:{{u:{}}}:{}", self.inner.prefix, user, part)
    }

    /// `<prefix>:{d:<doc>}:<part>`: every key of a document shares one hash tag.
    pub fn doc_key(&self, doc: &RoomName, part: &str) -> String {
        format!("{}:{{d:{}}}:{}", self.inner.prefix, doc, part)
    }

    pub fn key(&self, part: &str) -> String {
        format!("{}:{}", self.inner.prefix, part)
    }

    /// Runs a script. The request is queued now, so calls keep the order
    /// they were made in; the answer comes when Redis has run it. The lane
    /// passes the server's run id as the first argument (`ARGV[1]`).
    pub fn script(
        &self,
        lua: Lua,
        keys: Vec<String>,
        args: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<Value, HubError>> + 'static {
        self.queue(lane::Op::Script(lua, keys, args))
    }

    /// Runs a plain command (PUBLISH, XRANGE, …), in order with scripts.
    pub fn command(
        &self,
        cmd: redis::Cmd,
    ) -> impl Future<Output = Result<Value, HubError>> + 'static {
        self.queue(lane::Op::Cmd(cmd))
    }

    /// Queues `op` on the lane now; the future is its answer.
    fn queue(&self, op: lane::Op) -> impl Future<Output = Result<Value, HubError>> + 'static {
        let (tx, rx) = oneshot::channel();
        self.link().ops.fetch_add(1, Ordering::Relaxed);
        let sent = self.link().lane.send(lane::Req { op, tx }).is_ok();
        async move {
            if !sent {
                return Err(unavailable());
            }
            rx.await.unwrap_or_else(|_| Err(unavailable()))
        }
    }

    /// Routes the channel's messages to `target` from now on. Answers a
    /// token for [`Cluster::unsubscribe`] and a future that resolves once
    /// Redis confirmed the subscription (nothing published after it is missed).
    pub fn subscribe(
        &self,
        chan: String,
        target: Recipient<Feed>,
    ) -> (u64, impl Future<Output = Result<(), HubError>> + 'static) {
        let token = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let sent = self
            .link()
            .subs
            .send(feed::Cmd::Sub {
                chan,
                target,
                token,
                done: tx,
            })
            .is_ok();
        (token, confirmed(sent, rx))
    }

    /// Stops routing the channel, unless a newer subscription took it over.
    pub fn unsubscribe(&self, chan: String, token: u64) {
        let _ = self.link().subs.send(feed::Cmd::Unsub { chan, token });
    }

    /// Routes the messages of every channel matching the Redis glob
    /// `pattern` to `target`, like [`Cluster::subscribe`].
    pub fn psubscribe(
        &self,
        pattern: String,
        target: Recipient<feed::PatternFeed>,
    ) -> (u64, impl Future<Output = Result<(), HubError>> + 'static) {
        let token = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let cmd = feed::Cmd::PSub {
            pattern,
            target,
            token,
            done: tx,
        };
        let sent = self.link().subs.send(cmd).is_ok();
        (token, confirmed(sent, rx))
    }

    pub fn punsubscribe(&self, pattern: String, token: u64) {
        let _ = self.link().subs.send(feed::Cmd::PUnsub { pattern, token });
    }
}

/// Resolves once the subscriber confirmed a (pattern) subscription.
async fn confirmed(sent: bool, rx: oneshot::Receiver<bool>) -> Result<(), HubError> {
    if sent && rx.await.unwrap_or(false) {
        Ok(())
    } else {
        Err(unavailable())
    }
}

pub fn unavailable() -> HubError {
    HubError::new(
        ErrorCode::Unavailable,
        "the cluster's Redis is unreachable; retry shortly",
    )
}

/// The Redis client of one of `SWITCHBOARD_REDIS_URL`'s URLs: `rediss://`
/// verifies the server with `SWITCHBOARD_REDIS_CA_FILE`, else with the
/// system's roots.
fn client(cfg: &ClusterConfig, url: &str) -> Result<redis::Client, String> {
    let bad =
        |e: redis::RedisError| format!("SWITCHBOARD_REDIS_URL {}: {e}", crate::config::redact(url));
    let Some(path) = &cfg.ca_file else {
        return redis::Client::open(url).map_err(bad);
    };
    let pem = std::fs::read(path).map_err(|e| format!("SWITCHBOARD_REDIS_CA_FILE {path}: {e}"))?;
    let certs = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    };
    redis::Client::build_with_tls(url, certs).map_err(bad)
}

/// Which of `n` Redis holds a room's messages: FNV-1a of its name, modulo
/// `n`. Never changes for a name, so every node agrees.
fn shard_of(room: &str, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in room.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % n as u64) as usize
}

/// Connects to every Redis (waiting up to 15 s for them) and starts the
/// node's Redis thread: per Redis, the command lane and the subscriber;
/// the heartbeat and the lease on the first.
pub fn start(cfg: &ClusterConfig) -> Result<(Cluster, Arbiter), String> {
    let clients = cfg
        .urls
        .iter()
        .map(|u| client(cfg, u))
        .collect::<Result<Vec<_>, _>>()?;
    crate::ids::set_node(&cfg.node);
    let arbiter = Arbiter::new();
    let mut links = Vec::new();
    let mut queues = Vec::new();
    for _ in &clients {
        let (lane_tx, lane_rx) = mpsc::unbounded_channel();
        let (subs_tx, subs_rx) = mpsc::unbounded_channel();
        links.push(Link {
            lane: lane_tx,
            subs: subs_tx,
            run_id: Mutex::new("".into()),
            up: AtomicBool::new(false),
            ops: AtomicU64::new(0),
        });
        queues.push((lane_rx, subs_rx));
    }
    let cluster = Cluster {
        inner: Arc::new(Inner {
            node: cfg.node.as_str().into(),
            prefix: cfg.prefix.clone(),
            links,
            next_token: AtomicU64::new(1),
            node_ttl: cfg.node_ttl,
            gaps: AtomicU64::new(0),
            wants_lease: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            lease_gate: std::sync::OnceLock::new(),
            figures: Mutex::new(None),
        }),
        link: 0,
    };
    let mut waits = Vec::new();
    for (link, (client, (lane_rx, subs_rx))) in clients.into_iter().zip(queues).enumerate() {
        let c = Cluster {
            inner: cluster.inner.clone(),
            link,
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let last_error = Arc::new(Mutex::new(String::new()));
        let last = last_error.clone();
        arbiter.spawn(async move {
            let conn = match lane::connect(&client, &last).await {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let mut probe = conn.clone();
            match scripts::server_run_id(&mut probe).await {
                Ok(id) => c.set_run_id(&id),
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            }
            c.set_up(true);
            actix::spawn(lane::run(c.clone(), conn, lane_rx));
            actix::spawn(feed::run(c.clone(), client, subs_rx));
            if link == 0 {
                actix::spawn(node::run(c.clone()));
            }
            let _ = ready_tx.send(Ok(()));
        });
        waits.push((ready_rx, last_error));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    for ((ready_rx, last_error), url) in waits.into_iter().zip(&cfg.urls) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match ready_rx.recv_timeout(left) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(format!(
                    "cannot reach Redis at {}: {e}",
                    crate::config::redact(url)
                ))
            }
            Err(_) => {
                let last = last_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let why = if last.is_empty() {
                    "timed out".into()
                } else {
                    format!("timed out; {last}")
                };
                return Err(format!(
                    "cannot reach Redis at {}: {why}",
                    crate::config::redact(url)
                ));
            }
        }
    }
    // Two URLs that reach one server (another db number, another host
    // name) would deliver its channels' messages twice: refused.
    let runs: Vec<Arc<str>> = cluster.each_redis().iter().map(|c| c.run_id()).collect();
    if let Some(j) = (1..runs.len()).find(|j| runs[..*j].contains(&runs[*j])) {
        let i = runs.iter().position(|r| *r == runs[j]).unwrap_or(0);
        return Err(format!(
            "SWITCHBOARD_REDIS_URL: {} and {} reach the same Redis server (run id {}); list each server once",
            crate::config::redact(&cfg.urls[i]),
            crate::config::redact(&cfg.urls[j]),
            runs[j]
        ));
    }
    Ok((cluster, arbiter))
}

/// Who is told when the node was taken for dead and came back (a long
/// pause): every membership and every user's status this node holds is
/// registered again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reregister;

static TOLD: Mutex<Vec<Recipient<Reregister>>> = Mutex::new(Vec::new());

/// The Hub (its rooms' memberships) and the Presence actor (its users'
/// statuses) register themselves for [`Reregister`].
pub fn on_reregister(r: Recipient<Reregister>) {
    TOLD.lock().unwrap_or_else(|e| e.into_inner()).push(r);
}

pub(crate) fn reregister() {
    for r in TOLD.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        r.do_send(Reregister);
    }
}

/// With Redis the node holding the MQTT lease ingests (`node.rs` renews
/// and takes it over).
impl crate::mqtt::ingest::Ingestion for Cluster {
    fn ingests(&self) -> bool {
        self.mqtt_leader()
    }

    /// Competes for the lease whenever `ready` says it can.
    fn offer(&self, ready: Box<dyn Fn() -> bool + Send + Sync>) {
        let _ = self.inner.lease_gate.set(ready);
        self.inner.wants_lease.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    /// Rooms spread over every Redis, and the hash is FNV-1a's (pinned below).
    #[test]
    fn rooms_hash_to_a_stable_redis() {
        let names: Vec<String> = (0..300).map(|i| format!("room-{i}")).collect();
        for n in 1..=4 {
            let mut seen = vec![0; n];
            for r in &names {
                seen[super::shard_of(r, n)] += 1;
            }
            assert!(seen.iter().all(|c| *c > 300 / n / 2), "{n}: {seen:?}");
        }
        assert_eq!(super::shard_of("anything", 1), 0);
        // FNV-1a 64 of "lobby" is 0x1ccae3b6ef72f533: the spread must not
        // change between versions, or rooms would move to another Redis.
        assert_eq!(
            super::shard_of("lobby", 7),
            (0x1cca_e3b6_ef72_f533_u64 % 7) as usize
        );
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            crate::config::redact("redis://:secret@h:6379/0"),
            "redis://***@h:6379/0"
        );
        assert_eq!(crate::config::redact("redis://h:1"), "redis://h:1");
    }
}
