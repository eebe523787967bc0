//! Collaborative text editing: one Document actor per open document.
//!
//! ```text
//!  Session ──doc:open──► Hub (Directory) ──Open──► Document ◄──LoadDoc── store
//!  Session ──doc:op / doc:cursor / doc:close───────► Document ──AppendDocOps──► store
//!                         every frame ◄── member outboxes (one FIFO per connection)
//! ```
//!
//! The Hub creates documents on the room arbiters and frees them when no one
//! has them open and their writes are done ([`Directory`]). The OT state and
//! its rules live in the plain [`core::DocCore`]; this actor loads it from
//! the store, feeds it messages, stores its batches, and queues its frames.

pub mod core;
mod follow;
pub mod oplog;
pub mod wire;

#[cfg(test)]
mod replicas;
#[cfg(test)]
mod sim;

use self::core::{DocCore, DocError, Edit, Limits, Out};
use crate::error::ErrorCode;
use crate::hub::{DocIdle, Hub};
use crate::ids::{now_ms, RoomName, SessionId, UserId};
use crate::metrics::METRICS;
use crate::outbox::{Out as Queued, Outbox};
use crate::protocol::{encode, ServerFrame};
use actix::prelude::*;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// A session that has the document open.
struct Member {
    outbox: Outbox,
    user: UserId,
    user_arc: Arc<str>,
    name: Arc<str>,
    /// Its last cursor: client id, revision, anchor, head.
    cursor: Option<(Arc<str>, u64, u64, u64)>,
}

pub struct Document {
    name: RoomName,
    hub: Addr<Hub>,
    /// Where its ops are committed (`oplog.rs`).
    log: Arc<dyn oplog::OpLog>,
    limits: Limits,
    /// `None` until loaded, and if loading failed.
    core: Option<DocCore<SessionId>>,
    load_error: Option<String>,
    members: HashMap<SessionId, Member>,
    /// Opens forwarded by the Hub (compared with the Hub's count before freeing).
    hub_ops: u64,
    /// Snapshots sent to the log and not answered yet.
    snapshots: usize,
    me: Option<Addr<Document>>,
    /// Mailbox capacity for messages from sessions.
    queue: usize,
    /// Other writers' ops (`follow.rs`).
    following: follow::Following,
}

impl Document {
    pub fn new(
        name: RoomName,
        hub: Addr<Hub>,
        log: Arc<dyn oplog::OpLog>,
        limits: Limits,
        queue: usize,
    ) -> Document {
        Document {
            name,
            hub,
            log,
            limits,
            core: None,
            load_error: None,
            members: HashMap::new(),
            hub_ops: 0,
            snapshots: 0,
            me: None,
            queue: queue.max(1),
            following: follow::Following::default(),
        }
    }

    fn push(&mut self, session: SessionId, frame: Bytes) {
        if let Some(m) = self.members.get(&session) {
            if !m.outbox.push(frame) {
                self.members.remove(&session);
            }
        }
    }

    fn error(&mut self, session: SessionId, e: DocError, reference: Option<&str>) {
        let frame = wire::error(self.name.as_str(), &e, reference);
        self.push(session, frame);
    }

    /// Queues `frame` to every member but `except`; drops members whose queue failed.
    fn others(&mut self, except: &[SessionId], frame: &Bytes) {
        let mut failed = Vec::new();
        let mut sent = 0;
        for (s, m) in &self.members {
            if except.contains(s) {
                continue;
            }
            if m.outbox.push(frame.clone()) {
                sent += 1;
            } else {
                failed.push(*s);
            }
        }
        METRICS.deliveries.fetch_add(sent, Relaxed);
        for s in failed {
            self.members.remove(&s);
        }
    }

    /// Carries out what the core asked for.
    fn run(&mut self, outs: Vec<Out<SessionId>>, ctx: &mut Context<Self>) {
        for o in outs {
            match o {
                Out::To(s, f) => {
                    let frame = wire::frame(self.name.as_str(), &f);
                    self.push(s, frame);
                }
                Out::Others(except, f) => {
                    let frame = wire::frame(self.name.as_str(), &f);
                    self.others(&except, &frame);
                }
                Out::Write(ops) => self.append(ops, ctx),
                Out::Snapshot { rev, text } => self.snapshot(rev, text.to_string(), ctx),
            }
        }
    }

