//! `POST /api/streams/{stream}?room=…|to=…`: a service streams a response
//! over plain HTTP, its request body being the text. The request is a
//! session of transport `rest` while it lasts, so the stream is exactly a
//! `stream:*` stream made by a connected service (same room checks, limits,
//! catch-up, storage, and Redis across nodes): the session joins the room,
//! sends `stream:start`, one `stream:data` per part of the body as it
//! arrives, and `stream:end` when the body ends; the response is the stored
//! message's `seq`. A member's `stream:cancel` answers the request at once
//! (`cancelled`), which tells the service to stop generating; what it sent
//! so far is stored. docs/PROTOCOL.md, "AI response streams".

use super::api::{privileged, room_param};
use super::{client_addr, Admitted};
use crate::error::{ErrorCode, HubError};
use crate::ids::RoomName;
use crate::outbox::{self, Out};
use crate::relay::{QueueStream, Queued};
use crate::session::{self, Session, Transport};
use crate::AppState;
use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};

/// What came first while the body streams.
enum Next {
    Answer(Result<Answer, HubError>),
    Part(Option<Result<Bytes, actix_web::error::PayloadError>>),
}
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::VecDeque;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    room: Option<String>,
    to: Option<String>,
    /// JSON text, given to members in `stream:start`.
    meta: Option<String>,
}

/// The frames the producing session gets that this request cares about.
#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "type")]
    ty: String,
    /// Answers carry the frame's `id`; errors carry it as `ref`.
    #[serde(alias = "ref")]
    id: Option<String>,
    code: Option<String>,
    message: Option<String>,
    seq: Option<u64>,
    stream: Option<String>,
    by: Option<Box<RawValue>>,
}

/// The producing session, ended when the request ends (also when the
/// client goes away and actix drops the handler).
struct Producer {
    session: Addr<Session>,
    frames: QueueStream,
    /// Answers read but not yet looked at (a batch holds several).
    ready: VecDeque<Bytes>,
    /// Set once a member asked to cancel the stream.
    cancelled: Option<Box<RawValue>>,
    stream: String,
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.session.do_send(session::Close {
            code: crate::error::close::NORMAL,
            reason: "stream request ended".into(),
        });
    }
}

fn code_of(s: Option<&str>) -> ErrorCode {
    ErrorCode::ALL
        .into_iter()
        .find(|c| Some(c.as_str()) == s)
        .unwrap_or(ErrorCode::Internal)
}

impl Producer {
    fn send(&self, frame: Value) {
        self.session
            .do_send(session::Inbound(Bytes::from(frame.to_string())));
    }

    /// The next frame the session got that this request acts on: the answer
    /// to one of its frames (`id`) or a cancel. `Err` when the session ended.
    async fn next(&mut self) -> Result<Answer, HubError> {
        loop {
            while let Some(b) = self.ready.pop_front() {
                let Ok(a) = serde_json::from_slice::<Answer>(&b) else {
                    continue;
                };
                if a.ty == "stream:cancelled" && a.stream.as_deref() == Some(&*self.stream) {
                    return Ok(a);
                }
                if a.id.is_some() {
                    return Ok(a);
                }
            }
            match self.frames.next().await {
                Some(Queued::Frame(Out::Text(b) | Out::Droppable(b, _))) => self.ready.push_back(b),
                Some(Queued::Frame(Out::Batch(v))) => self.ready.extend(v),
                Some(Queued::Frame(_)) => {}
                Some(Queued::Closed(code, reason)) => {
                    return Err(HubError::new(
                        ErrorCode::Unavailable,
                        format!("the stream's session ended ({code} {reason})"),
                    ))
                }
                None => {
                    return Err(HubError::new(
                        ErrorCode::Unavailable,
                        "the stream's session ended",
                    ))
                }
            }
        }
    }

    /// Sends `frame` (with `id`) and waits for its answer: `Ok` with the
    /// answer, or the `error` as the request's error. A cancel seen while
    /// waiting is kept.
    async fn call(&mut self, mut frame: Value, id: &str) -> Result<Answer, HubError> {
        frame["id"] = id.into();
        self.send(frame);
        loop {
            let a = self.next().await?;
            if a.ty == "stream:cancelled" {
                self.cancelled = a.by;
                continue;
            }
            // An error answering any of its frames fails the request.
            self.fail_on(&a)?;
            if a.id.as_deref() == Some(id) {
                return Ok(a);
            }
        }
    }

    /// An `error` answer becomes the request's error.
    fn fail_on(&self, a: &Answer) -> Result<(), HubError> {
        if a.ty == "error" {
            let msg = a.message.clone().unwrap_or_default();
            return Err(HubError::new(code_of(a.code.as_deref()), msg));
        }
        Ok(())
    }
}

/// The longest valid UTF-8 text at the front of `pending`, removed from it;
/// an incomplete character at the end stays for the next part of the body.
fn take_text(pending: &mut Vec<u8>) -> Result<String, HubError> {
    let valid = match std::str::from_utf8(pending) {
        Ok(_) => pending.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => {
            return Err(HubError::new(
                ErrorCode::BadRequest,
                "the body is not UTF-8 text",
            ))
        }
    };
    let rest = pending.split_off(valid);
    let text = std::mem::replace(pending, rest);
    Ok(String::from_utf8(text).unwrap_or_default())
}

