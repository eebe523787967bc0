//! One actor per active room: members, seq and history, typing, and the
//! fan-out. A message is encoded once here and the same bytes are queued to
//! every member's outbox; the Hub is not on this path.

use crate::delivery::Class;
use crate::history::{History, Recovery};
use crate::ids::{RoomName, SessionAddr, SessionId, UserId};
use crate::metrics::METRICS;
use crate::outbox::{Out, Outbox};
use crate::protocol::{encode, From, MemberInfo, ServerFrame, Status};
use crate::store::{RoomMode, StoreHandle};

mod cluster;
mod engine;
mod publish;
mod state;
mod streams;

use actix::prelude::*;
use bytes::Bytes;
pub use cluster::{read_history, read_members};
use engine::Engine;
pub use publish::{Accepted, MqttRelay, Origin, Publish};
pub use state::{StateAnswer, StateCall, StateOp, StateOrigin};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use streams::StreamOp;

/// Where a room reports its end: whoever started it (the Hub).
pub struct Owner {
    pub idle: Recipient<RoomIdle>,
    pub failed: Recipient<RoomFailed>,
}

impl Owner {
    pub fn of<A>(addr: Addr<A>) -> Owner
    where
        A: Actor + Handler<RoomIdle> + Handler<RoomFailed>,
        A::Context: actix::dev::ToEnvelope<A, RoomIdle> + actix::dev::ToEnvelope<A, RoomFailed>,
    {
        Owner {
            idle: addr.clone().recipient(),
            failed: addr.recipient(),
        }
    }
}

/// To the room's owner, from a room that has no members: free it if nothing is in flight to it.
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

/// To the room's owner, from a room that could not be read (several nodes, Redis unreachable
/// for `cluster::LOAD_PATIENCE`): it stops; forget it, so the next join
/// starts it again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomFailed {
    pub addr: Addr<Room>,
    pub room: RoomName,
}

/// A session in the room.
#[derive(Clone)]
pub struct Member {
    pub session: SessionId,
    pub user: UserId,
    pub name: Arc<str>,
    pub outbox: Outbox,
    /// The subscribe hook's `info` for this join (kept for the user while
    /// they are a member, when this join made them one).
    pub info: Option<Arc<serde_json::value::RawValue>>,
}

/// What removing a session leaves to announce.
struct Detached {
    member: Member,
    /// `room:session_left`, then `room:member_left` when it was the user's last.
    left: Vec<Bytes>,
    was_typing: bool,
}

/// A user in the room (one or more sessions).
struct UserSlot {
    name: Arc<str>,
    status: Status,
    activity: Option<Arc<str>>,
    info: Option<Arc<serde_json::value::RawValue>>,
    sessions: u32,
}

impl UserSlot {
    /// A new member, as `m` joins.
    fn joining(m: &Member) -> UserSlot {
        UserSlot {
            name: m.name.clone(),
            status: Status::Online,
            activity: None,
            info: m.info.clone(),
            sessions: 1,
        }
    }

    /// The user as member lists show them (no sessions).
    fn listed(&self, user: &UserId) -> MemberInfo {
        MemberInfo {
            user: user.clone(),
            name: self.name.clone(),
            status: self.status,
            activity: self.activity.clone(),
            info: self.info.clone(),
            sessions: Vec::new(),
        }
    }
}

