//! A document shared by several nodes through Redis (`src/cluster`,
//! docs/SCALEOUT.md "Documents"): the Document actor is this node's replica.
//!
//! Redis holds the document's order: its head revision, a stream of the
//! committed ops (id `<rev>-1`), a snapshot, and each client id's last
//! `(seq, rev)`. This node transforms its sessions' ops against its copy as
//! on one node, then asks Redis to append them after the revision they were
//! transformed against (`DOC_APPEND`, one script: appended and published on
//! the document's channel only if that is still the head). When another
//! node got there first, the ops are taken back (`DocCore::park`), the
//! missing ops read from the stream and applied, and the ops committed
//! again on top (someone else's append succeeded, so every round makes
//! progress). Acks go out when Redis has the ops; ops from other nodes
//! arrive on the channel and are applied strictly in revision order, gaps
//! repaired from the stream. Cursors travel on the channel too.
//!
//! Channel payloads: `O<op json>` (a `DocOpRecord`), `C<node> <frame>` (a
//! `doc:cursor` frame for the members of other nodes).

use super::Document;
use crate::cluster::scripts::{self, Lua};
use crate::cluster::{Cluster, Feed, FeedEvent};
use crate::docstore::{DocOpRecord, DocState};
use crate::error::{ErrorCode, HubError};
use crate::ids::RoomName;
use crate::metrics::METRICS;
use actix::prelude::*;
use bytes::Bytes;
use redis::Value;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Client ids whose last op Redis remembers per document.
const KEPT_CLIENTS: usize = 4096;
/// Ops read from the stream per round trip when catching up.
const RANGE_COUNT: usize = 512;

/// This node's link to a shared document.
pub struct Replica {
    c: Cluster,
    /// Keys: head/snapshot hash, op stream, client ids, channel.
    h: String,
    x: String,
    cl: String,
    cz: String,
    chan: String,
    token: Option<u64>,
    /// Ops from the channel ahead of this node's copy.
    held: BTreeMap<u64, DocOpRecord>,
    /// Reading the stream: this node's ops wait (parked) meanwhile.
    pub(super) catching_up: bool,
    /// A position check was asked while a batch was being appended.
    check: bool,
}

impl Replica {
    pub fn new(c: Cluster, doc: &RoomName) -> Replica {
        Replica {
            h: c.doc_key(doc, "h"),
            x: c.doc_key(doc, "x"),
            cl: c.doc_key(doc, "cl"),
            cz: c.doc_key(doc, "cz"),
            chan: c.doc_key(doc, "c"),
            c,
            token: None,
            held: BTreeMap::new(),
            catching_up: false,
            check: false,
        }
    }
}

/// The answer to an append.
#[derive(Debug, PartialEq)]
enum Appended {
    Ok,
    /// Another node appended first: the head is now this.
    Conflict(u64),
    /// Op `index` of the batch was stored before: its client's last
    /// stored op is `seq`, at `rev`.
    Dup {
        index: usize,
        seq: u64,
        rev: u64,
    },
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

impl Document {
    fn replica(&mut self) -> &mut Replica {
        self.cluster.as_mut().expect("shared document")
    }

    /// Subscribes to the document's channel, then reads it from Redis;
    /// nothing else is handled before (ops published meanwhile wait in the
    /// mailbox and are dropped when the read has them).
    pub(super) fn start_replica(&mut self, ctx: &mut Context<Self>) {
        let keep = self.limits.keep_ops;
        let r = self.replica();
        let (c, chan, keys) = (r.c.clone(), r.chan.clone(), vec![r.h.clone(), r.x.clone()]);
        let me = ctx.address().recipient::<Feed>();
        let fut = async move {
            let (token, sub) = c.subscribe(chan, me);
            if sub.await.is_err() {
                log::warn!("document channel not confirmed; it is taken again on reconnect");
            }
            (token, load(c, keys, keep).await)
        };
        ctx.wait(fut.into_actor(self).map(|(token, state), act, _| {
            act.replica().token = Some(token);
            let loaded = state.and_then(|s| super::DocCore::load(act.name.as_str(), s, act.limits));
            match loaded {
                Ok(core) => act.core = Some(core),
                Err(e) => {
                    log::error!("document {} could not be read from Redis: {e}", act.name);
                    act.load_error = Some(e);
                }
            }
        }));
    }

    pub(super) fn stop_replica(&mut self) {
        if let Some(r) = self.cluster.as_mut() {
            if let Some(t) = r.token.take() {
                r.c.unsubscribe(r.chan.clone(), t);
            }
        }
    }

