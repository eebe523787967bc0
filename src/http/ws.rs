//! `GET /ws`: authenticate (token in `?token=` or `Authorization: Bearer`),
//! admit a guest (`?name=`), or leave it to an `auth` frame; then upgrade and
//! start the Session actor with its outbound queue as the response body.

use super::admit;
use crate::error::{ErrorCode, HubError};
use crate::outbox;
use crate::outbox::ConnGuard;
use crate::session::{Session, Transport};
use crate::wsframes::WsFrames;
use crate::AppState;
use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};

pub async fn upgrade(
    req: HttpRequest,
    payload: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, HubError> {
    let shared = &st.shared;
    let ident = admit(&req, shared)?;
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
        Transport::WebSocket,
    );
    ctx.run(session);
    Ok(res.body(body))
}
