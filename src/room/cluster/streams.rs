//! Streams with several nodes. The producer's node sends each operation
//! to Redis, where one script checks it against the room's stream hash,
//! changes the hash and publishes the event on the room's channel
//! (`cluster/stream_scripts.rs`); every node's replica (the producer's
//! too) applies the events in channel order and tells its members, so the
//! catch-up rule holds on each node as on one: a join is handled between
//! two events. A node that starts serving the room mid-stream subscribes
//! first, then reads the hash: events that arrive meanwhile and are already
//! in what it read are dropped by their chunk index.

use super::Room;
use crate::cluster::stream_scripts as lua;
use crate::ids::{SessionAddr, SessionId};
use crate::room::streams::{Event, StreamOp};
use crate::streams::wire::StreamCall;
use crate::streams::{Live, Refusal, Streams};
use actix::prelude::*;
use redis::Value;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::time::Instant;

/// An event as the channel and the hash carry it.
#[derive(Serialize, Deserialize)]
struct Wire {
    e: String,
    stream: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    producer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    meta: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    cancelled: bool,
}

impl Wire {
    fn new(e: &str, stream: &str) -> Wire {
        Wire {
            e: e.into(),
            stream: stream.into(),
            producer: None,
            from: None,
            meta: None,
            ts: None,
            index: None,
            chunk: None,
            reason: None,
            by: None,
            cancelled: false,
        }
    }

    fn json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("stream events serialize")
    }

    /// The live stream a start event describes (empty text).
    fn live(&self) -> Option<Live> {
        let mut l = crate::streams::live(
            SessionAddr::parse(self.producer.as_deref()?)?,
            self.from.clone()?,
            self.meta.clone(),
        );
        l.ts = self.ts.unwrap_or(l.ts);
        l.cancelled = self.cancelled;
        Some(l)
    }

    fn event(self) -> Option<Event> {
        let stream = self.stream.clone();
        Some(match self.e.as_str() {
            "start" => Event::Start {
                live: self.live()?,
                stream,
            },
            "data" => Event::Data {
                stream,
                index: self.index?,
                chunk: self.chunk?,
            },
            "end" => Event::End { stream },
            "error" => Event::Error {
                stream,
                reason: self.reason?,
            },
            "cancel" => Event::Cancel {
                stream,
                by: self.by?,
            },
            _ => return None,
        })
    }
}

/// A refusal a script answered.
fn refusal(v: &Value, limits: &crate::streams::StreamLimits) -> Option<Refusal> {
    let word = match v {
        Value::BulkString(b) => b.as_slice(),
        Value::SimpleString(s) => s.as_bytes(),
        _ => return None,
    };
    Some(match word {
        b"unknown" => Refusal::Unknown,
        b"forbidden" => Refusal::NotProducer,
        b"exists" => Refusal::Exists,
        b"full" => Refusal::Full(limits.per_room),
        b"too_large" => Refusal::TooLarge(limits.max_bytes),
        _ => return None,
    })
}

impl Room {
    fn stream_keys(&self) -> (String, String) {
        let r = self.replica.as_ref().expect("cluster room");
        (r.m.room_key(&self.name, "sx"), r.chan.clone())
    }

