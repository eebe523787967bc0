//! The REST routes of shared state: `GET /api/rooms/{room}/state` and
//! `GET/PUT/DELETE /api/rooms/{room}/state/{key}`. Reads follow the room's
//! access rules (as its history); writes need an admin or service token
//! and `If-Match: <version>` (the version the caller saw; 0 creates).

use super::api::{privileged, readable, room_param};
use crate::error::{ErrorCode, HubError};
use crate::hub;
use crate::ids::RoomName;
use crate::protocol::From;
use crate::room::{StateAnswer, StateCall};
use crate::state::{wire, EntryOut, Write};
use crate::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::value::RawValue;

async fn ask(st: &AppState, room: RoomName, call: StateCall) -> Result<StateAnswer, HubError> {
    st.hub
        .send(hub::ApiState { room, call })
        .await
        .map_err(|_| HubError::new(ErrorCode::Internal, "hub unavailable"))
}

fn key_param(raw: &str) -> Result<String, HubError> {
    wire::key(raw).map_err(|(c, m)| HubError::new(c, m))
}

/// `GET /api/rooms/{room}/state` → `{"room","rev","entries":[…]}`.
pub async fn list(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, HubError> {
    let room = room_param(&path)?;
    readable(&req, &st, &room)?;
    match ask(&st, room.clone(), StateCall::Get { keys: None }).await? {
        StateAnswer::Map(m) => {
            let now = crate::ids::now_ms();
            let entries: Vec<EntryOut> =
                m.live(None, now).map(|(k, e)| EntryOut::of(k, e)).collect();
            Ok(HttpResponse::Ok().json(serde_json::json!({
                "room": room, "rev": m.rev, "entries": entries,
            })))
        }
        other => Err(failed(other)),
    }
}

/// `GET /api/rooms/{room}/state/{key}` → the entry, with `ETag: "<version>"`.
pub async fn get(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, HubError> {
    let (room, key) = (room_param(&path.0)?, key_param(&path.1)?);
    readable(&req, &st, &room)?;
    let call = StateCall::Get {
        keys: Some(vec![key.clone()]),
    };
    match ask(&st, room.clone(), call).await? {
        StateAnswer::Map(m) => match m.get(&key, crate::ids::now_ms()) {
            Some(e) => Ok(HttpResponse::Ok()
                .insert_header(("ETag", format!("\"{}\"", e.version)))
                .json(serde_json::json!({ "room": room, "entry": EntryOut::of(&key, e) }))),
            None => Err(HubError::new(
                ErrorCode::NotFound,
                format!("{room} has no key {key}"),
            )),
        },
        other => Err(failed(other)),
    }
}

/// The version in `If-Match` (`3` or `"3"`); 428 when it is missing.
fn if_match(req: &HttpRequest) -> Result<u64, HubError> {
    let Some(h) = req.headers().get("If-Match") else {
        return Err(HubError::new(
            ErrorCode::PreconditionRequired,
            "If-Match: <version> is required (0 to create the key)",
        ));
    };
    h.to_str()
        .ok()
        .map(|s| s.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            HubError::new(
                ErrorCode::BadRequest,
                "If-Match must be a version: a whole number, optionally in quotes",
            )
        })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutBody {
    value: Box<RawValue>,
    ttl_ms: Option<u64>,
}

fn by(who: crate::auth::Identity) -> Result<Box<RawValue>, HubError> {
    serde_json::value::to_raw_value(&From {
        user: who.user,
        name: who.name,
    })
    .map_err(|e| HubError::new(ErrorCode::Internal, e.to_string()))
}

/// `PUT /api/rooms/{room}/state/{key}` with `If-Match`, body
/// `{"value", "ttl_ms"?}` → `{"room","key","version"}`; 409 on a conflict.
pub async fn put(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<PutBody>,
) -> Result<HttpResponse, HubError> {
    let who = privileged(&req, &st)?;
    let (room, key) = (room_param(&path.0)?, key_param(&path.1)?);
    let version = if_match(&req)?;
    let body = body.into_inner();
    let value = wire::value(&body.value).map_err(|m| HubError::new(ErrorCode::BadRequest, m))?;
    let ttl_ms = wire::ttl(body.ttl_ms).map_err(|m| HubError::new(ErrorCode::BadRequest, m))?;
    let write = Write {
        key,
        value: Some(value),
        version,
        ttl_ms,
    };
    write_answer(&st, room, write, by(who)?).await
}

/// `DELETE /api/rooms/{room}/state/{key}` with `If-Match` (not 0).
pub async fn delete(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, HubError> {
    let who = privileged(&req, &st)?;
    let (room, key) = (room_param(&path.0)?, key_param(&path.1)?);
    let version = if_match(&req)?;
    if version == 0 {
        return Err(HubError::new(
            ErrorCode::BadRequest,
            "If-Match must be the key's current version (not 0)",
        ));
    }
    let write = Write {
        key,
        value: None,
        version,
        ttl_ms: None,
    };
    write_answer(&st, room, write, by(who)?).await
}

async fn write_answer(
    st: &AppState,
    room: RoomName,
    write: Write,
    by: Box<RawValue>,
) -> Result<HttpResponse, HubError> {
    let key = write.key.clone();
    match ask(st, room.clone(), StateCall::Write { write, by }).await? {
        StateAnswer::Done { version } => Ok(HttpResponse::Ok()
            .insert_header(("ETag", format!("\"{version}\"")))
            .json(serde_json::json!({ "room": room, "key": key, "version": version }))),
        StateAnswer::Conflict { version, value } => {
            crate::metrics::METRICS.error(ErrorCode::VersionConflict);
            #[derive(serde::Serialize)]
            struct Body<'a> {
                error: serde_json::Value,
                room: &'a RoomName,
                key: &'a str,
                version: u64,
                #[serde(skip_serializing_if = "Option::is_none")]
                value: Option<&'a RawValue>,
            }
            Ok(HttpResponse::Conflict().json(Body {
                error: serde_json::json!({
                    "code": ErrorCode::VersionConflict.as_str(),
                    "message": "the key has another version; merge with its value and retry",
                }),
                room: &room,
                key: &key,
                version,
                value: value.as_deref(),
            }))
        }
        other => Err(failed(other)),
    }
}

fn failed(a: StateAnswer) -> HubError {
    match a {
        StateAnswer::Failed(e) => e,
        _ => HubError::new(ErrorCode::Internal, "unexpected answer"),
    }
}
