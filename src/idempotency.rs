//! Idempotency keys of a room: a publish carrying a key the room accepted
//! within the window is answered with the first message's seq and not
//! delivered or stored again. The keys travel with the room's `History`
//! (into the idle LRU and back); stored rooms keep each key with its
//! message, so a restart reads them back (`Db::load_room`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Longest `idempotency_key` accepted, in bytes.
pub const MAX_KEY_LEN: usize = 128;

/// A client's idempotency key: 1 to `MAX_KEY_LEN` bytes of any text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdemKey(Arc<str>);

impl IdemKey {
    pub fn parse(raw: &str) -> Result<IdemKey, String> {
        if raw.is_empty() || raw.len() > MAX_KEY_LEN {
            return Err(format!(
                "idempotency_key must be 1 to {MAX_KEY_LEN} bytes long"
            ));
        }
        Ok(IdemKey(raw.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How long, and how many, keys a room remembers
/// (`SWITCHBOARD_IDEMPOTENCY_MS`, `SWITCHBOARD_IDEMPOTENCY_KEYS`).
/// A window of 0 turns keys off: they are accepted and ignored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KeyLimits {
    pub window_ms: u64,
    pub keys: usize,
}

impl Default for KeyLimits {
    fn default() -> KeyLimits {
        KeyLimits {
            window_ms: 300_000,
            keys: 1000,
        }
    }
}

/// The keys a room accepted recently: key → (seq, ts), and the keys in the
/// order they were accepted, for expiry and the count bound.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    seen: HashMap<IdemKey, (u64, u64)>,
    order: VecDeque<(u64, IdemKey)>,
}

impl Keys {
    /// The seq of the message that was published with `key` within the
    /// window, if any.
    pub fn get(&mut self, key: &IdemKey, now_ms: u64, limits: KeyLimits) -> Option<u64> {
        self.expire(now_ms, limits);
        self.seen.get(key).map(|e| e.0)
    }

    /// Remembers that message `seq` (stamped `ts`) was published with `key`.
    pub fn insert(&mut self, key: IdemKey, seq: u64, ts: u64, limits: KeyLimits) {
        if limits.window_ms == 0 || limits.keys == 0 {
            return;
        }
        self.order.push_back((seq, key.clone()));
        self.seen.insert(key, (seq, ts));
        while self.order.len() > limits.keys {
            self.pop_oldest();
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Forgets keys accepted more than the window ago (the oldest first).
    fn expire(&mut self, now_ms: u64, limits: KeyLimits) {
        while let Some((_, key)) = self.order.front() {
            let ts = self.seen.get(key).map_or(0, |e| e.1);
            if ts.saturating_add(limits.window_ms) > now_ms {
                break;
            }
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((seq, key)) = self.order.pop_front() {
            // Only the entry this slot put there: a key may come back after
            // it expired, with a newer seq.
            if self.seen.get(&key).is_some_and(|e| e.0 == seq) {
                self.seen.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> IdemKey {
        IdemKey::parse(s).unwrap()
    }

    const L: KeyLimits = KeyLimits {
        window_ms: 1000,
        keys: 3,
    };

    #[test]
    fn keys_are_bounded_in_length() {
        assert!(IdemKey::parse("").is_err());
        assert!(IdemKey::parse(&"x".repeat(MAX_KEY_LEN)).is_ok());
        assert!(IdemKey::parse(&"x".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    #[test]
    fn a_key_answers_its_seq_until_the_window_ends() {
        let mut keys = Keys::default();
        keys.insert(k("a"), 7, 100, L);
        assert_eq!(keys.get(&k("a"), 100, L), Some(7));
        assert_eq!(keys.get(&k("a"), 1099, L), Some(7));
        assert_eq!(keys.get(&k("b"), 1099, L), None);
        assert_eq!(keys.get(&k("a"), 1100, L), None);
        assert!(keys.is_empty());
        // Back after expiry, with a new seq.
        keys.insert(k("a"), 9, 1200, L);
        assert_eq!(keys.get(&k("a"), 1200, L), Some(9));
    }

    #[test]
    fn the_oldest_keys_go_past_the_bound() {
        let mut keys = Keys::default();
        for (i, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
            keys.insert(k(key), i as u64 + 1, 0, L);
        }
        assert_eq!(keys.len(), 3);
        assert_eq!(keys.get(&k("a"), 0, L), None);
        assert_eq!(keys.get(&k("d"), 0, L), Some(4));
    }

    #[test]
    fn a_zero_window_keeps_nothing() {
        let mut keys = Keys::default();
        let off = KeyLimits {
            window_ms: 0,
            keys: 10,
        };
        keys.insert(k("a"), 1, 0, off);
        assert_eq!(keys.get(&k("a"), 0, off), None);
    }
}
