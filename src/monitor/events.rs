//! The last [`RING_SIZE`] system events (connects, disconnects, auth failures,
//! errors, MQTT bridge state changes), kept in memory for `GET /api/events`.
//! Each has an increasing `id`, so a reader can ask for what came after the
//! last one it saw.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;

pub const RING_SIZE: usize = 1000;

#[derive(Debug, Clone, Serialize)]
pub struct SysEvent {
    pub id: u64,
    pub ts: u64,
    /// `connect`, `disconnect`, `auth_failure`, `error`, `mqtt_connected`,
    /// `mqtt_disconnected`, `mqtt_error`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The client's address (`connect` and `auth_failure`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// The error code, for `error` events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    pub message: String,
}

struct Ring {
    next_id: u64,
    events: VecDeque<SysEvent>,
}

static RING: Mutex<Ring> = Mutex::new(Ring {
    next_id: 1,
    events: VecDeque::new(),
});

/// What happened; see [`SysEvent`].
pub struct Event<'a> {
    pub kind: &'static str,
    pub session: Option<String>,
    pub user: Option<&'a str>,
    pub addr: Option<std::net::IpAddr>,
    pub code: Option<&'static str>,
    pub message: &'a str,
}

impl<'a> Event<'a> {
    pub fn new(kind: &'static str, message: &'a str) -> Event<'a> {
        Event {
            kind,
            session: None,
            user: None,
            addr: None,
            code: None,
            message,
        }
    }
}

/// Keeps an event, dropping the oldest past [`RING_SIZE`].
pub fn record(e: Event) {
    let ts = crate::ids::now_ms();
    let mut ring = RING.lock().unwrap_or_else(|e| e.into_inner());
    let id = ring.next_id;
    ring.next_id += 1;
    if ring.events.len() >= RING_SIZE {
        ring.events.pop_front();
    }
    ring.events.push_back(SysEvent {
        id,
        ts,
        kind: e.kind,
        session: e.session,
        user: e.user.map(str::to_string),
        addr: e.addr.map(|a| a.to_string()),
        code: e.code,
        message: e.message.chars().take(300).collect(),
    });
}

/// Shorthands for the common kinds.
pub fn error(code: crate::error::ErrorCode, message: &str) {
    // Every browser asks for /favicon.ico: 404s would crowd the ring.
    if code == crate::error::ErrorCode::NotFound {
        return;
    }
    record(Event {
        code: Some(code.as_str()),
        ..Event::new("error", message)
    });
}

/// A refused token or authentication: counted, logged and kept.
pub fn auth_failure(addr: Option<std::net::IpAddr>, message: &str) {
    crate::metrics::METRICS
        .auth_failures
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match addr {
        Some(a) => log::info!(target: "switchboard::auth", "auth failure from {a}: {message}"),
        None => log::info!(target: "switchboard::auth", "auth failure: {message}"),
    }
    record(Event {
        addr,
        ..Event::new("auth_failure", message)
    });
}

/// Kept events with `id > since`, oldest first, at most `limit`.
pub fn since(since: u64, limit: usize) -> Vec<SysEvent> {
    let ring = RING.lock().unwrap_or_else(|e| e.into_inner());
    ring.events
        .iter()
        .filter(|e| e.id > since)
        .take(limit)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_events() {
        for i in 0..RING_SIZE + 10 {
            record(Event::new("connect", &format!("e{i}")));
        }
        let all = since(0, usize::MAX);
        assert_eq!(all.len(), RING_SIZE);
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));
        // Other tests may record concurrently: look only at ids we know.
        let last = all[all.len() - 1].id;
        let tail = since(last - 2, 10);
        assert!(tail.len() >= 2 && tail[0].id == last - 1, "{tail:?}");
        assert_eq!(since(0, 5).len(), 5);
    }
}
