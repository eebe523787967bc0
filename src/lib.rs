//! Switchboard: a realtime hub.
//!
//! ```text
//!  client ──WebSocket──► http::ws ──► Session actor (one per connection)
//!                                        │ typed messages
//!            ┌───────────────────────────┼──────────────────────────┐
//!            ▼                           ▼                          ▼
//!       Hub actor  ◄──control──►   Room actor (one per room)   Presence actor
//!   (directory, joins, DMs,        seq, history, typing,       per-user status,
//!    broadcast, idle-room LRU)     fan-out to member outboxes  idle sweep
//! ```
//!
//! Room messages go Session → Room → every member's [`outbox::Outbox`] (a
//! bounded queue of shared bytes), encoded once; the Hub only handles control.
//! Rooms run on their own arbiters (threads), sessions on the HTTP workers.

pub mod auth;
pub mod clientaddr;
pub mod cluster;
pub mod config;
pub mod deflate;
pub mod delivery;
pub mod docstore;
pub mod document;
pub mod error;
pub mod fdlimit;
pub mod history;
pub mod http;
pub mod hub;
pub mod idempotency;
pub mod ids;
pub mod jwks;
pub mod logging;
pub mod mailbox;
pub mod metrics;
pub mod monitor;
pub mod mqtt;
pub mod notifications;
pub mod ot;
pub mod outbound;
pub mod outbox;
pub mod presence;
pub mod procstat;
pub mod protocol;
pub mod proxy;
pub mod ratelimit;
pub mod relay;
pub mod room;
pub mod rpc;
pub mod scrollback;
pub mod session;
pub mod signal;
pub mod socketio;
pub mod state;
pub mod static_files;
pub mod store;
pub mod streams;
pub mod watch;
pub mod webhooks;
pub mod wsframes;

use actix::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Read-only state shared by every session and route.
pub struct Shared {
    pub cfg: config::Config,
    pub auth: auth::Auth,
    pub started: Instant,
    pub shutting_down: AtomicBool,
    /// The embedded database's writer (never blocks).
    pub store: store::StoreHandle,
    /// The monitor and the MQTT bridge, set once at start (they start after the Hub).
    pub services: std::sync::OnceLock<Services>,
    /// The Redis link when nodes share state (`SWITCHBOARD_REDIS_URL`).
    pub cluster: Option<cluster::Cluster>,
    /// Users' notifications: in the embedded database or in Redis.
    pub notifications: Arc<dyn notifications::Inbox>,
    /// Guest sessions open per client address (`SWITCHBOARD_GUESTS_PER_IP`).
    pub guests: Arc<clientaddr::GuestCount>,
}

impl Shared {
    /// A place for one more guest session from `addr`, or `rate_limited`.
    pub fn guest_slot(
        &self,
        addr: std::net::IpAddr,
    ) -> Result<clientaddr::GuestSlot, error::HubError> {
        self.guests
            .take(addr, self.cfg.guests_per_ip)
            .ok_or_else(|| {
                error::HubError::new(
                    error::ErrorCode::RateLimited,
                    format!(
                        "{} guest sessions are open from {addr}; sign in or close one",
                        self.cfg.guests_per_ip
                    ),
                )
            })
    }
}

/// Actors started after [`Shared`], reached through it.
pub struct Services {
    pub monitor: Addr<monitor::Monitor>,
    /// Present when `SWITCHBOARD_MQTT_URL` is set.
    pub mqtt: Option<monitor::BridgeHandle>,
}

/// What every HTTP handler gets.
#[derive(Clone)]
pub struct AppState {
    pub shared: Arc<Shared>,
    pub hub: Addr<hub::Hub>,
    pub presence: Addr<presence::Presence>,
    /// Live SSE and long-polling sessions by key.
    pub relays: Arc<relay::Registry>,
    /// The storage actor documents talk to (`docstore.rs`).
    pub store: Addr<store::Store>,
    /// Live Socket.IO (Engine.IO) connections by sid.
    pub engines: Arc<socketio::Registry>,
}

