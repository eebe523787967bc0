//! The Presence actor: per user, across all their sessions, the status other
//! members see. Online while a session is connected, away after an idle
//! period, offline when the last session leaves; `busy`/`away` when chosen.
//! Every change is encoded once and sent to each room the user is in.

use crate::ids::{now_ms, RoomName, UserId};
use crate::protocol::Status;
use crate::room::{MemberStatus, Room};
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct UserPresence {
    sessions: u32,
    /// What the user chose: online (automatic), away or busy.
    chosen: Status,
    /// Set by the idle sweep when `chosen` is online and nothing happened for a while.
    idle: bool,
    last_active: Instant,
    activity: Option<Arc<str>>,
    /// Rooms the user is in, with the number of their sessions in each.
    rooms: HashMap<RoomName, (Addr<Room>, u32)>,
}

impl UserPresence {
    fn status(&self) -> Status {
        match (self.sessions, self.chosen, self.idle) {
            (0, _, _) => Status::Offline,
            (_, Status::Online, true) => Status::Away,
            (_, s, _) => s,
        }
    }
}

pub struct Presence {
    idle_after: Duration,
    users: HashMap<UserId, UserPresence>,
    /// With several nodes: statuses are combined across nodes in Redis and
    /// published to the user's rooms there (`cluster::scripts`, PRESENCE).
    cluster: Option<crate::cluster::Cluster>,
}

impl Presence {
    pub fn new(idle_after: Duration) -> Presence {
        Presence {
            idle_after,
            users: HashMap::new(),
            cluster: None,
        }
    }

    pub fn with_cluster(mut self, c: Option<crate::cluster::Cluster>) -> Presence {
        self.cluster = c;
        self
    }

    /// Records this node's status of `user` in Redis ('' when it has no
    /// session of theirs left; `rooms` are then the rooms they were in here)
    /// and lets the script announce the status across nodes if it changed
    /// (or always, with `force`: a new activity text).
    fn share(&self, user: &UserId, force: bool, rooms: Vec<RoomName>) {
        let Some(c) = &self.cluster else { return };
        let p = self.users.get(user).filter(|p| p.sessions > 0);
        let status = p.map_or("", |p| p.status().as_str());
        let mut tail = now_ms().to_string();
        if let Some(a) = p.and_then(|p| p.activity.as_deref()) {
            tail.push_str(",\"activity\":");
            tail.push_str(&serde_json::to_string(a).unwrap_or_else(|_| "null".into()));
        }
        let mut args = vec![
            c.node().as_bytes().to_vec(),
            user.as_str().as_bytes().to_vec(),
            status.as_bytes().to_vec(),
            tail.into_bytes(),
            c.prefix().as_bytes().to_vec(),
            if force { b"1".to_vec() } else { b"0".to_vec() },
        ];
        args.extend(rooms.iter().map(|r| r.as_str().as_bytes().to_vec()));
        let fut = c.script(
            crate::cluster::Lua::Presence,
            vec![
                c.user_key(user, "p"),
                c.user_key(user, "rooms"),
                c.key(&format!("node:{}:users", c.node())),
            ],
            args,
        );
        let user = user.clone();
        let activity = p.and_then(|p| p.activity.clone());
        actix::spawn(async move {
            match fut.await {
                // The status across nodes changed here: this node tells the webhook.
                Ok(redis::Value::Array(v)) => {
                    let text = |i: usize| match v.get(i) {
                        Some(redis::Value::BulkString(b)) => {
                            String::from_utf8_lossy(b).into_owned()
                        }
                        _ => String::new(),
                    };
                    let (before, after) = (text(0), text(1));
                    let status =
                        serde_json::from_value::<Status>(serde_json::Value::String(after.clone()));
                    if let (Ok(status), true) = (status, before != after || force) {
                        crate::webhooks::emit(crate::webhooks::Event::PresenceChanged {
                            user: user.as_str(),
                            status,
                            activity: activity.as_deref().filter(|_| status != Status::Offline),
                        });
                    }
                }
                Ok(_) => {}
                Err(e) => log::warn!("presence of {user} not shared: {}", e.message),
            }
        });
    }