    /// Tells the Hub when no one has the document open and nothing is being stored.
    fn report_if_idle(&self) {
        let busy = self.core.as_ref().is_some_and(|c| c.busy())
            || self.snapshots > 0
            || self.following.catching_up;
        if let (true, false, Some(me)) = (self.members.is_empty(), busy, &self.me) {
            self.hub.do_send(DocIdle {
                addr: me.clone(),
                doc: self.name.clone(),
                hub_ops: self.hub_ops,
            });
        }
    }

    /// Others' cursors, moved to the visible revision, for a session that opens.
    fn cursors_for(&self, session: SessionId) -> Vec<Bytes> {
        let Some(core) = &self.core else {
            return Vec::new();
        };
        self.members
            .iter()
            .filter(|(s, _)| **s != session)
            .filter_map(|(_, m)| {
                let (cid, rev, a, h) = m.cursor.as_ref()?;
                let (rev, a, h) = core.cursor(Some(*rev), *a, *h).ok()?;
                Some(wire::cursor(
                    self.name.as_str(),
                    Some(rev),
                    cid,
                    m.user.as_str(),
                    &m.name,
                    Some((a, h)),
                ))
            })
            .collect()
    }
}

impl Actor for Document {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.me = Some(ctx.address());
        ctx.set_mailbox_capacity(self.queue);
        METRICS.documents.fetch_add(1, Relaxed);
        self.start_log(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.stop_log();
        METRICS.documents.fetch_sub(1, Relaxed);
    }
}

/// A session opens the document (forwarded by the Hub). Opening it again
/// sends the snapshot or ops again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Open {
    pub session: SessionId,
    pub user: UserId,
    pub name: Arc<str>,
    pub outbox: Outbox,
    /// The revision the client has, if any.
    pub rev: Option<u64>,
    pub id: Option<String>,
}

impl Handler<Open> for Document {
    type Result = ();

    fn handle(&mut self, msg: Open, _: &mut Context<Self>) {
        self.hub_ops += 1;
        let cursor = self.members.remove(&msg.session).and_then(|m| m.cursor);
        self.members.insert(
            msg.session,
            Member {
                outbox: msg.outbox,
                user_arc: Arc::from(msg.user.as_str()),
                user: msg.user,
                name: msg.name,
                cursor,
            },
        );
        let Some(core) = &self.core else {
            let why = self.load_error.clone().unwrap_or_default();
            let e = DocError::new(
                ErrorCode::Unavailable,
                format!("the document could not be loaded: {why}"),
                None,
            );
            self.error(msg.session, e, msg.id.as_deref());
            self.members.remove(&msg.session);
            return self.report_if_idle();
        };
        let mut batch: Vec<Bytes> = core
            .open(msg.rev)
            .iter()
            .map(|f| wire::frame(self.name.as_str(), f))
            .collect();
        batch.extend(self.cursors_for(msg.session));
        if let Some(id) = msg.id.as_deref() {
            batch.push(encode(&ServerFrame::Ack { id, seq: None }));
        }
        let n = batch.len() as u64;
        let sent = match self.members.get(&msg.session) {
            Some(m) if !batch.is_empty() => m.outbox.send(Queued::Batch(batch)),
            _ => true,
        };
        if sent {
            METRICS.deliveries.fetch_add(n, Relaxed);
        } else {
            self.members.remove(&msg.session);
            self.report_if_idle();
        }
    }
}

/// An op from a session that has the document open.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Submit {
    pub session: SessionId,
    pub edit: Edit,
}

impl Handler<Submit> for Document {
    type Result = ();

