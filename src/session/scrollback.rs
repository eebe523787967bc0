//! `history:get`: a page of a room's history, answered with `history:page`.
//! The page is planned by the room (or the Hub) and finished here, off the
//! room's thread; the session goes on reading frames meanwhile.

use super::*;
use crate::scrollback::{page_frame, PageRequest};

/// Pages one session may have in flight; more are refused with `rate_limited`.
pub const PAGES_IN_FLIGHT: usize = 4;

impl Session {
    pub(super) fn history_page(
        &mut self,
        room: RoomName,
        page: PageRequest,
        id: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let Some(ident) = &self.ident else { return };
        // Who may read a room's history is who may join it.
        if !self.shared.auth.can_join(ident, &room) {
            let msg = format!("you may not read {room}");
            return self.error(ErrorCode::Forbidden, &msg, id.as_deref());
        }
        if self.pages >= PAGES_IN_FLIGHT {
            let msg = format!("at most {PAGES_IN_FLIGHT} history pages at a time");
            self.push(error_frame(
                ErrorCode::RateLimited,
                &msg,
                id.as_deref(),
                Some(100),
            ));
            return;
        }
        self.pages += 1;
        let plan = self.hub.send(hub::Scrollback {
            room: room.clone(),
            req: page,
        });
        let fut = async move {
            let plan = plan.await.map_err(|_| {
                crate::error::HubError::new(ErrorCode::Internal, "hub unavailable")
            })??;
            plan.finish().await
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| {
            act.pages -= 1;
            match res {
                Ok(p) => act.push(page_frame(&room, &p, id.as_deref())),
                Err(e) => act.error(e.code, &e.message, id.as_deref()),
            }
        }));
    }
}
