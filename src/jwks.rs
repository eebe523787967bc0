//! A JSON Web Key Set fetched from `SWITCHBOARD_JWT_JWKS_URL`: fetched at
//! start (retried until it answers), again every `SWITCHBOARD_JWT_JWKS_REFRESH_MS`,
//! and sooner when a token names a `kid` the set does not hold (at most once
//! per `SWITCHBOARD_JWT_JWKS_COOLDOWN_MS`). Until the first fetch succeeds the
//! hub runs (guests and the rest work) but refuses every token; a fetch that
//! fails later keeps the set it had.

use crate::config::JwksUrlConfig;
use jsonwebtoken::jwk::JwkSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A key of the set: its `kid`, the key, the checks tokens under it get.
pub type KeyEntry = (
    Option<String>,
    jsonwebtoken::DecodingKey,
    jsonwebtoken::Validation,
);

/// Builds a set's entries, skipping keys that cannot verify tokens (logged).
pub type Parse = dyn Fn(&JwkSet, &str) -> Vec<KeyEntry> + Send + Sync;

pub struct RemoteKeys {
    cfg: JwksUrlConfig,
    parse: Box<Parse>,
    /// `None` until the first successful fetch.
    keys: RwLock<Option<Arc<Vec<KeyEntry>>>>,
    /// When a fetch last started (for the unknown-`kid` cooldown).
    last: Mutex<Option<Instant>>,
}

impl RemoteKeys {
    pub fn new(cfg: JwksUrlConfig, parse: Box<Parse>) -> Arc<RemoteKeys> {
        Arc::new(RemoteKeys {
            cfg,
            parse,
            keys: RwLock::new(None),
            last: Mutex::new(None),
        })
    }

    /// The set as last fetched (`None`: never fetched yet).
    pub fn current(&self) -> Option<Arc<Vec<KeyEntry>>> {
        self.keys.read().ok().and_then(|k| k.clone())
    }

    /// A token named a `kid` the set does not hold: fetch the set again in
    /// the background unless one was started within the cooldown. Answers
    /// whether a fetch was started. Must run on an actix thread.
    pub fn unknown_kid(self: &Arc<Self>) -> bool {
        if !self.claim(self.cfg.cooldown) {
            return false;
        }
        let me = self.clone();
        actix_web::rt::spawn(async move {
            if let Err(e) = me.fetch().await {
                log::warn!("SWITCHBOARD_JWT_JWKS_URL {}: {e}", me.cfg.url);
            }
        });
        true
    }

    /// Takes the right to fetch now, unless a fetch started less than `gap` ago.
    fn claim(&self, gap: Duration) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < gap) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Fetches and installs the set; a set with no usable key is refused
    /// (the old one stays).
    async fn fetch(&self) -> Result<usize, String> {
        let mut res = crate::outbound::client()
            .get(&self.cfg.url)
            .timeout(Duration::from_secs(10))
            .insert_header(("accept", "application/json"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("status {}", res.status().as_u16()));
        }
        let body = res
            .body()
            .limit(1024 * 1024)
            .await
            .map_err(|e| e.to_string())?;
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("not a JWKS: {e}"))?;
        let keys = (self.parse)(&set, "SWITCHBOARD_JWT_JWKS_URL");
        if keys.is_empty() {
            return Err("the set has no usable signing keys; keeping the previous one".into());
        }
        let n = keys.len();
        if let Ok(mut k) = self.keys.write() {
            *k = Some(Arc::new(keys));
        }
        Ok(n)
    }

    /// Fetches at start (retrying, 1 s doubling to 30 s, until it works),
    /// then every refresh period. Runs for the process's life.
    pub async fn keep_fresh(self: Arc<Self>) {
        let mut wait = Duration::from_secs(1);
        loop {
            *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            let fetched = self.fetch().await;
            match &fetched {
                Ok(n) => log::info!("SWITCHBOARD_JWT_JWKS_URL {}: {n} keys", self.cfg.url),
                Err(e) => log::warn!("SWITCHBOARD_JWT_JWKS_URL {}: {e}", self.cfg.url),
            }
            let pause = match (fetched, self.current().is_some()) {
                (Ok(_), _) | (Err(_), true) => {
                    wait = Duration::from_secs(1);
                    self.cfg.refresh
                }
                (Err(_), false) => {
                    let w = wait;
                    wait = (wait * 2).min(Duration::from_secs(30));
                    w
                }
            };
            actix_web::rt::time::sleep(pause).await;
        }
    }
}
