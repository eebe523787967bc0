//! Requests from the REST API and the MQTT bridge: publish, broadcast,
//! room listings, history, members, counts for `/healthz`.

use super::*;

/// `POST /api/publish`: a message to a room from a service or admin.
#[derive(Message)]
#[rtype(result = "Result<room::Accepted, HubError>")]
pub struct ApiPublish {
    pub room: RoomName,
    pub from: From,
    pub data: Box<RawValue>,
    pub id: Option<String>,
    /// `idempotency_key`, `priority`, `volatile` (no `exclude_self`).
    pub opts: crate::protocol::PublishOptions,
}

impl Handler<ApiPublish> for Hub {
    type Result = ResponseFuture<Result<room::Accepted, HubError>>;

    fn handle(&mut self, msg: ApiPublish, ctx: &mut Context<Self>) -> Self::Result {
        crate::monitor::flow::record(
            crate::monitor::flow::FlowKind::Room,
            msg.room.as_str(),
            msg.data.get().len(),
            crate::monitor::flow::SenderKind::Service,
        );
        let r = self.room(&msg.room, ctx);
        r.hub_ops += 1;
        let fut = r.addr.send(room::Publish {
            from: msg.from,
            data: msg.data,
            id: msg.id,
            opts: msg.opts,
            origin: Origin::Api,
            received: Instant::now(),
        });
        Box::pin(async move {
            fut.await
                .map_err(|_| HubError::new(ErrorCode::Internal, "room unavailable"))?
        })
    }
}

/// The REST state routes: a read or write of a room's shared state, by
/// the room (started, with its state, if needed).
#[derive(Message)]
#[rtype(result = "room::StateAnswer")]
pub struct ApiState {
    pub room: RoomName,
    pub call: room::StateCall,
}

impl Handler<ApiState> for Hub {
    type Result = ResponseFuture<room::StateAnswer>;

    fn handle(&mut self, msg: ApiState, ctx: &mut Context<Self>) -> Self::Result {
        let r = self.room(&msg.room, ctx);
        r.hub_ops += 1;
        let fut = r.addr.send(room::StateOp {
            call: msg.call,
            origin: room::StateOrigin::Api,
        });
        Box::pin(async move {
            fut.await.unwrap_or_else(|_| {
                room::StateAnswer::Failed(HubError::new(ErrorCode::Internal, "room unavailable"))
            })
        })
    }
}

/// A message from the MQTT broker for a mapped room; the room is started
/// (with its kept history) if needed, like for a REST publish.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MqttToRoom {
    pub room: RoomName,
    pub msg: std::sync::Arc<crate::mqtt::message::MqttMessage>,
}

impl Handler<MqttToRoom> for Hub {
    type Result = ();

    fn handle(&mut self, msg: MqttToRoom, ctx: &mut Context<Self>) {
        // With several nodes, one numbers broker messages into mapped
        // rooms; the others' copies are dropped.
        if !self.ingestion.ingests() {
            return;
        }
        let r = self.room(&msg.room, ctx);
        r.hub_ops += 1;
        r.addr.do_send(room::MqttRelay { msg: msg.msg });
    }
}

/// `POST /api/broadcast`: a frame to every session. Answers how many got it.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Broadcast {
    pub from: From,
    pub data: Box<RawValue>,
}

impl Handler<Broadcast> for Hub {
    type Result = usize;

    fn handle(&mut self, msg: Broadcast, _: &mut Context<Self>) -> usize {
        let frame = encode(&ServerFrame::Broadcast {
            from: &msg.from,
            data: &msg.data,
            ts: now_ms(),
        });
        let directory = self.directory.clone();
        directory.broadcast(self, frame)
    }
}

/// One active room, for `GET /api/rooms`.
pub struct RoomSummary {
    pub room: RoomName,
    pub sessions: usize,
}

#[derive(Message)]
#[rtype(result = "Vec<RoomSummary>")]
pub struct ListRooms;

impl Handler<ListRooms> for Hub {
    type Result = MessageResult<ListRooms>;

    fn handle(&mut self, _: ListRooms, _: &mut Context<Self>) -> Self::Result {
        let mut v: Vec<RoomSummary> = self
            .rooms
            .iter()
            .map(|(n, r)| RoomSummary {
                room: n.clone(),
                sessions: r.sessions,
            })
            .collect();
        v.sort_by(|a, b| a.room.cmp(&b.room));
        MessageResult(v)
    }
}

/// Kept history of a room, active or idle. `None` if the room has none.
#[derive(Message)]
#[rtype(result = "Option<HistoryView>")]
pub struct GetHistory {
    pub room: RoomName,
    pub since: u64,
    pub limit: usize,
}

impl Handler<GetHistory> for Hub {
    type Result = ResponseFuture<Option<HistoryView>>;

    fn handle(&mut self, msg: GetHistory, _: &mut Context<Self>) -> Self::Result {
        if let Some(r) = self.rooms.get(&msg.room) {
            let fut = r.addr.send(room::GetHistory {
                since: msg.since,
                limit: msg.limit,
            });
            return Box::pin(async move { fut.await.ok() });
        }
        self.keeper.history(self, msg.room, msg.since, msg.limit)
    }
}

/// Plans a page of scrollback for a room, active, idle or only stored.
#[derive(Message)]
#[rtype(result = "Result<crate::scrollback::Plan, HubError>")]
pub struct Scrollback {
    pub room: RoomName,
    pub req: crate::scrollback::PageRequest,
}

impl Handler<Scrollback> for Hub {
    type Result = ResponseFuture<Result<crate::scrollback::Plan, HubError>>;

    fn handle(&mut self, msg: Scrollback, _: &mut Context<Self>) -> Self::Result {
        if let Some(r) = self.rooms.get(&msg.room) {
            let fut = r.addr.send(room::Scrollback { req: msg.req });
            return Box::pin(async move {
                fut.await
                    .map_err(|_| HubError::new(ErrorCode::Internal, "room unavailable"))
            });
        }
        let plan = self.keeper.scrollback(self, &msg.room, msg.req);
        Box::pin(async move { Ok(plan) })
    }
}

/// Members of a room with their presence.
#[derive(Message)]
#[rtype(result = "Vec<MemberInfo>")]
pub struct GetMembers {
    pub room: RoomName,
}

impl Handler<GetMembers> for Hub {
    type Result = ResponseFuture<Vec<MemberInfo>>;

    fn handle(&mut self, msg: GetMembers, _: &mut Context<Self>) -> Self::Result {
        if let Some(r) = self.rooms.get(&msg.room) {
            let fut = r.addr.send(room::GetMembers);
            return Box::pin(async move { fut.await.unwrap_or_default() });
        }
        if !self.room_rules.presence(msg.room.as_str()) {
            // A room rule with `presence: false` lists no members.
            return Box::pin(std::future::ready(Vec::new()));
        }
        self.keeper.members(self, &msg.room)
    }
}

/// Counts for `/healthz`.
pub struct Stats {
    pub sessions: usize,
    pub users: usize,
    pub rooms: usize,
    pub idle_rooms: usize,
}

#[derive(Message)]
#[rtype(result = "Stats")]
pub struct GetStats;

impl Handler<GetStats> for Hub {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Stats {
            sessions: self.sessions.len(),
            users: self.users.len(),
            rooms: self.rooms.len(),
            idle_rooms: self.idle.len(),
        })
    }
}
