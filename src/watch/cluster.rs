//! Watches with Redis: one `PSUBSCRIBE <prefix>:{r:<pattern>}:c` per
//! pattern watched on this node, on every Redis (rooms' messages are
//! spread over them when there are several; a room's messages are
//! published on one only, so none arrives twice) (room names hold no glob character but
//! `*`, which means the same in both), and a small actor that turns each
//! room channel's messages (`M…`, `V…`, see `room/cluster`) into
//! deliveries to this node's watchers. Other channel traffic (members,
//! typing, state) is ignored.

use super::{deliver_for, registry, Pattern};
use crate::cluster::{Cluster, PatternFeed};
use crate::delivery::Class;
use crate::error::HubError;
use crate::ids::{RoomName, SessionId};
use actix::prelude::*;
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::OnceLock;
use tokio::sync::watch;

/// This node's subscription to one pattern.
pub(super) struct Sub {
    /// Per Redis (`Cluster::each_redis`).
    tokens: Vec<u64>,
    /// Sessions of this node watching the pattern.
    watchers: usize,
    /// `None` until Redis answered; then whether it subscribed.
    ready: watch::Receiver<Option<bool>>,
}

/// Turns pattern messages into deliveries.
struct Tower {
    c: Cluster,
}

impl Actor for Tower {
    type Context = Context<Self>;
}

fn tower(c: &Cluster) -> Addr<Tower> {
    static T: OnceLock<Addr<Tower>> = OnceLock::new();
    T.get_or_init(|| Tower { c: c.clone() }.start()).clone()
}

/// `s` with Redis glob characters escaped.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn redis_pattern(c: &Cluster, p: &Pattern) -> String {
    format!("{}:{{r:{}}}:c", glob_escape(c.prefix()), p.as_str())
}

/// Adds a watcher of `pattern` on this node: the first one subscribes.
/// Resolves once Redis confirmed the subscription, so nothing published
/// after the answer is missed.
pub fn subscribe(c: &Cluster, pattern: &Pattern) -> impl Future<Output = Result<(), HubError>> {
    let r = registry();
    r.clustered.store(true, Relaxed);
    let mut subs = r.subs.lock().unwrap_or_else(|e| e.into_inner());
    let failed = subs
        .get(pattern)
        .is_some_and(|s| *s.ready.borrow() == Some(false));
    if failed {
        if let Some(old) = subs.remove(pattern) {
            punsubscribe(c, pattern, &old.tokens);
        }
    }
    let sub = subs.entry(pattern.clone()).or_insert_with(|| {
        let (tokens, futs): (Vec<_>, Vec<_>) = c
            .each_redis()
            .iter()
            .map(|r| r.psubscribe(redis_pattern(c, pattern), tower(c).recipient()))
            .unzip();
        let (tx, ready) = watch::channel(None);
        actix::spawn(async move {
            let mut ok = true;
            for f in futs {
                ok &= f.await.is_ok();
            }
            let _ = tx.send(Some(ok));
        });
        Sub {
            tokens,
            watchers: 0,
            ready,
        }
    });
    sub.watchers += 1;
    let mut ready = sub.ready.clone();
    async move {
        match ready.wait_for(Option::is_some).await.map(|v| *v) {
            Ok(Some(true)) => Ok(()),
            _ => Err(crate::cluster::unavailable()),
        }
    }
}

/// A watcher of `pattern` on this node stopped: the last one unsubscribes.
pub fn unsubscribe(c: &Cluster, pattern: &Pattern) {
    let mut subs = registry().subs.lock().unwrap_or_else(|e| e.into_inner());
    let Some(sub) = subs.get_mut(pattern) else {
        return;
    };
    sub.watchers = sub.watchers.saturating_sub(1);
    if sub.watchers == 0 {
        let tokens = std::mem::take(&mut sub.tokens);
        subs.remove(pattern);
        punsubscribe(c, pattern, &tokens);
    }
}

fn punsubscribe(c: &Cluster, pattern: &Pattern, tokens: &[u64]) {
    for (r, token) in c.each_redis().iter().zip(tokens) {
        r.punsubscribe(redis_pattern(c, pattern), *token);
    }
}

/// The next space-separated word of `b`, and the rest.
fn word(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let sp = b.iter().position(|c| *c == b' ')?;
    Some((&b[..sp], &b[sp + 1..]))
}

impl Handler<PatternFeed> for Tower {
    type Result = ();

    fn handle(&mut self, msg: PatternFeed, _: &mut Context<Self>) {
        let head = format!("{}:{{r:", self.c.prefix());
        let room = msg
            .chan
            .strip_prefix(head.as_str())
            .and_then(|s| s.strip_suffix("}:c"))
            .and_then(RoomName::parse);
        let pattern = msg
            .pattern
            .strip_prefix(glob_escape(&head).as_str())
            .and_then(|s| s.strip_suffix("}:c"))
            .and_then(Pattern::parse);
        let (Some(room), Some(pattern)) = (room, pattern) else {
            return;
        };
        let p = &msg.payload;
        let (excluded, frame, class) = match p.first() {
            // `M<seq> <epoch> <excluded> <frame>`
            Some(b'M') => {
                let Some((_, rest)) = word(&p[1..]) else {
                    return;
                };
                let Some((_, rest)) = word(rest) else { return };
                let Some((excluded, frame)) = word(rest) else {
                    return;
                };
                (excluded, frame, Class::Normal)
            }
            // `V<excluded> <frame>`
            Some(b'V') => {
                let Some((excluded, frame)) = word(&p[1..]) else {
                    return;
                };
                (excluded, frame, Class::Volatile)
            }
            _ => return,
        };
        // `node/session`: the sender of an `exclude_self` message.
        let except = std::str::from_utf8(excluded)
            .ok()
            .and_then(|s| s.split_once('/'))
            .filter(|(node, _)| *node == self.c.node())
            .and_then(|(_, s)| s.parse().ok())
            .map(SessionId);
        deliver_for(&pattern, &room, &p.slice_ref(frame), except, class);
    }
}
