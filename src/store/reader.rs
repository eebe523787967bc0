//! The scrollback reader: a second, read-only SQLite connection on its own
//! thread, for pages of room history older than what rooms keep in memory.
//!
//! In WAL mode a reader sees the last committed state and never blocks the
//! writer (nor waits for it), so a page read does not stall behind the
//! writer's batches, and a room's fan-out never waits for either. A read
//! must still see every message the room handed to the writer before the
//! page was planned: each read names the writer's job count at that moment
//! ([`Progress::mark`]) and starts once the writer has finished that many
//! jobs. Old pages were committed long ago and start at once.

use super::db::{int, uint};
use crate::error::{ErrorCode, HubError};
use bytes::Bytes;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a read waits for the writer to reach its mark before it is
/// answered `storage_error` (the writer is stuck or has stopped).
const CATCH_UP: Duration = Duration::from_secs(10);

/// How far the writer has got: jobs handed to it, and jobs it has finished
/// (committed or failed). The channel is first in, first out, so once
/// `done` reaches a value `sent` had, every job sent before that is done.
#[derive(Default)]
pub struct Progress {
    sent: AtomicU64,
    done: Mutex<u64>,
    moved: Condvar,
}

impl Progress {
    /// Counts a job about to be handed to the writer.
    pub(super) fn sending(&self) {
        self.sent.fetch_add(1, Ordering::SeqCst);
    }

    /// The writer has finished `n` more jobs.
    pub(super) fn finished(&self, n: u64) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        *done += n;
        self.moved.notify_all();
    }

    /// The count a read must wait for to see every job sent until now.
    pub fn mark(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until the writer has finished `mark` jobs.
    fn reached(&self, mark: u64, wait: Duration) -> bool {
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let (done, _) = self
            .moved
            .wait_timeout_while(done, wait, |d| *d < mark)
            .unwrap_or_else(|e| e.into_inner());
        *done >= mark
    }
}

/// One page to read: messages of `room` below `below` (`None`: from the
/// room's newest), newest first, at most `want` of them and `bytes` in all
/// (the first always fits when `at_least_one`), none older than `cutoff_ms`.
pub struct ReadPage {
    pub room: String,
    pub below: Option<u64>,
    pub want: usize,
    pub bytes: usize,
    pub at_least_one: bool,
    pub cutoff_ms: u64,
    /// `Progress::mark` when the page was planned.
    pub mark: u64,
}

/// What the database has for a page.
#[derive(Debug, Default)]
pub struct StoredPage {
    /// The room's stored numbering (`epoch`, last seq), if it was ever stored.
    pub head: Option<(String, u64)>,
    /// `(seq, frame)`, newest first.
    pub rows: Vec<(u64, Bytes)>,
    /// Older stored messages remain below the last row.
    pub more: bool,
}

type Reply = oneshot::Sender<Result<StoredPage, HubError>>;

/// Hands pages to the reader thread; `None` inside when there is none (no
/// database file, or it could not be opened).
#[derive(Clone)]
pub struct ReaderHandle {
    tx: Option<mpsc::Sender<(ReadPage, Reply)>>,
    pub progress: Arc<Progress>,
}

impl ReaderHandle {
    /// Starts the reader thread on the database at `path` (already created
    /// and migrated by the writer). Without a path there is nothing to read:
    /// rooms are not stored.
    pub fn start(path: Option<&Path>, busy: Duration, progress: Arc<Progress>) -> ReaderHandle {
        let tx = path.and_then(|p| match open(p, busy) {
            Ok(conn) => {
                let (tx, rx) = mpsc::channel::<(ReadPage, Reply)>();
                let progress = progress.clone();
                let spawned = std::thread::Builder::new()
                    .name("store-reader".into())
                    .spawn(move || {
                        for (page, reply) in rx {
                            let r = if progress.reached(page.mark, CATCH_UP) {
                                read(&conn, &page).map_err(|e| {
                                    HubError::new(ErrorCode::StorageError, super::db::describe(&e))
                                })
                            } else {
                                Err(HubError::new(
                                    ErrorCode::StorageError,
                                    "storage is behind; retry shortly",
                                ))
                            };
                            let _ = reply.send(r);
                        }
                    });
                match spawned {
                    Ok(_) => Some(tx),
                    Err(e) => {
                        log::error!("storage: cannot start the reader thread: {e}");
                        None
                    }
                }
            }
            Err(e) => {
                log::error!("storage: cannot open a read connection: {e}");
                None
            }
        });
        ReaderHandle { tx, progress }
    }

    /// Reads a page on the reader thread.
    pub async fn read(&self, page: ReadPage) -> Result<StoredPage, HubError> {
        let unavailable =
            || HubError::new(ErrorCode::StorageError, "stored history is unavailable");
        let tx = self.tx.as_ref().ok_or_else(unavailable)?;
        let (reply, rx) = oneshot::channel();
        tx.send((page, reply)).map_err(|_| unavailable())?;
        rx.await.unwrap_or_else(|_| Err(unavailable()))
    }
}

