//! The state of one document as a plain struct: the server half of OT.
//!
//! `rev` counts committed ops. An op is **committed** when it is applied in
//! memory (later ops are transformed against it at once), and **visible**
//! once its batch is stored: only then is it acknowledged to its sender and
//! sent to everyone else. Clients therefore only ever see stored revisions,
//! and a store failure rolls the document back to the last visible one
//! without anyone having seen what is undone.
//!
//! Every method returns what to send as [`Out`] values; the actor (and the
//! simulation in `sim.rs`) carries them out. `S` names a session.

use super::wire;
use crate::docstore::{DocOpRecord, DocState};
use crate::error::{ErrorCode, HubError};
use crate::ot::Op;
use bytes::Bytes;
use lru::LruCache;
use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::Arc;

/// Clients whose last op is remembered for recognising resends.
const KEPT_CLIENTS: usize = 4096;

/// Per-document bounds and persistence rhythm (from `Config`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest document, in code points.
    pub max_chars: u64,
    /// Ops kept in memory (and asked of the store) for late clients.
    pub keep_ops: usize,
    /// A snapshot is stored at every multiple of this many revisions, by
    /// the writer whose committed batch reaches it (one writer per multiple
    /// also with several nodes).
    pub snapshot_every: u64,
}

/// One committed op, shared by the log and every frame that carries it.
#[derive(Debug)]
pub struct Committed {
    /// The revision this op produced.
    pub rev: u64,
    pub op: Op,
    pub cid: Arc<str>,
    pub seq: u64,
    pub user: Arc<str>,
    pub ts: u64,
    /// Its `doc:op` frame, encoded once for everyone.
    pub frame: Bytes,
}

/// An op as a client sent it, parsed.
#[derive(Debug, Clone)]
pub struct Edit {
    /// The revision it was made on.
    pub rev: u64,
    pub cid: Arc<str>,
    pub seq: u64,
    pub op: Op,
}

/// A refusal, sent as an `error` frame naming the document.
#[derive(Debug, Clone, PartialEq)]
pub struct DocError {
    pub code: ErrorCode,
    pub message: String,
    /// The refused op's `seq`, so the client knows which op it was.
    pub seq: Option<u64>,
    pub retry_after_ms: Option<u64>,
}

impl DocError {
    pub fn new(code: ErrorCode, message: impl Into<String>, seq: Option<u64>) -> DocError {
        DocError {
            code,
            message: message.into(),
            seq,
            retry_after_ms: None,
        }
    }
}

/// A frame for a client.
#[derive(Debug, Clone)]
pub enum DocFrame {
    Snapshot { rev: u64, text: Arc<str> },
    Op(Arc<Committed>),
    Ack { rev: u64, seq: u64 },
    Error(DocError),
}

/// What the owner of a [`DocCore`] must do.
#[derive(Debug)]
pub enum Out<S> {
    /// Send to one session.
    To(S, DocFrame),
    /// Send to every session that has the document open, except these.
    Others(Vec<S>, DocFrame),
    /// Store these ops (one batch), then call [`DocCore::stored`].
    Write(Vec<DocOpRecord>),
    /// Store a snapshot (fire and forget).
    Snapshot { rev: u64, text: Arc<str> },
}

/// An op applied in memory whose batch is not stored yet.
#[derive(Debug)]
struct Pending<S> {
    rev: u64,
    /// Who sent it, and who resent it meanwhile: all get the ack.
    ackers: Vec<S>,
    /// As its client sent it, to commit it again after a rebase.
    edit: Edit,
}

/// An op taken back from `pending` (another node committed first) or held
/// while the document catches up: committed again by [`DocCore::unpark`].
#[derive(Debug)]
struct Parked<S> {
    ackers: Vec<S>,
    user: Arc<str>,
    edit: Edit,
    ts: u64,
}

pub struct DocCore<S> {
    name: Arc<str>,
    limits: Limits,
    /// Text at `head` (every committed op applied).
    text: String,
    head: u64,
    head_len: u64,
    /// Text at `visible` (every stored op applied): what clients may see.
    visible_text: Arc<str>,
    visible: u64,
    visible_len: u64,
    /// Committed ops, oldest first, ending at `head`: `head - log.len()` is
    /// the oldest revision an op may still be based on.
    log: VecDeque<Arc<Committed>>,
    /// Ops `visible + 1 ..= head`, in order.
    pending: VecDeque<Pending<S>>,
    /// How many of `pending` (from the front) are being stored now.
    writing: usize,
    /// Per client id, its last visible `(seq, rev)`.
    last_seq: LruCache<Arc<str>, (u64, u64)>,
    /// Ops waiting to be committed again (shared documents only).
    parked: VecDeque<Parked<S>>,
}

