//! Shared state: a versioned key/value map per room (`state:*` frames, the
//! REST routes under `/api/rooms/{room}/state`). This module is the map and
//! its rules, with no actor or storage in it: the Room actor owns one
//! (`src/room/state.rs`), the database or Redis keeps it.
//!
//! Versions are one counter per room (`rev`): every accepted write (set,
//! delete, expiry) takes the next number and that is the key's new
//! version. So a version is never given twice in a room, not even to a
//! key deleted and created again, and a compare-and-set on a stale version
//! can never succeed by coincidence.

pub mod wire;

use crate::error::ErrorCode;
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Longest key the parser accepts whatever the setting (the setting,
/// `SWITCHBOARD_STATE_MAX_KEY_LEN`, may only lower it).
pub const KEY_LEN_CAP: usize = 1024;
/// Longest `ttl_ms`: 30 days.
pub const MAX_TTL_MS: u64 = 30 * 24 * 3600 * 1000;

/// The bounds of a room's state (documented settings).
#[derive(Debug, Clone, Copy)]
pub struct StateLimits {
    /// `SWITCHBOARD_STATE_MAX_KEYS`: keys per room.
    pub max_keys: usize,
    /// `SWITCHBOARD_STATE_MAX_VALUE_BYTES`: bytes of one value's JSON text.
    pub max_value_bytes: usize,
    /// `SWITCHBOARD_STATE_MAX_KEY_LEN`: bytes of a key.
    pub max_key_len: usize,
}

impl Default for StateLimits {
    fn default() -> StateLimits {
        StateLimits {
            max_keys: 1000,
            max_value_bytes: 16384,
            max_key_len: 128,
        }
    }
}

/// Key syntax: 1 to `KEY_LEN_CAP` bytes of `A-Z a-z 0-9 _ - . : @`, so a
/// key is safe in a URL path, a Redis field and a JSON string as it is.
pub fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= KEY_LEN_CAP
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'@'))
}

/// One key's current value.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Box<RawValue>,
    pub version: u64,
    /// `{"user","name"}` of who wrote it.
    pub by: Box<RawValue>,
    pub ts: u64,
    /// When it expires (ms since the epoch), for keys set with `ttl_ms`.
    pub expires: Option<u64>,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

/// A write asked for: a set (`value`) or a delete (`None`), accepted only
/// if `version` is the key's current version (0: the key must not exist).
#[derive(Debug)]
pub struct Write {
    pub key: String,
    pub value: Option<Box<RawValue>>,
    pub version: u64,
    pub ttl_ms: Option<u64>,
}

/// An accepted change, as applied by every copy of the map.
#[derive(Debug, Clone)]
pub struct Change {
    pub key: String,
    pub version: u64,
    /// The new entry; `None` for a delete or an expiry.
    pub entry: Option<Entry>,
    /// Who deleted it (`None` for an expiry).
    pub by: Option<Box<RawValue>>,
    pub ts: u64,
    pub expired: bool,
}

/// Why a write was refused.
#[derive(Debug)]
pub enum Refusal {
    /// The key's version is not the one the write was based on: its
    /// current value (none when absent) and version (0 when absent).
    Conflict {
        version: u64,
        value: Option<Box<RawValue>>,
    },
    Other(ErrorCode, String),
}

/// A room's state.
#[derive(Debug, Clone, Default)]
pub struct StateMap {
    entries: BTreeMap<String, Entry>,
    /// The last version given out in the room.
    pub rev: u64,
}

impl StateMap {
    pub fn new(rev: u64, entries: impl IntoIterator<Item = (String, Entry)>) -> StateMap {
        StateMap {
            entries: entries.into_iter().collect(),
            rev,
        }
    }

    /// The key's entry unless it is absent or expired.
    pub fn get(&self, key: &str, now: u64) -> Option<&Entry> {
        self.entries.get(key).filter(|e| e.live(now))
    }

    /// Checks a write against the bounds and the key's version.
    pub fn check(&self, w: &Write, limits: &StateLimits, now: u64) -> Result<(), Refusal> {
        if w.key.len() > limits.max_key_len {
            let m = format!("keys are at most {} bytes", limits.max_key_len);
            return Err(Refusal::Other(ErrorCode::BadRequest, m));
        }
        if let Some(v) = &w.value {
            if v.get().len() > limits.max_value_bytes {
                let m = format!("values are at most {} bytes", limits.max_value_bytes);
                return Err(Refusal::Other(ErrorCode::TooLarge, m));
            }
        }
        let current = self.get(&w.key, now);
        let version = current.map_or(0, |e| e.version);
        if version != w.version {
            return Err(Refusal::Conflict {
                version,
                value: current.map(|e| e.value.clone()),
            });
        }
        if w.value.is_some() && current.is_none() && self.live_count(now) >= limits.max_keys {
            let m = format!("a room has at most {} keys", limits.max_keys);
            return Err(Refusal::Other(ErrorCode::TooManyKeys, m));
        }
        Ok(())
    }

