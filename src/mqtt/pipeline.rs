//! Publishes on their way to the broker, and the bookkeeping that ties
//! rumqttc's events back to the client waiting for each one.
//!
//! rumqttc does not say which packet id it gave a publish; it reports
//! `Outgoing::Publish(pkid)` when it writes one and `Incoming::PubAck(pkid)`
//! when the broker acknowledges it. Requests are written in the order they are
//! handed over, so each first `Outgoing::Publish` of a new pkid belongs to the
//! oldest publish handed over and not yet written. After a reconnect rumqttc
//! writes the unacknowledged publishes again with their old pkids: those are
//! recognised by being in flight already. Subscribes are tied to their SUBACK
//! the same way.
//!
//! A publish is `queued` (waiting for a connection, or for room in the hand-off
//! window), then `handed` to rumqttc, then `inflight` once written; all three
//! count against the configured bound, so at most that many client publishes
//! wait for the broker and the next one is refused explicitly.

use super::topic::TopicFilter;
use std::collections::{HashMap, VecDeque};

/// Most QoS 1 publishes handed to rumqttc and not yet acknowledged. Kept far
/// below rumqttc's own inflight limit ([`RUMQTT_INFLIGHT`]) so its packet ids
/// never wrap onto one still in flight.
pub const WINDOW: usize = 100;
/// rumqttc's inflight setting (its packet id cycle).
pub const RUMQTT_INFLIGHT: u16 = 1024;

/// One publish for the broker; `reply` is told when it is done.
#[derive(Debug)]
pub struct Outgoing<R> {
    pub topic: String,
    pub payload: Vec<u8>,
    /// QoS 1 when true, else 0.
    pub qos1: bool,
    pub retain: bool,
    pub reply: Option<R>,
}

/// Why a publish was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The bound of waiting publishes is reached.
    Full,
    /// QoS 0 while the broker is away: at most once means now or never.
    Away,
}

pub struct Pipeline<R> {
    bound: usize,
    queued: VecDeque<Outgoing<R>>,
    /// Handed to rumqttc, QoS 1, not yet written (oldest first).
    handed: VecDeque<Option<R>>,
    /// Written, waiting for PUBACK, by pkid.
    inflight: HashMap<u16, Option<R>>,
    /// Subscribes handed over and not yet written; then written, by pkid.
    subs_handed: VecDeque<Vec<TopicFilter>>,
    subs_inflight: HashMap<u16, Vec<TopicFilter>>,
}

impl<R> Pipeline<R> {
    pub fn new(bound: usize) -> Pipeline<R> {
        Pipeline {
            bound: bound.max(1),
            queued: VecDeque::new(),
            handed: VecDeque::new(),
            inflight: HashMap::new(),
            subs_handed: VecDeque::new(),
            subs_inflight: HashMap::new(),
        }
    }

    /// Publishes waiting for the broker.
    pub fn pending(&self) -> usize {
        self.queued.len() + self.handed.len() + self.inflight.len()
    }

    /// Accepts a publish for delivery, or refuses it (giving it back).
    pub fn offer(&mut self, p: Outgoing<R>, connected: bool) -> Result<(), (Refused, Outgoing<R>)> {
        if !p.qos1 && !connected {
            return Err((Refused::Away, p));
        }
        if self.pending() >= self.bound {
            return Err((Refused::Full, p));
        }
        self.queued.push_back(p);
        Ok(())
    }

    /// A publish that must go out now or not at all (health): queued past the
    /// bound, but only while connected.
    pub fn offer_internal(&mut self, p: Outgoing<R>) {
        self.queued.push_back(p);
    }

    /// Hands queued publishes to `hand` (rumqttc's non-blocking `try_publish`)
    /// while the window has room, in order; stops at the first it refuses.
    /// Returns the replies of QoS 0 publishes handed over (they are done).
    pub fn pump(&mut self, mut hand: impl FnMut(&Outgoing<R>) -> bool) -> Vec<R> {
        let mut done = Vec::new();
        while self.handed.len() + self.inflight.len() < WINDOW {
            let Some(p) = self.queued.pop_front() else {
                break;
            };
            if !hand(&p) {
                self.queued.push_front(p);
                break;
            }
            if p.qos1 {
                self.handed.push_back(p.reply);
            } else {
                done.extend(p.reply);
            }
        }
        done
    }

    /// rumqttc wrote a publish with `pkid` (0 for QoS 0).
    pub fn written(&mut self, pkid: u16) {
        if pkid == 0 || self.inflight.contains_key(&pkid) {
            return; // QoS 0, or a retransmission after a reconnect
        }
        if let Some(r) = self.handed.pop_front() {
            self.inflight.insert(pkid, r);
        }
    }

