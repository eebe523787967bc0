//! The connect hook: what is forwarded about a connection, and the identity
//! the backend's answer gives it.

use crate::auth::{Claims, Identity, Role};
use actix_web::dev::RequestHead;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// What the upgrade (or SSE / long-polling open) request tells the backend.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConnectInfo {
    /// The `Cookie` header's cookies by name.
    pub cookies: BTreeMap<String, String>,
    /// The headers named in `SWITCHBOARD_PROXY_CONNECT_HEADERS` (lower case).
    pub headers: BTreeMap<String, String>,
    /// With `SWITCHBOARD_PROXY_CONNECT_ALL`: the request's token, unchecked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `?name=` (with `SWITCHBOARD_PROXY_CONNECT_ALL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ask the backend as soon as the session starts (the request itself
    /// carried a token or name), not at the first frame.
    #[serde(skip)]
    pub at_start: bool,
}

impl ConnectInfo {
    pub fn of_request(head: &RequestHead, forward: &[String]) -> ConnectInfo {
        let mut info = ConnectInfo::default();
        for v in head.headers().get_all(actix_web::http::header::COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            for pair in v.split(';') {
                if let Some((k, val)) = pair.split_once('=') {
                    let (k, val) = (k.trim(), val.trim().trim_matches('"'));
                    if !k.is_empty() {
                        info.cookies.insert(k.to_string(), val.to_string());
                    }
                }
            }
        }
        for name in forward {
            let values: Vec<&str> = head
                .headers()
                .get_all(name.as_str())
                .filter_map(|v| v.to_str().ok())
                .collect();
            if !values.is_empty() {
                info.headers.insert(name.clone(), values.join(", "));
            }
        }
        info
    }
}

/// The request body POSTed to `SWITCHBOARD_PROXY_CONNECT_URL`.
#[derive(Serialize)]
pub struct ConnectRequest<'a> {
    #[serde(flatten)]
    pub info: &'a ConnectInfo,
    /// The `auth` frame's `data`, when the client sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a RawValue>,
    pub transport: &'a str,
    pub client: String,
}

/// The backend's answer: who the connection is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectAnswer {
    #[serde(deserialize_with = "crate::auth::sub_text")]
    pub user: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub rooms: Option<Vec<String>>,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub mqtt_sub: Option<Vec<String>>,
    #[serde(default)]
    pub mqtt_pub: Option<Vec<String>>,
    /// Seconds since the epoch; the session is closed then (as at a token's `exp`).
    #[serde(default)]
    pub expire_at: Option<u64>,
}

impl ConnectAnswer {
    pub fn identity(self) -> Result<Identity, String> {
        let expire_at = self.expire_at;
        let mut ident = crate::auth::identity_of(Claims {
            sub: self.user,
            name: self.name,
            exp: expire_at.unwrap_or(0),
            rooms: self.rooms,
            role: self.role,
            mqtt_sub: self.mqtt_sub,
            mqtt_pub: self.mqtt_pub,
        })
        .map_err(|why| format!("the connect hook's answer: {why}"))?;
        ident.exp = expire_at;
        Ok(ident)
    }
}