fn lengths_error(e: crate::ot::OpError, seq: u64) -> DocError {
    DocError::new(ErrorCode::InvalidOp, e.0, Some(seq))
}

impl<S: Copy + Eq> DocCore<S> {
    /// A document from what its store holds.
    pub fn load(name: &str, state: DocState, limits: Limits) -> Result<DocCore<S>, String> {
        let name: Arc<str> = Arc::from(name);
        let mut log = VecDeque::new();
        // Older ops only serve late clients; a gap among them just drops them.
        let older = state.older_ops.iter();
        let mut expect = state
            .snapshot_rev
            .saturating_sub(state.older_ops.len() as u64);
        let mut older_ok = Vec::new();
        for o in older {
            expect += 1;
            match Op::parse(&o.op) {
                Ok(op) if o.rev == expect => older_ok.push(committed(&name, o, op)),
                _ => {
                    older_ok.clear();
                    break;
                }
            }
        }
        if older_ok.len() == state.older_ops.len() {
            log.extend(older_ok);
        }
        let mut text = state.snapshot_text;
        let mut rev = state.snapshot_rev;
        for o in &state.ops {
            if o.rev != rev + 1 {
                return Err(format!("stored op {} does not follow rev {rev}", o.rev));
            }
            let op = Op::parse(&o.op).map_err(|e| format!("stored op {}: {e}", o.rev))?;
            text = op
                .apply(&text)
                .map_err(|e| format!("stored op {}: {e}", o.rev))?;
            rev += 1;
            log.push_back(committed(&name, o, op));
        }
        let cap = NonZeroUsize::new(KEPT_CLIENTS).unwrap_or(NonZeroUsize::MIN);
        let mut last_seq = LruCache::new(cap);
        for c in &log {
            last_seq.put(c.cid.clone(), (c.seq, c.rev));
        }
        let len = crate::ot::char_len(&text);
        let mut core = DocCore {
            name,
            limits,
            visible_text: Arc::from(text.as_str()),
            text,
            head: rev,
            head_len: len,
            visible: rev,
            visible_len: len,
            log,
            pending: VecDeque::new(),
            writing: 0,
            last_seq,
            parked: VecDeque::new(),
        };
        core.trim();
        Ok(core)
    }

    pub fn visible(&self) -> u64 {
        self.visible
    }

    pub fn visible_text(&self) -> &str {
        &self.visible_text
    }

    /// Ops are applied in memory but not stored yet (or wait to be).
    pub fn busy(&self) -> bool {
        !self.pending.is_empty() || !self.parked.is_empty()
    }

    /// A batch is being stored.
    pub fn writing(&self) -> bool {
        self.writing > 0
    }

    /// The oldest revision an op may be based on.
    fn log_base(&self) -> u64 {
        self.head - self.log.len() as u64
    }

    /// Visible ops after `rev`.
    fn visible_after(&self, rev: u64) -> impl Iterator<Item = &Arc<Committed>> {
        let skip = rev.saturating_sub(self.log_base()) as usize;
        self.log
            .iter()
            .skip(skip)
            .take_while(move |c| c.rev <= self.visible)
    }

    /// What a session opening the document gets: the ops after `rev` if the
    /// log still has them all, else a snapshot (also when `rev` is ahead of
    /// the document, as after a server lost unstored state).
    pub fn open(&self, rev: Option<u64>) -> Vec<DocFrame> {
        match rev {
            Some(r) if r >= self.log_base() && r <= self.visible => self
                .visible_after(r)
                .map(|c| DocFrame::Op(c.clone()))
                .collect(),
            _ => vec![DocFrame::Snapshot {
                rev: self.visible,
                text: self.visible_text.clone(),
            }],
        }
    }

    /// An op from session `from` (user `user`).
    pub fn submit(&mut self, from: S, user: &Arc<str>, e: Edit, ts: u64) -> Vec<Out<S>> {
        self.submit_for(vec![from], user, e, ts)
    }

