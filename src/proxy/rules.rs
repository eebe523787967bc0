//! Room-pattern rules (`SWITCHBOARD_ROOM_RULES`, as Centrifugo's namespaces):
//! per room pattern, whether clients may publish, whether presence is shown,
//! how much history is kept, whether joins go through the subscribe hook.
//! A JSON array, checked at start; the first rule whose pattern matches a
//! room applies to it, whole (rules are not merged).

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoomRule {
    /// A room pattern (`*` wildcard), e.g. `announce-*`.
    pub rooms: String,
    /// Only admin and service connections and the REST API may publish;
    /// other clients get `forbidden`.
    #[serde(default)]
    pub read_only: bool,
    /// `false`: member lists are empty and no join/leave is announced.
    #[serde(default = "yes")]
    pub presence: bool,
    /// Messages kept in memory for replay (overrides `SWITCHBOARD_HISTORY_SIZE`);
    /// `0`: nothing is stored and only the last message is kept (for `seq`).
    #[serde(default)]
    pub history: Option<usize>,
    /// Joins go through `SWITCHBOARD_PROXY_SUBSCRIBE_URL` (which must be set).
    #[serde(default)]
    pub subscribe_hook: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default)]
pub struct RoomRules(Vec<RoomRule>);

impl RoomRules {
    /// Parses `SWITCHBOARD_ROOM_RULES`; `subscribe_url`: whether a subscribe hook is set.
    pub fn parse(text: Option<&str>, subscribe_url: bool) -> Result<RoomRules, String> {
        let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(RoomRules::default());
        };
        let name = "SWITCHBOARD_ROOM_RULES";
        let rules: Vec<RoomRule> = serde_json::from_str(text).map_err(|e| {
            format!("{name}: {e} (expected a JSON array like [{{\"rooms\":\"news-*\",\"read_only\":true}}])")
        })?;
        for r in &rules {
            let ok = !r.rooms.is_empty()
                && r.rooms.len() <= 64
                && r.rooms
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.:@*".contains(&b));
            if !ok {
                return Err(format!("{name}: {:?} is not a room pattern", r.rooms));
            }
            if r.subscribe_hook && !subscribe_url {
                return Err(format!(
                    "{name}: rule {:?} sends joins to the subscribe hook, but SWITCHBOARD_PROXY_SUBSCRIBE_URL is not set",
                    r.rooms
                ));
            }
            if r.history.is_some_and(|h| h > 1_000_000) {
                return Err(format!(
                    "{name}: rule {:?}: history is at most 1000000",
                    r.rooms
                ));
            }
        }
        Ok(RoomRules(rules))
    }

    /// The rule for `room`: the first whose pattern matches.
    pub fn of(&self, room: &str) -> Option<&RoomRule> {
        self.0.iter().find(|r| crate::auth::glob(&r.rooms, room))
    }

    pub fn read_only(&self, room: &str) -> bool {
        self.of(room).is_some_and(|r| r.read_only)
    }

    pub fn presence(&self, room: &str) -> bool {
        self.of(room).is_none_or(|r| r.presence)
    }

    pub fn subscribe_hook(&self, room: &str) -> bool {
        self.of(room).is_some_and(|r| r.subscribe_hook)
    }

    /// The in-memory history size for `room`, `default` without a rule saying so.
    pub fn history(&self, room: &str, default: usize) -> usize {
        self.of(room).and_then(|r| r.history).unwrap_or(default)
    }

    /// Whether the rule keeps no history (then the room is not stored).
    pub fn no_history(&self, room: &str) -> bool {
        self.of(room).is_some_and(|r| r.history == Some(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_applies_and_errors_are_clear() {
        let r = RoomRules::parse(
            Some(
                r#"[{"rooms":"news-local","history":5},
                     {"rooms":"news-*","read_only":true,"presence":false,"history":0},
                     {"rooms":"vip-*","subscribe_hook":true}]"#,
            ),
            true,
        )
        .unwrap();
        assert!(!r.read_only("news-local") && r.presence("news-local"));
        assert_eq!(r.history("news-local", 200), 5);
        assert!(
            r.read_only("news-world") && !r.presence("news-world") && r.no_history("news-world")
        );
        assert!(r.subscribe_hook("vip-1") && !r.subscribe_hook("general"));
        assert_eq!(r.history("general", 200), 200);
        assert!(RoomRules::parse(None, false).unwrap().of("x").is_none());
        for (bad, says) in [
            ("{}", "JSON array"),
            (r#"[{"rooms":"a","readonly":true}]"#, "unknown field"),
            (r#"[{"rooms":"a b"}]"#, "not a room pattern"),
            (r#"[{"rooms":"a","history":-1}]"#, "SWITCHBOARD_ROOM_RULES"),
        ] {
            let e = RoomRules::parse(Some(bad), true).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e =
            RoomRules::parse(Some(r#"[{"rooms":"a","subscribe_hook":true}]"#), false).unwrap_err();
        assert!(e.contains("SWITCHBOARD_PROXY_SUBSCRIBE_URL"), "{e}");
    }
}
