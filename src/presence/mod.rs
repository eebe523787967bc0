//! The Presence actor: per user, across all their sessions, the status other
//! members see. Online while a session is connected, away after an idle
//! period, offline when the last session leaves; `busy`/`away` when chosen.
//! Every change is encoded once and sent to each room the user is in, by
//! the presence engine (`engine.rs`): this node alone, or Redis combining
//! every node's view.

mod engine;

pub use engine::{Engine, Local, Seen};

use crate::error::HubError;
use crate::ids::{RoomName, UserId};
use crate::protocol::Status;
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// To each room a user is in, from the Presence actor: the user's status
/// changed (the room records it and sends a `presence:update` naming itself).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct MemberStatus {
    pub user: UserId,
    pub status: Status,
    pub activity: Option<Arc<str>>,
    pub last_seen: u64,
}

struct UserPresence {
    sessions: u32,
    /// What the user chose: online (automatic), away or busy.
    chosen: Status,
    /// Set by the idle sweep when `chosen` is online and nothing happened for a while.
    idle: bool,
    last_active: Instant,
    activity: Option<Arc<str>>,
    /// Rooms the user is in, with the number of their sessions in each.
    rooms: HashMap<RoomName, (Recipient<MemberStatus>, u32)>,
}

impl UserPresence {
    fn status(&self) -> Status {
        match (self.sessions, self.chosen, self.idle) {
            (0, _, _) => Status::Offline,
            (_, Status::Online, true) => Status::Away,
            (_, s, _) => s,
        }
    }

    fn seen<'a>(&'a self, user: &'a UserId) -> Seen<'a> {
        Seen {
            user,
            status: self.status(),
            // Offline has no activity, whichever engine announces it.
            activity: self.activity.as_ref().filter(|_| self.sessions > 0),
            rooms: &self.rooms,
        }
    }
}

pub struct Presence {
    idle_after: Duration,
    users: HashMap<UserId, UserPresence>,
    /// Who combines and announces statuses (`engine.rs`).
    engine: Box<dyn Engine>,
}

impl Presence {
    pub fn new(idle_after: Duration) -> Presence {
        Presence {
            idle_after,
            users: HashMap::new(),
            engine: Box::new(Local),
        }
    }

    /// Combines and announces statuses through `engine` instead of [`Local`].
    pub fn with_engine(mut self, engine: Box<dyn Engine>) -> Presence {
        self.engine = engine;
        self
    }

    /// Tells the engine the user's status (or activity) changed here.
    fn announce(&self, user: &UserId, chosen: bool) {
        if let Some(p) = self.users.get(user) {
            self.engine.changed(p.seen(user), chosen);
        }
    }

    fn sweep(&mut self) {
        let now = Instant::now();
        let mut changed = Vec::new();
        for (u, p) in self.users.iter_mut() {
            if !p.idle && p.sessions > 0 && now.duration_since(p.last_active) >= self.idle_after {
                let before = p.status();
                p.idle = true;
                if p.status() != before {
                    changed.push(u.clone());
                }
            }
        }
        for u in changed {
            self.announce(&u, false);
        }
    }
}

/// This node was taken for dead and came back: its users' statuses were
/// removed from the shared presence, so each is shared again.
impl Handler<crate::cluster::Reregister> for Presence {
    type Result = ();

    fn handle(&mut self, _: crate::cluster::Reregister, _: &mut Context<Self>) {
        for (user, p) in &self.users {
            if p.sessions > 0 {
                self.engine.online(p.seen(user));
            }
        }
    }
}

impl Actor for Presence {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(usize::MAX >> 4);
        let every = (self.idle_after / 4).clamp(Duration::from_millis(20), Duration::from_secs(5));
        ctx.run_interval(every, |act, _| act.sweep());
    }
}

/// A session of `user` connected.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Opened {
    pub user: UserId,
    pub name: Arc<str>,
}

impl Handler<Opened> for Presence {
    type Result = ();

    fn handle(&mut self, msg: Opened, _: &mut Context<Self>) {
        let p = self
            .users
            .entry(msg.user.clone())
            .or_insert_with(|| UserPresence {
                sessions: 0,
                chosen: Status::Online,
                idle: false,
                last_active: Instant::now(),
                activity: None,
                rooms: HashMap::new(),
            });
        p.sessions += 1;
        p.last_active = Instant::now();
        let first = p.sessions == 1;
        if p.idle {
            p.idle = false;
            self.engine.changed(p.seen(&msg.user), false);
        } else if first {
            self.engine.online(p.seen(&msg.user));
        }
    }
}

/// A session of `user` ended; it was in `rooms`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Closed {
    pub user: UserId,
    pub rooms: Vec<RoomName>,
}

impl Handler<Closed> for Presence {
    type Result = ();

