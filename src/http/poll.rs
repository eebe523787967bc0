//! Long-polling: `POST /poll/open`, `GET /poll`, `POST /poll/send`, `POST /poll/close`.

use super::fallback::{self, KeyQuery};
use crate::error::{ErrorCode, HubError};
use crate::relay::{self, Kind};
use crate::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tokio::sync::oneshot;

pub async fn open(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, HubError> {
    let (key, _) = fallback::open(&req, &st, Kind::Polling)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "key": key, "transport": "polling" })))
}

#[derive(Deserialize)]
pub struct PollQuery {
    key: String,
    #[serde(default)]
    cursor: u64,
}

pub async fn poll(
    st: web::Data<AppState>,
    q: web::Query<PollQuery>,
) -> Result<HttpResponse, HubError> {
    let entry = fallback::find(&st, &q.key, Kind::Polling)?;
    let (reply, answer) = oneshot::channel();
    entry.relay.do_send(relay::Poll {
        cursor: q.cursor,
        reply,
    });
    let body = answer
        .await
        .map_err(|_| HubError::new(ErrorCode::SessionExpired, "that session just ended"))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-store"))
        .body(body))
}

pub async fn send(
    req: HttpRequest,
    st: web::Data<AppState>,
    q: web::Query<KeyQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, HubError> {
    fallback::send(&req, &st, q.into_inner(), payload, Kind::Polling).await
}

pub async fn close(
    st: web::Data<AppState>,
    q: web::Query<KeyQuery>,
) -> Result<HttpResponse, HubError> {
    fallback::close(&st, q.into_inner(), Kind::Polling).await
}