    fn eval(
        &self,
        script: &str,
        args: Vec<Vec<u8>>,
    ) -> impl std::future::Future<Output = Result<Value, crate::error::HubError>> + 'static {
        let (hash, chan) = self.stream_keys();
        let r = self.replica.as_ref().expect("cluster room");
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(2).arg(hash).arg(chan);
        for a in args {
            cmd.arg(a);
        }
        // With the room's messages: a stream's end is one of them.
        r.m.command(cmd)
    }

    /// The hash's lifetime after a change: a few stall timeouts.
    fn stream_ttl(&self) -> Vec<u8> {
        (self.stream_limits.stall.as_millis() as u64 * 4 + 60_000)
            .to_string()
            .into_bytes()
    }

    pub(in crate::room) fn replica_stream(&mut self, op: StreamOp, ctx: &mut Context<Self>) {
        let me = SessionAddr::here(op.session).to_string().into_bytes();
        let stream = op.stream.clone().into_bytes();
        let limits = self.stream_limits;
        let (script, args) = match &op.call {
            StreamCall::Start { meta } => {
                let mut w = Wire::new("start", &op.stream);
                w.producer = Some(SessionAddr::here(op.session).to_string());
                w.from = Some(op.from.clone());
                w.meta = meta.clone();
                w.ts = Some(crate::ids::now_ms());
                let started = (op.stream.clone(), op.session);
                self.replica().starting.push(started);
                let args = vec![
                    stream,
                    w.json(),
                    limits.per_room.to_string().into_bytes(),
                    self.stream_ttl(),
                ];
                (lua::START.to_string(), args)
            }
            StreamCall::Data { chunk } => (lua::data(), self.data_args(&op.stream, me, chunk)),
            StreamCall::End { last: Some(chunk) } => {
                // The last chunk first; the end only once it was taken (a
                // refused last chunk refuses the end, as on one node).
                let args = self.data_args(&op.stream, me, chunk);
                let fut = self.eval(&lua::data(), args);
                ctx.spawn(fut.into_actor(self).map(move |v, act, ctx| {
                    match v.as_ref().ok().and_then(|v| refusal(v, &act.stream_limits)) {
                        Some(r) => op.refuse(r),
                        None if v.is_err() => op.refuse_unavailable(),
                        None => {
                            let op = StreamOp {
                                call: StreamCall::End { last: None },
                                ..op
                            };
                            act.replica_stream(op, ctx)
                        }
                    }
                }));
                return;
            }
            StreamCall::End { last: None } => {
                let end = Wire::new("end", &op.stream).json();
                (lua::finish(), vec![stream, me, end])
            }
            StreamCall::Error { reason } => {
                let mut w = Wire::new("error", &op.stream);
                w.reason = Some(reason.clone());
                (lua::finish(), vec![stream, me, w.json()])
            }
            StreamCall::Cancel => {
                let mut w = Wire::new("cancel", &op.stream);
                w.by = Some(op.from.clone());
                (lua::cancel(), vec![stream, Vec::new(), w.json()])
            }
        };
        let fut = self.eval(&script, args);
        ctx.spawn(fut.into_actor(self).map(move |v, act, ctx| {
            let refused = match &v {
                Ok(v) => refusal(v, &act.stream_limits),
                Err(_) => None,
            };
            if let (StreamCall::Start { .. }, true) = (&op.call, v.is_err() || refused.is_some()) {
                // Not started: nothing to end when its producer leaves.
                act.started(&op.stream, op.session);
            }
            let v = match v {
                Ok(v) => v,
                Err(_) => return op.refuse_unavailable(),
            };
            if let Some(r) = refused {
                return op.refuse(r);
            }
            if let StreamCall::End { .. } = op.call {
                // Stored as one ordinary message, as on one node.
                let a = crate::cluster::scripts::array(&v);
                let head = a.get(1).and_then(crate::cluster::scripts::bytes);
                let text = a.get(2).and_then(crate::cluster::scripts::bytes);
                let live = head
                    .and_then(|h| serde_json::from_slice::<Wire>(h).ok())
                    .and_then(|w| w.live());
                if let (Some(mut live), Some(text)) = (live, text) {
                    live.text = String::from_utf8_lossy(text).into_owned();
                    return act.publish_stream(&op.stream, live, Some(&op), ctx);
                }
            }
            // A start's or a chunk's ack waits until this node applied it,
            // so a join here after the ack has it in its catch-up (as a
            // message's ack follows its delivery here).
            let index = match op.call {
                StreamCall::Start { .. } => Some(0),
                StreamCall::Data { .. } => crate::cluster::scripts::array(&v)
                    .get(1)
                    .and_then(crate::cluster::scripts::int)
                    .map(|n| n.max(0) as u64 + 1),
                _ => None,
            };
            match (index, op.id.clone()) {
                (Some(upto), Some(id)) if !act.stream_applied(&op.stream, upto) => {
                    act.stream_acks
                        .push((op.stream.clone(), upto, op.outbox.clone(), id));
                }
                _ => op.ack(),
            }
        }));
    }

    /// Whether this node's copy of `stream` has its start and `upto` chunks.
    fn stream_applied(&self, stream: &str, upto: u64) -> bool {
        self.streams
            .live
            .get(stream)
            .is_some_and(|l| l.next >= upto)
    }

    /// Sends the acks whose event this node has applied (all of them with
    /// `all`, after the copy was read again or the stream ended).
    fn release_stream_acks(&mut self, all: bool) {
        let waiting = std::mem::take(&mut self.stream_acks);
        for (stream, upto, outbox, id) in waiting {
            if all || self.stream_applied(&stream, upto) || !self.streams.live.contains_key(&stream)
            {
                outbox.push(crate::protocol::encode(
                    &crate::protocol::ServerFrame::Ack { id: &id, seq: None },
                ));
            } else {
                self.stream_acks.push((stream, upto, outbox, id));
            }
        }
    }

    fn data_args(&self, stream: &str, me: Vec<u8>, chunk: &str) -> Vec<Vec<u8>> {
        let mut w = Wire::new("data", stream);
        w.chunk = Some(chunk.into());
        // The script writes `{"e":"data","index":n,` before this tail.
        let json = w.json();
        let tail = json[br#"{"e":"data","#.len()..].to_vec();
        vec![
            stream.as_bytes().to_vec(),
            me,
            chunk.as_bytes().to_vec(),
            self.stream_limits.max_bytes.to_string().into_bytes(),
            self.stream_ttl(),
            tail,
        ]
    }

    /// The server ends a stream (stall, producer gone): through Redis, so
    /// every node hears it once.
    pub(in crate::room) fn replica_fail_stream(&mut self, stream: String, reason: &str) {
        self.fail_as(stream, Vec::new(), reason)
    }

    /// A session left: the streams it started that this node has not
    /// applied yet end too (the end is queued after the start, so Redis runs
    /// it after; this room may stop before the start comes back on its
    /// channel, and then never sees it).
    pub(in crate::room) fn replica_producer_left(&mut self, session: SessionId) {
        let (gone, kept) = std::mem::take(&mut self.replica().starting)
            .into_iter()
            .partition(|(_, s)| *s == session);
        self.replica().starting = kept;
        let me = SessionAddr::here(session).to_string().into_bytes();
        for (stream, _) in gone {
            self.fail_as(stream, me.clone(), "producer_left");
        }
    }

    /// A start of this node's is applied here (or was refused): its
    /// producer's leave finds it in the room's streams from now on.
    fn started(&mut self, stream: &str, session: SessionId) {
        self.replica()
            .starting
            .retain(|(s, id)| (s.as_str(), *id) != (stream, session));
    }

    /// Ends `stream` with `reason`; `producer` empty: whoever made it.
    fn fail_as(&mut self, stream: String, producer: Vec<u8>, reason: &str) {
        let mut w = Wire::new("error", &stream);
        w.reason = Some(reason.into());
        let fut = self.eval(
            &lua::finish(),
            vec![stream.into_bytes(), producer, w.json()],
        );
        actix::spawn(async move {
            let _ = fut.await;
        });
    }

    /// An event from the room's channel (`A<json>`).
    pub(in crate::room) fn on_stream(&mut self, body: &[u8], ctx: &mut Context<Self>) {
        let Some(e) = serde_json::from_slice::<Wire>(body)
            .ok()
            .and_then(Wire::event)
        else {
            return;
        };
        let stream = match &e {
            Event::Start { stream, live } => {
                let here = live.producer.is_here().then_some(live.producer.session);
                if let Some(session) = here {
                    self.started(stream, session);
                }
                // Its producer left here before its start came back from
                // Redis: the leave found nothing to end, so end it now.
                let gone = here
                    .filter(|s| !self.members.contains_key(s))
                    .map(|_| stream.clone());
                self.apply_stream(e, here, ctx);
                if let Some(stream) = gone {
                    self.replica_fail_stream(stream, "producer_left");
                }
                return self.release_stream_acks(false);
            }
            Event::Data { stream, .. }
            | Event::End { stream }
            | Event::Error { stream, .. }
            | Event::Cancel { stream, .. } => stream,
        };
        let here = self
            .streams
            .live
            .get(stream)
            .filter(|l| l.producer.is_here())
            .map(|l| l.producer.session);
        self.apply_stream(e, here, ctx);
        if !self.stream_acks.is_empty() {
            self.release_stream_acks(false);
        }
    }

    /// Reads the room's live streams from Redis (after subscribing): at
    /// start, and again after the subscription was re-made, when members
    /// here get a fresh `stream:start` for every stream that moved on
    /// meanwhile and a `stream:error` (`interrupted`) for one that is gone.
    pub(in crate::room) fn load_streams(&mut self, announce: bool, ctx: &mut Context<Self>) {
        let (hash, _) = self.stream_keys();
        let r = self.replica.as_ref().expect("cluster room");
        let fut = r.m.command(redis::cmd("HGETALL").arg(hash).clone());
        let read = fut.into_actor(self).map(move |v, act, ctx| {
            let Ok(v) = v else {
                log::warn!("room {}: cannot read its streams from Redis", act.name);
                return;
            };
            let read = streams_of(&v);
            act.release_stream_acks(true);
            if !announce {
                act.streams = read;
                return act.schedule_stall(ctx);
            }
            let gone: Vec<String> = act
                .streams
                .live
                .keys()
                .filter(|k| !read.live.contains_key(*k))
                .cloned()
                .collect();
            let old = std::mem::replace(&mut act.streams, read);
            for k in gone {
                let f = crate::streams::error_frame(&act.name, &k, "interrupted");
                act.broadcast(&f, None);
            }
            let moved: Vec<_> = act
                .streams
                .live
                .iter()
                .filter(|(k, l)| old.live.get(*k).is_none_or(|o| o.next != l.next))
                .map(|(k, l)| crate::streams::start_frame(&act.name, k, l))
                .collect();
            for f in moved {
                act.broadcast(&f, None);
            }
            act.schedule_stall(ctx);
        });
        if announce {
            ctx.spawn(read);
        } else {
            ctx.wait(read);
        }
    }
}

