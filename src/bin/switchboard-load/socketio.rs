//! Socket.IO framing for the load tool: a `--url` whose path starts with
//! `/socket.io` is spoken to as a socket.io-client would over WebSocket
//! only (Engine.IO v4, Socket.IO v5): the `open` packet, `CONNECT` to `/`,
//! then our frames as events, `42["<type>",<frame>]`. The same load runs
//! against Switchboard's `/socket.io/` and against the Node socket.io server
//! of `bench/socketio-node/server.js`, which answers the same events.
//!
//! Engine.IO pings are not answered: runs must end within the server's
//! pingInterval + pingTimeout (Switchboard's defaults give 45 s, Node's 45 s).

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Whether a URL path is Socket.IO's.
pub fn is_socketio(path: &str) -> bool {
    path.starts_with("/socket.io")
}

/// The WebSocket URL of a direct Engine.IO connection (`path` as given,
/// e.g. `/socket.io/`), with the token in the query as well.
pub fn url(host: &str, path: &str, token: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("ws://{host}{path}{sep}EIO=4&transport=websocket&token={token}")
}

/// Our frame (`{"type":"<t>",…}`) as the Socket.IO event `<t>`.
pub fn event(ty: &str, frame: &str) -> String {
    format!(r#"42["{ty}",{frame}]"#)
}

/// The argument after the name of an event `42["<name>",<frame>…]`
/// (and whatever follows it: a recovery offset), or `None` if `msg` is not
/// an event of namespace `/`.
pub fn frame_of(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("42[\"")?;
    let end = rest.find("\",")?;
    rest.get(end + 2..rest.len().checked_sub(1)?)
}

/// The next text message, within 30 s.
async fn next_text<S>(ws: &mut S) -> Result<String, String>
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        Err(_) => Err("no Socket.IO answer within 30 s".to_string()),
        Ok(Some(Ok(Message::Text(t)))) => Ok(t),
        Ok(Some(Ok(m))) => Err(format!("unexpected message {m:?}")),
        Ok(Some(Err(e))) => Err(e.to_string()),
        Ok(None) => Err("connection ended".into()),
    }
}

/// After the WebSocket handshake: the server's `open` packet, our `CONNECT`
/// to `/` (with the token in `auth`), and its answer.
pub async fn open<S>(ws: &mut S, token: &str) -> Result<(), String>
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + SinkExt<Message>
        + Unpin,
{
    let open = next_text(ws).await?;
    if !open.starts_with("0{") {
        return Err(format!("expected the Engine.IO open packet, got {open:?}"));
    }
    let connect = format!(r#"40{{"token":"{token}"}}"#);
    if ws.send(Message::Text(connect)).await.is_err() {
        return Err("send failed".into());
    }
    loop {
        let answer = next_text(ws).await?;
        if answer.starts_with("40") {
            return Ok(());
        }
        if answer.starts_with("44") {
            return Err(format!("CONNECT refused: {answer}"));
        }
        // A ping (or anything else) before the answer: keep waiting.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_wrap_and_unwrap_frames() {
        let f = r#"{"type":"message:send","room":"r"}"#;
        let e = event("message:send", f);
        assert_eq!(
            e,
            r#"42["message:send",{"type":"message:send","room":"r"}]"#
        );
        assert_eq!(frame_of(&e), Some(f));
        let with_offset = r#"42["message:receive",{"type":"message:receive"},"7"]"#;
        assert_eq!(
            frame_of(with_offset),
            Some(r#"{"type":"message:receive"},"7""#)
        );
        assert_eq!(frame_of("2"), None);
        assert_eq!(frame_of(r#"{"type":"x"}"#), None);
        assert!(is_socketio("/socket.io/") && !is_socketio("/ws"));
        assert_eq!(
            url("h:1", "/socket.io/", "t"),
            "ws://h:1/socket.io/?EIO=4&transport=websocket&token=t"
        );
    }
}
