//! A room when several nodes share it through Redis (`src/cluster`): the
//! Room actor is this node's replica. Publishes go to Redis (one script
//! numbers, stores and publishes); members here get what arrives on the
//! room's channel, in seq order, with gaps repaired from the stream.
//! Member lists are cluster-wide: a user joins a room when their first
//! session anywhere does, and leaves with the last.
//!
//! Channel payloads (the first byte says which):
//! - `M<seq> <epoch> <excluded node/session or -> <frame>`: a message;
//! - `J<v> <node> <session> <frame>`, `L<v> …`: a member joined / left
//!   (`v` numbers member-list changes; the join's session is excluded);
//! - `P<v> <frame>`: a presence change; `T<node> <user> <0|1>`: typing;
//! - `S<state:update frame>`: a change of the shared state (`state.rs`).
//! - `E<1|0> <session> <user> <frame>`: a session joined / left (`sessions.rs`);
//! - `V<excluded> <frame>`: a volatile message (no seq, not stored).
//! - `A<json>`: a stream event (`streams.rs`).

mod engine;
mod publish;
mod read;
mod sessions;
mod state;
mod streams;

use super::{Member, Room, UserSlot};
use crate::cluster::scripts::{self, Lua};
use crate::cluster::{Cluster, Feed, FeedEvent};
use crate::history::History;
use crate::ids::{SessionId, UserId};
use crate::outbox::Outbox;
use crate::protocol::{encode, MemberInfo, ServerFrame, Status};
use actix::prelude::*;
use bytes::Bytes;
pub use engine::Shared;
use read::load;
pub use read::{read_history, read_members};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How long a room starting on this node tries to read itself from Redis
/// before the joins waiting for it are answered `unavailable`.
pub const LOAD_PATIENCE: Duration = Duration::from_secs(10);

/// The seq written into a frame before Redis gives the real one.
const SEQ_MARK: &[u8] = b"\"seq\":18446744073709551615";

/// This node's view of a shared room.
pub struct Replica {
    /// The first Redis: members, sessions, typing, presence, state.
    c: Cluster,
    /// The Redis of the room's messages (`Cluster::for_room`): numbering,
    /// stream, AI streams. The same as `c` with one Redis.
    m: Cluster,
    /// How many messages the room's stream keeps (MAXLEN).
    keep: u64,
    chan: String,
    token: Option<u64>,
    /// The subscription on `m`'s Redis, when that is another one.
    m_token: Option<u64>,
    /// Member-list changes applied (events at or below it are stale).
    version: u64,
    /// Messages that arrived ahead of a gap, waiting for it to be filled.
    pending: BTreeMap<u64, (Option<SessionId>, Bytes)>,
    /// The newest seq known to be in Redis (from a re-read of the room):
    /// what `repair` reads up to when nothing newer is pending.
    known: u64,
    repairing: bool,
    /// Acks waiting until their message was delivered here.
    acks: BTreeMap<u64, Vec<(Outbox, String)>>,
    /// Publishes sent to Redis, numbered in the order they were made, and
    /// their answers not yet handled: answers are handled in that order
    /// (acks and errors keep the order of the sends).
    next_ticket: u64,
    next_answer: u64,
    answers: BTreeMap<u64, publish::Answer>,
    /// Sessions per user on this node.
    local: HashMap<UserId, u32>,
    /// Shared state (`state.rs`).
    state: state::StateReplica,
    /// Every session in the room, on any node (`sessions.rs`).
    sessions: BTreeMap<crate::ids::SessionAddr, UserId>,
    /// Join and leave answers, handled one after another in the order the
    /// scripts ran (their webhook events keep the room's order).
    memberships: Option<Ordered>,
    /// Stream starts sent to Redis and not applied here yet, with their
    /// producer (`streams.rs`: a producer that leaves meanwhile ends them).
    starting: Vec<(String, SessionId)>,
}

type Ordered = tokio::sync::mpsc::UnboundedSender<
    std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
>;

impl Replica {
    /// Every session in the room, with its user.
    pub fn sessions(&self) -> impl Iterator<Item = (&crate::ids::SessionAddr, &UserId)> {
        self.sessions.iter()
    }

