//! Shared state in the database: a room's entries (`state`) and the last
//! version it gave out (`state_rev`), written by the writer thread like
//! messages, so a write is answered only once committed.

use super::db::{int, uint, Db, SqlResult};
use crate::error::HubError;
use crate::ids::RoomName;
use crate::state::{Change, Entry, StateMap};
use rusqlite::params;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

/// A state job for the writer.
pub enum StateJob {
    /// A room's state (expired entries are left out and deleted).
    Load {
        room: RoomName,
        now: u64,
        reply: oneshot::Sender<Result<StateMap, HubError>>,
    },
    /// An accepted change; answered after the commit.
    Write {
        room: RoomName,
        change: Change,
        reply: oneshot::Sender<Result<(), HubError>>,
    },
}

impl StateJob {
    /// Both: a load deletes the room's expired keys. Taking the write lock
    /// at `BEGIN` matters since the webhook queue writes to the same file
    /// from its own connection: a deferred transaction that reads and then
    /// writes fails at once (SQLITE_BUSY) when another connection wrote in
    /// between, where `BEGIN IMMEDIATE` waits out the lock.
    pub(super) fn writes(&self) -> bool {
        true
    }

    pub(super) fn execute(&self, db: &Db) -> SqlResult<Option<StateMap>> {
        match self {
            StateJob::Load { room, now, .. } => db.load_state(room.as_str(), *now).map(Some),
            StateJob::Write { room, change, .. } => {
                db.write_state(room.as_str(), change)?;
                Ok(None)
            }
        }
    }

    pub(super) fn finish(self, r: Result<Option<StateMap>, HubError>) {
        match self {
            StateJob::Load { reply, .. } => {
                let _ = reply.send(r.map(Option::unwrap_or_default));
            }
            StateJob::Write { reply, .. } => {
                let _ = reply.send(r.map(|_| ()));
            }
        }
    }
}

fn raw(s: String) -> Option<Box<RawValue>> {
    RawValue::from_string(s).ok()
}

impl Db {
    pub fn load_state(&self, room: &str, now: u64) -> SqlResult<StateMap> {
        let rev: i64 = self
            .conn
            .query_row("SELECT rev FROM state_rev WHERE room = ?1", [room], |r| {
                r.get(0)
            })
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(0),
                e => Err(e),
            })?;
        self.conn.execute(
            "DELETE FROM state WHERE room = ?1 AND expires IS NOT NULL AND expires <= ?2",
            params![room, int(now)],
        )?;
        let mut st = self.conn.prepare_cached(
            "SELECT key, value, version, by, ts, expires FROM state WHERE room = ?1",
        )?;
        let rows = st.query_map([room], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<i64>>(5)?,
            ))
        })?;
        let mut entries = Vec::new();
        for row in rows {
            let (key, value, version, by, ts, expires) = row?;
            let (Some(value), Some(by)) = (raw(value), raw(by)) else {
                continue;
            };
            let e = Entry {
                value,
                version: uint(version),
                by,
                ts: uint(ts),
                expires: expires.map(uint),
            };
            entries.push((key, e));
        }
        Ok(StateMap::new(uint(rev), entries))
    }

    pub fn write_state(&self, room: &str, c: &Change) -> SqlResult<()> {
        match &c.entry {
            Some(e) => self.conn.execute(
                "INSERT OR REPLACE INTO state (room, key, value, version, by, ts, expires)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    room,
                    c.key,
                    e.value.get(),
                    int(e.version),
                    e.by.get(),
                    int(e.ts),
                    e.expires.map(int)
                ],
            )?,
            None => self.conn.execute(
                "DELETE FROM state WHERE room = ?1 AND key = ?2",
                params![room, c.key],
            )?,
        };
        self.conn.execute(
            "INSERT INTO state_rev (room, rev) VALUES (?1, ?2)
             ON CONFLICT (room) DO UPDATE SET rev = max(rev, excluded.rev)",
            params![room, int(c.version)],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::state::{StateMap, Write};
    use serde_json::value::RawValue;

    #[test]
    fn state_survives_a_reopen_of_the_tables() {
        let db = super::Db::in_memory().unwrap();
        let mut m = StateMap::default();
        let raw = |s: &str| RawValue::from_string(s.into()).unwrap();
        for (k, ttl) in [("a", None), ("b", Some(5))] {
            let w = Write {
                key: k.into(),
                value: Some(raw("[1]")),
                version: 0,
                ttl_ms: ttl,
            };
            let c = m.change(w, raw("{}"), 100);
            m.apply(&c);
            db.write_state("r", &c).unwrap();
        }
        let back = db.load_state("r", 200).unwrap();
        assert_eq!(back.rev, 2);
        assert_eq!(back.len(), 1, "the expired key is left out");
        assert_eq!(back.get("a", 200).unwrap().value.get(), "[1]");
    }
}
