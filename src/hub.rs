//! The Hub actor: the directory and control plane. It knows every session,
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
use crate::room::{self, HistoryView, Member, Origin, Room};
use crate::session::{Close, Session};
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
    addr: Addr<Session>,
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
    user.as_str().starts_with("guest-")
}

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(usize::MAX >> 4);
    }
}

impl Hub {
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
        }
    }

    /// Uses embedded storage for rooms, notifications and offline messages.
    pub fn with_store(mut self, store: StoreHandle) -> Hub {
        self.store = Some(store);
        self
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
        if let Some((_, old)) = self.idle.push(room, history) {
            self.idle_bytes -= old.bytes();
        }
        while self.idle_bytes > self.idle_budget {
            match self.idle.pop_lru() {
                Some((_, old)) => self.idle_bytes -= old.bytes(),
                None => break,
            }
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
            let history = self.take_idle(name);
            let (hub, ttl, room_name) = (ctx.address(), self.typing_ttl, name.clone());
            let queue = self.room_queue;
            // Not in the LRU: its history, if any, is in storage.
            let load = history.is_none();
            let history = history.unwrap_or_else(|| History::new(self.history));
            let store = self.store.clone();
            let make = move |_: &mut Context<Room>| {
                Room::new(room_name, hub, history, ttl)
                    .with_queue(queue)
                    .with_store(store, load)
            };
            let addr = if self.arbiters.is_empty() {
                Room::create(make)
            } else {
                self.next_arbiter = (self.next_arbiter + 1) % self.arbiters.len();
                Room::start_in_arbiter(&self.arbiters[self.next_arbiter], make)
            };
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

/// A session is authenticated and ready.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    pub session: SessionId,
    pub from: From,
    pub outbox: Outbox,
    pub addr: Addr<Session>,
    pub guest: bool,
}

impl Handler<Connect> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Connect, ctx: &mut Context<Self>) {
        crate::monitor::events::record(crate::monitor::events::Event {
            session: Some(msg.session.to_string()),
            user: Some(msg.from.user.as_str()),
            ..crate::monitor::events::Event::new("connect", "session opened")
        });
        if let (Some(store), false) = (&self.store, msg.guest) {
            // Its unread count and stored messages come back as `UserLoaded`.
            self.inboxes
                .entry(msg.from.user.clone())
                .or_default()
                .loading += 1;
            store.send(Job::LoadUser {
                user: msg.from.user.clone(),
                session: msg.session,
                hub: ctx.address(),
            });
        }
        self.users
            .entry(msg.from.user.clone())
            .or_default()
            .push(msg.session);
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
}

impl Handler<Join> for Hub {
    type Result = Result<Addr<Room>, HubError>;

    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) -> Self::Result {
        let Some(entry) = self.sessions.get(&msg.session) else {
            return Err(HubError::new(
                ErrorCode::Internal,
                "session is not registered",
            ));
        };
        let member = Member {
            session: msg.session,
            user: entry.from.user.clone(),
            name: entry.from.name.clone(),
            outbox: entry.outbox.clone(),
        };
        let user = member.user.clone();
        let newly = !entry.rooms.contains(&msg.room);
        let r = self.room(&msg.room, ctx);
        r.hub_ops += 1;
        if newly {
            r.sessions += 1;
        }
        let addr = r.addr.clone();
        addr.do_send(room::Join {
            member,
            since: msg.since,
            epoch: msg.epoch,
            id: msg.id,
        });
        if newly {
            if let Some(e) = self.sessions.get_mut(&msg.session) {
                e.rooms.insert(msg.room.clone());
            }
            self.presence.do_send(presence::JoinedRoom {
                user,
                room: msg.room,
                addr: addr.clone(),
            });
        }
        Ok(addr)
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

/// A direct message to every session of a user.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Direct {
    pub session: SessionId,
    pub to: UserId,
    pub data: Box<RawValue>,
    pub id: Option<String>,
}