    fn update(user: &UserId, p: &UserPresence) -> MemberStatus {
        MemberStatus {
            user: user.clone(),
            status: p.status(),
            activity: p.activity.clone(),
            last_seen: now_ms(),
        }
    }

    /// Sends the user's current status to every room the user is in; each room
    /// encodes it once (with its name) for all its members.
    fn announce(&self, user: &UserId) {
        if self.cluster.is_some() {
            return self.share(user, false, Vec::new());
        }
        if let Some(p) = self.users.get(user) {
            let update = Self::update(user, p);
            crate::webhooks::emit(crate::webhooks::Event::PresenceChanged {
                user: user.as_str(),
                status: update.status,
                activity: update.activity.as_deref().filter(|_| p.sessions > 0),
            });
            for (addr, _) in p.rooms.values() {
                addr.do_send(update.clone());
            }
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
            self.announce(&u);
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
            self.announce(&msg.user);
        } else if first && self.cluster.is_some() {
            self.share(&msg.user, false, Vec::new());
        } else if first {
            crate::webhooks::emit(crate::webhooks::Event::PresenceChanged {
                user: msg.user.as_str(),
                status: Status::Online,
                activity: None,
            });
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
        if p.sessions == 0 && self.cluster.is_some() {
            let rooms = p.rooms.keys().cloned().collect();
            self.share(&msg.user, false, rooms);
            self.users.remove(&msg.user);
            return;
        }
        if p.sessions == 0 {
            // Tell every room the user was in, then forget the user.
            self.announce(&msg.user);
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
    pub addr: Addr<Room>,
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
        // With several nodes the join script announces the status.
        if self.cluster.is_some() {
            return;
        }
        // The room assumes "online" for a new member; correct it if needed.
        if p.status() != Status::Online || p.activity.is_some() {
            msg.addr.do_send(Self::update(&msg.user, p));
        }
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
        if self.cluster.is_some() {
            return self.share(&msg.user, true, Vec::new());
        }
        self.announce(&msg.user);
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
                self.announce(&msg.user);
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

/// `user`'s status and rooms on this node.
#[derive(Message)]
#[rtype(result = "UserView")]
pub struct GetUser(pub UserId);

impl Handler<GetUser> for Presence {
    type Result = MessageResult<GetUser>;

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
        MessageResult(UserView {
            status: p.map_or(Status::Offline, |p| p.status()),
            user: msg.0,
            rooms,
        })
    }
}

/// `user`'s status across nodes (the most present one any node has) and
/// the rooms they are in on any node, from Redis.
pub async fn shared_user(
    c: &crate::cluster::Cluster,
    user: UserId,
) -> Result<UserView, crate::error::HubError> {
    use crate::cluster::scripts::{array, text};
    let statuses = c
        .command(redis::cmd("HVALS").arg(c.user_key(&user, "p")).clone())
        .await?;
    let rooms = c
        .command(
            redis::cmd("SMEMBERS")
                .arg(c.user_key(&user, "rooms"))
                .clone(),
        )
        .await?;
    let status = array(&statuses)
        .iter()
        .filter_map(text)
        .filter_map(|s| match s {
            "online" => Some(Status::Online),
            "busy" => Some(Status::Busy),
            "away" => Some(Status::Away),
            _ => None,
        })
        .max_by_key(|s| match s {
            Status::Online => 3,
            Status::Busy => 2,
            Status::Away => 1,
            Status::Offline => 0,
        })
        .unwrap_or(Status::Offline);
    let mut rooms: Vec<String> = array(&rooms)
        .iter()
        .filter_map(text)
        .filter(|r| !r.starts_with("user:"))
        .map(str::to_string)
        .collect();
    rooms.sort();
    Ok(UserView {
        user,
        status,
        rooms,
    })
}
