//! CORS for what a page on another origin reaches through the JS SDK: the SSE
//! and long-polling transports and the REST API. A WebSocket needs none, but
//! without these headers a browser refuses the fallbacks to every page not
//! served by the hub itself. Credentials here are bearer tokens and session
//! keys, never cookies, so allowing an origin lends it no ambient authority.
//! Only the routes listed in [`COVERED`] get the headers: not the development
//! token route (no other site may mint tokens from a developer's local hub),
//! nor `/api/events` (readable without a token under
//! `SWITCHBOARD_MONITOR_PUBLIC`), nor health, metrics or the demo pages. The
//! SDK's files (`static_files::SDK`, also under `/sdk/<version>/`) are public
//! code that pages on any origin `import`: they answer `*` whatever
//! `SWITCHBOARD_CORS_ORIGINS` says. The path is the canonical one
//! (`http::path`), the same the router matches.

use crate::AppState;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, Error, HttpResponse};
use futures_util::future::LocalBoxFuture;

/// How long a browser may cache a preflight answer, in seconds.
const MAX_AGE: &str = "600";

/// The route prefixes CORS applies to (each with everything under it): the
/// HTTP transports and the REST calls made with a bearer token.
const COVERED: &[&str] = &[
    "/sse",
    "/poll",
    "/api/rooms",
    "/api/publish",
    "/api/broadcast",
    "/api/notify",
    "/api/openapi.json",
];

/// Does CORS apply to this (canonical) path at all?
fn covered(path: &str) -> bool {
    COVERED.iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The `Access-Control-Allow-Origin` value for a request from `origin` to
/// `path`, given `SWITCHBOARD_CORS_ORIGINS` (`*`, a list, or empty for none).
pub fn allow_origin(allowed: &[String], path: &str, origin: Option<&str>) -> Option<HeaderValue> {
    let origin = origin?;
    if crate::static_files::is_sdk(path) {
        return Some(HeaderValue::from_static("*"));
    }
    if !covered(path) {
        return None;
    }
    if allowed.iter().any(|a| a == "*") {
        return Some(HeaderValue::from_static("*"));
    }
    allowed
        .iter()
        .any(|a| a.eq_ignore_ascii_case(origin))
        .then(|| HeaderValue::from_str(origin).ok())
        .flatten()
}

fn add(headers: &mut HeaderMap, allow: HeaderValue) {
    let echoed = allow != "*";
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    if echoed {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// Answers preflights and adds the allow header to covered responses. Used
/// with `App::wrap_fn`.
pub fn middleware<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse<EitherBody<B>>, Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let allow = req
        .app_data::<web::Data<AppState>>()
        .and_then(|st| allow_origin(&st.shared.cfg.cors_origins, req.path(), origin));
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        if let Some(allow) = allow {
            let mut res = HttpResponse::NoContent()
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
                .insert_header((
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    "Authorization, Content-Type, Last-Event-ID",
                ))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE))
                .finish();
            add(res.headers_mut(), allow);
            let res = req.into_response(res).map_into_right_body();
            return Box::pin(async move { Ok(res) });
        }
    }
    let fut = srv.call(req);
    Box::pin(async move {
        let mut res = fut.await?;
        if let Some(allow) = allow {
            add(res.headers_mut(), allow);
        }
        Ok(res.map_into_left_body())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_requests_get_the_header() {
        let any = vec!["*".to_string()];
        let list = vec!["https://app.example".to_string()];
        let o = Some("https://app.example");
        assert_eq!(allow_origin(&any, "/poll/send", o).unwrap(), "*");
        assert_eq!(allow_origin(&any, "/sse", o).unwrap(), "*");
        assert_eq!(allow_origin(&any, "/api/rooms/x/history", o).unwrap(), "*");
        assert!(allow_origin(&any, "/api/dev/token", o).is_none());
        assert!(allow_origin(&any, "/api/Dev/token", o).is_none());
        assert!(allow_origin(&any, "/api/events", o).is_none());
        assert!(allow_origin(&any, "/api/roomsx", o).is_none());
        assert_eq!(allow_origin(&any, "/api/notify", o).unwrap(), "*");
        assert!(allow_origin(&any, "/metrics", o).is_none());
        assert!(allow_origin(&any, "/ssebad", o).is_none());
        assert!(allow_origin(&any, "/poll", None).is_none());
        assert_eq!(
            allow_origin(&list, "/poll", o).unwrap(),
            "https://app.example"
        );
        assert!(allow_origin(&list, "/poll", Some("https://evil.example")).is_none());
        assert!(allow_origin(&[], "/poll", o).is_none());
        // The SDK, whatever the setting; not the demo pages.
        assert_eq!(allow_origin(&[], "/switchboard.js", o).unwrap(), "*");
        assert_eq!(allow_origin(&list, "/sdk/0.1.0/ot.js", o).unwrap(), "*");
        assert!(allow_origin(&any, "/index.html", o).is_none());
        assert!(allow_origin(&any, "/switchboard.js", None).is_none());
    }
}