pub struct Room {
    name: RoomName,
    /// Who started the room (the Hub), told when it is idle or failed.
    hub: Owner,
    history: History,
    members: HashMap<SessionId, Member>,
    users: HashMap<UserId, UserSlot>,
    /// Who is typing, and when that expires.
    typing: HashMap<UserId, Instant>,
    typing_timer: Option<SpawnHandle>,
    typing_ttl: Duration,
    /// This actor's address, named in `RoomIdle` so the Hub never frees a newer
    /// actor of the same name on a stale report.
    me: Option<Addr<Room>>,
    /// Mailbox capacity for messages from sessions (`SWITCHBOARD_ROOM_QUEUE`).
    queue: usize,
    /// Messages received from the Hub (joins, API publishes): the Hub frees the
    /// room only if it has forwarded no more than this, so nothing in flight is lost.
    hub_ops: u64,
    /// Where its messages are stored, and how (never `RoomMode::Volatile`).
    storage: Option<(StoreHandle, RoomMode)>,
    /// Load the stored history before handling anything (not in the idle LRU).
    load: bool,
    /// A seq reservation is on its way to the database (`reserve_ahead`).
    reserving: bool,
    /// What orders the room (`engine.rs`): this actor, or Redis.
    engine: &'static dyn Engine,
    /// With Redis: this node's view of the shared room (`cluster/`).
    replica: Option<cluster::Replica>,
    /// The room's shared state (`state.rs`), its bounds, where it is
    /// stored (whatever the room's mode; not with Redis), its expiry timer.
    state: crate::state::StateMap,
    state_limits: crate::state::StateLimits,
    state_store: Option<StoreHandle>,
    state_timer: Option<SpawnHandle>,
    /// Live AI response streams (`streams.rs`), their bounds, the stall timer.
    streams: crate::streams::Streams,
    stream_limits: crate::streams::StreamLimits,
    stream_timer: Option<SpawnHandle>,
    /// With Redis: acks of starts and chunks waiting until this node applied
    /// them (`cluster/streams.rs`): stream, chunks applied by then, to whom.
    stream_acks: Vec<(String, u64, Outbox, String)>,
    /// Whether members are listed and joins/leaves announced (`with_presence`).
    presence: bool,
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.me = Some(ctx.address());
        // Sessions hand messages over with try_send: past this many waiting,
        // they answer `rate_limited` instead of letting the mailbox grow.
        // Control messages (joins, leaves, presence) use do_send and always get in.
        ctx.set_mailbox_capacity(self.queue);
        let e = self.engine;
        e.start(self, ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let e = self.engine;
        e.stop(self);
    }
}

