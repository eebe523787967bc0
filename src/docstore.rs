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

/// One committed op (also the json of a shared document's op in Redis).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
