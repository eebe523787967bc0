//! Who a connection is, and what it may do: JWT verification (HS256, or RS256
//! with a public key), guests, minting dev tokens, and room access rules.

use crate::config::Config;
use crate::error::{ErrorCode, HubError};
use crate::ids::{now_ms, random_hex, RoomName, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A token's role. Absent means an ordinary user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    User,
    Admin,
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }
    /// Admins and services may join any room and use the REST publish/broadcast API.
    pub fn privileged(self) -> bool {
        matches!(self, Role::Admin | Role::Service)
    }
}

/// The JWT claims Switchboard reads. Other claims are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub exp: u64,
    /// Room patterns (`*` wildcard) the user may join; absent means any non-personal room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// MQTT topic filters the user may `mqtt:subscribe` to (see `mqtt::access`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_sub: Option<Vec<String>>,
    /// MQTT topic patterns the user may `mqtt:publish` to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_pub: Option<Vec<String>>,
}

/// A connection's identity once authenticated (or admitted as a guest).
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: UserId,
    pub name: Arc<str>,
    pub guest: bool,
    pub role: Role,
    pub rooms: Option<Vec<String>>,
    /// Token expiry, seconds since the epoch (none for guests).
    pub exp: Option<u64>,
    /// The `mqtt_sub` / `mqtt_pub` claims, parsed.
    pub mqtt: crate::mqtt::access::MqttAccess,
}

/// Longest display name kept; longer names are cut.
pub const MAX_DISPLAY_NAME: usize = 64;

fn display_name(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_control())
        .take(MAX_DISPLAY_NAME)
        .collect::<String>()
        .trim()
        .to_string()
}

pub struct Auth {
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
    pub guests: bool,
    public_rooms: Vec<String>,
}

impl Auth {
    /// Builds the verifier. Without a secret or key, a random secret is used and
    /// only tokens minted by this process (dev route, never valid elsewhere) pass.
    pub fn from_config(cfg: &Config) -> Result<Auth, String> {
        let (decoding, encoding, alg) = if let Some(path) = &cfg.jwt_public_key_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("SWITCHBOARD_JWT_PUBLIC_KEY_FILE {path}: {e}"))?;
            let key = DecodingKey::from_rsa_pem(&pem)
                .map_err(|e| format!("SWITCHBOARD_JWT_PUBLIC_KEY_FILE {path}: {e}"))?;
            (key, None, Algorithm::RS256)
        } else {
            let secret = match &cfg.jwt_secret {
                Some(s) => s.clone(),
                None => {
                    log::warn!(
                        "SWITCHBOARD_JWT_SECRET is not set: using a random secret; tokens from /api/dev/token work until restart"
                    );
                    random_hex(32)
                }
            };
            (
                DecodingKey::from_secret(secret.as_bytes()),
                Some(EncodingKey::from_secret(secret.as_bytes())),
                Algorithm::HS256,
            )
        };
        let mut validation = Validation::new(alg);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Auth {
            decoding,
            encoding,
            validation,
            guests: cfg.guests,
            public_rooms: cfg.public_rooms.clone(),
        })
    }

    /// Verifies a token into an identity; every failure is `unauthorized`.
    pub fn verify(&self, token: &str) -> Result<Identity, HubError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                crate::metrics::METRICS
                    .auth_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let why = match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        "token expired".to_string()
                    }
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        "bad token signature".to_string()
                    }
                    _ => format!("invalid token: {e}"),
                };
                crate::monitor::events::auth_failure(&why);
                HubError::new(ErrorCode::Unauthorized, why)
            })?;
        let c = data.claims;
        let problem = crate::ids::sub_problem(&c.sub);
        let Some(user) = UserId::parse(&c.sub).filter(|_| problem.is_none()) else {
            let why = problem.unwrap_or("token `sub` is not a valid user id");
            crate::metrics::METRICS
                .auth_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            crate::monitor::events::auth_failure(why);
            return Err(HubError::new(ErrorCode::Unauthorized, why));
        };
        let name = c
            .name
            .as_deref()
            .map(display_name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| c.sub.clone());
        let mqtt = crate::mqtt::access::MqttAccess::from_claims(c.mqtt_sub, c.mqtt_pub)
            .map_err(|why| HubError::new(ErrorCode::Unauthorized, why))?;
        Ok(Identity {
            user,
            name: name.into(),
            guest: false,
            role: c.role.unwrap_or_default(),
            rooms: c.rooms,
            exp: Some(c.exp),
            mqtt,
        })
    }

    /// A new guest with a random id and the given nickname (or a generated one).
    pub fn guest(&self, nickname: Option<&str>) -> Identity {
        let tag = random_hex(8);
        let user = UserId::parse(&format!("{}{tag}", crate::ids::GUEST_PREFIX))
            .unwrap_or_else(|| UserId::parse("guest").expect("valid"));
        let name = nickname
            .map(display_name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("Guest {tag}"));
        Identity {
            user,
            name: name.into(),
            guest: true,
            role: Role::User,
            rooms: None,
            exp: None,
            mqtt: Default::default(),
        }
    }

    /// Signs a token with the configured HS256 secret (not available with RS256).
    pub fn mint(&self, claims: &Claims) -> Result<String, HubError> {
        let key = self.encoding.as_ref().ok_or_else(|| {
            HubError::new(
                ErrorCode::Forbidden,
                "tokens cannot be minted with an RS256 public key",
            )
        })?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, key)
            .map_err(|e| HubError::new(ErrorCode::Internal, format!("signing failed: {e}")))
    }

    /// May `who` join (and so read and write) `room`?
    ///
    /// - `user:<id>`: only that user, or admin/service.
    /// - admin/service: any room.
    /// - guests: rooms matching `SWITCHBOARD_PUBLIC_ROOMS`.
    /// - users with a `rooms` claim: rooms matching one of its patterns; without it, any room.
    pub fn can_join(&self, who: &Identity, room: &RoomName) -> bool {
        if who.role.privileged() {
            return true;
        }
        if let Some(owner) = room.personal_owner() {
            return owner == who.user.as_str();
        }
        if who.guest {
            return self.public_rooms.iter().any(|p| glob(p, room.as_str()));
        }
        match &who.rooms {
            Some(patterns) => patterns.iter().any(|p| glob(p, room.as_str())),
            None => true,
        }
    }
}

/// Claims for a token valid `ttl_s` seconds from now.
pub fn claims_for(
    sub: &str,
    name: Option<&str>,
    role: Option<Role>,
    rooms: Option<Vec<String>>,
    ttl_s: u64,
) -> Claims {
    Claims {
        sub: sub.to_string(),
        name: name.map(str::to_string),
        exp: now_ms() / 1000 + ttl_s,
        rooms,
        role,
        mqtt_sub: None,
        mqtt_pub: None,
    }
}

/// Matches `text` against `pattern`, where `*` matches any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches() {
        assert!(glob("team-*", "team-a"));
        assert!(glob("team-*", "team-"));
        assert!(!glob("team-*", "teams"));
        assert!(glob("*", "anything"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(glob("general", "general"));
        assert!(!glob("general", "general2"));
    }
}
