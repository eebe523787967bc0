//! `GET /ws`: authenticate (token in `?token=` or `Authorization: Bearer`),
//! admit a guest (`?name=`), or leave it to an `auth` frame; then upgrade and
//! start the Session actor with its outbound queue as the response body.

use super::bearer;
use crate::error::{ErrorCode, HubError};
use crate::metrics::METRICS;
use crate::outbox;
use crate::outbox::ConnGuard;
use crate::session::Session;
use crate::wsframes::WsFrames;
use crate::AppState;
use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::sync::atomic::Ordering;

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
    name: Option<String>,
}

pub async fn upgrade(
    req: HttpRequest,
    payload: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, HubError> {
    let shared = &st.shared;
    if shared.shutting_down.load(Ordering::Relaxed) {
        return Err(HubError::new(
            ErrorCode::Unavailable,
            "server is shutting down",
        ));
    }
    if METRICS.connections.load(Ordering::Relaxed) >= shared.cfg.max_connections as i64 {
        return Err(HubError::new(
            ErrorCode::Unavailable,
            "connection limit reached",
        ));
    }
    let q = web::Query::<WsQuery>::from_query(req.query_string())
        .map_err(|e| HubError::new(ErrorCode::BadRequest, e.to_string()))?
        .into_inner();
    let token = q.token.as_deref().or_else(|| bearer(&req));
    let ident = match (token, q.name.as_deref()) {
        (Some(t), _) => Some(shared.auth.verify(t)?),
        (None, Some(name)) if shared.auth.guests => Some(shared.auth.guest(Some(name))),
        (None, Some(_)) => {
            METRICS.auth_failures.fetch_add(1, Ordering::Relaxed);
            return Err(HubError::new(
                ErrorCode::Unauthorized,
                "guests are disabled: a token is required",
            ));
        }
        (None, None) => None,
    };
    let mut res = actix_web_actors::ws::handshake(&req)
        .map_err(|e| HubError::new(ErrorCode::BadRequest, e.to_string()))?;

    let mut ctx = Context::<Session>::new();
    let (outbox, close_tx, body) = outbox::channel(
        shared.cfg.outbox,
        ctx.address().recipient(),
        ConnGuard::new(),
    );
    ctx.add_stream(WsFrames::new(payload, shared.cfg.hard_max_frame));
    let session = Session::new(
        shared.clone(),
        st.hub.clone(),
        st.presence.clone(),
        ident,
        outbox,
        close_tx,
    );
    ctx.run(session);
    Ok(res.body(body))
}
