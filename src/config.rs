//! All settings: environment variables with documented defaults, validated at
//! start. The table in README.md lists every variable.

use std::time::Duration;

mod mqtt;
mod vars;
mod webhooks;
pub use mqtt::{Broker, MqttConfig};
pub use vars::{unknown_vars, KNOWN_VARS};
pub use webhooks::{JwksUrlConfig, WebhookConfig};

#[derive(Debug, Clone)]
pub struct Config {
    /// `SWITCHBOARD_HOST` (default `0.0.0.0`, or `127.0.0.1` in dev mode).
    pub host: String,
    /// `PORT` (default 8080; 0 picks a free port, printed at start).
    pub port: u16,
    /// `SWITCHBOARD_WORKERS`: HTTP worker threads (default: number of cores).
    pub workers: usize,
    /// `SWITCHBOARD_JWT_SECRET` (or the file `SWITCHBOARD_JWT_SECRET_FILE`): HS256 secret.
    /// Unset → random secret, a warning, and dev mode.
    pub jwt_secret: Option<String>,
    /// `SWITCHBOARD_JWT_PUBLIC_KEY_FILE`: PEM RSA public key; when set, tokens are RS256.
    pub jwt_public_key_file: Option<String>,
    /// `SWITCHBOARD_JWT_JWKS_FILE`: a JSON Web Key Set; tokens are RS256/ES256, key chosen by `kid`.
    pub jwt_jwks_file: Option<String>,
    /// `SWITCHBOARD_JWT_JWKS_URL` and its refresh settings (`config/webhooks.rs`).
    pub jwt_jwks_url: Option<JwksUrlConfig>,
    /// `SWITCHBOARD_JWT_AUDIENCE`: comma list; when set, a token's `aud` must name one of
    /// them. Empty: any `aud` (or none) is accepted.
    pub jwt_audience: Vec<String>,
    /// `SWITCHBOARD_JWT_ISSUER`: comma list; when set, a token's `iss` must be one of them.
    pub jwt_issuer: Vec<String>,
    /// `SWITCHBOARD_JWT_LEEWAY_MS` (default 30000): clock skew allowed on `exp` and `nbf`,
    /// rounded up to whole seconds (the claims' unit).
    pub jwt_leeway_s: u64,
    /// `SWITCHBOARD_DEV`: enables `GET /api/dev/token`. Default: on only when no secret is set.
    pub dev: bool,
    /// `SWITCHBOARD_GUESTS` (default true).
    pub guests: bool,
    /// `SWITCHBOARD_GUESTS_PER_IP` (default 0: no limit): guest sessions open at once
    /// from one client address (see `trusted_proxies`).
    pub guests_per_ip: usize,
    /// `SWITCHBOARD_TRUSTED_PROXIES`: comma list of addresses and CIDR blocks whose
    /// `X-Forwarded-For` names the client (default: none, the socket's peer is the client).
    pub trusted_proxies: Vec<crate::clientaddr::Cidr>,
    /// `SWITCHBOARD_PUBLIC_ROOMS`: comma-separated patterns (`*` wildcard) guests may join.
    pub public_rooms: Vec<String>,
    /// `SWITCHBOARD_AUTH_GRACE_MS`: time to send an `auth` frame when connecting without a token.
    pub auth_grace: Duration,
    /// `SWITCHBOARD_HISTORY_SIZE`: messages kept per room (default 200).
    pub history_size: usize,
    /// `SWITCHBOARD_HISTORY_BYTES`: bytes of history kept per room (default 1 MiB), whichever
    /// of this and `history_size` is reached first.
    pub history_bytes: usize,
    /// `SWITCHBOARD_IDLE_HISTORY_BYTES`: bytes of history kept in the idle-room LRU in all
    /// (default 256 MiB).
    pub idle_history_bytes: usize,
    /// `SWITCHBOARD_IDEMPOTENCY_MS`: how long a room remembers a publish's
    /// `idempotency_key` (default 5 minutes; 0 turns keys off).
    pub idempotency_ms: u64,
    /// `SWITCHBOARD_IDEMPOTENCY_KEYS`: most keys a room remembers (default 1000).
    pub idempotency_keys: usize,
    /// `SWITCHBOARD_IDLE_ROOM_CACHE`: histories of member-less rooms kept in the LRU (default 10000).
    pub idle_room_cache: usize,
    /// `SWITCHBOARD_MAX_CONNECTIONS` (default 100000): beyond it, `/ws` answers 503.
    pub max_connections: usize,
    /// `SWITCHBOARD_MAX_FRAME` (default 65536 bytes): larger text frames get `too_large`.
    pub max_frame: usize,
    /// `SWITCHBOARD_HARD_MAX_FRAME` (default 1 MiB): larger frames close the connection with 1009.
    pub hard_max_frame: usize,
    /// permessage-deflate on WebSocket: `SWITCHBOARD_WS_DEFLATE` (default on),
    /// `SWITCHBOARD_WS_DEFLATE_THRESHOLD` (default 512 bytes: shorter messages go out
    /// uncompressed), `SWITCHBOARD_WS_DEFLATE_LEVEL` (1–9, default 6).
    pub ws_deflate: crate::deflate::Settings,
    /// `SWITCHBOARD_OUTBOX` (default 1024 frames): a session's outbound queue; full → close 4008.
    pub outbox: usize,
    /// `SWITCHBOARD_POLL_TIMEOUT_MS` (default 25 s): how long a long-poll is held open.
    pub poll_timeout: Duration,
    /// `SWITCHBOARD_HTTP_SESSION_TIMEOUT_MS` (default 30 s): an SSE or long-polling
    /// session with no open stream and no waiting poll for this long is closed.
    pub http_session_timeout: Duration,
    /// `SWITCHBOARD_ROOM_QUEUE` (default 4096): messages waiting for a room; beyond it a
    /// sender gets `rate_limited` ("room is busy") instead of the queue growing.
    pub room_queue: usize,
    /// `SWITCHBOARD_ROOMS_PER_SESSION` (default 100, not counting the personal room).
    pub rooms_per_session: usize,
    /// `SWITCHBOARD_USER_RATE` / `SWITCHBOARD_USER_BURST`: messages per minute and burst for users.
    pub user_rate: RateSpec,
    /// `SWITCHBOARD_GUEST_RATE` / `SWITCHBOARD_GUEST_BURST` (default 20/min, burst 10).
    pub guest_rate: RateSpec,
    /// `SWITCHBOARD_FRAME_RATE` / `SWITCHBOARD_FRAME_BURST`: any frame, per minute (flood guard).
    pub frame_rate: RateSpec,
    /// `SWITCHBOARD_SIGNAL_RATE` / `SWITCHBOARD_SIGNAL_BURST` (default 600/min, burst 100):
    /// `signal` frames per connection (a call's ICE candidates come in bursts).
    pub signal_rate: RateSpec,
    /// `SWITCHBOARD_PING_INTERVAL_MS` (default 25000).
    pub ping_interval: Duration,
    /// `SWITCHBOARD_PONG_TIMEOUT_MS` (default 20000).
    pub pong_timeout: Duration,
    /// `SWITCHBOARD_PRESENCE_IDLE_MS` (default 300000): no activity for this long → away.
    pub presence_idle: Duration,
    /// `SWITCHBOARD_TYPING_TTL_MS` (default 5000).
    pub typing_ttl: Duration,
    /// `SWITCHBOARD_TCP_USER_TIMEOUT_MS` (default 30000; 0 = the kernel's default): how long
    /// sent data may stay unacknowledged (or a peer's window stay shut) before the kernel
    /// drops the connection. Frees sockets of peers that stopped reading.
    pub tcp_user_timeout: Duration,
    /// `SWITCHBOARD_SHUTDOWN_GRACE_MS` (default 3000): time for close frames to flush on SIGTERM.
    pub shutdown_grace: Duration,
    /// `SWITCHBOARD_CORS_ORIGINS` (default `*`; `none`, or a comma-separated list of
    /// origins): pages of which origins may use SSE, long-polling and the REST API.
    pub cors_origins: Vec<String>,
    /// `SWITCHBOARD_DOC_MAX_CHARS` (default 1048576): longest document, in code points.
    pub doc_max_chars: u64,
    /// `SWITCHBOARD_STATE_MAX_KEYS` (1000), `SWITCHBOARD_STATE_MAX_VALUE_BYTES`
    /// (16384), `SWITCHBOARD_STATE_MAX_KEY_LEN` (128): bounds of a room's shared state.
    pub state: crate::state::StateLimits,
    /// `SWITCHBOARD_RPC_*`: bounds of tool calls (`rpc.rs`).
    pub rpc: crate::rpc::RpcLimits,
    /// `SWITCHBOARD_WATCH_PATTERNS` (default 16): `room:watch` patterns per session.
    pub watch_patterns: usize,
    /// `SWITCHBOARD_STREAMS_PER_ROOM` (32), `SWITCHBOARD_STREAM_MAX_BYTES`
    /// (65536), `SWITCHBOARD_STREAM_STALL_MS` (30000): bounds of AI response streams.
    pub streams: crate::streams::StreamLimits,
    /// `SWITCHBOARD_DOC_MAX_OP_PARTS` (default 4096): most parts in one op.
    pub doc_max_op_parts: usize,
    /// `SWITCHBOARD_DOCS_PER_SESSION` (default 20): documents open per connection.
    pub docs_per_session: usize,
    /// `SWITCHBOARD_DOC_SNAPSHOT_EVERY` (default 100): ops between stored snapshots.
    pub doc_snapshot_every: u64,
    /// `SWITCHBOARD_DOC_KEEP_OPS` (default 1000): ops kept for clients that are
    /// behind; a client further behind gets a snapshot.
    pub doc_keep_ops: usize,
    /// The MQTT bridge (`SWITCHBOARD_MQTT_*`); off without `SWITCHBOARD_MQTT_URL`.
    pub mqtt: MqttConfig,
    /// The live monitor (`SWITCHBOARD_MONITOR_*`, `SWITCHBOARD_HEALTH_INTERVAL_MS`).
    pub monitor: MonitorConfig,
    /// Embedded storage (`SWITCHBOARD_DB` and friends; see [`StorageConfig`]).
    pub storage: StorageConfig,
    /// Webhooks (`SWITCHBOARD_WEBHOOK_*`); off without `SWITCHBOARD_WEBHOOK_URL`.
    pub webhooks: Option<WebhookConfig>,
    /// Several nodes sharing rooms through Redis (`SWITCHBOARD_REDIS_URL`).
    pub cluster: Option<ClusterConfig>,
    /// Proxy hooks to the app's backend (`SWITCHBOARD_PROXY_*`).
    pub proxy: crate::proxy::ProxyConfig,
    /// `SWITCHBOARD_ROOM_RULES`: per room pattern, publishing, presence, history
    /// and the subscribe hook (`proxy::rules`).
    pub room_rules: std::sync::Arc<crate::proxy::rules::RoomRules>,
}

