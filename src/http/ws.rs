//! `GET /ws`: the WebSocket transport.
//!
//! Upgrade requests never reach actix-web: actix-http hands them, with the
//! socket, to [`upgraded`], which authenticates (token in `?token=` or
//! `Authorization: Bearer`), admits a guest (`?name=`) or leaves it to an
//! `auth` frame, answers the handshake, and then serves the socket itself:
//! the Session actor reads frames from one half ([`WsFrames`]) and a small
//! task writes its queue to the other ([`outbox::write_ws`]). This drops the
//! HTTP/1 dispatcher's two 8 KiB buffers, which would otherwise stay with
//! every connection for its whole life (see docs/BENCHMARKS.md).
//! permessage-deflate is negotiated here when the client offers it
//! ([`crate::deflate`]).

use super::admit;
use crate::deflate::{self, offer};
use crate::error::{ErrorCode, HubError};
use crate::metrics::METRICS;
use crate::outbox::{self, ConnGuard};
use crate::session::{Session, Transport};
use crate::wsframes::WsFrames;
use crate::AppState;
use actix::prelude::*;
use actix_codec::Framed;
use actix_http::{h1, Request};
use actix_web::rt::net::TcpStream;
use actix_web::{HttpRequest, HttpResponse};
use std::sync::atomic::Ordering::Relaxed;
use tokio::io::AsyncWriteExt;

/// A plain `GET /ws` without the upgrade headers: admission errors as for a
/// real handshake, else 400.
pub async fn not_upgraded(
    req: HttpRequest,
    st: actix_web::web::Data<AppState>,
) -> Result<HttpResponse, HubError> {
    admit(req.head(), &st.shared)?;
    Err(HubError::new(
        ErrorCode::BadRequest,
        "expected a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket)",
    ))
}

/// Serves one upgrade request (`Connection: Upgrade`) and, for `/ws`, the
/// WebSocket connection that follows. Never fails: errors are answered on the
/// socket as HTTP responses with a JSON body.
pub async fn upgraded(
    st: AppState,
    mut req: Request,
    framed: Framed<TcpStream, h1::Codec>,
) -> Result<(), actix_web::Error> {
    let start = std::time::Instant::now();
    let parts = framed.into_parts();
    let mut io = parts.io;
    let client = super::client_addr(req.head(), &st.shared);
    // The same canonical path the router and CORS see (http::path).
    let canonical = super::path::canonicalise(req.head_mut());
    if canonical.is_ok() && matches!(req.path(), "/socket.io/" | "/socket.io") {
        crate::socketio::ws::upgraded(st, req, io, parts.read_buf).await;
        return Ok(());
    }
    let accepted = if let Err(e) = canonical {
        Err(e)
    } else if req.path() != "/ws" {
        Err(HubError::new(
            ErrorCode::NotFound,
            "no such WebSocket endpoint; use /ws",
        ))
    } else {
        accept_key(&req).and_then(|key| Ok((key, admit(req.head(), &st.shared)?)))
    };
    let (key, admitted) = match accepted {
        Ok(ok) => ok,
        Err(e) => {
            METRICS.error(e.code);
            crate::logging::access(
                req.method().as_str(),
                req.path(),
                e.code.http_status(),
                start.elapsed(),
                client,
            );
            let _ = io.write_all(&error_response(&e)).await;
            let _ = io.shutdown().await;
            return Ok(());
        }
    };
    let deflate = negotiate_deflate(&req, &st.shared.cfg.ws_deflate);
    let extensions = deflate
        .map(|a| format!("Sec-WebSocket-Extensions: {}\r\n", a.answer()))
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extensions}\r\n",
        String::from_utf8_lossy(&actix_http::ws::hash_key(key.as_bytes()))
    );
    crate::logging::access("GET", "/ws", 101, start.elapsed(), client);
    if io.write_all(head.as_bytes()).await.is_err() {
        return Ok(());
    }

    let shared = &st.shared;
    let (read, write) = io.into_split();
    let ctx = Context::<Session>::new();
    let (outbox, close_tx, queue) = outbox::queue(shared.cfg.outbox, ctx.address().recipient());
    actix_web::rt::spawn(outbox::write_ws(
        queue,
        write,
        shared.cfg.outbox,
        Some(ConnGuard::new()),
        deflate.map(|a| a.outbound(&shared.cfg.ws_deflate)),
    ));
    let mut ctx = ctx;
    let frames = WsFrames::new(read, shared.cfg.hard_max_frame, parts.read_buf);
    ctx.add_stream(if deflate.is_some() {
        frames.inflating()
    } else {
        frames
    });
    ctx.run(Session::new(
        shared.clone(),
        st.hub.clone(),
        st.presence.clone(),
        admitted,
        outbox,
        close_tx,
        Transport::WebSocket,
    ));
    Ok(())
}

/// The permessage-deflate offer accepted (docs/PROTOCOL.md), if enabled and
/// offered.
fn negotiate_deflate(req: &Request, settings: &deflate::Settings) -> Option<offer::Accepted> {
    if !settings.enabled {
        return None;
    }
    let values = req
        .head()
        .headers
        .get_all(actix_http::header::SEC_WEBSOCKET_EXTENSIONS)
        .map(|v| v.as_bytes());
    let accepted = offer::negotiate(values);
    if accepted.is_some() {
        METRICS.ws_deflate_connections.fetch_add(1, Relaxed);
    }
    accepted
}

/// Checks the handshake headers; returns `Sec-WebSocket-Key`.
pub fn accept_key(req: &Request) -> Result<String, HubError> {
    actix_http::ws::verify_handshake(req.head())
        .map_err(|e| HubError::new(ErrorCode::BadRequest, e.to_string()))?;
    req.head()
        .headers
        .get(actix_http::header::SEC_WEBSOCKET_KEY)
        .and_then(|k| k.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| HubError::new(ErrorCode::BadRequest, "missing Sec-WebSocket-Key"))
}

/// A complete HTTP/1.1 error response that closes the connection.
pub fn error_response(e: &HubError) -> Vec<u8> {
    let status = actix_web::http::StatusCode::from_u16(e.code.http_status())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let body = e.body().to_string();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}