    pub fn new(c: Cluster, room: &crate::ids::RoomName, keep: u64) -> Replica {
        Replica {
            keep,
            chan: c.room_key(room, "c"),
            m: c.for_room(room),
            c,
            token: None,
            m_token: None,
            version: 0,
            pending: BTreeMap::new(),
            known: 0,
            repairing: false,
            acks: BTreeMap::new(),
            next_ticket: 0,
            next_answer: 0,
            answers: BTreeMap::new(),
            local: HashMap::new(),
            state: Default::default(),
            sessions: BTreeMap::new(),
            memberships: None,
            starting: Vec::new(),
        }
    }

    /// Runs `f` after the membership answers queued before it. The scripts
    /// are already on the lane (answered in order): no added wait.
    fn in_order(&mut self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        let tx = self.memberships.get_or_insert_with(|| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<
                std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
            >();
            actix::spawn(async move {
                while let Some(f) = rx.recv().await {
                    f.await;
                }
            });
            tx
        });
        let _ = tx.send(Box::pin(f));
    }
}

/// The member json kept in Redis and carried in member events.
#[derive(serde::Deserialize)]
struct InfoWire {
    user: String,
    name: String,
    status: Status,
    #[serde(default)]
    activity: Option<String>,
    #[serde(default)]
    info: Option<Box<serde_json::value::RawValue>>,
}

fn info_of(json: &[u8]) -> Option<MemberInfo> {
    let w: InfoWire = serde_json::from_slice(json).ok()?;
    Some(MemberInfo {
        user: UserId::parse(&w.user)?,
        name: w.name.into(),
        status: w.status,
        activity: w.activity.map(Into::into),
        info: w.info.map(Into::into),
        sessions: Vec::new(),
    })
}

impl UserSlot {
    /// A member as Redis (or a member event) lists them.
    fn of(i: MemberInfo) -> UserSlot {
        UserSlot {
            name: i.name,
            status: i.status,
            activity: i.activity,
            info: i.info,
            sessions: 1,
        }
    }
}

/// The `user` of a member or presence frame.
#[derive(serde::Deserialize)]
struct UserOf {
    user: serde_json::Value,
}

/// `(head, tail)` of a frame around its placeholder seq.
fn split_seq(frame: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let at = frame.windows(SEQ_MARK.len()).position(|w| w == SEQ_MARK)?;
    let digits = at + b"\"seq\":".len();
    Some((
        frame[..digits].to_vec(),
        frame[at + SEQ_MARK.len()..].to_vec(),
    ))
}

/// Splits `s` at its first space.
fn word(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let sp = s.iter().position(|b| *b == b' ')?;
    Some((&s[..sp], &s[sp + 1..]))
}

fn num(s: &[u8]) -> Option<u64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

impl Room {
    fn replica(&mut self) -> &mut Replica {
        self.replica.as_mut().expect("cluster room")
    }

    fn member_json(&self, user: &UserId) -> Vec<u8> {
        let info = self.users.get(user).map(|s| s.listed(user));
        info.and_then(|i| serde_json::to_vec(&i).ok())
            .unwrap_or_default()
    }

    /// Subscribes to the room's channel, then reads the room from Redis;
    /// nothing else is handled before (messages published meanwhile wait
    /// in the mailbox and are dropped when already in the read).
    pub(super) fn start_replica(&mut self, ctx: &mut Context<Self>) {
        let (room, entries) = (self.name.clone(), self.history.limits().entries);
        let r = self.replica();
        let (c, chan) = (r.c.clone(), r.chan.clone());
        let me = ctx.address().recipient::<Feed>();
        // The room's channel on the Redis of its messages too, when that
        // is another one: its messages are published there.
        let m_sub = (!r.m.same_redis(&c)).then(|| r.m.subscribe(chan.clone(), me.clone()));
        let m_token = m_sub.as_ref().map(|(t, _)| *t);
        let fut = async move {
            let mut delay = Duration::from_millis(100);
            let (token, sub) = c.subscribe(chan, me);
            let sub = async move {
                match m_sub {
                    Some((_, m)) => sub.await.and(m.await),
                    None => sub.await,
                }
            };
            let mut sub = Some(sub);
            let deadline = Instant::now() + LOAD_PATIENCE;
            loop {
                if let Some(s) = sub.take() {
                    // While the subscriber reconnects, the subscription
                    // waits for it (and is made then).
                    let left = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, s).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => log::warn!("room {room}: subscription pending"),
                        Err(_) => return (token, None),
                    }
                }
                match load(&c, &room, entries).await {
                    Ok(l) => return (token, Some(l)),
                    Err(e) => log::warn!("room {room}: cannot read it from Redis ({})", e.message),
                }
                if Instant::now() > deadline {
                    return (token, None);
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        };
        ctx.wait(fut.into_actor(self).map(move |(token, l), act, ctx| {
            act.replica().token = Some(token);
            act.replica().m_token = m_token;
            match l {
                Some(l) => act.apply_load(l, false, ctx),
                None => {
                    // Never a fresh numbering: the joins waiting get
                    // `unavailable`, and the next join tries again.
                    log::error!("room {}: not read from Redis; giving up for now", act.name);
                    if let Some(me) = act.me.clone() {
                        act.hub.failed.do_send(super::RoomFailed {
                            addr: me,
                            room: act.name.clone(),
                        });
                    }
                    ctx.stop();
                }
            }
        }));
    }

