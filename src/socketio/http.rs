//! Long-polling at `/socket.io/`: `GET` opens a connection (no `sid`) or
//! waits for packets, `POST` delivers the client's packets. Refusals are the
//! Engine.IO errors (`EioError`): HTTP 400 with `{"code":n,"message":…}`.
//! Generic over the [`Mount`] (`serve_get`, …); `get`, `post` and `other`
//! are the hub's.

use super::engine::{Engine, Kill, Poll, Post};
use super::packet;
use super::{EioError, EioQuery, Mount, Transport};
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
type Found<M> = Option<Addr<Engine<<M as Mount>::Layer>>>;

fn lookup<M: Mount>(req: &HttpRequest, m: &M) -> Result<(EioQuery, Found<M>), EioError> {
    let q = EioQuery::parse(req.query_string())?;
    if q.transport()? != Transport::Polling {
        // A WebSocket is asked for with an upgrade, not a plain request.
        return Err(EioError::BadRequest);
    }
    match q.sid.as_deref() {
        Some(sid) => match m.engines().get(sid) {
            Some(e) => Ok((q, Some(e))),
            None => Err(EioError::UnknownSid),
        },
        None => Ok((q, None)),
    }
}

pub async fn get(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, HubError> {
    serve_get(req, st.get_ref()).await
}

pub async fn post(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Payload,
) -> Result<HttpResponse, HubError> {
    serve_post(req, st.get_ref(), body).await
}

/// Any other method.
pub async fn other(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    serve_other(req, st.get_ref())
}

pub async fn serve_get<M: Mount>(req: HttpRequest, m: &M) -> Result<HttpResponse, HubError> {
    let (q, engine) = match lookup(&req, m) {
        Ok(found) => found,
        Err(e) => return Ok(refuse(e)),
    };
    let Some(engine) = engine else {
        return handshake(&req, m, q);
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
fn handshake<M: Mount>(req: &HttpRequest, m: &M, q: EioQuery) -> Result<HttpResponse, HubError> {
    if let Err(e) = q.check_version() {
        return Ok(refuse(e));
    }
    let hs = m.admit(req.head(), &q)?;
    let sid = crate::ids::random_hex(16);
    let engine = Engine::new(sid.clone(), m.engines().clone(), m.config(), hs, m.layer());
    let open = packet::encode_payload([&engine.open_packet()]);
    m.engines().insert(sid, engine.start());
    Ok(packets(open))
}

pub async fn serve_post<M: Mount>(
    req: HttpRequest,
    m: &M,
    body: web::Payload,
) -> Result<HttpResponse, HubError> {
    let engine = match lookup(&req, m) {
        Ok((_, Some(e))) => e,
        Ok((_, None)) => return Ok(refuse(EioError::BadHandshakeMethod)),
        Err(e) => return Ok(refuse(e)),
    };
    let max = m.config().max_payload;
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

pub fn serve_other<M: Mount>(req: HttpRequest, m: &M) -> HttpResponse {
    match lookup(&req, m) {
        Ok((_, None)) => refuse(EioError::BadHandshakeMethod),
        Ok((_, Some(_))) => HttpResponse::MethodNotAllowed().finish(),
        Err(e) => refuse(e),
    }
}
