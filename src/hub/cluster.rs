//! The Hub when nodes share state through Redis: every user with a session
//! here has this node subscribed to the user's channel (direct messages
//! and stored ones reach every node holding a session of theirs), and
//! broadcasts travel on one channel all nodes subscribe to: the Redis
//! engine of the Hub's directory (`Shared`, `directory.rs`). The channels'
//! messages come back to the Hub as `Feed`.

use super::directory::{Directory, Listed, Sent};
use super::*;
use crate::cluster::{scripts, Cluster, Feed, FeedEvent, Lua, Reregister};

impl Hub {
    /// Shares rooms, members, direct messages and broadcasts through Redis.
    pub fn with_cluster(mut self, c: Option<Cluster>) -> Hub {
        self.directory = match &c {
            Some(c) => std::rc::Rc::new(Shared(c.clone())),
            None => std::rc::Rc::new(super::directory::Local),
        };
        self.keeper = match c {
            Some(c) => std::rc::Rc::new(Shared(c)),
            None => std::rc::Rc::new(super::rooms::Local),
        };
        self
    }

    /// Asks `ingestion` before numbering broker messages into mapped rooms.
    pub fn with_ingestion(
        mut self,
        ingestion: std::sync::Arc<dyn crate::mqtt::ingest::Ingestion>,
    ) -> Hub {
        self.ingestion = ingestion;
        self
    }
}

/// Several nodes: the directory engine on Redis (`directory.rs`).
pub(super) struct Shared(Cluster);

impl Shared {
    /// The first session of `user` here: subscribe to their channel, then
    /// take the messages stored for them while they had no session.
    fn user_on(&self, hub: &mut Hub, user: &UserId) {
        let c = &self.0;
        if hub.user_subs.contains_key(user) {
            return;
        }
        let Some(me) = hub.me.clone() else { return };
        let (token, sub) = c.subscribe(c.user_key(user, "c"), me.recipient());
        let (subscribed, ready) = tokio::sync::watch::channel(false);
        hub.user_subs.insert(user.clone(), (token, ready));
        let claim = (!is_guest(user)).then(|| claim(c, user));
        let user = user.clone();
        actix::spawn(async move {
            if sub.await.is_err() {
                log::warn!("user {user}: channel not subscribed yet");
            }
            let _ = subscribed.send(true);
            if let Some(claim) = claim {
                claim.await;
            }
        });
    }

    /// A session of `user` connected: their unread count goes out on the
    /// user's channel, addressed to that session, once the channel is
    /// subscribed — so it is ordered with the live counts and cannot
    /// overtake a newer one.
    fn unread(&self, hub: &Hub, user: &UserId, session: SessionId) {
        let Some((_, ready)) = hub.user_subs.get(user) else {
            return;
        };
        let (c, mut ready, user) = (self.0.clone(), ready.clone(), user.clone());
        actix::spawn(async move {
            let _ = ready.wait_for(|r| *r).await;
            let call = c.script(
                Lua::NoteCount,
                vec![c.user_key(&user, "nu"), c.user_key(&user, "c")],
                vec![format!("{} {}", c.node(), session.0).into_bytes()],
            );
            if let Err(e) = call.await {
                log::warn!("user {user}: unread count not read: {}", e.message);
            }
        });
    }
}

/// Claims the user's stored direct messages (they go out on the user's
/// channel). Runs after the subscription, so none is missed.
fn claim(c: &Cluster, user: &UserId) -> impl std::future::Future<Output = ()> + 'static {
    let keys = vec![
        c.user_key(user, "i"),
        c.user_key(user, "c"),
        c.user_key(user, "d"),
    ];
    let (c, user) = (c.clone(), user.clone());
    async move {
        if let Err(e) = c.script(Lua::Claim, keys, Vec::new()).await {
            log::warn!("user {user}: stored messages not read: {}", e.message);
        }
    }
}

impl Directory for Shared {
    /// Subscribes to the broadcast channel and this node's channel (tool
    /// calls, signals), and asks to hear of re-registrations.
    fn start(&self, hub: &mut Hub, ctx: &mut Context<Hub>) {
        let c = &self.0;
        crate::cluster::on_reregister(ctx.address().recipient());
        let (_, sub) = c.subscribe(c.key("bcast"), ctx.address().recipient());
        ctx.wait(sub.into_actor(hub).map(|r, _, _| {
            if let Err(e) = r {
                log::warn!("broadcast channel: {}", e.message);
            }
        }));
        let chan = super::signal::signal_chan(c, c.node());
        let (_, sub) = c.subscribe(chan, ctx.address().recipient());
        ctx.wait(sub.into_actor(hub).map(|r, _, _| {
            if let Err(e) = r {
                log::warn!("signal channel: {}", e.message);
            }
        }));
    }

