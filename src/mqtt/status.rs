//! The bridge's state as everyone else reads it: `/healthz`, `/metrics`, the
//! monitor's `health:update`. Written only by the bridge actor; read without
//! asking it anything.

use serde::Serialize;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// A snapshot of the bridge's connection.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkState {
    /// `host:port` of the broker.
    pub broker: String,
    pub connected: bool,
    /// The last connection error, and when (ms since the epoch).
    pub last_error: Option<String>,
    pub last_error_ts: Option<u64>,
    /// Successful connections after the first one.
    pub reconnects: u64,
    /// Publishes waiting for the broker (queued, or sent and not yet acknowledged).
    pub queued: usize,
    /// Subscriptions held at the broker.
    pub subscriptions: usize,
}

#[derive(Default)]
pub struct BridgeStatus {
    link: Mutex<LinkState>,
    /// Bumped on every change of `connected`, so watchers notice changes cheaply.
    pub version: AtomicU64,
    /// Messages received from the broker.
    pub received: AtomicU64,
    /// Client publishes sent to the broker (QoS 1: acknowledged by it).
    pub published: AtomicU64,
    /// Client publishes refused (queue full, broker away for QoS 0).
    pub refused: AtomicU64,
    /// Messages from the broker dropped for exceeding `SWITCHBOARD_MQTT_MAX_PACKET`.
    pub oversized: AtomicU64,
}

impl BridgeStatus {
    pub fn new(broker: String) -> BridgeStatus {
        let s = BridgeStatus::default();
        s.update(|l| l.broker = broker);
        s
    }

    pub fn get(&self) -> LinkState {
        self.link.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Applies `f`; bumps `version` when the connection state changed.
    pub fn update(&self, f: impl FnOnce(&mut LinkState)) {
        let mut l = self.link.lock().unwrap_or_else(|e| e.into_inner());
        let before = l.connected;
        f(&mut l);
        if l.connected != before {
            self.version.fetch_add(1, Relaxed);
        }
    }

    /// Prometheus lines for `/metrics`.
    pub fn render(&self, out: &mut String) {
        let l = self.get();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "switchboard_mqtt_connected",
            "gauge",
            "1 while the MQTT bridge is connected to its broker.",
            l.connected as u64,
        );
        metric(
            "switchboard_mqtt_reconnects_total",
            "counter",
            "Successful MQTT reconnections after the first connection.",
            l.reconnects,
        );
        metric(
            "switchboard_mqtt_queued",
            "gauge",
            "Client publishes waiting for the broker.",
            l.queued as u64,
        );
        metric(
            "switchboard_mqtt_subscriptions",
            "gauge",
            "Subscriptions the bridge holds at the broker.",
            l.subscriptions as u64,
        );
        metric(
            "switchboard_mqtt_received_total",
            "counter",
            "Messages received from the broker.",
            self.received.load(Relaxed),
        );
        metric(
            "switchboard_mqtt_oversized_total",
            "counter",
            "Messages from the broker dropped for exceeding SWITCHBOARD_MQTT_MAX_PACKET.",
            self.oversized.load(Relaxed),
        );
        metric(
            "switchboard_mqtt_published_total",
            "counter",
            "Client publishes delivered to the broker.",
            self.published.load(Relaxed),
        );
        metric(
            "switchboard_mqtt_refused_total",
            "counter",
            "Client publishes refused (queue full, or QoS 0 while disconnected).",
            self.refused.load(Relaxed),
        );
    }
}
