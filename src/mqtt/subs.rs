//! Who wants which MQTT messages: the configured filters (subscriptions and
//! room mappings) and each session's `mqtt:subscribe` filters, and from them
//! the set the bridge holds at the broker: the minimal cover of all wanted
//! filters, so that overlapping filters never bring a message twice.

use super::topic::{minimal_cover, TopicFilter};
use crate::ids::SessionId;
use std::collections::{BTreeSet, HashMap, HashSet};

/// What to change at the broker.
#[derive(Debug, Default, PartialEq)]
pub struct Change {
    pub subscribe: Vec<TopicFilter>,
    pub unsubscribe: Vec<TopicFilter>,
}

/// Why a session's filter was not added or removed.
#[derive(Debug, PartialEq)]
pub enum SubError {
    TooMany(usize),
    NotSubscribed,
}

pub struct Subscriptions<T> {
    configured: Vec<TopicFilter>,
    /// filter → the sessions that asked for it, with what reaches them.
    clients: HashMap<TopicFilter, HashMap<SessionId, T>>,
    by_session: HashMap<SessionId, HashSet<TopicFilter>>,
    /// What the bridge asked the broker for.
    broker: BTreeSet<TopicFilter>,
    /// What the broker confirmed on this connection.
    active: HashSet<TopicFilter>,
    per_session: usize,
}

impl<T: Clone> Subscriptions<T> {
    pub fn new(configured: Vec<TopicFilter>, per_session: usize) -> Subscriptions<T> {
        let broker = minimal_cover(&configured).into_iter().collect();
        Subscriptions {
            configured,
            clients: HashMap::new(),
            by_session: HashMap::new(),
            broker,
            active: HashSet::new(),
            per_session,
        }
    }

    /// Every filter held at the broker (to subscribe to after connecting).
    pub fn broker(&self) -> Vec<TopicFilter> {
        self.broker.iter().cloned().collect()
    }

    pub fn broker_len(&self) -> usize {
        self.broker.len()
    }

    fn rediff(&mut self) -> Change {
        let wanted = self.configured.iter().chain(self.clients.keys());
        let next: BTreeSet<TopicFilter> = minimal_cover(wanted).into_iter().collect();
        let change = Change {
            subscribe: next.difference(&self.broker).cloned().collect(),
            unsubscribe: self.broker.difference(&next).cloned().collect(),
        };
        for f in &change.unsubscribe {
            self.active.remove(f);
        }
        self.broker = next;
        change
    }

    /// Adds a session's filter (again: no change).
    pub fn add(
        &mut self,
        session: SessionId,
        filter: TopicFilter,
        to: T,
    ) -> Result<Change, SubError> {
        let mine = self.by_session.entry(session).or_default();
        if !mine.contains(&filter) && mine.len() >= self.per_session {
            let n = self.per_session;
            if mine.is_empty() {
                self.by_session.remove(&session);
            }
            return Err(SubError::TooMany(n));
        }
        mine.insert(filter.clone());
        self.clients.entry(filter).or_default().insert(session, to);
        Ok(self.rediff())
    }

    pub fn remove(&mut self, session: SessionId, filter: &TopicFilter) -> Result<Change, SubError> {
        let mine = self
            .by_session
            .get_mut(&session)
            .ok_or(SubError::NotSubscribed)?;
        if !mine.remove(filter) {
            return Err(SubError::NotSubscribed);
        }
        if mine.is_empty() {
            self.by_session.remove(&session);
        }
        if let Some(s) = self.clients.get_mut(filter) {
            s.remove(&session);
            if s.is_empty() {
                self.clients.remove(filter);
            }
        }
        Ok(self.rediff())
    }

    /// A session ended: forget all its filters.
    pub fn remove_session(&mut self, session: SessionId) -> Change {
        for f in self.by_session.remove(&session).unwrap_or_default() {
            if let Some(s) = self.clients.get_mut(&f) {
                s.remove(&session);
                if s.is_empty() {
                    self.clients.remove(&f);
                }
            }
        }
        self.rediff()
    }