    /// The user's channel brings their unread count and stored messages.
    fn connected(
        &self,
        hub: &mut Hub,
        user: &UserId,
        session: SessionId,
        guest: bool,
        _: &mut Context<Hub>,
    ) {
        self.user_on(hub, user);
        if !guest {
            self.unread(hub, user, session);
        }
    }

    fn gone(&self, hub: &mut Hub, user: &UserId) {
        if let Some((token, _)) = hub.user_subs.remove(user) {
            self.0.unsubscribe(self.0.user_key(user, "c"), token);
        }
    }

    /// To every node with a session of the user, or into their stored
    /// messages when there is none.
    fn direct(&self, hub: &mut Hub, msg: Direct, sender: Outbox, frame: Bytes, _: u64) {
        let c = &self.0;
        let store = hub
            .store
            .as_ref()
            .filter(|s| s.offline_dms > 0 && !is_guest(&msg.to));
        let cap = store.map_or(0, |s| s.offline_dms);
        let fut = c.script(
            Lua::Direct,
            vec![
                c.user_key(&msg.to, "c"),
                c.user_key(&msg.to, "i"),
                c.user_key(&msg.to, "d"),
            ],
            vec![
                frame.to_vec(),
                cap.to_string().into_bytes(),
                if cap > 0 {
                    b"1".to_vec()
                } else {
                    b"0".to_vec()
                },
            ],
        );
        actix::spawn(async move {
            let id = msg.id.as_deref();
            let reply = match fut.await {
                Ok(v) => {
                    let a = scripts::array(&v);
                    let n = a.first().and_then(scripts::int).unwrap_or(0);
                    let stored = a.get(1).and_then(scripts::int) == Some(1);
                    match (n, stored, id) {
                        (n, _, Some(id)) if n > 0 => {
                            Some(encode(&ServerFrame::Ack { id, seq: None }))
                        }
                        (_, true, Some(id)) => {
                            Some(encode(&ServerFrame::AckOffline { id, offline: true }))
                        }
                        (0, false, _) => Some(error_frame(
                            ErrorCode::UserOffline,
                            &format!("user {} has no open session", msg.to),
                            id,
                            None,
                        )),
                        _ => None,
                    }
                }
                Err(e) => Some(error_frame(e.code, &e.message, id, Some(500))),
            };
            METRICS.direct_messages.fetch_add(1, Relaxed);
            if let Some(f) = reply {
                sender.push(f);
            }
        });
    }

    /// To the user's sessions on every node, in this order.
    fn to_user(&self, _: &mut Hub, user: &UserId, frames: Vec<Bytes>) {
        let c = &self.0;
        for f in frames {
            let cmd = redis::cmd("PUBLISH")
                .arg(c.user_key(user, "c"))
                .arg(&f[..])
                .clone();
            let fut = c.command(cmd);
            actix::spawn(async move {
                let _ = fut.await;
            });
        }
    }

    /// Every node (this one too) delivers it from the channel; answers how
    /// many sessions of this node will (others count their own).
    fn broadcast(&self, hub: &mut Hub, frame: Bytes) -> usize {
        let c = &self.0;
        let fut = c.command(
            redis::cmd("PUBLISH")
                .arg(c.key("bcast"))
                .arg(&frame[..])
                .clone(),
        );
        actix::spawn(async move {
            if let Err(e) = fut.await {
                log::warn!("broadcast not sent: {}", e.message);
            }
        });
        hub.sessions.len()
    }

    /// Every node with a session of the user (this one too) is subscribed
    /// to their channel and acts on its own sessions (`C<json>`).
    fn order(
        &self,
        _: &mut Hub,
        user: UserId,
        action: Action,
    ) -> ResponseFuture<Result<bool, HubError>> {
        let c = &self.0;
        let mut payload = b"C".to_vec();
        if serde_json::to_writer(&mut payload, &action).is_err() {
            return Box::pin(std::future::ready(Err(HubError::new(
                ErrorCode::Internal,
                "action not encoded",
            ))));
        }
        let fut = c.command(
            redis::cmd("PUBLISH")
                .arg(c.user_key(&user, "c"))
                .arg(payload)
                .clone(),
        );
        Box::pin(async move { Ok(scripts::int(&fut.await?).unwrap_or(0) > 0) })
    }

    /// On the node's channel (`signal.rs` and `rpc.rs` say what goes there).
    fn to_node(&self, node: &str, payload: Vec<u8>) -> Option<Sent> {
        let c = &self.0;
        let cmd = redis::cmd("PUBLISH")
            .arg(super::signal::signal_chan(c, node))
            .arg(payload)
            .clone();
        let fut = c.command(cmd);
        Some(Box::pin(async move {
            // No node listens there: that node is gone.
            Ok(scripts::int(&fut.await?) != Some(0))
        }))
    }

