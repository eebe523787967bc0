//! Where a document's committed ops are kept: the seam between the
//! Document actor (which transforms, acks and fans out) and its op log.
//!
//! [`Local`] is the one-node log: the embedded database (`docstore.rs`),
//! whose only writer is this node's actor, so an append always follows the
//! head it was transformed against. The several-node log
//! (`cluster::docs::Shared`) keeps the document in Redis: an append lands
//! only if the head is still the one the ops were transformed against
//! (`DOC_APPEND`, one script), else it answers [`Appended::Conflict`] and
//! the actor reads what others appended ([`OpLog::range`]), transforms, and
//! tries again (`follow.rs`). Ops and cursors of other writers arrive as
//! [`Feed`] messages once the actor [`OpLog::follow`]s the document.

use crate::cluster::Feed;
use crate::docstore::{AppendDocOps, DocOpRecord, DocState, DocStore, LoadDoc, SaveDocSnapshot};
use crate::error::{ErrorCode, HubError};
use crate::ids::RoomName;
use actix::Recipient;
use bytes::Bytes;
use futures_util::future::LocalBoxFuture;

/// An answer of the log, to be awaited on the actor's thread.
pub type Fut<T> = LocalBoxFuture<'static, Result<T, HubError>>;

/// The answer to an append.
#[derive(Debug, PartialEq)]
pub enum Appended {
    Ok,
    /// Another writer appended first: the head is now this.
    Conflict(u64),
    /// Op `index` of the batch was stored before: its client's last
    /// stored op is `seq`, at `rev`.
    Dup {
        index: usize,
        seq: u64,
        rev: u64,
    },
}

/// What a Document actor asks of whatever keeps its ops. Every call is
/// queued when made, so calls of one actor keep their order.
pub trait OpLog: Send + Sync + 'static {
    /// The document as stored: its newest snapshot and the ops after it
    /// (and up to `keep` before it). Retries while the log is unreachable
    /// for a little while; an error is final.
    fn load(
        &self,
        doc: &RoomName,
        keep: usize,
    ) -> LocalBoxFuture<'static, Result<DocState, String>>;

    /// Appends `ops` (consecutive revs) after `ops[0].rev - 1`, if that is
    /// still the head.
    fn append(&self, doc: &RoomName, ops: &[DocOpRecord]) -> Fut<Appended>;

    /// The head and the committed ops from `from` on (a bounded count, in
    /// order; fewer than the head says when trimmed behind a snapshot).
    fn range(&self, doc: &RoomName, from: u64) -> Fut<(u64, Vec<DocOpRecord>)>;

    /// Stores a snapshot at `rev`; ops older than the newest `keep` at or
    /// below it may be dropped.
    fn snapshot(&self, doc: &RoomName, rev: u64, text: String, keep: usize) -> Fut<()>;

    /// Routes other writers' ops and cursors to `to` from now on: a token
    /// for [`OpLog::unfollow`] and a future resolved once nothing appended
    /// after it can be missed. `None` when there are no other writers.
    fn follow(&self, doc: &RoomName, to: Recipient<Feed>) -> Option<(u64, Fut<()>)>;

    fn unfollow(&self, doc: &RoomName, token: u64);

    /// Shows a `doc:cursor` frame to the other writers' members.
    fn share_cursor(&self, doc: &RoomName, frame: &Bytes);

    /// Others' ops arrived with a gap, read again from the log (counted
    /// in `/metrics` with several nodes).
    fn gap_seen(&self) {}
}

/// One node: the embedded database's document store.
pub struct Local(pub DocStore);

/// A mailbox error of the store, as the error the actor reports.
fn gone(e: actix::MailboxError) -> HubError {
    HubError::new(
        ErrorCode::Internal,
        format!("the document store is unavailable: {e}"),
    )
}

impl OpLog for Local {
    fn load(&self, doc: &RoomName, _: usize) -> LocalBoxFuture<'static, Result<DocState, String>> {
        let fut = self.0.load.send(LoadDoc {
            doc: doc.to_string(),
        });
        Box::pin(async move {
            match fut.await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(e) => Err(gone(e).message.to_string()),
            }
        })
    }

    fn append(&self, doc: &RoomName, ops: &[DocOpRecord]) -> Fut<Appended> {
        let fut = self.0.append.send(AppendDocOps {
            doc: doc.to_string(),
            ops: ops.to_vec(),
        });
        Box::pin(async move { fut.await.map_err(gone)?.map(|()| Appended::Ok) })
    }

    /// With one writer nothing conflicts and nothing arrives, so the
    /// actor never reads back; this answers what the store holds from
    /// `from` on all the same, so the contract holds.
    fn range(&self, doc: &RoomName, from: u64) -> Fut<(u64, Vec<DocOpRecord>)> {
        let fut = self.0.load.send(LoadDoc {
            doc: doc.to_string(),
        });
        Box::pin(async move {
            let st = fut.await.map_err(gone)??;
            let head = st.ops.last().map_or(st.snapshot_rev, |o| o.rev);
            let ops = st.older_ops.into_iter().chain(st.ops);
            Ok((head, ops.filter(|o| o.rev >= from).collect()))
        })
    }

    fn snapshot(&self, doc: &RoomName, rev: u64, text: String, keep: usize) -> Fut<()> {
        let fut = self.0.snapshot.send(SaveDocSnapshot {
            doc: doc.to_string(),
            rev,
            text,
            keep_ops: keep,
        });
        Box::pin(async move { fut.await.map_err(gone)? })
    }

    fn follow(&self, _: &RoomName, _: Recipient<Feed>) -> Option<(u64, Fut<()>)> {
        None
    }

    fn unfollow(&self, _: &RoomName, _: u64) {}

    fn share_cursor(&self, _: &RoomName, _: &Bytes) {}
}
