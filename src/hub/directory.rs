//! How frames reach a user's sessions, or every session: the seam between
//! the Hub's handlers (direct messages, storage's pushes, broadcasts, the
//! server API's orders, tool calls and signals for a session on another
//! node) and whatever knows where sessions are.
//!
//! [`Local`] is the one-node engine: this node's sessions are all there
//! are, and a direct message to a user with none goes into the embedded
//! database's offline inbox (loaded again when they connect). The
//! several-node engine (`cluster.rs`, `Shared`) sends through the user's
//! Redis channel, which every node holding a session of theirs subscribes
//! to, and keeps offline messages in Redis. The Hub calls either the same
//! way; each takes the Hub, whose session lists it reads and delivers to.

use super::*;

/// What the Hub asks of its directory engine.
pub(super) trait Directory {
    /// The Hub started.
    fn start(&self, hub: &mut Hub, ctx: &mut Context<Hub>);
    /// A session of `user` connected (it is already listed).
    fn connected(
        &self,
        hub: &mut Hub,
        user: &UserId,
        session: SessionId,
        guest: bool,
        ctx: &mut Context<Hub>,
    );
    /// The last session of `user` here closed.
    fn gone(&self, hub: &mut Hub, user: &UserId);
    /// A direct message from `sender`, encoded as `frame` at `ts`.
    fn direct(&self, hub: &mut Hub, msg: Direct, sender: Outbox, frame: Bytes, ts: u64);
    /// Frames for every session of `user`, in this order.
    fn to_user(&self, hub: &mut Hub, user: &UserId, frames: Vec<Bytes>);
    /// A frame for every session. Answers how many of this node's get it.
    fn broadcast(&self, hub: &mut Hub, frame: Bytes) -> usize;
    /// The server API's order for every session of `user`. Answers whether
    /// the user had a session (on any node).
    fn order(
        &self,
        hub: &mut Hub,
        user: UserId,
        action: Action,
    ) -> ResponseFuture<Result<bool, HubError>>;
    /// Sends `payload` to `node` (tool calls, signals and their answers for
    /// sessions there). `None`: there is no other node. The future answers
    /// whether that node took it (`false`: it is gone).
    fn to_node(&self, node: &str, payload: Vec<u8>) -> Option<Sent>;
    /// The sessions of `user` on every node (a tool call for a user with
    /// none here). `None`: there is no other node.
    fn sessions_of(&self, user: &UserId) -> Option<Listed>;
    /// What other nodes sent: broadcasts, frames for users with a session
    /// here, tool calls and signals for this node (`Feed`, from the
    /// channels `start` and `connected` subscribed to).
    fn feed(&self, hub: &mut Hub, msg: crate::cluster::Feed);
}

/// Whether a node took what was sent to it.
pub(super) type Sent = futures_util::future::LocalBoxFuture<'static, Result<bool, HubError>>;
/// A user's sessions on every node.
pub(super) type Listed =
    futures_util::future::LocalBoxFuture<'static, Result<Vec<crate::ids::SessionAddr>, HubError>>;

/// One node: the Hub's own lists, and the embedded database's inbox.
pub(super) struct Local;

impl Directory for Local {
    fn start(&self, _: &mut Hub, _: &mut Context<Hub>) {}

    /// Its unread count and stored messages come back as `UserLoaded`.
    fn connected(
        &self,
        hub: &mut Hub,
        user: &UserId,
        session: SessionId,
        guest: bool,
        ctx: &mut Context<Hub>,
    ) {
        let Some(store) = hub.store.as_ref().filter(|_| !guest) else {
            return;
        };
        hub.inboxes.entry(user.clone()).or_default().loading += 1;
        store.send(Job::LoadUser {
            user: user.clone(),
            session,
            hub: ctx.address().recipient(),
        });
    }

    fn gone(&self, _: &mut Hub, _: &UserId) {}

    fn direct(&self, hub: &mut Hub, msg: Direct, sender: Outbox, frame: Bytes, ts: u64) {
        hub.direct_here(msg, sender, frame, ts);
    }

    fn to_user(&self, hub: &mut Hub, user: &UserId, frames: Vec<Bytes>) {
        for f in &frames {
            hub.push_user(user, f);
        }
    }

    fn broadcast(&self, hub: &mut Hub, frame: Bytes) -> usize {
        hub.deliver_all(&frame)
    }

    fn order(
        &self,
        hub: &mut Hub,
        user: UserId,
        action: Action,
    ) -> ResponseFuture<Result<bool, HubError>> {
        let n = hub.act(&user, &action);
        Box::pin(std::future::ready(Ok(n > 0)))
    }

    fn to_node(&self, _: &str, _: Vec<u8>) -> Option<Sent> {
        None
    }

    fn sessions_of(&self, _: &UserId) -> Option<Listed> {
        None
    }

    /// Nothing is subscribed, so nothing arrives.
    fn feed(&self, _: &mut Hub, _: crate::cluster::Feed) {}
}
