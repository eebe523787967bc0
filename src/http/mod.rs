//! HTTP routes: the WebSocket upgrade, the REST API, health, metrics, static files.

mod api;
pub mod cors;
pub mod fallback;
mod monitor;
mod notify;
mod ops;
pub mod path;
mod poll;
mod sse;
mod state;
mod streams;
mod users;
pub mod ws;

use crate::error::{ErrorCode, HubError};
use crate::metrics::METRICS;
use crate::session::Admitted;
use crate::Shared;
use actix_web::dev::RequestHead;
use actix_web::middleware::Compress;
use actix_web::{web, HttpRequest};
use serde::Deserialize;
use std::sync::atomic::Ordering;

/// The checks `message:send` makes of its `data`, for the REST calls that
/// carry one: at most `SWITCHBOARD_MAX_FRAME` bytes (`too_large`), not nested
/// too deep and no invalid `\u` escape (`bad_request`).
pub fn check_data(
    data: &serde_json::value::RawValue,
    st: &crate::AppState,
) -> Result<(), HubError> {
    let (len, max) = (data.get().len(), st.shared.cfg.max_frame);
    if len > max {
        return Err(HubError::new(
            ErrorCode::TooLarge,
            format!("data is {len} bytes; the limit is {max}"),
        ));
    }
    match crate::protocol::data_problem(data.get()) {
        Some(why) => Err(HubError::new(ErrorCode::BadRequest, why)),
        None => Ok(()),
    }
}

/// Declares the REST routes once: registers them ([`rest`]) and lists them
/// in [`REST_ROUTES`], which `src/http/openapi.json` (served at
/// `/api/openapi.json`) must match path for path and method for method (a
/// test checks both ways). The transports (`/ws`, `/sse`, `/poll`) are the
/// realtime protocol, documented in docs/PROTOCOL.md instead.
macro_rules! rest_routes {
    ($($method:ident $path:literal => $handler:expr;)*) => {
        /// Every REST route: method (lower case) and path template.
        pub const REST_ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn rest(cfg: &mut web::ServiceConfig) {
            $(cfg.route($path, web::$method().to($handler));)*
        }
    };
}

rest_routes! {
    get "/healthz" => ops::healthz;
    get "/metrics" => ops::metrics;
    get "/api/openapi.json" => ops::openapi;
    post "/api/publish" => api::publish;
    post "/api/broadcast" => api::broadcast;
    post "/api/notify" => notify::notify;
    post "/api/users/{user}/disconnect" => users::disconnect;
    get "/api/users/{user}/presence" => users::presence;
    put "/api/users/{user}/rooms/{room}" => users::subscribe;
    delete "/api/users/{user}/rooms/{room}" => users::unsubscribe;
    get "/api/rooms" => api::rooms;
    get "/api/rooms/{room}/history" => api::history;
    get "/api/rooms/{room}/presence" => api::presence;
    get "/api/rooms/{room}/state" => state::list;
    get "/api/rooms/{room}/state/{key}" => state::get;
    put "/api/rooms/{room}/state/{key}" => state::put;
    delete "/api/rooms/{room}/state/{key}" => state::delete;
    post "/api/streams/{stream}" => streams::stream;
    get "/api/dev/token" => api::dev_token;
    get "/api/events" => monitor::events;
}

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
    .route("/ws", web::get().to(ws::not_upgraded))
    // The fallback transports compress when the client accepts it (SSE
    // events are flushed as they come: the encoder flushes when the stream
    // pauses).
    .service(
        web::scope("/sse")
            .wrap(Compress::default())
            .route("", web::get().to(sse::open))
            .route("/send", web::post().to(sse::send))
            .route("/close", web::post().to(sse::close)),
    )
    .service(
        web::scope("/poll")
            .wrap(Compress::default())
            .route("", web::get().to(poll::poll))
            .route("/open", web::post().to(poll::open))
            .route("/send", web::post().to(poll::send))
            .route("/close", web::post().to(poll::close)),
    )
    // Socket.IO's Engine.IO long-polling (its WebSocket is an upgrade).
    .service(
        web::resource(["/socket.io/", "/socket.io"])
            .wrap(Compress::default())
            .route(web::get().to(crate::socketio::http::get))
            .route(web::post().to(crate::socketio::http::post))
            .default_service(web::to(crate::socketio::http::other)),
    )
    .configure(rest)
    .default_service(web::to(ops::static_file));
}

/// The token from `Authorization: Bearer …`, if any.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    bearer_of(req.head())
}

pub fn bearer_of(head: &RequestHead) -> Option<&str> {
    let v = head
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[derive(Deserialize)]
struct ConnectQuery {
    token: Option<String>,
    name: Option<String>,
}

/// Refuses a new connection during shutdown and past the connection limit.
pub fn admit_capacity(shared: &Shared) -> Result<(), HubError> {
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
    Ok(())
}

/// The client's address for a request (see `clientaddr`).
pub fn client_addr(head: &RequestHead, shared: &Shared) -> std::net::IpAddr {
    crate::clientaddr::of_request(head, &shared.cfg.trusted_proxies)
}

/// Admission for a new session on any transport: refuses during shutdown and
/// past the connection limit, then authenticates from `?token=` or a bearer
/// header, or admits a guest named by `?name=` (unless its address has
/// `SWITCHBOARD_GUESTS_PER_IP` guests open). `ident: None`: the client may
/// still send an `auth` frame within the grace period.
pub fn admit(req: &RequestHead, shared: &Shared) -> Result<Admitted, HubError> {
    admit_capacity(shared)?;
    let addr = client_addr(req, shared);
    let q = web::Query::<ConnectQuery>::from_query(req.uri.query().unwrap_or(""))
        .map_err(|e| HubError::new(ErrorCode::BadRequest, e.to_string()))?
        .into_inner();
    let token = q.token.as_deref().or_else(|| bearer_of(req));
    let mut client = crate::session::Client { addr, guest: None };
    let proxy = &shared.cfg.proxy;
    if proxy.connect.is_some() && (proxy.connect_all || (token.is_none() && q.name.is_none())) {
        // The connect hook decides (docs/PROTOCOL.md, "Proxy hooks").
        let mut info = crate::proxy::connect::ConnectInfo::of_request(req, &proxy.connect_headers);
        info.at_start = token.is_some() || q.name.is_some();
        info.token = token.map(str::to_string);
        info.name = q.name;
        return Ok(Admitted {
            ident: None,
            client,
            connect: Some(info),
        });
    }
    let ident = match (token, q.name.as_deref()) {
        (Some(t), _) => Some(shared.auth.verify(t, addr)?),
        (None, Some(name)) if shared.auth.guests => {
            client.guest = Some(shared.guest_slot(addr)?);
            Some(shared.auth.guest(Some(name)))
        }
        (None, Some(_)) => {
            let why = "guests are disabled: a token is required";
            crate::monitor::events::auth_failure(Some(addr), why);
            return Err(HubError::new(ErrorCode::Unauthorized, why));
        }
        (None, None) => None,
    };
    Ok(Admitted {
        ident,
        client,
        connect: None,
    })
}
