//! Scrollback: paging back through everything stored, over REST
//! (`?before=&limit=`) and over the `history:get` frame, from memory and from
//! the database, across a restart, while publishers publish, and with
//! storage off.

use crate::common::{token, Client, Server, WAIT};
use serde_json::{json, Value};

/// A service connection (no rate limit) joined to `room`.
async fn service(s: &Server, room: &str) -> Client {
    let t = token("backend", json!({"role": "service"}));
    let mut c = s.ws(&format!("/ws?token={t}")).await;
    c.greeted().await;
    c.join(room).await;
    c
}

/// Sends `n` messages `{"tag", "i"}` and waits for every ack, 250 at a
/// time: each message comes back twice (its copy and its ack), and more
/// than the outbox's 1,024 frames ahead of a reader slowed by a loaded
/// machine would be a slow consumer (4008), which is not what this tests.
async fn publish(c: &mut Client, room: &str, tag: &str, n: usize) {
    for start in (0..n).step_by(250) {
        let end = (start + 250).min(n);
        let frames = (start..end)
            .map(|i| json!({"type": "message:send", "room": room, "data": {"tag": tag, "i": i}, "id": format!("{tag}{i}")}))
            .collect();
        for a in c.burst(frames, end - start).await {
            assert_eq!(a["type"], "ack", "{a}");
        }
    }
}

fn seqs(page: &Value) -> Vec<u64> {
    let msgs = page["messages"].as_array().expect("messages");
    let v: Vec<u64> = msgs.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert!(v.windows(2).all(|w| w[0] < w[1]), "oldest first: {v:?}");
    for m in msgs {
        assert_eq!(m["type"], "message:receive", "{m}");
    }
    v
}

/// Folds one page into `all` (older pages go in front); returns the next `before`.
fn fold(all: &mut Vec<u64>, page: &Value) -> Option<u64> {
    let got = seqs(page);
    if page["more"] == true {
        assert!(!got.is_empty(), "more:true on an empty page: {page}");
    } else {
        assert_eq!(page["more"], false, "{page}");
    }
    let next = got.first().copied().filter(|_| page["more"] == true);
    all.splice(0..0, got);
    next
}

/// Every message of `room` before `before` (`None`: all), over REST.
async fn rest_pages(
    s: &Server,
    room: &str,
    bearer: Option<&str>,
    mut before: Option<u64>,
    limit: u64,
) -> Vec<u64> {
    let mut all = Vec::new();
    for _ in 0..2000 {
        let b = before.map_or(String::new(), |b| format!("&before={b}"));
        let path = format!("/api/rooms/{room}/history?limit={limit}{b}");
        let (st, page) = s.get_json(&path, bearer).await;
        assert_eq!(st, 200, "{page}");
        assert!(seqs(&page).len() as u64 <= limit);
        match fold(&mut all, &page) {
            Some(b) => before = Some(b),
            None => return all,
        }
    }
    panic!("no end of pages");
}

/// Every message of `room` before `before` (`None`: all), over `history:get`.
async fn frame_pages(c: &mut Client, room: &str, mut before: Option<u64>, limit: u64) -> Vec<u64> {
    let mut all = Vec::new();
    for n in 0..2000 {
        let mut f =
            json!({"type": "history:get", "room": room, "limit": limit, "id": format!("h{n}")});
        if let Some(b) = before {
            f["before"] = json!(b);
        }
        c.send(f).await;
        let page = c.recv_type("history:page").await;
        assert_eq!(
            (&page["room"], &page["id"]),
            (&json!(room), &json!(format!("h{n}")))
        );
        match fold(&mut all, &page) {
            Some(b) => before = Some(b),
            None => return all,
        }
    }
    panic!("no end of pages");
}

