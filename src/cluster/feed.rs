//! The subscriber: one pub/sub connection, channel → the actor that wants
//! its messages. When the connection drops it is made again, every channel
//! subscribed again, and every subscriber told (`FeedEvent::Resync`) to
//! check its position: messages published meanwhile were not received.

use super::Cluster;
use actix::prelude::*;
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A message on a subscribed channel, or a position check.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Feed {
    pub chan: Arc<str>,
    pub event: FeedEvent,
}

#[derive(Clone)]
pub enum FeedEvent {
    Message(Bytes),
    /// The subscription was re-established: messages may have been missed.
    Resync,
}

/// A message on a channel matching a subscribed pattern (`PSUBSCRIBE`).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct PatternFeed {
    pub pattern: Arc<str>,
    pub chan: Arc<str>,
    pub payload: Bytes,
}

pub enum Cmd {
    /// Pattern subscriptions (`room:watch`): one target per pattern, no
    /// `Resync` (what they carry is live only).
    PSub {
        pattern: String,
        target: Recipient<PatternFeed>,
        token: u64,
        done: oneshot::Sender<bool>,
    },
    PUnsub {
        pattern: String,
        token: u64,
    },
    Sub {
        chan: String,
        target: Recipient<Feed>,
        token: u64,
        done: oneshot::Sender<bool>,
    },
    Unsub {
        chan: String,
        token: u64,
    },
}

struct Route {
    target: Recipient<Feed>,
    token: u64,
    name: Arc<str>,
}

pub async fn run(c: Cluster, client: redis::Client, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut routes: HashMap<String, Route> = HashMap::new();
    let mut patterns: HashMap<String, (Recipient<PatternFeed>, u64, Arc<str>)> = HashMap::new();
    let mut first = true;
    let mut delay = Duration::from_millis(100);
    loop {
        let pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                log::warn!("Redis subscriber: {e}; retrying in {delay:?}");
                c.set_up(false);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let chans: Vec<String> = routes.keys().cloned().collect();
        let mut ok = true;
        for part in chans.chunks(512) {
            if let Err(e) = sink.subscribe(part).await {
                log::warn!("Redis subscriber: {e}");
                ok = false;
                break;
            }
        }
        for p in patterns.keys() {
            if ok && sink.psubscribe(p).await.is_err() {
                ok = false;
            }
        }
        if !ok {
            tokio::time::sleep(delay).await;
            continue;
        }
        delay = Duration::from_millis(100);
        if !first {
            log::info!(
                "Redis subscriber reconnected; checking {} channels",
                routes.len()
            );
            for r in routes.values() {
                r.target.do_send(Feed {
                    chan: r.name.clone(),
                    event: FeedEvent::Resync,
                });
            }
        }
        first = false;
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    if let Ok(Some(p)) = msg.get_pattern::<Option<String>>() {
                        if let Some((target, _, name)) = patterns.get(&p) {
                            target.do_send(PatternFeed {
                                pattern: name.clone(),
                                chan: msg.get_channel_name().into(),
                                payload: Bytes::copy_from_slice(msg.get_payload_bytes()),
                            });
                        }
                        continue;
                    }
                    if let Some(r) = routes.get(msg.get_channel_name()) {
                        r.target.do_send(Feed {
                            chan: r.name.clone(),
                            event: FeedEvent::Message(Bytes::copy_from_slice(msg.get_payload_bytes())),
                        });
                    }
                }
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { return };
                    match cmd {
                        Cmd::PSub { pattern, target, token, done } => {
                            let fresh = !patterns.contains_key(&pattern);
                            let name: Arc<str> = pattern.as_str().into();
                            patterns.insert(pattern.clone(), (target, token, name));
                            let ok = !fresh || sink.psubscribe(&pattern).await.is_ok();
                            let _ = done.send(ok);
                        }
                        Cmd::PUnsub { pattern, token } => {
                            if patterns.get(&pattern).is_some_and(|p| p.1 == token) {
                                patterns.remove(&pattern);
                                let _ = sink.punsubscribe(&pattern).await;
                            }
                        }
                        Cmd::Sub { chan, target, token, done } => {
                            let fresh = !routes.contains_key(&chan);
                            let name: Arc<str> = chan.as_str().into();
                            routes.insert(chan.clone(), Route { target, token, name });
                            let ok = !fresh || sink.subscribe(&chan).await.is_ok();
                            let _ = done.send(ok);
                        }
                        Cmd::Unsub { chan, token } => {
                            if routes.get(&chan).is_some_and(|r| r.token == token) {
                                routes.remove(&chan);
                                let _ = sink.unsubscribe(&chan).await;
                            }
                        }
                    }
                }
            }
        }
        log::warn!("Redis subscriber connection lost; reconnecting");
        c.set_up(false);
    }
}
