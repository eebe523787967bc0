//! Committing a document's ops through its op log (`oplog.rs`), and
//! following what other writers commit (with several nodes).
//!
//! This node transforms its sessions' ops against its copy, then asks the
//! log to append them after the revision they were transformed against.
//! When another writer got there first, the ops are taken back
//! (`DocCore::park`), the missing ops read from the log and applied, and
//! the ops committed again on top (someone else's append succeeded, so
//! every round makes progress). Acks go out when the log has the ops; ops
//! of other writers arrive as [`Feed`] messages and are applied strictly
//! in revision order, gaps repaired from the log. With one node the
//! embedded database is the only writer's log: appends never conflict and
//! nothing arrives.

use super::oplog::Appended;
use super::Document;
use crate::cluster::{Feed, FeedEvent};
use crate::docstore::DocOpRecord;
use crate::error::HubError;
use crate::metrics::METRICS;
use actix::prelude::*;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Where this node's copy stands against the other writers'.
#[derive(Default)]
pub(super) struct Following {
    /// The subscription to other writers' ops, if the log has any.
    token: Option<u64>,
    /// Ops of others ahead of this node's copy.
    held: BTreeMap<u64, DocOpRecord>,
    /// Reading the log: this node's ops wait (parked) meanwhile.
    pub(super) catching_up: bool,
    /// A position check was asked while a batch was being appended.
    check: bool,
}

impl Document {
    /// Follows other writers, then loads the document; nothing else is
    /// handled before (ops published meanwhile wait in the mailbox and
    /// are dropped when the load has them).
    pub(super) fn start_log(&mut self, ctx: &mut Context<Self>) {
        let (log, doc, keep) = (self.log.clone(), self.name.clone(), self.limits.keep_ops);
        let follow = log.follow(&doc, ctx.address().recipient::<Feed>());
        let fut = async move {
            let token = match follow {
                Some((token, sub)) => {
                    if sub.await.is_err() {
                        log::warn!(
                            "document channel not confirmed; it is taken again on reconnect"
                        );
                    }
                    Some(token)
                }
                None => None,
            };
            (token, log.load(&doc, keep).await)
        };
        ctx.wait(fut.into_actor(self).map(|(token, state), act, _| {
            act.following.token = token;
            let loaded = state.and_then(|s| super::DocCore::load(act.name.as_str(), s, act.limits));
            match loaded {
                Ok(core) => act.core = Some(core),
                Err(e) => {
                    log::error!("document {} could not be loaded: {e}", act.name);
                    act.load_error = Some(e);
                }
            }
        }));
    }

    pub(super) fn stop_log(&mut self) {
        if let Some(t) = self.following.token.take() {
            self.log.unfollow(&self.name, t);
        }
    }

