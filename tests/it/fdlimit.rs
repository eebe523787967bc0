//! Under a low open-file limit, the connection limit's 503 comes before the
//! descriptors run out: connections past the cap are refused at once, and
//! `/healthz` still answers (src/fdlimit.rs).

use crate::common::*;
use tokio_tungstenite::tungstenite::Error as WsError;

/// The open-file limit the server runs under; with 2 workers the documented
/// reserve is 64 + 8 * 2 = 80, so the cap is 80.
const NOFILE: usize = 160;

#[tokio::test]
async fn past_the_open_file_limit_the_answer_is_503_not_a_hang() {
    let limit = format!("--nofile={NOFILE}:{NOFILE}");
    let s = Server::wrapped(&["prlimit", &limit, "--"], &[("SWITCHBOARD_WORKERS", "2")]);
    let mut open = Vec::new();
    let mut refused = None;
    // Every attempt up to the open-file limit itself: each must be answered.
    for i in 0..NOFILE {
        let url = s.url(&format!("/ws?name=c{i}"));
        let Ok(attempt) = tokio::time::timeout(WAIT, Client::connect(&url)).await else {
            panic!("connection {i} hung (open: {})", open.len());
        };
        match attempt {
            Ok(mut c) => {
                c.greeted().await;
                open.push(c);
            }
            Err(WsError::Http(r)) => {
                refused = Some((i, r.status().as_u16()));
                break;
            }
            Err(e) => panic!("connection {i}: {e}"),
        }
    }
    let (at, status) = refused.expect("no connection was refused up to the open-file limit");
    assert_eq!(status, 503);
    assert_eq!(at, 80, "the cap is the limit less the documented reserve");

    // Health and a second refusal are still answered at once.
    let (status, health) = tokio::time::timeout(WAIT, s.get_json("/healthz", None))
        .await
        .expect("/healthz hung");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["connections"], open.len(), "{health}");
    let again = tokio::time::timeout(WAIT, Client::connect(&s.url("/ws?name=late")))
        .await
        .expect("hung");
    assert!(
        matches!(&again, Err(WsError::Http(r)) if r.status() == 503),
        "{:?}",
        again.err()
    );

    // A freed place is taken again.
    open.pop();
    let mut admitted = false;
    for _ in 0..100 {
        if let Ok(Ok(mut c)) =
            tokio::time::timeout(WAIT, Client::connect(&s.url("/ws?name=next"))).await
        {
            c.greeted().await;
            admitted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(admitted, "no place was freed by a closed connection");
}