impl Room {
    /// Reads the stored history before anything else is handled (one node,
    /// a room not in the idle LRU).
    fn load_history(&mut self, ctx: &mut Context<Self>) {
        if let (true, Some((store, _))) = (self.load, &self.storage) {
            // Nothing (no join, no message) is handled before the stored
            // history is in: a join never sees a partial history, and seq
            // continues where the stored numbering ended.
            let (store, room, limits) = (store.clone(), self.name.clone(), self.history.limits());
            let load = async move {
                let mut delay = Duration::from_millis(100);
                loop {
                    match store
                        .load_room(room.clone(), limits.entries, limits.keys)
                        .await
                    {
                        Ok(t) => return t,
                        Err(e) => {
                            log::error!("room {room}: cannot load its history ({e}); retrying");
                            actix_web::rt::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            };
            ctx.wait(load.into_actor(self).map(move |tail, act, _| {
                if let Some(t) = tail {
                    act.history = History::restore(limits, &t.epoch, t.seq, t.entries);
                    for (key, seq, ts) in t.keys {
                        if let Ok(key) = crate::idempotency::IdemKey::parse(&key) {
                            act.history.remember_key(key, seq, ts);
                        }
                    }
                }
            }));
        }
    }

    pub fn new(name: RoomName, hub: Owner, history: History, typing_ttl: Duration) -> Room {
        Room {
            name,
            hub,
            history,
            members: HashMap::new(),
            users: HashMap::new(),
            typing: HashMap::new(),
            typing_timer: None,
            typing_ttl,
            me: None,
            queue: 4096,
            hub_ops: 0,
            storage: None,
            load: false,
            reserving: false,
            engine: &engine::Local,
            replica: None,
            state: Default::default(),
            state_limits: Default::default(),
            state_store: None,
            state_timer: None,
            streams: Default::default(),
            stream_limits: Default::default(),
            stream_timer: None,
            stream_acks: Vec::new(),
            presence: true,
        }
    }

    /// Sets the bounds of the room's shared state.
    pub fn with_state_limits(mut self, limits: crate::state::StateLimits) -> Room {
        self.state_limits = limits;
        self
    }

    /// Sets the bounds of the room's streams.
    pub fn with_stream_limits(mut self, limits: crate::streams::StreamLimits) -> Room {
        self.stream_limits = limits;
        self
    }

    /// Shares the room with other nodes through Redis (no local storage).
    pub fn with_cluster(mut self, c: Option<crate::cluster::Cluster>) -> Room {
        // The stream keeps what the database would: the room's retention
        // count (a volatile room, or storage off: its in-memory window).
        let window = self.history.limits().entries as u64;
        let keep = match &self.storage {
            Some((s, _)) => match s.policy.retention(self.name.as_str()).count {
                0 => i64::MAX as u64,
                n => n,
            },
            None => window,
        };
        self.replica = c.map(|c| cluster::Replica::new(c, &self.name, keep));
        if self.replica.is_some() {
            self.engine = &cluster::Shared;
            self.storage = None;
            self.state_store = None;
        }
        self
    }

    /// Stores the room's messages (unless its mode is volatile); with
    /// `load`, the stored history replaces the given one at start.
    pub fn with_store(mut self, store: Option<StoreHandle>, load: bool) -> Room {
        self.load = load;
        self.state_store = store.clone();
        self.storage = store
            .map(|s| {
                let mode = s.policy.mode(self.name.as_str());
                (s, mode)
            })
            .filter(|(_, m)| *m != RoomMode::Volatile);
        self
    }

    /// Sets the mailbox capacity for messages from sessions.
    /// `false` (a room rule): member lists are empty and joins and leaves
    /// are not announced.
    pub fn with_presence(mut self, presence: bool) -> Room {
        self.presence = presence;
        self
    }

    pub fn with_queue(mut self, queue: usize) -> Room {
        self.queue = queue.max(1);
        self
    }

    /// Queues `frame` to every member (but `except`). Returns how many got it
    /// and the sessions whose queue was full or closed.
    fn deliver(
        &self,
        frame: &Bytes,
        except: Option<SessionId>,
        class: Class,
    ) -> (usize, Vec<SessionId>) {
        let mut failed = Vec::new();
        let mut sent = 0;
        let fanout = crate::outbox::Fanout::new(frame);
        for m in self.members.values() {
            if Some(m.session) == except {
                continue;
            }
            if m.outbox.push_fanout(&fanout, class) {
                sent += 1;
            } else {
                failed.push(m.session);
            }
        }
        METRICS.deliveries.fetch_add(sent as u64, Relaxed);
        (sent, failed)
    }

    /// Queues `frame` to every member (but `except`) and evicts members whose
    /// queue is full or closed. Their departures are announced from a work
    /// queue, never by recursion: thousands of members dropping at once must
    /// not grow the stack. Returns how many got `frame`.
    fn broadcast(&mut self, frame: &Bytes, except: Option<SessionId>) -> usize {
        self.broadcast_as(frame, except, Class::Normal)
    }

    /// `broadcast` of a frame of a delivery class (`delivery.rs`).
    fn broadcast_as(&mut self, frame: &Bytes, except: Option<SessionId>, class: Class) -> usize {
        let (sent, mut failed) = self.deliver(frame, except, class);
        let mut announce = std::collections::VecDeque::new();
        let mut typing_dirty = false;
        loop {
            for s in failed.drain(..) {
                if let Some(d) = self.detach(s) {
                    if self.presence {
                        announce.extend(d.left);
                    }
                    typing_dirty |= d.was_typing;
                }
            }
            let next = match announce.pop_front() {
                Some(f) => f,
                // One typing:update for all the typers who left, not one each.
                None if std::mem::take(&mut typing_dirty) => self.typing_frame(),
                None => break,
            };
            failed = self.deliver(&next, None, Class::Normal).1;
        }
        sent
    }

    /// Removes a session and announces the user's departure when it was their last.
    fn remove(&mut self, session: SessionId) -> Option<Member> {
        let d = self.detach(session)?;
        if d.was_typing {
            self.typing_changed();
        }
        if self.presence {
            for f in d.left {
                self.broadcast(&f, None);
            }
        }
        Some(d.member)
    }

    /// Removes a session without telling anyone. If it was the user's last
    /// session, returns the `room:member_left` to announce and whether the
    /// user was typing.
    fn detach(&mut self, session: SessionId) -> Option<Detached> {
        let member = self.members.remove(&session)?;
        let e = self.engine;
        Some(e.detach(self, member))
    }

    /// `detach` on one node: the user's slot, the frames to announce.
    fn detach_here(&mut self, member: Member) -> Detached {
        let gone = match self.users.get_mut(&member.user) {
            Some(slot) if slot.sessions > 1 => {
                slot.sessions -= 1;
                None
            }
            Some(_) => self.users.remove(&member.user),
            None => None,
        };
        let addr = crate::ids::SessionAddr::here(member.session);
        let mut left = vec![encode(&ServerFrame::SessionLeft {
            room: &self.name,
            user: &member.user,
            session: &addr,
        })];
        let mut was_typing = false;
        if let Some(slot) = gone {
            let vacated = self.users.is_empty();
            crate::webhooks::member_left(&self.name, member.user.as_str(), vacated);
            was_typing = self.typing.remove(&member.user).is_some();
            let info = slot.listed(&member.user);
            left.push(encode(&ServerFrame::MemberLeft {
                room: &self.name,
                user: &info,
            }));
        }
        Detached {
            member,
            left,
            was_typing,
        }
    }

    fn members_info(&self) -> Vec<MemberInfo> {
        if !self.presence {
            return Vec::new();
        }
        // Sessions here, and (several nodes) those the room's channel told of.
        let elsewhere = self.engine.sessions_elsewhere(self);
        let mut sessions: HashMap<&UserId, Vec<SessionAddr>> = HashMap::new();
        for m in self.members.values() {
            let a = SessionAddr::here(m.session);
            sessions.entry(&m.user).or_default().push(a);
        }
        for (a, u) in elsewhere.iter() {
            sessions.entry(u).or_default().push(a.clone());
        }
        let mut v: Vec<MemberInfo> = self
            .users
            .iter()
            .map(|(u, s)| MemberInfo {
                sessions: sessions.remove(u).map_or_else(Vec::new, |mut v| {
                    v.sort();
                    v
                }),
                ..s.listed(u)
            })
            .collect();
        v.sort_by(|a, b| a.user.cmp(&b.user));
        v
    }

    /// The `typing:update` listing everyone typing now, sorted by user id.
    fn typing_frame(&self) -> Bytes {
        let mut users: Vec<From> = self
            .typing
            .keys()
            .filter_map(|u| {
                self.users.get(u).map(|s| From {
                    user: u.clone(),
                    name: s.name.clone(),
                })
            })
            .collect();
        users.sort_by(|a, b| a.user.cmp(&b.user));
        encode(&ServerFrame::Typing {
            room: &self.name,
            users: &users,
        })
    }

    fn typing_changed(&mut self) {
        let frame = self.typing_frame();
        self.broadcast(&frame, None);
    }

    /// Re-arms the timer for the earliest typing expiry.
    fn schedule_typing(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.typing_timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(next) = self.typing.values().min().copied() {
            let delay = next.saturating_duration_since(Instant::now());
            self.typing_timer = Some(ctx.run_later(delay, |act, ctx| {
                act.typing_timer = None;
                let now = Instant::now();
                let before = act.typing.len();
                act.typing.retain(|_, exp| *exp > now);
                if act.typing.len() != before {
                    act.typing_changed();
                }
                act.schedule_typing(ctx);
            }));
        }
    }

    /// A session joined, on one node: a new user gets a slot and
    /// `room:member_joined`, every new session `room:session_joined`.
    fn joined_here(&mut self, m: &Member, rejoin: bool) -> Vec<Bytes> {
        let mut announce = Vec::new();
        if !self.users.contains_key(&m.user) {
            let occupied = self.users.is_empty();
            crate::webhooks::member_joined(&self.name, m.user.as_str(), &m.name, occupied);
            let slot = UserSlot::joining(m);
            let info = slot.listed(&m.user);
            self.users.insert(m.user.clone(), slot);
            if self.presence {
                announce.push(encode(&ServerFrame::MemberJoined {
                    room: &self.name,
                    user: &info,
                }));
            }
        } else if !rejoin {
            if let Some(slot) = self.users.get_mut(&m.user) {
                slot.sessions += 1;
            }
        }
        if !rejoin && self.presence {
            announce.push(encode(&ServerFrame::SessionJoined {
                room: &self.name,
                user: &m.user,
                session: &SessionAddr::here(m.session),
            }));
        }
        announce
    }

    /// Tells the Hub when the room has no members, with a copy of its history.
    fn report_if_idle(&self) {
        if let (true, Some(me)) = (self.members.is_empty(), &self.me) {
            self.hub.idle.do_send(RoomIdle {
                addr: me.clone(),
                room: self.name.clone(),
                hub_ops: self.hub_ops,
                history: self.history.clone(),
            });
        }
    }
}

/// A session joins (forwarded by the Hub). Re-joining re-sends `room:joined`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub member: Member,
    pub since: Option<u64>,
    pub epoch: Option<String>,
    pub id: Option<String>,
    /// Send a `state:snapshot` after `room:joined`.
    pub state: bool,
}

impl Handler<Join> for Room {
    type Result = ();

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) {
        self.hub_ops += 1;
        let m = msg.member;
        let rejoin = self.members.insert(m.session, m.clone()).is_some();
        // Announced to the others once the joiner's `room:joined` is queued:
        // delivering them may find a closed member and announce its leave,
        // which the joiner must get after its own `room:joined`.
        let e = self.engine;
        let announce = e.joined(self, &m, rejoin);
        let (recovered, replay) = match msg.since {
            None => (None, Vec::new()),
            Some(since) => match self.history.recover(since, msg.epoch.as_deref()) {
                Recovery::Complete(v) => (Some(true), v),
                Recovery::Lost => (Some(false), Vec::new()),
            },
        };
        let members = self.members_info();
        let joined = encode(&ServerFrame::Joined {
            room: &self.name,
            seq: self.history.seq,
            epoch: &self.history.epoch,
            recovered,
            members: &members,
            id: msg.id.as_deref(),
        });
        let mut batch = Vec::with_capacity(replay.len() + 2);
        batch.push(joined);
        batch.extend(replay);
        if !self.typing.is_empty() {
            batch.push(self.typing_frame());
        }
        if msg.state {
            batch.push(self.state_snapshot(None, None));
        }
        batch.extend(self.stream_catch_up());
        let n = batch.len() as u64;
        let queued = m.outbox.send(Out::Batch(batch));
        if queued {
            METRICS.deliveries.fetch_add(n, Relaxed);
        }
        for frame in announce {
            self.broadcast(&frame, Some(m.session));
        }
        if !queued {
            self.remove(m.session);
            self.report_if_idle();
        }
    }
}

/// A session leaves (forwarded by the Hub, also on disconnect with `notify: false`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub session: SessionId,
    pub id: Option<String>,
    /// Send `room:left` to the session (false when it disconnected).
    pub notify: bool,
}

