//! Process-wide counters, rendered as Prometheus text at `GET /metrics`.
//! Plain atomics: the hot path adds once per fan-out, not once per recipient.

use crate::error::ErrorCode;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the delivery latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// The transports sessions are counted by (`Transport::name`).
pub const TRANSPORTS: [&str; 5] = ["websocket", "sse", "polling", "socket.io", "rest"];

pub struct Metrics {
    pub connections: AtomicI64,
    /// Open sessions and sessions opened, by transport ([`TRANSPORTS`]).
    sessions: [AtomicI64; TRANSPORTS.len()],
    sessions_total: [AtomicU64; TRANSPORTS.len()],
    pub connections_total: AtomicU64,
    pub rooms: AtomicI64,
    pub frames_in: AtomicU64,
    pub messages_published: AtomicU64,
    pub direct_messages: AtomicU64,
    pub deliveries: AtomicU64,
    pub slow_consumers: AtomicU64,
    /// `signal` frames delivered.
    pub signals: AtomicU64,
    /// Frames dropped from outboxes under pressure: low priority, volatile.
    pub dropped_low: AtomicU64,
    pub dropped_volatile: AtomicU64,
    pub auth_failures: AtomicU64,
    /// Open documents (with a Document actor), and ops stored.
    pub documents: AtomicI64,
    pub doc_ops: AtomicU64,
    /// Storage: committed write batches, writes in them, writes that failed,
    /// and writes refused because too many were waiting.
    pub storage_batches: AtomicU64,
    pub storage_writes: AtomicU64,
    pub storage_errors: AtomicU64,
    pub storage_busy: AtomicU64,
    /// permessage-deflate: connections that negotiated it, compressed
    /// messages received (inflated) and sent.
    pub ws_deflate_connections: AtomicU64,
    pub ws_inflated: AtomicU64,
    pub ws_deflated: AtomicU64,
    errors: [AtomicU64; ErrorCode::ALL.len()],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);

#[allow(clippy::declare_interior_mutable_const)]
const ZERO_I: AtomicI64 = AtomicI64::new(0);

pub static METRICS: Metrics = Metrics {
    connections: AtomicI64::new(0),
    sessions: [ZERO_I; TRANSPORTS.len()],
    sessions_total: [ZERO; TRANSPORTS.len()],
    connections_total: ZERO,
    rooms: AtomicI64::new(0),
    frames_in: ZERO,
    messages_published: ZERO,
    direct_messages: ZERO,
    deliveries: ZERO,
    slow_consumers: ZERO,
    signals: ZERO,
    dropped_low: ZERO,
    dropped_volatile: ZERO,
    auth_failures: ZERO,
    documents: AtomicI64::new(0),
    doc_ops: ZERO,
    storage_batches: ZERO,
    storage_writes: ZERO,
    storage_errors: ZERO,
    storage_busy: ZERO,
    ws_deflate_connections: ZERO,
    ws_inflated: ZERO,
    ws_deflated: ZERO,
    errors: [ZERO; ErrorCode::ALL.len()],
    latency_buckets: [ZERO; LATENCY_BUCKETS.len()],
    latency_count: ZERO,
    latency_sum_us: ZERO,
};

/// Open sessions, every transport.
pub fn sessions_open() -> i64 {
    METRICS.sessions.iter().map(|s| s.load(Relaxed)).sum()
}

/// Counts a session in `switchboard_sessions{transport}` for as long as
/// it lives (held by the session actor).
pub struct SessionCount(usize);

impl SessionCount {
    pub fn new(transport: &str) -> SessionCount {
        let i = TRANSPORTS
            .iter()
            .position(|t| *t == transport)
            .expect("a transport listed in metrics::TRANSPORTS");
        METRICS.sessions[i].fetch_add(1, Relaxed);
        METRICS.sessions_total[i].fetch_add(1, Relaxed);
        SessionCount(i)
    }
}

impl Drop for SessionCount {
    fn drop(&mut self) {
        METRICS.sessions[self.0].fetch_sub(1, Relaxed);
    }
}

impl Metrics {
    pub fn error(&self, code: ErrorCode) {
        self.errors[code.index()].fetch_add(1, Relaxed);
    }

    /// A frame of `class` dropped from a session's queue.
    pub fn dropped(&self, class: crate::delivery::Class) {
        let n = match class {
            crate::delivery::Class::Volatile => &self.dropped_volatile,
            _ => &self.dropped_low,
        };
        n.fetch_add(1, Relaxed);
    }

    pub fn errors_of(&self, code: ErrorCode) -> u64 {
        self.errors[code.index()].load(Relaxed)
    }

