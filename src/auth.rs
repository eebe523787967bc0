//! Who a connection is, and what it may do: JWT verification (HS256, RS256
//! with a public key, or RS256/ES256 keys from a JWKS file chosen by `kid`),
//! audience/issuer/leeway checks, guests, minting dev tokens, and room access rules.

use crate::config::Config;
use crate::error::{ErrorCode, HubError};
use crate::ids::{now_ms, random_hex, RoomName, UserId};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Deserializer, Serialize};
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
    /// Any string (see `ids::UserId`), or an integer, kept as its decimal text.
    #[serde(deserialize_with = "sub_text")]
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

/// A `sub` claim as text: identity providers send strings, a few send numbers.
pub fn sub_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Sub {
        Text(String),
        Unsigned(u64),
        Signed(i64),
    }
    match Sub::deserialize(d) {
        Ok(Sub::Text(s)) => Ok(s),
        Ok(Sub::Unsigned(n)) => Ok(n.to_string()),
        Ok(Sub::Signed(n)) => Ok(n.to_string()),
        Err(_) => Err(serde::de::Error::custom(
            "`sub` must be a string or an integer",
        )),
    }
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

/// The keys tokens are checked against.
enum Keys {
    /// An HS256 secret or one RS256 public key: every token, whatever its `kid`.
    One(Box<(DecodingKey, Validation)>),
    /// A JWKS file: the key whose `kid` the token's header names, each with
    /// its own algorithm (the token's `alg` must match it).
    Set(Vec<KeyEntry>),
    /// A JWKS URL (`jwks.rs`): as a file, fetched and refreshed.
    Remote(Arc<crate::jwks::RemoteKeys>),
}

pub struct Auth {
    keys: Keys,
    encoding: Option<EncodingKey>,
    /// Seconds of clock skew allowed on `exp` and `nbf` (a session closes at `exp` + leeway).
    pub leeway_s: u64,
    pub guests: bool,
    public_rooms: Vec<String>,
}

/// The checks every token gets with `alg`: signature, `exp` and `nbf` with the
/// leeway, `iss` and `aud` when configured. `sub` is checked by us (it may be a number).
fn validation(cfg: &Config, alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = cfg.jwt_leeway_s;
    v.validate_nbf = true;
    let mut required = vec!["exp"];
    if cfg.jwt_audience.is_empty() {
        // No audience configured: a token's `aud` is not ours to judge.
        v.validate_aud = false;
    } else {
        v.set_audience(&cfg.jwt_audience);
        required.push("aud");
    }
    if !cfg.jwt_issuer.is_empty() {
        v.set_issuer(&cfg.jwt_issuer);
        required.push("iss");
    }
    v.set_required_spec_claims(&required);
    v
}

type KeyEntry = crate::jwks::KeyEntry;

/// One signing key of a JWKS, or why it cannot verify tokens.
fn jwk_entry(cfg: &Config, jwk: &jsonwebtoken::jwk::Jwk) -> Result<KeyEntry, String> {
    if jwk.common.public_key_use == Some(jsonwebtoken::jwk::PublicKeyUse::Encryption) {
        return Err("an encryption key (`use`: `enc`)".into());
    }
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Err("unsupported curve".into()),
        },
        _ => return Err("only RSA and EC keys are supported".into()),
    };
    let alg = match jwk.common.key_algorithm {
        // `KeyAlgorithm` and `Algorithm` share their names (RS256, ES256, …).
        Some(ka) => ka
            .to_string()
            .parse::<Algorithm>()
            .map_err(|_| format!("unsupported alg {ka}"))?,
        None => by_type,
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    Ok((jwk.common.key_id.clone(), key, validation(cfg, alg)))
}

/// Reads a JWKS file into (kid, key, validation) entries: RSA keys are RS256,
/// EC P-256 keys ES256 and P-384 keys ES384, unless the key's `alg` says otherwise.
fn jwks_keys(cfg: &Config, path: &str) -> Result<Keys, String> {
    let what = |e: &dyn std::fmt::Display| format!("SWITCHBOARD_JWT_JWKS_FILE {path}: {e}");
    let text = std::fs::read_to_string(path).map_err(|e| what(&e))?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| what(&e))?;
    let keys = set_entries(cfg, &set, &format!("SWITCHBOARD_JWT_JWKS_FILE {path}"));
    if keys.is_empty() {
        return Err(what(&"the set has no usable signing keys"));
    }
    Ok(Keys::Set(keys))
}

/// A set's usable signing keys; the others are logged (`source` names the set).
fn set_entries(cfg: &Config, set: &JwkSet, source: &str) -> Vec<KeyEntry> {
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let named = jwk.common.key_id.as_deref().unwrap_or("(no kid)");
        match jwk_entry(cfg, jwk) {
            Ok(entry) => keys.push(entry),
            // Providers publish encryption keys (Keycloak's RSA-OAEP) next to signing keys.
            Err(why) => log::warn!("{source}: key {named} skipped: {why}"),
        }
    }
    keys
}

impl Auth {
    /// The JWKS URL's keys, to be kept fresh by [`crate::jwks::RemoteKeys::keep_fresh`].
    pub fn remote_keys(&self) -> Option<Arc<crate::jwks::RemoteKeys>> {
        match &self.keys {
            Keys::Remote(r) => Some(r.clone()),
            _ => None,
        }
    }

