//! The list of every setting's name, and the check for unknown ones.

/// Every `SWITCHBOARD_*` variable the server (and its test and simulation
/// tools) reads; any other set at start is reported as a likely typo. Reading
/// a name not listed here panics at start (every test that starts a server
/// would fail), so the list cannot fall behind.
#[rustfmt::skip]
pub const KNOWN_VARS: &[&str] = &[
    "SWITCHBOARD_AUTH_GRACE_MS", "SWITCHBOARD_CORS_ORIGINS", "SWITCHBOARD_DB",
    "SWITCHBOARD_DB_BATCH", "SWITCHBOARD_DB_BUSY_MS", "SWITCHBOARD_DB_MAX_BYTES",
    "SWITCHBOARD_DB_QUEUE", "SWITCHBOARD_DB_SYNC", "SWITCHBOARD_DEV",
    "SWITCHBOARD_DOCS_PER_SESSION", "SWITCHBOARD_DOC_KEEP_OPS", "SWITCHBOARD_DOC_MAX_CHARS",
    "SWITCHBOARD_DOC_MAX_OP_PARTS", "SWITCHBOARD_DOC_SNAPSHOT_EVERY",
    "SWITCHBOARD_FAST_ACK_ROOMS", "SWITCHBOARD_FRAME_BURST", "SWITCHBOARD_FRAME_RATE",
    "SWITCHBOARD_GUESTS", "SWITCHBOARD_GUESTS_PER_IP", "SWITCHBOARD_GUEST_BURST", "SWITCHBOARD_GUEST_RATE",
    "SWITCHBOARD_HARD_MAX_FRAME", "SWITCHBOARD_HEALTH_INTERVAL_MS", "SWITCHBOARD_HISTORY_BYTES",
    "SWITCHBOARD_HISTORY_SIZE", "SWITCHBOARD_HOST", "SWITCHBOARD_HTTP_SESSION_TIMEOUT_MS",
    "SWITCHBOARD_IDEMPOTENCY_KEYS", "SWITCHBOARD_IDEMPOTENCY_MS",
    "SWITCHBOARD_IDLE_HISTORY_BYTES", "SWITCHBOARD_IDLE_ROOM_CACHE",
    "SWITCHBOARD_JWT_AUDIENCE", "SWITCHBOARD_JWT_ISSUER", "SWITCHBOARD_JWT_JWKS_FILE",
    "SWITCHBOARD_JWT_LEEWAY_MS", "SWITCHBOARD_LOG_FORMAT",
    "SWITCHBOARD_JWT_PUBLIC_KEY_FILE", "SWITCHBOARD_JWT_SECRET", "SWITCHBOARD_JWT_SECRET_FILE",
    "SWITCHBOARD_MAX_CONNECTIONS", "SWITCHBOARD_MAX_FRAME", "SWITCHBOARD_MONITOR_PUBLIC",
    "SWITCHBOARD_MQTT_CA_FILE", "SWITCHBOARD_MQTT_CLIENT_ID",
    "SWITCHBOARD_MQTT_FILTERS_PER_SESSION", "SWITCHBOARD_MQTT_GUEST_PUBLISH",
    "SWITCHBOARD_MQTT_GUEST_SUBSCRIBE", "SWITCHBOARD_MQTT_HEALTH_PREFIX",
    "SWITCHBOARD_MQTT_KEEP_ALIVE_S", "SWITCHBOARD_MQTT_MAX_PACKET", "SWITCHBOARD_MQTT_PASSWORD",
    "SWITCHBOARD_MQTT_QUEUE", "SWITCHBOARD_MQTT_RECONNECT_MAX_MS",
    "SWITCHBOARD_MQTT_RECONNECT_MIN_MS", "SWITCHBOARD_MQTT_ROOMS",
    "SWITCHBOARD_MQTT_SUBSCRIPTIONS", "SWITCHBOARD_MQTT_URL", "SWITCHBOARD_MQTT_USERNAME",
    "SWITCHBOARD_NODE_ID", "SWITCHBOARD_NODE_TTL_MS", "SWITCHBOARD_REDIS_PREFIX",
    "SWITCHBOARD_REDIS_URL",
    "SWITCHBOARD_NOTIFICATIONS_PER_USER", "SWITCHBOARD_OFFLINE_DMS", "SWITCHBOARD_OUTBOX",
    "SWITCHBOARD_PING_INTERVAL_MS", "SWITCHBOARD_POLL_TIMEOUT_MS", "SWITCHBOARD_PONG_TIMEOUT_MS",
    "SWITCHBOARD_PRESENCE_IDLE_MS", "SWITCHBOARD_PUBLIC_ROOMS", "SWITCHBOARD_RETENTION_COUNT",
    "SWITCHBOARD_RETENTION_MS", "SWITCHBOARD_RETENTION_RULES", "SWITCHBOARD_ROOMS_PER_SESSION",
    "SWITCHBOARD_ROOM_QUEUE", "SWITCHBOARD_SHUTDOWN_GRACE_MS",
    "SWITCHBOARD_SIGNAL_BURST", "SWITCHBOARD_SIGNAL_RATE",
    "SWITCHBOARD_STATE_MAX_KEYS", "SWITCHBOARD_STATE_MAX_KEY_LEN",
    "SWITCHBOARD_STATE_MAX_VALUE_BYTES", "SWITCHBOARD_TCP_USER_TIMEOUT_MS",
    "SWITCHBOARD_TRUSTED_PROXIES", "SWITCHBOARD_TYPING_TTL_MS", "SWITCHBOARD_USER_BURST",
    "SWITCHBOARD_USER_RATE", "SWITCHBOARD_VOLATILE_ROOMS", "SWITCHBOARD_WORKERS",
    "SWITCHBOARD_WS_DEFLATE", "SWITCHBOARD_WS_DEFLATE_LEVEL", "SWITCHBOARD_WS_DEFLATE_THRESHOLD",
    // Read by the test and simulation tools, not the server.
    "SWITCHBOARD_SIM_SEED", "SWITCHBOARD_SIM_SEEDS", "SWITCHBOARD_WRITE_GOLDEN",
];

/// `SWITCHBOARD_*` variables set in the environment that nothing reads (typos).
pub fn unknown_vars() -> Vec<String> {
    let mut names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("SWITCHBOARD_") && !KNOWN_VARS.contains(&k.as_str()))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every setting the README documents is one the server knows (and so is
    /// not reported as a typo).
    #[test]
    fn readme_settings_are_known() {
        let readme = include_str!("../../README.md");
        for (i, _) in readme.match_indices("SWITCHBOARD_") {
            let name: String = readme[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            // Families written as a prefix (`SWITCHBOARD_MQTT_*`, `…_RATE` / `_BURST`).
            let family = name.ends_with('_') && KNOWN_VARS.iter().any(|k| k.starts_with(&name));
            if family || KNOWN_VARS.contains(&name.as_str()) {
                continue;
            }
            panic!("README.md names {name}, which is not in KNOWN_VARS");
        }
    }
}
