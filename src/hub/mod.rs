//! The Hub actor: the control plane. It knows every session,
//! which user each belongs to, and which rooms exist; it creates rooms (spread
//! over the room arbiters), forwards joins and leaves, routes direct messages
//! and broadcasts, and keeps the histories of member-less rooms in an LRU.
//! Room messages never pass through it.

use crate::error::{close, ErrorCode, HubError};
use crate::history::{History, HistoryLimits};
use crate::ids::{now_ms, RoomName, SessionId, UserId};
use crate::metrics::METRICS;
use crate::outbox::Outbox;
use crate::presence::{self, Presence};
use crate::protocol::{encode, error_frame, From, MemberInfo, ServerFrame};
use crate::room::{self, HistoryView, Member, Origin, Room, RoomFailed, RoomIdle};
use crate::store::{Job, StoreHandle};
use actix::prelude::*;
use bytes::Bytes;
use lru::LruCache;
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

struct SessionEntry {
    from: From,
    outbox: Outbox,
    addr: Recipient<Order>,
    rooms: HashSet<RoomName>,
}

struct RoomEntry {
    addr: Addr<Room>,
    /// Joins and API publishes forwarded (compared with the room's own count).
    hub_ops: u64,
    /// Sessions the Hub has joined to it and not yet seen leave.
    sessions: usize,
}

pub struct Hub {
    presence: Addr<Presence>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    history: HistoryLimits,
    /// `SWITCHBOARD_ROOM_RULES`: a room's history size and presence.
    room_rules: std::sync::Arc<crate::proxy::rules::RoomRules>,
    typing_ttl: Duration,
    sessions: HashMap<SessionId, SessionEntry>,
    users: HashMap<UserId, Vec<SessionId>>,
    rooms: HashMap<RoomName, RoomEntry>,
    idle: LruCache<RoomName, History>,
    /// Bytes held by `idle`, kept under `idle_budget` by evicting the least recently used.
    idle_bytes: usize,
    idle_budget: usize,
    room_queue: usize,
    /// Open documents (collaborative editing); `None`: documents are off.
    docs: Option<crate::document::Directory>,
    /// Embedded storage: room persistence, notifications, offline messages.
    store: Option<StoreHandle>,
    /// Users whose stored direct messages are being loaded (see `UserLoaded`).
    inboxes: HashMap<UserId, InboxLoad>,
    /// Subscriptions to the channels of users with a session here, and
    /// whether Redis has confirmed each.
    user_subs: HashMap<UserId, (u64, tokio::sync::watch::Receiver<bool>)>,
    me: Option<Addr<Hub>>,
    /// How frames reach users' sessions (`directory.rs`): this node's
    /// lists, or users' channels in Redis.
    directory: std::rc::Rc<dyn directory::Directory>,
    /// What keeps rooms with no actor here (`rooms.rs`): the idle LRU and
    /// the embedded database, or Redis.
    keeper: std::rc::Rc<dyn rooms::Keeper>,
    /// Whether this node numbers broker messages into mapped rooms.
    ingestion: std::sync::Arc<dyn crate::mqtt::ingest::Ingestion>,
    /// Bounds of every room's shared state.
    state_limits: crate::state::StateLimits,
    stream_limits: crate::streams::StreamLimits,
}

/// A user's stored direct messages on their way to the user's sessions.
/// Messages sent meanwhile wait here, so they arrive after the stored ones.
#[derive(Default)]
struct InboxLoad {
    /// Loads in flight (one per session connected meanwhile).
    loading: u32,
    /// Highest stored message already delivered: a second load skips it.
    delivered: u64,
    /// The dropped count was told (a second load reads the same count).
    told: bool,
    waiting: Vec<Bytes>,
}

/// Guests' ids are never issued again, so nothing is kept for them.
fn is_guest(user: &UserId) -> bool {
    user.is_guest()
}

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(usize::MAX >> 4);
        self.me = Some(ctx.address());
        let directory = self.directory.clone();
        directory.start(self, ctx);
    }
}

impl Hub {
    /// The small limits unit tests run rooms and hubs with.
    #[cfg(test)]
    pub fn test_limits() -> HistoryLimits {
        HistoryLimits {
            entries: 10,
            bytes: 1 << 20,
            keys: Default::default(),
        }
    }

    /// A hub for unit tests (no arbiters, [`Hub::test_limits`]).
    #[cfg(test)]
    pub fn for_tests(presence: Addr<Presence>) -> Addr<Hub> {
        let t = Duration::from_secs(5);
        Hub::new(presence, vec![], Hub::test_limits(), 10, 1 << 20, t, 16).start()
    }