    /// [`DocCore::submit`] on behalf of several sessions (an op and its resends).
    fn submit_for(&mut self, ackers: Vec<S>, user: &Arc<str>, e: Edit, ts: u64) -> Vec<Out<S>> {
        let mut outs = self.try_commit(ackers, user, e, ts);
        outs.extend(self.start_write());
        outs
    }

    fn try_commit(&mut self, ackers: Vec<S>, user: &Arc<str>, e: Edit, ts: u64) -> Vec<Out<S>> {
        match self.commit(&ackers, user, e, ts) {
            Ok(outs) => outs,
            Err(err) => ackers
                .into_iter()
                .map(|a| Out::To(a, DocFrame::Error(err.clone())))
                .collect(),
        }
    }

    fn commit(
        &mut self,
        from: &[S],
        user: &Arc<str>,
        e: Edit,
        ts: u64,
    ) -> Result<Vec<Out<S>>, DocError> {
        // A resend of an op that is waiting for the store: ack it with the rest.
        let base = self.log_base();
        let waiting = self.pending.iter_mut().find(|p| {
            let c = &self.log[(p.rev - base - 1) as usize];
            c.cid == e.cid && c.seq == e.seq
        });
        if let Some(p) = waiting {
            for f in from {
                if !p.ackers.contains(f) {
                    p.ackers.push(*f);
                }
            }
            return Ok(Vec::new());
        }
        // A resend of a stored op: ack it again.
        if let Some(&(seq, rev)) = self.last_seq.get(&e.cid) {
            if e.seq <= seq {
                let rev = if e.seq == seq {
                    Some(rev)
                } else {
                    self.visible_after(0)
                        .find(|c| c.cid == e.cid && c.seq == e.seq)
                        .map(|c| c.rev)
                };
                return match rev {
                    Some(rev) => Ok(from
                        .iter()
                        .map(|f| Out::To(*f, DocFrame::Ack { rev, seq: e.seq }))
                        .collect()),
                    None => Err(DocError::new(
                        ErrorCode::RevTooOld,
                        format!(
                            "seq {} is older than this client's last op ({seq}) and no longer kept",
                            e.seq
                        ),
                        Some(e.seq),
                    )),
                };
            }
        }
        if e.rev > self.visible {
            return Err(DocError::new(
                ErrorCode::RevInFuture,
                format!(
                    "rev {} is ahead of the document (rev {})",
                    e.rev, self.visible
                ),
                Some(e.seq),
            ));
        }
        if e.rev < base {
            return Err(DocError::new(
                ErrorCode::RevTooOld,
                format!(
                    "rev {} is older than the kept history (from rev {base}); reopen the document",
                    e.rev
                ),
                Some(e.seq),
            ));
        }
        // Transform against each op committed since, one at a time.
        let edit = e.clone();
        let mut op = e.op;
        for c in self.log.iter().skip((e.rev - base) as usize) {
            op = Op::transform(&op, &c.op)
                .map_err(|err| lengths_error(err, e.seq))?
                .0;
        }
        if op.base_len() != self.head_len {
            let msg = format!(
                "the op applies to a text of {} characters, but the document had {} at rev {}",
                op.base_len(),
                self.head_len,
                e.rev
            );
            return Err(DocError::new(ErrorCode::InvalidOp, msg, Some(e.seq)));
        }
        if op.target_len() > self.limits.max_chars && op.target_len() > op.base_len() {
            let msg = format!(
                "the document would have {} characters; the limit is {}",
                op.target_len(),
                self.limits.max_chars
            );
            return Err(DocError::new(ErrorCode::TooLarge, msg, Some(e.seq)));
        }
        self.text = op
            .apply(&self.text)
            .map_err(|err| lengths_error(err, e.seq))?;
        self.head += 1;
        self.head_len = op.target_len();
        let frame = wire::op_frame(&self.name, self.head, &e.cid, e.seq, user, &op);
        self.log.push_back(Arc::new(Committed {
            rev: self.head,
            op,
            cid: e.cid,
            seq: e.seq,
            user: user.clone(),
            ts,
            frame,
        }));
        self.pending.push_back(Pending {
            rev: self.head,
            ackers: from.to_vec(),
            edit,
        });
        Ok(Vec::new())
    }