#[tokio::test]
async fn a_thousand_messages_read_back_once_over_rest_and_frames_across_a_restart() {
    let mut s = Server::start();
    let svc = token("backend", json!({"role": "service"}));
    let mut c = service(&s, "deep").await;
    publish(&mut c, "deep", "m", 1000).await;
    let want: Vec<u64> = (1..=1000).collect();

    // Active room: the newest 200 from memory, the rest from the database.
    assert_eq!(rest_pages(&s, "deep", Some(&svc), None, 64).await, want);
    assert_eq!(frame_pages(&mut c, "deep", None, 100).await, want);
    let (_, h) = s
        .get_json("/api/rooms/deep/history?limit=3", Some(&svc))
        .await;
    assert_eq!((seqs(&h), &h["more"]), (vec![998, 999, 1000], &json!(true)));
    assert_eq!(h["messages"][0]["data"], json!({"tag": "m", "i": 997}));
    assert_eq!((&h["seq"], &h["first_seq"]), (&json!(1000), &json!(801)));
    let (_, h) = s
        .get_json("/api/rooms/deep/history?limit=100000", Some(&svc))
        .await;
    assert_eq!(seqs(&h), (501..=1000).collect::<Vec<_>>(), "capped at 500");
    let (_, h) = s
        .get_json("/api/rooms/deep/history?before=3&limit=10", Some(&svc))
        .await;
    assert_eq!((seqs(&h), &h["more"]), (vec![1, 2], &json!(false)));
    // `since` still pages forward, as before.
    let (_, h) = s
        .get_json("/api/rooms/deep/history?since=990&limit=3", Some(&svc))
        .await;
    assert_eq!(seqs(&h), [991, 992, 993]);
    assert!(h.get("more").is_none(), "{h}");
    let (st, h) = s
        .get_json("/api/rooms/deep/history?since=1&before=5", Some(&svc))
        .await;
    assert_eq!((st, &h["error"]["code"]), (400, &json!("bad_request")));
    drop(c);

    s.restart(false, &[]);
    // Not in memory at all: everything from the database.
    assert_eq!(rest_pages(&s, "deep", Some(&svc), None, 64).await, want);
    let mut a = s.user("alice").await;
    // Joined: the room loads its newest 200; pages cross into the database.
    assert_eq!(a.join("deep").await["seq"], 1000);
    assert_eq!(frame_pages(&mut a, "deep", None, 77).await, want);
    assert_eq!(frame_pages(&mut a, "deep", Some(1001), 500).await, want);
    a.send(json!({"type": "room:leave", "room": "deep"})).await;
    a.recv_type("room:left").await;
    // Idle (its history in the Hub's LRU) or gone: the same pages.
    assert_eq!(
        frame_pages(&mut a, "deep", Some(900), 128).await,
        want[..899]
    );
}