    pub fn new(
        presence: Addr<Presence>,
        arbiters: Vec<ArbiterHandle>,
        history: HistoryLimits,
        idle_room_cache: usize,
        idle_budget: usize,
        typing_ttl: Duration,
        room_queue: usize,
    ) -> Hub {
        Hub {
            presence,
            arbiters,
            next_arbiter: 0,
            history,
            typing_ttl,
            sessions: HashMap::new(),
            users: HashMap::new(),
            rooms: HashMap::new(),
            idle: LruCache::new(
                NonZeroUsize::new(idle_room_cache.max(1)).unwrap_or(NonZeroUsize::MIN),
            ),
            idle_bytes: 0,
            idle_budget,
            room_queue,
            docs: None,
            store: None,
            inboxes: HashMap::new(),
            user_subs: HashMap::new(),
            me: None,
            directory: std::rc::Rc::new(directory::Local),
            keeper: std::rc::Rc::new(rooms::Local),
            ingestion: std::sync::Arc::new(crate::mqtt::ingest::Local),
            state_limits: Default::default(),
            stream_limits: Default::default(),
            room_rules: Default::default(),
        }
    }

    /// Sets the bounds of rooms' streams.
    pub fn with_stream_limits(mut self, limits: crate::streams::StreamLimits) -> Hub {
        self.stream_limits = limits;
        self
    }

    /// Sets the room-pattern rules (history and presence per room).
    pub fn with_room_rules(mut self, rules: std::sync::Arc<crate::proxy::rules::RoomRules>) -> Hub {
        self.room_rules = rules;
        self
    }

    /// Sets the bounds of rooms' shared state.
    pub fn with_state_limits(mut self, limits: crate::state::StateLimits) -> Hub {
        self.state_limits = limits;
        self
    }

    /// Uses embedded storage for rooms, notifications and offline messages.
    pub fn with_store(mut self, store: StoreHandle) -> Hub {
        self.store = Some(store);
        self
    }

    /// Queues `frame` to every session here; how many got it.
    pub(super) fn deliver_all(&self, frame: &Bytes) -> usize {
        let n = self
            .sessions
            .values()
            .filter(|s| s.outbox.push(frame.clone()))
            .count();
        METRICS.deliveries.fetch_add(n as u64, Relaxed);
        n
    }

    /// Queues `frame` to every session of `user`; how many got it.
    fn push_user(&self, user: &UserId, frame: &Bytes) -> u64 {
        let mut n = 0;
        for s in self.users.get(user).into_iter().flatten() {
            if let Some(t) = self.sessions.get(s) {
                n += t.outbox.push(frame.clone()) as u64;
            }
        }
        METRICS.deliveries.fetch_add(n, Relaxed);
        n
    }

    /// Enables documents, kept by the directory's store.
    pub fn with_docs(mut self, docs: crate::document::Directory) -> Hub {
        self.docs = Some(docs);
        self
    }

    /// Keeps a freed room's history, evicting the least recently used
    /// histories while over the room-count or byte budget.
    fn keep_idle(&mut self, room: RoomName, history: History) {
        self.idle_bytes += history.bytes();
        if let Some((name, old)) = self.idle.push(room.clone(), history) {
            self.idle_bytes -= old.bytes();
            // The same room's older history is replaced, not forgotten.
            if name != room {
                self.forget(name, old);
            }
        }
        while self.idle_bytes > self.idle_budget {
            match self.idle.pop_lru() {
                Some((name, old)) => {
                    self.idle_bytes -= old.bytes();
                    self.forget(name, old);
                }
                None => break,
            }
        }
    }

    /// A history leaves memory for good: its room's unused seq reservation
    /// is given back (the next start of the room reads it from storage).
    fn forget(&self, room: RoomName, history: History) {
        if let (Some(store), true) = (&self.store, history.reserved > history.seq) {
            store.send(crate::store::Job::Release {
                room,
                epoch: history.epoch,
            });
        }
    }

    fn take_idle(&mut self, room: &RoomName) -> Option<History> {
        let h = self.idle.pop(room)?;
        self.idle_bytes -= h.bytes();
        Some(h)
    }