    /// Builds the verifier. Without a secret or key, a random secret is used and
    /// only tokens minted by this process (dev route, never valid elsewhere) pass.
    pub fn from_config(cfg: &Config) -> Result<Auth, String> {
        let (keys, encoding) = if let Some(url) = &cfg.jwt_jwks_url {
            let c = cfg.clone();
            let parse = Box::new(move |set: &JwkSet, source: &str| set_entries(&c, set, source));
            (
                Keys::Remote(crate::jwks::RemoteKeys::new(url.clone(), parse)),
                None,
            )
        } else if let Some(path) = &cfg.jwt_jwks_file {
            (jwks_keys(cfg, path)?, None)
        } else if let Some(path) = &cfg.jwt_public_key_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("SWITCHBOARD_JWT_PUBLIC_KEY_FILE {path}: {e}"))?;
            let key = DecodingKey::from_rsa_pem(&pem)
                .map_err(|e| format!("SWITCHBOARD_JWT_PUBLIC_KEY_FILE {path}: {e}"))?;
            let v = validation(cfg, Algorithm::RS256);
            (Keys::One(Box::new((key, v))), None)
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
                Keys::One(Box::new((
                    DecodingKey::from_secret(secret.as_bytes()),
                    validation(cfg, Algorithm::HS256),
                ))),
                Some(EncodingKey::from_secret(secret.as_bytes())),
            )
        };
        Ok(Auth {
            keys,
            encoding,
            leeway_s: cfg.jwt_leeway_s,
            guests: cfg.guests,
            public_rooms: cfg.public_rooms.clone(),
        })
    }

    /// Verifies a token presented by the client at `from` into an identity;
    /// every failure is `unauthorized` (and counted, logged and kept).
    pub fn verify(&self, token: &str, from: std::net::IpAddr) -> Result<Identity, HubError> {
        let refuse = |why: String| {
            crate::monitor::events::auth_failure(Some(from), &why);
            HubError::new(ErrorCode::Unauthorized, why)
        };
        let remote;
        let set = match &self.keys {
            Keys::One(_) => None,
            Keys::Set(set) => Some(&set[..]),
            Keys::Remote(r) => {
                remote = r.current().ok_or_else(|| {
                    refuse("the key set (SWITCHBOARD_JWT_JWKS_URL) has not been fetched yet".into())
                })?;
                Some(&remote[..])
            }
        };
        let (key, validation) = match (set, &self.keys) {
            (Some(set), keys) => key_in(set, token).map_err(|why| {
                // A key the provider has just rotated in: fetch the set again.
                if let (Keys::Remote(r), KidProblem::Unknown) = (keys, &why) {
                    if r.unknown_kid() {
                        return refuse(format!("{why}; the key set is being fetched again, retry"));
                    }
                }
                refuse(why.to_string())
            })?,
            (None, Keys::One(kv)) => (&kv.0, &kv.1),
            (None, _) => return Err(refuse("no key".into())),
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            refuse(match e.kind() {
                K::ExpiredSignature => "token expired".to_string(),
                K::ImmatureSignature => "token not valid yet (`nbf` is in the future)".to_string(),
                K::InvalidSignature => "bad token signature".to_string(),
                K::InvalidAudience => "token `aud` names no accepted audience".to_string(),
                K::InvalidIssuer => "token `iss` is not an accepted issuer".to_string(),
                K::MissingRequiredClaim(c) => format!("token has no `{c}` claim"),
                _ => format!("invalid token: {e}"),
            })
        })?;
        identity_of(data.claims).map_err(refuse)
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
                "tokens cannot be minted with a public key or key set",
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

/// Why a key set has no key for a token.
enum KidProblem {
    Header(String),
    NoKid,
    Unknown,
}

impl std::fmt::Display for KidProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KidProblem::Header(e) => write!(f, "invalid token: {e}"),
            KidProblem::NoKid => f.write_str("token has no `kid` and the key set has several keys"),
            KidProblem::Unknown => f.write_str("token `kid` names no known key"),
        }
    }
}

/// The JWKS key (and checks) the token's header's `kid` names (a token
/// without `kid` only passes a one-key set).
fn key_in<'a>(
    set: &'a [KeyEntry],
    token: &str,
) -> Result<(&'a DecodingKey, &'a Validation), KidProblem> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| KidProblem::Header(e.to_string()))?;
    let found = match header.kid.as_deref() {
        Some(kid) => set.iter().find(|(k, _, _)| k.as_deref() == Some(kid)),
        None if set.len() == 1 => set.first(),
        None => return Err(KidProblem::NoKid),
    };
    found.map(|(_, k, v)| (k, v)).ok_or(KidProblem::Unknown)
}

/// The identity the claims name (a token's, or a connect hook's answer):
/// the user id checked, the display name cleaned, the MQTT claims parsed.
pub fn identity_of(c: Claims) -> Result<Identity, String> {
    let problem = crate::ids::sub_problem(&c.sub);
    let Some(user) = UserId::parse(&c.sub).filter(|_| problem.is_none()) else {
        let why = problem.unwrap_or("token `sub` is not a valid user id");
        return Err(why.to_string());
    };
    let name = c
        .name
        .as_deref()
        .map(display_name)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| c.sub.clone());
    let mqtt = crate::mqtt::access::MqttAccess::from_claims(c.mqtt_sub, c.mqtt_pub)?;
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