    /// The sessions listed in the user's personal room.
    fn sessions_of(&self, user: &UserId) -> Option<Listed> {
        let c = &self.0;
        let key = c.room_key(&RoomName::personal(user), "ses");
        let fut = c.command(redis::cmd("HKEYS").arg(key).clone());
        Some(Box::pin(async move {
            Ok(scripts::array(&fut.await?)
                .iter()
                .filter_map(scripts::text)
                .filter_map(crate::ids::SessionAddr::parse)
                .collect())
        }))
    }

    /// What arrived on the broadcast channel, this node's channel or a
    /// user's channel.
    fn feed(&self, hub: &mut Hub, msg: Feed) {
        let c = &self.0;
        if *msg.chan == c.key("bcast") {
            if let FeedEvent::Message(f) = msg.event {
                hub.deliver_all(&f);
            }
            return;
        }
        if *msg.chan == super::signal::signal_chan(c, c.node()) {
            return hub.on_signal_feed(msg);
        }
        let user = msg
            .chan
            .strip_prefix(&format!("{}:{{u:", c.prefix()))
            .and_then(|s| s.strip_suffix("}:c"))
            .and_then(UserId::parse);
        let Some(user) = user else { return };
        match msg.event {
            // `S<node> <session> <frame>`: for one session.
            FeedEvent::Message(f) if f.first() == Some(&b'S') => {
                if let Some((session, frame)) = addressed(&f, c.node()) {
                    if let Some(s) = hub.sessions.get(&session) {
                        if s.from.user == user && s.outbox.push(frame) {
                            METRICS.deliveries.fetch_add(1, Relaxed);
                        }
                    }
                }
            }
            // `C<json>`: an order of the server API (`users.rs`).
            FeedEvent::Message(f) if f.first() == Some(&b'C') => {
                hub.act_on_order(&user, &f[1..]);
            }
            FeedEvent::Message(f) => {
                hub.push_user(&user, &f);
            }
            // Messages sent while this node was not subscribed were stored.
            FeedEvent::Resync if !is_guest(&user) => {
                actix::spawn(claim(c, &user));
            }
            FeedEvent::Resync => {}
        }
    }
}

impl Handler<Feed> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Feed, _: &mut Context<Self>) {
        let d = self.directory.clone();
        d.feed(self, msg);
    }
}

/// The session and frame of `S<node> <session> <frame>` when `node` is this one.
fn addressed(f: &Bytes, node: &str) -> Option<(SessionId, Bytes)> {
    let rest = f.strip_prefix(b"S")?.strip_prefix(node.as_bytes())?;
    let rest = rest.strip_prefix(b" ")?;
    let sp = rest.iter().position(|b| *b == b' ')?;
    let session = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
    let start = f.len() - rest.len() + sp + 1;
    Some((SessionId(session), f.slice(start..)))
}

impl Handler<Reregister> for Hub {
    type Result = ();

    fn handle(&mut self, _: Reregister, _: &mut Context<Self>) {
        for (name, r) in &self.rooms {
            r.addr.do_send(Feed {
                chan: name.as_str().into(),
                event: FeedEvent::Resync,
            });
        }
    }
}

/// Several nodes: rooms are Redis's (`rooms.rs`).
impl super::rooms::Keeper for Shared {
    /// Its actor is this node's replica of the room.
    fn room(&self, room: Room) -> Room {
        room.with_cluster(Some(self.0.clone()))
    }

    /// Nothing is kept idle: the next start reads the room from Redis.
    fn freed(&self, _: &mut Hub, _: RoomName, _: History) {}

    fn history(
        &self,
        hub: &Hub,
        room: RoomName,
        since: u64,
        limit: usize,
    ) -> ResponseFuture<Option<HistoryView>> {
        let read = room::read_history(&self.0, &room, hub.history);
        Box::pin(async move {
            let (h, _) = read.await?;
            Some(HistoryView::of(&h, since, limit))
        })
    }

    fn scrollback(
        &self,
        _: &Hub,
        room: &RoomName,
        req: crate::scrollback::PageRequest,
    ) -> crate::scrollback::Plan {
        crate::scrollback::Plan::shared(room, req, &self.0)
    }

    /// Members on every node, as the room's member hash has them.
    fn members(&self, _: &Hub, room: &RoomName) -> ResponseFuture<Vec<MemberInfo>> {
        Box::pin(room::read_members(&self.0, room))
    }
}