    /// The room's entry, starting its actor (with any kept history) if needed.
    fn room(&mut self, name: &RoomName, ctx: &mut Context<Self>) -> &mut RoomEntry {
        if !self.rooms.contains_key(name) {
            // With Redis, the room is read from there (nothing is kept idle).
            let history = self.take_idle(name);
            let (hub, ttl, room_name) = (
                room::Owner::of(ctx.address()),
                self.typing_ttl,
                name.clone(),
            );
            let queue = self.room_queue;
            // Not in the LRU: its history, if any, is in storage.
            let load = history.is_none();
            let history = history.unwrap_or_else(|| {
                let mut limits = self.history;
                limits.entries = self.room_rules.history(name.as_str(), limits.entries);
                History::new(limits)
            });
            let store = self.store.clone();
            let presence = self.room_rules.presence(name.as_str());
            let room = Room::new(room_name, hub, history, ttl)
                .with_presence(presence)
                .with_queue(queue)
                .with_store(store, load)
                .with_state_limits(self.state_limits)
                .with_stream_limits(self.stream_limits);
            let room = self.keeper.room(room);
            let arbiter = if self.arbiters.is_empty() {
                None
            } else {
                self.next_arbiter = (self.next_arbiter + 1) % self.arbiters.len();
                Some(&self.arbiters[self.next_arbiter])
            };
            let addr = crate::mailbox::start_bounded(room, queue, arbiter);
            METRICS.rooms.fetch_add(1, Relaxed);
            log::debug!("room {name} started");
            self.rooms.insert(
                name.clone(),
                RoomEntry {
                    addr,
                    hub_ops: 0,
                    sessions: 0,
                },
            );
        }
        self.rooms.get_mut(name).expect("inserted above")
    }
}

/// What the Hub tells a session to do: close (shutdown, the server API),
/// join or leave a room because the application's backend said so, or
/// take a tool call or its answer.
#[derive(Message)]
#[rtype(result = "()")]
pub enum Order {
    Close {
        code: u16,
        reason: String,
    },
    /// Join without the token's room rules; the client gets an unsolicited
    /// `room:joined` (no `id`).
    Join(RoomName),
    /// Leave; the client gets `room:left` (no `id`).
    Leave(RoomName),
    /// A tool call for the session (`rpc:*`).
    Call(crate::rpc::Incoming),
    /// The answer to a call the session made.
    Answer(crate::rpc::Answered),
}

/// A session is authenticated and ready.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    pub session: SessionId,
    pub from: From,
    pub outbox: Outbox,
    /// Where the Hub's orders for the session go.
    pub addr: Recipient<Order>,
    /// The client's address, for the monitor.
    pub client: std::net::IpAddr,
    pub guest: bool,
}

impl Handler<Connect> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Connect, ctx: &mut Context<Self>) {
        crate::monitor::events::record(crate::monitor::events::Event {
            session: Some(msg.session.to_string()),
            user: Some(msg.from.user.as_str()),
            addr: Some(msg.client),
            ..crate::monitor::events::Event::new("connect", "session opened")
        });
        self.users
            .entry(msg.from.user.clone())
            .or_default()
            .push(msg.session);
        // The user's unread count and stored direct messages follow.
        let directory = self.directory.clone();
        directory.connected(self, &msg.from.user, msg.session, msg.guest, ctx);
        self.presence.do_send(presence::Opened {
            user: msg.from.user.clone(),
            name: msg.from.name.clone(),
        });
        self.sessions.insert(
            msg.session,
            SessionEntry {
                from: msg.from,
                outbox: msg.outbox,
                addr: msg.addr,
                rooms: HashSet::new(),
            },
        );
    }
}

/// A session ended: leave its rooms, update presence.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub session: SessionId,
}

impl Handler<Disconnect> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
        let Some(entry) = self.sessions.remove(&msg.session) else {
            return;
        };
        crate::monitor::events::record(crate::monitor::events::Event {
            session: Some(msg.session.to_string()),
            user: Some(entry.from.user.as_str()),
            ..crate::monitor::events::Event::new("disconnect", "session closed")
        });
        for name in &entry.rooms {
            if let Some(r) = self.rooms.get_mut(name) {
                r.sessions = r.sessions.saturating_sub(1);
                r.addr.do_send(room::Leave {
                    session: msg.session,
                    id: None,
                    notify: false,
                });
            }
        }
        let user = entry.from.user;
        if let Some(list) = self.users.get_mut(&user) {
            list.retain(|s| *s != msg.session);
            if list.is_empty() {
                self.users.remove(&user);
                let directory = self.directory.clone();
                directory.gone(self, &user);
            }
        }
        self.presence.do_send(presence::Closed {
            user,
            rooms: entry.rooms.into_iter().collect(),
        });
    }
}

