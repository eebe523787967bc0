//! The two layers of the conformance server, on the hub's Engine.IO engine:
//! [`Echo`] for `/engine.io/` and [`Conformance`] (Socket.IO packets, with
//! the hub's parser) for `/socket.io/`.

use actix::Context;
use bytes::Bytes;
use serde_json::value::RawValue;
use std::collections::HashSet;
use switchboard::error::close;
use switchboard::socketio::engine::{Engine, Layer};
use switchboard::socketio::packet::{Data, Packet};
use switchboard::socketio::parser::{self, Kind, SioPacket};

/// Sends every message back as it came.
pub struct Echo;

impl Layer for Echo {
    fn on_message(e: &mut Engine<Echo>, data: Data, ctx: &mut Context<Engine<Echo>>) {
        e.send(Packet::Message(data), ctx);
    }

    /// No Socket.IO here: the connect timeout does not apply.
    fn connected(&self) -> bool {
        true
    }

    fn on_close(_: &mut Engine<Echo>, _: u16, _: &str) {}

    fn on_stop(&mut self) {}
}

/// The namespaces the suite connects to (any other: "Invalid namespace").
const NAMESPACES: [&str; 2] = ["/", "/custom"];

/// Socket.IO as the suite expects it: on connect, `auth` with the
/// handshake's auth; `/` answers `message` with `message-back` and acks
/// `message-with-ack`, both with every argument (attachments too).
#[derive(Default)]
pub struct Conformance {
    connected: HashSet<String>,
    ever: bool,
    /// A binary packet waiting for its attachments (`None`: discard them).
    partial: Option<(Option<SioPacket>, usize, Vec<Bytes>)>,
}

type Ctx = Context<Engine<Conformance>>;

impl Layer for Conformance {
    fn on_message(e: &mut Engine<Conformance>, data: Data, ctx: &mut Ctx) {
        let text = match (data, e.layer.partial.as_mut()) {
            (Data::Binary(b), Some((_, want, got))) => {
                got.push(b);
                if got.len() == *want {
                    if let Some((Some(p), _, got)) = e.layer.partial.take() {
                        answer(e, p, got, ctx);
                    }
                }
                return;
            }
            (Data::Text(t), None) => t,
            _ => return e.close("parse error: unexpected message", close::PROTOCOL, ctx),
        };
        let p = match parser::parse(&text) {
            Ok(p) => p,
            Err(why) => return e.close(&format!("parse error: {why}"), close::PROTOCOL, ctx),
        };
        let joined = e.layer.connected.contains(&p.nsp);
        match p.kind {
            Kind::Connect if NAMESPACES.contains(&p.nsp.as_str()) => connect(e, p, ctx),
            Kind::Connect => {
                let err = parser::encode(
                    Kind::ConnectError,
                    &p.nsp,
                    None,
                    0,
                    Some(r#"{"message":"Invalid namespace"}"#),
                );
                e.send(Packet::Message(Data::Text(err)), ctx);
            }
            Kind::Disconnect => {
                e.layer.connected.remove(&p.nsp);
            }
            Kind::Event | Kind::BinaryEvent if joined && p.attachments > 0 => {
                let n = p.attachments;
                e.layer.partial = Some((Some(p), n, Vec::new()));
            }
            Kind::Event | Kind::BinaryEvent if joined => answer(e, p, Vec::new(), ctx),
            // Acks (we ask none), packets for namespaces not joined.
            _ if p.attachments > 0 => e.layer.partial = Some((None, p.attachments, Vec::new())),
            _ => {}
        }
    }

    fn connected(&self) -> bool {
        self.ever
    }

    fn on_close(_: &mut Engine<Conformance>, _: u16, _: &str) {}

    fn on_stop(&mut self) {}
}

fn send_text(e: &mut Engine<Conformance>, text: String, ctx: &mut Ctx) {
    e.send(Packet::Message(Data::Text(text)), ctx);
}

fn connect(e: &mut Engine<Conformance>, p: SioPacket, ctx: &mut Ctx) {
    e.layer.ever = true;
    e.layer.connected.insert(p.nsp.clone());
    let sid = format!(r#"{{"sid":"{}"}}"#, switchboard::ids::random_hex(10));
    send_text(
        e,
        parser::encode(Kind::Connect, &p.nsp, None, 0, Some(&sid)),
        ctx,
    );
    let auth = p.data.as_ref().map_or("{}", |d| d.get());
    let event = format!(r#"["auth",{auth}]"#);
    send_text(
        e,
        parser::encode(Kind::Event, &p.nsp, None, 0, Some(&event)),
        ctx,
    );
}

/// An event (its attachments all there): `message` and `message-with-ack`
/// on `/` are answered with the same arguments, byte for byte.
fn answer(e: &mut Engine<Conformance>, p: SioPacket, attachments: Vec<Bytes>, ctx: &mut Ctx) {
    if p.nsp != "/" {
        return;
    }
    // The parser checked the shape: an array, a name first.
    let raw = p.data.as_ref().map_or("[]", |d| d.get());
    let Ok(args) = serde_json::from_str::<Vec<&RawValue>>(raw) else {
        return;
    };
    let rest: Vec<&str> = args.iter().skip(1).map(|a| a.get()).collect();
    let rest = rest.join(",");
    let name = args.first().map(|a| a.get());
    let n = attachments.len();
    let (kind, id, data) = match (name, p.id) {
        (Some(r#""message""#), _) => {
            let sep = if rest.is_empty() { "" } else { "," };
            let kind = if n > 0 {
                Kind::BinaryEvent
            } else {
                Kind::Event
            };
            (kind, None, format!(r#"["message-back"{sep}{rest}]"#))
        }
        (Some(r#""message-with-ack""#), Some(id)) => {
            let kind = if n > 0 { Kind::BinaryAck } else { Kind::Ack };
            (kind, Some(id), format!("[{rest}]"))
        }
        _ => return,
    };
    send_text(e, parser::encode(kind, "/", id, n, Some(&data)), ctx);
    for b in attachments {
        e.send(Packet::Message(Data::Binary(b)), ctx);
    }
}
