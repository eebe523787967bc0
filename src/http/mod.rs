//! HTTP routes: the WebSocket upgrade, the REST API, health, metrics, static files.

mod api;
mod ops;
mod ws;

use crate::error::{ErrorCode, HubError};
use actix_web::{web, HttpRequest};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(1024 * 1024)
            .error_handler(|e, _| {
                let code = match &e {
                    actix_web::error::JsonPayloadError::Deserialize(d) if d.is_data() => {
                        ErrorCode::BadRequest
                    }
                    actix_web::error::JsonPayloadError::Overflow { .. }
                    | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => {
                        ErrorCode::TooLarge
                    }
                    actix_web::error::JsonPayloadError::ContentType => ErrorCode::BadRequest,
                    _ => ErrorCode::BadJson,
                };
                HubError::new(code, e.to_string()).into()
            }),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| HubError::new(ErrorCode::BadRequest, e.to_string()).into()),
    )
    .route("/ws", web::get().to(ws::upgrade))
    .route("/healthz", web::get().to(ops::healthz))
    .route("/metrics", web::get().to(ops::metrics))
    .route("/api/publish", web::post().to(api::publish))
    .route("/api/broadcast", web::post().to(api::broadcast))
    .route("/api/rooms", web::get().to(api::rooms))
    .route("/api/rooms/{room}/history", web::get().to(api::history))
    .route("/api/rooms/{room}/presence", web::get().to(api::presence))
    .route("/api/dev/token", web::get().to(api::dev_token))
    .default_service(web::to(ops::static_file));
}

/// The token from `Authorization: Bearer …`, if any.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let v = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