/// A listening socket with a deep accept backlog (bursts of thousands of
/// connects must not be dropped by a short default queue).
fn listen(host: &str, port: u16) -> std::io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("cannot resolve {host}")))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)?.into_std()
}

/// Runs the server until SIGTERM or SIGINT; then closes every session with
/// 1001, lets the close frames flush, and returns.
pub async fn serve(mut cfg: config::Config) -> std::io::Result<()> {
    // The connection limit's 503 must come before the open-file limit's hang.
    let explicit = config::is_set("SWITCHBOARD_MAX_CONNECTIONS");
    cfg.max_connections = fdlimit::apply(cfg.max_connections, cfg.workers, explicit);
    let auth = auth::Auth::from_config(&cfg).map_err(std::io::Error::other)?;
    // First, before any actor or thread exists: a port in use is a plain
    // error, not a panic while half-started actors are dropped.
    let listener = listen(&cfg.host, cfg.port).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {}:{}: {e}", cfg.host, cfg.port),
        )
    })?;
    let addr = listener.local_addr()?;
    let writer = store::start(&cfg.storage).map_err(std::io::Error::other)?;
    // After the writer (which migrates the database), before any session.
    let hooks = cfg
        .webhooks
        .as_ref()
        .map(|w| webhooks::start(w, &cfg.storage))
        .transpose()
        .map_err(std::io::Error::other)?;
    let (cluster, redis_arbiter) = match &cfg.cluster {
        Some(c) => {
            let (cl, arb) = cluster::start(c).map_err(std::io::Error::other)?;

            log::info!("node {} sharing rooms through Redis", cl.node());
            (Some(cl), Some(arb))
        }
        None => (None, None),
    };
    let shared = Arc::new(Shared {
        auth,
        started: Instant::now(),
        shutting_down: AtomicBool::new(false),
        services: std::sync::OnceLock::new(),
        cluster: cluster.clone(),
        guests: Default::default(),
        store: writer.handle(),
        notifications: match &cluster {
            Some(c) => Arc::new(cluster::inbox::Shared {
                cluster: c.clone(),
                per_user: cfg.storage.notifications_per_user,
            }),
            None => Arc::new(notifications::Local(writer.handle())),
        },
        cfg,
    });
    let cfg = &shared.cfg;

    let room_threads = cfg.workers.max(1);
    let arbiters: Vec<Arbiter> = (0..room_threads).map(|_| Arbiter::new()).collect();
    // Which node numbers broker messages into mapped rooms.
    let ingestion: Arc<dyn mqtt::ingest::Ingestion> = match &cluster {
        Some(c) => Arc::new(c.clone()),
        None => Arc::new(mqtt::ingest::Local),
    };
    let presence = presence::Presence::new(cfg.presence_idle);
    let presence = match &cluster {
        Some(c) => presence.with_engine(Box::new(cluster::presence::Shared(c.clone()))),
        None => presence,
    }
    .start();
    if cluster.is_some() {
        cluster::on_reregister(presence.clone().recipient());
    }
    // Documents keep their op logs and snapshots in the embedded database
    // on one node, in Redis with several (document/oplog.rs).
    let doc_store = store::Store::new(writer.handle()).start();
    let hub = hub::Hub::new(
        presence.clone(),
        arbiters.iter().map(|a| a.handle()).collect(),
        history::HistoryLimits {
            entries: cfg.history_size,
            bytes: cfg.history_bytes,
            keys: idempotency::KeyLimits {
                window_ms: cfg.idempotency_ms,
                keys: cfg.idempotency_keys,
            },
        },
        cfg.idle_room_cache,
        cfg.idle_history_bytes,
        cfg.typing_ttl,
        cfg.room_queue,
    )
    .with_state_limits(cfg.state)
    .with_stream_limits(cfg.streams)
    .with_room_rules(cfg.room_rules.clone())
    .with_docs(document::Directory::new(
        match &cluster {
            Some(c) => Arc::new(cluster::docs::Shared(c.clone())),
            None => Arc::new(document::oplog::Local(docstore::DocStore::of(
                doc_store.clone(),
            ))),
        },
        document::core::Limits {
            max_chars: cfg.doc_max_chars,
            keep_ops: cfg.doc_keep_ops,
            snapshot_every: cfg.doc_snapshot_every,
        },
        cfg.room_queue,
    ))
    .with_store(writer.handle())
    .with_ingestion(ingestion.clone())
    .with_cluster(cluster)
    .start();
    // The bridge gets its own thread: its fan-out to MQTT subscribers and its
    // event loop stay off the HTTP workers and the room threads.
    let mqtt_arbiter = cfg.mqtt.broker.as_ref().map(|_| Arbiter::new());
    let bridge = mqtt_arbiter
        .as_ref()
        .zip(cfg.mqtt.broker.as_ref())
        .map(|(arb, b)| {
            let status = Arc::new(mqtt::status::BridgeStatus::new(format!(
                "{}:{}",
                b.host, b.port
            )));
            let (mcfg, h, st) = (cfg.mqtt.clone(), hub.clone(), status.clone());
            let addr = mqtt::bridge::MqttBridge::start_in_arbiter(&arb.handle(), move |_| {
                mqtt::bridge::MqttBridge::new(mcfg, h, st)
            });
            monitor::BridgeHandle { addr, status }
        });
    if let (Some(b), false) = (&bridge, cfg.mqtt.rooms.is_empty()) {
        let status = b.status.clone();
        ingestion.offer(Box::new(move || status.get().connected));
    }
    let monitor = monitor::Monitor::new(
        hub.clone(),
        bridge.clone(),
        shared.started,
        cfg,
        shared.store.status.clone(),
    )
    .with_cluster(shared.cluster.clone())
    .start();
    let _ = shared.services.set(Services {
        monitor,
        mqtt: bridge,
    });
    let state = AppState {
        shared: shared.clone(),
        hub: hub.clone(),
        presence,
        relays: Arc::new(relay::Registry::default()),
        store: doc_store,
        engines: Arc::new(socketio::Registry::new(shared.cluster.clone())),
    };

    let user_timeout = cfg.tcp_user_timeout;
    // actix-web's HttpServer, but with an upgrade service: WebSocket
    // handshakes leave actix-http with the bare socket (see http::ws).
    let server = actix_server::Server::build()
        .workers(cfg.workers)
        .disable_signals()
        .max_concurrent_connections(
            cfg.max_connections
                .saturating_add(1024)
                .min(u32::MAX as usize),
        )
        .listen("switchboard", listener, move || {
            let st = state.clone();
            let trusted: Arc<[clientaddr::Cidr]> = state.shared.cfg.trusted_proxies.clone().into();
            let app = actix_web::App::new()
                .app_data(actix_web::web::Data::new(state.clone()))
                .wrap_fn(http::cors::middleware)
                .configure(http::routes);
            actix_http::HttpService::build()
                .local_addr(addr)
                .on_connect_ext(move |tcp: &actix_web::rt::net::TcpStream, _| {
                    // Frames are small and latency matters: without
                    // TCP_NODELAY, Nagle's algorithm and delayed ACKs hold
                    // small writes for ~40 ms.
                    let _ = tcp.set_nodelay(true);
                    set_tcp_user_timeout(tcp, user_timeout);
                })
                .upgrade(actix_service::fn_service(move |(req, framed)| {
                    http::ws::upgraded(st.clone(), req, framed)
                }))
                // The AppConfig only feeds URL generation, which we do not
                // use (requests carry their own Host). Outermost, before the
                // router and every rule: the canonical path (http::path).
                .finish(actix_service::apply_fn_factory(
                    actix_service::map_config(app, |_| actix_web::dev::AppConfig::default()),
                    move |mut req: actix_http::Request, srv| {
                        use actix_service::Service;
                        use futures_util::future::Either;
                        let start = Instant::now();
                        let client = clientaddr::of_request(req.head(), &trusted);
                        let method = req.method().clone();
                        // The path as routed, without its query string.
                        let canonical = http::path::canonicalise(req.head_mut());
                        let path = req.path().to_string();
                        let answer = match canonical {
                            Ok(()) => Either::Left(srv.call(req)),
                            Err(e) => Either::Right(std::future::ready(Err(e.into()))),
                        };
                        async move {
                            let res = answer.await;
                            let status = match &res {
                                Ok(r) => r.status(),
                                Err(e) => e.as_response_error().status_code(),
                            };
                            logging::access(
                                method.as_str(),
                                &path,
                                status.as_u16(),
                                start.elapsed(),
                                client,
                            );
                            res
                        }
                    },
                ))
                .tcp()
        })?;
    // Before the line below: whoever reads it may send SIGTERM at once.
    let signals = Signals::install();
    // Before the address line: whoever reads that may stop us at once.
    if cfg.dev {
        log::warn!(
            "DEVELOPMENT MODE: GET /api/dev/token mints tokens (admin ones too) for anyone \
             who can reach http://{addr}; set SWITCHBOARD_JWT_SECRET (or \
             SWITCHBOARD_JWT_SECRET_FILE) for production"
        );
    }
    // Tests and scripts read this line to find the port when PORT=0.
    println!("switchboard listening on http://{addr}");
    log::info!(
        "listening on http://{addr} (dev mode: {}, guests: {})",
        cfg.dev,
        cfg.guests
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();

    if let Some(keys) = shared.auth.remote_keys() {
        actix_web::rt::spawn(keys.keep_fresh());
    }
    let server = server.run();
    let handle = server.handle();
    let grace = cfg.shutdown_grace;
    let shared2 = shared.clone();
    actix_web::rt::spawn(async move {
        signals.recv().await;
        log::info!("shutting down: closing sessions with 1001");
        shared2.shutting_down.store(true, Ordering::SeqCst);
        handle.pause().await;
        let _ = hub.send(hub::Shutdown).await;
        let deadline = Instant::now() + grace;
        while metrics::METRICS.connections.load(Ordering::Relaxed) > 0 && Instant::now() < deadline
        {
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        // Not graceful: the sessions had their grace, and a graceful stop
        // would also wait (up to its timeout) for idle keep-alive HTTP
        // connections, which nothing ever closes from our side.
        handle.stop(false).await;
    });
    let result = server.await;
    let arbiters: Vec<Arbiter> = arbiters
        .into_iter()
        .chain(mqtt_arbiter)
        .chain(redis_arbiter)
        .collect();
    for a in &arbiters {
        a.stop();
    }
    // The room threads have finished (so no seq is handed out any more)
    // before the writer stops: it then gives back the unused reservations.
    for a in arbiters {
        let _ = a.join();
    }
    // Everything handed to storage before this point is written.
    writer.stop(Duration::from_secs(10));
    // Sessions have closed (their session.closed events are in the channel).
    if let Some(h) = hooks {
        h.stop(Duration::from_secs(5));
    }
    log::info!("stopped");
    result
}

/// SIGTERM and SIGINT, caught from the moment [`Signals::install`] returns.
struct Signals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Signals(Some((term, int))),
            _ => {
                log::error!(
                    "cannot install signal handlers; the server will only stop when killed"
                );
                Signals(None)
            }
        }
    }

    async fn recv(self) {
        match self.0 {
            Some((mut term, mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

/// A peer that stops reading leaves our close frame (and queued data) unsent,
/// and actix has no write timeout: TCP_USER_TIMEOUT makes the kernel drop such
/// a connection once nothing has been acknowledged for `timeout` (Linux also
/// applies it to a window that stays shut).
fn set_tcp_user_timeout(tcp: &actix_web::rt::net::TcpStream, timeout: Duration) {
    use std::os::fd::AsRawFd;
    let ms = timeout.as_millis().min(u32::MAX as u128) as libc::c_uint;
    if ms == 0 {
        return;
    }
    // SAFETY: a valid socket descriptor and a pointer to a c_uint of the given size.
    let rc = unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            &ms as *const libc::c_uint as *const libc::c_void,
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        log::debug!(
            "TCP_USER_TIMEOUT not set: {}",
            std::io::Error::last_os_error()
        );
    }
}
