//! The server API on users (admin or service tokens): close a user's
//! sessions, make them join or leave a room, read their presence. With
//! Redis these act on the user's sessions on every node.

use super::api::privileged;
use crate::error::{ErrorCode, HubError};
use crate::hub::{Action, UserAction};
use crate::ids::{RoomName, UserId};
use crate::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

/// The close code when the request names none.
pub const DISCONNECT_CODE: u16 = 4010;
/// Codes a request may choose.
pub const CODES: std::ops::RangeInclusive<u16> = 4100..=4999;
/// Longest close reason (a close frame's payload is at most 125 bytes).
pub const MAX_REASON: usize = 123;

fn user_param(raw: &str) -> Result<UserId, HubError> {
    UserId::parse(raw).ok_or_else(|| {
        HubError::new(
            ErrorCode::BadRequest,
            "user ids are 1-128 bytes without whitespace or control characters",
        )
    })
}

/// A room the server API may put users in: not the monitor, not a personal room.
fn room_param(raw: &str) -> Result<RoomName, HubError> {
    match RoomName::parse(raw) {
        Some(r) if r.personal_owner().is_none() && r.as_str() != crate::monitor::ROOM => Ok(r),
        _ => Err(HubError::new(
            ErrorCode::InvalidRoom,
            "room names are 1-64 characters from A-Z a-z 0-9 _ - . : @ (not `monitor`, not a personal room)",
        )),
    }
}

async fn order(st: &AppState, user: UserId, action: Action) -> Result<HttpResponse, HubError> {
    let room = match &action {
        Action::Join { room } | Action::Leave { room } => Some(room.clone()),
        Action::Disconnect { .. } => None,
    };
    let online = st
        .hub
        .send(UserAction {
            user: user.clone(),
            action,
        })
        .await
        .map_err(|_| HubError::new(ErrorCode::Internal, "hub unavailable"))??;
    let mut body = serde_json::json!({ "user": user, "online": online });
    if let Some(r) = room {
        body["room"] = r.into();
    }
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DisconnectBody {
    code: Option<u16>,
    reason: Option<String>,
}

/// `POST /api/users/{user}/disconnect [{code, reason}]` → `{user, online}`.
pub async fn disconnect(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, HubError> {
    privileged(&req, &st)?;
    let user = user_param(&path)?;
    let b: DisconnectBody = if body.iter().all(u8::is_ascii_whitespace) {
        DisconnectBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            HubError::new(
                ErrorCode::BadRequest,
                format!("body: {e} (expected {{\"code\"?: 4100-4999, \"reason\"?: text}})"),
            )
        })?
    };
    let code = b.code.unwrap_or(DISCONNECT_CODE);
    if b.code.is_some() && !CODES.contains(&code) {
        return Err(HubError::new(
            ErrorCode::BadRequest,
            "`code` is 4100-4999 (the default is 4010)",
        ));
    }
    let reason = b
        .reason
        .unwrap_or_else(|| "disconnected by the server".into());
    if reason.len() > MAX_REASON {
        return Err(HubError::new(
            ErrorCode::BadRequest,
            format!("`reason` is at most {MAX_REASON} bytes"),
        ));
    }
    order(&st, user, Action::Disconnect { code, reason }).await
}

/// `PUT /api/users/{user}/rooms/{room}`: every session of the user joins.
pub async fn subscribe(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, HubError> {
    room_order(req, st, path, true).await
}

/// `DELETE /api/users/{user}/rooms/{room}`: every session of the user leaves.
pub async fn unsubscribe(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, HubError> {
    room_order(req, st, path, false).await
}

async fn room_order(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    join: bool,
) -> Result<HttpResponse, HubError> {
    privileged(&req, &st)?;
    let (user, room) = (user_param(&path.0)?, room_param(&path.1)?);
    let room = room.as_str().to_string();
    let action = if join {
        Action::Join { room }
    } else {
        Action::Leave { room }
    };
    order(&st, user, action).await
}

/// `GET /api/users/{user}/presence` → `{user, status, rooms}`.
pub async fn presence(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, HubError> {
    privileged(&req, &st)?;
    let user = user_param(&path)?;
    let view = st
        .presence
        .send(crate::presence::GetUser(user))
        .await
        .map_err(|_| HubError::new(ErrorCode::Internal, "presence unavailable"))??;
    Ok(HttpResponse::Ok().json(view))
}
