//! Embedded storage: SQLite (bundled) in WAL mode, owned by one writer
//! thread that commits whatever is waiting in one transaction per batch.
//!
//! ```text
//!  Room ──Job::Message──┐                       ┌─► ack / storage_error → sender's outbox
//!  Hub ──inbox, users───┼─► writer thread ──────┼─► ToUser / UserLoaded → Hub
//!  Session ──notif.─────┤   (batch: BEGIN …     └─► oneshot replies (API, rooms loading,
//!  Store actor ◄─docs───┘    jobs … COMMIT)          documents)
//! ```
//!
//! Nobody waits on the writer: rooms, the Hub and sessions hand it a [`Job`]
//! through a [`StoreHandle`] (a channel send) and go on. What must follow a
//! commit (a sender's `ack`, a `notification:new`) is sent by the writer once
//! the batch holding it has committed, so an acknowledged message is on disk.
//! Document actors use the typed messages of `docstore.rs`, handled by the
//! [`Store`] actor, which hands them to the same writer.

pub mod db;
mod docs;
mod inbox;
mod state;
pub use state::StateJob;
pub mod lock;
mod notifications;
pub mod reader;
pub mod schema;
pub mod status;
mod webhooks;
mod writer;

pub use db::{Mark, Retention, RoomTail};

use crate::auth::glob;
use crate::config::StorageConfig;
use crate::docstore::{AppendDocOps, DocState, LoadDoc, SaveDocSnapshot};
use crate::error::{ErrorCode, HubError};
use crate::ids::{RoomName, SessionId, UserId};
use crate::outbox::Outbox;
use actix::prelude::*;
use bytes::Bytes;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tokio::sync::oneshot;

/// From storage, to whoever knows the sessions (the Hub): frames for every session of a user (a new notification and
/// the unread count, or the count after some were marked read). Sent in the
/// order the writer committed them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ToUser {
    pub user: UserId,
    pub frames: Vec<Bytes>,
}

/// From storage, after `Connect`: the user's unread count (for the session
/// that connected) and the direct messages stored while they had no session
/// (for all of their sessions, oldest first, once).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UserLoaded {
    pub user: UserId,
    pub session: SessionId,
    /// `None` when storage failed to read it.
    pub unread: Option<u64>,
    /// `(id, direct:receive frame)`, oldest first.
    pub inbox: Vec<(u64, Bytes)>,
    /// Messages dropped by `SWITCHBOARD_OFFLINE_DMS` since the user was last told.
    pub dropped: u64,
}

/// How a room's messages are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomMode {
    /// In memory only (storage off, or `SWITCHBOARD_VOLATILE_ROOMS`).
    Volatile,
    /// Stored; the sender's `ack` follows the fan-out, not the write
    /// (`SWITCHBOARD_FAST_ACK_ROOMS`).
    FastAck,
    /// Stored; the `ack` waits for the commit. The default.
    Durable,
}

/// Which rooms are stored, how, and for how long.
#[derive(Debug, Clone)]
pub struct RoomPolicy {
    durable: bool,
    fast_ack: Vec<String>,
    volatile: Vec<String>,
    default: Retention,
    rules: Vec<(String, Option<u64>, Option<u64>)>,
    /// `SWITCHBOARD_ROOM_RULES`: a rule with `history: 0` makes a room volatile.
    room_rules: Arc<crate::proxy::rules::RoomRules>,
}

impl RoomPolicy {
    pub fn from_config(cfg: &StorageConfig) -> RoomPolicy {
        RoomPolicy {
            durable: cfg.path.is_some(),
            fast_ack: cfg.fast_ack_rooms.clone(),
            volatile: cfg.volatile_rooms.clone(),
            default: Retention {
                count: cfg.retention_count,
                age: cfg.retention_age,
            },
            rules: cfg.retention_rules.clone(),
            room_rules: cfg.room_rules.clone(),
        }
    }

    pub fn mode(&self, room: &str) -> RoomMode {
        if !self.durable
            || self.volatile.iter().any(|p| glob(p, room))
            || self.room_rules.no_history(room)
        {
            RoomMode::Volatile
        } else if self.fast_ack.iter().any(|p| glob(p, room)) {
            RoomMode::FastAck
        } else {
            RoomMode::Durable
        }
    }

