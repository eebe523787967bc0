//! The REST API. Publish and broadcast need an admin or service token; room
//! listings, history and presence follow the same access rules as joining
//! (no token: the rules for guests).

use super::bearer;
use crate::auth::{claims_for, Identity, Role};
use crate::error::{ErrorCode, HubError};
use crate::hub;
use crate::ids::RoomName;
use crate::protocol::{From, MAX_ID_LEN};
use crate::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The caller: the verified bearer token, or an anonymous guest-level identity.
fn caller(req: &HttpRequest, st: &AppState) -> Result<Identity, HubError> {
    match bearer(req) {
        Some(t) => st
            .shared
            .auth
            .verify(t, super::client_addr(req.head(), &st.shared)),
        None => Ok(st.shared.auth.guest(Some("anonymous"))),
    }
}

pub(super) fn privileged(req: &HttpRequest, st: &AppState) -> Result<Identity, HubError> {
    if bearer(req).is_none() {
        return Err(HubError::new(
            ErrorCode::Unauthorized,
            "an admin or service token is required",
        ));
    }
    let who = caller(req, st)?;
    if !who.role.privileged() {
        return Err(HubError::new(
            ErrorCode::Forbidden,
            "only admin and service tokens may do this",
        ));
    }
    Ok(who)
}

pub(super) fn room_param(raw: &str) -> Result<RoomName, HubError> {
    RoomName::parse(raw).ok_or_else(|| {
        HubError::new(
            ErrorCode::InvalidRoom,
            "room names are 1-64 characters from A-Z a-z 0-9 _ - . : @, or user:<user id>",
        )
    })
}

/// May the caller read this room? No token and no access is 401, else 403.
pub(super) fn readable(req: &HttpRequest, st: &AppState, room: &RoomName) -> Result<(), HubError> {
    let who = caller(req, st)?;
    if st.shared.auth.can_join(&who, room) {
        Ok(())
    } else if bearer(req).is_none() {
        Err(HubError::new(
            ErrorCode::Unauthorized,
            "this room needs a token",
        ))
    } else {
        Err(HubError::new(
            ErrorCode::Forbidden,
            format!("you may not read {room}"),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    room: String,
    data: Box<RawValue>,
    id: Option<String>,
    idempotency_key: Option<String>,
    exclude_self: Option<bool>,
    priority: Option<String>,
    volatile: Option<bool>,
}

/// `POST /api/publish {room, data, id?, idempotency_key?, priority?, volatile?}`
/// → `{room, seq}` (and `"duplicate": true` when the key named an earlier
/// message), or `{room, volatile: true}`.
pub async fn publish(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Json<PublishBody>,
) -> Result<HttpResponse, HubError> {
    let who = privileged(&req, &st)?;
    let body = body.into_inner();
    let room = room_param(&body.room)?;
    if body.id.as_ref().is_some_and(|i| i.len() > MAX_ID_LEN) {
        return Err(HubError::new(ErrorCode::BadRequest, "id is too long"));
    }
    if body.exclude_self == Some(true) {
        return Err(HubError::new(
            ErrorCode::BadRequest,
            "exclude_self needs a sending session; a REST publish has none",
        ));
    }
    let key = body
        .idempotency_key
        .as_deref()
        .map(crate::idempotency::IdemKey::parse)
        .transpose()
        .map_err(|m| HubError::new(ErrorCode::BadRequest, m))?;
    let opts = crate::protocol::PublishOptions {
        key,
        ..Default::default()
    };
    let opts = opts
        .with_class(body.priority.as_deref(), body.volatile)
        .map_err(|m| HubError::new(ErrorCode::BadRequest, m))?;
    let volatile = opts.volatile;
    super::check_data(&body.data, &st)?;
    let msg = hub::ApiPublish {
        room: room.clone(),
        from: From {
            user: who.user,
            name: who.name,
        },
        data: body.data,
        id: body.id,
        opts,
    };
    let done = st
        .hub
        .send(msg)
        .await
        .map_err(|_| HubError::new(ErrorCode::Internal, "hub unavailable"))??;
    if volatile {
        return Ok(HttpResponse::Ok().json(serde_json::json!({ "room": room, "volatile": true })));
    }
    let mut answer = serde_json::json!({ "room": room, "seq": done.seq });
    if done.duplicate {
        answer["duplicate"] = true.into();
    }
    Ok(HttpResponse::Ok().json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BroadcastBody {
    data: Box<RawValue>,
}

/// `POST /api/broadcast {data}` → `{delivered}`: a `broadcast` frame to every session.
pub async fn broadcast(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Json<BroadcastBody>,
) -> Result<HttpResponse, HubError> {
    let who = privileged(&req, &st)?;
    super::check_data(&body.data, &st)?;
    let msg = hub::Broadcast {
        from: From {
            user: who.user,
            name: who.name,
        },
        data: body.into_inner().data,
    };
    let n = st
        .hub
        .send(msg)
        .await
        .map_err(|_| HubError::new(ErrorCode::Internal, "hub unavailable"))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "delivered": n })))
}

/// `GET /api/rooms` → active rooms the caller may join.
pub async fn rooms(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, HubError> {
    let who = caller(&req, &st)?;
    let list = st
        .hub
        .send(hub::ListRooms)
        .await
        .map_err(|_| HubError::new(ErrorCode::Internal, "hub unavailable"))?;
    let rooms: Vec<_> = list
        .iter()
        .filter(|r| st.shared.auth.can_join(&who, &r.room))
        .map(|r| serde_json::json!({ "room": r.room, "sessions": r.sessions }))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "rooms": rooms })))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    since: Option<u64>,
    before: Option<u64>,
    limit: Option<u64>,
}

