//! Validated names and counter-based ids. Everything that names a room or a
//! user is parsed once, at the edge, into these types.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Longest room or user name we accept, in bytes (all allowed chars are ASCII).
pub const MAX_NAME_LEN: usize = 64;

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'@'))
}

/// Longest user id (a token's `sub`), in bytes of UTF-8.
pub const MAX_USER_ID_LEN: usize = 128;

/// A user id is any 1–128 bytes of UTF-8 without whitespace or control
/// characters, so the `sub` of real identity providers (`auth0|abc`, UUIDs,
/// e-mail addresses) fits unchanged, while `alice` and `alice ` stay one user.
fn valid_user_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_USER_ID_LEN
        && !s.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// The prefix of personal room names.
const PERSONAL_PREFIX: &str = "user:";

/// A room name: 1–64 characters from `A-Z a-z 0-9 _ - . : @`, or
/// `user:<id>`, the personal room of user `<id>`, for any valid user id.
/// The owner is everything after the first `user:`, so no character of an
/// id (`|`, `:`, `@`, …) can make a personal room name mean another user.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(Arc<str>);

impl RoomName {
    pub fn parse(s: &str) -> Option<RoomName> {
        let ok = valid_name(s) || s.strip_prefix(PERSONAL_PREFIX).is_some_and(valid_user_id);
        ok.then(|| RoomName(Arc::from(s)))
    }
    pub fn personal(user: &UserId) -> RoomName {
        // A user id is at most 128 bytes; the personal room may be up to 133.
        RoomName(Arc::from(format!("{PERSONAL_PREFIX}{}", user.as_str())))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The owner if this is a personal room `user:<id>`.
    pub fn personal_owner(&self) -> Option<&str> {
        self.0.strip_prefix(PERSONAL_PREFIX)
    }
}

/// A user id: the JWT `sub` (see [`valid_user_id`]), or `guest-<random>` for guests.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Arc<str>);

impl UserId {
    pub fn parse(s: &str) -> Option<UserId> {
        valid_user_id(s).then(|| UserId(Arc::from(s)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Is this one of the ids the hub gives guests (`guest-<random>`)?
    pub fn is_guest(&self) -> bool {
        is_guest_id(&self.0)
    }
}

/// The prefix of guests' ids. A token's `sub` may not start with it (in any
/// case), so no token holder can take a guest's id, its personal room or its
/// direct messages, nor be treated as a guest.
pub const GUEST_PREFIX: &str = "guest-";

/// Does `id` start with [`GUEST_PREFIX`], ignoring case?
pub fn is_guest_id(id: &str) -> bool {
    id.get(..GUEST_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(GUEST_PREFIX))
}

/// Why a token's `sub` cannot be a user id, if it cannot.
pub fn sub_problem(sub: &str) -> Option<&'static str> {
    if !valid_user_id(sub) {
        Some("token `sub` must be 1-128 bytes without whitespace or control characters")
    } else if is_guest_id(sub) {
        Some("token `sub` may not start with `guest-`: those ids are the hub's guests'")
    } else {
        None
    }
}

/// A connection's id, unique for the life of the process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct SessionId(pub u64);

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

impl SessionId {
    pub fn next() -> SessionId {
        SessionId(NEXT_SESSION.fetch_add(1, Ordering::Relaxed))
    }
}

macro_rules! show_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(&self.0) }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { write!(f, "{:?}", &*self.0) }
        }
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> { s.serialize_str(&self.0) }
        }
    )*};
}
show_as_str!(RoomName, UserId);
/// Also for other validated names (MQTT topics): `Display`, `Debug`, `Serialize` as the string.
pub(crate) use show_as_str;

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// This node's id when nodes share state through Redis: session addresses
/// then name it (`s<n>@<node>`), so they are unique cluster-wide.
static NODE: std::sync::OnceLock<Box<str>> = std::sync::OnceLock::new();

/// Names this node in session addresses (called once, when the cluster starts).
pub fn set_node(node: &str) {
    let _ = NODE.set(node.into());
}

/// This node's id, with several nodes.
pub fn node() -> Option<&'static str> {
    NODE.get().map(|n| &**n)
}

/// Where a session can be reached: `s<n>` on one node, `s<n>@<node>` with
/// several. What `connected.session` and member lists show, and what
/// `signal.to` names.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct SessionAddr {
    pub session: SessionId,
    /// `None`: this node (single-node addresses carry no node).
    pub node: Option<Box<str>>,
}