    /// Asks the log to append a batch after the revision it was
    /// transformed against (the `Out::Write` of the core); later ops keep
    /// being applied in memory meanwhile.
    pub(super) fn append(&mut self, ops: Vec<DocOpRecord>, ctx: &mut Context<Self>) {
        let (Some(first), Some(last)) = (ops.first(), ops.last()) else {
            return;
        };
        let (first, last) = (first.rev, last.rev);
        let fut = self.log.append(&self.name, &ops);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
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
                // seq), and the log recognises it if it was.
                let outs = core.stored(Err(e));
                self.run(outs, ctx);
            }
        }
        self.drain(ctx);
        self.report_if_idle();
    }

    /// Stores a snapshot the core asked for (the writer whose batch
    /// crossed a multiple of `snapshot_every`).
    pub(super) fn snapshot(&mut self, rev: u64, text: String, ctx: &mut Context<Self>) {
        self.snapshots += 1;
        let fut = self
            .log
            .snapshot(&self.name, rev, text, self.limits.keep_ops);
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| {
            act.snapshots -= 1;
            if let Err(e) = res {
                log::warn!(
                    "document {}: snapshot at rev {rev} not stored: {e}",
                    act.name
                );
            }
            act.report_if_idle();
        }));
    }

    /// Applies the held ops that follow this node's copy, unless a batch is
    /// being appended or the document is catching up; a gap is read from
    /// the log.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let f = &mut self.following;
        if f.catching_up || core.writing() {
            return;
        }
        let mut outs = Vec::new();
        while let Some(o) = f.held.remove(&(core.visible() + 1)) {
            match core.remote(&o) {
                Ok(o) => outs.extend(o),
                Err(e) => {
                    log::warn!("document {}: {e}", self.name);
                    break;
                }
            }
        }
        let visible = core.visible();
        f.held.retain(|rev, _| *rev > visible);
        if !f.held.is_empty() {
            self.log.gap_seen();
        }
        let gap = !f.held.is_empty() || std::mem::take(&mut f.check);
        self.run(outs, ctx);
        if gap {
            self.catch_up(ctx);
        }
    }

    /// Reads the ops after this node's copy from the log and applies
    /// them, then commits the parked ops again on top.
    fn catch_up(&mut self, ctx: &mut Context<Self>) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let f = &mut self.following;
        if core.writing() {
            f.check = true;
            return;
        }
        if f.catching_up {
            return;
        }
        f.catching_up = true;
        core.park();
        let from = core.visible() + 1;
        let fut = self.log.range(&self.name, from);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
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
                // The log is unreachable: try again; the parked ops wait.
                log::warn!("document {}: cannot catch up ({})", self.name, e.message);
                ctx.run_later(Duration::from_millis(500), |act, ctx| {
                    act.following.catching_up = false;
                    act.catch_up(ctx);
                });
                return;
            }
        };
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let old = core.visible();
        // The log lost the document, or the ops this node misses were
        // trimmed behind a snapshot: take the log's copy.
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
        self.following.catching_up = false;
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

    /// Takes the log's copy of the document and gives every member here a
    /// snapshot (which replaces their unacknowledged edits, as the client
    /// libraries do on `doc:snapshot`; the parked ops are dropped with them).
    fn reload(&mut self, ctx: &mut Context<Self>) {
        log::warn!("document {}: reloading it from its log", self.name);
        let fut = self.log.load(&self.name, self.limits.keep_ops);
        ctx.wait(fut.into_actor(self).map(|state, act, ctx| {
            let loaded = state.and_then(|s| super::DocCore::load(act.name.as_str(), s, act.limits));
            match loaded {
                Ok(core) => {
                    let snapshot = core.open(None);
                    act.core = Some(core);
                    act.following.catching_up = false;
                    act.following.held.clear();
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

    fn on_op(&mut self, json: &[u8], ctx: &mut Context<Self>) {
        let Ok(o) = serde_json::from_slice::<DocOpRecord>(json) else {
            return log::warn!("document {}: an unreadable op on its channel", self.name);
        };
        let visible = self.core.as_ref().map_or(0, |c| c.visible());
        if o.rev > visible {
            self.following.held.insert(o.rev, o);
            self.drain(ctx);
        }
    }

    /// A cursor frame of another node's member (`<node> <frame>`).
    fn on_cursor(&mut self, body: &[u8]) {
        let Some(sp) = body.iter().position(|b| *b == b' ') else {
            return;
        };
        if crate::ids::node().map(str::as_bytes) == Some(&body[..sp]) {
            return;
        }
        let frame = Bytes::copy_from_slice(&body[sp + 1..]);
        self.others(&[], &frame);
    }
}

/// What other writers committed, and their members' cursors.
impl Handler<Feed> for Document {
    type Result = ();

    fn handle(&mut self, msg: Feed, ctx: &mut Context<Self>) {
        if self.core.is_none() {
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
    //! Two Document actors on one in-memory log, as two nodes on one
    //! Redis: the follow path without Redis.
    use super::super::oplog::{Fut, OpLog};
    use super::super::{core::Edit, core::Limits, Document, Open, Submit};
    use super::*;
    use crate::docstore::DocState;
    use crate::hub::Hub;
    use crate::ids::{RoomName, SessionId, UserId};
    use crate::outbox::{self, Out as Queued, Sink};
    use crate::presence::Presence;
    use futures_util::future::LocalBoxFuture;
    use std::sync::{Arc, Mutex};

    /// A log shared by several writers: appends land only on the head
    /// they follow, and each one is shown to every follower (`O<json>`).
    #[derive(Default)]
    struct Shared {
        ops: Vec<DocOpRecord>,
        followers: Vec<Recipient<Feed>>,
        conflicts: usize,
    }

    #[derive(Clone, Default)]
    struct MemLog(Arc<Mutex<Shared>>);

    impl OpLog for MemLog {
        fn load(
            &self,
            _: &RoomName,
            _: usize,
        ) -> LocalBoxFuture<'static, Result<DocState, String>> {
            let ops = self.0.lock().unwrap().ops.clone();
            Box::pin(async move {
                Ok(DocState {
                    ops,
                    ..DocState::default()
                })
            })
        }

        fn append(&self, _: &RoomName, ops: &[DocOpRecord]) -> Fut<Appended> {
            let mut s = self.0.lock().unwrap();
            let head = s.ops.len() as u64;
            let r = if ops[0].rev != head + 1 {
                s.conflicts += 1;
                Appended::Conflict(head)
            } else {
                for o in ops {
                    s.ops.push(o.clone());
                    let mut p = b"O".to_vec();
                    p.extend(serde_json::to_vec(o).unwrap());
                    for f in &s.followers {
                        f.do_send(Feed {
                            chan: "d".into(),
                            event: FeedEvent::Message(p.clone().into()),
                        });
                    }
                }
                Appended::Ok
            };
            Box::pin(async move { Ok(r) })
        }

        fn range(&self, _: &RoomName, from: u64) -> Fut<(u64, Vec<DocOpRecord>)> {
            let s = self.0.lock().unwrap();
            let ops = s.ops.iter().filter(|o| o.rev >= from).cloned().collect();
            let head = s.ops.len() as u64;
            Box::pin(async move { Ok((head, ops)) })
        }

        fn snapshot(&self, _: &RoomName, _: u64, _: String, _: usize) -> Fut<()> {
            Box::pin(async { Ok(()) })
        }

        fn follow(&self, _: &RoomName, to: Recipient<Feed>) -> Option<(u64, Fut<()>)> {
            self.0.lock().unwrap().followers.push(to);
            Some((1, Box::pin(async { Ok(()) })))
        }

        fn unfollow(&self, _: &RoomName, _: u64) {}

        fn share_cursor(&self, _: &RoomName, _: &Bytes) {}
    }

    async fn frames(q: &mut outbox::Queue, n: usize) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        while out.len() < n {
            let item = tokio::time::timeout(Duration::from_secs(5), q.rx.recv())
                .await
                .expect("a frame in time")
                .expect("queue open");
            match item {
                Queued::Text(b) => out.push(serde_json::from_slice(&b).unwrap()),
                Queued::Batch(v) => {
                    out.extend(v.iter().map(|b| serde_json::from_slice(b).unwrap()))
                }
                other => panic!("{other:?}"),
            }
        }
        out
    }

    /// Both writers submit an op on revision 0: one append lands, the
    /// other conflicts, reads the first from the log, transforms and lands
    /// on top. Each sender gets one ack, each sees the other's op, and
    /// both copies end the same.
    #[test]
    fn two_writers_on_one_log_converge_through_a_conflict() {
        actix::System::new().block_on(async {
            let hub = Hub::for_tests(Presence::new(Duration::from_secs(60)).start());
            let log = MemLog::default();
            let limits = Limits {
                max_chars: 100,
                keep_ops: 10,
                snapshot_every: 100,
            };
            let name = RoomName::parse("d").unwrap();
            let mut queues = Vec::new();
            let mut docs = Vec::new();
            for (i, cid) in ["ca", "cb"].into_iter().enumerate() {
                let doc =
                    Document::new(name.clone(), hub.clone(), Arc::new(log.clone()), limits, 16)
                        .start();
                let (outbox, _close, mut q) = outbox::queue(16, Sink.start().recipient());
                let session = SessionId(i as u64 + 1);
                doc.do_send(Open {
                    session,
                    user: UserId::parse(cid).unwrap(),
                    name: cid.into(),
                    outbox,
                    rev: None,
                    id: None,
                });
                assert_eq!(frames(&mut q, 1).await[0]["type"], "doc:snapshot");
                queues.push((q, _close));
                docs.push((doc, session, cid));
            }
            for ((doc, session, cid), text) in docs.iter().zip([r#"["a"]"#, r#"["b"]"#]) {
                doc.do_send(Submit {
                    session: *session,
                    edit: Edit {
                        rev: 0,
                        cid: Arc::from(*cid),
                        seq: 1,
                        op: crate::ot::Op::parse(text).unwrap(),
                    },
                });
            }
            for (q, _) in &mut queues {
                let got = frames(q, 2).await;
                let types: Vec<_> = got.iter().map(|f| f["type"].as_str().unwrap()).collect();
                assert!(
                    types.contains(&"doc:ack") && types.contains(&"doc:op"),
                    "{got:?}"
                );
            }
            let counts = {
                let s = log.0.lock().unwrap();
                (s.ops.len(), s.conflicts)
            };
            assert_eq!(counts, (2, 1), "two ops stored, one conflict");
            let mut texts = Vec::new();
            for ((doc, session, cid), (q, _)) in docs.iter().zip(&mut queues) {
                let (outbox, _c, mut fresh) = outbox::queue(16, Sink.start().recipient());
                doc.do_send(Open {
                    session: SessionId(session.0 + 10),
                    user: UserId::parse(cid).unwrap(),
                    name: (*cid).into(),
                    outbox,
                    rev: None,
                    id: None,
                });
                let snap = frames(&mut fresh, 1).await.remove(0);
                assert_eq!(snap["rev"], 2, "{snap}");
                texts.push(snap["text"].as_str().unwrap().to_string());
                assert!(
                    q.rx.try_recv().is_err(),
                    "no frame beyond one ack and one op"
                );
            }
            assert_eq!(texts[0], texts[1]);
            assert!(texts[0] == "ab" || texts[0] == "ba", "{texts:?}");
        });
    }
}
