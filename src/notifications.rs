//! Where a user's notifications live: the seam between the Hub, sessions
//! and the API (who add, list and mark them) and whatever keeps them.
//!
//! [`Local`] is the one-node engine: the embedded database (jobs of its
//! writer, `store/notifications.rs`). The several-node engine
//! (`cluster::inbox::Shared`) keeps them in Redis, so that every node
//! lists, counts and marks the same ones (scripts `NOTE_*`, keys in
//! docs/SCALEOUT.md). Either way a new notification and each change of the
//! unread count reach every session of the user, on every node.

use crate::error::HubError;
use crate::ids::UserId;
use crate::outbox::Outbox;
use crate::store::{self, Job, Mark, StoreHandle, ToUser};
use actix::Recipient;
use futures_util::future::LocalBoxFuture;

/// A page request of `notification:list`.
pub struct Page {
    pub before: Option<u64>,
    pub limit: usize,
    pub unread_only: bool,
}

/// What is asked of whatever keeps notifications. `to` is where frames for
/// all of a user's sessions go (the Hub), for engines that push them
/// themselves once stored.
pub trait Inbox: Send + Sync + 'static {
    /// Stores one notification per user, each then pushed
    /// (`notification:new`, `notification:count`) to the user's sessions.
    /// Answers each user's notification id.
    fn add(
        &self,
        users: Vec<UserId>,
        sender: String,
        data: String,
        ts: u64,
        to: Recipient<ToUser>,
    ) -> LocalBoxFuture<'static, Result<Vec<(UserId, u64)>, HubError>>;

    /// `notification:list`: answers a `notification:page` (or an error) on `outbox`.
    fn list(&self, user: UserId, page: Page, outbox: Outbox, id: Option<String>);

    /// `notification:read`: an `ack` to the sender (with an `id`), the new
    /// unread count to every session of the user.
    fn mark(
        &self,
        user: UserId,
        mark: Mark,
        outbox: Outbox,
        id: Option<String>,
        to: Recipient<ToUser>,
    );
}

/// One node: the embedded database's writer stores, then pushes.
pub struct Local(pub StoreHandle);

impl Inbox for Local {
    fn add(
        &self,
        users: Vec<UserId>,
        sender: String,
        data: String,
        ts: u64,
        to: Recipient<ToUser>,
    ) -> LocalBoxFuture<'static, Result<Vec<(UserId, u64)>, HubError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0.send(Job::Notify {
            users,
            sender,
            data,
            ts,
            hub: to,
            reply: tx,
        });
        Box::pin(store::reply(rx))
    }

    fn list(&self, user: UserId, page: Page, outbox: Outbox, id: Option<String>) {
        self.0.send(Job::ListNotifications {
            user,
            before: page.before,
            limit: page.limit,
            unread_only: page.unread_only,
            outbox,
            id,
        })
    }

    fn mark(
        &self,
        user: UserId,
        mark: Mark,
        outbox: Outbox,
        id: Option<String>,
        to: Recipient<ToUser>,
    ) {
        self.0.send(Job::MarkRead {
            user,
            mark,
            outbox,
            id,
            hub: to,
        })
    }
}