    /// The broker acknowledged `pkid`: that publish is done.
    pub fn acked(&mut self, pkid: u16) -> Option<R> {
        self.inflight.remove(&pkid).flatten()
    }

    /// A subscribe for `filters` was handed to rumqttc.
    pub fn subscribe_handed(&mut self, filters: Vec<TopicFilter>) {
        self.subs_handed.push_back(filters);
    }

    /// rumqttc wrote a subscribe with `pkid`.
    pub fn subscribe_written(&mut self, pkid: u16) {
        if let Some(f) = self.subs_handed.pop_front() {
            self.subs_inflight.insert(pkid, f);
        }
    }

    /// The broker answered subscribe `pkid`: the filters it was for.
    pub fn subscribe_acked(&mut self, pkid: u16) -> Vec<TopicFilter> {
        self.subs_inflight.remove(&pkid).unwrap_or_default()
    }

    /// The connection dropped: written subscribes died with it (the bridge
    /// subscribes again on reconnect); written publishes stay in flight, as
    /// rumqttc writes them again.
    pub fn disconnected(&mut self) {
        self.subs_inflight.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: u32, qos1: bool) -> Outgoing<u32> {
        Outgoing {
            topic: "t".into(),
            payload: vec![],
            qos1,
            retain: false,
            reply: Some(id),
        }
    }

    #[test]
    fn acks_follow_pkids_through_a_reconnect() {
        let mut pl = Pipeline::new(10);
        for i in 1..=3 {
            pl.offer(p(i, true), true).unwrap();
        }
        assert!(pl.pump(|_| true).is_empty());
        pl.written(7);
        pl.written(8);
        assert_eq!(pl.acked(7), Some(1));
        // Connection lost: 8 is rewritten with its pkid, 3 goes out as 9.
        pl.disconnected();
        pl.written(8);
        pl.written(9);
        assert_eq!(pl.acked(9), Some(3));
        assert_eq!(pl.acked(8), Some(2));
        assert_eq!(pl.acked(8), None);
        assert_eq!(pl.pending(), 0);
    }

    #[test]
    fn the_bound_counts_every_waiting_publish() {
        let mut pl = Pipeline::new(3);
        pl.offer(p(1, true), false).unwrap();
        pl.offer(p(2, true), false).unwrap();
        pl.offer(p(3, true), false).unwrap();
        let (why, back) = pl.offer(p(4, true), false).unwrap_err();
        assert_eq!((why, back.reply), (Refused::Full, Some(4)));
        assert_eq!(pl.offer(p(5, false), false).unwrap_err().0, Refused::Away);
        // Handed over but unwritten still counts, and so does inflight.
        pl.pump(|_| true);
        pl.written(1);
        assert_eq!(pl.pending(), 3);
        assert_eq!(pl.offer(p(6, true), true).unwrap_err().0, Refused::Full);
        pl.acked(1);
        pl.offer(p(7, true), true).unwrap();
    }

    #[test]
    fn pump_keeps_order_and_window() {
        let mut pl = Pipeline::new(1000);
        for i in 0..(WINDOW as u32 + 5) {
            pl.offer(p(i, true), true).unwrap();
        }
        let mut refuse_after = 3;
        pl.pump(|_| {
            refuse_after -= 1;
            refuse_after >= 0
        });
        assert_eq!(pl.handed.len(), 3);
        pl.pump(|_| true);
        assert_eq!(pl.handed.len(), WINDOW);
        assert_eq!(pl.queued.len(), 5);
        // QoS 0 is done as soon as it is handed over.
        let mut pl = Pipeline::new(10);
        pl.offer(p(9, false), true).unwrap();
        assert_eq!(pl.pump(|_| true), vec![9]);
        pl.written(0);
        assert_eq!(pl.pending(), 0);
    }

    #[test]
    fn subscribes_are_tied_to_their_suback() {
        let mut pl: Pipeline<u32> = Pipeline::new(1);
        let f = |s: &str| TopicFilter::parse(s).unwrap();
        pl.subscribe_handed(vec![f("a/#")]);
        pl.subscribe_handed(vec![f("b"), f("c")]);
        pl.subscribe_written(4);
        pl.disconnected();
        pl.subscribe_written(1);
        assert!(pl.subscribe_acked(4).is_empty());
        assert_eq!(pl.subscribe_acked(1), vec![f("b"), f("c")]);
    }
}