    fn live_count(&self, now: u64) -> usize {
        self.entries.values().filter(|e| e.live(now)).count()
    }

    /// The change an accepted write makes, with the next version.
    pub fn change(&self, w: Write, by: Box<RawValue>, now: u64) -> Change {
        let version = self.rev + 1;
        let entry = w.value.map(|value| Entry {
            value,
            version,
            by: by.clone(),
            ts: now,
            expires: w.ttl_ms.map(|t| now.saturating_add(t)),
        });
        let deleted = entry.is_none();
        Change {
            key: w.key,
            version,
            entry,
            by: deleted.then_some(by),
            ts: now,
            expired: false,
        }
    }

    /// Applies a change; one at or below `rev` is stale and ignored
    /// (answers whether it was applied).
    pub fn apply(&mut self, c: &Change) -> bool {
        if c.version <= self.rev {
            return false;
        }
        self.rev = c.version;
        match &c.entry {
            Some(e) => {
                self.entries.insert(c.key.clone(), e.clone());
            }
            None => {
                self.entries.remove(&c.key);
            }
        }
        true
    }

    /// Keys whose time is up, with their versions.
    pub fn due(&self, now: u64) -> Vec<(String, u64)> {
        self.entries
            .iter()
            .filter(|(_, e)| !e.live(now))
            .map(|(k, e)| (k.clone(), e.version))
            .collect()
    }

    /// The expiry of `key` at `version`, as a change with the next version.
    pub fn expiry(&self, key: &str, now: u64) -> Change {
        Change {
            key: key.to_string(),
            version: self.rev + 1,
            entry: None,
            by: None,
            ts: now,
            expired: true,
        }
    }

    /// The earliest expiry.
    pub fn next_expiry(&self) -> Option<u64> {
        self.entries.values().filter_map(|e| e.expires).min()
    }

    /// Live entries (all, or those of `keys`), by key.
    pub fn live<'a>(
        &'a self,
        keys: Option<&'a [String]>,
        now: u64,
    ) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
        self.entries
            .iter()
            .filter(move |(k, e)| e.live(now) && keys.is_none_or(|ks| ks.contains(k)))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// An entry as clients see it, in `state:snapshot` and the REST answers.
#[derive(Serialize)]
pub struct EntryOut<'a> {
    pub key: &'a str,
    pub value: &'a RawValue,
    pub version: u64,
    pub by: &'a RawValue,
    pub ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

impl<'a> EntryOut<'a> {
    pub fn of(key: &'a str, e: &'a Entry) -> EntryOut<'a> {
        EntryOut {
            key,
            value: &e.value,
            version: e.version,
            by: &e.by,
            ts: e.ts,
            expires: e.expires,
        }
    }
}

#[derive(Serialize)]
struct Snapshot<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    room: &'a str,
    rev: u64,
    entries: Vec<EntryOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
}

/// `state:snapshot`: the live entries (of `keys`, when given).
pub fn snapshot_frame(
    room: &str,
    map: &StateMap,
    keys: Option<&[String]>,
    now: u64,
    id: Option<&str>,
) -> Bytes {
    let entries = map
        .live(keys, now)
        .map(|(k, e)| EntryOut::of(k, e))
        .collect();
    encode(&Snapshot {
        ty: "state:snapshot",
        room,
        rev: map.rev,
        entries,
        id,
    })
}

/// `state:update` as clients see it (and as it crosses Redis).
#[derive(Serialize, serde::Deserialize)]
pub struct UpdateWire<'a> {
    #[serde(rename = "type")]
    pub ty: std::borrow::Cow<'a, str>,
    pub room: std::borrow::Cow<'a, str>,
    pub key: String,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub value: Option<&'a RawValue>,
    pub version: u64,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub by: Option<&'a RawValue>,
    pub ts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
}

/// The `state:update` frame of a change.
pub fn update_frame(room: &str, c: &Change) -> Bytes {
    let (value, by, expires) = match &c.entry {
        Some(e) => (Some(&*e.value), Some(&*e.by), e.expires),
        None => (None, c.by.as_deref(), None),
    };
    encode(&UpdateWire {
        ty: "state:update".into(),
        room: room.into(),
        key: c.key.clone(),
        value,
        version: c.version,
        by,
        ts: c.ts,
        expires,
        deleted: c.entry.is_none(),
        expired: c.expired,
    })
}

