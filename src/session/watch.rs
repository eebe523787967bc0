//! `room:watch` / `room:unwatch` of a session (`watch.rs`).

use super::*;
use crate::watch::{self, Pattern, WatchRequest};
use serde::Serialize;

/// `room:watching` / `room:unwatched`.
#[derive(Serialize)]
struct Answer<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    pattern: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
}

fn answer(ty: &str, p: &Pattern, id: Option<&str>) -> Bytes {
    crate::rpc::encode(&Answer {
        ty,
        pattern: p.as_str(),
        id,
    })
}

impl Session {
    pub(super) fn watch(&mut self, req: WatchRequest, id: Option<String>, ctx: &mut Context<Self>) {
        let id_ref = id.as_deref();
        match req {
            WatchRequest::Watch(p) => {
                if !self.ident.as_ref().is_some_and(|i| i.role.privileged()) {
                    let msg = "only services and admins may watch rooms";
                    return self.error(ErrorCode::Forbidden, msg, id_ref);
                }
                if self.watches.contains(&p) {
                    return self.push(answer("room:watching", &p, id_ref));
                }
                let max = self.shared.cfg.watch_patterns;
                if self.watches.len() >= max {
                    let msg = format!("at most {max} watched patterns per connection");
                    return self.error(ErrorCode::TooManyRooms, &msg, id_ref);
                }
                self.watches.push(p.clone());
                watch::add(self.id, &self.outbox, &p);
                let Some(c) = self.shared.cluster.clone() else {
                    return self.push(answer("room:watching", &p, id_ref));
                };
                // Answered once Redis has the subscription; the next client
                // frame waits for it, as after a join.
                let fut =
                    watch::subscribe(&c, &p)
                        .into_actor(self)
                        .map(move |res, act, _| match res {
                            Ok(()) => act.push(answer("room:watching", &p, id.as_deref())),
                            Err(e) => {
                                act.drop_watch(&p);
                                act.error(e.code, &e.message, id.as_deref());
                            }
                        });
                ctx.wait(fut);
            }
            WatchRequest::Unwatch(p) => {
                if !self.watches.contains(&p) {
                    let msg = format!("you do not watch {}", p.as_str());
                    return self.error(ErrorCode::NotFound, &msg, id_ref);
                }
                self.drop_watch(&p);
                self.push(answer("room:unwatched", &p, id_ref));
            }
        }
    }

    fn drop_watch(&mut self, p: &Pattern) {
        self.watches.retain(|w| w != p);
        watch::remove(self.id, Some(p));
        if let Some(c) = &self.shared.cluster {
            watch::unsubscribe(c, p);
        }
    }

    /// The session closes.
    pub(super) fn unwatch_all(&mut self) {
        if self.watches.is_empty() {
            return;
        }
        watch::remove(self.id, None);
        if let Some(c) = &self.shared.cluster {
            for p in self.watches.drain(..) {
                watch::unsubscribe(c, &p);
            }
        }
    }
}