impl Handler<Leave> for Room {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Context<Self>) {
        self.producer_left(msg.session, ctx);
        if let Some(m) = self.remove(msg.session) {
            if msg.notify {
                m.outbox.push(encode(&ServerFrame::Left {
                    room: &self.name,
                    id: msg.id.as_deref(),
                }));
            }
        }
        self.report_if_idle();
    }
}

/// `typing:start` (on) or `typing:stop` from a member session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Typing {
    pub session: SessionId,
    pub on: bool,
}

impl Handler<Typing> for Room {
    type Result = ();

    fn handle(&mut self, msg: Typing, ctx: &mut Context<Self>) {
        let Some(user) = self.members.get(&msg.session).map(|m| m.user.clone()) else {
            return;
        };
        let e = self.engine;
        e.typing(self, user, msg.on, ctx);
    }
}

impl Room {
    /// `user` starts (`on`) or stops typing: announce a change, re-arm the expiry.
    fn apply_typing(&mut self, user: UserId, on: bool, ctx: &mut Context<Self>) {
        let changed = if on {
            self.typing
                .insert(user, Instant::now() + self.typing_ttl)
                .is_none()
        } else {
            self.typing.remove(&user).is_some()
        };
        if changed {
            self.typing_changed();
        }
        self.schedule_typing(ctx);
    }
}

