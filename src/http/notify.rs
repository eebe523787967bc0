//! `POST /api/notify`: a notification for one or many users, from an admin
//! or service. Each is stored first; the answer (and the live
//! `notification:new` + `notification:count` to every session of each user)
//! follows the commit.

use super::api::privileged;
use crate::error::{ErrorCode, HubError};
use crate::ids::{now_ms, UserId};
use crate::protocol::From;
use crate::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Most users one request may notify.
pub const MAX_RECIPIENTS: usize = 1000;

#[derive(Deserialize)]
#[serde(untagged)]
pub enum Recipients {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyBody {
    to: Recipients,
    data: Box<RawValue>,
}

/// The distinct, valid user ids of `to`, in the order given.
fn recipients(to: Recipients) -> Result<Vec<UserId>, HubError> {
    let raw = match to {
        Recipients::One(u) => vec![u],
        Recipients::Many(v) => v,
    };
    if raw.is_empty() || raw.len() > MAX_RECIPIENTS {
        return Err(HubError::new(
            ErrorCode::BadRequest,
            format!("`to` names 1 to {MAX_RECIPIENTS} users"),
        ));
    }
    let mut users: Vec<UserId> = Vec::with_capacity(raw.len());
    for u in raw {
        let id = UserId::parse(&u).ok_or_else(|| {
            HubError::new(
                ErrorCode::BadRequest,
                format!(
                    "{u:?} is not a user id (1-128 bytes without whitespace or control characters)"
                ),
            )
        })?;
        if !users.contains(&id) {
            users.push(id);
        }
    }
    Ok(users)
}

/// `POST /api/notify {to, data}` → `{"notifications":[{"user","id"}]}`.
pub async fn notify(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Json<NotifyBody>,
) -> Result<HttpResponse, HubError> {
    let who = privileged(&req, &st)?;
    let body = body.into_inner();
    let users = recipients(body.to)?;
    super::check_data(&body.data, &st)?;
    let sender = serde_json::to_string(&From {
        user: who.user,
        name: who.name,
    })
    .map_err(|e| HubError::new(ErrorCode::Internal, e.to_string()))?;
    let stored = st
        .shared
        .notifications
        .add(
            users,
            sender,
            body.data.get().to_string(),
            now_ms(),
            st.hub.clone().recipient(),
        )
        .await?;
    let list: Vec<_> = stored
        .iter()
        .map(|(user, id)| serde_json::json!({ "user": user, "id": id }))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "notifications": list })))
}
