//! Health, metrics and static files.

use crate::hub::GetStats;
use crate::metrics::METRICS;
use crate::static_files;
use crate::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use std::sync::atomic::Ordering;

pub async fn healthz(st: web::Data<AppState>) -> HttpResponse {
    let stats = st.hub.send(GetStats).await.ok();
    let shutting_down = st.shared.shutting_down.load(Ordering::Relaxed);
    let mqtt = st
        .shared
        .services
        .get()
        .and_then(|s| s.mqtt.as_ref())
        .map(|b| b.status.get());
    let body = serde_json::json!({
        "status": if shutting_down { "shutting_down" } else if stats.is_some() { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": st.shared.started.elapsed().as_secs(),
        "connections": METRICS.connections.load(Ordering::Relaxed),
        "sessions": stats.as_ref().map(|s| s.sessions),
        "users": stats.as_ref().map(|s| s.users),
        "rooms": stats.as_ref().map(|s| s.rooms),
        "idle_rooms": stats.as_ref().map(|s| s.idle_rooms),
        // The hub serves without its broker, so a disconnected bridge is
        // reported here but does not make the hub unhealthy.
        "mqtt": mqtt,
        // Failing writes are refused with storage_error; reads and live
        // traffic go on, so this does not make the hub unhealthy either.
        "store": st.shared.store.status.report(),
        // Several nodes through Redis: this node's id and its Redis link.
        "cluster": st.shared.cluster.as_ref().map(|c| serde_json::json!({
            "node": c.node(),
            "redis": if c.link_up() { "up" } else { "down" },
            // Each Redis of SWITCHBOARD_REDIS_URL, in its order.
            "redis_each": c.links_up().iter().map(|up| if *up { "up" } else { "down" }).collect::<Vec<_>>(),
            // Whether this node numbers MQTT messages into mapped rooms
            // (null: it has no bridge with mapped rooms).
            "mqtt_lease": c.competes_for_lease().then(|| c.mqtt_leader()),
            // The whole cluster, as of this node's last heartbeat.
            "figures": c.figures(),
        })),
    });
    if shutting_down || stats.is_none() {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

pub async fn metrics(st: web::Data<AppState>) -> HttpResponse {
    let mut body = METRICS.render();
    crate::monitor::render_metrics(&st.shared, &mut body);
    crate::procstat::render(&mut body);
    crate::webhooks::render_metrics(&mut body);
    crate::proxy::render_metrics(&st.shared.cfg.proxy, &mut body);
    if let Some(c) = &st.shared.cluster {
        use std::fmt::Write;
        let _ = write!(
            body,
            "# HELP switchboard_redis_up Whether this node's last Redis operation succeeded.\n\
             # TYPE switchboard_redis_up gauge\n\
             switchboard_redis_up{{node=\"{n}\"}} {}\n\
             # HELP switchboard_redis_ops_total Redis operations this node sent.\n\
             # TYPE switchboard_redis_ops_total counter\n\
             switchboard_redis_ops_total{{node=\"{n}\"}} {}\n\
             # HELP switchboard_redis_gaps_total Gaps in a room's channel repaired from its stream.\n\
             # TYPE switchboard_redis_gaps_total counter\n\
             switchboard_redis_gaps_total{{node=\"{n}\"}} {}\n\
             # HELP switchboard_redis_link_up Whether this node's last operation on each Redis (0 = the first URL) succeeded.\n\
             # TYPE switchboard_redis_link_up gauge\n",
            c.link_up() as u8,
            c.ops(),
            c.gaps(),
            n = c.node(),
        );
        for (i, up) in c.links_up().into_iter().enumerate() {
            let _ = writeln!(
                body,
                "switchboard_redis_link_up{{node=\"{}\",redis=\"{i}\"}} {}",
                c.node(),
                up as u8
            );
        }
        if let Some(f) = c.figures() {
            let _ = write!(
                body,
                "# HELP switchboard_cluster_nodes Nodes alive, as of this node's last heartbeat.\n\
                 # TYPE switchboard_cluster_nodes gauge\n\
                 switchboard_cluster_nodes{{node=\"{n}\"}} {}\n\
                 # HELP switchboard_cluster_connections WebSocket connections on every node.\n\
                 # TYPE switchboard_cluster_connections gauge\n\
                 switchboard_cluster_connections{{node=\"{n}\"}} {}\n\
                 # HELP switchboard_cluster_sessions Sessions on every node.\n\
                 # TYPE switchboard_cluster_sessions gauge\n\
                 switchboard_cluster_sessions{{node=\"{n}\"}} {}\n\
                 # HELP switchboard_cluster_users_online Users with a session on any node.\n\
                 # TYPE switchboard_cluster_users_online gauge\n\
                 switchboard_cluster_users_online{{node=\"{n}\"}} {}\n\
                 # HELP switchboard_cluster_rooms Rooms with a member on any node.\n\
                 # TYPE switchboard_cluster_rooms gauge\n\
                 switchboard_cluster_rooms{{node=\"{n}\"}} {}\n",
                f.nodes,
                f.connections,
                f.sessions,
                f.users_online,
                f.rooms,
                n = c.node(),
            );
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}

pub async fn static_file(req: HttpRequest) -> HttpResponse {
    if req.method() != actix_web::http::Method::GET && req.method() != actix_web::http::Method::HEAD
    {
        return crate::error::HubError::new(crate::error::ErrorCode::NotFound, "no such route")
            .into();
    }
    // The versioned SDK never changes under its URL; the rest may with the
    // next build.
    let (file, cache) = if req.path().starts_with("/sdk/") {
        let f = static_files::find_versioned(req.path());
        (f, "public, max-age=31536000, immutable")
    } else {
        (static_files::find(req.path()), "no-cache")
    };
    match file {
        Some(f) => HttpResponse::Ok()
            .content_type(f.content_type)
            .insert_header(("Cache-Control", cache))
            .body(f.body),
        None => {
            crate::error::HubError::new(crate::error::ErrorCode::NotFound, "no such file").into()
        }
    }
}

impl From<crate::error::HubError> for HttpResponse {
    fn from(e: crate::error::HubError) -> HttpResponse {
        actix_web::ResponseError::error_response(&e)
    }
}

/// The REST API's OpenAPI 3 document (src/http/openapi.json, compiled in).
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /api/openapi.json`.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// src/http/openapi.json lists exactly the routes the server registers
    /// (`http::REST_ROUTES`), each operation once, with the crate's version.
    #[test]
    fn the_openapi_document_matches_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.0.3");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        let mut documented = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                documented.insert((method.clone(), path.clone()));
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_string()), "operationId {id} twice");
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path}: no responses"
                );
            }
        }
        let routes: BTreeSet<(String, String)> = super::super::REST_ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        let missing: Vec<_> = routes.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&routes).collect();
        assert!(
            missing.is_empty(),
            "routes not in src/http/openapi.json: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "documented routes that do not exist: {extra:?}"
        );
    }
}