    fn handle(&mut self, msg: Submit, ctx: &mut Context<Self>) {
        let seq = Some(msg.edit.seq);
        let Some(user) = self.members.get(&msg.session).map(|m| m.user_arc.clone()) else {
            return;
        };
        let Some(core) = self.core.as_mut() else {
            let e = DocError::new(ErrorCode::Unavailable, "the document is not loaded", seq);
            return self.error(msg.session, e, None);
        };
        if self.following.catching_up {
            return core.hold(msg.session, &user, msg.edit, now_ms());
        }
        let outs = core.submit(msg.session, &user, msg.edit, now_ms());
        self.run(outs, ctx);
    }
}

/// A session's cursor or selection (volatile: never stored).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cursor {
    pub session: SessionId,
    pub cid: Arc<str>,
    pub rev: Option<u64>,
    pub anchor: u64,
    pub head: u64,
}

impl Handler<Cursor> for Document {
    type Result = ();

    fn handle(&mut self, msg: Cursor, _: &mut Context<Self>) {
        let Some(core) = &self.core else { return };
        let (rev, a, h) = match core.cursor(msg.rev, msg.anchor, msg.head) {
            Ok(c) => c,
            Err(e) => return self.error(msg.session, e, None),
        };
        let Some(m) = self.members.get_mut(&msg.session) else {
            return;
        };
        m.cursor = Some((msg.cid.clone(), rev, a, h));
        let frame = wire::cursor(
            self.name.as_str(),
            Some(rev),
            &msg.cid,
            m.user.as_str(),
            &m.name,
            Some((a, h)),
        );
        self.others(&[msg.session], &frame);
        self.log.share_cursor(&self.name, &frame);
    }
}

/// A session closes the document (or disconnected).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close {
    pub session: SessionId,
}

impl Handler<Close> for Document {
    type Result = ();

    fn handle(&mut self, msg: Close, _: &mut Context<Self>) {
        if let Some(m) = self.members.remove(&msg.session) {
            if let Some((cid, ..)) = &m.cursor {
                let frame = wire::cursor(
                    self.name.as_str(),
                    None,
                    cid,
                    m.user.as_str(),
                    &m.name,
                    None,
                );
                self.others(&[], &frame);
                self.log.share_cursor(&self.name, &frame);
            }
        }
        self.report_if_idle();
    }
}

/// Sent by the Hub once it has forgotten the document.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for Document {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

struct DocEntry {
    addr: Addr<Document>,
    /// Opens forwarded (compared with the document's own count).
    hub_ops: u64,
}

/// The Hub's directory of documents: creates their actors, forwards opens,
/// frees them when they report idle with nothing in flight.
pub struct Directory {
    /// Where documents' ops are committed: the embedded database, or
    /// Redis with several nodes.
    log: Arc<dyn oplog::OpLog>,
    limits: Limits,
    queue: usize,
    docs: HashMap<RoomName, DocEntry>,
}

impl Directory {
    pub fn new(log: Arc<dyn oplog::OpLog>, limits: Limits, queue: usize) -> Directory {
        Directory {
            log,
            limits,
            queue,
            docs: HashMap::new(),
        }
    }

    /// Forwards `open` to the document `doc`, starting its actor (on
    /// `arbiter`, if given) when needed. Answers its address.
    pub fn open(
        &mut self,
        doc: RoomName,
        open: Open,
        hub: Addr<Hub>,
        arbiter: Option<&ArbiterHandle>,
    ) -> Addr<Document> {
        let entry = self.docs.entry(doc.clone()).or_insert_with(|| {
            let (log, limits, queue) = (self.log.clone(), self.limits, self.queue);
            let document = Document::new(doc, hub, log, limits, queue);
            let addr = crate::mailbox::start_bounded(document, queue, arbiter);
            DocEntry { addr, hub_ops: 0 }
        });
        entry.hub_ops += 1;
        entry.addr.do_send(open);
        entry.addr.clone()
    }

