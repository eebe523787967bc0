//! The `doc:*` frames of a session (collaborative editing). Opens go
//! through the Hub, which routes documents like rooms; ops, cursors and
//! closes go straight to the document, whose answers come back through the
//! session's outbox.

use super::{hub_answer, Session, ROOM_BUSY_RETRY_MS};
use crate::document::{self, core::DocError, wire::DocRequest};
use crate::error::ErrorCode;
use crate::hub;
use crate::ids::RoomName;
use crate::protocol::{encode, ServerFrame};
use actix::prelude::*;

impl Session {
    fn doc_error(
        &self,
        doc: &RoomName,
        code: ErrorCode,
        msg: &str,
        seq: Option<u64>,
        id: Option<&str>,
    ) {
        let e = DocError::new(code, msg, seq);
        self.push(document::wire::error(doc.as_str(), &e, id));
    }

    pub(super) fn doc(&mut self, req: DocRequest, id: Option<String>, ctx: &mut Context<Self>) {
        let Some(ident) = &self.ident else { return };
        match req {
            DocRequest::Open { doc, rev } => {
                if !self.shared.auth.can_join(ident, &doc) {
                    let msg = format!("you may not open {doc}");
                    return self.doc_error(&doc, ErrorCode::Forbidden, &msg, None, id.as_deref());
                }
                let limit = self.shared.cfg.docs_per_session;
                if !self.docs.contains_key(&doc) && self.docs.len() >= limit {
                    let msg = format!("at most {limit} documents open per connection");
                    return self.doc_error(&doc, ErrorCode::TooManyDocs, &msg, None, id.as_deref());
                }
                let open = document::Open {
                    session: self.id,
                    user: ident.user.clone(),
                    name: ident.name.clone(),
                    outbox: self.outbox.clone(),
                    rev,
                    id: id.clone(),
                };
                // As with joins: read nothing more until the Hub has answered,
                // so ops sent right behind the open find the document.
                let req = hub::OpenDoc {
                    doc: doc.clone(),
                    open,
                };
                let fut = self.hub.send(req).into_actor(self).map(move |res, act, _| {
                    match hub_answer(res) {
                        Ok(addr) => {
                            act.docs.insert(doc, addr);
                        }
                        Err(why) => {
                            let msg = format!("open failed: {why}");
                            act.doc_error(&doc, ErrorCode::Unavailable, &msg, None, id.as_deref());
                        }
                    }
                });
                ctx.wait(fut);
            }
            DocRequest::Op {
                doc,
                rev,
                cid,
                seq,
                op,
            } => {
                let Some(addr) = self.docs.get(&doc) else {
                    let msg = format!("open {doc} before editing it");
                    return self.doc_error(
                        &doc,
                        ErrorCode::NotMember,
                        &msg,
                        Some(seq),
                        id.as_deref(),
                    );
                };
                let op = match crate::ot::Op::parse(op.get()) {
                    Ok(op) => op,
                    Err(e) => {
                        return self.doc_error(
                            &doc,
                            ErrorCode::InvalidOp,
                            &e.0,
                            Some(seq),
                            id.as_deref(),
                        )
                    }
                };
                let max = self.shared.cfg.doc_max_op_parts;
                if op.parts().len() > max {
                    let msg = format!("an op may have at most {max} parts");
                    return self.doc_error(
                        &doc,
                        ErrorCode::TooLarge,
                        &msg,
                        Some(seq),
                        id.as_deref(),
                    );
                }
                let edit = document::core::Edit { rev, cid, seq, op };
                let refused = match addr.try_send(document::Submit {
                    session: self.id,
                    edit,
                }) {
                    Ok(()) => return,
                    Err(SendError::Full(_)) => (
                        ErrorCode::RateLimited,
                        "the document is busy; retry shortly",
                    ),
                    Err(SendError::Closed(_)) => (
                        ErrorCode::Unavailable,
                        "the document is unavailable; reopen it",
                    ),
                };
                let mut e = DocError::new(refused.0, refused.1, Some(seq));
                e.retry_after_ms = Some(ROOM_BUSY_RETRY_MS);
                self.push(document::wire::error(doc.as_str(), &e, id.as_deref()));
            }
            DocRequest::Cursor {
                doc,
                cid,
                rev,
                anchor,
                head,
            } => match self.docs.get(&doc) {
                // Volatile: dropped when the document is busy.
                Some(addr) => {
                    let _ = addr.try_send(document::Cursor {
                        session: self.id,
                        cid,
                        rev,
                        anchor,
                        head,
                    });
                }
                None => {
                    let msg = format!("open {doc} first");
                    self.doc_error(&doc, ErrorCode::NotMember, &msg, None, id.as_deref());
                }
            },
            DocRequest::Close { doc } => match self.docs.remove(&doc) {
                Some(addr) => {
                    addr.do_send(document::Close { session: self.id });
                    if let Some(id) = id.as_deref() {
                        self.push(encode(&ServerFrame::Ack { id, seq: None }));
                    }
                }
                None => {
                    let msg = format!("{doc} is not open");
                    self.doc_error(&doc, ErrorCode::NotMember, &msg, None, id.as_deref());
                }
            },
        }
    }
}
