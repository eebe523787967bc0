//! The notification engine with Redis (`notifications::Inbox`): a user's
//! notifications, their unread set and id counter are the user's keys
//! (`nm`, `nx`, `nu`); the NOTE_* scripts store, page and mark them, and
//! publish the new notification and count on the user's channel (`c`),
//! which every node with a session of the user delivers.

use super::{scripts, Cluster, Lua};
use crate::error::HubError;
use crate::ids::UserId;
use crate::notifications::{Inbox, Page};
use crate::outbox::Outbox;
use crate::protocol::{encode, error_frame, NotificationInfo, ServerFrame};
use crate::store::{Mark, ToUser};
use actix::Recipient;
use futures_util::future::LocalBoxFuture;
use serde_json::value::RawValue;

/// Notifications in Redis, the same on every node.
pub struct Shared {
    pub cluster: Cluster,
    /// How many a user keeps (`SWITCHBOARD_NOTIFICATIONS_PER_USER`).
    pub per_user: usize,
}

impl Inbox for Shared {
    fn add(
        &self,
        users: Vec<UserId>,
        sender: String,
        data: String,
        ts: u64,
        _: Recipient<ToUser>,
    ) -> LocalBoxFuture<'static, Result<Vec<(UserId, u64)>, HubError>> {
        let cluster = &self.cluster;
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
                        self.per_user.to_string().into_bytes(),
                    ],
                )
            })
            .collect();
        Box::pin(async move {
            let mut out = Vec::with_capacity(users.len());
            for (user, call) in users.into_iter().zip(calls) {
                let v = call.await?;
                let id = scripts::array(&v).first().and_then(scripts::int);
                out.push((user, id.unwrap_or(0).max(0) as u64));
            }
            Ok(out)
        })
    }

    fn list(&self, user: UserId, page: Page, outbox: Outbox, id: Option<String>) {
        let cluster = &self.cluster;
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

    /// The script publishes the new count on the user's channel.
    fn mark(
        &self,
        user: UserId,
        mark: Mark,
        outbox: Outbox,
        id: Option<String>,
        _: Recipient<ToUser>,
    ) {
        let cluster = &self.cluster;
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
