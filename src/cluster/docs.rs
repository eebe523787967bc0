//! The documents' op log with Redis (`document::oplog::OpLog`): a document
//! shared by every node (docs/SCALEOUT.md "Documents").
//!
//! Redis holds the document's order: its head revision, a stream of the
//! committed ops (id `<rev>-1`), a snapshot, and each client id's last
//! `(seq, rev)`. An append lands only if the head is still the revision the
//! ops were transformed against (`DOC_APPEND`, one script: appended and
//! published on the document's channel), else it answers a conflict.
//!
//! Channel payloads: `O<op json>` (a `DocOpRecord`), `C<node> <frame>` (a
//! `doc:cursor` frame for the members of other nodes).

use super::scripts::{self, Lua};
use super::{Cluster, Feed};
use crate::docstore::{DocOpRecord, DocState};
use crate::document::oplog::{Appended, Fut, OpLog};
use crate::error::{ErrorCode, HubError};
use crate::ids::RoomName;
use actix::Recipient;
use bytes::Bytes;
use futures_util::future::LocalBoxFuture;
use redis::Value;
use std::time::Duration;

/// Client ids whose last op Redis remembers per document.
const KEPT_CLIENTS: usize = 4096;
/// Ops read from the stream per round trip when catching up.
const RANGE_COUNT: usize = 512;

/// Documents in Redis, the same on every node.
pub struct Shared(pub Cluster);

impl Shared {
    /// The head/snapshot hash and the op stream.
    fn hx(&self, doc: &RoomName) -> Vec<String> {
        vec![self.0.doc_key(doc, "h"), self.0.doc_key(doc, "x")]
    }
}

impl OpLog for Shared {
    fn load(
        &self,
        doc: &RoomName,
        keep: usize,
    ) -> LocalBoxFuture<'static, Result<DocState, String>> {
        Box::pin(load(self.0.clone(), self.hx(doc), keep))
    }

    fn append(&self, doc: &RoomName, ops: &[DocOpRecord]) -> Fut<Appended> {
        let c = &self.0;
        let mut keys = self.hx(doc);
        keys.extend(["cl", "cz", "c"].map(|p| c.doc_key(doc, p)));
        let base = ops.first().map_or(0, |o| o.rev.saturating_sub(1));
        let mut args = vec![
            base.to_string().into_bytes(),
            KEPT_CLIENTS.to_string().into_bytes(),
        ];
        for o in ops {
            args.push(o.cid.clone().into_bytes());
            args.push(o.seq.to_string().into_bytes());
            args.push(serde_json::to_vec(o).unwrap_or_default());
        }
        let fut = c.script(Lua::DocAppend, keys, args);
        Box::pin(async move { appended(&fut.await?).ok_or_else(bad_reply) })
    }

    fn range(&self, doc: &RoomName, from: u64) -> Fut<(u64, Vec<DocOpRecord>)> {
        let args = vec![
            from.to_string().into_bytes(),
            RANGE_COUNT.to_string().into_bytes(),
        ];
        let fut = self.0.script(Lua::DocRange, self.hx(doc), args);
        Box::pin(async move { range_of(&fut.await?).ok_or_else(bad_reply) })
    }

    /// Stores it unless a newer one is (another node may have crossed a
    /// later multiple first).
    fn snapshot(&self, doc: &RoomName, rev: u64, text: String, keep: usize) -> Fut<()> {
        let args = vec![
            rev.to_string().into_bytes(),
            text.into_bytes(),
            keep.to_string().into_bytes(),
        ];
        let fut = self.0.script(Lua::DocSnapshot, self.hx(doc), args);
        Box::pin(async move { fut.await.map(|_| ()) })
    }

    fn follow(&self, doc: &RoomName, to: Recipient<Feed>) -> Option<(u64, Fut<()>)> {
        let (token, sub) = self.0.subscribe(self.0.doc_key(doc, "c"), to);
        Some((token, Box::pin(sub)))
    }

    fn unfollow(&self, doc: &RoomName, token: u64) {
        self.0.unsubscribe(self.0.doc_key(doc, "c"), token);
    }

    fn share_cursor(&self, doc: &RoomName, frame: &Bytes) {
        let mut payload = format!("C{} ", self.0.node()).into_bytes();
        payload.extend_from_slice(frame);
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.0.doc_key(doc, "c")).arg(payload);
        let fut = self.0.command(cmd);
        actix::spawn(async move {
            let _ = fut.await;
        });
    }

    fn gap_seen(&self) {
        self.0.count_gap();
    }
}