/// The live streams in an `HGETALL` answer.
fn streams_of(v: &Value) -> Streams {
    let a = crate::cluster::scripts::array(v);
    let mut heads = Vec::new();
    let mut fields = std::collections::HashMap::new();
    for pair in a.chunks(2) {
        let (Some(k), Some(val)) = (
            pair.first().and_then(crate::cluster::scripts::bytes),
            pair.get(1).and_then(crate::cluster::scripts::bytes),
        ) else {
            continue;
        };
        let k = String::from_utf8_lossy(k).into_owned();
        if k.contains('#') {
            fields.insert(k, val.to_vec());
        } else {
            heads.push((k, val.to_vec()));
        }
    }
    let mut s = Streams::default();
    for (k, head) in heads {
        let Some(mut live) = serde_json::from_slice::<Wire>(&head)
            .ok()
            .and_then(|w| w.live())
        else {
            continue;
        };
        live.text = String::from_utf8_lossy(fields.get(&format!("{k}#t")).map_or(&[][..], |t| t))
            .into_owned();
        live.next = fields
            .get(&format!("{k}#n"))
            .and_then(|n| std::str::from_utf8(n).ok()?.parse().ok())
            .unwrap_or(0);
        live.last = Instant::now();
        s.live.insert(k, live);
    }
    s
}