/// `GET /api/rooms/{room}/history`: with `since`, the kept messages after it
/// (forward, from memory); with `before` and/or `limit`, a page going back
/// through everything stored (`more` says whether older ones remain); with
/// neither, the in-memory window.
pub async fn history(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse, HubError> {
    let room = room_param(&path)?;
    readable(&req, &st, &room)?;
    let q = q.into_inner();
    let json = |body: Vec<u8>| {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(body)
    };
    if q.since.is_some() && q.before.is_some() {
        return Err(HubError::new(
            ErrorCode::BadRequest,
            "since pages forward and before pages back: give one of them",
        ));
    }
    if q.since.is_none() && (q.before.is_some() || q.limit.is_some()) {
        let req = crate::scrollback::PageRequest::new(q.before, q.limit);
        let plan = st
            .hub
            .send(hub::Scrollback {
                room: room.clone(),
                req,
            })
            .await
            .map_err(|_| HubError::new(ErrorCode::Internal, "hub unavailable"))??;
        let page = plan.finish().await?;
        let head = serde_json::json!({
            "room": room,
            "epoch": page.epoch.as_deref(),
            "seq": page.seq,
            "first_seq": page.first_seq,
            "more": page.more,
        });
        return Ok(json(crate::scrollback::with_messages(
            &head,
            &page.messages,
        )));
    }
    let (since, limit) = (
        q.since.unwrap_or(0),
        q.limit
            .map_or(st.shared.cfg.history_size, |l| l.min(10_000) as usize),
    );
    let view = st
        .hub
        .send(hub::GetHistory {
            room: room.clone(),
            since,
            limit,
        })
        .await
        .map_err(|_| HubError::new(ErrorCode::Internal, "hub unavailable"))?;
    // The stored frames are JSON already: splice them in rather than re-encode.
    let (head, messages) = match &view {
        Some(v) => (
            serde_json::json!({ "room": room, "epoch": &*v.epoch, "seq": v.seq, "first_seq": v.first_seq }),
            &v.messages[..],
        ),
        None => (
            serde_json::json!({ "room": room, "epoch": null, "seq": 0, "first_seq": 1 }),
            &[][..],
        ),
    };
    Ok(json(crate::scrollback::with_messages(&head, messages)))
}

/// `GET /api/rooms/{room}/presence` → members with their status.
pub async fn presence(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, HubError> {
    let room = room_param(&path)?;
    readable(&req, &st, &room)?;
    let members = st
        .hub
        .send(hub::GetMembers { room: room.clone() })
        .await
        .map_err(|_| HubError::new(ErrorCode::Internal, "hub unavailable"))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "room": room, "members": members })))
}

#[derive(Deserialize)]
pub struct DevTokenQuery {
    sub: Option<String>,
    name: Option<String>,
    role: Option<Role>,
    rooms: Option<String>,
    ttl: Option<u64>,
    /// Comma-separated MQTT filters for the `mqtt_sub` / `mqtt_pub` claims.
    mqtt_sub: Option<String>,
    mqtt_pub: Option<String>,
}

/// `GET /api/dev/token?sub=&name=&role=&rooms=a,b&ttl=&mqtt_sub=&mqtt_pub=` (dev mode only) → `{token, user, exp}`.
pub async fn dev_token(
    st: web::Data<AppState>,
    q: web::Query<DevTokenQuery>,
) -> Result<HttpResponse, HubError> {
    if !st.shared.cfg.dev {
        return Err(HubError::new(
            ErrorCode::NotFound,
            "dev routes are off (set SWITCHBOARD_DEV=true)",
        ));
    }
    let q = q.into_inner();
    let sub = q
        .sub
        .unwrap_or_else(|| format!("dev-{}", crate::ids::random_hex(3)));
    if let Some(why) = crate::ids::sub_problem(&sub) {
        return Err(HubError::new(ErrorCode::BadRequest, why));
    }
    let rooms = q.rooms.map(|r| {
        r.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    });
    let mut claims = claims_for(
        &sub,
        q.name.as_deref(),
        q.role,
        rooms,
        q.ttl.unwrap_or(3600).min(30 * 24 * 3600),
    );
    let list = |v: Option<String>| v.map(|s| s.split(',').map(|p| p.trim().to_string()).collect());
    claims.mqtt_sub = list(q.mqtt_sub);
    claims.mqtt_pub = list(q.mqtt_pub);
    crate::mqtt::access::MqttAccess::from_claims(claims.mqtt_sub.clone(), claims.mqtt_pub.clone())
        .map_err(|e| HubError::new(ErrorCode::BadRequest, e))?;
    let token = st.shared.auth.mint(&claims)?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "token": token, "user": sub, "exp": claims.exp })))
}
