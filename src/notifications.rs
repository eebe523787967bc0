//! Where a user's notifications live, behind one interface: the embedded
//! database on one node (jobs of its writer, `store/notifications.rs`), or
//! Redis when nodes share state, so that every node lists, counts and marks
//! the same ones (scripts `NOTE_*` in `cluster/scripts.rs`, keys in
//! docs/SCALEOUT.md). Either way a new notification and each change of the
//! unread count reach every session of the user, on every node.

use crate::cluster::{scripts, Cluster, Lua};
use crate::error::HubError;
use crate::hub::Hub;
use crate::ids::UserId;
use crate::outbox::Outbox;
use crate::protocol::{encode, error_frame, NotificationInfo, ServerFrame};
use crate::store::{self, Job, Mark, StoreHandle};
use actix::Addr;
use serde_json::value::RawValue;

#[derive(Clone)]
pub enum Notifications {
    /// One node: the embedded database.
    Local(StoreHandle),
    /// Several nodes: the user's keys in Redis.
    Shared { cluster: Cluster, per_user: usize },
}

/// A page request of `notification:list`.
pub struct Page {
    pub before: Option<u64>,
    pub limit: usize,
    pub unread_only: bool,
}

impl Notifications {
    pub fn new(store: StoreHandle, cluster: Option<Cluster>, per_user: usize) -> Notifications {
        match cluster {
            Some(cluster) => Notifications::Shared { cluster, per_user },
            None => Notifications::Local(store),
        }
    }

    /// Stores one notification per user, each then pushed
    /// (`notification:new`, `notification:count`) to the user's sessions.
    /// Answers each user's notification id.
    pub async fn add(
        &self,
        users: Vec<UserId>,
        sender: String,
        data: String,
        ts: u64,
        hub: Addr<Hub>,
    ) -> Result<Vec<(UserId, u64)>, HubError> {
        let (cluster, per_user) = match self {
            Notifications::Local(store) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                store.send(Job::Notify {
                    users,
                    sender,
                    data,
                    ts,
                    hub,
                    reply: tx,
                });
                return store::reply(rx).await;
            }
            Notifications::Shared { cluster, per_user } => (cluster, *per_user),
        };
        // Queued together, so they run in this order; awaited after.
        let calls: Vec<_> = users
            .iter()
            .map(|u| {
                cluster.script(
                    Lua::NoteAdd,
                    keys(cluster, u, &["nm", "nx", "nu", "c"]),
                    vec![
                        sender.clone().into_bytes(),
                        data.clone().into_bytes(),
                        ts.to_string().into_bytes(),
                        per_user.to_string().into_bytes(),
                    ],
                )
            })
            .collect();
        let mut out = Vec::with_capacity(users.len());
        for (user, call) in users.into_iter().zip(calls) {
            let v = call.await?;
            let id = scripts::array(&v).first().and_then(scripts::int);
            out.push((user, id.unwrap_or(0).max(0) as u64));
        }
        Ok(out)
    }

    /// `notification:list`: answers a `notification:page` (or an error) on `outbox`.
    pub fn list(&self, user: UserId, page: Page, outbox: Outbox, id: Option<String>) {
        let cluster = match self {
            Notifications::Local(store) => {
                return store.send(Job::ListNotifications {
                    user,
                    before: page.before,
                    limit: page.limit,
                    unread_only: page.unread_only,
                    outbox,
                    id,
                })
            }
            Notifications::Shared { cluster, .. } => cluster,
        };
        let call = cluster.script(
            Lua::NoteList,
            keys(cluster, &user, &["nx", "nu"]),
            vec![
                page.before.unwrap_or(0).to_string().into_bytes(),
                page.limit.to_string().into_bytes(),
                if page.unread_only { b"1" } else { b"0" }.to_vec(),
            ],
        );
        actix::spawn(async move {
            match call.await {
                Ok(v) => outbox.push(page_frame(&v, id.as_deref())),
                Err(e) => outbox.push(error_frame(e.code, &e.message, id.as_deref(), None)),
            };
        });
    }

    /// `notification:read`: an `ack` to the sender (with an `id`), the new
    /// unread count to every session of the user.
    pub fn mark(
        &self,
        user: UserId,
        mark: Mark,
        outbox: Outbox,
        id: Option<String>,
        hub: Addr<Hub>,
    ) {
        let cluster = match self {
            Notifications::Local(store) => {
                return store.send(Job::MarkRead {
                    user,
                    mark,
                    outbox,
                    id,
                    hub,
                })
            }
            Notifications::Shared { cluster, .. } => cluster,
        };
        let mut args = vec![if matches!(mark, Mark::All) {
            b"1"
        } else {
            b"0"
        }
        .to_vec()];
        if let Mark::Ids(ids) = &mark {
            args.extend(ids.iter().map(|i| i.to_string().into_bytes()));
        }
        let call = cluster.script(Lua::NoteRead, keys(cluster, &user, &["nu", "c"]), args);
        actix::spawn(async move {
            let frame = match (call.await, &id) {
                (Ok(_), Some(id)) => encode(&ServerFrame::Ack { id, seq: None }),
                (Ok(_), None) => return,
                (Err(e), id) => error_frame(e.code, &e.message, id.as_deref(), None),
            };
            outbox.push(frame);
        });
    }
}

fn keys(c: &Cluster, user: &UserId, parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| c.user_key(user, p)).collect()
}

/// `notification:page` from NOTE_LIST's answer.
fn page_frame(v: &redis::Value, id: Option<&str>) -> bytes::Bytes {
    let a = scripts::array(v);
    let rows: Vec<(u64, &str, &str, u64, bool)> = a
        .first()
        .map(scripts::array)
        .unwrap_or_default()
        .iter()
        .filter_map(|r| match scripts::array(r) {
            [id, from, data, ts, unread] => Some((
                scripts::int(id)?.max(0) as u64,
                scripts::text(from)?,
                scripts::text(data)?,
                scripts::int(ts)?.max(0) as u64,
                scripts::int(unread)? == 0,
            )),
            _ => None,
        })
        .collect();
    // Stored by this server from JSON it had checked: these parse.
    let items: Vec<NotificationInfo> = rows
        .iter()
        .filter_map(|(id, from, data, ts, read)| {
            Some(NotificationInfo {
                id: *id,
                from: serde_json::from_str::<&RawValue>(from).ok()?,
                data: serde_json::from_str::<&RawValue>(data).ok()?,
                ts: *ts,
                read: *read,
            })
        })
        .collect();
    encode(&ServerFrame::NotificationPage {
        notifications: &items,
        unread: a.get(2).and_then(scripts::int).unwrap_or(0).max(0) as u64,
        more: a.get(1).and_then(scripts::int) == Some(1),
        id,
    })
}
