//! The message flow the monitor shows: every message that enters the hub
//! (room messages, direct messages, MQTT messages both ways) is counted, and,
//! while someone watches the monitor, recorded into a batch the monitor takes
//! every second.
//!
//! Cost: when nobody watches, [`record`] is one relaxed atomic add (the
//! `messages_in` counter) and one relaxed load. When someone does, a message
//! takes a short lock to push one small entry; once the batch holds
//! [`MAX_BATCH`] entries the rest are only counted (no lock).

use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

/// Entries kept per batch; the others are counted as `omitted`.
pub const MAX_BATCH: usize = 1000;

/// What a message went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowKind {
    /// A room message (`target` is the room).
    Room,
    /// A direct message (`target` is the recipient).
    Direct,
    /// From the broker (`target` is the topic).
    MqttIn,
    /// A client's publish to the broker (`target` is the topic).
    MqttOut,
}

/// Who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderKind {
    User,
    Guest,
    /// A service or admin token (REST API or a connection).
    Service,
    /// A device or service on the MQTT broker.
    Mqtt,
}

impl SenderKind {
    /// From a session's identity.
    pub fn of(who: &crate::auth::Identity) -> SenderKind {
        if who.guest {
            SenderKind::Guest
        } else if who.role.privileged() {
            SenderKind::Service
        } else {
            SenderKind::User
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FlowEntry {
    pub ts: u64,
    pub kind: FlowKind,
    pub target: Box<str>,
    /// Bytes of the message's data or payload.
    pub size: usize,
    pub sender: SenderKind,
}

pub struct Flow {
    watching: AtomicBool,
    /// Messages that entered the hub since start (always counted).
    pub messages_in: AtomicU64,
    len: AtomicUsize,
    omitted: AtomicU64,
    batch: Mutex<Vec<FlowEntry>>,
}

pub static FLOW: Flow = Flow {
    watching: AtomicBool::new(false),
    messages_in: AtomicU64::new(0),
    len: AtomicUsize::new(0),
    omitted: AtomicU64::new(0),
    batch: Mutex::new(Vec::new()),
};

/// Counts a message and, while the monitor is watched, records it.
#[inline]
pub fn record(kind: FlowKind, target: &str, size: usize, sender: SenderKind) {
    FLOW.messages_in.fetch_add(1, Relaxed);
    if FLOW.watching.load(Relaxed) {
        record_watched(kind, target, size, sender);
    }
}

#[cold]
fn record_watched(kind: FlowKind, target: &str, size: usize, sender: SenderKind) {
    if FLOW.len.fetch_add(1, Relaxed) >= MAX_BATCH {
        FLOW.omitted.fetch_add(1, Relaxed);
        return;
    }
    let mut batch = FLOW.batch.lock().unwrap_or_else(|e| e.into_inner());
    if batch.len() >= MAX_BATCH {
        FLOW.omitted.fetch_add(1, Relaxed);
        return;
    }
    batch.push(FlowEntry {
        ts: crate::ids::now_ms(),
        kind,
        target: target.into(),
        size,
        sender,
    });
}

impl Flow {
    /// Starts or stops recording (the monitor has watchers or not).
    pub fn set_watching(&self, on: bool) {
        self.watching.store(on, Relaxed);
        if !on {
            self.take();
        }
    }

    /// The batch so far and how many were left out of it; starts a new one.
    pub fn take(&self) -> (Vec<FlowEntry>, u64) {
        let mut batch = self.batch.lock().unwrap_or_else(|e| e.into_inner());
        let entries = std::mem::take(&mut *batch);
        self.len.store(0, Relaxed);
        (entries, self.omitted.swap(0, Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test owns the global recorder (tests run in parallel threads).
    #[test]
    fn records_only_while_watched_and_caps_the_batch() {
        let before = FLOW.messages_in.load(Relaxed);
        record(FlowKind::Room, "general", 10, SenderKind::User);
        assert!(FLOW.take().0.is_empty());
        FLOW.set_watching(true);
        for i in 0..MAX_BATCH + 7 {
            record(FlowKind::MqttIn, "a/b", i, SenderKind::Mqtt);
        }
        let (entries, omitted) = FLOW.take();
        assert_eq!((entries.len(), omitted), (MAX_BATCH, 7));
        assert_eq!(entries[3].size, 3);
        record(FlowKind::Direct, "bob", 1, SenderKind::Guest);
        assert_eq!(FLOW.take().0.len(), 1);
        FLOW.set_watching(false);
        assert!(FLOW.messages_in.load(Relaxed) >= before + MAX_BATCH as u64 + 9);
    }
}
