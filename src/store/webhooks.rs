//! Webhook events waiting for their receiver (`crate::webhooks`): appended
//! in batches, bounded (the oldest dropped), read oldest first, deleted once
//! a POST holding them was answered 2xx.

use super::db::{int, uint, Db, SqlResult};
use rusqlite::params;

impl Db {
    /// Appends `events` (JSON objects) in one transaction, then drops the
    /// oldest beyond `bound`. Answers how many were dropped.
    pub fn queue_webhook_events(&self, events: &[String], bound: u64) -> SqlResult<u64> {
        self.begin(true)?;
        let r = (|| {
            let mut insert = self
                .conn
                .prepare_cached("INSERT INTO webhook_events (body) VALUES (?1)")?;
            for e in events {
                insert.execute([e])?;
            }
            let over = self.webhook_backlog()?.saturating_sub(bound);
            if over > 0 {
                self.conn
                    .prepare_cached(
                        "DELETE FROM webhook_events WHERE id IN (
                           SELECT id FROM webhook_events ORDER BY id LIMIT ?1)",
                    )?
                    .execute([int(over)])?;
            }
            Ok(over)
        })();
        match r {
            Ok(over) => self.commit().map(|_| over),
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// Events waiting.
    pub fn webhook_backlog(&self) -> SqlResult<u64> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM webhook_events")?
            .query_row([], |r| r.get(0))?;
        Ok(uint(n))
    }

    /// The oldest `limit` events `(row id, body)`.
    pub fn webhook_batch(&self, limit: usize) -> SqlResult<Vec<(u64, String)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, body FROM webhook_events ORDER BY id LIMIT ?1")?;
        let rows = st.query_map([int(limit as u64)], |r| {
            Ok((uint(r.get::<_, i64>(0)?), r.get::<_, String>(1)?))
        })?;
        rows.collect()
    }

    /// Deletes the delivered events with row ids `first..=last`.
    pub fn delete_webhook_events(&self, first: u64, last: u64) -> SqlResult<usize> {
        self.conn
            .prepare_cached("DELETE FROM webhook_events WHERE id BETWEEN ?1 AND ?2")?
            .execute(params![int(first), int(last)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_bounded_oldest_first() {
        let db = Db::in_memory().unwrap();
        let ev = |i: u32| format!("{{\"n\":{i}}}");
        let first: Vec<String> = (0..3).map(ev).collect();
        assert_eq!(db.queue_webhook_events(&first, 4).unwrap(), 0);
        let more: Vec<String> = (3..6).map(ev).collect();
        assert_eq!(db.queue_webhook_events(&more, 4).unwrap(), 2);
        assert_eq!(db.webhook_backlog().unwrap(), 4);
        let batch = db.webhook_batch(3).unwrap();
        let bodies: Vec<&str> = batch.iter().map(|(_, b)| b.as_str()).collect();
        assert_eq!(bodies, ["{\"n\":2}", "{\"n\":3}", "{\"n\":4}"]);
        let (a, b) = (batch[0].0, batch[2].0);
        assert_eq!(db.delete_webhook_events(a, b).unwrap(), 3);
        let rest = db.webhook_batch(10).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].1, "{\"n\":5}");
    }
}