/// Scale-out through Redis (docs/SCALEOUT.md). `None`: one node, as before.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `SWITCHBOARD_REDIS_URL`: `redis://[:password@]host:port[/db]` or
    /// `rediss://…`; several, separated by commas, spread rooms' messages
    /// over them (the first also holds everything else).
    pub urls: Vec<String>,
    /// `SWITCHBOARD_NODE_ID` (default: random): names this node in Redis and `/healthz`.
    pub node: String,
    /// `SWITCHBOARD_REDIS_PREFIX` (default `sb`): the first part of every key and channel.
    pub prefix: String,
    /// `SWITCHBOARD_NODE_TTL_MS` (default 15000): a node silent this long is
    /// taken for dead and its sessions are removed from member lists.
    pub node_ttl: Duration,
    /// `SWITCHBOARD_REDIS_CA_FILE`: PEM CA bundle for `rediss://` (default:
    /// the system's trusted roots).
    pub ca_file: Option<String>,
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

impl ClusterConfig {
    fn from_env() -> Result<Option<ClusterConfig>, String> {
        let Some(url) = var("SWITCHBOARD_REDIS_URL") else {
            return Ok(None);
        };
        let node = var("SWITCHBOARD_NODE_ID").unwrap_or_else(|| crate::ids::random_hex(6));
        let prefix = var("SWITCHBOARD_REDIS_PREFIX").unwrap_or_else(|| "sb".into());
        for (name, v) in [
            ("SWITCHBOARD_NODE_ID", &node),
            ("SWITCHBOARD_REDIS_PREFIX", &prefix),
        ] {
            let ok = v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !ok {
                return Err(format!(
                    "{name}={v:?}: use 1 to 64 letters, digits, '_', '.' or '-'"
                ));
            }
        }
        let node_ttl = millis("SWITCHBOARD_NODE_TTL_MS", 15_000)?;
        if node_ttl < Duration::from_millis(1500) {
            return Err("SWITCHBOARD_NODE_TTL_MS must be at least 1500".into());
        }
        let urls: Vec<String> = url
            .split(',')
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            return Err("SWITCHBOARD_REDIS_URL is empty".into());
        }
        if let Some(d) = urls
            .iter()
            .enumerate()
            .find(|(i, u)| urls[..*i].contains(u))
        {
            return Err(format!("SWITCHBOARD_REDIS_URL lists {} twice", redact(d.1)));
        }
        Ok(Some(ClusterConfig {
            urls,
            node,
            prefix,
            node_ttl,
            ca_file: var("SWITCHBOARD_REDIS_CA_FILE"),
        }))
    }
}