impl Handler<crate::presence::MemberStatus> for Room {
    type Result = ();

    fn handle(&mut self, msg: crate::presence::MemberStatus, _: &mut Context<Self>) {
        let e = self.engine;
        e.member_status(self, msg);
    }
}

impl Room {
    /// A member's status, on one node: recorded and announced.
    fn member_status_here(&mut self, msg: crate::presence::MemberStatus) {
        if let Some(slot) = self.users.get_mut(&msg.user) {
            slot.status = msg.status;
            slot.activity = msg.activity.clone();
        }
        if !self.presence {
            return;
        }
        let frame = encode(&ServerFrame::Presence {
            room: &self.name,
            user: &msg.user,
            status: msg.status,
            last_seen: Some(msg.last_seen),
            activity: msg.activity.as_deref(),
        });
        self.broadcast(&frame, None);
    }
}

/// A page of kept history, for `GET /api/rooms/{room}/history`.
pub struct HistoryView {
    pub epoch: Arc<str>,
    pub seq: u64,
    pub first_seq: u64,
    pub messages: Vec<Bytes>,
}

impl HistoryView {
    pub fn of(h: &History, since: u64, limit: usize) -> HistoryView {
        HistoryView {
            epoch: h.epoch.clone(),
            seq: h.seq,
            first_seq: h.first_seq(),
            messages: h.after(since, limit),
        }
    }
}