    /// Each session with a filter matching `topic`, once.
    pub fn targets(&self, topic: &str) -> Vec<T> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (filter, sessions) in &self.clients {
            if filter.matches(topic) {
                for (s, t) in sessions {
                    if seen.insert(*s) {
                        out.push(t.clone());
                    }
                }
            }
        }
        out
    }

    /// The broker confirmed (or refused) these filters.
    pub fn confirmed(&mut self, filter: &TopicFilter, ok: bool) {
        if ok && self.broker.contains(filter) {
            self.active.insert(filter.clone());
        } else {
            self.active.remove(filter);
        }
    }

    /// The connection dropped: nothing is active until resubscribed.
    pub fn disconnected(&mut self) {
        self.active.clear();
    }

    /// Is `filter` covered by a subscription the broker has confirmed?
    pub fn is_active(&self, filter: &TopicFilter) -> bool {
        self.active.iter().any(|a| a.covers(filter))
    }

    pub fn session_filters(&self, session: SessionId) -> usize {
        self.by_session.get(&session).map_or(0, |s| s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> TopicFilter {
        TopicFilter::parse(s).unwrap()
    }

    #[test]
    fn broker_set_follows_clients() {
        let mut s: Subscriptions<u32> = Subscriptions::new(vec![f("alicia/+/+"), f("alicia/#")], 2);
        assert_eq!(s.broker(), vec![f("alicia/#")]);
        // Covered by a configured filter: nothing to do at the broker.
        assert_eq!(
            s.add(SessionId(1), f("alicia/k/t"), 1).unwrap(),
            Change::default()
        );
        let c = s.add(SessionId(1), f("sensors/+"), 1).unwrap();
        assert_eq!(c.subscribe, vec![f("sensors/+")]);
        assert_eq!(
            s.add(SessionId(1), f("x"), 1).unwrap_err(),
            SubError::TooMany(2)
        );
        // A wider filter replaces a narrower one.
        let c = s.add(SessionId(2), f("sensors/#"), 2).unwrap();
        assert_eq!(
            (c.subscribe, c.unsubscribe),
            (vec![f("sensors/#")], vec![f("sensors/+")])
        );
        let c = s.remove_session(SessionId(2));
        assert_eq!(
            (c.subscribe, c.unsubscribe),
            (vec![f("sensors/+")], vec![f("sensors/#")])
        );
        assert_eq!(
            s.remove(SessionId(2), &f("sensors/#")).unwrap_err(),
            SubError::NotSubscribed
        );
        let c = s.remove(SessionId(1), &f("sensors/+")).unwrap();
        assert_eq!(c.unsubscribe, vec![f("sensors/+")]);
        assert_eq!(s.broker(), vec![f("alicia/#")]);
    }

    #[test]
    fn each_session_is_a_target_once() {
        let mut s: Subscriptions<u32> = Subscriptions::new(vec![], 10);
        s.add(SessionId(1), f("a/#"), 1).unwrap();
        s.add(SessionId(1), f("a/+"), 1).unwrap();
        s.add(SessionId(2), f("a/b"), 2).unwrap();
        s.add(SessionId(3), f("c"), 3).unwrap();
        let mut t = s.targets("a/b");
        t.sort();
        assert_eq!(t, vec![1, 2]);
        assert!(s.targets("z").is_empty());
    }

    #[test]
    fn activity_is_per_connection() {
        let mut s: Subscriptions<u32> = Subscriptions::new(vec![f("a/#")], 10);
        assert!(!s.is_active(&f("a/b")));
        s.confirmed(&f("a/#"), true);
        assert!(s.is_active(&f("a/b")));
        s.disconnected();
        assert!(!s.is_active(&f("a/b")));
    }
}
