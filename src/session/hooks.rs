//! The proxy hooks seen from a session (docs/PROTOCOL.md, "Proxy hooks"):
//! the connect hook names a connection without a token, the subscribe hook
//! allows joins, the publish hook accepts, refuses or rewrites messages.
//! Each call is awaited with `ctx.wait`, as joins are: the session reads no
//! further frame until the backend has answered (or the call timed out), so
//! its frames keep their order (acks and errors come in the order sent) and
//! a message is numbered only once the backend accepted it.

use super::*;
use crate::proxy::connect::{ConnectAnswer, ConnectRequest};
use crate::proxy::{self, Hook, HookError};
use serde::{Deserialize, Serialize};

/// Who asks, in the subscribe and publish hooks' requests.
#[derive(Serialize)]
struct Caller<'a> {
    user: &'a str,
    name: &'a str,
    role: &'a str,
    session: String,
    transport: &'a str,
}

#[derive(Serialize)]
struct SubscribeRequest<'a> {
    #[serde(flatten)]
    caller: Caller<'a>,
    room: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeAnswer {
    /// Shown with the user in member lists (`null`: none).
    #[serde(default)]
    info: Option<Box<RawValue>>,
}

/// The largest `info` the subscribe hook may attach (it is in every member
/// list and member event of the room, and kept in Redis with several nodes).
pub const MAX_INFO: usize = 4096;

impl SubscribeAnswer {
    /// The `info` to list, checked as a message's `data` is.
    fn info(self) -> Result<Option<Arc<RawValue>>, HookError> {
        let Some(info) = self.info.filter(|i| i.get() != "null") else {
            return Ok(None);
        };
        let len = info.get().len();
        let problem = if len > MAX_INFO {
            Some(format!("{len} bytes; the limit is {MAX_INFO}"))
        } else {
            protocol::data_problem(info.get())
        };
        match problem {
            None => Ok(Some(Arc::from(info))),
            Some(why) => Err(HookError::Unavailable(format!(
                "the subscribe hook's info is refused: {why}"
            ))),
        }
    }
}

#[derive(Serialize)]
struct PublishRequest<'a> {
    #[serde(flatten)]
    caller: Caller<'a>,
    room: &'a str,
    data: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishAnswer {
    /// Replaces the message's `data` when present.
    #[serde(default, deserialize_with = "some_raw")]
    data: Option<Box<RawValue>>,
}

/// A present `data` is always `Some`, `null` included.
fn some_raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

