//! The database schema and its migrations. `schema_version` holds one row:
//! the number of migrations applied. At start every missing migration runs,
//! each in its own transaction; a database written by a newer Switchboard
//! (a version we do not know) is refused rather than guessed at.

use rusqlite::{Connection, OptionalExtension};

/// Migration `i` brings the schema from version `i` to `i + 1`. Append only:
/// never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: rooms, documents, notifications, offline direct messages.
    "
    -- A room's numbering: its epoch and the last seq given out.
    CREATE TABLE rooms (
        name  TEXT PRIMARY KEY,
        epoch TEXT NOT NULL,
        seq   INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- Room messages as the encoded message:receive frame, sent as stored.
    CREATE TABLE messages (
        room  TEXT NOT NULL,
        seq   INTEGER NOT NULL,
        ts    INTEGER NOT NULL,
        frame BLOB NOT NULL,
        PRIMARY KEY (room, seq)
    ) WITHOUT ROWID;
    CREATE INDEX messages_age ON messages (room, ts);
    -- A document's newest snapshot, and the keep_ops it was saved with.
    CREATE TABLE docs (
        doc           TEXT PRIMARY KEY,
        snapshot_rev  INTEGER NOT NULL,
        snapshot_text TEXT NOT NULL,
        keep_ops      INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE doc_ops (
        doc  TEXT NOT NULL,
        rev  INTEGER NOT NULL,
        cid  TEXT NOT NULL,
        seq  INTEGER NOT NULL,
        user TEXT NOT NULL,
        op   TEXT NOT NULL,
        ts   INTEGER NOT NULL,
        PRIMARY KEY (doc, rev)
    ) WITHOUT ROWID;
    -- `sender` and `data` are JSON text, spliced into frames as they are.
    CREATE TABLE notifications (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        user   TEXT NOT NULL,
        sender TEXT NOT NULL,
        data   TEXT NOT NULL,
        ts     INTEGER NOT NULL,
        read   INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX notifications_by_user ON notifications (user, id);
    CREATE INDEX notifications_unread ON notifications (user) WHERE read = 0;
    -- Direct messages waiting for a user with no session: the direct:receive frame.
    CREATE TABLE inbox (
        id    INTEGER PRIMARY KEY AUTOINCREMENT,
        user  TEXT NOT NULL,
        ts    INTEGER NOT NULL,
        frame BLOB NOT NULL
    );
    CREATE INDEX inbox_by_user ON inbox (user, id);
    -- How many of a user's waiting messages were dropped by the bound, not yet told.
    CREATE TABLE inbox_dropped (
        user    TEXT PRIMARY KEY,
        dropped INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 2: the age sweep walks a room's messages in seq order instead; the
    // index cost every insert a second b-tree write.
    "DROP INDEX IF EXISTS messages_age;",
    // 3: a room's reservation: no seq above `reserved` is ever handed out
    // before this row says so, so a crash can never reuse a delivered seq
    // (see `Db::reserve` and DESIGN.md "Sequence numbers after a crash").
    "ALTER TABLE rooms ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0;",
    // 4: a message's idempotency key, read back at a room's load so a
    // retry after a restart is still recognised. The partial index holds
    // only keyed messages: a message without a key costs no second write.
    "
    ALTER TABLE messages ADD COLUMN idem TEXT;
    CREATE INDEX messages_idem ON messages (room, seq) WHERE idem IS NOT NULL;
    ",
    // 5: shared state: a room's keys (`value` and `by` are JSON text, sent
    // as stored) and the last version the room gave out, kept apart so a
    // deleted key's version is never given again.
    "
    CREATE TABLE state (
        room    TEXT NOT NULL,
        key     TEXT NOT NULL,
        value   TEXT NOT NULL,
        version INTEGER NOT NULL,
        by      TEXT NOT NULL,
        ts      INTEGER NOT NULL,
        expires INTEGER,
        PRIMARY KEY (room, key)
    ) WITHOUT ROWID;
    CREATE TABLE state_rev (
        room TEXT PRIMARY KEY,
        rev  INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 6: webhook events waiting for a 2xx from the receiver (`webhooks`),
    // oldest first; `body` is the event's JSON object, sent as stored.
    "
    CREATE TABLE webhook_events (
        id   INTEGER PRIMARY KEY AUTOINCREMENT,
        body TEXT NOT NULL
    );
    ",
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// The version recorded in the database (0 for a new one).
pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    Ok(conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Creates or upgrades the schema. Errors name the problem for the operator.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    let have = version(conn).map_err(|e| format!("cannot read the schema version: {e}"))?;
    if have > VERSION {
        return Err(format!(
            "the database has schema version {have}, newer than this build's {VERSION}; \
             run a newer Switchboard or point SWITCHBOARD_DB elsewhere"
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(have as usize) {
        let to = i as i64 + 1;
        let tx = conn
            .transaction()
            .map_err(|e| format!("migration {to}: {e}"))?;
        tx.execute_batch(sql)
            .and_then(|_| tx.execute("DELETE FROM schema_version", []))
            .and_then(|_| tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [to]))
            .map_err(|e| format!("migration {to}: {e}"))?;
        tx.commit().map_err(|e| format!("migration {to}: {e}"))?;
        log::info!("storage: schema migrated to version {to}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(conn: &Connection) -> Vec<String> {
        let mut st = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        let names = st.query_map([], |r| r.get(0)).unwrap();
        names.map(Result::unwrap).collect()
    }

    #[test]
    fn a_new_database_gets_every_table_and_the_latest_version() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        assert_eq!(version(&c).unwrap(), VERSION);
        let t = tables(&c);
        for want in [
            "docs",
            "doc_ops",
            "inbox",
            "inbox_dropped",
            "messages",
            "notifications",
            "rooms",
            "schema_version",
            "state",
            "state_rev",
            "webhook_events",
        ] {
            assert!(t.iter().any(|n| n == want), "{want} missing from {t:?}");
        }
    }

    #[test]
    fn migrating_again_changes_nothing_and_keeps_data() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        c.execute(
            "INSERT INTO rooms (name, epoch, seq) VALUES ('r', 'e', 3)",
            [],
        )
        .unwrap();
        migrate(&mut c).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        let seq: i64 = c
            .query_row("SELECT seq FROM rooms WHERE name = 'r'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seq, 3);
    }

    #[test]
    fn a_version_1_database_is_migrated_in_place() {
        let mut c = Connection::open_in_memory().unwrap();
        version(&c).unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.execute("INSERT INTO schema_version (version) VALUES (1)", [])
            .unwrap();
        c.execute("INSERT INTO messages VALUES ('r', 1, 5, x'00')", [])
            .unwrap();
        migrate(&mut c).unwrap();
        assert_eq!(version(&c).unwrap(), VERSION);
        let indexes: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'messages_age'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 0);
        let kept: i64 = c
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, 1);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        c.execute("UPDATE schema_version SET version = ?1", [VERSION + 1])
            .unwrap();
        let e = migrate(&mut c).unwrap_err();
        assert!(e.contains("newer"), "{e}");
    }

    #[test]
    fn a_failed_migration_leaves_the_old_version() {
        let mut c = Connection::open_in_memory().unwrap();
        // A table in the way makes migration 1 fail half-way: it must roll back whole.
        c.execute_batch("CREATE TABLE inbox (x)").unwrap();
        assert!(migrate(&mut c).is_err());
        assert_eq!(version(&c).unwrap(), 0);
        assert!(!tables(&c).iter().any(|t| t == "rooms"));
    }
}
