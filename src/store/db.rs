//! The database itself: one SQLite connection and the SQL for everything
//! Switchboard keeps. Plain methods on a plain struct, called by the writer
//! thread inside its batch transaction (see `writer.rs`), and unit-tested
//! here directly.
//!
//! Methods return `rusqlite::Result` for storage failures; a method that can
//! also refuse a request on its merits (a document op that does not follow
//! the stored head) returns `Ok(Err(HubError))` for that, and writes nothing.

use super::schema;
use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

pub type SqlResult<T> = rusqlite::Result<T>;

/// How a database is opened.
#[derive(Clone, Debug)]
pub struct Options {
    /// `full`, `normal` or `off` (SQLite's `synchronous`).
    pub sync: String,
    /// How long to wait for a lock held by another connection.
    pub busy: Duration,
    /// Largest size of the database file (0: no limit).
    pub max_bytes: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            sync: "full".into(),
            busy: Duration::from_secs(5),
            max_bytes: 0,
        }
    }
}

/// How much of one room's history is kept in the database.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retention {
    /// Messages kept (0: no limit).
    pub count: u64,
    /// Messages older than this are deleted by the sweep (and not loaded).
    pub age: Option<Duration>,
}

/// What is stored of a room: its numbering and its newest messages.
#[derive(Debug, PartialEq)]
pub struct RoomTail {
    pub epoch: String,
    /// The last seq the room gave out.
    pub seq: u64,
    /// `(seq, frame)`, oldest first; may have gaps where a write failed
    /// (`History::restore` keeps only the gapless end).
    pub entries: Vec<(u64, Bytes)>,
    /// `(idempotency key, seq, ts)` of keyed messages within the window,
    /// oldest first (filled by `load_keys`).
    pub keys: Vec<(String, u64, u64)>,
}

/// One stored notification.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRow {
    pub id: u64,
    /// JSON: `{"user","name"}` of whoever sent it.
    pub sender: String,
    /// JSON, as the sender gave it.
    pub data: String,
    pub ts: u64,
    pub read: bool,
}

pub use crate::protocol::Mark;

pub struct Db {
    pub(super) conn: Connection,
    /// Rooms whose last message write failed: their (epoch, seq, reserved), so the
    /// room's numbering is neither reused by a reload in this process nor
    /// lost: the next write batch records it.
    unstored: HashMap<String, (String, u64, u64)>,
}

