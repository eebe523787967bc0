//! `signal` routing: to one session of this node that is in the room, or
//! through the target node's channel (`<prefix>:node:<node>:sig`), where
//! that node checks the same and answers the sender the same way:
//! - `G<session> <room> <reply address> <id length> <id><frame>`: deliver;
//! - `R<session> <frame>`: the `ack` or `error` for a sender here.

use super::*;
use crate::cluster::{Cluster, Feed, FeedEvent};
use crate::ids::SessionAddr;

/// A `signal`, checked and encoded by the sending session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Signal {
    pub from: SessionId,
    pub to: SessionAddr,
    pub room: RoomName,
    /// The `signal` frame the target gets.
    pub frame: Bytes,
    pub id: Option<String>,
}

fn not_found(to: &SessionAddr, id: Option<&str>) -> Bytes {
    let msg = format!("no session {to}: it closed, or the id is wrong");
    error_frame(ErrorCode::NotFound, &msg, id, None)
}

/// The channel on which `node` takes signals for its sessions.
pub(super) fn signal_chan(c: &Cluster, node: &str) -> String {
    c.key(&format!("node:{node}:sig"))
}

impl Handler<Signal> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Signal, _: &mut Context<Self>) {
        let id = msg.id.as_deref();
        if msg.to.is_here() {
            let answer = self.deliver_signal(msg.to.session, &msg.room, &msg.frame, id);
            return self.answer_signal(&SessionAddr::here(msg.from), answer);
        }
        let Some(node) = msg.to.node.as_deref() else {
            let answer = Some(not_found(&msg.to, id));
            return self.answer_signal(&SessionAddr::here(msg.from), answer);
        };
        let Some(sender) = self.sessions.get(&msg.from).map(|s| s.outbox.clone()) else {
            return;
        };
        let mut payload = format!(
            "G{} {} {} {} {}",
            msg.to.session.0,
            msg.room,
            SessionAddr::here(msg.from),
            id.map_or(0, str::len),
            id.unwrap_or("")
        )
        .into_bytes();
        payload.extend_from_slice(&msg.frame);
        let Some(sent) = self.directory.to_node(node, payload) else {
            let answer = Some(not_found(&msg.to, id));
            return self.answer_signal(&SessionAddr::here(msg.from), answer);
        };
        actix::spawn(async move {
            let id = msg.id.as_deref();
            match sent.await {
                Ok(false) => {
                    sender.push(not_found(&msg.to, id));
                }
                Ok(true) => {}
                Err(e) => {
                    sender.push(error_frame(e.code, &e.message, id, Some(500)));
                }
            }
        });
    }
}

impl Hub {
    /// Queues a signal to a session here that is in `room`; the sender's
    /// answer (`ack` when it has an id, or an error).
    fn deliver_signal(
        &self,
        to: SessionId,
        room: &RoomName,
        frame: &Bytes,
        id: Option<&str>,
    ) -> Option<Bytes> {
        let addr = SessionAddr::here(to);
        let Some(t) = self.sessions.get(&to) else {
            return Some(not_found(&addr, id));
        };
        if !t.rooms.contains(room) {
            let msg = format!("session {addr} is not in {room}");
            return Some(error_frame(ErrorCode::Forbidden, &msg, id, None));
        }
        if !t.outbox.push(frame.clone()) {
            return Some(not_found(&addr, id));
        }
        METRICS.deliveries.fetch_add(1, Relaxed);
        METRICS.signals.fetch_add(1, Relaxed);
        id.map(|id| encode(&ServerFrame::Ack { id, seq: None }))
    }

    /// Gives the sender its answer: here, or through its node's channel.
    fn answer_signal(&self, to: &SessionAddr, answer: Option<Bytes>) {
        let Some(answer) = answer else { return };
        if to.is_here() {
            if let Some(s) = self.sessions.get(&to.session) {
                s.outbox.push(answer);
            }
            return;
        }
        let Some(node) = to.node.as_deref() else {
            return;
        };
        let mut payload = format!("R{} ", to.session.0).into_bytes();
        payload.extend_from_slice(&answer);
        if let Some(sent) = self.directory.to_node(node, payload) {
            actix::spawn(async move {
                let _ = sent.await;
            });
        }
    }

    /// A message on this node's signal channel.
    pub(super) fn on_signal_feed(&self, msg: Feed) {
        let FeedEvent::Message(p) = msg.event else {
            return;
        };
        match p.first() {
            Some(b'G') => {
                let Some(g) = Routed::read(&p[1..]) else {
                    return;
                };
                let frame = p.slice_ref(g.frame);
                let answer = self.deliver_signal(g.to, &g.room, &frame, g.id);
                self.answer_signal(&g.reply, answer);
            }
            Some(b'R') => {
                let text = &p[1..];
                let Some(sp) = text.iter().position(|b| *b == b' ') else {
                    return;
                };
                let n = std::str::from_utf8(&text[..sp])
                    .ok()
                    .and_then(|n| n.parse().ok());
                if let Some(s) = n.and_then(|n| self.sessions.get(&SessionId(n))) {
                    s.outbox.push(p.slice_ref(&text[sp + 1..]));
                }
            }
            // Tool calls share the channel (`rpc.rs`).
            _ => self.on_rpc_feed(&p),
        }
    }
}

/// A `G` payload, read.
struct Routed<'a> {
    to: SessionId,
    room: RoomName,
    reply: SessionAddr,
    id: Option<&'a str>,
    frame: &'a [u8],
}

impl<'a> Routed<'a> {
    fn read(p: &'a [u8]) -> Option<Routed<'a>> {
        let mut words = p.splitn(5, |b| *b == b' ');
        let mut word = || std::str::from_utf8(words.next()?).ok();
        let to = SessionId(word()?.parse().ok()?);
        let room = RoomName::parse(word()?)?;
        let reply = SessionAddr::parse(word()?)?;
        let len: usize = word()?.parse().ok()?;
        let rest = words.next()?;
        if rest.len() < len {
            return None;
        }
        let id = std::str::from_utf8(&rest[..len]).ok()?;
        Some(Routed {
            to,
            room,
            reply,
            id: (len > 0).then_some(id),
            frame: &rest[len..],
        })
    }
}
