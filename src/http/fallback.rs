//! What SSE and long-polling share: opening a session behind a Relay, finding
//! it by key, handing it client frames, and ending it.

use super::admit;
use crate::error::{ErrorCode, HubError};
use crate::outbox;
use crate::relay::{self, Entry, Kind, Relay};
use crate::session::{self, Session, Transport};
use crate::AppState;
use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Admits the request (token, guest name, or a later `auth` frame) and starts
/// a Session with a Relay draining its queue. Returns the key.
pub fn open(req: &HttpRequest, st: &AppState, kind: Kind) -> Result<(String, Entry), HubError> {
    let shared = &st.shared;
    let admitted = admit(req.head(), shared)?;
    let key = relay::new_key();
    let ctx = Context::<Session>::new();
    let (outbox, close_tx, queue) = outbox::queue(shared.cfg.outbox, ctx.address().recipient());
    let transport = match kind {
        Kind::Sse => Transport::Sse { key: key.clone() },
        Kind::Polling => Transport::Polling { key: key.clone() },
    };
    let session = ctx.run(Session::new(
        shared.clone(),
        st.hub.clone(),
        st.presence.clone(),
        admitted,
        outbox,
        close_tx,
        transport,
    ));
    let relay = Relay::start(
        key.clone(),
        kind,
        session.clone(),
        queue,
        st.relays.clone(),
        shared.cfg.outbox,
        shared.cfg.http_session_timeout,
        shared.cfg.poll_timeout,
    );
    Ok((
        key,
        Entry {
            kind,
            relay,
            session,
        },
    ))
}

fn expired() -> HubError {
    HubError::new(
        ErrorCode::SessionExpired,
        "no such session: it expired or was closed; open a new one",
    )
}

/// The live session `key` of this transport.
pub fn find(st: &AppState, key: &str, kind: Kind) -> Result<Entry, HubError> {
    st.relays
        .get(key)
        .filter(|e| e.kind == kind)
        .ok_or_else(expired)
}

#[derive(Deserialize)]
pub struct KeyQuery {
    key: String,
    /// SSE: acknowledges every frame up to this cursor.
    ack: Option<u64>,
}

/// Splits a send body into frames: one JSON object, or an array of them.
/// The frames themselves are parsed by the session, as WebSocket frames are.
fn frames(body: &[u8]) -> Result<Vec<Bytes>, HubError> {
    let bad =
        |e: serde_json::Error| HubError::new(ErrorCode::BadJson, format!("body is not JSON: {e}"));
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let list: Vec<&RawValue> = serde_json::from_slice(body).map_err(bad)?;
        Ok(list
            .into_iter()
            .map(|r| Bytes::copy_from_slice(r.get().as_bytes()))
            .collect())
    } else {
        let one: &RawValue = serde_json::from_slice(body).map_err(bad)?;
        Ok(vec![Bytes::copy_from_slice(one.get().as_bytes())])
    }
}

/// `POST /sse/send` and `POST /poll/send`.
pub async fn send(
    req: &HttpRequest,
    st: &AppState,
    q: KeyQuery,
    payload: web::Payload,
    kind: Kind,
) -> Result<HttpResponse, HubError> {
    let body = read_body(req, payload, st.shared.cfg.hard_max_frame).await?;
    let entry = find(st, &q.key, kind)?;
    let frames = frames(&body)?;
    let n = frames.len();
    if let Some(c) = q.ack {
        entry.relay.do_send(relay::Ack(c));
    }
    for f in frames {
        entry.session.do_send(session::Inbound(f));
    }
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "accepted": n })))
}

/// `POST /sse/close` and `POST /poll/close`.
pub async fn close(st: &AppState, q: KeyQuery, kind: Kind) -> Result<HttpResponse, HubError> {
    let entry = find(st, &q.key, kind)?;
    entry.relay.do_send(relay::End);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "closed": true })))
}

/// Reads a request body of at most `limit` bytes. A `Content-Length` over it
/// is refused before a byte is read; a chunked body is read only up to it.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, HubError> {
    use futures_util::StreamExt;
    let too_large = || {
        HubError::new(
            ErrorCode::TooLarge,
            format!("body is over the limit of {limit} bytes"),
        )
    };
    let announced = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| HubError::new(ErrorCode::BadRequest, e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