impl Handler<Direct> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Direct, _: &mut Context<Self>) {
        let Some(sender) = self.sessions.get(&msg.session) else {
            return;
        };
        let ts = now_ms();
        let frame = encode(&ServerFrame::Direct {
            from: &sender.from,
            data: &msg.data,
            ts,
            id: msg.id.as_deref(),
        });
        if !self.users.contains_key(&msg.to) {
            let store = self
                .store
                .as_ref()
                .filter(|s| s.offline_dms > 0 && !is_guest(&msg.to));
            let Some(store) = store else {
                sender.outbox.push(error_frame(
                    ErrorCode::UserOffline,
                    &format!("user {} has no open session", msg.to),
                    msg.id.as_deref(),
                    None,
                ));
                return;
            };
            // Stored for the user's next connection; the ack follows the write.
            let job = Job::StoreDirect {
                user: msg.to,
                frame,
                ts,
                outbox: Some(sender.outbox.clone()),
                id: msg.id.clone(),
            };
            match store.offer(job) {
                Ok(()) => METRICS.direct_messages.fetch_add(1, Relaxed),
                Err(_) => {
                    sender.outbox.push(error_frame(
                        ErrorCode::RateLimited,
                        "storage is busy; retry shortly",
                        msg.id.as_deref(),
                        Some(50),
                    ));
                    return;
                }
            };
            return;
        }
        match self.inboxes.get_mut(&msg.to) {
            // Behind the stored messages being loaded for this user.
            Some(load) => load.waiting.push(frame),
            None => {
                self.push_user(&msg.to, &frame);
            }
        }
        METRICS.direct_messages.fetch_add(1, Relaxed);
        if let Some(id) = &msg.id {
            sender
                .outbox
                .push(encode(&ServerFrame::Ack { id, seq: None }));
        }
    }
}

/// `POST /api/publish`: a message to a room from a service or admin.
#[derive(Message)]
#[rtype(result = "Result<u64, HubError>")]
pub struct ApiPublish {
    pub room: RoomName,
    pub from: From,
    pub data: Box<RawValue>,
    pub id: Option<String>,
}

impl Handler<ApiPublish> for Hub {
    type Result = ResponseFuture<Result<u64, HubError>>;

    fn handle(&mut self, msg: ApiPublish, ctx: &mut Context<Self>) -> Self::Result {
        crate::monitor::flow::record(
            crate::monitor::flow::FlowKind::Room,
            msg.room.as_str(),
            msg.data.get().len(),
            crate::monitor::flow::SenderKind::Service,
        );
        let r = self.room(&msg.room, ctx);
        r.hub_ops += 1;
        let fut = r.addr.send(room::Publish {
            from: msg.from,
            data: msg.data,
            id: msg.id,
            origin: Origin::Api,
            received: Instant::now(),
        });
        Box::pin(async move {
            fut.await
                .map_err(|_| HubError::new(ErrorCode::Internal, "room unavailable"))?
        })
    }
}

/// A message from the MQTT broker for a mapped room; the room is started
/// (with its kept history) if needed, like for a REST publish.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MqttToRoom {
    pub room: RoomName,
    pub msg: std::sync::Arc<crate::mqtt::message::MqttMessage>,
}

impl Handler<MqttToRoom> for Hub {
    type Result = ();

    fn handle(&mut self, msg: MqttToRoom, ctx: &mut Context<Self>) {
        let r = self.room(&msg.room, ctx);
        r.hub_ops += 1;
        r.addr.do_send(room::MqttRelay { msg: msg.msg });
    }
}

/// `POST /api/broadcast`: a frame to every session. Answers how many got it.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Broadcast {
    pub from: From,
    pub data: Box<RawValue>,
}

impl Handler<Broadcast> for Hub {
    type Result = usize;

    fn handle(&mut self, msg: Broadcast, _: &mut Context<Self>) -> usize {
        let frame = encode(&ServerFrame::Broadcast {
            from: &msg.from,
            data: &msg.data,
            ts: now_ms(),
        });
        let n = self
            .sessions
            .values()
            .filter(|s| s.outbox.push(frame.clone()))
            .count();
        METRICS.deliveries.fetch_add(n as u64, Relaxed);
        n
    }
}