    /// The first matching rule, its empty fields filled from the defaults.
    pub fn retention(&self, room: &str) -> Retention {
        match self.rules.iter().find(|(p, _, _)| glob(p, room)) {
            None => self.default,
            Some((_, count, age)) => Retention {
                count: count.unwrap_or(self.default.count),
                age: match age {
                    None => self.default.age,
                    Some(0) => None,
                    Some(ms) => Some(Duration::from_millis(*ms)),
                },
            },
        }
    }

    fn has_age_rules(&self) -> bool {
        self.default.age.is_some() || self.rules.iter().any(|r| r.2.is_some_and(|a| a > 0))
    }
}

/// Who hears about a stored room message.
pub enum Waiter {
    /// A member session: its `ack` (when `ack`, and it gave an `id`) after
    /// the commit, or a `storage_error` frame if the write failed.
    Session {
        outbox: Outbox,
        id: Option<String>,
        ack: bool,
    },
    /// `POST /api/publish`, answered after the commit.
    Api(oneshot::Sender<Result<(), HubError>>),
    /// A message from the MQTT bridge: nobody to answer (the broker's QoS 1
    /// was acknowledged on receipt); a failed write is logged.
    Nobody,
}

/// Everything the writer does; each job is executed inside a batch's
/// transaction and answered after it commits (or fails).
pub enum Job {
    Message {
        room: RoomName,
        epoch: Arc<str>,
        seq: u64,
        /// The room may hand out seqs up to this one: stored with the
        /// message, so the commit that first records a new numbering also
        /// records how far it may have gone (see `Db::reserve`).
        reserved: u64,
        ts: u64,
        frame: Bytes,
        /// Its idempotency key, stored with it.
        idem: Option<crate::idempotency::IdemKey>,
        waiter: Waiter,
    },
    /// A publish whose idempotency key named message `seq`: nothing to
    /// write, but its `ack` (`"duplicate": true`) follows every job sent
    /// before it, so it never comes before the first message's commit.
    Duplicate {
        seq: u64,
        waiter: Waiter,
    },
    LoadRoom {
        room: RoomName,
        limit: usize,
        /// Read back the keys of messages within this window too.
        keys: crate::idempotency::KeyLimits,
        reply: oneshot::Sender<Result<Option<RoomTail>, HubError>>,
    },
    /// A room (numbering `epoch`, last seq `seq`) may hand out seqs up to
    /// `upto` once this has committed; answers the reservation stored.
    Reserve {
        room: RoomName,
        epoch: Arc<str>,
        seq: u64,
        upto: u64,
        reply: oneshot::Sender<Result<u64, HubError>>,
    },
    /// A room that stopped (its history left memory): every seq it handed
    /// out was sent to the writer before this, so its unused reservation
    /// is given back and a reload numbers on without a jump.
    Release {
        room: RoomName,
        epoch: Arc<str>,
    },
    AppendDocOps(AppendDocOps, oneshot::Sender<Result<(), HubError>>),
    SaveDocSnapshot(SaveDocSnapshot, oneshot::Sender<Result<(), HubError>>),
    LoadDoc(String, oneshot::Sender<Result<DocState, HubError>>),
    /// `POST /api/notify`: stored, then pushed through the Hub.
    Notify {
        users: Vec<UserId>,
        /// JSON `{"user","name"}`.
        sender: String,
        data: String,
        ts: u64,
        hub: Recipient<ToUser>,
        reply: oneshot::Sender<Result<Vec<(UserId, u64)>, HubError>>,
    },
    ListNotifications {
        user: UserId,
        before: Option<u64>,
        limit: usize,
        unread_only: bool,
        outbox: Outbox,
        id: Option<String>,
    },
    MarkRead {
        user: UserId,
        mark: Mark,
        outbox: Outbox,
        id: Option<String>,
        hub: Recipient<ToUser>,
    },
    /// A session of `user` connected: its unread count and waiting messages.
    LoadUser {
        user: UserId,
        session: SessionId,
        hub: Recipient<UserLoaded>,
    },
    /// A direct message for a user with no session.
    StoreDirect {
        user: UserId,
        frame: Bytes,
        ts: u64,
        /// The sender, for its `ack` (or `storage_error`).
        outbox: Option<Outbox>,
        id: Option<String>,
    },
    /// Waiting messages up to `upto` were delivered, and `dropped` was told.
    DeleteInbox {
        user: UserId,
        upto: u64,
        dropped: u64,
    },
    /// Shared state: a room's load, or a change.
    State(StateJob),
    /// Ends the writer after every job before it.
    Shutdown,
}

