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
    /// A snapshot is stored after this many ops.
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
    last_snapshot: u64,
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
            last_snapshot: state.snapshot_rev,
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

    /// Ops are applied in memory but not stored yet.
    pub fn busy(&self) -> bool {
        !self.pending.is_empty()
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
        match self.commit(from, user, e, ts) {
            Ok(outs) => outs,
            Err(err) => vec![Out::To(from, DocFrame::Error(err))],
        }
    }

    fn commit(
        &mut self,
        from: S,
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
            if !p.ackers.contains(&from) {
                p.ackers.push(from);
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
                    Some(rev) => Ok(vec![Out::To(from, DocFrame::Ack { rev, seq: e.seq })]),
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
            ackers: vec![from],
        });
        Ok(self.start_write().into_iter().collect())
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
        if self.visible >= self.last_snapshot + self.limits.snapshot_every.max(1) {
            self.last_snapshot = self.visible;
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