/// Where and how the embedded database keeps data. With `SWITCHBOARD_DB=off`
/// nothing is durable: rooms keep today's in-memory history, and
/// notifications and offline messages live in an in-memory database.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// `SWITCHBOARD_DB` (default `./data/switchboard.db`; `off` = in memory only). The
    /// directory is created.
    pub path: Option<std::path::PathBuf>,
    /// `SWITCHBOARD_DB_SYNC`: `full` (default: fsync each batch before its acks), `normal`
    /// (survives a crash of the server, not of the machine) or `off`.
    pub sync: String,
    /// `SWITCHBOARD_DB_BATCH` (default 512): most writes committed in one transaction.
    pub batch: usize,
    /// `SWITCHBOARD_DB_QUEUE` (default 16384): messages waiting for the database; beyond
    /// it senders get `rate_limited` ("storage is busy").
    pub queue: usize,
    /// `SWITCHBOARD_DB_BUSY_MS` (default 5000): how long a write waits for a database
    /// locked by another process before it fails with `storage_error`.
    pub busy: Duration,
    /// `SWITCHBOARD_DB_MAX_BYTES` (default 0: no limit): the database file's size limit;
    /// writes past it fail with `storage_error` (as on a full disk).
    pub max_bytes: u64,
    /// `SWITCHBOARD_RETENTION_COUNT` (default 10000; 0: no limit): messages stored per room.
    pub retention_count: u64,
    /// `SWITCHBOARD_RETENTION_MS` (default 0: no limit): stored messages older than this
    /// are deleted.
    pub retention_age: Option<Duration>,
    /// `SWITCHBOARD_RETENTION_RULES`: per-room overrides, `pattern=COUNT/AGE_MS` separated
    /// by commas (first match wins; an empty field keeps the default; 0 = no limit),
    /// e.g. `logs-*=100/3600000,audit-*=0/0`.
    pub retention_rules: Vec<RetentionRule>,
    /// `SWITCHBOARD_FAST_ACK_ROOMS`: room patterns whose messages are stored but acked
    /// right after the fan-out, without waiting for the write.
    pub fast_ack_rooms: Vec<String>,
    /// `SWITCHBOARD_VOLATILE_ROOMS`: room patterns that are never stored (history in memory only).
    pub volatile_rooms: Vec<String>,
    /// A copy of `Config::room_rules` (a rule with `history: 0` is never stored).
    pub room_rules: std::sync::Arc<crate::proxy::rules::RoomRules>,
    /// `SWITCHBOARD_OFFLINE_DMS` (default 100; 0 = refuse with `user_offline`): direct
    /// messages kept per offline user; the oldest are dropped beyond it.
    pub offline_dms: usize,
    /// `SWITCHBOARD_NOTIFICATIONS_PER_USER` (default 1000): notifications kept per user;
    /// the oldest are deleted beyond it.
    pub notifications_per_user: usize,
}

