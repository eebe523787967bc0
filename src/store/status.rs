//! What the monitor and `/healthz` report about storage: whether the last
//! write batch failed, the last error, and how many writes are waiting. The
//! writer thread updates it; readers never wait on the writer.

use crate::ids::now_ms;
use crate::metrics::METRICS;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct StoreStatus {
    /// `false` with `SWITCHBOARD_DB=off`.
    pub durable: bool,
    pub path: Option<String>,
    /// The last write batch failed (cleared by the next one that commits).
    failing: AtomicBool,
    last_error: Mutex<Option<(String, u64)>>,
    /// Bumped when `failing` changes, so the monitor can announce it at once.
    pub version: AtomicU64,
    /// Writes sent and not yet taken by the writer (shared with the handle).
    pub queued: Arc<AtomicUsize>,
}

impl StoreStatus {
    pub fn new(path: Option<String>, queued: Arc<AtomicUsize>) -> StoreStatus {
        StoreStatus {
            durable: path.is_some(),
            path,
            queued,
            ..Default::default()
        }
    }

    /// After a write batch: `Err` with its message, or `Ok`.
    pub fn batch_done(&self, result: Result<(), &str>) {
        let failing = result.is_err();
        if let Err(e) = result {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((e.to_string(), now_ms()));
        }
        if self.failing.swap(failing, Relaxed) != failing {
            self.version.fetch_add(1, Relaxed);
        }
    }

    pub fn failing(&self) -> bool {
        self.failing.load(Relaxed)
    }

    /// The `store` component of `health:update` and `/healthz`.
    pub fn report(&self) -> Value {
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        json!({
            "status": if self.failing() { "failing" } else { "ok" },
            "durable": self.durable,
            "path": self.path,
            "queued": self.queued.load(Relaxed),
            "batches": METRICS.storage_batches.load(Relaxed),
            "writes": METRICS.storage_writes.load(Relaxed),
            "errors": METRICS.storage_errors.load(Relaxed),
            "last_error": last.as_ref().map(|l| l.0.as_str()),
            "last_error_ts": last.map(|l| l.1),
        })
    }
}
