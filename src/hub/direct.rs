//! Direct messages: to every session of a user, or into their offline inbox;
//! and what storage hands back for a user (notifications, stored DMs).

use super::*;

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
        let outbox = sender.outbox.clone();
        let directory = self.directory.clone();
        directory.direct(self, msg, outbox, frame, ts);
    }
}

impl Hub {
    /// A direct message on one node: to the user's sessions here, or into
    /// their offline inbox when they have none (`directory::Local`).
    pub(super) fn direct_here(&mut self, msg: Direct, sender: Outbox, frame: Bytes, ts: u64) {
        if !self.users.contains_key(&msg.to) {
            let store = self
                .store
                .as_ref()
                .filter(|s| s.offline_dms > 0 && !is_guest(&msg.to));
            let Some(store) = store else {
                sender.push(error_frame(
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
                outbox: Some(sender.clone()),
                id: msg.id.clone(),
            };
            match store.offer(job) {
                Ok(()) => METRICS.direct_messages.fetch_add(1, Relaxed),
                Err(_) => {
                    sender.push(error_frame(
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
            sender.push(encode(&ServerFrame::Ack { id, seq: None }));
        }
    }
}

impl Handler<crate::store::ToUser> for Hub {
    type Result = ();

    fn handle(&mut self, msg: crate::store::ToUser, _: &mut Context<Self>) {
        let directory = self.directory.clone();
        directory.to_user(self, &msg.user, msg.frames);
    }
}

impl Handler<crate::store::UserLoaded> for Hub {
    type Result = ();

    fn handle(&mut self, msg: crate::store::UserLoaded, _: &mut Context<Self>) {
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