fn patterns(name: &str) -> Vec<String> {
    var(name)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `pattern`, message count, age in ms (`None`: the default).
pub type RetentionRule = (String, Option<u64>, Option<u64>);

fn retention_rules(name: &str) -> Result<Vec<RetentionRule>, String> {
    let bad = |r: &str| format!("{name}: {r:?} is not pattern=COUNT/AGE_MS");
    let field = |f: &str, r: &str| -> Result<Option<u64>, String> {
        match f.trim() {
            "" => Ok(None),
            n => n.parse().map(Some).map_err(|_| bad(r)),
        }
    };
    patterns(name)
        .iter()
        .map(|r| {
            let (pat, spec) = r.split_once('=').ok_or_else(|| bad(r))?;
            let (count, age) = spec.split_once('/').unwrap_or((spec, ""));
            if pat.trim().is_empty() {
                return Err(bad(r));
            }
            Ok((pat.trim().to_string(), field(count, r)?, field(age, r)?))
        })
        .collect()
}

impl StorageConfig {
    pub fn from_env() -> Result<StorageConfig, String> {
        let path = match var("SWITCHBOARD_DB").as_deref().map(str::trim) {
            Some("off" | "none" | "memory") => None,
            Some(p) => Some(p.into()),
            None => Some("./data/switchboard.db".into()),
        };
        let sync = var("SWITCHBOARD_DB_SYNC").unwrap_or_else(|| "full".into());
        if !matches!(sync.as_str(), "full" | "normal" | "off") {
            return Err(format!(
                "SWITCHBOARD_DB_SYNC={sync:?} must be full, normal or off"
            ));
        }
        let age = num("SWITCHBOARD_RETENTION_MS", 0u64)?;
        let cfg = StorageConfig {
            path,
            sync,
            batch: num("SWITCHBOARD_DB_BATCH", 512)?,
            queue: num("SWITCHBOARD_DB_QUEUE", 16384)?,
            busy: millis("SWITCHBOARD_DB_BUSY_MS", 5_000)?,
            max_bytes: num("SWITCHBOARD_DB_MAX_BYTES", 0)?,
            retention_count: num("SWITCHBOARD_RETENTION_COUNT", 10_000)?,
            retention_age: (age > 0).then(|| Duration::from_millis(age)),
            retention_rules: retention_rules("SWITCHBOARD_RETENTION_RULES")?,
            fast_ack_rooms: patterns("SWITCHBOARD_FAST_ACK_ROOMS"),
            volatile_rooms: patterns("SWITCHBOARD_VOLATILE_ROOMS"),
            room_rules: Default::default(),
            offline_dms: num("SWITCHBOARD_OFFLINE_DMS", 100)?,
            notifications_per_user: num("SWITCHBOARD_NOTIFICATIONS_PER_USER", 1000)?,
        };
        if cfg.batch == 0 || cfg.queue == 0 || cfg.notifications_per_user == 0 {
            return Err("SWITCHBOARD_DB_BATCH, SWITCHBOARD_DB_QUEUE and SWITCHBOARD_NOTIFICATIONS_PER_USER must be at least 1".into());
        }
        Ok(cfg)
    }
}

/// A token bucket: `per_minute` refill, `burst` capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSpec {
    pub per_minute: u32,
    pub burst: u32,
}