    /// Takes what Redis has: the numbering and its tail, the member list.
    /// With `announce`, members here are told of a new numbering (a
    /// `room:joined` with `recovered:false`) and given its messages.
    fn apply_load(&mut self, mut l: scripts::Loaded, announce: bool, ctx: &mut Context<Self>) {
        let state = (l.state_rev, std::mem::take(&mut l.state));
        self.state_loaded(state.0, &state.1, announce, ctx);
        self.apply_sessions(std::mem::take(&mut l.sessions));
        let limits = self.history.limits();
        if !announce {
            self.history = History::restore(limits, &l.epoch, l.seq, l.entries);
        } else if *l.epoch == *self.history.epoch {
            // Same numbering: read what is missing, in order.
            let r = self.replica();
            r.known = r.known.max(l.seq);
            self.repair(ctx);
        } else {
            // A new numbering: say so at its oldest kept message, then give them.
            let base = l.entries.first().map_or(l.seq, |e| e.0 - 1);
            self.history = History::restore(limits, &l.epoch, base, Vec::new());
            self.tell_lost();
            for (s, f) in l.entries {
                self.arrive(s, None, f);
            }
        }
        let r = self.replica();
        // A lower version than this node saw: the Redis of the members
        // lost them and numbers member events anew (its nodes register
        // theirs again); take its list and its numbering.
        if l.version != r.version || !announce {
            r.version = l.version;
            let local: Vec<UserId> = r.local.keys().cloned().collect();
            let mut users = HashMap::new();
            for j in &l.members {
                if let Some(i) = info_of(j) {
                    users.insert(i.user.clone(), UserSlot::of(i));
                }
            }
            for u in local {
                if let Some(old) = self.users.remove(&u) {
                    users.entry(u).or_insert(old);
                }
            }
            self.users = users;
        }
    }

    /// Members here missed messages that no longer exist: say so, as a
    /// `room:joined` with `recovered:false` at the current position.
    fn tell_lost(&mut self) {
        let members = self.members_info();
        let frame = encode(&ServerFrame::Joined {
            room: &self.name,
            seq: self.history.seq,
            epoch: &self.history.epoch,
            recovered: Some(false),
            members: &members,
            id: None,
        });
        self.broadcast(&frame, None);
    }

    /// Message `seq` is here: deliver it in order, or hold it until the
    /// gap before it is filled.
    fn arrive(&mut self, seq: u64, except: Option<SessionId>, frame: Bytes) {
        if seq <= self.history.seq {
            return;
        }
        if seq != self.history.next_seq() {
            self.replica().pending.insert(seq, (except, frame));
            return;
        }
        self.history.push(seq, frame.clone());
        self.broadcast_as(&frame, except, crate::delivery::Class::of_frame(&frame));
        let r = self.replica();
        let done: Vec<u64> = r.acks.range(..=seq).map(|(s, _)| *s).collect();
        for s in done {
            for (outbox, id) in r.acks.remove(&s).unwrap_or_default() {
                outbox.push(encode(&ServerFrame::Ack {
                    id: &id,
                    seq: Some(s),
                }));
            }
        }
        if let Some((&next, _)) = r.pending.first_key_value() {
            if next == seq + 1 {
                let (except, f) = r.pending.remove(&next).expect("present");
                self.arrive(next, except, f);
            }
        }
    }

