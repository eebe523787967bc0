//! Webhooks: what happens in the hub (rooms occupied and vacated, members
//! joining and leaving, presence, messages of chosen rooms, sessions
//! closing) POSTed to the app's backend as signed JSON batches, at least
//! once. Events are stamped (unique `id`, `ts`) where they happen, handed to
//! the sender thread (`sender.rs`) over a channel, queued in the embedded
//! database and deleted only once a POST holding them was answered 2xx.
//! With Redis, the node whose script saw the cluster-wide change emits a room
//! or member event, so each happens once (docs/SCALEOUT.md).

mod sender;

use crate::config::WebhookConfig;
use crate::ids::{now_ms, random_hex};
use crate::protocol::Status;
use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

pub use sender::{sign, Sender};

/// Something that happened, as the receiver gets it (with `id`, `ts`).
#[derive(Serialize)]
#[serde(tag = "type")]
pub enum Event<'a> {
    /// A room got its first member (cluster-wide).
    #[serde(rename = "room.occupied")]
    RoomOccupied { room: &'a str },
    /// A room's last member left (cluster-wide).
    #[serde(rename = "room.vacated")]
    RoomVacated { room: &'a str },
    /// A user's first session joined the room.
    #[serde(rename = "member.joined")]
    MemberJoined {
        room: &'a str,
        user: &'a str,
        name: &'a str,
    },
    /// A user's last session left the room.
    #[serde(rename = "member.left")]
    MemberLeft { room: &'a str, user: &'a str },
    /// A user's status across their sessions changed (or they set an activity).
    #[serde(rename = "presence.changed")]
    PresenceChanged {
        user: &'a str,
        status: Status,
        #[serde(skip_serializing_if = "Option::is_none")]
        activity: Option<&'a str>,
    },
    /// A message got its seq in a room matching `SWITCHBOARD_WEBHOOK_ROOMS`.
    #[serde(rename = "message.published")]
    MessagePublished {
        room: &'a str,
        seq: u64,
        user: &'a str,
        name: &'a str,
        data: &'a RawValue,
    },
    /// An authenticated session (or guest) ended.
    #[serde(rename = "session.closed")]
    SessionClosed {
        session: &'a str,
        user: &'a str,
        transport: &'a str,
        code: u16,
        reason: &'a str,
    },
}

#[derive(Serialize)]
struct Stamped<'a> {
    id: String,
    #[serde(flatten)]
    event: &'a Event<'a>,
    ts: u64,
}

/// What the rest of the hub reaches: the channel to the sender thread and
/// the room patterns for messages.
struct Hooks {
    tx: tokio::sync::mpsc::UnboundedSender<String>,
    rooms: Vec<String>,
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Stats {
    pub emitted: AtomicU64,
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
    pub failures: AtomicU64,
    pub backlog: AtomicU64,
}

pub static STATS: Stats = Stats {
    emitted: AtomicU64::new(0),
    delivered: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
    failures: AtomicU64::new(0),
    backlog: AtomicU64::new(0),
};

/// Starts the sender thread (its queue in the database `path`, or in memory)
/// and opens the channel. Call once, before any session exists.
pub fn start(
    cfg: &WebhookConfig,
    storage: &crate::config::StorageConfig,
) -> Result<Sender, String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let sender = Sender::start(cfg.clone(), storage, rx)?;
    let _ = HOOKS.set(Hooks {
        tx,
        rooms: cfg.rooms.clone(),
    });
    Ok(sender)
}

/// Whether webhooks are on (so callers skip building events otherwise).
pub fn on() -> bool {
    HOOKS.get().is_some()
}

/// Whether the room's events are sent: not personal rooms (`user:…`) nor
/// the monitor channel.
pub fn room_events(room: &crate::ids::RoomName) -> bool {
    on() && room.personal_owner().is_none() && room.as_str() != "monitor"
}

/// Whether `room`'s messages are sent (`SWITCHBOARD_WEBHOOK_ROOMS`).
pub fn messages_of(room: &str) -> bool {
    HOOKS
        .get()
        .is_some_and(|h| h.rooms.iter().any(|p| crate::auth::glob(p, room)))
}

