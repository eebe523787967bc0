//! What a Document actor asks of whatever keeps documents: the contract
//! between `document.rs` (collaborative editing) and `store.rs` (the embedded
//! database). Both sides are written against these messages only.
//!
//! A document's durable state is its latest snapshot plus the ops committed
//! after it. `rev` is the number of ops committed since the document was
//! created; the op that moves the document from `rev` to `rev + 1` is stored
//! with `rev + 1`. Ops are stored as the JSON array the server committed
//! (after transformation), never as the client sent them.
//!
//! The Document actor sends `AppendDocOps` and acknowledges those ops to their
//! senders only after the reply is `Ok`; a store error leaves them
//! unacknowledged (the client resends them with the same `(cid, seq)`).

use crate::error::HubError;
use actix::prelude::*;

/// One committed op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocOpRecord {
    /// The revision this op produced (the first op of a document is 1).
    pub rev: u64,
    /// The client id and per-client sequence number it was sent with, so a
    /// resend after a restart is recognised and acknowledged, not re-applied.
    pub cid: String,
    pub seq: u64,
    /// The user who sent it.
    pub user: String,
    /// The committed op, as JSON (`[3,"ab",-2]`).
    pub op: String,
    /// Unix milliseconds.
    pub ts: u64,
}

/// Appends ops, in order, to `doc`'s log. Their `rev`s follow the stored
/// ones without a gap; anything else is an error and nothing is written.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), HubError>")]
pub struct AppendDocOps {
    pub doc: String,
    pub ops: Vec<DocOpRecord>,
}

/// Stores a snapshot of `doc` at `rev` (all ops up to `rev` applied). The
/// store may then drop ops at or below `rev` that are older than the newest
/// `keep_ops`.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), HubError>")]
pub struct SaveDocSnapshot {
    pub doc: String,
    pub rev: u64,
    pub text: String,
    pub keep_ops: usize,
}

/// What is stored of a document; an unknown document is empty at rev 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocState {
    /// The newest snapshot: its revision and text (0 and "" when none).
    pub snapshot_rev: u64,
    pub snapshot_text: String,
    /// Every stored op with `rev > snapshot_rev`, in order, followed by
    /// nothing else: the document's head is `snapshot_rev + ops.len()`.
    pub ops: Vec<DocOpRecord>,
    /// Stored ops at or below `snapshot_rev`, newest last (at most the
    /// `keep_ops` of the last snapshot), so clients a little behind the
    /// snapshot still get ops instead of a snapshot.
    pub older_ops: Vec<DocOpRecord>,
}

/// Loads `doc` when its Document actor starts.
#[derive(Message, Debug)]
#[rtype(result = "Result<DocState, HubError>")]
pub struct LoadDoc {
    pub doc: String,
}

/// How a Document actor reaches its store, whichever actor that is.
#[derive(Clone)]
pub struct DocStore {
    pub load: Recipient<LoadDoc>,
    pub append: Recipient<AppendDocOps>,
    pub snapshot: Recipient<SaveDocSnapshot>,
}

impl DocStore {
    pub fn of<A>(addr: Addr<A>) -> DocStore
    where
        A: Actor + Handler<LoadDoc> + Handler<AppendDocOps> + Handler<SaveDocSnapshot>,
        A::Context: actix::dev::ToEnvelope<A, LoadDoc>
            + actix::dev::ToEnvelope<A, AppendDocOps>
            + actix::dev::ToEnvelope<A, SaveDocSnapshot>,
    {
        DocStore {
            load: addr.clone().recipient(),
            append: addr.clone().recipient(),
            snapshot: addr.recipient(),
        }
    }
}

/// One document as kept by [`MemoryDocStore`].
#[derive(Default)]
struct MemoryDoc {
    snapshot_rev: u64,
    snapshot_text: String,
    /// Every kept op, oldest first, with contiguous `rev`s ending at the head.
    ops: std::collections::VecDeque<DocOpRecord>,
}

impl MemoryDoc {
    fn head(&self) -> u64 {
        self.ops.back().map_or(self.snapshot_rev, |o| o.rev)
    }
}

