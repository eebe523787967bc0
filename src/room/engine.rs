//! How a room numbers, keeps and publishes its messages and shares its
//! members, typing, state and streams: the seam between the Room actor
//! (members, fan-out, typing timers, the frames) and whatever orders the
//! room.
//!
//! [`Local`] is the one-node engine: the actor numbers each message itself,
//! at once, keeps its history in memory and hands it to the embedded
//! database (`publish.rs`), and announces members, typing, presence, state
//! and streams to its own members. The several-node engine
//! (`cluster::Shared`, `room/cluster/`) makes the actor a replica: Redis
//! numbers, stores and publishes (one script), and every node's members get
//! what arrives on the room's channel, in seq order, gaps repaired.
//!
//! The engine is chosen once, when the room starts, and called as a
//! `&'static dyn Engine` (both are stateless; a replica's state is the
//! room's `replica`). Its methods take the room, as what they change is the
//! room's.

use super::{Detached, Member, Publish, Room, StreamOp};
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

pub type Answer<T> = ResponseFuture<T>;

/// What the Room actor asks of whatever orders the room.
pub(in crate::room) trait Engine: Send + Sync + 'static {
    /// The room starts: nothing is handled before what it had is read.
    fn start(&self, room: &mut Room, ctx: &mut Context<Room>);

    fn stop(&self, room: &mut Room);

    /// Numbers, keeps and delivers a message; answers its seq.
    fn publish(
        &self,
        room: &mut Room,
        msg: Publish,
        ctx: &mut Context<Room>,
    ) -> Answer<Result<super::Accepted, HubError>>;

    /// A broker message for a mapped room, numbered like any other.
    fn relay_mqtt(&self, room: &mut Room, msg: &Arc<MqttMessage>, ctx: &mut Context<Room>);

    /// A session joined (again, with `rejoin`): the frames to announce to
    /// the others once the joiner's `room:joined` is queued.
    fn joined(&self, room: &mut Room, m: &Member, rejoin: bool) -> Vec<Bytes>;

    /// A session left: what to announce, and whether the user was typing.
    fn detach(&self, room: &mut Room, member: Member) -> Detached;

    /// Sessions of the room that are not this node's, with their users.
    fn sessions_elsewhere(&self, room: &Room) -> Vec<(SessionAddr, UserId)>;

    /// `typing:start` (on) or `typing:stop` from a member.
    fn typing(&self, room: &mut Room, user: UserId, on: bool, ctx: &mut Context<Room>);

    /// A member's status changed (from the Presence actor).
    fn member_status(&self, room: &mut Room, msg: MemberStatus);

    /// A compare-and-set write of the room's shared state.
    fn write_state(
        &self,
        room: &mut Room,
        write: crate::state::Write,
        by: Box<RawValue>,
        origin: super::StateOrigin,
        ctx: &mut Context<Room>,
    ) -> Answer<super::StateAnswer>;

    /// These keys' time is up (key, version).
    fn expire_state(&self, room: &mut Room, due: Vec<(String, u64)>, ctx: &mut Context<Room>);

    /// How long to wait before trying again a key whose time is up by this
    /// node's clock but that is still there.
    fn late_expiry_retry(&self) -> Duration;

    /// A stream start, chunk or end from a member.
    fn stream(&self, room: &mut Room, op: StreamOp, ctx: &mut Context<Room>);

    /// A session left: what the engine must end of the streams it produced
    /// (before the room ends those it has applied).
    fn producer_left(&self, room: &mut Room, session: SessionId);

    /// Ends a stream with an error made by the server.
    fn fail_stream(&self, room: &mut Room, stream: String, reason: &str, ctx: &mut Context<Room>);

    /// Plans a page of scrollback: memory first, then where the rest is.
    fn scrollback(&self, room: &Room, req: PageRequest) -> Plan;
}

/// One node: the room orders itself.
pub struct Local;

impl Engine for Local {
    fn start(&self, room: &mut Room, ctx: &mut Context<Room>) {
        room.load_state(ctx);
        room.load_history(ctx);
    }

    fn stop(&self, _: &mut Room) {}

    fn publish(
        &self,
        room: &mut Room,
        msg: Publish,
        ctx: &mut Context<Room>,
    ) -> Answer<Result<super::Accepted, HubError>> {
        room.publish_here(msg, ctx)
    }

    fn relay_mqtt(&self, room: &mut Room, msg: &Arc<MqttMessage>, ctx: &mut Context<Room>) {
        room.relay_mqtt_here(msg, ctx)
    }

    fn joined(&self, room: &mut Room, m: &Member, rejoin: bool) -> Vec<Bytes> {
        room.joined_here(m, rejoin)
    }

    fn detach(&self, room: &mut Room, member: Member) -> Detached {
        room.detach_here(member)
    }

    fn sessions_elsewhere(&self, _: &Room) -> Vec<(SessionAddr, UserId)> {
        Vec::new()
    }

    fn typing(&self, room: &mut Room, user: UserId, on: bool, ctx: &mut Context<Room>) {
        room.apply_typing(user, on, ctx);
    }

    fn member_status(&self, room: &mut Room, msg: MemberStatus) {
        room.member_status_here(msg);
    }

    fn write_state(
        &self,
        room: &mut Room,
        write: crate::state::Write,
        by: Box<RawValue>,
        origin: super::StateOrigin,
        ctx: &mut Context<Room>,
    ) -> Answer<super::StateAnswer> {
        room.state_write(write, by, origin, ctx)
    }

    fn expire_state(&self, room: &mut Room, due: Vec<(String, u64)>, ctx: &mut Context<Room>) {
        room.expire_state_here(due, ctx);
    }

    fn late_expiry_retry(&self) -> Duration {
        Duration::ZERO
    }

    fn stream(&self, room: &mut Room, op: StreamOp, ctx: &mut Context<Room>) {
        room.stream_here(op, ctx);
    }

    fn producer_left(&self, _: &mut Room, _: SessionId) {}

    fn fail_stream(&self, room: &mut Room, stream: String, reason: &str, ctx: &mut Context<Room>) {
        room.fail_stream_here(stream, reason, ctx);
    }

    fn scrollback(&self, room: &Room, req: PageRequest) -> Plan {
        let store = room.storage.as_ref().map(|(s, _)| s);
        Plan::from_history(&room.history, &room.name, req, store, None)
    }
}
