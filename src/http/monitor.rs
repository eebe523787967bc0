//! `GET /api/events`: the system event ring, for admins (or anyone with
//! `SWITCHBOARD_MONITOR_PUBLIC`).

use super::bearer;
use crate::error::{ErrorCode, HubError};
use crate::monitor::{events, may_watch};
use crate::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events with a larger id.
    since: Option<u64>,
    limit: Option<usize>,
}

/// `GET /api/events?since=&limit=` → `{"events":[…],"last_id"}`.
pub async fn events(
    req: HttpRequest,
    st: web::Data<AppState>,
    q: web::Query<EventsQuery>,
) -> Result<HttpResponse, HubError> {
    let cfg = &st.shared.cfg;
    if !cfg.monitor.public {
        let token = bearer(&req)
            .ok_or_else(|| HubError::new(ErrorCode::Unauthorized, "an admin token is required"))?;
        let who = st
            .shared
            .auth
            .verify(token, super::client_addr(req.head(), &st.shared))?;
        if !may_watch(&who, cfg) {
            return Err(HubError::new(
                ErrorCode::Forbidden,
                "only admins may read events",
            ));
        }
    }
    let list = events::since(q.since.unwrap_or(0), q.limit.unwrap_or(events::RING_SIZE));
    let last_id = list.last().map(|e| e.id).or(q.since).unwrap_or(0);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "events": list, "last_id": last_id })))
}
