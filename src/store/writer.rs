//! The writer thread: takes every job waiting (up to `SWITCHBOARD_DB_BATCH`),
//! runs them in one transaction, commits, and only then answers them. One
//! fsync covers the whole batch, so the more messages arrive at once, the
//! less each one costs.
//!
//! If the batch fails (disk full, database locked, I/O error), it is rolled
//! back whole: each write job is answered with `storage_error` (its sender
//! was never acknowledged), and each read job is run again on its own so a
//! full disk does not stop rooms from loading.

use super::db::{describe, Db, NotificationRow, RoomTail, SqlResult};
use super::{Job, RoomPolicy, Waiter};
use crate::docstore::DocState;
use crate::error::{ErrorCode, HubError};
use crate::ids::{now_ms, UserId};
use crate::metrics::METRICS;
use crate::outbox::Outbox;
use crate::protocol::{encode, error_frame, NotificationInfo, ServerFrame};
use bytes::Bytes;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How often stored messages past their age limit are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub(super) struct Writer {
    pub db: Db,
    pub rx: mpsc::Receiver<Job>,
    pub queued: Arc<AtomicUsize>,
    pub status: Arc<super::status::StoreStatus>,
    pub batch: usize,
    pub policy: Arc<RoomPolicy>,
    pub notifications_per_user: usize,
    pub offline_dms: usize,
    /// Jobs finished, for scrollback reads that must see them (`reader.rs`).
    pub progress: Arc<super::reader::Progress>,
}

/// What a job produced, kept until its batch commits.
enum Done {
    Nothing,
    /// A message whose seq already names another stored message: refused.
    Conflict,
    Reserved(u64),
    Room(Option<RoomTail>),
    Doc(Result<(), HubError>),
    DocState(DocState),
    Notified(Vec<(UserId, u64, u64)>),
    Page(Vec<NotificationRow>, bool, u64),
    Unread(u64),
    User(u64, Vec<(u64, Bytes)>, u64),
    State(Option<crate::state::StateMap>),
}

impl Job {
    fn writes(&self) -> bool {
        if let Job::State(s) = self {
            return s.writes();
        }
        !matches!(
            self,
            Job::LoadRoom { .. }
                | Job::LoadDoc(..)
                | Job::ListNotifications { .. }
                | Job::LoadUser { .. }
                | Job::Shutdown
        )
    }
}

/// Gives this thread a lower CPU share than the room and session threads
/// (nice 5: about a quarter of a busy core's weight): when the writer and a
/// fan-out want the same core, the fan-out goes first and acks wait.
fn lower_priority() {
    // SAFETY: plain syscall; on Linux PRIO_PROCESS with 0 names the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, WRITER_NICE) };
    if rc != 0 {
        log::debug!(
            "storage: writer priority unchanged: {}",
            std::io::Error::last_os_error()
        );
    }
}

const WRITER_NICE: libc::c_int = 5;

fn storage_error(e: &rusqlite::Error) -> HubError {
    HubError::new(ErrorCode::StorageError, describe(e))
}

fn push_error(outbox: &Outbox, e: &HubError, id: Option<&str>) {
    outbox.push(error_frame(e.code, &e.message, id, None));
}

/// Tells whoever waits on a stored room message how its write went.
fn answer_message(waiter: Waiter, seq: u64, r: Result<(), HubError>) {
    match (waiter, r) {
        (Waiter::Session { outbox, id, ack }, Ok(())) => {
            if let (true, Some(id)) = (ack, id) {
                outbox.push(encode(&ServerFrame::Ack {
                    id: &id,
                    seq: Some(seq),
                }));
            }
        }
        (Waiter::Session { outbox, id, .. }, Err(e)) => push_error(&outbox, &e, id.as_deref()),
        (Waiter::Api(tx), r) => {
            let _ = tx.send(r);
        }
        (Waiter::Nobody, Ok(())) => {}
        (Waiter::Nobody, Err(e)) => {
            log::warn!("storage: an MQTT message (seq {seq}) was not stored: {e:?}")
        }
    }
}

/// Answers a publish whose idempotency key named message `seq`.
fn answer_duplicate(waiter: Waiter, seq: u64, r: Result<(), HubError>) {
    match (waiter, r) {
        (Waiter::Session { outbox, id, .. }, Ok(())) => {
            if let Some(id) = id {
                outbox.push(encode(&ServerFrame::AckDuplicate {
                    id: &id,
                    seq,
                    duplicate: true,
                }));
            }
        }
        (waiter, r) => answer_message(waiter, seq, r),
    }
}

