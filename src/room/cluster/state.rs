//! Shared state with several nodes: one script (`STATE_WRITE`) decides
//! each write on the room's keys in Redis and publishes the change on the
//! room's channel; every node's replica (this node's too) applies the
//! changes in version order and tells its members. The room's counter
//! gives consecutive versions, so a change that skips ahead shows a gap:
//! the node reads the room again (with its state) and sends its members a
//! fresh `state:snapshot`.

use super::{word, Room};
use crate::cluster::scripts::{self, Lua};
use crate::error::{ErrorCode, HubError};
use crate::outbox::Outbox;
use crate::room::state::{StateAnswer, StateOrigin};
use crate::state::{self, Change, Refusal, StateMap, Write};
use actix::prelude::*;
use bytes::Bytes;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// This node's bookkeeping of the room's state.
#[derive(Default)]
pub(super) struct StateReplica {
    /// Acks waiting until their change was applied here (the sender sees
    /// its own `state:update` first, as on one node).
    acks: BTreeMap<u64, Vec<(Outbox, String)>>,
    /// Changes that arrived while the state is being read again.
    pending: BTreeMap<u64, Change>,
    resyncing: bool,
}

/// The stored entries (`<version> <expires> <frame>`) as a map.
fn map_of(rev: u64, stored: &[Bytes]) -> StateMap {
    let entries = stored.iter().filter_map(|v| {
        let (_, rest) = word(v)?;
        let (_, frame) = word(rest)?;
        let c = state::change_of(frame)?;
        Some((c.key, c.entry?))
    });
    StateMap::new(rev, entries)
}

