//! The sender thread: stores what the hub emits in the queue table, POSTs
//! the oldest events in batches (after a short linger), deletes them on a
//! 2xx, and otherwise waits (doubling up to a cap) and sends the same batch
//! again. Its own actix runtime and outbound client, its own database
//! connection: a slow receiver never holds up a session, a room or the writer.

use super::STATS;
use crate::config::{StorageConfig, WebhookConfig};
use crate::store::db::{describe, Db, Options};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// `hex(HMAC-SHA256(secret, body))`, the `X-Switchboard-Signature` after `sha256=`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The running sender; [`Sender::stop`] stores what is still in the channel.
pub struct Sender {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sender {
    pub(super) fn start(
        cfg: WebhookConfig,
        storage: &StorageConfig,
        rx: mpsc::UnboundedReceiver<String>,
    ) -> Result<Sender, String> {
        let opts = Options {
            sync: storage.sync.clone(),
            busy: storage.busy,
            max_bytes: storage.max_bytes,
        };
        let db = Db::open(storage.path.as_deref(), &opts)?;
        let backlog = db
            .webhook_backlog()
            .map_err(|e| format!("webhook queue: {}", describe(&e)))?;
        STATS.backlog.store(backlog, Relaxed);
        if backlog > 0 {
            log::info!("webhooks: {backlog} events from before the restart are waiting");
        }
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("webhooks".into())
            .spawn(move || {
                let run = Run {
                    cfg,
                    db,
                    incoming: Vec::new(),
                    backoff: None,
                };
                actix_web::rt::System::new().block_on(run.run(rx, stopped));
            })
            .map_err(|e| format!("cannot start the webhook thread: {e}"))?;
        Ok(Sender {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stores the events still in the channel and stops (waiting at most `wait`).
    pub fn stop(mut self, wait: Duration) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let Some(t) = self.thread.take() else { return };
        if !crate::store::join_within(t, wait) {
            log::warn!("webhooks: the sender did not stop in time; unstored events are lost");
        }
    }
}

struct Run {
    cfg: WebhookConfig,
    db: Db,
    /// Events received and not stored yet (a failed write keeps them here).
    incoming: Vec<String>,
    /// The wait after the last failed POST; `None` after a success.
    backoff: Option<Duration>,
}

impl Run {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<String>,
        mut stop: oneshot::Receiver<()>,
    ) {
        // When the next POST is due; `None`: nothing is waiting.
        let mut due = (STATS.backlog.load(Relaxed) > 0).then(Instant::now);
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => return self.finish(&mut rx),
                got = rx.recv() => match got {
                    Some(e) => {
                        self.incoming.push(e);
                        while let Ok(e) = rx.try_recv() {
                            self.incoming.push(e);
                        }
                    }
                    None => return self.finish(&mut rx),
                },
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {}
            }
            if !self.incoming.is_empty() {
                self.store();
                let backlog = STATS.backlog.load(Relaxed);
                if self.backoff.is_none() && backlog >= self.cfg.batch as u64 {
                    due = Some(Instant::now());
                } else if due.is_none() && backlog > 0 {
                    due = Some(Instant::now() + self.cfg.linger);
                }
            }
            if due.is_some_and(|d| d <= Instant::now()) {
                let sent = tokio::select! {
                    biased;
                    _ = &mut stop => return self.finish(&mut rx),
                    sent = self.send_batch() => sent,
                };
                due = match sent {
                    Ok(()) => {
                        self.backoff = None;
                        (STATS.backlog.load(Relaxed) > 0).then(Instant::now)
                    }
                    Err(why) => {
                        let wait = match self.backoff {
                            None => self.cfg.retry_min,
                            Some(b) => (b * 2).min(self.cfg.retry_max),
                        };
                        self.backoff = Some(wait);
                        STATS.failures.fetch_add(1, Relaxed);
                        log::warn!(
                            "webhooks: POST {} failed ({why}); again in {wait:?}",
                            self.cfg.url
                        );
                        Some(Instant::now() + wait)
                    }
                };
            }
        }
    }

    /// Stores what is left in the channel; the rest is sent after a restart.
    fn finish(mut self, rx: &mut mpsc::UnboundedReceiver<String>) {
        while let Ok(e) = rx.try_recv() {
            self.incoming.push(e);
        }
        self.store();
    }

    /// Moves the received events into the queue table.
    fn store(&mut self) {
        if self.incoming.is_empty() {
            return;
        }
        match self.db.queue_webhook_events(&self.incoming, self.cfg.queue) {
            Ok(dropped) => {
                self.incoming.clear();
                if dropped > 0 {
                    STATS.dropped.fetch_add(dropped, Relaxed);
                    log::warn!(
                        "webhooks: {dropped} oldest events dropped (SWITCHBOARD_WEBHOOK_QUEUE={})",
                        self.cfg.queue
                    );
                }
            }
            Err(e) => {
                log::warn!("webhooks: events not stored yet: {}", describe(&e));
                // Kept in memory meanwhile, within the same bound.
                let over = self.incoming.len().saturating_sub(self.cfg.queue as usize);
                if over > 0 {
                    self.incoming.drain(..over);
                    STATS.dropped.fetch_add(over as u64, Relaxed);
                }
            }
        }
        self.count();
    }

    fn count(&self) {
        if let Ok(n) = self.db.webhook_backlog() {
            STATS.backlog.store(n, Relaxed);
        }
    }

    /// POSTs the oldest batch; deletes it on a 2xx.
    async fn send_batch(&mut self) -> Result<(), String> {
        let batch = self
            .db
            .webhook_batch(self.cfg.batch)
            .map_err(|e| describe(&e))?;
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(());
        };
        let (first, last) = (first.0, last.0);
        let mut body = String::from("{\"events\":[");
        for (i, (_, e)) in batch.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(e);
        }
        body.push_str("]}");
        let signature = format!("sha256={}", sign(&self.cfg.secret, body.as_bytes()));
        let mut res = crate::outbound::client()
            .post(&self.cfg.url)
            .timeout(self.cfg.timeout)
            .insert_header(("content-type", "application/json"))
            .insert_header(("x-switchboard-signature", signature))
            .insert_header((
                "user-agent",
                concat!("switchboard/", env!("CARGO_PKG_VERSION")),
            ))
            .send_body(body)
            .await
            .map_err(|e| e.to_string())?;
        // Read (a little of) the answer so the connection can be reused.
        let _ = res.body().limit(64 * 1024).await;
        if !res.status().is_success() {
            return Err(format!("status {}", res.status().as_u16()));
        }
        let n = self
            .db
            .delete_webhook_events(first, last)
            .map_err(|e| describe(&e))?;
        STATS.delivered.fetch_add(n as u64, Relaxed);
        self.count();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// RFC 4231 test case 2.
    #[test]
    fn signs_as_hmac_sha256() {
        assert_eq!(
            super::sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