impl Job {
    /// Jobs bounded by `SWITCHBOARD_DB_QUEUE`: the ones clients can pile up.
    fn is_data(&self) -> bool {
        matches!(
            self,
            Job::Message { .. }
                | Job::StoreDirect { .. }
                | Job::Duplicate { .. }
                | Job::State(StateJob::Write { .. })
        )
    }
}

/// The writer's inbox: cloned into every room, the Hub, sessions and routes.
/// Sending never blocks.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Job>,
    /// Data jobs sent and not yet taken by the writer.
    queued: Arc<AtomicUsize>,
    cap: usize,
    pub policy: Arc<RoomPolicy>,
    /// `SWITCHBOARD_OFFLINE_DMS`: 0 refuses direct messages to offline users.
    pub offline_dms: usize,
    /// Health, as the monitor and `/healthz` report it.
    pub status: Arc<status::StoreStatus>,
    /// Scrollback reads on their own connection (`reader.rs`), and how far
    /// the writer has got.
    pub reader: reader::ReaderHandle,
}

/// The writer thread, to join at shutdown.
pub struct StoreThread {
    handle: StoreHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    /// This server's claim on the database file, held until it exits.
    _lock: Option<lock::DbLock>,
}

fn stopped() -> HubError {
    HubError::new(ErrorCode::StorageError, "storage has stopped")
}

/// A reply that arrives after the writer's commit.
pub async fn reply<T>(rx: oneshot::Receiver<Result<T, HubError>>) -> Result<T, HubError> {
    rx.await.unwrap_or_else(|_| Err(stopped()))
}

/// Opens the database (creating and migrating it) and starts the writer.
pub fn start(cfg: &StorageConfig) -> Result<StoreThread, String> {
    let opts = db::Options {
        sync: cfg.sync.clone(),
        busy: cfg.busy,
        max_bytes: cfg.max_bytes,
    };
    let lock = cfg.path.as_deref().map(lock::acquire).transpose()?;
    let db = db::Db::open(cfg.path.as_deref(), &opts)?;
    match &cfg.path {
        Some(p) => log::info!("storage: {} (WAL, synchronous={})", p.display(), cfg.sync),
        None => log::info!("storage: off (in memory; nothing survives a restart)"),
    }
    let (tx, rx) = mpsc::channel();
    let progress = Arc::new(reader::Progress::default());
    let reader = reader::ReaderHandle::start(cfg.path.as_deref(), cfg.busy, progress.clone());
    let queued = Arc::new(AtomicUsize::new(0));
    let status = Arc::new(status::StoreStatus::new(
        cfg.path.as_ref().map(|p| p.display().to_string()),
        queued.clone(),
    ));
    let handle = StoreHandle {
        tx,
        queued,
        status,
        cap: cfg.queue,
        policy: Arc::new(RoomPolicy::from_config(cfg)),
        offline_dms: cfg.offline_dms,
        reader,
    };
    let w = writer::Writer {
        db,
        rx,
        queued: handle.queued.clone(),
        status: handle.status.clone(),
        batch: cfg.batch,
        policy: handle.policy.clone(),
        notifications_per_user: cfg.notifications_per_user,
        offline_dms: cfg.offline_dms,
        progress,
    };
    let thread = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || w.run())
        .map_err(|e| format!("cannot start the storage thread: {e}"))?;
    Ok(StoreThread {
        handle,
        thread: Some(thread),
        _lock: lock,
    })
}

impl StoreThread {
    pub fn handle(&self) -> StoreHandle {
        self.handle.clone()
    }