/// Reads a `state:update` frame back into a change (Redis's channel).
pub fn change_of(frame: &[u8]) -> Option<Change> {
    let w: UpdateWire = serde_json::from_slice(frame).ok()?;
    if w.ty != "state:update" || !valid_key(&w.key) {
        return None;
    }
    let entry = match (w.deleted, w.value, w.by) {
        (false, Some(v), Some(by)) => Some(Entry {
            value: v.to_owned(),
            version: w.version,
            by: by.to_owned(),
            ts: w.ts,
            expires: w.expires,
        }),
        (true, _, _) => None,
        _ => return None,
    };
    Some(Change {
        key: w.key,
        version: w.version,
        by: if entry.is_none() {
            w.by.map(|b| b.to_owned())
        } else {
            None
        },
        entry,
        ts: w.ts,
        expired: w.expired,
    })
}

#[derive(Serialize)]
struct ConflictWire<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    code: &'static str,
    message: &'a str,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
    room: &'a str,
    key: &'a str,
    version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a RawValue>,
}

/// The `error` `version_conflict` frame: the key's current value and version.
pub fn conflict_frame(
    room: &str,
    key: &str,
    version: u64,
    value: Option<&RawValue>,
    id: Option<&str>,
) -> Bytes {
    crate::metrics::METRICS.error(ErrorCode::VersionConflict);
    let message = if version == 0 {
        "the key does not exist (version 0)"
    } else {
        "the key has another version; merge with its value and retry"
    };
    encode(&ConflictWire {
        ty: "error",
        code: ErrorCode::VersionConflict.as_str(),
        message,
        reference: id,
        room,
        key,
        version,
        value,
    })
}

/// `ack` of an accepted write: the key's new version.
pub fn ack_frame(id: &str, version: u64) -> Bytes {
    #[derive(Serialize)]
    struct Ack<'a> {
        #[serde(rename = "type")]
        ty: &'static str,
        id: &'a str,
        version: u64,
    }
    encode(&Ack {
        ty: "ack",
        id,
        version,
    })
}

fn encode<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    fn set(key: &str, value: &str, version: u64) -> Write {
        Write {
            key: key.into(),
            value: Some(raw(value)),
            version,
            ttl_ms: None,
        }
    }

    #[test]
    fn versions_are_compared_and_never_reused() {
        let (l, mut m) = (StateLimits::default(), StateMap::default());
        m.check(&set("a", "1", 0), &l, 0).unwrap();
        let c = m.change(set("a", "1", 0), raw("{}"), 0);
        assert!(m.apply(&c));
        assert_eq!(m.get("a", 0).unwrap().version, 1);
        assert!(matches!(
            m.check(&set("a", "2", 0), &l, 0),
            Err(Refusal::Conflict { version: 1, .. })
        ));
        let del = Write {
            key: "a".into(),
            value: None,
            version: 1,
            ttl_ms: None,
        };
        m.check(&del, &l, 0).unwrap();
        let c = m.change(del, raw("{}"), 0);
        assert!(m.apply(&c));
        // Created again: a new version, so a write based on version 1 fails.
        let c = m.change(set("a", "3", 0), raw("{}"), 0);
        assert!(m.apply(&c));
        assert_eq!(m.get("a", 0).unwrap().version, 3);
        assert!(m.check(&set("a", "4", 1), &l, 0).is_err());
        assert!(!m.apply(&c), "a stale change is not applied twice");
    }

    #[test]
    fn expired_keys_are_absent_and_bounds_hold() {
        let l = StateLimits {
            max_keys: 1,
            max_value_bytes: 4,
            max_key_len: 3,
        };
        let mut m = StateMap::default();
        let mut w = set("t", "1", 0);
        w.ttl_ms = Some(10);
        let c = m.change(w, raw("{}"), 100);
        m.apply(&c);
        assert!(m.get("t", 105).is_some() && m.get("t", 110).is_none());
        assert_eq!(m.due(110), vec![("t".to_string(), 1)]);
        assert!(matches!(
            m.check(&set("u", "1", 0), &l, 105),
            Err(Refusal::Other(ErrorCode::TooManyKeys, _))
        ));
        assert!(m.check(&set("u", "1", 0), &l, 110).is_ok());
        assert!(matches!(
            m.check(&set("u", "12345", 0), &l, 110),
            Err(Refusal::Other(ErrorCode::TooLarge, _))
        ));
        assert!(matches!(
            m.check(&set("long", "1", 0), &l, 110),
            Err(Refusal::Other(ErrorCode::BadRequest, _))
        ));
    }

    #[test]
    fn an_update_frame_reads_back_into_its_change() {
        let m = StateMap::default();
        let c = m.change(
            set("k", r#"{"a":[1,2]}"#, 0),
            raw(r#"{"user":"u","name":"U"}"#),
            7,
        );
        let f = update_frame("r", &c);
        let back = change_of(&f).unwrap();
        assert_eq!(back.version, 1);
        assert_eq!(back.entry.unwrap().value.get(), r#"{"a":[1,2]}"#);
        let e = m.expiry("k", 9);
        let back = change_of(&update_frame("r", &e)).unwrap();
        assert!(back.entry.is_none() && back.expired);
    }
}
