//! The several-node engine of a room (`room::Engine`): each call goes to
//! this node's replica (`mod.rs` and its siblings).

use super::super::engine::{Answer, Engine};
use super::super::{Accepted, Detached, Member, Publish, Room, StateAnswer, StateOrigin, StreamOp};
use crate::error::HubError;
use crate::ids::{SessionAddr, SessionId, UserId};
use crate::mqtt::message::MqttMessage;
use crate::presence::MemberStatus;
use crate::scrollback::{PageRequest, Plan};
use actix::prelude::*;
use bytes::Bytes;
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Duration;

/// The several-node engine: Redis orders the room; this actor is this
/// node's replica of it.
pub struct Shared;

impl Engine for Shared {
    fn start(&self, room: &mut Room, ctx: &mut Context<Room>) {
        room.start_replica(ctx);
        room.load_streams(false, ctx);
    }

    fn stop(&self, room: &mut Room) {
        room.replica_stopped();
    }

    fn publish(
        &self,
        room: &mut Room,
        msg: Publish,
        ctx: &mut Context<Room>,
    ) -> Answer<Result<Accepted, HubError>> {
        room.replica_publish(msg, ctx)
    }

    fn relay_mqtt(&self, room: &mut Room, msg: &Arc<MqttMessage>, _: &mut Context<Room>) {
        room.replica_mqtt(msg);
        room.report_if_idle();
    }

    /// Members are cluster-wide: the JOIN script announces a new member
    /// (and the SESSION script a new session) on the room's channel, which
    /// every node, this one too, applies.
    fn joined(&self, room: &mut Room, m: &Member, rejoin: bool) -> Vec<Bytes> {
        if !rejoin {
            room.replica_join(m);
        }
        Vec::new()
    }

    fn detach(&self, room: &mut Room, member: Member) -> Detached {
        room.replica_leave(&member);
        Detached {
            member,
            left: Vec::new(),
            was_typing: false,
        }
    }

    fn sessions_elsewhere(&self, room: &Room) -> Vec<(SessionAddr, UserId)> {
        let Some(r) = &room.replica else {
            return Vec::new();
        };
        r.sessions()
            .filter(|(a, _)| !a.is_here())
            .map(|(a, u)| (a.clone(), u.clone()))
            .collect()
    }

    /// Every node (this one too) applies it from the room's channel.
    fn typing(&self, room: &mut Room, user: UserId, on: bool, _: &mut Context<Room>) {
        room.send_typing(&user, on);
    }

    /// The presence engine's PRESENCE script publishes it on the rooms'
    /// channels; nothing is sent here.
    fn member_status(&self, _: &mut Room, _: MemberStatus) {}

    fn write_state(
        &self,
        room: &mut Room,
        write: crate::state::Write,
        by: Box<RawValue>,
        origin: StateOrigin,
        ctx: &mut Context<Room>,
    ) -> Answer<StateAnswer> {
        room.replica_state_write(write, &by, origin, ctx)
    }

    fn expire_state(&self, room: &mut Room, due: Vec<(String, u64)>, _: &mut Context<Room>) {
        for (key, version) in due {
            room.replica_state_expire(&key, version);
        }
    }

    /// A key the script found not yet expired (clocks differ) is tried
    /// again a little later, not in a loop.
    fn late_expiry_retry(&self) -> Duration {
        Duration::from_millis(250)
    }

    /// Redis decides (the producer's node may not have applied its own
    /// start yet when the first chunk comes).
    fn stream(&self, room: &mut Room, op: StreamOp, ctx: &mut Context<Room>) {
        room.replica_stream(op, ctx);
    }

    fn producer_left(&self, room: &mut Room, session: SessionId) {
        room.replica_producer_left(session);
    }

    fn fail_stream(&self, room: &mut Room, stream: String, reason: &str, _: &mut Context<Room>) {
        room.replica_fail_stream(stream, reason);
    }

    /// Memory first, then the room's stream in Redis.
    fn scrollback(&self, room: &Room, req: PageRequest) -> Plan {
        let c = room.replica.as_ref().map(|r| &r.m);
        Plan::from_history(&room.history, &room.name, req, None, c)
    }
}
