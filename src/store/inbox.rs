//! Direct messages waiting for a user with no session: stored per user
//! (bounded, counting what the bound dropped), loaded on connect, deleted
//! once delivered.

use super::db::{int, uint, Db, SqlResult};
use bytes::Bytes;
use rusqlite::{params, OptionalExtension};

impl Db {
    /// Keeps a `direct:receive` frame for `user`, dropping the oldest beyond
    /// `limit` (and counting them, to tell the user).
    pub fn store_direct(&self, user: &str, frame: &[u8], ts: u64, limit: usize) -> SqlResult<()> {
        self.conn
            .prepare_cached("INSERT INTO inbox (user, ts, frame) VALUES (?1, ?2, ?3)")?
            .execute(params![user, int(ts), frame])?;
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM inbox WHERE user = ?1")?
            .query_row([user], |r| r.get(0))?;
        let over = uint(n).saturating_sub(limit as u64);
        if over > 0 {
            self.conn
                .prepare_cached(
                    "DELETE FROM inbox WHERE id IN (
                       SELECT id FROM inbox WHERE user = ?1 ORDER BY id LIMIT ?2)",
                )?
                .execute(params![user, int(over)])?;
            self.conn
                .prepare_cached(
                    "INSERT INTO inbox_dropped (user, dropped) VALUES (?1, ?2)
                     ON CONFLICT (user) DO UPDATE SET dropped = dropped + excluded.dropped",
                )?
                .execute(params![user, int(over)])?;
        }
        Ok(())
    }

    /// The user's waiting messages `(id, frame)`, oldest first, and how many were dropped.
    pub fn load_inbox(&self, user: &str) -> SqlResult<(Vec<(u64, Bytes)>, u64)> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, frame FROM inbox WHERE user = ?1 ORDER BY id")?;
        let rows = st.query_map([user], |r| {
            Ok((uint(r.get(0)?), Bytes::from(r.get::<_, Vec<u8>>(1)?)))
        })?;
        let frames = rows.collect::<SqlResult<Vec<_>>>()?;
        let dropped: Option<i64> = self
            .conn
            .prepare_cached("SELECT dropped FROM inbox_dropped WHERE user = ?1")?
            .query_row([user], |r| r.get(0))
            .optional()?;
        Ok((frames, uint(dropped.unwrap_or(0))))
    }

    /// Forgets the messages up to `upto` once delivered, and `dropped` of the drop count.
    pub fn delete_inbox(&self, user: &str, upto: u64, dropped: u64) -> SqlResult<()> {
        self.conn
            .prepare_cached("DELETE FROM inbox WHERE user = ?1 AND id <= ?2")?
            .execute(params![user, int(upto)])?;
        if dropped > 0 {
            self.conn
                .prepare_cached(
                    "UPDATE inbox_dropped SET dropped = max(0, dropped - ?2) WHERE user = ?1",
                )?
                .execute(params![user, int(dropped)])?;
            self.conn
                .prepare_cached("DELETE FROM inbox_dropped WHERE user = ?1 AND dropped = 0")?
                .execute([user])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::tests::in_tx;

    #[test]
    fn the_inbox_is_bounded_and_counts_what_it_dropped() {
        let db = Db::in_memory().unwrap();
        in_tx(&db, |db| {
            for i in 0..5u8 {
                db.store_direct("u", &[b'a' + i], 0, 3)?;
            }
            Ok(())
        });
        let (frames, dropped) = db.load_inbox("u").unwrap();
        let text: Vec<&[u8]> = frames.iter().map(|f| &f.1[..]).collect();
        assert_eq!(text, vec![b"c", b"d", b"e"]);
        assert_eq!(dropped, 2);
        let upto = frames[1].0;
        in_tx(&db, |db| db.delete_inbox("u", upto, 2));
        let (frames, dropped) = db.load_inbox("u").unwrap();
        assert_eq!((frames.len(), dropped), (1, 0));
    }
}