    /// Starts storing every pending op if no batch is being stored.
    fn start_write(&mut self) -> Option<Out<S>> {
        if self.writing > 0 || self.pending.is_empty() {
            return None;
        }
        self.writing = self.pending.len();
        let base = self.log_base();
        let records = self
            .pending
            .iter()
            .map(|p| {
                let c = &self.log[(p.rev - base - 1) as usize];
                DocOpRecord {
                    rev: c.rev,
                    cid: c.cid.to_string(),
                    seq: c.seq,
                    user: c.user.to_string(),
                    op: c.op.to_json(),
                    ts: c.ts,
                }
            })
            .collect();
        Some(Out::Write(records))
    }

    /// The store answered the batch started by the last `Out::Write`.
    pub fn stored(&mut self, result: Result<(), HubError>) -> Vec<Out<S>> {
        let n = std::mem::take(&mut self.writing);
        let mut outs = Vec::new();
        if let Err(e) = result {
            return self.roll_back(&e);
        }
        let base = self.log_base();
        let before = self.visible;
        let mut text = self.visible_text.to_string();
        for p in self.pending.drain(..n.min(self.pending.len())) {
            let c = self.log[(p.rev - base - 1) as usize].clone();
            match c.op.apply(&text) {
                Ok(t) => text = t,
                // Unreachable: the same op applied to the same text at commit.
                Err(e) => log::error!("document {}: visible text out of step: {e}", self.name),
            }
            self.visible = c.rev;
            self.visible_len = c.op.target_len();
            self.last_seq.put(c.cid.clone(), (c.seq, c.rev));
            for a in &p.ackers {
                outs.push(Out::To(
                    *a,
                    DocFrame::Ack {
                        rev: c.rev,
                        seq: c.seq,
                    },
                ));
            }
            outs.push(Out::Others(p.ackers, DocFrame::Op(c)));
        }
        self.visible_text = Arc::from(text);
        let every = self.limits.snapshot_every.max(1);
        if self.visible / every > before / every {
            outs.push(Out::Snapshot {
                rev: self.visible,
                text: self.visible_text.clone(),
            });
        }
        self.trim();
        outs.extend(self.start_write());
        outs
    }

    /// The store failed: undo every op it does not have, and tell their
    /// senders to resend (same `cid` and `seq`; nobody has seen them).
    fn roll_back(&mut self, e: &HubError) -> Vec<Out<S>> {
        log::warn!(
            "document {}: storing ops failed ({e}); rolled back to rev {}",
            self.name,
            self.visible
        );
        let base = self.log_base();
        let mut outs = Vec::new();
        for p in self.pending.drain(..) {
            let seq = self.log[(p.rev - base - 1) as usize].seq;
            for a in p.ackers {
                let mut err = DocError::new(
                    ErrorCode::Unavailable,
                    format!("the op could not be stored ({}); resend it", e.message),
                    Some(seq),
                );
                err.retry_after_ms = Some(1000);
                outs.push(Out::To(a, DocFrame::Error(err)));
            }
        }
        self.log.truncate((self.visible - base) as usize);
        self.text = self.visible_text.to_string();
        self.head = self.visible;
        self.head_len = self.visible_len;
        self.writing = 0;
        outs
    }

    /// Another node committed first (shared documents): takes back every
    /// op not stored, silently, to be committed again by [`DocCore::unpark`]
    /// once the ops committed elsewhere are applied.
    pub fn park(&mut self) {
        let base = self.log_base();
        let mut back = VecDeque::new();
        for p in self.pending.drain(..) {
            let c = &self.log[(p.rev - base - 1) as usize];
            back.push_back(Parked {
                ackers: p.ackers,
                user: c.user.clone(),
                edit: p.edit,
                ts: c.ts,
            });
        }
        back.extend(self.parked.drain(..));
        self.parked = back;
        self.log.truncate((self.visible - base) as usize);
        self.text = self.visible_text.to_string();
        self.head = self.visible;
        self.head_len = self.visible_len;
        self.writing = 0;
    }

    /// An op that arrives while the document catches up: committed later.
    pub fn hold(&mut self, from: S, user: &Arc<str>, e: Edit, ts: u64) {
        let same = |p: &&mut Parked<S>| p.edit.cid == e.cid && p.edit.seq == e.seq;
        match self.parked.iter_mut().find(same) {
            Some(p) if !p.ackers.contains(&from) => p.ackers.push(from),
            Some(_) => {}
            None => self.parked.push_back(Parked {
                ackers: vec![from],
                user: user.clone(),
                edit: e,
                ts,
            }),
        }
    }