pub async fn stream(
    req: HttpRequest,
    st: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<StreamQuery>,
    mut body: web::Payload,
) -> Result<HttpResponse, HubError> {
    let who = privileged(&req, &st)?;
    let stream = path.into_inner();
    if !crate::streams::valid_id(&stream) {
        return Err(HubError::new(
            ErrorCode::BadRequest,
            "stream ids are 1 to 64 characters from A-Z a-z 0-9 _ - . : @",
        ));
    }
    let room = match (&q.room, &q.to) {
        (Some(r), None) => room_param(r)?,
        (None, Some(u)) => crate::ids::UserId::parse(u)
            .and_then(|u| RoomName::parse(&format!("user:{u}")))
            .ok_or_else(|| HubError::new(ErrorCode::BadRequest, "`to` is not a user id"))?,
        _ => {
            return Err(HubError::new(
                ErrorCode::BadRequest,
                "name the stream's `room` or the user it goes `to` (one of them)",
            ))
        }
    };
    let meta: Option<Box<RawValue>> =
        match &q.meta {
            Some(m) => Some(serde_json::from_str(m).map_err(|e| {
                HubError::new(ErrorCode::BadRequest, format!("meta is not JSON: {e}"))
            })?),
            None => None,
        };
    super::admit_capacity(&st.shared)?;
    let shared = st.shared.clone();
    let client = session::Client {
        addr: client_addr(req.head(), &shared),
        guest: None,
    };
    let ctx = Context::<Session>::new();
    let cap = shared.cfg.outbox;
    let (outbox, close_tx, queue) = outbox::queue(cap, ctx.address().recipient());
    let admitted = Admitted {
        ident: Some(who),
        client,
        connect: None,
    };
    let session = ctx.run(Session::new(
        shared,
        st.hub.clone(),
        st.presence.clone(),
        admitted,
        outbox,
        close_tx,
        Transport::Rest,
    ));
    let mut p = Producer {
        session,
        frames: QueueStream::new(queue, cap),
        ready: VecDeque::new(),
        cancelled: None,
        stream: stream.clone(),
    };
    p.call(json!({"type": "room:join", "room": room}), "join")
        .await?;
    let mut start = json!({"type": "stream:start", "room": room, "stream": stream});
    if let Some(m) = meta {
        start["meta"] = serde_json::to_value(m).unwrap_or(Value::Null);
    }
    p.call(start, "start").await?;
    let streamed = async {
        let sent = relay_body(&mut p, &room, &mut body).await?;
        let end = json!({"type": "stream:end", "room": room, "stream": stream});
        let end = p.call(end, "end").await?;
        Ok::<_, HubError>((sent, end))
    };
    let (sent, end) = match streamed.await {
        Ok(done) => done,
        Err(e) => {
            // Members see the stream fail with the request's error code (its
            // session's leave would end it too, as `producer_left`).
            let reason = e.code.as_str();
            p.send(
                json!({"type": "stream:error", "room": room, "stream": stream, "reason": reason}),
            );
            return Err(e);
        }
    };
    let mut out = json!({"room": room, "stream": stream, "seq": end.seq, "length": sent});
    if let Some(by) = p.cancelled.take() {
        out["cancelled"] = json!({ "by": by });
    }
    Ok(HttpResponse::Ok().json(out))
}

/// Sends the body as `stream:data` parts until it ends or a member cancels;
/// answers the bytes sent. Each part is what arrived together (a part that
/// ends inside a character waits for the rest of it).
async fn relay_body(
    p: &mut Producer,
    room: &RoomName,
    body: &mut web::Payload,
) -> Result<usize, HubError> {
    let mut pending = Vec::new();
    let mut sent = 0;
    // Chunks sent and not answered yet: the end waits for their answers, so
    // a refused chunk fails the request instead of ending the stream short.
    let mut unanswered = 0usize;
    let mut body_ended = false;
    while p.cancelled.is_none() && !(body_ended && unanswered == 0) {
        let next = if body_ended {
            Next::Answer(p.next().await)
        } else {
            tokio::select! {
                biased;
                a = p.next() => Next::Answer(a),
                part = body.next() => Next::Part(part),
            }
        };
        let part = match next {
            Next::Answer(a) => {
                let a = a?;
                if a.ty == "stream:cancelled" {
                    p.cancelled = Some(a.by.unwrap_or_else(|| RawValue::NULL.to_owned()));
                    continue;
                }
                if a.id.as_deref() == Some("data") {
                    unanswered = unanswered.saturating_sub(1);
                }
                p.fail_on(&a)?;
                continue;
            }
            Next::Part(part) => part,
        };
        let Some(part) = part else {
            if !pending.is_empty() {
                return Err(HubError::new(
                    ErrorCode::BadRequest,
                    "the body ends inside a UTF-8 character",
                ));
            }
            body_ended = true;
            continue;
        };
        let part = part.map_err(|e| HubError::new(ErrorCode::BadRequest, e.to_string()))?;
        pending.extend_from_slice(&part);
        // What else has already arrived goes in the same part.
        while let Some(Some(Ok(more))) = body.next().now_or_never() {
            pending.extend_from_slice(&more);
        }
        let chunk = take_text(&mut pending)?;
        if chunk.is_empty() {
            continue;
        }
        sent += chunk.len();
        unanswered += 1;
        p.send(json!({"type": "stream:data", "room": room, "stream": p.stream, "chunk": chunk, "id": "data"}));
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::take_text;

    #[test]
    fn text_is_cut_only_between_characters() {
        let mut p = "añ".as_bytes().to_vec();
        p.push(0xE2); // the first byte of "€"
        assert_eq!(take_text(&mut p).unwrap(), "añ");
        assert_eq!(p, vec![0xE2]);
        p.extend_from_slice(&[0x82, 0xAC, b'!']);
        assert_eq!(take_text(&mut p).unwrap(), "€!");
        assert!(p.is_empty());
        let mut bad = vec![b'a', 0xFF, b'b'];
        assert!(take_text(&mut bad).is_err());
    }
}