pub(super) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Db {
    /// Opens (creating it and its directory if needed) the database at
    /// `path`, or an in-memory one, and brings its schema up to date.
    pub fn open(path: Option<&Path>, opts: &Options) -> Result<Db, String> {
        let conn = match path {
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                Connection::open(p).map_err(|e| format!("cannot open {}: {e}", p.display()))?
            }
            None => Connection::open_in_memory().map_err(|e| e.to_string())?,
        };
        let setup = |conn: &Connection| -> SqlResult<()> {
            conn.busy_timeout(opts.busy)?;
            if path.is_some() {
                let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
                if !mode.eq_ignore_ascii_case("wal") {
                    log::warn!("storage: journal mode is {mode}, not WAL");
                }
            }
            let sync = match opts.sync.as_str() {
                "off" => "OFF",
                "normal" => "NORMAL",
                _ => "FULL",
            };
            conn.execute_batch(&format!("PRAGMA synchronous = {sync}"))?;
            if opts.max_bytes > 0 {
                let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
                let pages = (opts.max_bytes / uint(page).max(512)).max(1);
                let _: i64 = conn.query_row(
                    &format!("PRAGMA max_page_count = {}", int(pages)),
                    [],
                    |r| r.get(0),
                )?;
            }
            Ok(())
        };
        setup(&conn).map_err(|e| format!("cannot set up the database: {e}"))?;
        let mut conn = conn;
        schema::migrate(&mut conn)?;
        Ok(Db {
            conn,
            unstored: HashMap::new(),
        })
    }

    pub fn in_memory() -> Result<Db, String> {
        Db::open(None, &Options::default())
    }

    /// Starts a transaction; `write` takes the write lock at once.
    pub fn begin(&self, write: bool) -> SqlResult<()> {
        self.conn
            .execute_batch(if write { "BEGIN IMMEDIATE" } else { "BEGIN" })
    }

    pub fn commit(&self) -> SqlResult<()> {
        self.conn.execute_batch("COMMIT")
    }

    /// Ends a failed transaction (SQLite may have ended it already).
    pub fn rollback(&self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    // --- rooms ---

    /// Stores message `seq` of `room` and trims the room to `keep.count`.
    pub fn append_message(
        &self,
        room: &str,
        epoch: &str,
        seq: u64,
        ts: u64,
        frame: &[u8],
        keep: Retention,
    ) -> SqlResult<()> {
        self.insert_message(room, seq, ts, frame, None)?;
        self.close_room(room, epoch, seq, seq, keep)
    }

    /// Stores one message; `close_room` must follow in the same transaction
    /// (once per room and batch is enough, with the room's newest seq).
    /// A stored message is never overwritten: `Ok(false)` when `seq` already
    /// names a different message (the same frame again is `Ok(true)`).
    pub fn insert_message(
        &self,
        room: &str,
        seq: u64,
        ts: u64,
        frame: &[u8],
        idem: Option<&str>,
    ) -> SqlResult<bool> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO messages (room, seq, ts, frame, idem) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (room, seq) DO NOTHING",
            )?
            .execute(params![room, int(seq), int(ts), frame, idem])?;
        if n == 1 {
            return Ok(true);
        }
        let stored: Vec<u8> = self
            .conn
            .prepare_cached("SELECT frame FROM messages WHERE room = ?1 AND seq = ?2")?
            .query_row(params![room, int(seq)], |r| r.get(0))?;
        Ok(stored == frame)
    }

    /// Records that `room` has given out `seq` and may give out up to
    /// `reserved` (see `reserve`), and trims it to `keep.count`.
    pub fn close_room(
        &self,
        room: &str,
        epoch: &str,
        seq: u64,
        reserved: u64,
        keep: Retention,
    ) -> SqlResult<()> {
        self.set_head(room, epoch, seq, reserved)?;
        if keep.count > 0 && seq > keep.count {
            self.conn
                .prepare_cached("DELETE FROM messages WHERE room = ?1 AND seq <= ?2")?
                .execute(params![room, int(seq - keep.count)])?;
        }
        Ok(())
    }

    fn set_head(&self, room: &str, epoch: &str, seq: u64, reserved: u64) -> SqlResult<()> {
        // SET reads the old row: a new epoch restarts the numbering, the same
        // epoch only moves forward.
        self.conn
            .prepare_cached(
                "INSERT INTO rooms (name, epoch, seq, reserved) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET
                   seq = CASE WHEN epoch = excluded.epoch THEN max(seq, excluded.seq)
                              ELSE excluded.seq END,
                   reserved = CASE WHEN epoch = excluded.epoch
                                   THEN max(reserved, excluded.reserved)
                                   ELSE excluded.reserved END,
                   epoch = excluded.epoch",
            )?
            .execute(params![room, epoch, int(seq), int(reserved.max(seq))])?;
        Ok(())
    }

    /// Records that `room` (numbering `epoch`, last seq given out `seq`) may
    /// hand out seqs up to `upto`; returns the reservation now stored. After
    /// a crash the room continues above the stored reservation, so it must
    /// be at or above every seq anyone may have seen: a room hands out no
    /// seq above a reservation that has not committed, but for the first
    /// block of a numbering the database has never seen (see `Room::publish`).
    pub fn reserve(&self, room: &str, epoch: &str, seq: u64, upto: u64) -> SqlResult<u64> {
        self.set_head(room, epoch, seq, upto)?;
        let r: i64 = self
            .conn
            .prepare_cached("SELECT reserved FROM rooms WHERE name = ?1")?
            .query_row([room], |r| r.get(0))?;
        Ok(uint(r))
    }

    /// After a clean stop (every seq handed out has reached the writer):
    /// gives back what was reserved and not used, so the numbering continues
    /// without a jump at the next start.
    pub fn release_reservations(&self) -> SqlResult<usize> {
        self.conn
            .prepare_cached("UPDATE rooms SET reserved = seq WHERE reserved > seq")?
            .execute([])
    }

    /// Gives back the unused reservation of one room (numbering `epoch`).
    pub fn release_room(&self, room: &str, epoch: &str) -> SqlResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE rooms SET reserved = seq WHERE name = ?1 AND epoch = ?2 AND reserved > seq",
            )?
            .execute(params![room, epoch])?;
        Ok(())
    }

    /// Remembers that message `seq` of `room` (which may give out up to
    /// `reserved`) could not be stored.
    pub fn note_unstored(&mut self, room: &str, epoch: &str, seq: u64, reserved: u64) {
        let e = self
            .unstored
            .entry(room.to_string())
            .or_insert_with(|| (epoch.to_string(), seq, reserved));
        if e.0 != epoch {
            *e = (epoch.to_string(), seq, reserved);
        } else {
            e.1 = e.1.max(seq);
            e.2 = e.2.max(reserved);
        }
    }

    /// Records the numbering of rooms whose writes failed (inside a write
    /// transaction); `clear_unstored` once that has committed.
    pub fn store_unstored(&self) -> SqlResult<()> {
        for (room, (epoch, seq, reserved)) in &self.unstored {
            self.set_head(room, epoch, *seq, *reserved)?;
        }
        Ok(())
    }

    pub fn clear_unstored(&mut self) {
        self.unstored.clear();
    }

    /// The stored numbering of `room` and its newest `limit` messages (not
    /// older than `max_age`); `None` if nothing was ever stored.
    pub fn load_room(
        &self,
        room: &str,
        limit: usize,
        max_age: Option<Duration>,
        now_ms: u64,
    ) -> SqlResult<Option<RoomTail>> {
        // A reservation above `seq` was not given back: the server stopped
        // without a clean shutdown and seqs up to it may have been delivered
        // and never stored. The room continues above them, and no recovery
        // is offered from before (`History::restore`).
        let stored: Option<(String, i64)> = self
            .conn
            .prepare_cached("SELECT epoch, max(seq, reserved) FROM rooms WHERE name = ?1")?
            .query_row([room], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let mut head = stored.map(|(e, s)| (e, uint(s)));
        if let Some((epoch, seq, reserved)) = self.unstored.get(room) {
            let seq = *seq.max(reserved);
            match &head {
                Some((e, s)) if e == epoch && *s >= seq => {}
                _ => head = Some((epoch.clone(), seq)),
            }
        }
        let Some((epoch, seq)) = head else {
            return Ok(None);
        };
        let cutoff = max_age.map_or(0, |a| now_ms.saturating_sub(a.as_millis() as u64));
        let mut st = self.conn.prepare_cached(
            "SELECT seq, frame FROM messages WHERE room = ?1 AND seq <= ?2 AND ts >= ?3
             ORDER BY seq DESC LIMIT ?4",
        )?;
        let rows = st.query_map(
            params![room, int(seq), int(cutoff), int(limit as u64)],
            |r| Ok((uint(r.get(0)?), Bytes::from(r.get::<_, Vec<u8>>(1)?))),
        )?;
        let mut entries = rows.collect::<SqlResult<Vec<_>>>()?;
        entries.reverse();
        Ok(Some(RoomTail {
            epoch,
            seq,
            entries,
            keys: Vec::new(),
        }))
    }

    /// The idempotency keys of `room`'s stored messages up to `seq`, stamped
    /// at `since_ms` or later: the newest `limit`, oldest first.
    pub fn load_keys(
        &self,
        room: &str,
        seq: u64,
        since_ms: u64,
        limit: usize,
    ) -> SqlResult<Vec<(String, u64, u64)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT idem, seq, ts FROM messages
             WHERE room = ?1 AND idem IS NOT NULL AND seq <= ?2 AND ts >= ?3
             ORDER BY seq DESC LIMIT ?4",
        )?;
        let rows = st.query_map(
            params![room, int(seq), int(since_ms), int(limit as u64)],
            |r| Ok((r.get(0)?, uint(r.get(1)?), uint(r.get(2)?))),
        )?;
        let mut keys = rows.collect::<SqlResult<Vec<_>>>()?;
        keys.reverse();
        Ok(keys)
    }

    /// Deletes stored messages past their room's age limit. Returns how many.
    pub fn sweep_ages(&self, rule: &dyn Fn(&str) -> Retention, now_ms: u64) -> SqlResult<usize> {
        let names: Vec<String> = {
            let mut st = self.conn.prepare_cached("SELECT name FROM rooms")?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect::<SqlResult<_>>()?
        };
        let mut deleted = 0;
        for name in names {
            if let Some(age) = rule(&name).age {
                let cutoff = now_ms.saturating_sub(age.as_millis() as u64);
                // A room stamps its messages in seq order, so the first one
                // young enough to keep (found by walking the expired ones)
                // cuts the range to delete: no index on `ts` to maintain on
                // every insert.
                let keep_from: Option<i64> = self
                    .conn
                    .prepare_cached(
                        "SELECT seq FROM messages WHERE room = ?1 AND ts >= ?2 ORDER BY seq LIMIT 1",
                    )?
                    .query_row(params![name, int(cutoff)], |r| r.get(0))
                    .optional()?;
                deleted += self
                    .conn
                    .prepare_cached("DELETE FROM messages WHERE room = ?1 AND seq < ?2")?
                    .execute(params![name, keep_from.unwrap_or(i64::MAX)])?;
            }
        }
        Ok(deleted)
    }
}

