//! Outbound HTTP to the app's backend (proxy hooks, webhooks, a JWKS URL):
//! one awc client per worker thread (awc is single-threaded, as actix is),
//! reusing keep-alive connections, with TLS by rustls and the system's
//! root certificates. Callers set each request's own timeout.

use std::time::Duration;

/// Most connections one worker keeps open to backends at once; further
/// requests wait for a free one (bounded concurrency per worker).
pub const MAX_CONNECTIONS: usize = 32;

/// Time to open a connection (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

thread_local! {
    static CLIENT: awc::Client = build();
}

fn build() -> awc::Client {
    let connector = awc::Connector::new()
        .limit(MAX_CONNECTIONS)
        .timeout(CONNECT_TIMEOUT);
    awc::Client::builder()
        .connector(connector)
        .disable_redirects()
        .finish()
}

/// This worker's client (cheap to clone).
pub fn client() -> awc::Client {
    CLIENT.with(|c| c.clone())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    /// The client reaches a real HTTP server and reads its answer.
    #[test]
    fn posts_to_a_real_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("hello") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "connection closed before the body");
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok")
                .unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        let (status, body) = actix_web::rt::System::new().block_on(async move {
            let mut res = super::client()
                .post(format!("http://{addr}/hook"))
                .timeout(std::time::Duration::from_secs(5))
                .send_body("hello")
                .await
                .unwrap();
            (res.status().as_u16(), res.body().await.unwrap())
        });
        assert_eq!(status, 201);
        assert_eq!(&body[..], b"ok");
        let request = server.join().unwrap();
        assert!(request.starts_with("POST /hook HTTP/1.1"), "{request}");
    }
}