impl Session {
    fn caller(&self) -> Option<Caller<'_>> {
        let i = self.ident.as_ref()?;
        Some(Caller {
            user: i.user.as_str(),
            name: &i.name,
            role: i.role.as_str(),
            session: crate::ids::SessionAddr::here(self.id).to_string(),
            transport: self.transport.name(),
        })
    }

    /// The first frame of a connection the connect hook decides: an `auth`
    /// frame's `data` goes with the call (its token too with
    /// `SWITCHBOARD_PROXY_CONNECT_ALL`; without it a token is checked as
    /// usual); any other frame is handled once the hook has named the session.
    pub(super) fn connect_on_frame(
        &mut self,
        parsed: Result<Request, protocol::FrameError>,
        text: Bytes,
        ctx: &mut Context<Self>,
    ) {
        match parsed {
            Ok(Request {
                frame: ClientFrame::Auth { token, data },
                ..
            }) => match token {
                Some(t) if !self.shared.cfg.proxy.connect_all => {
                    self.connect = None;
                    match self.shared.auth.verify(&t, self.client.addr) {
                        Ok(ident) => self.register(ident, ctx),
                        Err(e) => self.close(close::POLICY, &e.message, ctx),
                    }
                }
                token => self.connect_hook_then(token, data, None, ctx),
            },
            // Handled once the hook has answered (unless it refused).
            _ => self.connect_hook_then(None, None, Some(text), ctx),
        }
    }

    /// Asks the connect hook who this connection is; a refusal (or no
    /// answer) sends an `error` frame with the backend's code and closes 1008.
    pub(super) fn connect_hook(
        &mut self,
        token: Option<String>,
        data: Option<Box<RawValue>>,
        ctx: &mut Context<Self>,
    ) {
        self.connect_hook_then(token, data, None, ctx)
    }

    /// `connect_hook`, then the frame `then` once the session has a name.
    fn connect_hook_then(
        &mut self,
        token: Option<String>,
        data: Option<Box<RawValue>>,
        then: Option<Bytes>,
        ctx: &mut Context<Self>,
    ) {
        let Some(mut info) = self.connect.take() else {
            return;
        };
        if token.is_some() {
            info.token = token;
        }
        let shared = self.shared.clone();
        let body = ConnectRequest {
            info: &info,
            data: data.as_deref(),
            transport: self.transport.name(),
            client: self.client.addr.to_string(),
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let call = async move {
            let cfg = &shared.cfg.proxy;
            let url = cfg.connect.as_deref().unwrap_or_default();
            proxy::call::<ConnectAnswer>(Hook::Connect, cfg, url, body).await
        };
        let fut = call.into_actor(self).map(move |res, act, ctx| {
            let res = res.and_then(|a| a.identity().map_err(HookError::Unavailable));
            match res {
                Ok(ident) => {
                    act.register(ident, ctx);
                    if let (Some(text), false) = (then, act.closing) {
                        act.on_text(text, ctx);
                    }
                }
                Err(e) => {
                    crate::monitor::events::auth_failure(Some(act.client.addr), e.message());
                    act.push(e.frame(None));
                    act.close(close::POLICY, e.message(), ctx);
                }
            }
        });
        ctx.wait(fut);
    }

    /// Whether a join of `room` must be allowed by the subscribe hook.
    pub(super) fn subscribe_hook_applies(&self, room: &RoomName) -> bool {
        let (cfg, name) = (&self.shared.cfg, room.as_str());
        if self.rooms.contains_key(room) || room.personal_owner().is_some() {
            return false;
        }
        cfg.proxy.subscribes(name)
            || (cfg.proxy.subscribe.is_some() && cfg.room_rules.subscribe_hook(name))
    }

    /// Joins `room` if the subscribe hook allows it.
    pub(super) fn join_through_hook(
        &mut self,
        room: RoomName,
        since: Option<u64>,
        epoch: Option<String>,
        state: bool,
        id: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let Some(caller) = self.caller() else { return };
        let body = SubscribeRequest {
            caller,
            room: room.as_str(),
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let shared = self.shared.clone();
        let call = async move {
            let cfg = &shared.cfg.proxy;
            let url = cfg.subscribe.as_deref().unwrap_or_default();
            proxy::call::<SubscribeAnswer>(Hook::Subscribe, cfg, url, body).await
        };
        let fut = call.into_actor(self).map(move |res, act, ctx| {
            match res.and_then(SubscribeAnswer::info) {
                Ok(info) => act.join_allowed(room, since, epoch, state, id, info, ctx),
                Err(e) => act.push(e.frame(id.as_deref())),
            }
        });
        ctx.wait(fut);
    }

    /// `message:send`: refused in a read-only room (unless admin or
    /// service), passed through the publish hook in a room it covers
    /// (unless admin or service).
    pub(super) fn send_message(
        &mut self,
        room: RoomName,
        frame: RoomFrame,
        ctx: &mut Context<Self>,
    ) {
        let Some(addr) = self.rooms.get(&room).cloned() else {
            return self.send(room, frame);
        };
        let RoomFrame::Send {
            data,
            id,
            opts,
            received,
        } = frame
        else {
            return self.forward(&room, &addr, frame);
        };
        let cfg = &self.shared.cfg;
        let privileged = self.ident.as_ref().is_some_and(|i| i.role.privileged());
        if !privileged && cfg.room_rules.read_only(room.as_str()) {
            let msg = format!("{room} is read-only: only services publish there");
            return self.error(ErrorCode::Forbidden, &msg, id.as_deref());
        }
        // Admin and service connections are trusted, as REST publishes are:
        // the hook moderates users and guests (docs/PROTOCOL.md, "Publish hook").
        if privileged || !cfg.proxy.publishes(room.as_str()) {
            let frame = RoomFrame::Send {
                data,
                id,
                opts,
                received,
            };
            return self.forward(&room, &addr, frame);
        }
        let Some(caller) = self.caller() else { return };
        let body = PublishRequest {
            caller,
            room: room.as_str(),
            data: &data,
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let shared = self.shared.clone();
        let call = async move {
            let cfg = &shared.cfg.proxy;
            let url = cfg.publish.as_deref().unwrap_or_default();
            proxy::call::<PublishAnswer>(Hook::Publish, cfg, url, body).await
        };
        let fut = call.into_actor(self).map(move |res, act, _| {
            let res = res.and_then(|a| match a.data {
                None => Ok(data),
                Some(new) => act.check_replaced(new),
            });
            match res {
                Ok(data) => {
                    let frame = RoomFrame::Send {
                        data,
                        id,
                        opts,
                        received,
                    };
                    act.forward(&room, &addr, frame);
                }
                Err(e) => act.push(e.frame(id.as_deref())),
            }
        });
        ctx.wait(fut);
    }

    /// A `data` from the publish hook passes the checks a client's does.
    fn check_replaced(&self, data: Box<RawValue>) -> Result<Box<RawValue>, HookError> {
        let (len, max) = (data.get().len(), self.shared.cfg.max_frame);
        let problem = if len > max {
            Some(format!("{len} bytes; the limit is {max}"))
        } else {
            protocol::data_problem(data.get())
        };
        match problem {
            None => Ok(data),
            Some(why) => Err(HookError::Unavailable(format!(
                "the publish hook's data is refused: {why}"
            ))),
        }
    }
}