    fn handle(&mut self, msg: Closed, _: &mut Context<Self>) {
        let Some(p) = self.users.get_mut(&msg.user) else {
            return;
        };
        p.sessions = p.sessions.saturating_sub(1);
        if p.sessions == 0 {
            // Tell every room the user was in, then forget the user.
            self.engine.offline(p.seen(&msg.user));
            self.users.remove(&msg.user);
            return;
        }
        for room in msg.rooms {
            if let Some((_, n)) = p.rooms.get_mut(&room) {
                *n -= 1;
                if *n == 0 {
                    p.rooms.remove(&room);
                }
            }
        }
    }
}

/// A session of `user` joined `room`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JoinedRoom {
    pub user: UserId,
    pub room: RoomName,
    /// The room, told of the user's status there.
    pub addr: Recipient<MemberStatus>,
}

impl Handler<JoinedRoom> for Presence {
    type Result = ();

    fn handle(&mut self, msg: JoinedRoom, _: &mut Context<Self>) {
        let Some(p) = self.users.get_mut(&msg.user) else {
            return;
        };
        let slot = p.rooms.entry(msg.room).or_insert((msg.addr.clone(), 0));
        slot.0 = msg.addr.clone();
        slot.1 += 1;
        self.engine.joined(p.seen(&msg.user), &msg.addr);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct LeftRoom {
    pub user: UserId,
    pub room: RoomName,
}

impl Handler<LeftRoom> for Presence {
    type Result = ();

    fn handle(&mut self, msg: LeftRoom, _: &mut Context<Self>) {
        if let Some(p) = self.users.get_mut(&msg.user) {
            if let Some((_, n)) = p.rooms.get_mut(&msg.room) {
                *n -= 1;
                if *n == 0 {
                    p.rooms.remove(&msg.room);
                }
            }
        }
    }
}

/// `presence:update` from a client.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetStatus {
    pub user: UserId,
    pub status: Status,
    pub activity: Option<String>,
}

impl Handler<SetStatus> for Presence {
    type Result = ();

    fn handle(&mut self, msg: SetStatus, _: &mut Context<Self>) {
        let Some(p) = self.users.get_mut(&msg.user) else {
            return;
        };
        p.chosen = msg.status;
        p.activity = msg.activity.map(Arc::from);
        p.idle = false;
        p.last_active = Instant::now();
        self.announce(&msg.user, true);
    }
}

/// The user did something (sent a frame). Sessions send this at most a few
/// times per idle period.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Activity {
    pub user: UserId,
}

impl Handler<Activity> for Presence {
    type Result = ();

    fn handle(&mut self, msg: Activity, _: &mut Context<Self>) {
        let Some(p) = self.users.get_mut(&msg.user) else {
            return;
        };
        p.last_active = Instant::now();
        if p.idle {
            let before = p.status();
            p.idle = false;
            if p.status() != before {
                self.announce(&msg.user, false);
            }
        }
    }
}

/// A user's presence as the server API shows it (`GET /api/users/{user}/presence`).
#[derive(serde::Serialize)]
pub struct UserView {
    pub user: UserId,
    pub status: Status,
    /// The rooms they are in (personal rooms left out), sorted.
    pub rooms: Vec<String>,
}

/// `user`'s status and rooms (on this node, or across nodes: the engine's answer).
#[derive(Message)]
#[rtype(result = "Result<UserView, HubError>")]
pub struct GetUser(pub UserId);

impl Handler<GetUser> for Presence {
    type Result = ResponseFuture<Result<UserView, HubError>>;

