//! Documents in the database: the op log and the newest snapshot of each
//! (the contract is in docstore.rs).

use super::db::{int, uint, Db, SqlResult};
use crate::docstore::{DocOpRecord, DocState};
use crate::error::{ErrorCode, HubError};
use rusqlite::{params, OptionalExtension};

impl Db {
    /// The revision of the document's newest op or snapshot.
    fn doc_head(&self, doc: &str) -> SqlResult<u64> {
        let op: Option<i64> = self
            .conn
            .prepare_cached("SELECT max(rev) FROM doc_ops WHERE doc = ?1")?
            .query_row([doc], |r| r.get(0))?;
        let snap: Option<i64> = self
            .conn
            .prepare_cached("SELECT snapshot_rev FROM docs WHERE doc = ?1")?
            .query_row([doc], |r| r.get(0))
            .optional()?;
        Ok(uint(op.unwrap_or(0)).max(uint(snap.unwrap_or(0))))
    }

    pub fn append_doc_ops(
        &self,
        doc: &str,
        ops: &[DocOpRecord],
    ) -> SqlResult<Result<(), HubError>> {
        let head = self.doc_head(doc)?;
        for (i, op) in ops.iter().enumerate() {
            let want = head + 1 + i as u64;
            if op.rev != want {
                return Ok(Err(HubError::new(
                    ErrorCode::Internal,
                    format!(
                        "document {doc}: op rev {} does not follow the stored rev {}",
                        op.rev,
                        want - 1
                    ),
                )));
            }
        }
        let mut st = self.conn.prepare_cached(
            "INSERT INTO doc_ops (doc, rev, cid, seq, user, op, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for op in ops {
            st.execute(params![
                doc,
                int(op.rev),
                op.cid,
                int(op.seq),
                op.user,
                op.op,
                int(op.ts)
            ])?;
        }
        Ok(Ok(()))
    }

    /// Stores a snapshot at `rev` (which must not be past the stored head)
    /// and drops ops at or below `rev` except the newest `keep_ops` of them.
    /// A snapshot older than the stored one changes nothing.
    pub fn save_doc_snapshot(
        &self,
        doc: &str,
        rev: u64,
        text: &str,
        keep_ops: usize,
    ) -> SqlResult<Result<(), HubError>> {
        let head = self.doc_head(doc)?;
        if rev > head {
            return Ok(Err(HubError::new(
                ErrorCode::Internal,
                format!("document {doc}: snapshot at rev {rev} is past the stored rev {head}"),
            )));
        }
        let current: Option<i64> = self
            .conn
            .prepare_cached("SELECT snapshot_rev FROM docs WHERE doc = ?1")?
            .query_row([doc], |r| r.get(0))
            .optional()?;
        if current.is_some_and(|c| uint(c) > rev) {
            return Ok(Ok(()));
        }
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO docs (doc, snapshot_rev, snapshot_text, keep_ops)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![doc, int(rev), text, int(keep_ops as u64)])?;
        let keep = keep_ops as u64;
        if rev > keep {
            self.conn
                .prepare_cached("DELETE FROM doc_ops WHERE doc = ?1 AND rev <= ?2")?
                .execute(params![doc, int(rev - keep)])?;
        }
        Ok(Ok(()))
    }

    pub fn load_doc(&self, doc: &str) -> SqlResult<DocState> {
        let snap: Option<(i64, String, i64)> = self
            .conn
            .prepare_cached(
                "SELECT snapshot_rev, snapshot_text, keep_ops FROM docs WHERE doc = ?1",
            )?
            .query_row([doc], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let (snapshot_rev, snapshot_text, keep) = snap
            .map(|(r, t, k)| (uint(r), t, uint(k)))
            .unwrap_or((0, String::new(), 0));
        let mut st = self.conn.prepare_cached(
            "SELECT rev, cid, seq, user, op, ts FROM doc_ops
             WHERE doc = ?1 AND rev > ?2 AND rev <= ?3 ORDER BY rev",
        )?;
        let mut ops_between = |lo: u64, hi: u64| -> SqlResult<Vec<DocOpRecord>> {
            let rows = st.query_map(params![doc, int(lo), int(hi)], |r| {
                Ok(DocOpRecord {
                    rev: uint(r.get(0)?),
                    cid: r.get(1)?,
                    seq: uint(r.get(2)?),
                    user: r.get(3)?,
                    op: r.get(4)?,
                    ts: uint(r.get(5)?),
                })
            })?;
            rows.collect()
        };
        let older_ops = ops_between(snapshot_rev.saturating_sub(keep), snapshot_rev)?;
        let ops = ops_between(snapshot_rev, u64::MAX)?;
        Ok(DocState {
            snapshot_rev,
            snapshot_text,
            ops,
            older_ops,
        })
    }
}