#[tokio::test]
async fn pages_stay_exact_at_their_edges_while_publishers_publish() {
    // A small memory, so pages cross from memory into the database while
    // the publishers move it.
    let s = Server::with_env(&[("SWITCHBOARD_HISTORY_SIZE", "16")]);
    let mut seeder = service(&s, "busy").await;
    publish(&mut seeder, "busy", "seed", 150).await;
    let mut r = s.user("reader").await;
    assert_eq!(r.join("busy").await["seq"], 150);

    let (per, publishers) = (200usize, 2usize);
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let mut c = service(&s, "busy").await;
        tasks.push(tokio::spawn(async move {
            publish(&mut c, "busy", &format!("p{p}-"), per).await;
            c
        }));
    }
    let total = 150 + (per * publishers) as u64;
    // Page back from the first live message while the live ones keep coming.
    let (mut live, mut paged, mut next, mut asked) = (Vec::new(), Vec::new(), None::<u64>, 0);
    let deadline = tokio::time::Instant::now() + WAIT * 6;
    loop {
        if live.len() as u64 == total - 150 && asked > 0 && next.is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "live {}, paged {}",
            live.len(),
            paged.len()
        );
        let f = r.recv().await;
        match f["type"].as_str() {
            Some("message:receive") if f["room"] == "busy" => {
                let seq = f["seq"].as_u64().unwrap();
                if live.is_empty() {
                    next = Some(seq);
                    asked += 1;
                    r.send(
                        json!({"type": "history:get", "room": "busy", "before": seq, "limit": 9}),
                    )
                    .await;
                }
                live.push(seq);
            }
            Some("history:page") => {
                next = fold(&mut paged, &f);
                if let Some(b) = next {
                    asked += 1;
                    r.send(json!({"type": "history:get", "room": "busy", "before": b, "limit": 9}))
                        .await;
                }
            }
            _ => {}
        }
    }
    let first = live[0];
    assert_eq!(
        paged,
        (1..first).collect::<Vec<_>>(),
        "each older message once"
    );
    assert_eq!(
        live,
        (first..=total).collect::<Vec<_>>(),
        "each live message once"
    );
    assert!(asked > 10, "{asked} pages");
    // Over REST too, from the same edge, while nothing moves.
    for t in tasks {
        drop(t.await.unwrap());
    }
    let svc = token("backend", json!({"role": "service"}));
    assert_eq!(
        rest_pages(&s, "busy", Some(&svc), Some(first), 13).await,
        (1..first).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn reading_history_follows_the_join_rules() {
    let s = Server::start();
    let mut tina = s.user_with("tina", json!({"rooms": ["team-*"]})).await;
    for (room, id) in [("secret", "h1"), ("user:bob", "h2")] {
        tina.send(json!({"type": "history:get", "room": room, "id": id}))
            .await;
        let e = tina.recv_type("error").await;
        assert_eq!(
            (&e["code"], &e["ref"]),
            (&json!("forbidden"), &json!(id)),
            "{e}"
        );
    }
    tina.send(json!({"type": "history:get", "room": "team-x", "id": "h3"}))
        .await;
    let p = tina.recv_type("history:page").await;
    assert_eq!(
        (&p["messages"], &p["more"], &p["epoch"], &p["id"]),
        (&json!([]), &json!(false), &Value::Null, &json!("h3")),
        "{p}"
    );
    let mut g = s.guest("gus").await;
    g.send(json!({"type": "history:get", "room": "team-x", "id": "g1"}))
        .await;
    assert_eq!(g.recv_type("error").await["code"], "forbidden");
    for (bad, code) in [
        (
            json!({"type": "history:get", "room": "general", "since": 3}),
            "bad_request",
        ),
        (json!({"type": "history:get"}), "bad_request"),
        (
            json!({"type": "history:get", "room": "no spaces"}),
            "invalid_room",
        ),
        (
            json!({"type": "history:get", "room": "general", "before": -1}),
            "bad_request",
        ),
    ] {
        g.send(bad.clone()).await;
        assert_eq!(g.recv_type("error").await["code"], code, "{bad}");
    }

    let t = token("tina", json!({"rooms": ["team-*"]}));
    let (st, _) = s.get_json("/api/rooms/team-x/history?before=5", None).await;
    assert_eq!(st, 401);
    let (st, h) = s
        .get_json("/api/rooms/secret/history?limit=5", Some(&t))
        .await;
    assert_eq!((st, &h["error"]["code"]), (403, &json!("forbidden")));
}

#[tokio::test]
async fn with_storage_off_memory_is_all_there_is() {
    let s = Server::with_env(&[
        ("SWITCHBOARD_DB", "off"),
        ("SWITCHBOARD_HISTORY_SIZE", "50"),
    ]);
    let mut c = service(&s, "general").await;
    publish(&mut c, "general", "m", 120).await;
    let kept: Vec<u64> = (71..=120).collect();
    assert_eq!(rest_pages(&s, "general", None, None, 20).await, kept);
    assert_eq!(frame_pages(&mut c, "general", None, 15).await, kept);
    let (_, h) = s
        .get_json("/api/rooms/general/history?before=71", None)
        .await;
    assert_eq!((seqs(&h), &h["more"]), (vec![], &json!(false)));
    let (_, h) = s.get_json("/api/rooms/general/history?limit=2", None).await;
    assert_eq!((seqs(&h), &h["more"]), (vec![119, 120], &json!(true)));

    // The long-polling transport runs the same session code.
    let (st, body) = s.http("POST", "/poll/open?name=pat", None, None).await;
    assert_eq!(st, 200, "{body}");
    let key = serde_json::from_str::<Value>(&body).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let frame =
        json!({"type": "history:get", "room": "general", "before": 80, "limit": 100, "id": "p1"});
    let (st, _) = s
        .http(
            "POST",
            &format!("/poll/send?key={key}"),
            None,
            Some(&frame.to_string()),
        )
        .await;
    assert_eq!(st, 202);
    let mut cursor = 0;
    for _ in 0..50 {
        let r = s
            .request(
                "GET",
                &format!("/poll?key={key}&cursor={cursor}"),
                &[],
                None,
            )
            .await;
        let v = r.json();
        cursor = v["cursor"].as_u64().unwrap();
        if let Some(p) = v["frames"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["type"] == "history:page")
        {
            assert_eq!(
                (seqs(p), &p["more"], &p["id"]),
                ((71..80).collect(), &json!(false), &json!("p1"))
            );
            return;
        }
    }
    panic!("no history:page over long-polling");
}

#[tokio::test]
async fn a_page_of_messages_just_published_waits_for_their_write() {
    // Memory keeps 4: a page of the 20 before a message just received needs
    // 16 that memory has already dropped, some maybe not yet committed.
    let s = Server::with_env(&[("SWITCHBOARD_HISTORY_SIZE", "4")]);
    let mut r = s.user("reader").await;
    r.join("fresh").await;
    let mut p = service(&s, "fresh").await;
    let publisher = tokio::spawn(async move {
        for b in 0..20 {
            publish(&mut p, "fresh", &format!("f{b}-"), 20).await;
        }
        p
    });
    let (mut asked, mut checked, mut live) = (0, 0, 0u64);
    while live < 400 || checked < asked {
        let f = r.recv().await;
        match f["type"].as_str() {
            Some("message:receive") => {
                live += 1;
                let seq = f["seq"].as_u64().unwrap();
                // One page at a time (at most 4 may be on their way).
                if seq > 20 && asked == checked {
                    asked += 1;
                    r.send(json!({"type": "history:get", "room": "fresh", "before": seq, "limit": 20, "id": seq.to_string()}))
                        .await;
                }
            }
            Some("history:page") => {
                let before: u64 = f["id"].as_str().unwrap().parse().unwrap();
                assert_eq!(seqs(&f), (before - 20..before).collect::<Vec<_>>(), "{f}");
                checked += 1;
            }
            _ => {}
        }
    }
    assert!(checked >= 5, "{checked} pages");
    drop(publisher.await.unwrap());
}