/// `{"type":"state:update","room":…,"key":…,` (then `"value":…,`).
fn frame_head(room: &str, key: &str, value: Option<&RawValue>) -> Vec<u8> {
    // Room names and keys need no escaping (their syntax allows none).
    let mut h = format!(r#"{{"type":"state:update","room":"{room}","key":"{key}","#);
    if let Some(v) = value {
        h.push_str(r#""value":"#);
        h.push_str(v.get());
        h.push(',');
    }
    h.into_bytes()
}

/// The script's answer to a write: the new version, or why not.
fn written(v: Result<redis::Value, HubError>, key: &str, max_keys: usize) -> Result<u64, Refusal> {
    let v = v.map_err(|e| Refusal::Other(e.code, e.message.into_owned()))?;
    let a = scripts::array(&v);
    let version = || a.get(1).and_then(scripts::int).unwrap_or(0).max(0) as u64;
    match a.first().and_then(scripts::bytes) {
        Some(b"ok") => Ok(version()),
        Some(b"conflict") => {
            let stored = a.get(2).and_then(scripts::bytes).unwrap_or_default();
            let value = map_of(0, &[Bytes::copy_from_slice(stored)])
                .get(key, 0)
                .map(|e| e.value.clone());
            Err(Refusal::Conflict {
                version: version(),
                value,
            })
        }
        Some(b"full") => Err(Refusal::Other(
            ErrorCode::TooManyKeys,
            format!("a room has at most {max_keys} keys"),
        )),
        _ => Err(Refusal::Other(
            ErrorCode::Internal,
            "unexpected answer from Redis".into(),
        )),
    }
}

impl Room {
    fn state_keys(&self) -> Vec<String> {
        let r = self.replica.as_ref().expect("cluster room");
        vec![
            r.c.room_key(&self.name, "st"),
            r.c.room_key(&self.name, "sv"),
            r.chan.clone(),
        ]
    }

    /// Sends a write to Redis; the sender's ack follows its change.
    pub(in crate::room) fn replica_state_write(
        &mut self,
        write: Write,
        by: &RawValue,
        origin: StateOrigin,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<StateAnswer> {
        // The bounds a node can check alone; the version and the key count
        // are the script's to decide.
        let (key, limits) = (write.key.clone(), self.state_limits);
        let probe = Write {
            key: write.key.clone(),
            value: write.value.clone(),
            version: 0,
            ttl_ms: None,
        };
        if let Err(Refusal::Other(code, m)) = StateMap::default().check(&probe, &limits, 0) {
            let a = self.refuse_state(&key, Refusal::Other(code, m), &origin);
            return Box::pin(std::future::ready(a));
        }
        let head = frame_head(self.name.as_str(), &key, write.value.as_deref());
        let args = vec![
            key.clone().into_bytes(),
            write.version.to_string().into_bytes(),
            head,
            by.get().as_bytes().to_vec(),
            write.ttl_ms.unwrap_or(0).to_string().into_bytes(),
            limits.max_keys.to_string().into_bytes(),
            if write.value.is_none() {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            },
        ];
        let keys = self.state_keys();
        let fut = self.replica().c.script(Lua::StateWrite, keys, args);
        let max_keys = limits.max_keys;
        if let StateOrigin::Api = origin {
            // Answered without the actor: a room with no members may be
            // freed while the script runs, and the write stands anyway.
            return Box::pin(async move {
                match written(fut.await, &key, max_keys) {
                    Ok(version) => StateAnswer::Done { version },
                    Err(Refusal::Conflict { version, value }) => {
                        StateAnswer::Conflict { version, value }
                    }
                    Err(Refusal::Other(code, m)) => StateAnswer::Failed(HubError::new(code, m)),
                }
            });
        }
        // A session is a member: the room stays while the script runs.
        ctx.spawn(
            fut.into_actor(self)
                .map(move |v, act, _| match written(v, &key, max_keys) {
                    Ok(version) => act.ack_state(origin, version),
                    Err(r) => {
                        act.refuse_state(&key, r, &origin);
                    }
                }),
        );
        // Sessions are answered with frames; nobody waits on this.
        Box::pin(std::future::ready(StateAnswer::Map(StateMap::default())))
    }

    /// A session's accepted write: its `ack` once its change is applied here.
    fn ack_state(&mut self, origin: StateOrigin, version: u64) {
        if let StateOrigin::Session {
            outbox,
            id: Some(id),
            ..
        } = origin
        {
            if self.state.rev >= version {
                outbox.push(state::ack_frame(&id, version));
            } else {
                let acks = &mut self.replica().state.acks;
                acks.entry(version).or_default().push((outbox, id));
            }
        }
    }

    /// Asks Redis to delete a key whose time is up (another node may
    /// already have; the change arrives on the channel either way).
    pub(in crate::room) fn replica_state_expire(&mut self, key: &str, version: u64) {
        let head = frame_head(self.name.as_str(), key, None);
        let args = vec![
            key.as_bytes().to_vec(),
            version.to_string().into_bytes(),
            head,
        ];
        let keys = self.state_keys();
        let fut = self.replica().c.script(Lua::StateExpire, keys, args);
        actix::spawn(async move {
            let _ = fut.await;
        });
    }

    /// `S<frame>` from the room's channel: apply it in version order.
    pub(super) fn on_state(&mut self, frame: &[u8], ctx: &mut Context<Self>) {
        let Some(change) = state::change_of(frame) else {
            return;
        };
        if change.version <= self.state.rev {
            return;
        }
        if self.replica().state.resyncing || change.version > self.state.rev + 1 {
            self.replica().state.pending.insert(change.version, change);
            if !self.replica().state.resyncing {
                self.replica().state.resyncing = true;
                self.replica().c.count_gap();
                self.resync(ctx);
            }
            return;
        }
        self.apply_state(&change, ctx);
        self.flush_state_acks();
    }

    fn flush_state_acks(&mut self) {
        let rev = self.state.rev;
        let acks = &mut self.replica().state.acks;
        let done: Vec<u64> = acks.range(..=rev).map(|(v, _)| *v).collect();
        for v in done {
            for (outbox, id) in acks.remove(&v).unwrap_or_default() {
                outbox.push(state::ack_frame(&id, v));
            }
        }
    }

    /// The state as read with the room (`announce`: read again, after a
    /// gap or a re-made subscription): replaces this node's copy; members
    /// get a fresh `state:snapshot` when it differs from what they had.
    pub(super) fn state_loaded(
        &mut self,
        rev: u64,
        stored: &[Bytes],
        announce: bool,
        ctx: &mut Context<Self>,
    ) {
        let fresh = map_of(rev, stored);
        let changed = fresh.rev != self.state.rev;
        self.state = fresh;
        let pending = std::mem::take(&mut self.replica().state.pending);
        self.replica().state.resyncing = false;
        if announce && changed {
            let frame = self.state_snapshot(None, None);
            self.broadcast(&frame, None);
        }
        self.arm_state_timer(ctx);
        for (_, c) in pending {
            if c.version == self.state.rev + 1 {
                self.apply_state(&c, ctx);
            }
        }
        self.flush_state_acks();
    }
}
