//! Room watches: a service (or admin) session's `room:watch {pattern}`
//! gets every message published in any room whose name matches
//! (`team-*`), rooms created later included, as `message:receive`. A
//! watcher is not a member (no presence, no member lists, no history):
//! what it gets is live only.
//!
//! The watchers of this node are in one registry. With one node, a room
//! hands each message to the registry after its fan-out (one atomic load
//! when nobody watches). With Redis, rooms do not: every message of every
//! room passes its room channel, so the node PSUBSCRIBEs each watched
//! pattern's channels (`cluster.rs`) and delivers from there, whether or
//! not the room lives on this node.

mod cluster;
pub mod wire;

use crate::delivery::Class;
use crate::ids::{RoomName, SessionId};
use crate::outbox::Outbox;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock, RwLock};

pub use cluster::{subscribe, unsubscribe};
pub use wire::{parse, Pattern, WatchRequest, MAX_PATTERN_LEN};

/// A session that watches.
struct Watcher {
    session: SessionId,
    outbox: Outbox,
    /// Sorted: a message is delivered for the first pattern that matches.
    patterns: Vec<Pattern>,
}

/// This node's watchers.
#[derive(Default)]
struct Registry {
    /// Watchers, so that rooms skip the lock when there are none.
    count: AtomicUsize,
    /// Messages come from Redis (`cluster.rs`), not from this node's rooms.
    clustered: AtomicBool,
    watchers: RwLock<Vec<Watcher>>,
    /// Pattern subscriptions of this node (with Redis): pattern → watchers.
    subs: Mutex<std::collections::HashMap<Pattern, cluster::Sub>>,
}

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::default)
}

/// Adds `pattern` to the session's watch.
pub fn add(session: SessionId, outbox: &Outbox, pattern: &Pattern) {
    let r = registry();
    let mut ws = r.watchers.write().unwrap_or_else(|e| e.into_inner());
    match ws.iter_mut().find(|w| w.session == session) {
        Some(w) => {
            if let Err(at) = w.patterns.binary_search(pattern) {
                w.patterns.insert(at, pattern.clone());
            }
        }
        None => {
            ws.push(Watcher {
                session,
                outbox: outbox.clone(),
                patterns: vec![pattern.clone()],
            });
            r.count.store(ws.len(), Relaxed);
        }
    }
}

/// Removes `pattern` (or, `None`, every pattern) from the session's watch.
pub fn remove(session: SessionId, pattern: Option<&Pattern>) {
    let r = registry();
    let mut ws = r.watchers.write().unwrap_or_else(|e| e.into_inner());
    if let Some(w) = ws.iter_mut().find(|w| w.session == session) {
        w.patterns.retain(|p| pattern.is_some_and(|x| x != p));
    }
    ws.retain(|w| !w.patterns.is_empty());
    r.count.store(ws.len(), Relaxed);
}

/// One node: a room's message (`frame`, already encoded for members) goes
/// to every watcher with a matching pattern, once, but `except` (the
/// sender of an `exclude_self` message).
pub fn deliver(room: &RoomName, frame: &Bytes, except: Option<SessionId>, class: Class) {
    let r = registry();
    if r.count.load(Relaxed) == 0 || r.clustered.load(Relaxed) {
        return;
    }
    let ws = r.watchers.read().unwrap_or_else(|e| e.into_inner());
    for w in ws.iter() {
        if Some(w.session) != except && w.patterns.iter().any(|p| p.matches(room)) {
            w.outbox.push_as(frame.clone(), class);
        }
    }
}

/// With Redis: a message of `room` that arrived for `pattern`. Redis sends
/// one copy per matching pattern, so a watcher gets it for the first of
/// its patterns that matches, and only from that pattern's copy.
fn deliver_for(
    pattern: &Pattern,
    room: &RoomName,
    frame: &Bytes,
    except: Option<SessionId>,
    class: Class,
) {
    let ws = registry()
        .watchers
        .read()
        .unwrap_or_else(|e| e.into_inner());
    for w in ws.iter() {
        if Some(w.session) == except {
            continue;
        }
        if w.patterns.iter().find(|p| p.matches(room)) == Some(pattern) {
            w.outbox.push_as(frame.clone(), class);
        }
    }
}