    /// Lets the writer finish what was sent before, then waits for it
    /// (bounded). The caller guarantees that no room hands out a seq any
    /// more (their threads have stopped): the writer then gives back the
    /// unused seq reservations, and the next start numbers on without a jump.
    pub fn stop(mut self, wait: Duration) {
        self.handle.send(Job::Shutdown);
        let Some(t) = self.thread.take() else { return };
        if !join_within(t, wait) {
            log::warn!("storage: the writer did not finish within {wait:?}");
        }
    }
}

/// Joins a thread of the embedded database (the writer, the webhook
/// sender) if it finishes within `wait`; `false` if it did not (it is left).
pub fn join_within(t: std::thread::JoinHandle<()>, wait: Duration) -> bool {
    let deadline = std::time::Instant::now() + wait;
    while !t.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if !t.is_finished() {
        return false;
    }
    // A panic in it was logged by the panic hook already.
    let _ = t.join();
    true
}

impl StoreHandle {
    /// Sends a job the writer must get (loads, control, documents).
    pub fn send(&self, job: Job) {
        if job.is_data() {
            self.queued.fetch_add(1, Ordering::AcqRel);
        }
        self.reader.progress.sending();
        if self.tx.send(job).is_err() {
            log::error!("storage: the writer has stopped; a job was dropped");
        }
    }

    /// Sends a client-generated write unless `SWITCHBOARD_DB_QUEUE` of them
    /// are already waiting; `Err` gives it back so the caller can refuse it.
    pub fn offer(&self, job: Job) -> Result<(), Box<Job>> {
        if !self.reserve() {
            return Err(Box::new(job));
        }
        self.send_reserved(job);
        Ok(())
    }

    /// Takes a slot for a client-generated write unless `SWITCHBOARD_DB_QUEUE`
    /// are already waiting; `send_reserved` must then follow.
    pub fn reserve(&self) -> bool {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.cap {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            crate::metrics::METRICS
                .storage_busy
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Sends a data job whose slot `reserve` took.
    pub fn send_reserved(&self, job: Job) {
        debug_assert!(job.is_data());
        self.reader.progress.sending();
        if self.tx.send(job).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            log::error!("storage: the writer has stopped; a job was dropped");
        }
    }

    /// How many seqs a stored room reserves at a time. The next block is
    /// asked for when half is left, and the writer is never more than
    /// `SWITCHBOARD_DB_QUEUE` messages behind, so a reservation always
    /// commits before the room runs out and the fan-out never waits on it.
    pub fn seq_block(&self) -> u64 {
        (2 * self.cap as u64 + 1024).max(4096)
    }

    /// Reserves `room`'s seqs up to `upto` (see `Job::Reserve`).
    pub fn reserve_seqs(
        &self,
        room: RoomName,
        epoch: Arc<str>,
        seq: u64,
        upto: u64,
    ) -> impl Future<Output = Result<u64, HubError>> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Reserve {
            room,
            epoch,
            seq,
            upto,
            reply: tx,
        });
        reply(rx)
    }

    /// The stored tail of `room` (up to `limit` messages) and its
    /// idempotency keys within `keys`.
    pub fn load_room(
        &self,
        room: RoomName,
        limit: usize,
        keys: crate::idempotency::KeyLimits,
    ) -> impl Future<Output = Result<Option<RoomTail>, HubError>> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::LoadRoom {
            room,
            limit,
            keys,
            reply: tx,
        });
        reply(rx)
    }
}

/// The actor Document actors talk to (`docstore.rs`); it forwards to the writer.
pub struct Store {
    handle: StoreHandle,
}

impl Store {
    pub fn new(handle: StoreHandle) -> Store {
        Store { handle }
    }
}

impl Actor for Store {
    type Context = Context<Self>;
}

impl Handler<AppendDocOps> for Store {
    type Result = ResponseFuture<Result<(), HubError>>;

    fn handle(&mut self, msg: AppendDocOps, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.handle.send(Job::AppendDocOps(msg, tx));
        Box::pin(reply(rx))
    }
}