/// Join a room (access was checked by the session). Answers the room's address.
#[derive(Message)]
#[rtype(result = "Result<Addr<Room>, HubError>")]
pub struct Join {
    pub session: SessionId,
    pub room: RoomName,
    pub since: Option<u64>,
    pub epoch: Option<String>,
    pub id: Option<String>,
    /// `room:join` with `state: true`.
    pub state: bool,
    /// The subscribe hook's `info` for the member list.
    pub info: Option<std::sync::Arc<serde_json::value::RawValue>>,
}

impl Handler<Join> for Hub {
    type Result = ResponseFuture<Result<Addr<Room>, HubError>>;

    /// Answers once the room has handled the join (its `room:joined` is
    /// queued): the session reads its next frame only then, so frames keep
    /// the order of the joins even when a room must first be read (from
    /// Redis, with several nodes).
    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) -> Self::Result {
        let Some(entry) = self.sessions.get(&msg.session) else {
            return Box::pin(std::future::ready(Err(HubError::new(
                ErrorCode::Internal,
                "session is not registered",
            ))));
        };
        let member = Member {
            session: msg.session,
            user: entry.from.user.clone(),
            name: entry.from.name.clone(),
            outbox: entry.outbox.clone(),
            info: msg.info,
        };
        let user = member.user.clone();
        let newly = !entry.rooms.contains(&msg.room);
        let r = self.room(&msg.room, ctx);
        r.hub_ops += 1;
        if newly {
            r.sessions += 1;
        }
        let addr = r.addr.clone();
        let joined = addr.send(room::Join {
            member,
            since: msg.since,
            epoch: msg.epoch,
            id: msg.id,
            state: msg.state,
        });
        if newly {
            if let Some(e) = self.sessions.get_mut(&msg.session) {
                e.rooms.insert(msg.room.clone());
            }
            self.presence.do_send(presence::JoinedRoom {
                user,
                room: msg.room,
                addr: addr.clone().recipient(),
            });
        }
        Box::pin(async move {
            match joined.await {
                Ok(()) => Ok(addr),
                // The room gave up reading itself (RoomFailed).
                Err(_) => Err(HubError::new(
                    ErrorCode::Unavailable,
                    "the room could not be read; retry shortly",
                )),
            }
        })
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub session: SessionId,
    pub room: RoomName,
    pub id: Option<String>,
}

impl Handler<Leave> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        let Some(entry) = self.sessions.get_mut(&msg.session) else {
            return;
        };
        if !entry.rooms.remove(&msg.room) {
            return;
        }
        if let Some(r) = self.rooms.get_mut(&msg.room) {
            r.sessions = r.sessions.saturating_sub(1);
            r.addr.do_send(room::Leave {
                session: msg.session,
                id: msg.id,
                notify: true,
            });
        }
        self.presence.do_send(presence::LeftRoom {
            user: entry.from.user.clone(),
            room: msg.room,
        });
    }
}

impl Handler<RoomIdle> for Hub {
    type Result = ();
    fn handle(&mut self, msg: RoomIdle, _: &mut Context<Self>) {
        let free = matches!(self.rooms.get(&msg.room), Some(r) if r.addr == msg.addr && r.hub_ops == msg.hub_ops && r.sessions == 0);
        if !free {
            return;
        }
        if let Some(r) = self.rooms.remove(&msg.room) {
            r.addr.do_send(room::Stop);
            METRICS.rooms.fetch_sub(1, Relaxed);
            log::debug!("room {} freed (seq {})", msg.room, msg.history.seq);
            let k = self.keeper.clone();
            k.freed(self, msg.room, msg.history);
        }
    }
}

impl Handler<RoomFailed> for Hub {
    type Result = ();

    fn handle(&mut self, msg: RoomFailed, _: &mut Context<Self>) {
        if !matches!(self.rooms.get(&msg.room), Some(r) if r.addr == msg.addr) {
            return;
        }
        self.rooms.remove(&msg.room);
        METRICS.rooms.fetch_sub(1, Relaxed);
        for s in self.sessions.values_mut() {
            s.rooms.remove(&msg.room);
        }
    }
}

/// SIGTERM: close every session with 1001. Answers how many were told.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Shutdown;

impl Handler<Shutdown> for Hub {
    type Result = usize;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> usize {
        for s in self.sessions.values() {
            s.addr.do_send(Order::Close {
                code: close::GOING_AWAY,
                reason: "server shutting down".into(),
            });
        }
        self.sessions.len()
    }
}

mod api;
mod cluster;
mod direct;
mod directory;
mod docs;
mod rooms;
mod rpc;
mod signal;
mod users;
pub use api::*;
pub use direct::*;
pub use docs::*;
pub use rpc::{RpcAnswer, RpcCall};
pub use signal::Signal;
pub use users::*;
