//! Notifications in the database: stored per user (bounded), listed in
//! pages, marked read, counted.

use super::db::{int, uint, Db, Mark, NotificationRow, SqlResult};
use rusqlite::params;

impl Db {
    /// Stores a notification for `user`, keeping at most `per_user` of them.
    /// Returns its id and the user's unread count.
    pub fn add_notification(
        &self,
        user: &str,
        sender: &str,
        data: &str,
        ts: u64,
        per_user: usize,
    ) -> SqlResult<(u64, u64)> {
        self.conn
            .prepare_cached(
                "INSERT INTO notifications (user, sender, data, ts) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![user, sender, data, int(ts)])?;
        let id = uint(self.conn.last_insert_rowid());
        self.conn
            .prepare_cached(
                "DELETE FROM notifications WHERE user = ?1 AND id <= (
                   SELECT id FROM notifications WHERE user = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            )?
            .execute(params![user, int(per_user as u64)])?;
        Ok((id, self.unread(user)?))
    }

    pub fn unread(&self, user: &str) -> SqlResult<u64> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM notifications WHERE user = ?1 AND read = 0")?
            .query_row([user], |r| r.get(0))?;
        Ok(uint(n))
    }

    /// Up to `limit` of the user's notifications with id < `before`, newest
    /// first, and whether there are more.
    pub fn list_notifications(
        &self,
        user: &str,
        before: Option<u64>,
        limit: usize,
        unread_only: bool,
    ) -> SqlResult<(Vec<NotificationRow>, bool)> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, sender, data, ts, read FROM notifications
             WHERE user = ?1 AND id < ?2 AND (?3 = 0 OR read = 0)
             ORDER BY id DESC LIMIT ?4",
        )?;
        let rows = st.query_map(
            params![
                user,
                int(before.unwrap_or(u64::MAX)),
                unread_only as i64,
                int(limit as u64 + 1)
            ],
            |r| {
                Ok(NotificationRow {
                    id: uint(r.get(0)?),
                    sender: r.get(1)?,
                    data: r.get(2)?,
                    ts: uint(r.get(3)?),
                    read: r.get::<_, i64>(4)? != 0,
                })
            },
        )?;
        let mut v = rows.collect::<SqlResult<Vec<_>>>()?;
        let more = v.len() > limit;
        v.truncate(limit);
        Ok((v, more))
    }

    /// Marks the user's notifications read. Returns (how many changed, unread).
    pub fn mark_read(&self, user: &str, which: &Mark) -> SqlResult<(usize, u64)> {
        let changed = match which {
            Mark::All => self
                .conn
                .prepare_cached("UPDATE notifications SET read = 1 WHERE user = ?1 AND read = 0")?
                .execute([user])?,
            Mark::Ids(ids) => {
                let mut st = self.conn.prepare_cached(
                    "UPDATE notifications SET read = 1 WHERE user = ?1 AND id = ?2 AND read = 0",
                )?;
                let mut n = 0;
                for id in ids {
                    n += st.execute(params![user, int(*id)])?;
                }
                n
            }
        };
        Ok((changed, self.unread(user)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::tests::in_tx;

    #[test]
    fn notifications_count_list_and_mark() {
        let db = Db::in_memory().unwrap();
        let ids: Vec<u64> = (0..5)
            .map(|i| {
                in_tx(&db, |db| {
                    db.add_notification("u", "{}", &i.to_string(), i, 4)
                })
                .0
            })
            .collect();
        assert_eq!(
            db.unread("u").unwrap(),
            4,
            "the per-user bound dropped the oldest"
        );
        let (page, more) = db.list_notifications("u", None, 2, false).unwrap();
        assert_eq!(
            page.iter().map(|n| n.id).collect::<Vec<_>>(),
            vec![ids[4], ids[3]]
        );
        assert!(more);
        let (page, more) = db.list_notifications("u", Some(ids[3]), 10, false).unwrap();
        assert_eq!(
            page.iter().map(|n| n.id).collect::<Vec<_>>(),
            vec![ids[2], ids[1]]
        );
        assert!(!more);
        let marked = in_tx(&db, |db| {
            db.mark_read("u", &Mark::Ids(vec![ids[2], ids[2], 999]))
        });
        assert_eq!(marked, (1, 3));
        let marked = in_tx(&db, |db| db.mark_read("other", &Mark::All));
        assert_eq!(marked, (0, 0), "nobody marks another user's notifications");
        let (unread, _) = db.list_notifications("u", None, 10, true).unwrap();
        assert_eq!(unread.len(), 3);
        assert!(unread.iter().all(|n| !n.read));
        assert_eq!(in_tx(&db, |db| db.mark_read("u", &Mark::All)), (3, 0));
    }
}