impl Handler<SaveDocSnapshot> for Store {
    type Result = ResponseFuture<Result<(), HubError>>;

    fn handle(&mut self, msg: SaveDocSnapshot, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.handle.send(Job::SaveDocSnapshot(msg, tx));
        Box::pin(reply(rx))
    }
}

impl Handler<LoadDoc> for Store {
    type Result = ResponseFuture<Result<DocState, HubError>>;

    fn handle(&mut self, msg: LoadDoc, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.handle.send(Job::LoadDoc(msg.doc, tx));
        Box::pin(reply(rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docstore::DocOpRecord;

    fn cfg(path: Option<std::path::PathBuf>) -> StorageConfig {
        let mut c = StorageConfig::from_env().unwrap();
        c.path = path;
        c
    }

    #[test]
    fn room_modes_and_retention_rules() {
        let mut c = cfg(Some("x.db".into()));
        c.fast_ack_rooms = vec!["fast-*".into()];
        c.volatile_rooms = vec!["tmp-*".into()];
        c.retention_rules = vec![
            ("logs-*".into(), Some(5), None),
            ("old-*".into(), None, Some(60_000)),
            ("all-*".into(), Some(0), Some(0)),
        ];
        c.retention_age = Some(Duration::from_secs(3600));
        let p = RoomPolicy::from_config(&c);
        assert_eq!(p.mode("general"), RoomMode::Durable);
        assert_eq!(p.mode("fast-1"), RoomMode::FastAck);
        assert_eq!(p.mode("tmp-1"), RoomMode::Volatile);
        let hour = Some(Duration::from_secs(3600));
        assert_eq!(
            p.retention("general"),
            Retention {
                count: 10_000,
                age: hour
            }
        );
        assert_eq!(
            p.retention("logs-a"),
            Retention {
                count: 5,
                age: hour
            }
        );
        assert_eq!(
            p.retention("old-a"),
            Retention {
                count: 10_000,
                age: Some(Duration::from_secs(60))
            }
        );
        assert_eq!(
            p.retention("all-a"),
            Retention {
                count: 0,
                age: None
            }
        );
        let off = RoomPolicy::from_config(&cfg(None));
        assert_eq!(off.mode("general"), RoomMode::Volatile);
    }

    fn op(rev: u64) -> DocOpRecord {
        DocOpRecord {
            rev,
            cid: "c".into(),
            seq: rev,
            user: "u".into(),
            op: "[1]".into(),
            ts: 0,
        }
    }

    /// The docstore contract through the actor and the writer thread, on a
    /// file, reopened.
    #[test]
    fn the_store_actor_keeps_documents_across_a_reopen() {
        let path = std::env::temp_dir().join(format!(
            "switchboard-unit-actor-{}-{}.db",
            std::process::id(),
            crate::ids::random_hex(4)
        ));
        let c = cfg(Some(path.clone()));
        actix::System::new().block_on(async {
            let t = start(&c).unwrap();
            let store = Store::new(t.handle()).start();
            let append = |ops| {
                store.send(AppendDocOps {
                    doc: "d".into(),
                    ops,
                })
            };
            append(vec![op(1), op(2), op(3)]).await.unwrap().unwrap();
            let gap = append(vec![op(5)]).await.unwrap();
            assert_eq!(gap.unwrap_err().code, ErrorCode::Internal);
            store
                .send(SaveDocSnapshot {
                    doc: "d".into(),
                    rev: 3,
                    text: "abc".into(),
                    keep_ops: 1,
                })
                .await
                .unwrap()
                .unwrap();
            append(vec![op(4)]).await.unwrap().unwrap();
            t.stop(Duration::from_secs(5));
        });
        actix::System::new().block_on(async {
            let t = start(&c).unwrap();
            let store = Store::new(t.handle()).start();
            let s = store
                .send(LoadDoc { doc: "d".into() })
                .await
                .unwrap()
                .unwrap();
            assert_eq!((s.snapshot_rev, s.snapshot_text.as_str()), (3, "abc"));
            assert_eq!((s.ops, s.older_ops), (vec![op(4)], vec![op(3)]));
            t.stop(Duration::from_secs(5));
        });
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
