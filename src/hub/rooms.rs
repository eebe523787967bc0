//! What the Hub knows of a room that has no actor here: the seam between
//! the Hub's room handlers (starting a room's actor, freeing it, and the
//! REST API's history, scroll-back and member list of a room nobody here
//! is in) and whatever keeps rooms.
//!
//! [`Local`] is the one-node engine: a freed room's history stays in the
//! idle LRU (bounded in bytes, `keep_idle`), what is not there is read from
//! the embedded database, and a room with no actor has no members. The
//! several-node engine (`cluster.rs`, `Shared`) starts each room's actor as
//! a replica of the room Redis keeps (`room::Engine`), keeps nothing idle
//! (Redis has the room), and reads a room with no actor here from Redis.

use super::*;
use crate::scrollback::{PageRequest, Plan};

/// What the Hub asks of whatever keeps rooms.
pub(super) trait Keeper {
    /// A room's actor about to start here, made this engine's.
    fn room(&self, room: Room) -> Room;
    /// A room's actor was freed, with this history.
    fn freed(&self, hub: &mut Hub, room: RoomName, history: History);
    /// A page of the kept history of a room with no actor here; `None`
    /// when it has none.
    fn history(
        &self,
        hub: &Hub,
        room: RoomName,
        since: u64,
        limit: usize,
    ) -> ResponseFuture<Option<HistoryView>>;
    /// Plans a page of scroll-back of a room with no actor here.
    fn scrollback(&self, hub: &Hub, room: &RoomName, req: PageRequest) -> Plan;
    /// The members of a room with no actor here.
    fn members(&self, hub: &Hub, room: &RoomName) -> ResponseFuture<Vec<MemberInfo>>;
}

/// One node: the idle LRU, then the embedded database.
pub(super) struct Local;

impl Hub {
    /// Storage, unless the room's mode keeps nothing.
    fn stored_for(&self, room: &RoomName) -> Option<&StoreHandle> {
        self.store
            .as_ref()
            .filter(|s| s.policy.mode(room.as_str()) != crate::store::RoomMode::Volatile)
    }
}

impl Keeper for Local {
    fn room(&self, room: Room) -> Room {
        room
    }

    fn freed(&self, hub: &mut Hub, room: RoomName, history: History) {
        if !history.is_empty() {
            hub.keep_idle(room, history);
        }
    }

    fn history(
        &self,
        hub: &Hub,
        room: RoomName,
        since: u64,
        limit: usize,
    ) -> ResponseFuture<Option<HistoryView>> {
        if let Some(h) = hub.idle.peek(&room) {
            let view = HistoryView::of(h, since, limit);
            return Box::pin(async move { Some(view) });
        }
        // Not idle: what storage has of it, if it is stored.
        let Some(store) = hub.stored_for(&room) else {
            return Box::pin(async { None });
        };
        let limits = hub.history;
        let no_keys = crate::idempotency::KeyLimits {
            window_ms: 0,
            keys: 0,
        };
        let load = store.load_room(room, limits.entries, no_keys);
        Box::pin(async move {
            let t = load.await.ok()??;
            let h = History::restore(limits, &t.epoch, t.seq, t.entries);
            Some(HistoryView::of(&h, since, limit))
        })
    }

    fn scrollback(&self, hub: &Hub, room: &RoomName, req: PageRequest) -> Plan {
        let store = hub.stored_for(room);
        match hub.idle.peek(room) {
            Some(h) => Plan::from_history(h, room, req, store, None),
            None => Plan::stored(room, req, store),
        }
    }

    fn members(&self, _: &Hub, _: &RoomName) -> ResponseFuture<Vec<MemberInfo>> {
        Box::pin(std::future::ready(Vec::new()))
    }
}