    /// Records the time from a message's arrival at the server to the end of its fan-out.
    pub fn delivery_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "switchboard_connections",
            "gauge",
            "Open WebSocket connections (counted until the socket is gone).",
            self.connections.load(Relaxed).to_string(),
        );
        metric(
            "switchboard_connections_total",
            "counter",
            "Sessions opened since start.",
            self.connections_total.load(Relaxed).to_string(),
        );
        metric(
            "switchboard_rooms",
            "gauge",
            "Active rooms (with a room actor).",
            self.rooms.load(Relaxed).to_string(),
        );
        metric(
            "switchboard_frames_in_total",
            "counter",
            "Client frames received.",
            self.frames_in.load(Relaxed).to_string(),
        );
        metric(
            "switchboard_ws_deflate_connections_total",
            "counter",
            "WebSocket connections that negotiated permessage-deflate.",
            self.ws_deflate_connections.load(Relaxed).to_string(),
        );
        metric(
            "switchboard_ws_inflated_total",
            "counter",
            "Compressed WebSocket messages received.",
            self.ws_inflated.load(Relaxed).to_string(),
        );
        metric(
            "switchboard_ws_deflated_total",
            "counter",
            "Compressed WebSocket messages sent (each recipient counts).",
            self.ws_deflated.load(Relaxed).to_string(),
        );
        metric(
            "switchboard_messages_published_total",
            "counter",
            "Room messages accepted (given a seq).",
            self.messages_published.load(Relaxed).to_string(),
        );
        metric(
            "switchboard_direct_messages_total",
            "counter",
            "Direct messages accepted.",
            self.direct_messages.load(Relaxed).to_string(),
        );
        metric(
            "switchboard_deliveries_total",
            "counter",
            "Frames queued to sessions by room, direct and broadcast fan-out.",
            self.deliveries.load(Relaxed).to_string(),
        );
        metric(
            "switchboard_slow_consumers_total",
            "counter",
            "Sessions closed with 4008.",
            self.slow_consumers.load(Relaxed).to_string(),
        );
        metric(
            "switchboard_signals_total",
            "counter",
            "WebRTC signals delivered to their session.",
            self.signals.load(Relaxed).to_string(),
        );
        metric(
            "switchboard_auth_failures_total",
            "counter",
            "Rejected tokens and auth frames.",
            self.auth_failures.load(Relaxed).to_string(),
        );
        metric(
            "switchboard_documents",
            "gauge",
            "Open documents (with a Document actor).",
            self.documents.load(Relaxed).to_string(),
        );
        metric(
            "switchboard_doc_ops_total",
            "counter",
            "Document ops committed and stored.",
            self.doc_ops.load(Relaxed).to_string(),
        );
        for (name, help, v) in [
            (
                "switchboard_storage_batches_total",
                "Write transactions committed by the storage writer.",
                &self.storage_batches,
            ),
            (
                "switchboard_storage_writes_total",
                "Writes committed (messages, notifications, offline messages, document ops).",
                &self.storage_writes,
            ),
            (
                "switchboard_storage_errors_total",
                "Writes that failed (disk full, database locked, I/O error); never acknowledged.",
                &self.storage_errors,
            ),
            (
                "switchboard_storage_busy_total",
                "Writes refused because SWITCHBOARD_DB_QUEUE writes were already waiting.",
                &self.storage_busy,
            ),
        ] {
            metric(name, "counter", help, v.load(Relaxed).to_string());
        }

        out.push_str("# HELP switchboard_sessions Open sessions (authenticated, guest or awaiting auth), by transport.\n# TYPE switchboard_sessions gauge\n");
        for (t, n) in TRANSPORTS.iter().zip(&self.sessions) {
            let _ = writeln!(
                out,
                "switchboard_sessions{{transport=\"{t}\"}} {}",
                n.load(Relaxed)
            );
        }
        out.push_str("# HELP switchboard_sessions_total Sessions opened since start, by transport.\n# TYPE switchboard_sessions_total counter\n");
        for (t, n) in TRANSPORTS.iter().zip(&self.sessions_total) {
            let _ = writeln!(
                out,
                "switchboard_sessions_total{{transport=\"{t}\"}} {}",
                n.load(Relaxed)
            );
        }
        out.push_str("# HELP switchboard_errors_total Error frames and responses sent, by code.\n# TYPE switchboard_errors_total counter\n");
        for code in ErrorCode::ALL {
            let _ = writeln!(
                out,
                "switchboard_errors_total{{code=\"{}\"}} {}",
                code.as_str(),
                self.errors_of(code)
            );
        }

        out.push_str("# HELP switchboard_dropped_frames_total Frames dropped from session queues under pressure, by class.\n# TYPE switchboard_dropped_frames_total counter\n");
        for (class, n) in [
            ("low", &self.dropped_low),
            ("volatile", &self.dropped_volatile),
        ] {
            let _ = writeln!(
                out,
                "switchboard_dropped_frames_total{{class=\"{class}\"}} {}",
                n.load(Relaxed)
            );
        }

        out.push_str("# HELP switchboard_delivery_latency_seconds Time from a message's arrival to the end of its room fan-out.\n# TYPE switchboard_delivery_latency_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.latency_buckets[i].load(Relaxed);
            let _ = writeln!(
                out,
                "switchboard_delivery_latency_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(
            out,
            "switchboard_delivery_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "switchboard_delivery_latency_seconds_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "switchboard_delivery_latency_seconds_count {count}");
        out
    }
}

#[cfg(test)]
mod transport_tests {
    use crate::session::Transport;

    /// Every transport a session can have is one `/metrics` counts by (a
    /// new variant fails to compile here until it is listed).
    #[test]
    fn every_transport_is_counted() {
        let all = [
            Transport::WebSocket,
            Transport::Sse { key: String::new() },
            Transport::Polling { key: String::new() },
            Transport::SocketIo,
            Transport::Rest,
        ];
        for t in all {
            match t {
                Transport::WebSocket
                | Transport::Sse { .. }
                | Transport::Polling { .. }
                | Transport::SocketIo
                | Transport::Rest => {}
            }
            assert!(super::TRANSPORTS.contains(&t.name()), "{}", t.name());
        }
    }
}