#[derive(Message)]
#[rtype(result = "HistoryView")]
pub struct GetHistory {
    pub since: u64,
    pub limit: usize,
}

impl Handler<GetHistory> for Room {
    type Result = MessageResult<GetHistory>;

    fn handle(&mut self, msg: GetHistory, _: &mut Context<Self>) -> Self::Result {
        MessageResult(HistoryView::of(&self.history, msg.since, msg.limit))
    }
}

/// Plans a page of scrollback (`history:get`, `GET …/history?before=`):
/// what memory has, at once; the database part is read by the caller.
#[derive(Message)]
#[rtype(result = "crate::scrollback::Plan")]
pub struct Scrollback {
    pub req: crate::scrollback::PageRequest,
}

impl Handler<Scrollback> for Room {
    type Result = MessageResult<Scrollback>;

    fn handle(&mut self, msg: Scrollback, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.engine.scrollback(self, msg.req))
    }
}

#[derive(Message)]
#[rtype(result = "Vec<MemberInfo>")]
pub struct GetMembers;

impl Handler<GetMembers> for Room {
    type Result = MessageResult<GetMembers>;

    fn handle(&mut self, _: GetMembers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.members_info())
    }
}

/// Sent by the Hub once it has taken the room's history into its LRU.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for Room {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests;