    /// Messages are missing before one that arrived (or before the newest
    /// seq a re-read found): read them from the stream; what is no longer
    /// there is said lost (`tell_lost`) and delivery goes on after it.
    fn repair(&mut self, ctx: &mut Context<Self>) {
        let (from, name) = (self.history.seq, self.name.clone());
        let r = self.replica();
        let upto = r
            .pending
            .keys()
            .next()
            .map_or(r.known, |p| (p - 1).max(r.known));
        if r.repairing || upto <= from {
            return;
        }
        r.repairing = true;
        r.c.count_gap();
        let fut = r.m.script(
            Lua::Range,
            vec![r.m.room_key(&name, "m"), r.m.room_key(&name, "x")],
            vec![
                format!("({from}-1").into_bytes(),
                format!("{upto}-1").into_bytes(),
                (upto - from).to_string().into_bytes(),
            ],
        );
        ctx.spawn(fut.into_actor(self).map(move |v, act, ctx| {
            act.replica().repairing = false;
            let Some((epoch, _, entries)) = v.ok().as_ref().and_then(scripts::range) else {
                // Redis unreachable: try again shortly.
                ctx.run_later(Duration::from_millis(200), |act, ctx| act.repair(ctx));
                return;
            };
            if *epoch != *act.history.epoch {
                return act.resync(ctx);
            }
            for (s, f) in entries {
                act.arrive(s, None, f);
            }
            // Whatever is still missing is gone from the stream.
            let next = act.replica().pending.keys().next().copied();
            let resume = next.unwrap_or(upto + 1);
            if resume > act.history.next_seq() {
                let (epoch, limits) = (act.history.epoch.clone(), act.history.limits());
                act.history = History::restore(limits, &epoch, resume - 1, Vec::new());
                act.tell_lost();
                if let Some((except, f)) = act.replica().pending.remove(&resume) {
                    act.arrive(resume, except, f);
                }
            }
        }));
    }

    /// Reads the room again (after the subscription was re-made, or a new
    /// epoch was seen) and registers this node's members again.
    fn resync(&mut self, ctx: &mut Context<Self>) {
        let (c, room, n) = (
            self.replica().c.clone(),
            self.name.clone(),
            self.history.limits().entries,
        );
        let users: Vec<UserId> = self.replica().local.keys().cloned().collect();
        for u in users {
            self.register(&u, None);
        }
        self.load_streams(true, ctx);
        ctx.spawn(
            load(&c, &room, n)
                .into_actor(self)
                .map(|l, act, ctx| match l {
                    Ok(l) => act.apply_load(l, true, ctx),
                    Err(_) => {
                        ctx.run_later(Duration::from_secs(1), |act, ctx| act.resync(ctx));
                    }
                }),
        );
    }

    /// Adds `user`'s membership on this node in Redis (a no-op when there).
    fn register(&mut self, user: &UserId, session: Option<SessionId>) {
        let json = self.member_json(user);
        let r = self.replica.as_ref().expect("cluster room");
        let c = &r.c;
        let session = session.map_or("-".to_string(), |s| s.0.to_string());
        let fut = c.script(
            Lua::Join,
            vec![
                c.room_key(&self.name, "mem"),
                c.room_key(&self.name, "m"),
                r.chan.clone(),
                c.key(&format!("node:{}:idx", c.node())),
                c.user_key(user, "rooms"),
                c.user_key(user, "p"),
                c.key("occupied"),
            ],
            vec![
                user.as_str().as_bytes().to_vec(),
                json,
                format!("{}\t{}", self.name, user).into_bytes(),
                c.node().as_bytes().to_vec(),
                session.into_bytes(),
                self.name.as_str().as_bytes().to_vec(),
                c.prefix().as_bytes().to_vec(),
            ],
        );
        let room = self.name.clone();
        let (user, name) = (user.clone(), self.users.get(user).map(|s| s.name.clone()));
        self.replica().in_order(async move {
            match fut.await {
                // This node's script made them a member cluster-wide: its webhook events.
                Ok(redis::Value::Int(n @ 1..)) => {
                    let name = name.as_deref().unwrap_or(user.as_str());
                    crate::webhooks::member_joined(&room, user.as_str(), name, n == 2);
                }
                Ok(_) => {}
                Err(e) => log::warn!("room {room}: membership not registered: {}", e.message),
            }
        });
    }