    /// Commits the parked ops again, in order, and starts storing them.
    pub fn unpark(&mut self) -> Vec<Out<S>> {
        let mut outs = Vec::new();
        for p in std::mem::take(&mut self.parked) {
            outs.extend(self.try_commit(p.ackers, &p.user, p.edit, p.ts));
        }
        outs.extend(self.start_write());
        outs
    }

    /// Takes over the parked ops of `old` (a copy of the document reloaded).
    pub fn adopt_parked(&mut self, old: &mut DocCore<S>) {
        old.park();
        self.parked.extend(old.parked.drain(..));
    }

    /// The store says client `cid` already has `seq` stored at `rev`.
    pub fn note_stored(&mut self, cid: &str, seq: u64, rev: u64) {
        let newer = self.last_seq.peek(cid).is_none_or(|(s, _)| *s < seq);
        if newer {
            self.last_seq.put(Arc::from(cid), (seq, rev));
        }
    }

    /// An op committed by another node (shared documents), at `visible + 1`
    /// with nothing of this node's pending. Its sender's sessions here (a
    /// parked op of theirs: an earlier attempt landed) get the ack; every
    /// other session gets the op.
    pub fn remote(&mut self, o: &DocOpRecord) -> Result<Vec<Out<S>>, String> {
        if !self.pending.is_empty() || o.rev != self.visible + 1 {
            return Err(format!(
                "op {} does not follow rev {} (or ops are being stored)",
                o.rev, self.visible
            ));
        }
        let op = Op::parse(&o.op).map_err(|e| format!("op {}: {e}", o.rev))?;
        let text = op
            .apply(&self.visible_text)
            .map_err(|e| format!("op {}: {e}", o.rev))?;
        let c = committed(&self.name, o, op);
        self.visible_text = Arc::from(text.as_str());
        self.text = text;
        self.head = o.rev;
        self.visible = o.rev;
        self.head_len = c.op.target_len();
        self.visible_len = self.head_len;
        self.last_seq.put(c.cid.clone(), (c.seq, c.rev));
        self.log.push_back(c.clone());
        self.trim();
        let mine = self
            .parked
            .iter()
            .position(|p| p.edit.cid == c.cid && p.edit.seq == c.seq);
        let ackers = mine
            .and_then(|i| self.parked.remove(i))
            .map_or_else(Vec::new, |p| p.ackers);
        let mut outs: Vec<Out<S>> = ackers
            .iter()
            .map(|a| {
                Out::To(
                    *a,
                    DocFrame::Ack {
                        rev: c.rev,
                        seq: c.seq,
                    },
                )
            })
            .collect();
        outs.push(Out::Others(ackers, DocFrame::Op(c)));
        Ok(outs)
    }

    /// Forgets visible ops beyond the newest `keep_ops`.
    fn trim(&mut self) {
        let keep_from = self.visible.saturating_sub(self.limits.keep_ops as u64);
        while self.log.front().is_some_and(|c| c.rev <= keep_from) {
            self.log.pop_front();
        }
    }

    /// A cursor made at `rev` (default: the visible one), moved over the
    /// visible ops since and kept inside the text. Answers the visible rev
    /// and the two positions.
    pub fn cursor(
        &self,
        rev: Option<u64>,
        anchor: u64,
        head: u64,
    ) -> Result<(u64, u64, u64), DocError> {
        let rev = rev.unwrap_or(self.visible);
        if rev > self.visible {
            return Err(DocError::new(
                ErrorCode::RevInFuture,
                format!("rev {rev} is ahead of the document (rev {})", self.visible),
                None,
            ));
        }
        let (mut a, mut h) = (anchor, head);
        if rev >= self.log_base() {
            for c in self.visible_after(rev) {
                a = c.op.transform_index(a);
                h = c.op.transform_index(h);
            }
        }
        Ok((
            self.visible,
            a.min(self.visible_len),
            h.min(self.visible_len),
        ))
    }
}

fn committed(name: &str, o: &DocOpRecord, op: Op) -> Arc<Committed> {
    let (cid, user): (Arc<str>, Arc<str>) = (Arc::from(o.cid.as_str()), Arc::from(o.user.as_str()));
    Arc::new(Committed {
        frame: wire::op_frame(name, o.rev, &cid, o.seq, &user, &op),
        rev: o.rev,
        op,
        cid,
        seq: o.seq,
        user,
        ts: o.ts,
    })
}