    /// A document reported idle: forget and stop it if nothing is in flight to it.
    pub fn idle(&mut self, msg: DocIdle) {
        let free = matches!(self.docs.get(&msg.doc), Some(d) if d.addr == msg.addr && d.hub_ops == msg.hub_ops);
        if free {
            if let Some(d) = self.docs.remove(&msg.doc) {
                d.addr.do_send(Stop);
                log::debug!("document {} freed", msg.doc);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docstore::{
        AppendDocOps, DocOpRecord, DocState, DocStore, LoadDoc, SaveDocSnapshot,
    };
    use crate::error::HubError;
    use crate::outbox::{self, Sink};
    use crate::presence::Presence;
    use std::time::Duration;

    /// A store whose first append fails, as a full disk would.
    #[derive(Default)]
    struct FlakyStore {
        appends: usize,
        ops: Vec<DocOpRecord>,
    }
    impl Actor for FlakyStore {
        type Context = Context<Self>;
    }
    impl Handler<LoadDoc> for FlakyStore {
        type Result = Result<DocState, HubError>;
        fn handle(&mut self, _: LoadDoc, _: &mut Context<Self>) -> Self::Result {
            Ok(DocState::default())
        }
    }
    impl Handler<AppendDocOps> for FlakyStore {
        type Result = Result<(), HubError>;
        fn handle(&mut self, msg: AppendDocOps, _: &mut Context<Self>) -> Self::Result {
            self.appends += 1;
            if self.appends == 1 {
                return Err(HubError::new(ErrorCode::Internal, "disk full"));
            }
            self.ops.extend(msg.ops);
            Ok(())
        }
    }
    impl Handler<SaveDocSnapshot> for FlakyStore {
        type Result = Result<(), HubError>;
        fn handle(&mut self, _: SaveDocSnapshot, _: &mut Context<Self>) -> Self::Result {
            Ok(())
        }
    }

    async fn next(q: &mut outbox::Queue) -> serde_json::Value {
        let item = tokio::time::timeout(Duration::from_secs(5), q.rx.recv())
            .await
            .expect("a frame in time")
            .expect("queue open");
        let bytes = match item {
            Queued::Text(b) => b,
            Queued::Batch(mut v) => v.remove(0),
            other => panic!("{other:?}"),
        };
        serde_json::from_slice(&bytes).expect("JSON")
    }

    fn edit(seq: u64, json: &str) -> Submit {
        Submit {
            session: SessionId(1),
            edit: Edit {
                rev: 0,
                cid: Arc::from("c1"),
                seq,
                op: crate::ot::Op::parse(json).unwrap(),
            },
        }
    }

    /// A failed append undoes the op and tells its sender to resend; the
    /// resend (same seq) is then stored and acknowledged once.
    #[test]
    fn a_failed_write_is_refused_with_unavailable_and_the_resend_lands() {
        actix::System::new().block_on(async {
            let presence = Presence::new(Duration::from_secs(60)).start();
            let hub = Hub::for_tests(presence);
            let store = FlakyStore::default().start();
            let doc_limits = Limits {
                max_chars: 100,
                keep_ops: 10,
                snapshot_every: 10,
            };
            let name = RoomName::parse("d").unwrap();
            let log = Arc::new(oplog::Local(DocStore::of(store)));
            let doc = Document::new(name, hub, log, doc_limits, 16).start();
            let (outbox, _close, mut q) = outbox::queue(16, Sink.start().recipient());
            let open = || Open {
                session: SessionId(1),
                user: UserId::parse("u").unwrap(),
                name: "U".into(),
                outbox: outbox.clone(),
                rev: None,
                id: None,
            };
            doc.do_send(open());
            assert_eq!(next(&mut q).await["type"], "doc:snapshot");
            doc.do_send(edit(1, r#"["a"]"#));
            let e = next(&mut q).await;
            assert_eq!(
                (e["code"].as_str(), e["seq"].as_u64()),
                (Some("unavailable"), Some(1)),
                "{e}"
            );
            assert!(e["retry_after_ms"].as_u64().is_some(), "{e}");
            doc.do_send(edit(1, r#"["a"]"#));
            let a = next(&mut q).await;
            assert_eq!(
                (a["type"].as_str(), a["rev"].as_u64()),
                (Some("doc:ack"), Some(1)),
                "{a}"
            );
            // Applied once: the text and revision say so.
            doc.do_send(open());
            let s = next(&mut q).await;
            assert_eq!(
                (s["rev"].as_u64(), s["text"].as_str()),
                (Some(1), Some("a")),
                "{s}"
            );
        });
    }
}