impl Writer {
    pub fn run(mut self) {
        lower_priority();
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        loop {
            let wait = next_sweep.saturating_duration_since(Instant::now());
            let first = match self.rx.recv_timeout(wait) {
                Ok(j) => j,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.sweep();
                    next_sweep = Instant::now() + SWEEP_EVERY;
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let mut jobs = vec![first];
            while jobs.len() < self.batch {
                match self.rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            let taken = jobs.len() as u64;
            let data = jobs.iter().filter(|j| j.is_data()).count();
            self.queued.fetch_sub(data, Ordering::AcqRel);
            let stop = jobs.iter().position(|j| matches!(j, Job::Shutdown));
            if let Some(i) = stop {
                jobs.truncate(i);
            }
            self.run_batch(jobs);
            self.progress.finished(taken);
            if stop.is_some() {
                self.release();
                log::info!("storage: writer stopped");
                return;
            }
            if Instant::now() >= next_sweep {
                self.sweep();
                next_sweep = Instant::now() + SWEEP_EVERY;
            }
        }
    }

    /// At a clean stop: records the numbering of rooms whose writes failed,
    /// then gives back unused seq reservations. If this fails, they stay,
    /// and the next start treats the stop as a crash (no seq is reused).
    fn release(&mut self) {
        let r = self.db.begin(true).and_then(|_| {
            self.db.store_unstored()?;
            let n = self.db.release_reservations()?;
            self.db.commit()?;
            Ok(n)
        });
        match r {
            Ok(n) => log::debug!("storage: {n} seq reservations given back"),
            Err(e) => {
                self.db.rollback();
                log::warn!(
                    "storage: seq reservations kept ({}); rooms continue above them after the restart",
                    describe(&e)
                );
            }
        }
    }

    fn sweep(&mut self) {
        if !self.policy.has_age_rules() {
            return;
        }
        let policy = self.policy.clone();
        let rule = move |room: &str| policy.retention(room);
        let r = self.db.begin(true).and_then(|_| {
            let n = self.db.sweep_ages(&rule, now_ms())?;
            self.db.commit()?;
            Ok(n)
        });
        match r {
            Ok(n) if n > 0 => log::debug!("storage: {n} messages past their age deleted"),
            Ok(_) => {}
            Err(e) => {
                self.db.rollback();
                log::warn!("storage: age sweep failed: {}", describe(&e));
            }
        }
    }

    fn run_batch(&mut self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let write = jobs.iter().any(Job::writes);
        let result = (|| -> SqlResult<Vec<Done>> {
            self.db.begin(write)?;
            if write {
                self.db.store_unstored()?;
            }
            let mut done = Vec::with_capacity(jobs.len());
            // Each room's head and retention trim, once per batch.
            let mut rooms: HashMap<&str, (&str, u64, u64)> = HashMap::new();
            for j in &jobs {
                if let Job::Message {
                    room,
                    epoch,
                    seq,
                    reserved,
                    ..
                } = j
                {
                    let e = rooms
                        .entry(room.as_str())
                        .or_insert((&**epoch, *seq, *reserved));
                    if e.0 != &**epoch {
                        *e = (&**epoch, *seq, *reserved);
                    } else {
                        e.1 = e.1.max(*seq);
                        e.2 = e.2.max(*reserved);
                    }
                }
                done.push(self.execute(j)?);
            }
            for (room, (epoch, seq, reserved)) in rooms {
                let keep = self.policy.retention(room);
                self.db.close_room(room, epoch, seq, reserved, keep)?;
            }
            self.db.commit()?;
            Ok(done)
        })();
        match result {
            Ok(done) => {
                if write {
                    self.db.clear_unstored();
                    METRICS.storage_batches.fetch_add(1, Ordering::Relaxed);
                    self.status.batch_done(Ok(()));
                }
                for (j, d) in jobs.into_iter().zip(done) {
                    if j.writes() {
                        METRICS.storage_writes.fetch_add(1, Ordering::Relaxed);
                    }
                    self.finish(j, Ok(d));
                }
            }
            Err(e) => {
                self.db.rollback();
                let err = storage_error(&e);
                log::error!("storage: a batch of {} failed: {e}", jobs.len());
                if write {
                    self.status.batch_done(Err(&e.to_string()));
                }
                for j in jobs {
                    if j.writes() {
                        METRICS.storage_errors.fetch_add(1, Ordering::Relaxed);
                        if let Job::Message {
                            room,
                            epoch,
                            seq,
                            reserved,
                            ..
                        } = &j
                        {
                            self.db.note_unstored(room.as_str(), epoch, *seq, *reserved);
                        }
                        self.finish(j, Err(err.clone()));
                    } else {
                        let alone = (|| -> SqlResult<Done> {
                            // IMMEDIATE for a write: waits out another connection's lock.
                            self.db.begin(j.writes())?;
                            let d = self.execute(&j)?;
                            self.db.commit()?;
                            Ok(d)
                        })();
                        if alone.is_err() {
                            self.db.rollback();
                        }
                        self.finish(j, alone.map_err(|e| storage_error(&e)));
                    }
                }
            }
        }
    }

    fn execute(&self, job: &Job) -> SqlResult<Done> {
        let db = &self.db;
        Ok(match job {
            Job::Message {
                room,
                seq,
                ts,
                frame,
                idem,
                ..
            } => {
                let idem = idem.as_ref().map(|k| k.as_str());
                if db.insert_message(room.as_str(), *seq, *ts, frame, idem)? {
                    Done::Nothing
                } else {
                    log::error!(
                        "storage: seq {seq} of {room} already names another message; not stored"
                    );
                    Done::Conflict
                }
            }
            Job::Reserve {
                room,
                epoch,
                seq,
                upto,
                ..
            } => Done::Reserved(db.reserve(room.as_str(), epoch, *seq, *upto)?),
            Job::Release { room, epoch } => {
                db.release_room(room.as_str(), epoch)?;
                Done::Nothing
            }
            Job::Duplicate { .. } => Done::Nothing,
            Job::LoadRoom {
                room, limit, keys, ..
            } => {
                let (room, now) = (room.as_str(), now_ms());
                let age = self.policy.retention(room).age;
                let mut tail = db.load_room(room, *limit, age, now)?;
                if let Some(t) = tail.as_mut().filter(|_| keys.window_ms > 0) {
                    let since = now.saturating_sub(keys.window_ms);
                    t.keys = db.load_keys(room, t.seq, since, keys.keys)?;
                }
                Done::Room(tail)
            }
            Job::AppendDocOps(m, _) => Done::Doc(db.append_doc_ops(&m.doc, &m.ops)?),
            Job::SaveDocSnapshot(m, _) => {
                Done::Doc(db.save_doc_snapshot(&m.doc, m.rev, &m.text, m.keep_ops)?)
            }
            Job::LoadDoc(doc, _) => Done::DocState(db.load_doc(doc)?),
            Job::Notify {
                users,
                sender,
                data,
                ts,
                ..
            } => {
                let mut out = Vec::with_capacity(users.len());
                for u in users {
                    let (id, unread) = db.add_notification(
                        u.as_str(),
                        sender,
                        data,
                        *ts,
                        self.notifications_per_user,
                    )?;
                    out.push((u.clone(), id, unread));
                }
                Done::Notified(out)
            }
            Job::ListNotifications {
                user,
                before,
                limit,
                unread_only,
                ..
            } => {
                let (rows, more) =
                    db.list_notifications(user.as_str(), *before, *limit, *unread_only)?;
                Done::Page(rows, more, db.unread(user.as_str())?)
            }
            Job::MarkRead { user, mark, .. } => Done::Unread(db.mark_read(user.as_str(), mark)?.1),
            Job::LoadUser { user, .. } => {
                let (inbox, dropped) = if self.offline_dms > 0 {
                    db.load_inbox(user.as_str())?
                } else {
                    (Vec::new(), 0)
                };
                Done::User(db.unread(user.as_str())?, inbox, dropped)
            }
            Job::StoreDirect {
                user, frame, ts, ..
            } => {
                db.store_direct(user.as_str(), frame, *ts, self.offline_dms)?;
                Done::Nothing
            }
            Job::DeleteInbox {
                user,
                upto,
                dropped,
            } => {
                db.delete_inbox(user.as_str(), *upto, *dropped)?;
                Done::Nothing
            }
            Job::State(s) => Done::State(s.execute(db)?),
            Job::Shutdown => Done::Nothing,
        })
    }

    /// Answers a job once its batch has committed (or failed).
    fn finish(&self, job: Job, r: Result<Done, HubError>) {
        match job {
            Job::Message { seq, waiter, .. } => {
                let r = match r {
                    Ok(Done::Conflict) => Err(HubError::new(
                        ErrorCode::StorageError,
                        format!("seq {seq} already names another stored message"),
                    )),
                    r => r.map(|_| ()),
                };
                answer_message(waiter, seq, r);
            }
            Job::Duplicate { seq, waiter } => answer_duplicate(waiter, seq, r.map(|_| ())),
            Job::Release { room, .. } => {
                if let Err(e) = r {
                    log::warn!("storage: {room} keeps its seq reservation: {e:?}");
                }
            }
            Job::Reserve { reply, .. } => {
                let _ = reply.send(r.map(|d| match d {
                    Done::Reserved(upto) => upto,
                    _ => 0,
                }));
            }
            Job::LoadRoom { reply, .. } => {
                let _ = reply.send(r.map(|d| match d {
                    Done::Room(t) => t,
                    _ => None,
                }));
            }
            Job::AppendDocOps(_, reply) | Job::SaveDocSnapshot(_, reply) => {
                let _ = reply.send(r.and_then(|d| match d {
                    Done::Doc(res) => res,
                    _ => Ok(()),
                }));
            }
            Job::LoadDoc(_, reply) => {
                let _ = reply.send(r.map(|d| match d {
                    Done::DocState(s) => s,
                    _ => DocState::default(),
                }));
            }
            Job::Notify {
                sender,
                data,
                ts,
                hub,
                reply,
                ..
            } => {
                let list = match r {
                    Ok(Done::Notified(list)) => list,
                    Ok(_) => Vec::new(),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                };
                if let (Ok(from), Ok(data)) = (
                    serde_json::from_str::<&RawValue>(&sender),
                    serde_json::from_str::<&RawValue>(&data),
                ) {
                    for (user, id, unread) in &list {
                        let notification = NotificationInfo {
                            id: *id,
                            from,
                            data,
                            ts,
                            read: false,
                        };
                        hub.do_send(super::ToUser {
                            user: user.clone(),
                            frames: vec![
                                encode(&ServerFrame::NotificationNew { notification }),
                                encode(&ServerFrame::NotificationCount { unread: *unread }),
                            ],
                        });
                    }
                }
                let _ = reply.send(Ok(list.into_iter().map(|(u, id, _)| (u, id)).collect()));
            }
            Job::ListNotifications { outbox, id, .. } => match r {
                Ok(Done::Page(rows, more, unread)) => {
                    let items: Vec<NotificationInfo> = rows
                        .iter()
                        .filter_map(|n| {
                            Some(NotificationInfo {
                                id: n.id,
                                from: serde_json::from_str(&n.sender).ok()?,
                                data: serde_json::from_str(&n.data).ok()?,
                                ts: n.ts,
                                read: n.read,
                            })
                        })
                        .collect();
                    outbox.push(encode(&ServerFrame::NotificationPage {
                        notifications: &items,
                        unread,
                        more,
                        id: id.as_deref(),
                    }));
                }
                Ok(_) => {}
                Err(e) => push_error(&outbox, &e, id.as_deref()),
            },
            Job::MarkRead {
                user,
                outbox,
                id,
                hub,
                ..
            } => match r {
                Ok(Done::Unread(unread)) => {
                    if let Some(id) = &id {
                        outbox.push(encode(&ServerFrame::Ack { id, seq: None }));
                    }
                    hub.do_send(super::ToUser {
                        user,
                        frames: vec![encode(&ServerFrame::NotificationCount { unread })],
                    });
                }
                Ok(_) => {}
                Err(e) => push_error(&outbox, &e, id.as_deref()),
            },
            Job::LoadUser { user, session, hub } => {
                let (unread, inbox, dropped) = match r {
                    Ok(Done::User(u, inbox, dropped)) => (Some(u), inbox, dropped),
                    Ok(_) => (None, Vec::new(), 0),
                    Err(e) => {
                        log::warn!("storage: cannot load {user}'s notifications and messages: {e}");
                        (None, Vec::new(), 0)
                    }
                };
                hub.do_send(super::UserLoaded {
                    user,
                    session,
                    unread,
                    inbox,
                    dropped,
                });
            }
            Job::StoreDirect {
                outbox: Some(outbox),
                id,
                ..
            } => match r {
                Ok(_) => {
                    if let Some(id) = &id {
                        outbox.push(encode(&ServerFrame::AckOffline { id, offline: true }));
                    }
                }
                Err(e) => push_error(&outbox, &e, id.as_deref()),
            },
            Job::StoreDirect { user, .. } => {
                if let Err(e) = r {
                    log::warn!("storage: a message for {user} could not be stored: {e}");
                }
            }
            Job::DeleteInbox { user, .. } => {
                if let Err(e) = r {
                    log::warn!("storage: delivered messages of {user} stay stored (they will come again): {e}");
                }
            }
            Job::State(s) => s.finish(r.map(|d| match d {
                Done::State(m) => m,
                _ => None,
            })),
            Job::Shutdown => {}
        }
    }
}