/// From a room that has no members: free it if nothing is in flight to it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomIdle {
    /// Which actor reports: a stale report from a stopped actor must not free
    /// a newer actor of the same name.
    pub addr: Addr<Room>,
    pub room: RoomName,
    pub hub_ops: u64,
    pub history: History,
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
            if !msg.history.is_empty() {
                self.keep_idle(msg.room, msg.history);
            }
        }
    }
}

/// One active room, for `GET /api/rooms`.
pub struct RoomSummary {
    pub room: RoomName,
    pub sessions: usize,
}

#[derive(Message)]
#[rtype(result = "Vec<RoomSummary>")]
pub struct ListRooms;

impl Handler<ListRooms> for Hub {
    type Result = MessageResult<ListRooms>;

    fn handle(&mut self, _: ListRooms, _: &mut Context<Self>) -> Self::Result {
        let mut v: Vec<RoomSummary> = self
            .rooms
            .iter()
            .map(|(n, r)| RoomSummary {
                room: n.clone(),
                sessions: r.sessions,
            })
            .collect();
        v.sort_by(|a, b| a.room.cmp(&b.room));
        MessageResult(v)
    }
}

/// Kept history of a room, active or idle. `None` if the room has none.
#[derive(Message)]
#[rtype(result = "Option<HistoryView>")]
pub struct GetHistory {
    pub room: RoomName,
    pub since: u64,
    pub limit: usize,
}

impl Handler<GetHistory> for Hub {
    type Result = ResponseFuture<Option<HistoryView>>;

    fn handle(&mut self, msg: GetHistory, _: &mut Context<Self>) -> Self::Result {
        if let Some(r) = self.rooms.get(&msg.room) {
            let fut = r.addr.send(room::GetHistory {
                since: msg.since,
                limit: msg.limit,
            });
            return Box::pin(async move { fut.await.ok() });
        }
        if let Some(h) = self.idle.peek(&msg.room) {
            let view = HistoryView::of(h, msg.since, msg.limit);
            return Box::pin(async move { Some(view) });
        }
        // Neither active nor idle: what storage has of it, if it is stored.
        let stored = self
            .store
            .as_ref()
            .filter(|s| s.policy.mode(msg.room.as_str()) != crate::store::RoomMode::Volatile);
        let Some(store) = stored else {
            return Box::pin(async { None });
        };
        let limits = self.history;
        let load = store.load_room(msg.room, limits.entries);
        Box::pin(async move {
            let t = load.await.ok()??;
            let h = History::restore(limits, &t.epoch, t.seq, t.entries);
            Some(HistoryView::of(&h, msg.since, msg.limit))
        })
    }
}

/// Members of a room with their presence.
#[derive(Message)]
#[rtype(result = "Vec<MemberInfo>")]
pub struct GetMembers {
    pub room: RoomName,
}

impl Handler<GetMembers> for Hub {
    type Result = ResponseFuture<Vec<MemberInfo>>;

    fn handle(&mut self, msg: GetMembers, _: &mut Context<Self>) -> Self::Result {
        let fut = self
            .rooms
            .get(&msg.room)
            .map(|r| r.addr.send(room::GetMembers));
        Box::pin(async move {
            match fut {
                Some(f) => f.await.unwrap_or_default(),
                None => Vec::new(),
            }
        })
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
            s.addr.do_send(Close {
                code: close::GOING_AWAY,
                reason: "server shutting down".into(),
            });
        }
        self.sessions.len()
    }
}

/// Counts for `/healthz`.
pub struct Stats {
    pub sessions: usize,
    pub users: usize,
    pub rooms: usize,
    pub idle_rooms: usize,
}

#[derive(Message)]
#[rtype(result = "Stats")]
pub struct GetStats;

impl Handler<GetStats> for Hub {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Stats {
            sessions: self.sessions.len(),
            users: self.users.len(),
            rooms: self.rooms.len(),
            idle_rooms: self.idle.len(),
        })
    }
}

