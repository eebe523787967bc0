//! The WebSocket transport at `/socket.io/`: a new connection (no `sid`),
//! or the upgrade of a long-polling one (`sid`), handed over by
//! `http::ws::upgraded` with the bare socket after the request was read.

use super::engine::{Engine, Handshake, Probe};
use super::{EioError, EioQuery, Mount, Transport};
use actix_http::Request;
use actix_web::rt::net::TcpStream;
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

/// An HTTP/1.1 response that closes the connection.
fn raw_response(status: u16, reason: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn eio_refusal(e: EioError) -> Vec<u8> {
    let reason = if e.status() == 403 {
        "Forbidden"
    } else {
        "Bad Request"
    };
    raw_response(e.status(), reason, &e.body())
}

/// What to do with the socket once the 101 is written.
enum Next<M: Mount> {
    Upgrade(actix::Addr<Engine<M::Layer>>),
    New(Handshake),
}

/// Serves one upgrade request for the mount (the hub's: `/socket.io/`).
pub async fn upgraded<M: Mount>(m: M, req: Request, mut io: TcpStream, leftover: BytesMut) {
    let decided = decide(&m, &req);
    let (key, next) = match decided {
        Ok(ok) => ok,
        Err(resp) => {
            let _ = io.write_all(&resp).await;
            let _ = io.shutdown().await;
            return;
        }
    };
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        String::from_utf8_lossy(&actix_http::ws::hash_key(key.as_bytes()))
    );
    if io.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let (read, write) = io.into_split();
    match next {
        Next::Upgrade(engine) => engine.do_send(Probe {
            read,
            write,
            leftover,
        }),
        Next::New(hs) => {
            let sid = crate::ids::random_hex(16);
            let engine = Engine::new(sid.clone(), m.engines().clone(), m.config(), hs, m.layer());
            m.engines()
                .insert(sid, engine.start_ws(read, write, leftover));
        }
    }
}

/// The checks before the 101: the `Sec-WebSocket-Key`, and what follows.
fn decide<M: Mount>(m: &M, req: &Request) -> Result<(String, Next<M>), Vec<u8>> {
    let q = EioQuery::parse(req.uri().query().unwrap_or("")).map_err(eio_refusal)?;
    if q.transport().map_err(eio_refusal)? != Transport::WebSocket {
        return Err(eio_refusal(EioError::BadRequest));
    }
    let next = match q.sid.as_deref() {
        Some(sid) => Next::Upgrade(
            m.engines()
                .get(sid)
                .ok_or_else(|| eio_refusal(EioError::UnknownSid))?,
        ),
        None => {
            q.check_version().map_err(eio_refusal)?;
            Next::New(
                m.admit(req.head(), &q)
                    .map_err(|e| crate::http::ws::error_response(&e))?,
            )
        }
    };
    let key = crate::http::ws::accept_key(req).map_err(|_| eio_refusal(EioError::BadRequest))?;
    Ok((key, next))
}
