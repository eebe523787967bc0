//! Where a user's presence is combined and announced: the seam between the
//! Presence actor (which counts this node's sessions and keeps the status
//! they chose) and whatever tells the user's rooms.
//!
//! [`Local`] is the one-node engine: the user's status is what this node
//! says, sent to each room the user is in. The several-node engine
//! (`cluster::presence::Shared`) records this node's status in Redis,
//! where a script combines every node's and announces a change to the
//! user's rooms on every node. The actor is the same either way.

use super::{MemberStatus, UserView};
use crate::error::HubError;
use crate::ids::{now_ms, RoomName, UserId};
use crate::protocol::Status;
use actix::Recipient;
use futures_util::future::LocalBoxFuture;
use std::collections::HashMap;
use std::sync::Arc;

/// What this node knows of a user at a change.
pub struct Seen<'a> {
    pub user: &'a UserId,
    /// Offline once the user has no session left here.
    pub status: Status,
    /// Their activity text (none once offline).
    pub activity: Option<&'a Arc<str>>,
    /// The rooms the user is (or, once offline, was) in on this node.
    pub rooms: &'a HashMap<RoomName, (Recipient<MemberStatus>, u32)>,
}

impl Seen<'_> {
    fn update(&self) -> MemberStatus {
        MemberStatus {
            user: self.user.clone(),
            status: self.status,
            activity: self.activity.cloned(),
            last_seen: now_ms(),
        }
    }

    fn webhook(&self) {
        crate::webhooks::emit(crate::webhooks::Event::PresenceChanged {
            user: self.user.as_str(),
            status: self.status,
            activity: self.activity.map(|a| &**a),
        });
    }
}

/// What the Presence actor asks of its engine. Each call is made on the
/// actor's thread and returns at once; shared engines finish in the background.
pub trait Engine: 'static {
    /// The user's first session here opened (they were offline here).
    fn online(&self, seen: Seen<'_>);
    /// The user's status or activity here changed; `chosen` when they set it
    /// themselves (`presence:update`, announced even if nothing changed).
    fn changed(&self, seen: Seen<'_>, chosen: bool);
    /// The user's last session here closed (`seen.status` is offline).
    fn offline(&self, seen: Seen<'_>);
    /// A session of the user joined `room` (which assumes "online").
    fn joined(&self, seen: Seen<'_>, room: &Recipient<MemberStatus>);
    /// The user as the server API shows them, given what this node knows.
    fn lookup(&self, here: UserView) -> LocalBoxFuture<'static, Result<UserView, HubError>>;
}

/// One node: this node's view is the user's presence.
pub struct Local;

impl Local {
    fn announce(seen: &Seen<'_>) {
        seen.webhook();
        let update = seen.update();
        for (addr, _) in seen.rooms.values() {
            addr.do_send(update.clone());
        }
    }
}

impl Engine for Local {
    fn online(&self, seen: Seen<'_>) {
        seen.webhook();
    }

    fn changed(&self, seen: Seen<'_>, _chosen: bool) {
        Local::announce(&seen);
    }

    fn offline(&self, seen: Seen<'_>) {
        Local::announce(&seen);
    }

    fn joined(&self, seen: Seen<'_>, room: &Recipient<MemberStatus>) {
        // The room assumes "online" for a new member; correct it if needed.
        if seen.status != Status::Online || seen.activity.is_some() {
            room.do_send(seen.update());
        }
    }

    fn lookup(&self, here: UserView) -> LocalBoxFuture<'static, Result<UserView, HubError>> {
        Box::pin(std::future::ready(Ok(here)))
    }
}