impl SessionAddr {
    /// A session of this node.
    pub fn here(session: SessionId) -> SessionAddr {
        SessionAddr {
            session,
            node: NODE.get().cloned(),
        }
    }

    /// Reads `s<n>` or `s<n>@<node>` (a node id: 1-64 of `A-Za-z0-9_.-`).
    pub fn parse(s: &str) -> Option<SessionAddr> {
        let rest = s.strip_prefix('s')?;
        let (n, node) = match rest.split_once('@') {
            Some((n, node)) => (n, Some(node)),
            None => (rest, None),
        };
        if n.is_empty() || n.len() > 19 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let ok_node = |v: &str| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        };
        if node.is_some_and(|v| !ok_node(v)) {
            return None;
        }
        Some(SessionAddr {
            session: SessionId(n.parse().ok()?),
            node: node.map(Into::into),
        })
    }

    /// Whether it names a session of this node.
    pub fn is_here(&self) -> bool {
        self.node.as_deref() == NODE.get().map(|n| &**n)
    }
}

impl fmt::Display for SessionAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(node) => write!(f, "s{}@{node}", self.session.0),
            None => write!(f, "s{}", self.session.0),
        }
    }
}

impl serde::Serialize for SessionAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SessionAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<str>>::deserialize(d)?;
        SessionAddr::parse(&s).ok_or_else(|| serde::de::Error::custom("not a session id"))
    }
}

/// `n` random bytes as lowercase hex (OS randomness).
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // getrandom only fails when the OS has no entropy source at all; fall back
    // to the clock so ids stay distinct rather than aborting the process.
    if getrandom::getrandom(&mut buf).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_addresses_round_trip_and_refuse_junk() {
        for ok in ["s1", "s42@node-a", "s7@a.b_c"] {
            assert_eq!(SessionAddr::parse(ok).unwrap().to_string(), ok);
        }
        for bad in [
            "",
            "s",
            "1",
            "sx",
            "s1@",
            "s1@a b",
            "s-1",
            "s99999999999999999999",
            "s1@é",
        ] {
            assert!(SessionAddr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn names_are_validated() {
        assert!(RoomName::parse("general").is_some());
        assert!(RoomName::parse("team-a.b:c@d_e").is_some());
        assert!(RoomName::parse("").is_none());
        assert!(RoomName::parse("has space").is_none());
        assert!(RoomName::parse("ünïcode").is_none());
        assert!(RoomName::parse(&"x".repeat(65)).is_none());
        assert!(RoomName::parse(&"x".repeat(64)).is_some());
        let u = UserId::parse("alice").unwrap();
        assert_eq!(RoomName::personal(&u).personal_owner(), Some("alice"));
    }

    #[test]
    fn provider_subs_are_user_ids_with_personal_rooms() {
        for sub in [
            "auth0|abc",
            "google-oauth2|1234",
            "a@b.example",
            "x:y",
            "12345",
            "Zoë.O'Neil",
            "ü",
        ] {
            let u = UserId::parse(sub).unwrap_or_else(|| panic!("{sub}"));
            let room = RoomName::personal(&u);
            let parsed = RoomName::parse(room.as_str()).expect("personal room parses back");
            assert_eq!(parsed.personal_owner(), Some(sub));
        }
        // `user:user:x` is the room of user `user:x`, never of `x`.
        let r = RoomName::parse("user:user:x").unwrap();
        assert_eq!(r.personal_owner(), Some("user:x"));
        assert!(UserId::parse("").is_none());
        assert!(UserId::parse("a\nb").is_none());
        assert!(UserId::parse("a b").is_none());
        assert!(UserId::parse(&"x".repeat(129)).is_none());
        assert!(UserId::parse(&"x".repeat(128)).is_some());
        // Only personal rooms get the wider charset.
        assert!(RoomName::parse("team|a").is_none());
        assert!(RoomName::parse("user:auth0|abc").is_some());
        assert!(sub_problem("auth0|abc").is_none());
        assert!(sub_problem("Guest-1").is_some());
    }

    #[test]
    fn random_hex_has_length_and_differs() {
        let a = random_hex(8);
        assert_eq!(a.len(), 16);
        assert_ne!(a, random_hex(8));
    }
}
