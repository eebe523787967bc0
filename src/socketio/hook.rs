//! A Socket.IO `CONNECT /` decided by the connect hook (docs/PROTOCOL.md,
//! "Connect hook"): as for our own transports, a connection without a
//! token or name (or every one, with `SWITCHBOARD_PROXY_CONNECT_ALL`) is
//! named by the backend, told the Engine.IO handshake request's cookies and
//! headers, the CONNECT's `auth` payload as `data`, and transport
//! `socket.io`. The session starts only once the backend has answered; a
//! refusal (or no answer) is `CONNECT_ERROR` with the backend's message and
//! code, and the Engine.IO connection stays open for another CONNECT, as
//! Socket.IO clients expect.

use super::bridge::Hub;
use super::engine::Engine;
use crate::proxy::connect::{ConnectAnswer, ConnectInfo, ConnectRequest};
use crate::proxy::{self, Hook, HookError};
use actix::prelude::*;
use serde_json::value::RawValue;

impl Engine<Hub> {
    /// What the connect hook is told, when it decides this CONNECT (`token`
    /// and `name` are the CONNECT's, else the handshake's).
    pub(super) fn hook_decides(
        &self,
        token: &Option<String>,
        name: &Option<String>,
    ) -> Option<ConnectInfo> {
        let proxy = &self.layer.st.shared.cfg.proxy;
        let asks = proxy.connect_all || (token.is_none() && name.is_none());
        let mut info = self.handshake.connect.clone().filter(|_| asks)?;
        info.token = token.clone();
        info.name = name.clone();
        Some(info)
    }

    /// Asks the backend who this connection is, then starts the session
    /// or answers `CONNECT_ERROR`. Packets keep flowing meanwhile (pings,
    /// polls); a second CONNECT is refused until this one is decided.
    pub(super) fn connect_through_hook(
        &mut self,
        info: ConnectInfo,
        data: Option<Box<RawValue>>,
        resume: (Option<String>, Option<String>),
        ctx: &mut Context<Self>,
    ) {
        let shared = self.layer.st.shared.clone();
        let addr = self.handshake.addr;
        let body = ConnectRequest {
            info: &info,
            data: data.as_deref(),
            transport: crate::session::Transport::SocketIo.name(),
            client: addr.to_string(),
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let call = async move {
            let cfg = &shared.cfg.proxy;
            let url = cfg.connect.as_deref().unwrap_or_default();
            proxy::call::<ConnectAnswer>(Hook::Connect, cfg, url, body).await
        };
        self.layer.sio.connecting = true;
        let fut = call.into_actor(self).map(move |res, act, ctx| {
            act.layer.sio.connecting = false;
            match res.and_then(|a| a.identity().map_err(HookError::Unavailable)) {
                Ok(ident) => {
                    let client = crate::session::Client { addr, guest: None };
                    act.start_session(ident, client, resume, ctx);
                }
                Err(e) => {
                    crate::monitor::events::auth_failure(Some(addr), e.message());
                    if e.code() == "unavailable" {
                        crate::metrics::METRICS.error(crate::error::ErrorCode::Unavailable);
                    }
                    act.connect_refused("/", e.code(), e.message(), ctx);
                }
            }
        });
        ctx.spawn(fut);
    }
}