fn open(path: &Path, busy: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy)?;
    conn.execute_batch("PRAGMA query_only = ON")?;
    Ok(conn)
}

/// The page, in one read transaction (the head and the rows agree).
pub fn read(conn: &Connection, page: &ReadPage) -> rusqlite::Result<StoredPage> {
    conn.execute_batch("BEGIN")?;
    let r = read_in(conn, page);
    let _ = conn.execute_batch("COMMIT");
    r
}

fn read_in(conn: &Connection, page: &ReadPage) -> rusqlite::Result<StoredPage> {
    let head: Option<(String, i64)> = conn
        .prepare_cached("SELECT epoch, seq FROM rooms WHERE name = ?1")?
        .query_row([&page.room], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((epoch, seq)) = head else {
        return Ok(StoredPage::default());
    };
    let seq = uint(seq);
    let below = page.below.unwrap_or(seq.saturating_add(1));
    let mut st = conn.prepare_cached(
        "SELECT seq, frame FROM messages WHERE room = ?1 AND seq < ?2 AND ts >= ?3
         ORDER BY seq DESC LIMIT ?4",
    )?;
    let mut rows = st.query(params![
        page.room,
        int(below),
        int(page.cutoff_ms),
        int(page.want as u64 + 1)
    ])?;
    let mut out = StoredPage {
        head: Some((epoch, seq)),
        ..StoredPage::default()
    };
    let mut bytes = 0;
    while let Some(r) = rows.next()? {
        let frame: Vec<u8> = r.get(1)?;
        let fits = bytes + frame.len() <= page.bytes || (page.at_least_one && out.rows.is_empty());
        if out.rows.len() >= page.want || !fits {
            out.more = true;
            break;
        }
        bytes += frame.len();
        out.rows.push((uint(r.get(0)?), Bytes::from(frame)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::{Db, Retention};

    fn page(below: Option<u64>, want: usize, bytes: usize) -> ReadPage {
        ReadPage {
            room: "r".into(),
            below,
            want,
            bytes,
            at_least_one: true,
            cutoff_ms: 0,
            mark: 0,
        }
    }

    fn seqs(p: &StoredPage) -> Vec<u64> {
        p.rows.iter().map(|r| r.0).collect()
    }

    #[test]
    fn pages_go_back_newest_first_and_say_whether_more_remain() {
        let db = Db::in_memory().unwrap();
        let keep = Retention {
            count: 0,
            age: None,
        };
        for s in 1..=7 {
            db.append_message("r", "ep", s, s * 10, b"abcd", keep)
                .unwrap();
        }
        let c = &db.conn;
        let p = read(c, &page(None, 3, usize::MAX)).unwrap();
        assert_eq!((seqs(&p), p.more), (vec![7, 6, 5], true));
        assert_eq!(p.head, Some(("ep".into(), 7)));
        let p = read(c, &page(Some(5), 3, usize::MAX)).unwrap();
        assert_eq!((seqs(&p), p.more), (vec![4, 3, 2], true));
        let p = read(c, &page(Some(2), 3, usize::MAX)).unwrap();
        assert_eq!((seqs(&p), p.more), (vec![1], false));
        let p = read(c, &page(Some(4), 0, usize::MAX)).unwrap();
        assert_eq!(
            (seqs(&p), p.more),
            (vec![], true),
            "want 0: only whether more"
        );
        let p = read(c, &page(Some(8), 5, 9)).unwrap();
        assert_eq!(
            (seqs(&p), p.more),
            (vec![7, 6], true),
            "two 4-byte frames fit in 9"
        );
        let p = read(c, &page(Some(8), 5, 1)).unwrap();
        assert_eq!(seqs(&p), vec![7], "the first row always fits");
        let mut aged = page(None, 10, usize::MAX);
        aged.cutoff_ms = 45;
        assert_eq!(seqs(&read(c, &aged).unwrap()), vec![7, 6, 5]);
        let mut other = page(None, 10, usize::MAX);
        other.room = "nobody".into();
        let p = read(c, &other).unwrap();
        assert!(p.head.is_none() && p.rows.is_empty() && !p.more);
    }

    #[test]
    fn a_read_waits_for_the_writer_to_reach_its_mark() {
        let p = Arc::new(Progress::default());
        p.sending();
        p.sending();
        let mark = p.mark();
        assert!(!p.reached(mark, Duration::from_millis(10)));
        let q = p.clone();
        let t = std::thread::spawn(move || q.reached(mark, Duration::from_secs(10)));
        p.finished(1);
        p.finished(1);
        assert!(t.join().unwrap());
    }
}