fn appended(v: &Value) -> Option<Appended> {
    let a = scripts::array(v);
    let n = |i: usize| {
        a.get(i)
            .and_then(scripts::int)
            .and_then(|x| u64::try_from(x).ok())
    };
    match scripts::bytes(a.first()?)? {
        b"ok" => Some(Appended::Ok),
        b"conflict" => Some(Appended::Conflict(n(1)?)),
        b"dup" => Some(Appended::Dup {
            index: usize::try_from(n(1)?).ok()?,
            seq: n(2)?,
            rev: n(3)?,
        }),
        _ => None,
    }
}

/// Ops from stream entries (`[id, ['j', json]]`), in stream order.
fn ops_of(v: &Value) -> Vec<DocOpRecord> {
    scripts::entries(v)
        .into_iter()
        .filter_map(|(rev, json)| {
            let o: DocOpRecord = serde_json::from_slice(&json).ok()?;
            (o.rev == rev).then_some(o)
        })
        .collect()
}

/// The document as `DOC_LOAD` answers it.
fn state_of(v: &Value) -> Option<DocState> {
    let a = scripts::array(v);
    if scripts::bytes(a.first()?)? != b"ok" {
        return None;
    }
    let head = u64::try_from(scripts::int(a.get(1)?)?).ok()?;
    let snapshot_rev = u64::try_from(scripts::int(a.get(2)?)?).ok()?;
    let snapshot_text = scripts::text(a.get(3)?)?.to_string();
    let (older_ops, ops): (Vec<_>, Vec<_>) = ops_of(a.get(4)?)
        .into_iter()
        .partition(|o| o.rev <= snapshot_rev);
    let top = ops.last().map_or(snapshot_rev, |o| o.rev);
    (top == head).then_some(DocState {
        snapshot_rev,
        snapshot_text,
        ops,
        older_ops,
    })
}

/// `{'ok', head, entries}` of `DOC_RANGE`.
fn range_of(v: &Value) -> Option<(u64, Vec<DocOpRecord>)> {
    let a = scripts::array(v);
    if scripts::bytes(a.first()?)? != b"ok" {
        return None;
    }
    let head = u64::try_from(scripts::int(a.get(1)?)?).ok()?;
    Some((head, ops_of(a.get(2)?)))
}

fn bad_reply() -> HubError {
    HubError::new(
        ErrorCode::Internal,
        "Redis answered a document script oddly",
    )
}

/// Reads the document, retrying while Redis is unreachable (up to ~10 s).
async fn load(c: Cluster, keys: Vec<String>, keep: usize) -> Result<DocState, String> {
    let mut delay = Duration::from_millis(100);
    let mut last = String::new();
    for _ in 0..12 {
        let args = vec![keep.to_string().into_bytes()];
        match c.script(Lua::DocLoad, keys.clone(), args).await {
            Ok(v) => return state_of(&v).ok_or_else(|| "its stream is out of step".to_string()),
            Err(e) => last = e.message.to_string(),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
    Err(last)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: &str) -> Value {
        Value::BulkString(b.as_bytes().to_vec())
    }

    #[test]
    fn append_replies_are_read_into_types() {
        let ok = Value::Array(vec![s("ok"), Value::Int(4)]);
        assert_eq!(appended(&ok), Some(Appended::Ok));
        let c = Value::Array(vec![s("conflict"), Value::Int(9)]);
        assert_eq!(appended(&c), Some(Appended::Conflict(9)));
        let d = Value::Array(vec![s("dup"), Value::Int(0), Value::Int(3), Value::Int(7)]);
        assert_eq!(
            appended(&d),
            Some(Appended::Dup {
                index: 0,
                seq: 3,
                rev: 7
            })
        );
        assert_eq!(appended(&s("nonsense")), None);
    }

    #[test]
    fn a_load_whose_stream_does_not_reach_the_head_is_refused() {
        let op = DocOpRecord {
            rev: 1,
            cid: "c".into(),
            seq: 1,
            user: "u".into(),
            op: "[\"a\"]".into(),
            ts: 0,
        };
        let entry = |o: &DocOpRecord| {
            Value::Array(vec![
                s(&format!("{}-1", o.rev)),
                Value::Array(vec![s("j"), s(&serde_json::to_string(o).unwrap())]),
            ])
        };
        let load = |head: i64| {
            Value::Array(vec![
                s("ok"),
                Value::Int(head),
                Value::Int(0),
                s(""),
                Value::Array(vec![entry(&op)]),
            ])
        };
        let st = state_of(&load(1)).expect("a head the stream reaches");
        assert_eq!(st.ops, vec![op.clone()]);
        assert!(state_of(&load(2)).is_none(), "rev 2 is missing");
    }
}