    /// Asks Redis to append a batch after the revision it was transformed
    /// against (the `Out::Write` of the core).
    pub(super) fn append(&mut self, ops: Vec<DocOpRecord>, ctx: &mut Context<Self>) {
        let (Some(first), Some(last)) = (ops.first(), ops.last()) else {
            return;
        };
        let (first, last) = (first.rev, last.rev);
        let r = self.replica();
        let keys = vec![
            r.h.clone(),
            r.x.clone(),
            r.cl.clone(),
            r.cz.clone(),
            r.chan.clone(),
        ];
        let mut args = vec![
            (first - 1).to_string().into_bytes(),
            KEPT_CLIENTS.to_string().into_bytes(),
        ];
        for o in &ops {
            args.push(o.cid.clone().into_bytes());
            args.push(o.seq.to_string().into_bytes());
            args.push(serde_json::to_vec(o).unwrap_or_default());
        }
        let fut = r.c.script(Lua::DocAppend, keys, args);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let res = res.and_then(|v| appended(&v).ok_or_else(bad_reply));
            act.appended(&ops, first, last, res, ctx);
        }));
    }

    fn appended(
        &mut self,
        ops: &[DocOpRecord],
        first: u64,
        last: u64,
        res: Result<Appended, HubError>,
        ctx: &mut Context<Self>,
    ) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        match res {
            Ok(Appended::Ok) => {
                METRICS.doc_ops.fetch_add(last - first + 1, Relaxed);
                let outs = core.stored(Ok(()));
                // One node crosses each multiple of snapshot_every: it stores it.
                let every = self.limits.snapshot_every.max(1);
                let text = core.visible_text().to_string();
                if last / every > (first - 1) / every {
                    self.shared_snapshot(last, text);
                }
                self.run(outs, ctx);
            }
            Ok(Appended::Conflict(head)) => {
                log::debug!("document {}: rev {} taken (head {head})", self.name, first);
                core.park();
                return self.catch_up(ctx);
            }
            Ok(Appended::Dup { index, seq, rev }) => {
                if let Some(o) = ops.get(index) {
                    core.note_stored(&o.cid, seq, rev);
                }
                core.park();
                let outs = core.unpark();
                self.run(outs, ctx);
            }
            Err(e) => {
                // Not known to be stored: its senders resend (same cid and
                // seq), and Redis recognises it if it was.
                let outs = core.stored(Err(e));
                self.run(outs, ctx);
            }
        }
        self.drain(ctx);
        self.report_if_idle();
    }

    fn shared_snapshot(&mut self, rev: u64, text: String) {
        let keep = self.limits.keep_ops;
        let r = self.replica();
        let fut = r.c.script(
            Lua::DocSnapshot,
            vec![r.h.clone(), r.x.clone()],
            vec![
                rev.to_string().into_bytes(),
                text.into_bytes(),
                keep.to_string().into_bytes(),
            ],
        );
        let name = self.name.clone();
        actix::spawn(async move {
            if let Err(e) = fut.await {
                log::warn!("document {name}: snapshot at rev {rev} not stored: {e}");
            }
        });
    }

    /// Applies the held ops that follow this node's copy, unless a batch is
    /// being appended or the document is catching up; a gap is read from
    /// the stream.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let Some(r) = self.cluster.as_mut() else {
            return;
        };
        if r.catching_up || core.writing() {
            return;
        }
        let mut outs = Vec::new();
        while let Some(o) = r.held.remove(&(core.visible() + 1)) {
            match core.remote(&o) {
                Ok(o) => outs.extend(o),
                Err(e) => {
                    log::warn!("document {}: {e}", self.name);
                    break;
                }
            }
        }
        let visible = core.visible();
        r.held.retain(|rev, _| *rev > visible);
        if !r.held.is_empty() {
            r.c.count_gap();
        }
        let gap = !r.held.is_empty() || std::mem::take(&mut r.check);
        self.run(outs, ctx);
        if gap {
            self.catch_up(ctx);
        }
    }

    /// Reads the ops after this node's copy from the stream and applies
    /// them, then commits the parked ops again on top.
    fn catch_up(&mut self, ctx: &mut Context<Self>) {
        let (Some(core), Some(r)) = (self.core.as_mut(), self.cluster.as_mut()) else {
            return;
        };
        if core.writing() {
            r.check = true;
            return;
        }
        if r.catching_up {
            return;
        }
        r.catching_up = true;
        core.park();
        let from = core.visible() + 1;
        let fut = r.c.script(
            Lua::DocRange,
            vec![r.h.clone(), r.x.clone()],
            vec![
                from.to_string().into_bytes(),
                RANGE_COUNT.to_string().into_bytes(),
            ],
        );
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let res = res.and_then(|v| range_of(&v).ok_or_else(bad_reply));
            act.caught_up(res, ctx);
        }));
    }

    fn caught_up(
        &mut self,
        res: Result<(u64, Vec<DocOpRecord>), HubError>,
        ctx: &mut Context<Self>,
    ) {
        let (head, ops) = match res {
            Ok(r) => r,
            Err(e) => {
                // Redis is unreachable: try again; the parked ops wait.
                log::warn!("document {}: cannot catch up ({})", self.name, e.message);
                ctx.run_later(Duration::from_millis(500), |act, ctx| {
                    act.replica().catching_up = false;
                    act.catch_up(ctx);
                });
                return;
            }
        };
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let old = core.visible();
        // Redis lost the document, or the ops this node misses were
        // trimmed behind a snapshot: take Redis's copy.
        let next = ops.iter().find(|o| o.rev > old).map(|o| o.rev);
        let mut lost = head < old || next.map_or(head > old, |r| r != old + 1);
        let mut outs = Vec::new();
        for o in ops.iter().filter(|o| o.rev > old) {
            if lost {
                break;
            }
            match core.remote(o) {
                Ok(o) => outs.extend(o),
                Err(e) => {
                    log::warn!("document {}: {e}", self.name);
                    lost = true;
                }
            }
        }
        let visible = core.visible();
        self.run(outs, ctx);
        if lost {
            return self.reload(ctx);
        }
        self.replica().catching_up = false;
        if visible < head {
            return self.catch_up(ctx);
        }
        if let Some(core) = self.core.as_mut() {
            let outs = core.unpark();
            self.run(outs, ctx);
        }
        self.drain(ctx);
        self.report_if_idle();
    }

    /// Takes Redis's copy of the document and gives every member here a
    /// snapshot (which replaces their unacknowledged edits, as the client
    /// libraries do on `doc:snapshot`; the parked ops are dropped with them).
    fn reload(&mut self, ctx: &mut Context<Self>) {
        log::warn!("document {}: reloading it from Redis", self.name);
        let keep = self.limits.keep_ops;
        let r = self.replica();
        let fut = load(r.c.clone(), vec![r.h.clone(), r.x.clone()], keep);
        ctx.wait(fut.into_actor(self).map(|state, act, ctx| {
            let loaded = state.and_then(|s| super::DocCore::load(act.name.as_str(), s, act.limits));
            match loaded {
                Ok(core) => {
                    let snapshot = core.open(None);
                    act.core = Some(core);
                    let r = act.replica();
                    r.catching_up = false;
                    r.held.clear();
                    let sessions: Vec<_> = act.members.keys().copied().collect();
                    for s in sessions {
                        for f in &snapshot {
                            let frame = super::wire::frame(act.name.as_str(), f);
                            act.push(s, frame);
                        }
                    }
                }
                Err(e) => {
                    log::warn!("document {}: cannot reload ({e}); retrying", act.name);
                    ctx.run_later(Duration::from_secs(1), |act, ctx| act.reload(ctx));
                    return;
                }
            }
            act.report_if_idle();
        }));
    }

    /// Sends a `doc:cursor` frame to the members of the other nodes.
    pub(super) fn share_cursor(&mut self, frame: &Bytes) {
        let Some(r) = self.cluster.as_ref() else {
            return;
        };
        let mut payload = format!("C{} ", r.c.node()).into_bytes();
        payload.extend_from_slice(frame);
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(&r.chan).arg(payload);
        let fut = r.c.command(cmd);
        actix::spawn(async move {
            let _ = fut.await;
        });
    }

    fn on_op(&mut self, json: &[u8], ctx: &mut Context<Self>) {
        let Ok(o) = serde_json::from_slice::<DocOpRecord>(json) else {
            return log::warn!("document {}: an unreadable op on its channel", self.name);
        };
        let visible = self.core.as_ref().map_or(0, |c| c.visible());
        if o.rev > visible {
            self.replica().held.insert(o.rev, o);
            self.drain(ctx);
        }
    }

    fn on_cursor(&mut self, body: &[u8]) {
        let Some(sp) = body.iter().position(|b| *b == b' ') else {
            return;
        };
        let node = self.cluster.as_ref().map(|r| r.c.node().as_bytes());
        if node == Some(&body[..sp]) {
            return;
        }
        let frame = Bytes::copy_from_slice(&body[sp + 1..]);
        self.others(&[], &frame);
    }
}

impl Handler<Feed> for Document {
    type Result = ();

    fn handle(&mut self, msg: Feed, ctx: &mut Context<Self>) {
        if self.cluster.is_none() || self.core.is_none() {
            return;
        }
        let p = match msg.event {
            FeedEvent::Message(p) => p,
            FeedEvent::Resync => return self.catch_up(ctx),
        };
        match p.first() {
            Some(b'O') => self.on_op(&p[1..], ctx),
            Some(b'C') => self.on_cursor(&p[1..]),
            _ => {}
        }
    }
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
