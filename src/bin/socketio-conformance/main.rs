//! `socketio-conformance`: the server the public protocol test suites
//! (socketio/engine.io-protocol, socketio/socket.io-protocol) run against,
//! built on the hub's Engine.IO and Socket.IO modules (`src/socketio`).
//! Listens on 127.0.0.1:`PORT` (default 3000) with pingInterval 300 ms,
//! pingTimeout 200 ms, maxPayload 1,000,000 and connectTimeout 1,000 ms:
//! `/engine.io/` echoes every message; `/socket.io/` is `layers::Conformance`.
//! `scripts/socketio-conformance.sh` runs both suites against it.

mod layers;

use actix_web::dev::RequestHead;
use actix_web::{web, HttpRequest, HttpResponse};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use switchboard::error::HubError;
use switchboard::socketio::engine::{Handshake, Layer};
use switchboard::socketio::{http, ws, EioQuery, EngineConfig, Mount, Registry};
use tokio::io::AsyncWriteExt;

/// One path's connections, all with the suites' settings.
struct Path<L: Layer> {
    engines: Arc<Registry<L>>,
    layer: fn() -> L,
}

impl<L: Layer> Clone for Path<L> {
    fn clone(&self) -> Self {
        Path {
            engines: self.engines.clone(),
            layer: self.layer,
        }
    }
}

impl<L: Layer> Mount for Path<L> {
    type Layer = L;

    fn engines(&self) -> &Arc<Registry<L>> {
        &self.engines
    }

    fn config(&self) -> EngineConfig {
        EngineConfig {
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            max_payload: 1_000_000,
            connect_timeout: Duration::from_millis(1000),
            upgrade_timeout: Duration::from_secs(10),
            queue: 4096,
            recovery: Duration::ZERO,
        }
    }

    fn admit(&self, head: &RequestHead, q: &EioQuery) -> Result<Handshake, HubError> {
        Ok(Handshake {
            token: q.token.clone(),
            name: q.name.clone(),
            addr: head
                .peer_addr
                .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip()),
            connect: None,
        })
    }

    fn layer(&self) -> L {
        (self.layer)()
    }
}

async fn get<M: Mount>(req: HttpRequest, m: web::Data<M>) -> Result<HttpResponse, HubError> {
    http::serve_get(req, m.get_ref()).await
}

async fn post<M: Mount>(
    req: HttpRequest,
    m: web::Data<M>,
    body: web::Payload,
) -> Result<HttpResponse, HubError> {
    http::serve_post(req, m.get_ref(), body).await
}

async fn other<M: Mount>(req: HttpRequest, m: web::Data<M>) -> HttpResponse {
    http::serve_other(req, m.get_ref())
}

fn resource<M: Mount>(paths: [&str; 2], m: M) -> actix_web::Resource {
    web::resource(paths)
        .app_data(web::Data::new(m))
        .route(web::get().to(get::<M>))
        .route(web::post().to(post::<M>))
        .default_service(web::to(other::<M>))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| std::io::Error::other(format!("PORT={p} is not a port")))?,
        Err(_) => 3000,
    };
    let echo = Path {
        engines: Arc::default(),
        layer: || layers::Echo,
    };
    let sio = Path {
        engines: Arc::default(),
        layer: layers::Conformance::default,
    };
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    let addr = listener.local_addr()?;
    let server = actix_server::Server::build()
        .workers(1)
        .listen("conformance", listener, move || {
            let (e, s) = (echo.clone(), sio.clone());
            let app = actix_web::App::new()
                .service(resource(["/engine.io/", "/engine.io"], echo.clone()))
                .service(resource(["/socket.io/", "/socket.io"], sio.clone()));
            actix_http::HttpService::build()
                .local_addr(addr)
                .on_connect_ext(|tcp: &actix_web::rt::net::TcpStream, _| {
                    let _ = tcp.set_nodelay(true);
                })
                // WebSocket upgrades leave actix-http with the bare socket,
                // as on the hub (src/http/ws.rs).
                .upgrade(actix_service::fn_service(
                    move |(req, framed): (actix_http::Request, _)| {
                        let (e, s) = (e.clone(), s.clone());
                        async move {
                            let framed: actix_codec::Framed<
                                actix_web::rt::net::TcpStream,
                                actix_http::h1::Codec,
                            > = framed;
                            let parts = framed.into_parts();
                            let (mut io, buf) = (parts.io, parts.read_buf);
                            match req.path() {
                                "/engine.io/" | "/engine.io" => ws::upgraded(e, req, io, buf).await,
                                "/socket.io/" | "/socket.io" => ws::upgraded(s, req, io, buf).await,
                                _ => {
                                    let _ = io
                                        .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                        .await;
                                }
                            }
                            Ok::<_, actix_web::Error>(())
                        }
                    },
                ))
                .finish(actix_service::map_config(app, |_| {
                    actix_web::dev::AppConfig::default()
                }))
                .tcp()
        })?
        .run();
    println!("socketio-conformance listening on http://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    server.await
}