/// `user`'s first session joined `room`; `occupied`: the room had no member before.
pub fn member_joined(room: &crate::ids::RoomName, user: &str, name: &str, occupied: bool) {
    if !room_events(room) {
        return;
    }
    let room = room.as_str();
    if occupied {
        emit(Event::RoomOccupied { room });
    }
    emit(Event::MemberJoined { room, user, name });
}

/// `user`'s last session left `room`; `vacated`: nobody is left in it.
pub fn member_left(room: &crate::ids::RoomName, user: &str, vacated: bool) {
    if !room_events(room) {
        return;
    }
    let room = room.as_str();
    emit(Event::MemberLeft { room, user });
    if vacated {
        emit(Event::RoomVacated { room });
    }
}

/// What the REAP script changed when this node removed a dead one
/// (`cluster::scripts`): its users gone offline, memberships left, rooms vacated.
pub fn reaped(changes: &[redis::Value]) {
    if !on() {
        return;
    }
    for c in changes {
        let redis::Value::BulkString(b) = c else {
            continue;
        };
        let Ok(text) = std::str::from_utf8(b) else {
            continue;
        };
        let mut parts = text.split('\t');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("P"), Some(user), None) => emit(Event::PresenceChanged {
                user,
                status: Status::Offline,
                activity: None,
            }),
            (Some("L"), Some(room), Some(user)) => {
                if let Some(room) = crate::ids::RoomName::parse(room) {
                    member_left(&room, user, false);
                }
            }
            (Some("V"), Some(room), None) => {
                if let Some(room) = crate::ids::RoomName::parse(room).filter(room_events) {
                    emit(Event::RoomVacated {
                        room: room.as_str(),
                    });
                }
            }
            _ => {}
        }
    }
}

/// Stamps `event` with a new id and the time, and queues it.
pub fn emit(event: Event<'_>) {
    let Some(h) = HOOKS.get() else { return };
    let stamped = Stamped {
        id: format!("evt_{}", random_hex(12)),
        event: &event,
        ts: now_ms(),
    };
    let Ok(body) = serde_json::to_string(&stamped) else {
        return;
    };
    STATS.emitted.fetch_add(1, Relaxed);
    if h.tx.send(body).is_err() {
        log::warn!("webhooks: the sender has stopped; event dropped");
        STATS.dropped.fetch_add(1, Relaxed);
    }
}

/// The webhook lines of `/metrics` (none when webhooks are off).
pub fn render_metrics(out: &mut String) {
    use std::fmt::Write;
    if !on() {
        return;
    }
    let lines = [
        (
            "emitted_total",
            "counter",
            "Webhook events produced by this node.",
            &STATS.emitted,
        ),
        (
            "delivered_total",
            "counter",
            "Webhook events the receiver answered 2xx.",
            &STATS.delivered,
        ),
        (
            "dropped_total",
            "counter",
            "Webhook events dropped by SWITCHBOARD_WEBHOOK_QUEUE (oldest first).",
            &STATS.dropped,
        ),
        (
            "failures_total",
            "counter",
            "Webhook POSTs that failed (non-2xx, timeout, unreachable).",
            &STATS.failures,
        ),
        (
            "queued",
            "gauge",
            "Webhook events stored and waiting for the receiver.",
            &STATS.backlog,
        ),
    ];
    for (name, kind, help, v) in lines {
        let _ = write!(
            out,
            "# HELP switchboard_webhook_{name} {help}\n# TYPE switchboard_webhook_{name} {kind}\nswitchboard_webhook_{name} {}\n",
            v.load(Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_id_type_and_ts() {
        let data = RawValue::from_string("{\"t\":1}".into()).unwrap();
        let e = Event::MessagePublished {
            room: "r",
            seq: 3,
            user: "u",
            name: "U",
            data: &data,
        };
        let s = serde_json::to_string(&Stamped {
            id: "evt_1".into(),
            event: &e,
            ts: 9,
        })
        .unwrap();
        assert_eq!(
            s,
            r#"{"id":"evt_1","type":"message.published","room":"r","seq":3,"user":"u","name":"U","data":{"t":1},"ts":9}"#
        );
    }
}
