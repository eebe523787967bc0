//! The webhook settings (`SWITCHBOARD_WEBHOOK_*`) and the JWKS URL's.

use super::*;

/// Where and how events are POSTed; `None` without `SWITCHBOARD_WEBHOOK_URL`.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `SWITCHBOARD_WEBHOOK_URL`: `http://` or `https://`.
    pub url: String,
    /// `SWITCHBOARD_WEBHOOK_SECRET`: the HMAC-SHA256 key (required with the URL).
    pub secret: String,
    /// `SWITCHBOARD_WEBHOOK_ROOMS`: rooms (patterns) whose messages are sent
    /// as `message.published`; default none.
    pub rooms: Vec<String>,
    /// `SWITCHBOARD_WEBHOOK_BATCH` (100): most events in one POST.
    pub batch: usize,
    /// `SWITCHBOARD_WEBHOOK_LINGER_MS` (200): how long a first event waits
    /// for others to share its POST.
    pub linger: Duration,
    /// `SWITCHBOARD_WEBHOOK_QUEUE` (100000): most events waiting; beyond,
    /// the oldest are dropped (and counted).
    pub queue: u64,
    /// `SWITCHBOARD_WEBHOOK_RETRY_MIN_MS` (500) and `_RETRY_MAX_MS` (60000):
    /// the first wait after a failed POST, doubled after each further failure up to the cap.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// `SWITCHBOARD_WEBHOOK_TIMEOUT_MS` (10000): time for the receiver to answer a POST.
    pub timeout: Duration,
}

impl WebhookConfig {
    pub fn from_env() -> Result<Option<WebhookConfig>, String> {
        let secret = var("SWITCHBOARD_WEBHOOK_SECRET");
        let Some(url) = var("SWITCHBOARD_WEBHOOK_URL") else {
            if secret.is_some() || is_set("SWITCHBOARD_WEBHOOK_ROOMS") {
                return Err(
                    "SWITCHBOARD_WEBHOOK_SECRET and _ROOMS need SWITCHBOARD_WEBHOOK_URL".into(),
                );
            }
            return Ok(None);
        };
        let url = url.trim().to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "SWITCHBOARD_WEBHOOK_URL={url:?}: use an http:// or https:// URL"
            ));
        }
        let Some(secret) = secret else {
            return Err(
                "SWITCHBOARD_WEBHOOK_URL needs SWITCHBOARD_WEBHOOK_SECRET (events are signed)"
                    .into(),
            );
        };
        let cfg = WebhookConfig {
            url,
            secret,
            rooms: patterns("SWITCHBOARD_WEBHOOK_ROOMS"),
            batch: num("SWITCHBOARD_WEBHOOK_BATCH", 100)?,
            linger: millis("SWITCHBOARD_WEBHOOK_LINGER_MS", 200)?,
            queue: num("SWITCHBOARD_WEBHOOK_QUEUE", 100_000)?,
            retry_min: millis("SWITCHBOARD_WEBHOOK_RETRY_MIN_MS", 500)?,
            retry_max: millis("SWITCHBOARD_WEBHOOK_RETRY_MAX_MS", 60_000)?,
            timeout: millis("SWITCHBOARD_WEBHOOK_TIMEOUT_MS", 10_000)?,
        };
        if cfg.batch == 0 || cfg.queue == 0 {
            return Err("SWITCHBOARD_WEBHOOK_BATCH and _QUEUE must be at least 1".into());
        }
        if cfg.retry_min.is_zero() || cfg.retry_max < cfg.retry_min {
            return Err(
                "SWITCHBOARD_WEBHOOK_RETRY_MIN_MS must be at least 1 and at most _RETRY_MAX_MS"
                    .into(),
            );
        }
        if cfg.timeout.is_zero() {
            return Err("SWITCHBOARD_WEBHOOK_TIMEOUT_MS must be at least 1".into());
        }
        Ok(Some(cfg))
    }
}

/// A JSON Web Key Set fetched over HTTP (`SWITCHBOARD_JWT_JWKS_URL`).
#[derive(Debug, Clone)]
pub struct JwksUrlConfig {
    pub url: String,
    /// `SWITCHBOARD_JWT_JWKS_REFRESH_MS` (600000): fetched again this often.
    pub refresh: Duration,
    /// `SWITCHBOARD_JWT_JWKS_COOLDOWN_MS` (10000): a token with an unknown
    /// `kid` fetches the set again, at most this often.
    pub cooldown: Duration,
}

impl JwksUrlConfig {
    pub fn from_env() -> Result<Option<JwksUrlConfig>, String> {
        let Some(url) = var("SWITCHBOARD_JWT_JWKS_URL") else {
            return Ok(None);
        };
        let url = url.trim().to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "SWITCHBOARD_JWT_JWKS_URL={url:?}: use an http:// or https:// URL"
            ));
        }
        let cfg = JwksUrlConfig {
            url,
            refresh: millis("SWITCHBOARD_JWT_JWKS_REFRESH_MS", 600_000)?,
            cooldown: millis("SWITCHBOARD_JWT_JWKS_COOLDOWN_MS", 10_000)?,
        };
        if cfg.refresh < Duration::from_secs(1) {
            return Err("SWITCHBOARD_JWT_JWKS_REFRESH_MS must be at least 1000".into());
        }
        Ok(Some(cfg))
    }
}
