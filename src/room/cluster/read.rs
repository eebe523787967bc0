//! Reading a shared room from Redis: when its replica starts or resyncs,
//! and for the REST API on a node where it has no actor.

use super::info_of;
use crate::cluster::scripts::{self, Lua};
use crate::cluster::Cluster;
use crate::error::{ErrorCode, HubError};
use crate::history::History;
use crate::ids::random_hex;
use crate::protocol::MemberInfo;

/// Reads a room: numbering, its newest `entries`, members. With the
/// room's messages on another Redis than the first, the numbering and
/// entries are read there and the rest from the first.
pub(super) fn load(
    c: &Cluster,
    room: &crate::ids::RoomName,
    entries: usize,
) -> impl std::future::Future<Output = Result<scripts::Loaded, HubError>> + 'static {
    let m = c.for_room(room);
    let rest = load_one(c, room, if m.same_redis(c) { entries } else { 0 });
    let msgs = (!m.same_redis(c)).then(|| load_one(&m, room, entries));
    async move {
        let mut l = rest.await?;
        if let Some(msgs) = msgs {
            let ml = msgs.await?;
            (l.epoch, l.seq, l.entries) = (ml.epoch, ml.seq, ml.entries);
        }
        Ok(l)
    }
}

/// The LOAD script on one Redis.
fn load_one(
    c: &Cluster,
    room: &crate::ids::RoomName,
    entries: usize,
) -> impl std::future::Future<Output = Result<scripts::Loaded, HubError>> + 'static {
    let fut = c.script(
        Lua::Load,
        vec![
            c.room_key(room, "m"),
            c.room_key(room, "x"),
            c.room_key(room, "mem"),
            c.room_key(room, "st"),
            c.room_key(room, "sv"),
            c.room_key(room, "ses"),
        ],
        vec![random_hex(8).into_bytes(), entries.to_string().into_bytes()],
    );
    async move {
        let v = fut.await?;
        scripts::loaded(&v)
            .ok_or_else(|| HubError::new(ErrorCode::Internal, "unexpected answer from Redis"))
    }
}

/// A room's members as Redis has them (on the first Redis, whichever has
/// its messages), for `GET /api/rooms/{room}/presence` on a node where the
/// room is not active.
pub fn read_members(
    c: &Cluster,
    room: &crate::ids::RoomName,
) -> impl std::future::Future<Output = Vec<MemberInfo>> + 'static {
    let fut = load_one(c, room, 0);
    async move { fut.await.map(|l| members_of(&l)).unwrap_or_default() }
}

/// The member list of a read room, each with their sessions.
fn members_of(l: &scripts::Loaded) -> Vec<MemberInfo> {
    let mut members: Vec<MemberInfo> = l.members.iter().filter_map(|j| info_of(j)).collect();
    for m in &mut members {
        m.sessions = l
            .sessions
            .iter()
            .filter(|(_, u)| *u == m.user)
            .map(|(a, _)| a.clone())
            .collect();
    }
    members
}

/// A room's history as Redis has it, for `GET /api/rooms/{room}/history`
/// on a node where the room is not active.
pub fn read_history(
    c: &Cluster,
    room: &crate::ids::RoomName,
    limits: crate::history::HistoryLimits,
) -> impl std::future::Future<Output = Option<(History, Vec<MemberInfo>)>> + 'static {
    let fut = load(c, room, limits.entries);
    async move {
        let l = fut.await.ok()?;
        let members = members_of(&l);
        Some((
            History::restore(limits, &l.epoch, l.seq, l.entries),
            members,
        ))
    }
}
