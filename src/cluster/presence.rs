//! The presence engine with Redis (`presence::Engine`): each node records
//! its own status of a user under the user's `p` hash, and the PRESENCE
//! script combines them (the most present status any node has) and, when
//! the combined status changed, publishes it to the user's rooms on every
//! node. A node's entries go with it when it dies (`node.rs`, REAP).

use super::{scripts, Cluster, Lua};
use crate::error::HubError;
use crate::ids::{now_ms, UserId};
use crate::presence::{Engine, MemberStatus, Seen, UserView};
use crate::protocol::Status;
use actix::Recipient;
use futures_util::future::LocalBoxFuture;

/// Presence combined across nodes in Redis.
pub struct Shared(pub Cluster);

impl Shared {
    /// Records this node's status of the user in Redis ('' when it has no
    /// session of theirs left; `with_rooms`: also the rooms they were in here)
    /// and lets the script announce the status across nodes if it changed
    /// (or always, with `force`: a status or activity the user chose).
    fn share(&self, seen: Seen<'_>, force: bool, with_rooms: bool) {
        let c = &self.0;
        let (user, online) = (seen.user, seen.status != Status::Offline);
        let status = if online { seen.status.as_str() } else { "" };
        let activity = seen.activity.cloned();
        let mut tail = now_ms().to_string();
        if let Some(a) = &activity {
            tail.push_str(",\"activity\":");
            tail.push_str(&serde_json::to_string(&**a).unwrap_or_else(|_| "null".into()));
        }
        let mut args = vec![
            c.node().as_bytes().to_vec(),
            user.as_str().as_bytes().to_vec(),
            status.as_bytes().to_vec(),
            tail.into_bytes(),
            c.prefix().as_bytes().to_vec(),
            if force { b"1".to_vec() } else { b"0".to_vec() },
        ];
        if with_rooms {
            args.extend(seen.rooms.keys().map(|r| r.as_str().as_bytes().to_vec()));
        }
        let fut = c.script(
            Lua::Presence,
            vec![
                c.user_key(user, "p"),
                c.user_key(user, "rooms"),
                c.key(&format!("node:{}:users", c.node())),
                c.key("online"),
            ],
            args,
        );
        let user = user.clone();
        actix::spawn(async move {
            match fut.await {
                // The status across nodes changed here: this node tells the webhook.
                Ok(redis::Value::Array(v)) => {
                    let text = |i: usize| v.get(i).and_then(scripts::text).unwrap_or("");
                    let (before, after) = (text(0), text(1));
                    let status = serde_json::from_value::<Status>(after.into());
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
}

impl Engine for Shared {
    fn online(&self, seen: Seen<'_>) {
        self.share(seen, false, false);
    }

    fn changed(&self, seen: Seen<'_>, chosen: bool) {
        self.share(seen, chosen, false);
    }

    fn offline(&self, seen: Seen<'_>) {
        self.share(seen, false, true);
    }

    /// The join script announces the member's status across nodes.
    fn joined(&self, _: Seen<'_>, _: &Recipient<MemberStatus>) {}

    /// The user's status across nodes (the most present one any node has)
    /// and the rooms they are in on any node.
    fn lookup(&self, here: UserView) -> LocalBoxFuture<'static, Result<UserView, HubError>> {
        let c = self.0.clone();
        Box::pin(async move { shared_user(&c, here.user).await })
    }
}

async fn shared_user(c: &Cluster, user: UserId) -> Result<UserView, HubError> {
    use scripts::{array, text};
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