/// A comma-separated list, items trimmed, empty items dropped.
fn comma_list(v: Option<String>) -> Vec<String> {
    v.unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `SWITCHBOARD_LOG_FORMAT`: `text` (default) or `json`. Read before the
/// rest, as the logger starts first.
pub fn log_format() -> Result<crate::logging::Format, String> {
    crate::logging::Format::parse(var("SWITCHBOARD_LOG_FORMAT").as_deref())
}

/// Whether a variable is set (to anything, even blank).
pub fn is_set(name: &str) -> bool {
    assert!(KNOWN_VARS.contains(&name), "{name} missing from KNOWN_VARS");
    std::env::var_os(name).is_some()
}

fn var(name: &str) -> Option<String> {
    assert!(
        name == "PORT" || KNOWN_VARS.contains(&name),
        "{name} missing from KNOWN_VARS"
    );
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn num<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a valid number")),
    }
}

fn flag(name: &str, default: bool) -> Result<bool, String> {
    match var(name).as_deref().map(str::trim) {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(v) => Err(format!("{name}={v:?} is not a boolean (use true/false)")),
    }
}

fn millis(name: &str, default: u64) -> Result<Duration, String> {
    Ok(Duration::from_millis(num(name, default)?))
}

fn rate(prefix: &str, per_minute: u32, burst: u32) -> Result<RateSpec, String> {
    let spec = RateSpec {
        per_minute: num(&format!("{prefix}_RATE"), per_minute)?,
        burst: num(&format!("{prefix}_BURST"), burst)?,
    };
    if spec.per_minute == 0 || spec.burst == 0 {
        return Err(format!(
            "{prefix}_RATE and {prefix}_BURST must be at least 1"
        ));
    }
    Ok(spec)
}