    /// A session joins here (the caller has inserted it into `members`).
    pub(super) fn replica_join(&mut self, m: &Member) {
        let r = self.replica();
        let n = r.local.entry(m.user.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            return self.session_event(m, true);
        }
        self.users
            .entry(m.user.clone())
            .or_insert_with(|| UserSlot::joining(m));
        self.register(&m.user, Some(m.session));
        self.session_event(m, true);
    }

    /// A session left here: the user leaves the room when it was their last
    /// session on this node (and anywhere, for the announcement).
    pub(super) fn replica_leave(&mut self, m: &Member) {
        self.session_event(m, false);
        let r = self.replica();
        let Some(n) = r.local.get_mut(&m.user) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        r.local.remove(&m.user);
        if self.typing.contains_key(&m.user) {
            self.send_typing(&m.user, false);
        }
        let r = self.replica.as_ref().expect("cluster room");
        let c = &r.c;
        let fut = c.script(
            Lua::Leave,
            vec![
                c.room_key(&self.name, "mem"),
                c.room_key(&self.name, "m"),
                r.chan.clone(),
                c.key(&format!("node:{}:idx", c.node())),
                c.user_key(&m.user, "rooms"),
                c.key("occupied"),
            ],
            vec![
                m.user.as_str().as_bytes().to_vec(),
                format!("{}\t{}", self.name, m.user).into_bytes(),
                c.node().as_bytes().to_vec(),
                m.session.0.to_string().into_bytes(),
                self.name.as_str().as_bytes().to_vec(),
            ],
        );
        let (room, user) = (self.name.clone(), m.user.clone());
        self.replica().in_order(async move {
            match fut.await {
                Ok(redis::Value::Int(n @ 1..)) => {
                    crate::webhooks::member_left(&room, user.as_str(), n == 2)
                }
                Ok(_) => {}
                Err(e) => log::warn!("room {room}: leave not registered: {}", e.message),
            }
        });
    }

    /// Tells every node that `user` started or stopped typing here.
    pub(super) fn send_typing(&self, user: &UserId, on: bool) {
        let r = self.replica.as_ref().expect("cluster room");
        let payload = format!("T{} {} {}", r.c.node(), user, on as u8);
        let fut =
            r.c.command(redis::cmd("PUBLISH").arg(&r.chan).arg(payload).clone());
        actix::spawn(async move {
            let _ = fut.await;
        });
    }

    /// Unsubscribes when the actor stops.
    pub(super) fn replica_stopped(&mut self) {
        if let Some(r) = &self.replica {
            if let Some(t) = r.token {
                r.c.unsubscribe(r.chan.clone(), t);
            }
            if let Some(t) = r.m_token {
                r.m.unsubscribe(r.chan.clone(), t);
            }
        }
    }
}

impl Handler<Feed> for Room {
    type Result = ();

    fn handle(&mut self, msg: Feed, ctx: &mut Context<Self>) {
        let FeedEvent::Message(p) = msg.event else {
            return self.resync(ctx);
        };
        if self.replica.is_none() || p.is_empty() {
            return;
        }
        let body = &p[1..];
        match p[0] {
            b'M' => self.on_message(&p, body, ctx),
            b'J' | b'L' => self.on_member(p[0] == b'J', &p, body),
            b'P' => self.on_status(&p, body),
            b'T' => self.on_typing(body, ctx),
            b'S' => self.on_state(body, ctx),
            b'A' => self.on_stream(body, ctx),
            b'E' => self.on_session(&p, body),
            b'V' => {
                if let Some((excluded, frame)) = word(body) {
                    let except = self.excluded(excluded);
                    let class = crate::delivery::Class::Volatile;
                    self.broadcast_as(&p.slice_ref(frame), except, class);
                }
            }
            _ => {}
        }
    }
}

impl Room {
    fn on_message(&mut self, p: &Bytes, body: &[u8], ctx: &mut Context<Self>) {
        let Some((seq, rest)) = word(body) else {
            return;
        };
        let Some((epoch, rest)) = word(rest) else {
            return;
        };
        let Some((excluded, frame)) = word(rest) else {
            return;
        };
        let Some(seq) = num(seq) else { return };
        if epoch != self.history.epoch.as_bytes() {
            return self.resync(ctx);
        }
        let except = self.excluded(excluded);
        let frame = p.slice_ref(frame);
        if seq > self.history.next_seq() {
            self.replica().pending.insert(seq, (except, frame));
            return self.repair(ctx);
        }
        self.arrive(seq, except, frame);
    }

