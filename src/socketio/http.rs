//! Long-polling at `/socket.io/`: `GET` opens a connection (no `sid`) or
//! waits for packets, `POST` delivers the client's packets. Refusals are the
//! Engine.IO errors (`EioError`): HTTP 400 with `{"code":n,"message":…}`.

use super::engine::{Engine, Handshake, Kill, Poll, Post};
use super::packet;
use super::{EioError, EioQuery, EngineConfig, Transport};
use crate::error::HubError;
use crate::AppState;
use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use tokio::sync::oneshot;

fn refuse(e: EioError) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(e.status())
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .content_type("application/json")
    .body(e.body())
}

fn packets(body: bytes::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=UTF-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

/// The query, and the connection it names (if it names one), after the
/// checks every request gets.
fn lookup(req: &HttpRequest, st: &AppState) -> Result<(EioQuery, Option<Addr<Engine>>), EioError> {
    let q = EioQuery::parse(req.query_string())?;
    if q.transport()? != Transport::Polling {
        // A WebSocket is asked for with an upgrade, not a plain request.
        return Err(EioError::BadRequest);
    }
    match q.sid.as_deref() {
        Some(sid) => match st.engines.get(sid) {
            Some(e) => Ok((q, Some(e))),
            None => Err(EioError::UnknownSid),
        },
        None => Ok((q, None)),
    }
}

pub async fn get(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, HubError> {
    let (q, engine) = match lookup(&req, &st) {
        Ok(found) => found,
        Err(e) => return Ok(refuse(e)),
    };
    let Some(engine) = engine else {
        return handshake(&req, &st, q);
    };
    let (reply, answer) = oneshot::channel();
    engine.do_send(Poll(reply));
    Ok(match answer.await {
        Ok(Ok(body)) => packets(body),
        Ok(Err(e)) => refuse(e),
        Err(_) => refuse(EioError::UnknownSid),
    })
}

/// A new long-polling connection: the `open` packet is the first answer.
fn handshake(req: &HttpRequest, st: &AppState, q: EioQuery) -> Result<HttpResponse, HubError> {
    if let Err(e) = q.check_version() {
        return Ok(refuse(e));
    }
    // Shutting down, or at the connection limit: our usual 503.
    crate::http::admit_capacity(&st.shared)?;
    let sid = crate::ids::random_hex(16);
    let hs = Handshake {
        token: q
            .token
            .or_else(|| crate::http::bearer(req).map(str::to_string)),
        name: q.name,
        addr: crate::http::client_addr(req.head(), &st.shared),
        connect: Handshake::connect_info(req.head(), &st.shared),
    };
    let engine = Engine::new(
        sid.clone(),
        st.clone(),
        EngineConfig::of(&st.shared.cfg),
        hs,
    );
    let open = packet::encode_payload([&engine.open_packet()]);
    st.engines.insert(sid, engine.start());
    Ok(packets(open))
}

pub async fn post(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Payload,
) -> Result<HttpResponse, HubError> {
    let engine = match lookup(&req, &st) {
        Ok((_, Some(e))) => e,
        Ok((_, None)) => return Ok(refuse(EioError::BadHandshakeMethod)),
        Err(e) => return Ok(refuse(e)),
    };
    let max = st.shared.cfg.hard_max_frame;
    let buf = match crate::http::fallback::read_body(&req, body, max).await {
        Ok(b) => b,
        Err(e) if e.code == crate::error::ErrorCode::TooLarge => {
            engine.do_send(Kill("payload too large"));
            return Ok(HttpResponse::PayloadTooLarge().finish());
        }
        Err(_) => return Ok(refuse(EioError::BadRequest)),
    };
    let parsed = match packet::parse_payload(&buf) {
        Ok(p) => p,
        Err(e) => {
            log::debug!("engine.io POST refused: {e}");
            engine.do_send(Kill("parse error"));
            return Ok(refuse(EioError::BadRequest));
        }
    };
    Ok(match engine.send(Post(parsed)).await {
        Ok(Ok(())) => HttpResponse::Ok()
            .content_type("text/html")
            .insert_header(("Cache-Control", "no-store"))
            .body("ok"),
        Ok(Err(e)) => refuse(e),
        Err(_) => refuse(EioError::UnknownSid),
    })
}

/// Any other method.
pub async fn other(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    match lookup(&req, &st) {
        Ok((_, None)) => refuse(EioError::BadHandshakeMethod),
        Ok((_, Some(_))) => HttpResponse::MethodNotAllowed().finish(),
        Err(e) => refuse(e),
    }
}