/// `*` (any), `none`, or a comma-separated list of origins.
fn cors_origins(v: Option<String>) -> Vec<String> {
    let v = v.unwrap_or_else(|| "*".into());
    if v.trim().eq_ignore_ascii_case("none") {
        return Vec::new();
    }
    v.split(',')
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `SWITCHBOARD_JWT_SECRET`, or the contents of `SWITCHBOARD_JWT_SECRET_FILE`
/// (without trailing line breaks). A file that cannot be read, or is empty, is
/// an error: falling back to dev mode would hand out admin tokens.
fn jwt_secret() -> Result<Option<String>, String> {
    let inline = var("SWITCHBOARD_JWT_SECRET");
    let Some(path) = var("SWITCHBOARD_JWT_SECRET_FILE") else {
        return Ok(inline);
    };
    if inline.is_some() {
        return Err("set SWITCHBOARD_JWT_SECRET or SWITCHBOARD_JWT_SECRET_FILE, not both".into());
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("SWITCHBOARD_JWT_SECRET_FILE={path:?}: {e}"))?;
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.trim().is_empty() {
        return Err(format!("SWITCHBOARD_JWT_SECRET_FILE={path:?} is empty"));
    }
    Ok(Some(secret.to_string()))
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        let jwt_secret = jwt_secret()?;
        let jwt_public_key_file = var("SWITCHBOARD_JWT_PUBLIC_KEY_FILE");
        let jwt_jwks_file = var("SWITCHBOARD_JWT_JWKS_FILE");
        let jwt_jwks_url = JwksUrlConfig::from_env()?;
        let keys = [
            jwt_public_key_file.is_some(),
            jwt_jwks_file.is_some(),
            jwt_jwks_url.is_some(),
        ];
        if keys.iter().filter(|k| **k).count() > 1 {
            return Err(
                "set one of SWITCHBOARD_JWT_PUBLIC_KEY_FILE, SWITCHBOARD_JWT_JWKS_FILE \
                 and SWITCHBOARD_JWT_JWKS_URL"
                    .into(),
            );
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let dev = flag(
            "SWITCHBOARD_DEV",
            jwt_secret.is_none() && !keys.contains(&true),
        )?;
        let mut cfg = Config {
            // Dev mode mints admin tokens for anyone who asks: unless told
            // where to listen, it listens to this machine only.
            host: var("SWITCHBOARD_HOST")
                .unwrap_or_else(|| if dev { "127.0.0.1" } else { "0.0.0.0" }.into()),
            port: num("PORT", 8080)?,
            workers: num("SWITCHBOARD_WORKERS", cores)?,
            dev,
            jwt_secret,
            jwt_public_key_file,
            jwt_jwks_file,
            jwt_jwks_url,
            jwt_audience: comma_list(var("SWITCHBOARD_JWT_AUDIENCE")),
            jwt_issuer: comma_list(var("SWITCHBOARD_JWT_ISSUER")),
            jwt_leeway_s: num::<u64>("SWITCHBOARD_JWT_LEEWAY_MS", 30_000)?.div_ceil(1000),
            guests: flag("SWITCHBOARD_GUESTS", true)?,
            guests_per_ip: num("SWITCHBOARD_GUESTS_PER_IP", 0)?,
            trusted_proxies: crate::clientaddr::parse_list(
                &var("SWITCHBOARD_TRUSTED_PROXIES").unwrap_or_default(),
            )?,
            public_rooms: var("SWITCHBOARD_PUBLIC_ROOMS")
                .unwrap_or_else(|| "general,random,lobby,public-*".into())
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            auth_grace: millis("SWITCHBOARD_AUTH_GRACE_MS", 10_000)?,
            history_size: num("SWITCHBOARD_HISTORY_SIZE", 200)?,
            history_bytes: num("SWITCHBOARD_HISTORY_BYTES", 1024 * 1024)?,
            idle_history_bytes: num("SWITCHBOARD_IDLE_HISTORY_BYTES", 256 * 1024 * 1024)?,
            idempotency_ms: num("SWITCHBOARD_IDEMPOTENCY_MS", 300_000)?,
            idempotency_keys: num("SWITCHBOARD_IDEMPOTENCY_KEYS", 1000)?,
            idle_room_cache: num("SWITCHBOARD_IDLE_ROOM_CACHE", 10_000)?,
            max_connections: num("SWITCHBOARD_MAX_CONNECTIONS", 100_000)?,
            max_frame: num("SWITCHBOARD_MAX_FRAME", 64 * 1024)?,
            hard_max_frame: num("SWITCHBOARD_HARD_MAX_FRAME", 1024 * 1024)?,
            ws_deflate: crate::deflate::Settings {
                enabled: flag("SWITCHBOARD_WS_DEFLATE", true)?,
                threshold: num("SWITCHBOARD_WS_DEFLATE_THRESHOLD", 512)?,
                level: num("SWITCHBOARD_WS_DEFLATE_LEVEL", 6)?,
            },
            outbox: num("SWITCHBOARD_OUTBOX", 1024)?,
            poll_timeout: millis("SWITCHBOARD_POLL_TIMEOUT_MS", 25_000)?,
            http_session_timeout: millis("SWITCHBOARD_HTTP_SESSION_TIMEOUT_MS", 30_000)?,
            room_queue: num("SWITCHBOARD_ROOM_QUEUE", 4096)?,
            rooms_per_session: num("SWITCHBOARD_ROOMS_PER_SESSION", 100)?,
            user_rate: rate("SWITCHBOARD_USER", 1200, 50)?,
            guest_rate: rate("SWITCHBOARD_GUEST", 20, 10)?,
            frame_rate: rate("SWITCHBOARD_FRAME", 6000, 200)?,
            signal_rate: rate("SWITCHBOARD_SIGNAL", 600, 100)?,
            ping_interval: millis("SWITCHBOARD_PING_INTERVAL_MS", 25_000)?,
            pong_timeout: millis("SWITCHBOARD_PONG_TIMEOUT_MS", 20_000)?,
            presence_idle: millis("SWITCHBOARD_PRESENCE_IDLE_MS", 300_000)?,
            typing_ttl: millis("SWITCHBOARD_TYPING_TTL_MS", 5_000)?,
            tcp_user_timeout: millis("SWITCHBOARD_TCP_USER_TIMEOUT_MS", 30_000)?,
            shutdown_grace: millis("SWITCHBOARD_SHUTDOWN_GRACE_MS", 3_000)?,
            cors_origins: cors_origins(var("SWITCHBOARD_CORS_ORIGINS")),
            doc_max_chars: num("SWITCHBOARD_DOC_MAX_CHARS", 1 << 20)?,
            state: crate::state::StateLimits {
                max_keys: num("SWITCHBOARD_STATE_MAX_KEYS", 1000)?,
                max_value_bytes: num("SWITCHBOARD_STATE_MAX_VALUE_BYTES", 16384)?,
                max_key_len: num("SWITCHBOARD_STATE_MAX_KEY_LEN", 128)?,
            },
            rpc: crate::rpc::RpcLimits {
                rate: rate("SWITCHBOARD_RPC", 600, 100)?,
                in_flight: num("SWITCHBOARD_RPC_IN_FLIGHT", 32)?,
                max_params: num("SWITCHBOARD_RPC_MAX_PARAMS", 32768)?,
                timeout_ms: num("SWITCHBOARD_RPC_TIMEOUT_MS", 10_000)?,
                max_timeout_ms: num("SWITCHBOARD_RPC_MAX_TIMEOUT_MS", 60_000)?,
            },
            watch_patterns: num("SWITCHBOARD_WATCH_PATTERNS", 16)?,
            streams: crate::streams::StreamLimits {
                per_room: num("SWITCHBOARD_STREAMS_PER_ROOM", 32)?.max(1),
                max_bytes: num("SWITCHBOARD_STREAM_MAX_BYTES", 65536)?.max(1),
                stall: millis("SWITCHBOARD_STREAM_STALL_MS", 30_000)?
                    .max(std::time::Duration::from_millis(10)),
            },
            doc_max_op_parts: num("SWITCHBOARD_DOC_MAX_OP_PARTS", 4096)?,
            docs_per_session: num("SWITCHBOARD_DOCS_PER_SESSION", 20)?,
            doc_snapshot_every: num("SWITCHBOARD_DOC_SNAPSHOT_EVERY", 100)?,
            doc_keep_ops: num("SWITCHBOARD_DOC_KEEP_OPS", 1000)?,
            mqtt: MqttConfig::from_env()?,
            monitor: MonitorConfig::from_env()?,
            storage: StorageConfig::from_env()?,
            webhooks: WebhookConfig::from_env()?,
            cluster: ClusterConfig::from_env()?,
            proxy: crate::proxy::ProxyConfig::from_lookup(var)?,
            room_rules: Default::default(),
        };
        cfg.room_rules = std::sync::Arc::new(crate::proxy::rules::RoomRules::parse(
            var("SWITCHBOARD_ROOM_RULES").as_deref(),
            cfg.proxy.subscribe.is_some(),
        )?);
        cfg.storage.room_rules = cfg.room_rules.clone();
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        if self.workers == 0 {
            return Err("SWITCHBOARD_WORKERS must be at least 1".into());
        }
        if self.outbox < 2 {
            return Err("SWITCHBOARD_OUTBOX must be at least 2".into());
        }
        if self.history_size == 0 {
            return Err("SWITCHBOARD_HISTORY_SIZE must be at least 1".into());
        }
        if self.doc_snapshot_every == 0 || self.doc_keep_ops == 0 {
            return Err(
                "SWITCHBOARD_DOC_SNAPSHOT_EVERY and SWITCHBOARD_DOC_KEEP_OPS must be at least 1"
                    .into(),
            );
        }
        if !(1..=crate::state::KEY_LEN_CAP).contains(&self.state.max_key_len) {
            return Err(format!(
                "SWITCHBOARD_STATE_MAX_KEY_LEN must be 1 to {}",
                crate::state::KEY_LEN_CAP
            ));
        }
        if self.doc_max_chars > crate::ot::MAX_COUNT {
            return Err(format!(
                "SWITCHBOARD_DOC_MAX_CHARS must be at most {}",
                crate::ot::MAX_COUNT
            ));
        }
        if !(1..=9).contains(&self.ws_deflate.level) {
            return Err("SWITCHBOARD_WS_DEFLATE_LEVEL must be 1 to 9".into());
        }
        if self.max_frame > self.hard_max_frame {
            return Err("SWITCHBOARD_MAX_FRAME must not exceed SWITCHBOARD_HARD_MAX_FRAME".into());
        }
        for (name, d) in [
            ("SWITCHBOARD_PING_INTERVAL_MS", self.ping_interval),
            ("SWITCHBOARD_PONG_TIMEOUT_MS", self.pong_timeout),
            ("SWITCHBOARD_PRESENCE_IDLE_MS", self.presence_idle),
            ("SWITCHBOARD_TYPING_TTL_MS", self.typing_ttl),
            ("SWITCHBOARD_POLL_TIMEOUT_MS", self.poll_timeout),
            (
                "SWITCHBOARD_HTTP_SESSION_TIMEOUT_MS",
                self.http_session_timeout,
            ),
        ] {
            if d.is_zero() {
                return Err(format!("{name} must be at least 1"));
            }
        }
        Ok(())
    }
}

/// The live monitor's settings.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// `SWITCHBOARD_MONITOR_PUBLIC` (default false): let anyone, guests included, join
    /// the `monitor` channel and read `GET /api/events` (for development).
    pub public: bool,
    /// `SWITCHBOARD_HEALTH_INTERVAL_MS` (default 5000): `health:update` period (also
    /// sent on every change of a component's state).
    pub health_interval: Duration,
}

impl MonitorConfig {
    fn from_env() -> Result<MonitorConfig, String> {
        let cfg = MonitorConfig {
            public: flag("SWITCHBOARD_MONITOR_PUBLIC", false)?,
            health_interval: millis("SWITCHBOARD_HEALTH_INTERVAL_MS", 5_000)?,
        };
        if cfg.health_interval < Duration::from_millis(100) {
            return Err("SWITCHBOARD_HEALTH_INTERVAL_MS must be at least 100".into());
        }
        Ok(cfg)
    }
}