/// Open a document (access was checked by the session): starts its actor on
/// a room arbiter if needed, forwards the open, answers the actor's address.
#[derive(Message)]
#[rtype(result = "Result<Addr<crate::document::Document>, HubError>")]
pub struct OpenDoc {
    pub doc: RoomName,
    pub open: crate::document::Open,
}

impl Handler<OpenDoc> for Hub {
    type Result = Result<Addr<crate::document::Document>, HubError>;

    fn handle(&mut self, msg: OpenDoc, ctx: &mut Context<Self>) -> Self::Result {
        let arbiter = if self.arbiters.is_empty() {
            None
        } else {
            self.next_arbiter = (self.next_arbiter + 1) % self.arbiters.len();
            Some(&self.arbiters[self.next_arbiter])
        };
        match self.docs.as_mut() {
            Some(d) => Ok(d.open(msg.doc, msg.open, ctx.address(), arbiter)),
            None => Err(HubError::new(
                ErrorCode::Unavailable,
                "documents are not enabled",
            )),
        }
    }
}

/// From a document that no one has open and that has nothing left to store.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DocIdle {
    pub addr: Addr<crate::document::Document>,
    pub doc: RoomName,
    pub hub_ops: u64,
}

impl Handler<DocIdle> for Hub {
    type Result = ();

    fn handle(&mut self, msg: DocIdle, _: &mut Context<Self>) {
        if let Some(d) = self.docs.as_mut() {
            d.idle(msg);
        }
    }
}

/// From storage: frames for every session of a user (a new notification and
/// the unread count, or the count after some were marked read). Sent in the
/// order the writer committed them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ToUser {
    pub user: UserId,
    pub frames: Vec<Bytes>,
}

impl Handler<ToUser> for Hub {
    type Result = ();

    fn handle(&mut self, msg: ToUser, _: &mut Context<Self>) {
        for f in &msg.frames {
            self.push_user(&msg.user, f);
        }
    }
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

impl Handler<UserLoaded> for Hub {
    type Result = ();

    fn handle(&mut self, msg: UserLoaded, _: &mut Context<Self>) {
        let Some(mut load) = self.inboxes.remove(&msg.user) else {
            return;
        };
        load.loading = load.loading.saturating_sub(1);
        if let (Some(unread), Some(s)) = (msg.unread, self.sessions.get(&msg.session)) {
            if unread > 0 {
                s.outbox
                    .push(encode(&ServerFrame::NotificationCount { unread }));
            }
        }
        let online = self.users.contains_key(&msg.user);
        let fresh: Vec<&(u64, Bytes)> = msg
            .inbox
            .iter()
            .filter(|(id, _)| *id > load.delivered)
            .collect();
        let dropped = if load.told { 0 } else { msg.dropped };
        if online && (!fresh.is_empty() || dropped > 0) {
            load.told = true;
            let header = encode(&ServerFrame::DirectOffline {
                count: fresh.len(),
                dropped,
            });
            self.push_user(&msg.user, &header);
            for (_, f) in &fresh {
                self.push_user(&msg.user, f);
            }
            let upto = fresh.last().map_or(load.delivered, |(id, _)| *id);
            load.delivered = upto;
            if let Some(store) = &self.store {
                store.send(Job::DeleteInbox {
                    user: msg.user.clone(),
                    upto,
                    dropped,
                });
            }
        }
        if load.loading > 0 {
            self.inboxes.insert(msg.user, load);
            return;
        }
        // Messages that arrived during the load follow the stored ones; if the
        // user has left meanwhile, they are stored for the next connection.
        for f in load.waiting {
            if online {
                self.push_user(&msg.user, &f);
            } else if let Some(store) = &self.store {
                store.send(Job::StoreDirect {
                    user: msg.user.clone(),
                    frame: f,
                    ts: now_ms(),
                    outbox: None,
                    id: None,
                });
            }
        }
    }
}
