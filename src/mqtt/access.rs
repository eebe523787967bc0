//! Who may subscribe and publish to which MQTT topics.
//!
//! Tokens carry two claims, lists of MQTT topic filters:
//! - `mqtt_sub`: a client filter is allowed if one of these covers it (every
//!   topic it matches is matched by the pattern): `sensors/#` allows
//!   `sensors/#`, `sensors/+/temp` and `sensors/kitchen`, not `#`.
//! - `mqtt_pub`: a topic may be published to if one of these matches it.
//!
//! Without the claim, admin and service tokens may use any topic and other
//! users none. Guests get `SWITCHBOARD_MQTT_GUEST_SUBSCRIBE` /
//! `SWITCHBOARD_MQTT_GUEST_PUBLISH` (empty by default).

use super::topic::{TopicFilter, TopicName};
use crate::auth::Identity;
use crate::config::MqttConfig;

/// The MQTT claims of a token, parsed.
#[derive(Debug, Clone, Default)]
pub struct MqttAccess {
    pub subscribe: Option<Vec<TopicFilter>>,
    pub publish: Option<Vec<TopicFilter>>,
}

/// Longest list accepted in one claim.
const MAX_PATTERNS: usize = 256;

fn patterns(claim: &str, raw: Option<Vec<String>>) -> Result<Option<Vec<TopicFilter>>, String> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.len() > MAX_PATTERNS {
        return Err(format!(
            "token claim {claim} lists more than {MAX_PATTERNS} patterns"
        ));
    }
    raw.iter()
        .map(|p| TopicFilter::parse(p).map_err(|e| format!("token claim {claim}: {p:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

impl MqttAccess {
    /// Parses the `mqtt_sub` and `mqtt_pub` claims; a bad pattern rejects the token.
    pub fn from_claims(
        sub: Option<Vec<String>>,
        publ: Option<Vec<String>>,
    ) -> Result<MqttAccess, String> {
        Ok(MqttAccess {
            subscribe: patterns("mqtt_sub", sub)?,
            publish: patterns("mqtt_pub", publ)?,
        })
    }
}

/// The patterns that apply to `who`; `None` means "any topic".
fn rules<'a>(
    who: &'a Identity,
    claim: &'a Option<Vec<TopicFilter>>,
    guests: &'a [TopicFilter],
) -> Option<&'a [TopicFilter]> {
    if who.guest {
        return Some(guests);
    }
    match claim {
        Some(p) => Some(p),
        None if who.role.privileged() => None,
        None => Some(&[]),
    }
}

pub fn may_subscribe(who: &Identity, cfg: &MqttConfig, filter: &TopicFilter) -> bool {
    match rules(who, &who.mqtt.subscribe, &cfg.guest_subscribe) {
        None => true,
        Some(p) => p.iter().any(|p| p.covers(filter)),
    }
}

pub fn may_publish(who: &Identity, cfg: &MqttConfig, topic: &TopicName) -> bool {
    match rules(who, &who.mqtt.publish, &cfg.guest_publish) {
        None => true,
        Some(p) => p.iter().any(|p| p.matches(topic.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn ident(guest: bool, role: Role, sub: Option<&[&str]>, publ: Option<&[&str]>) -> Identity {
        let own = |v: Option<&[&str]>| v.map(|v| v.iter().map(|s| s.to_string()).collect());
        Identity {
            user: crate::ids::UserId::parse("u").unwrap(),
            name: "u".into(),
            guest,
            role,
            rooms: None,
            exp: None,
            mqtt: MqttAccess::from_claims(own(sub), own(publ)).unwrap(),
        }
    }

    fn cfg() -> MqttConfig {
        let mut c = crate::config::Config::from_env().unwrap().mqtt;
        c.guest_subscribe = vec![TopicFilter::parse("public/#").unwrap()];
        c.guest_publish = vec![];
        c
    }

    #[test]
    fn claims_decide() {
        let c = cfg();
        let f = |s: &str| TopicFilter::parse(s).unwrap();
        let t = |s: &str| TopicName::parse(s).unwrap();
        let u = ident(
            false,
            Role::User,
            Some(&["sensors/#"]),
            Some(&["cmd/+/set"]),
        );
        assert!(may_subscribe(&u, &c, &f("sensors/#")));
        assert!(may_subscribe(&u, &c, &f("sensors/+/temp")));
        assert!(!may_subscribe(&u, &c, &f("#")));
        assert!(!may_subscribe(&u, &c, &f("other")));
        assert!(may_publish(&u, &c, &t("cmd/lamp/set")));
        assert!(!may_publish(&u, &c, &t("cmd/lamp/set/x")));
        let plain = ident(false, Role::User, None, None);
        assert!(!may_subscribe(&plain, &c, &f("a")));
        assert!(!may_publish(&plain, &c, &t("a")));
        let admin = ident(false, Role::Admin, None, None);
        assert!(may_subscribe(&admin, &c, &f("#")) && may_publish(&admin, &c, &t("x/y")));
        let guest = ident(true, Role::User, None, None);
        assert!(may_subscribe(&guest, &c, &f("public/a")));
        assert!(!may_subscribe(&guest, &c, &f("private")));
        assert!(!may_publish(&guest, &c, &t("public/a")));
        assert!(MqttAccess::from_claims(Some(vec!["a/#/b".into()]), None).is_err());
    }
}