    /// `node/session` names a session here: it does not get the message.
    fn excluded(&self, s: &[u8]) -> Option<SessionId> {
        let (node, session) = std::str::from_utf8(s).ok()?.split_once('/')?;
        let r = self.replica.as_ref()?;
        (node == r.c.node()).then(|| session.parse().ok().map(SessionId))?
    }

    fn on_member(&mut self, joined: bool, p: &Bytes, body: &[u8]) {
        let Some((v, rest)) = word(body) else { return };
        let Some((node, rest)) = word(rest) else {
            return;
        };
        let Some((session, frame)) = word(rest) else {
            return;
        };
        let Some(v) = num(v) else { return };
        let r = self.replica();
        if v <= r.version {
            return;
        }
        r.version = v;
        let mine = node == r.c.node().as_bytes();
        let except = num(session).filter(|_| mine).map(SessionId);
        let Ok(u) = serde_json::from_slice::<UserOf>(frame) else {
            return;
        };
        let Some(info) = info_of(u.user.to_string().as_bytes()) else {
            return;
        };
        let ours = self.replica().local.contains_key(&info.user);
        if !joined && ours {
            // Counted out while we hold a session of theirs (this node was
            // taken for dead): count it in again.
            return self.register(&info.user, None);
        }
        let user = info.user.clone();
        if joined {
            self.users.insert(info.user.clone(), UserSlot::of(info));
        } else if !self.replica().local.contains_key(&info.user) {
            self.users.remove(&info.user);
            if self.typing.remove(&info.user).is_some() {
                self.typing_changed();
            }
        }
        let frame = p.slice_ref(frame);
        if !self.presence {
            // A room rule with `presence: false`: kept, not announced.
            return;
        }
        if ours {
            // Their own sessions here joined before this arrived.
            return self.broadcast_to_others(&frame, &user);
        }
        self.broadcast(&frame, except);
    }

    /// Queues `frame` to every member here but `user`'s sessions.
    fn broadcast_to_others(&mut self, frame: &Bytes, user: &UserId) {
        let mut failed = Vec::new();
        let mut sent = 0;
        let fanout = crate::outbox::Fanout::new(frame);
        for m in self.members.values().filter(|m| m.user != *user) {
            if m.outbox
                .push_fanout(&fanout, crate::delivery::Class::Normal)
            {
                sent += 1;
            } else {
                failed.push(m.session);
            }
        }
        crate::metrics::METRICS
            .deliveries
            .fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
        for s in failed {
            self.remove(s);
        }
    }

    fn on_status(&mut self, p: &Bytes, body: &[u8]) {
        let Some((v, frame)) = word(body) else { return };
        if let Some(v) = num(v) {
            let r = self.replica();
            r.version = r.version.max(v);
        }
        #[derive(serde::Deserialize)]
        struct Wire {
            user: String,
            status: Status,
            #[serde(default)]
            activity: Option<String>,
        }
        let Ok(w) = serde_json::from_slice::<Wire>(frame) else {
            return;
        };
        if let Some(slot) = UserId::parse(&w.user).and_then(|u| self.users.get_mut(&u)) {
            slot.status = w.status;
            slot.activity = w.activity.map(Into::into);
        }
        if self.presence {
            self.broadcast(&p.slice_ref(frame), None);
        }
    }

    fn on_typing(&mut self, body: &[u8], ctx: &mut Context<Self>) {
        let Some((_node, rest)) = word(body) else {
            return;
        };
        let Some((user, on)) = word(rest) else { return };
        let Some(user) = std::str::from_utf8(user).ok().and_then(UserId::parse) else {
            return;
        };
        self.apply_typing(user, on == b"1", ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placeholder_seq_is_found_and_cut_out() {
        let f = br#"{"type":"message:receive","room":"r","seq":18446744073709551615,"data":{"seq":18446744073709551615}}"#;
        let (h, t) = split_seq(f).unwrap();
        assert_eq!(h, br#"{"type":"message:receive","room":"r","seq":"#);
        assert_eq!(t, br#","data":{"seq":18446744073709551615}}"#);
    }
}