    fn handle(&mut self, msg: GetUser, _: &mut Context<Self>) -> Self::Result {
        let p = self.users.get(&msg.0).filter(|p| p.sessions > 0);
        let mut rooms: Vec<String> = p
            .map(|p| {
                p.rooms
                    .keys()
                    .filter(|r| r.personal_owner().is_none())
                    .map(|r| r.as_str().to_string())
                    .collect()
            })
            .unwrap_or_default();
        rooms.sort();
        self.engine.lookup(UserView {
            status: p.map_or(Status::Offline, |p| p.status()),
            user: msg.0,
            rooms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// What an engine was asked, one line per call.
    #[derive(Clone, Default)]
    struct Calls(Arc<Mutex<Vec<String>>>);

    impl Calls {
        fn push(&self, line: String) {
            self.0.lock().unwrap().push(line);
        }
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    /// An engine that writes down each call (what `Shared` would share).
    struct Recorder(Calls);

    impl Engine for Recorder {
        fn online(&self, s: Seen<'_>) {
            self.0
                .push(format!("online {} {}", s.user, s.status.as_str()));
        }
        fn changed(&self, s: Seen<'_>, chosen: bool) {
            let a = s.activity.map_or("-", |a| &**a);
            let line = format!("changed {} {} {a} {chosen}", s.user, s.status.as_str());
            self.0.push(line);
        }
        fn offline(&self, s: Seen<'_>) {
            let line = format!(
                "offline {} {} rooms={}",
                s.user,
                s.status.as_str(),
                s.rooms.len()
            );
            self.0.push(line);
        }
        fn joined(&self, s: Seen<'_>, _: &Recipient<MemberStatus>) {
            self.0
                .push(format!("joined {} {}", s.user, s.status.as_str()));
        }
        fn lookup(&self, here: UserView) -> LocalBoxFuture<'static, Result<UserView, HubError>> {
            Box::pin(std::future::ready(Ok(here)))
        }
    }

    /// A room that writes down the statuses it is told.
    struct Room(Calls);

    impl Actor for Room {
        type Context = Context<Self>;
    }

    impl Handler<MemberStatus> for Room {
        type Result = ();
        fn handle(&mut self, m: MemberStatus, _: &mut Context<Self>) {
            let a = m.activity.as_deref().unwrap_or("-");
            self.0.push(format!("{} {} {a}", m.user, m.status.as_str()));
        }
    }

    use futures_util::future::LocalBoxFuture;

    fn user(u: &str) -> UserId {
        UserId::parse(u).unwrap()
    }

    fn opened(u: &str) -> Opened {
        Opened {
            user: user(u),
            name: u.into(),
        }
    }

    fn closed(u: &str, rooms: &[&str]) -> Closed {
        Closed {
            user: user(u),
            rooms: rooms.iter().map(|r| RoomName::parse(r).unwrap()).collect(),
        }
    }

    fn set(u: &str, status: Status, activity: Option<&str>) -> SetStatus {
        SetStatus {
            user: user(u),
            status,
            activity: activity.map(str::to_string),
        }
    }

    /// The actor counts sessions and asks the engine once per change of the
    /// user's presence on this node: one `online` for two sessions, one
    /// `offline` (with the rooms they were in) when the last one closes.
    #[test]
    fn the_actor_asks_its_engine_once_per_change() {
        actix::System::new().block_on(async {
            let calls = Calls::default();
            let engine = Box::new(Recorder(calls.clone()));
            let p = Presence::new(Duration::from_secs(60))
                .with_engine(engine)
                .start();
            let room = Room(Calls::default()).start().recipient();
            p.send(opened("alice")).await.unwrap();
            p.send(opened("alice")).await.unwrap();
            let joined = JoinedRoom {
                user: user("alice"),
                room: RoomName::parse("lobby").unwrap(),
                addr: room,
            };
            p.send(joined).await.unwrap();
            p.send(set("alice", Status::Busy, Some("in a call")))
                .await
                .unwrap();
            // The session that never joined lobby, then the one that did.
            p.send(closed("alice", &[])).await.unwrap();
            p.send(closed("alice", &["lobby"])).await.unwrap();
            // A user the actor never saw open is not announced.
            p.send(closed("bob", &[])).await.unwrap();
            assert_eq!(
                calls.take(),
                [
                    "online alice online",
                    "joined alice online",
                    "changed alice busy in a call true",
                    "offline alice offline rooms=1",
                ]
            );
        });
    }

    /// The one-node engine tells each room the user is in, and corrects a
    /// room that assumed "online" for a user who had chosen otherwise.
    #[test]
    fn the_local_engine_tells_the_users_rooms() {
        actix::System::new().block_on(async {
            let told = Calls::default();
            let p = Presence::new(Duration::from_secs(60)).start();
            let room = Room(told.clone()).start();
            p.send(opened("alice")).await.unwrap();
            p.send(set("alice", Status::Away, None)).await.unwrap();
            let joined = JoinedRoom {
                user: user("alice"),
                room: RoomName::parse("lobby").unwrap(),
                addr: room.clone().recipient(),
            };
            p.send(joined).await.unwrap();
            p.send(set("alice", Status::Busy, Some("typing")))
                .await
                .unwrap();
            let view = p.send(GetUser(user("alice"))).await.unwrap().unwrap();
            assert_eq!(
                (view.status, view.rooms),
                (Status::Busy, vec!["lobby".into()])
            );
            p.send(closed("alice", &["lobby"])).await.unwrap();
            // The room's mailbox has what the Presence actor sent before this.
            room.send(MemberStatus {
                user: user("end"),
                status: Status::Offline,
                activity: None,
                last_seen: 0,
            })
            .await
            .unwrap();
            assert_eq!(
                told.take(),
                [
                    "alice away -",
                    "alice busy typing",
                    "alice offline -",
                    "end offline -",
                ]
            );
            let view = p.send(GetUser(user("alice"))).await.unwrap().unwrap();
            assert_eq!(view.status, Status::Offline);
        });
    }
}
