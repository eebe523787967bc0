//! What a session does with each parsed client frame: rate limits, joins,
//! leaves, sends to rooms and users, notifications, re-authentication.

use super::*;
use crate::notifications::Page;

impl Session {
    /// Answers a frame its room could not take: `rate_limited` with a retry
    /// hint when the room's queue is full, `internal` when the room is gone.
    pub(super) fn room_refused<M>(
        &self,
        e: SendError<M>,
        id: impl for<'a> Fn(&'a M) -> Option<&'a str>,
    ) {
        match e {
            SendError::Full(m) => self.push(error_frame(
                ErrorCode::RateLimited,
                "the room is busy; retry shortly",
                id(&m),
                Some(ROOM_BUSY_RETRY_MS),
            )),
            SendError::Closed(m) => {
                self.error(ErrorCode::Internal, "room unavailable; rejoin it", id(&m))
            }
        }
    }

    /// Tells Presence the user is active, at most four times per idle period.
    pub(super) fn report_activity(&mut self, now: Instant) {
        if now.duration_since(self.last_activity_report) >= self.shared.cfg.presence_idle / 4 {
            self.last_activity_report = now;
            if let Some(i) = &self.ident {
                self.presence.do_send(presence::Activity {
                    user: i.user.clone(),
                });
            }
        }
    }

    pub(super) fn dispatch(&mut self, req: Request, now: Instant, ctx: &mut Context<Self>) {
        let id = req.id;
        match req.frame {
            ClientFrame::Auth {
                token: Some(token), ..
            } => self.reauth(&token, id, ctx),
            ClientFrame::Auth { token: None, .. } => {
                self.close(close::POLICY, "bad auth frame: auth needs `token`", ctx)
            }
            ClientFrame::Join {
                room,
                since,
                epoch,
                state,
            } => self.join(room, since, epoch, state, id, ctx),
            ClientFrame::Leave { room } => self.leave(room, id),
            ClientFrame::Send { room, data, opts } => {
                if self.limit_messages(now, id.as_deref()) {
                    self.send_message(
                        room,
                        RoomFrame::Send {
                            data,
                            id,
                            opts,
                            received: now,
                        },
                        ctx,
                    );
                }
            }
            ClientFrame::Typing { room, on } => self.send(room, RoomFrame::Typing { on, id }),
            ClientFrame::Direct { to, data } => {
                if self.limit_messages(now, id.as_deref()) {
                    if let Some(i) = &self.ident {
                        let kind = crate::monitor::flow::SenderKind::of(i);
                        let (to, size) = (to.as_str(), data.get().len());
                        crate::monitor::flow::record(
                            crate::monitor::flow::FlowKind::Direct,
                            to,
                            size,
                            kind,
                        );
                    }
                    self.hub.do_send(hub::Direct {
                        session: self.id,
                        to,
                        data,
                        id,
                    });
                }
            }
            ClientFrame::Presence { status, activity } => {
                if let Some(i) = &self.ident {
                    self.presence.do_send(presence::SetStatus {
                        user: i.user.clone(),
                        status,
                        activity,
                    });
                }
            }
            ClientFrame::Ping => self.push(encode(&ServerFrame::Pong { id: id.as_deref() })),
            ClientFrame::Doc(req) => self.doc(req, id, ctx),
            ClientFrame::Mqtt(frame) => {
                if frame.is_publish() && !self.limit_messages(now, id.as_deref()) {
                    return;
                }
                let Some(ident) = &self.ident else { return };
                let caller = crate::mqtt::session::Caller {
                    session: self.id,
                    ident,
                    outbox: &self.outbox,
                    shared: &self.shared,
                };
                if let Err(e) = self.mqtt.handle(frame, id.clone(), &caller) {
                    self.error(e.code, &e.message, id.as_deref());
                }
            }
            ClientFrame::NotificationList { .. } | ClientFrame::NotificationRead { .. } => {
                self.notifications(req.frame, id)
            }
            ClientFrame::HistoryGet { room, page } => self.history_page(room, page, id, ctx),
            ClientFrame::State(req) => self.state(req, id, now),
            ClientFrame::Signal(signal) => self.signal(signal, id, now),
            ClientFrame::Rpc(req) => self.rpc(req, id, now, ctx),
            ClientFrame::Watch(req) => self.watch(req, id, ctx),
            ClientFrame::Stream(req) => self.stream(req, id, now),
        }
    }

    /// `notification:list` and `notification:read`: answered by storage.
    pub(super) fn notifications(&self, frame: ClientFrame, id: Option<String>) {
        let Some(user) = self.ident.as_ref().map(|i| i.user.clone()) else {
            return;
        };
        let outbox = self.outbox.clone();
        let notes = &self.shared.notifications;
        match frame {
            ClientFrame::NotificationList {
                before,
                limit,
                unread_only,
            } => notes.list(
                user,
                Page {
                    before,
                    limit,
                    unread_only,
                },
                outbox,
                id,
            ),
            ClientFrame::NotificationRead { mark } => {
                notes.mark(user, mark, outbox, id, self.hub.clone().recipient())
            }
            _ => {}
        }
    }

    /// Applies the message rate limit; `false` means refused (and answered).
    pub(super) fn limit_messages(&mut self, now: Instant, id: Option<&str>) -> bool {
        if self.privileged_rate() {
            return true;
        }
        match self.messages.take(now) {
            Ok(()) => true,
            Err(wait) => {
                let msg = "message rate limit reached; retry later";
                self.push(error_frame(
                    ErrorCode::RateLimited,
                    msg,
                    id,
                    Some(wait.as_millis() as u64 + 1),
                ));
                false
            }
        }
    }

    pub(super) fn reauth(&mut self, token: &str, id: Option<String>, ctx: &mut Context<Self>) {
        let Some(current) = &self.ident else { return };
        if current.guest {
            self.error(
                ErrorCode::BadRequest,
                "a guest session cannot authenticate; reconnect with the token",
                id.as_deref(),
            );
            return;
        }
        match self.shared.auth.verify(token, self.client.addr) {
            Err(e) => self.close(close::POLICY, &e.message, ctx),
            Ok(new) if new.user != current.user => {
                crate::monitor::events::auth_failure(
                    Some(self.client.addr),
                    "token refresh for another user",
                );
                self.close(close::POLICY, "token is for another user", ctx)
            }
            Ok(new) => {
                self.arm_expiry(new.exp, ctx);
                self.push(encode(&ServerFrame::AuthOk {
                    user: &new.user,
                    exp: new.exp,
                    id: id.as_deref(),
                }));
                self.ident = Some(new);
            }
        }
    }

    pub(super) fn join(
        &mut self,
        room: RoomName,
        since: Option<u64>,
        epoch: Option<String>,
        state: bool,
        id: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let Some(ident) = &self.ident else { return };
        if room.as_str() == crate::monitor::ROOM {
            return self.watch_monitor(id);
        }
        if !self.shared.auth.can_join(ident, &room) {
            self.error(
                ErrorCode::Forbidden,
                &format!("you may not join {room}"),
                id.as_deref(),
            );
            return;
        }
        if self.subscribe_hook_applies(&room) {
            return self.join_through_hook(room, since, epoch, state, id, ctx);
        }
        self.join_allowed(room, since, epoch, state, id, None, ctx);
    }

    /// Joins a room the session may join (its token allows it, the
    /// subscribe hook did, with its `info`, or the server API said so),
    /// within the per-connection room limit.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn join_allowed(
        &mut self,
        room: RoomName,
        since: Option<u64>,
        epoch: Option<String>,
        state: bool,
        id: Option<String>,
        info: Option<Arc<RawValue>>,
        ctx: &mut Context<Self>,
    ) {
        let Some(ident) = &self.ident else { return };
        let personal = room
            .personal_owner()
            .is_some_and(|o| o == ident.user.as_str());
        if !personal && !self.rooms.contains_key(&room) {
            let joined = self
                .rooms
                .keys()
                .filter(|r| r.personal_owner() != Some(ident.user.as_str()))
                .count();
            if joined >= self.shared.cfg.rooms_per_session {
                let msg = format!(
                    "at most {} rooms per connection",
                    self.shared.cfg.rooms_per_session
                );
                self.error(ErrorCode::TooManyRooms, &msg, id.as_deref());
                return;
            }
        }
        let req = hub::Join {
            session: self.id,
            room: room.clone(),
            since,
            epoch,
            id: id.clone(),
            state,
            info,
        };
        // Read no further client frame until the Hub has answered: frames sent
        // right after a join then find the room joined, in order, with no
        // buffer to overflow, and a fast sender is held back by TCP. The Hub
        // never waits on a session, so this cannot deadlock.
        let fut = self
            .hub
            .send(req)
            .into_actor(self)
            .map(move |res, act, _| match res {
                Ok(Ok(addr)) => {
                    act.rooms.insert(room, addr);
                }
                // The room could not be read (Redis unreachable, several nodes).
                Ok(Err(e)) if e.code == ErrorCode::Unavailable => {
                    act.error(e.code, &e.message, id.as_deref());
                }
                res => {
                    let why = hub_answer(res).err().unwrap_or_default();
                    act.error(
                        ErrorCode::Internal,
                        &format!("join failed: {why}"),
                        id.as_deref(),
                    );
                }
            });
        ctx.wait(fut);
    }

    /// Hands a frame to the room without waiting: a room whose queue is full
    /// refuses it explicitly (`rate_limited`), so it is never silently lost.
    pub(super) fn forward(&self, room: &RoomName, addr: &Addr<Room>, p: RoomFrame) {
        match p {
            RoomFrame::Send {
                data,
                id,
                opts,
                received,
            } => {
                let Some(from) = &self.from else { return };
                let size = data.get().len();
                let publish = room::Publish {
                    from: from.clone(),
                    data,
                    id,
                    opts,
                    origin: Origin::Session {
                        session: self.id,
                        outbox: self.outbox.clone(),
                    },
                    received,
                };
                match addr.try_send(publish) {
                    Ok(()) => {
                        if let Some(i) = &self.ident {
                            let kind = crate::monitor::flow::SenderKind::of(i);
                            let room = room.as_str();
                            crate::monitor::flow::record(
                                crate::monitor::flow::FlowKind::Room,
                                room,
                                size,
                                kind,
                            );
                        }
                    }
                    Err(e) => self.room_refused(e, |p| p.id.as_deref()),
                }
            }
            // Typing is volatile: dropped when the room is busy.
            RoomFrame::Typing { on, .. } => {
                let _ = addr.try_send(room::Typing {
                    session: self.id,
                    on,
                });
            }
        }
    }

    pub(super) fn send(&mut self, room: RoomName, p: RoomFrame) {
        match self.rooms.get(&room) {
            Some(addr) => self.forward(&room, addr, p),
            None => {
                let (msg, id) = match p {
                    RoomFrame::Send { id, .. } => (format!("join {room} before sending to it"), id),
                    RoomFrame::Typing { id, .. } => (format!("join {room} first"), id),
                };
                self.error(ErrorCode::NotMember, &msg, id.as_deref());
            }
        }
    }

    pub(super) fn leave(&mut self, room: RoomName, id: Option<String>) {
        if room.as_str() == crate::monitor::ROOM && self.watching {
            self.watching = false;
            if let Some(s) = self.shared.services.get() {
                s.monitor.do_send(crate::monitor::Unwatch {
                    session: self.id,
                    id,
                    notify: true,
                });
            }
            return;
        }
        if self.rooms.remove(&room).is_none() {
            let msg = format!("you are not in {room}");
            return self.error(ErrorCode::NotMember, &msg, id.as_deref());
        }
        self.hub.do_send(hub::Leave {
            session: self.id,
            room,
            id,
        });
    }

    /// `room:join` of the `monitor` channel: admins, or anyone when configured.
    pub(super) fn watch_monitor(&mut self, id: Option<String>) {
        let (Some(ident), Some(s)) = (&self.ident, self.shared.services.get()) else {
            return;
        };
        if !crate::monitor::may_watch(ident, &self.shared.cfg) {
            let msg = "only admins may watch the monitor";
            return self.error(ErrorCode::Forbidden, msg, id.as_deref());
        }
        self.watching = true;
        s.monitor.do_send(crate::monitor::Watch {
            session: self.id,
            outbox: self.outbox.clone(),
            id,
        });
    }
}