/// The store the server uses until the embedded database lands: documents in
/// memory, for the life of the process. Same contract as any store: ops
/// append with contiguous revisions, snapshots let old ops go.
#[derive(Default)]
pub struct MemoryDocStore {
    docs: std::collections::HashMap<String, MemoryDoc>,
}

impl Actor for MemoryDocStore {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(usize::MAX >> 4);
    }
}

impl Handler<LoadDoc> for MemoryDocStore {
    type Result = Result<DocState, HubError>;

    fn handle(&mut self, msg: LoadDoc, _: &mut Context<Self>) -> Self::Result {
        let Some(d) = self.docs.get(&msg.doc) else {
            return Ok(DocState::default());
        };
        let (older, newer): (Vec<_>, Vec<_>) =
            d.ops.iter().cloned().partition(|o| o.rev <= d.snapshot_rev);
        Ok(DocState {
            snapshot_rev: d.snapshot_rev,
            snapshot_text: d.snapshot_text.clone(),
            ops: newer,
            older_ops: older,
        })
    }
}

impl Handler<AppendDocOps> for MemoryDocStore {
    type Result = Result<(), HubError>;

    fn handle(&mut self, msg: AppendDocOps, _: &mut Context<Self>) -> Self::Result {
        let d = self.docs.entry(msg.doc).or_default();
        let mut next = d.head() + 1;
        for o in &msg.ops {
            if o.rev != next {
                return Err(HubError::new(
                    crate::error::ErrorCode::Internal,
                    format!(
                        "op rev {} does not follow the stored head {}",
                        o.rev,
                        next - 1
                    ),
                ));
            }
            next += 1;
        }
        d.ops.extend(msg.ops);
        Ok(())
    }
}

impl Handler<SaveDocSnapshot> for MemoryDocStore {
    type Result = Result<(), HubError>;

    fn handle(&mut self, msg: SaveDocSnapshot, _: &mut Context<Self>) -> Self::Result {
        let d = self.docs.entry(msg.doc).or_default();
        if msg.rev > d.head() || msg.rev < d.snapshot_rev {
            return Err(HubError::new(
                crate::error::ErrorCode::Internal,
                format!(
                    "snapshot at rev {} is outside the stored revisions {}..={}",
                    msg.rev,
                    d.snapshot_rev,
                    d.head()
                ),
            ));
        }
        d.snapshot_rev = msg.rev;
        d.snapshot_text = msg.text;
        // Keep ops after the snapshot, and the newest `keep_ops` at or before it.
        let at_or_below = d.ops.iter().take_while(|o| o.rev <= msg.rev).count();
        let drop = at_or_below.saturating_sub(msg.keep_ops);
        d.ops.drain(..drop);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(rev: u64) -> DocOpRecord {
        DocOpRecord {
            rev,
            cid: "c".into(),
            seq: rev,
            user: "u".into(),
            op: format!("[{}]", rev),
            ts: 0,
        }
    }

    #[test]
    fn memory_store_keeps_the_contract() {
        actix::System::new().block_on(contract());
    }

    async fn contract() {
        let store = MemoryDocStore::default().start();
        let doc = || "d".to_string();
        let empty = store.send(LoadDoc { doc: doc() }).await.unwrap().unwrap();
        assert_eq!(empty, DocState::default());
        let ops = (1..=5).map(rec).collect();
        store
            .send(AppendDocOps { doc: doc(), ops })
            .await
            .unwrap()
            .unwrap();
        // A gap or a repeat is refused, and nothing of it is written.
        let bad = vec![rec(6), rec(8)];
        assert!(store
            .send(AppendDocOps {
                doc: doc(),
                ops: bad
            })
            .await
            .unwrap()
            .is_err());
        let snap = SaveDocSnapshot {
            doc: doc(),
            rev: 4,
            text: "t4".into(),
            keep_ops: 2,
        };
        store.send(snap).await.unwrap().unwrap();
        let s = store.send(LoadDoc { doc: doc() }).await.unwrap().unwrap();
        assert_eq!((s.snapshot_rev, s.snapshot_text.as_str()), (4, "t4"));
        assert_eq!(s.ops.iter().map(|o| o.rev).collect::<Vec<_>>(), [5]);
        assert_eq!(
            s.older_ops.iter().map(|o| o.rev).collect::<Vec<_>>(),
            [3, 4]
        );
    }
}
