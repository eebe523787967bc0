//! `GET /sse` (open or resume a stream), `POST /sse/send`, `POST /sse/close`.

use super::fallback::{self, KeyQuery};
use crate::error::{ErrorCode, HubError};
use crate::relay::{self, Kind};
use crate::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::Deserialize;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

#[derive(Deserialize)]
struct ResumeQuery {
    #[serde(rename = "lastEventId")]
    last_event_id: Option<String>,
    token: Option<String>,
    name: Option<String>,
}

/// `<key>:<cursor>`, from `Last-Event-ID` or `?lastEventId=`.
fn resume_point(req: &HttpRequest, q: &ResumeQuery) -> Option<(String, u64)> {
    let raw = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| q.last_event_id.clone())?;
    let (key, cursor) = raw.trim().split_once(':')?;
    Some((key.to_string(), cursor.parse().ok()?))
}

/// The SSE response body: the chunks its relay writes.
struct EventStream(mpsc::Receiver<Bytes>);

impl futures_core::Stream for EventStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().0.poll_recv(cx).map(|c| c.map(Ok))
    }
}

pub async fn open(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, HubError> {
    let q = web::Query::<ResumeQuery>::from_query(req.query_string())
        .map_err(|e| HubError::new(ErrorCode::BadRequest, e.to_string()))?
        .into_inner();
    let resume = resume_point(&req, &q);
    let (entry, after) = match resume
        .as_ref()
        .and_then(|(key, c)| fallback::find(&st, key, Kind::Sse).ok().map(|e| (e, *c)))
    {
        Some(found) => found,
        // A resume of a session that is gone starts afresh when the request can
        // authenticate by itself (EventSource reconnects to the same URL).
        None if resume.is_some()
            && q.token.is_none()
            && q.name.is_none()
            && super::bearer(&req).is_none() =>
        {
            return Err(HubError::new(
                ErrorCode::SessionExpired,
                "that session expired or was closed; open a new one",
            ))
        }
        None => (fallback::open(&req, &st, Kind::Sse)?.1, 0),
    };
    // Room for a full window of single-frame chunks, plus the resume chunk
    // and keepalives: a stream this far behind is a slow consumer.
    let (tx, rx) = mpsc::channel(st.shared.cfg.outbox + 8);
    entry
        .relay
        .send(relay::Attach { after, tx })
        .await
        .map_err(|_| HubError::new(ErrorCode::SessionExpired, "that session just ended"))??;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(EventStream(rx)))
}

pub async fn send(
    req: HttpRequest,
    st: web::Data<AppState>,
    q: web::Query<KeyQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, HubError> {
    fallback::send(&req, &st, q.into_inner(), payload, Kind::Sse).await
}

pub async fn close(
    st: web::Data<AppState>,
    q: web::Query<KeyQuery>,
) -> Result<HttpResponse, HubError> {
    fallback::close(&st, q.into_inner(), Kind::Sse).await
}