/// A storage failure in words for the client and the operator.
pub fn describe(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::DiskFull) => "storage is full".into(),
        Some(C::DatabaseBusy | C::DatabaseLocked) => {
            "the database is locked by another process".into()
        }
        Some(C::ReadOnly) => "the database is read-only".into(),
        Some(C::SystemIoFailure) => "storage I/O error".into(),
        _ => format!("storage failed: {e}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::docstore::{DocOpRecord, DocState};
    use crate::error::ErrorCode;

    fn keep(count: u64) -> Retention {
        Retention { count, age: None }
    }

    fn op(rev: u64) -> DocOpRecord {
        DocOpRecord {
            rev,
            cid: "c1".into(),
            seq: rev,
            user: "u".into(),
            op: format!("[{rev}]"),
            ts: 1,
        }
    }

    pub(crate) fn in_tx<T>(db: &Db, f: impl FnOnce(&Db) -> SqlResult<T>) -> T {
        db.begin(true).unwrap();
        let v = f(db).unwrap();
        db.commit().unwrap();
        v
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!(
            "switchboard-unit-{}-{name}-{}.db",
            std::process::id(),
            crate::ids::random_hex(4)
        ));
        let _ = std::fs::remove_file(&p);
        p
    }

    fn remove(p: &Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
        }
    }

    #[test]
    fn room_messages_come_back_in_order_with_their_numbering() {
        let db = Db::in_memory().unwrap();
        assert_eq!(db.load_room("r", 10, None, 0).unwrap(), None);
        in_tx(&db, |db| {
            for s in 1..=5 {
                db.append_message("r", "ep", s, 100 + s, s.to_string().as_bytes(), keep(0))?;
            }
            Ok(())
        });
        let t = db.load_room("r", 3, None, 0).unwrap().unwrap();
        assert_eq!((t.epoch.as_str(), t.seq), ("ep", 5));
        let seqs: Vec<u64> = t.entries.iter().map(|e| e.0).collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        assert_eq!(&t.entries[2].1[..], b"5");
    }

    #[test]
    fn retention_by_count_and_by_age() {
        let db = Db::in_memory().unwrap();
        in_tx(&db, |db| {
            for s in 1..=10 {
                db.append_message("r", "ep", s, s * 1000, b"x", keep(4))?;
            }
            Ok(())
        });
        let n: i64 = db
            .conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 4, "the count bound keeps the newest 4");
        // At t = 10.5 s, a 2.5 s age limit keeps messages from 8 s on.
        let age = Retention {
            count: 0,
            age: Some(Duration::from_millis(2500)),
        };
        let t = db.load_room("r", 100, age.age, 10_500).unwrap().unwrap();
        assert_eq!(
            t.entries.iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![8, 9, 10]
        );
        let gone = in_tx(&db, |db| db.sweep_ages(&|_| age, 10_500));
        assert_eq!(gone, 1);
        let t = db.load_room("r", 100, None, 10_500).unwrap().unwrap();
        assert_eq!((t.seq, t.entries.len()), (10, 3), "the numbering stays");
    }

    #[test]
    fn a_failed_write_keeps_the_numbering() {
        let mut db = Db::in_memory().unwrap();
        in_tx(&db, |db| db.append_message("r", "ep", 1, 1, b"1", keep(0)));
        db.note_unstored("r", "ep", 2, 2);
        let t = db.load_room("r", 10, None, 0).unwrap().unwrap();
        assert_eq!(t.seq, 2, "seq 2 was given out even though it is not stored");
        in_tx(&db, |db| db.store_unstored());
        db.clear_unstored();
        let t = db.load_room("r", 10, None, 0).unwrap().unwrap();
        assert_eq!((t.seq, t.entries.len()), (2, 1));
    }

    #[test]
    fn a_room_continues_above_its_reservation_until_it_is_given_back() {
        let db = Db::in_memory().unwrap();
        assert_eq!(in_tx(&db, |db| db.reserve("r", "ep", 0, 100)), 100);
        for s in 1..=3 {
            in_tx(&db, |db| db.append_message("r", "ep", s, s, b"m", keep(0)));
        }
        // A smaller reservation never lowers the stored one.
        assert_eq!(in_tx(&db, |db| db.reserve("r", "ep", 3, 50)), 100);
        // As after a crash: seqs up to 100 may have been seen by someone.
        let t = db.load_room("r", 10, None, 0).unwrap().unwrap();
        assert_eq!((t.seq, t.entries.len()), (100, 3));
        // A clean stop gives back what was not used.
        assert_eq!(in_tx(&db, |db| db.release_reservations()), 1);
        let t = db.load_room("r", 10, None, 0).unwrap().unwrap();
        assert_eq!(t.seq, 3);
        // A message write records how far its room may go.
        in_tx(&db, |db| {
            db.insert_message("r", 4, 4, b"m", None)?;
            db.close_room("r", "ep", 4, 200, keep(0))
        });
        assert_eq!(db.load_room("r", 10, None, 0).unwrap().unwrap().seq, 200);
        // A new numbering replaces the old one, reservation and all.
        assert_eq!(in_tx(&db, |db| db.reserve("r", "ep2", 0, 10)), 10);
    }

    #[test]
    fn a_stored_message_is_never_overwritten() {
        let db = Db::in_memory().unwrap();
        assert!(in_tx(&db, |db| db.insert_message("r", 1, 1, b"first", None)));
        assert!(
            in_tx(&db, |db| db.insert_message("r", 1, 1, b"first", None)),
            "the same message again is fine"
        );
        assert!(!in_tx(&db, |db| db.insert_message("r", 1, 2, b"second", None)));
        let t = in_tx(&db, |db| {
            db.close_room("r", "ep", 1, 1, keep(0))?;
            db.load_room("r", 10, None, 0)
        })
        .unwrap();
        assert_eq!(t.entries, vec![(1, Bytes::from_static(b"first"))]);
    }

    #[test]
    fn doc_ops_must_follow_the_head() {
        let db = Db::in_memory().unwrap();
        let r = in_tx(&db, |db| db.append_doc_ops("d", &[op(1), op(2)]));
        assert_eq!(r, Ok(()));
        let gap = in_tx(&db, |db| db.append_doc_ops("d", &[op(4)]));
        assert_eq!(gap.unwrap_err().code, ErrorCode::Internal);
        let again = in_tx(&db, |db| db.append_doc_ops("d", &[op(2)]));
        assert!(again.is_err(), "a rev already stored is refused");
        let broken = in_tx(&db, |db| db.append_doc_ops("d", &[op(3), op(5)]));
        assert!(broken.is_err());
        let s = db.load_doc("d").unwrap();
        assert_eq!(
            s.ops,
            vec![op(1), op(2)],
            "nothing of a refused append is written"
        );
        assert_eq!(in_tx(&db, |db| db.append_doc_ops("d", &[])), Ok(()));
        assert_eq!(db.load_doc("other").unwrap(), DocState::default());
    }

    #[test]
    fn snapshots_trim_the_log_but_keep_keep_ops() {
        let db = Db::in_memory().unwrap();
        let ops: Vec<_> = (1..=10).map(op).collect();
        in_tx(&db, |db| db.append_doc_ops("d", &ops)).unwrap();
        in_tx(&db, |db| db.save_doc_snapshot("d", 8, "text@8", 3)).unwrap();
        let s = db.load_doc("d").unwrap();
        assert_eq!((s.snapshot_rev, s.snapshot_text.as_str()), (8, "text@8"));
        assert_eq!(s.ops, vec![op(9), op(10)]);
        assert_eq!(s.older_ops, vec![op(6), op(7), op(8)]);
        assert_eq!(s.snapshot_rev + s.ops.len() as u64, 10);
        let n: i64 = db
            .conn
            .query_row("SELECT count(*) FROM doc_ops", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 5, "ops 1..=5 are dropped");
        // Appends continue from the head; a snapshot past it is refused.
        in_tx(&db, |db| db.append_doc_ops("d", &[op(11)])).unwrap();
        assert!(in_tx(&db, |db| db.save_doc_snapshot("d", 12, "x", 0)).is_err());
        // An older snapshot than the stored one changes nothing.
        in_tx(&db, |db| db.save_doc_snapshot("d", 7, "old", 0)).unwrap();
        assert_eq!(db.load_doc("d").unwrap().snapshot_text, "text@8");
        // keep_ops 0: only the snapshot and what follows it.
        in_tx(&db, |db| db.save_doc_snapshot("d", 11, "text@11", 0)).unwrap();
        let s = db.load_doc("d").unwrap();
        assert_eq!((s.snapshot_rev, s.ops.len(), s.older_ops.len()), (11, 0, 0));
    }

    #[test]
    fn documents_survive_reopening_the_file() {
        let path = temp_path("doc");
        {
            let db = Db::open(Some(&path), &Options::default()).unwrap();
            let ops: Vec<_> = (1..=4).map(op).collect();
            in_tx(&db, |db| db.append_doc_ops("d", &ops)).unwrap();
            in_tx(&db, |db| db.save_doc_snapshot("d", 3, "abc", 1)).unwrap();
        }
        let db = Db::open(Some(&path), &Options::default()).unwrap();
        let s = db.load_doc("d").unwrap();
        assert_eq!((s.snapshot_rev, s.snapshot_text.as_str()), (3, "abc"));
        assert_eq!((s.ops, s.older_ops), (vec![op(4)], vec![op(3)]));
        let mode: String = db
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(db);
        remove(&path);
    }

    #[test]
    fn a_size_limit_fails_writes_as_a_full_disk_would() {
        let path = temp_path("full");
        let opts = Options {
            max_bytes: 256 * 1024,
            ..Options::default()
        };
        let db = Db::open(Some(&path), &opts).unwrap();
        let big = vec![b'x'; 16 * 1024];
        let mut err = None;
        for s in 1..100 {
            db.begin(true).unwrap();
            match db
                .append_message("r", "ep", s, 0, &big, keep(0))
                .and_then(|_| db.commit())
            {
                Ok(()) => {}
                Err(e) => {
                    db.rollback();
                    err = Some((s, e));
                    break;
                }
            }
        }
        let (s, e) = err.expect("the limit was never hit");
        assert!(s > 2, "some writes fit first");
        assert_eq!(describe(&e), "storage is full");
        // Reading still works, and every committed message is there.
        let t = db.load_room("r", 1000, None, 0).unwrap().unwrap();
        assert_eq!(t.entries.len() as u64, s - 1);
        drop(db);
        remove(&path);
    }
}
