//! Delivery classes of room messages: `priority` and `volatile` on
//! `message:send` and `POST /api/publish`, and what a session's outbox does
//! with each under pressure (`outbox.rs`, docs/PROTOCOL.md "Delivery
//! classes"):
//! - `low` and volatile frames are dropped when the queue holds half its
//!   capacity or more, and are the ones taken out of a full queue to make
//!   room; each drop is counted, and the client told in a `dropped` frame;
//! - `normal` and `high` frames are queued in order up to the capacity;
//! - `critical` frames go ahead of everything queued but earlier critical
//!   frames;
//! - a `normal`, `high` or `critical` frame that finds the queue full with
//!   nothing droppable in it closes the session (4008).

use serde::Serialize;

/// A room message's priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Critical,
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    pub fn parse(s: &str) -> Option<Priority> {
        Some(match s {
            "critical" => Priority::Critical,
            "high" => Priority::High,
            "normal" => Priority::Normal,
            "low" => Priority::Low,
            _ => return None,
        })
    }

    /// Shown in `message:receive` only when not `normal`.
    pub fn shown(self) -> Option<Priority> {
        (self != Priority::Normal).then_some(self)
    }
}

/// How a session's outbox treats a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Kept in order; a full queue closes the session.
    Normal,
    /// Ahead of everything but earlier critical frames.
    Critical,
    /// Dropped first (`low` priority).
    Low,
    /// Dropped first, before `low` (a volatile message of any priority).
    Volatile,
}

impl Class {
    pub fn of(priority: Priority, volatile: bool) -> Class {
        match (volatile, priority) {
            (true, _) => Class::Volatile,
            (false, Priority::Critical) => Class::Critical,
            (false, Priority::Low) => Class::Low,
            (false, _) => Class::Normal,
        }
    }

    /// The class of a `message:receive` frame this server encoded: its
    /// last field says (`priority`, or `volatile` for a volatile message;
    /// neither for `normal`). A suffix compare, for frames that arrive from
    /// Redis with several nodes.
    pub fn of_frame(frame: &[u8]) -> Class {
        if frame.ends_with(br#","volatile":true}"#) {
            Class::Volatile
        } else if frame.ends_with(br#","priority":"critical"}"#) {
            Class::Critical
        } else if frame.ends_with(br#","priority":"low"}"#) {
            Class::Low
        } else {
            Class::Normal
        }
    }

    pub fn droppable(self) -> bool {
        matches!(self, Class::Low | Class::Volatile)
    }

    /// One letter, for the room channel with several nodes.
    pub fn letter(self) -> char {
        match self {
            Class::Normal => 'n',
            Class::Critical => 'c',
            Class::Low => 'l',
            Class::Volatile => 'v',
        }
    }

    pub fn from_letter(c: u8) -> Class {
        match c {
            b'c' => Class::Critical,
            b'l' => Class::Low,
            b'v' => Class::Volatile,
            _ => Class::Normal,
        }
    }
}

/// Frames a session missed, by class, not yet told (`dropped`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Dropped {
    #[serde(skip_serializing_if = "is_zero")]
    pub low: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub volatile: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Dropped {
    pub fn count(&mut self, class: Class) {
        match class {
            Class::Volatile => self.volatile += 1,
            _ => self.low += 1,
        }
        crate::metrics::METRICS.dropped(class);
    }

    pub fn any(&self) -> bool {
        self.low + self.volatile > 0
    }
}
