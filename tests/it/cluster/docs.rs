//! Collaborative documents shared by three nodes: clients on every node
//! edit one document at once and converge to what a fresh `doc:open` on
//! any node returns, also when a node is killed mid-run; a resent op is
//! applied once, whichever node it reaches.

use super::redis::Redis;
use crate::collab::{edit, op_frame, open, Editor};
use crate::common::*;
use serde_json::json;
use std::time::Duration;

/// A client of `node` that opened `doc`, editing with its own seed.
async fn editor(node: &Server, user: &str, doc: &str, seed: u64) -> Editor {
    let mut c = node.user(user).await;
    let snap = open(&mut c, doc).await;
    Editor {
        c,
        cid: format!("c-{user}"),
        doc: doc.into(),
        text: snap["text"].as_str().unwrap().to_string(),
        rev: snap["rev"].as_u64().unwrap(),
        seq: 0,
        pending: None,
        buffer: None,
        rng: 0x2545_f491 + seed * 7919,
        concurrent: 0,
    }
}

/// What a fresh `doc:open` of `doc` on `node` shows once that node has
/// `rev` (a node applies other nodes' ops a moment after their senders'
/// acks: an open may answer a revision or two before, then the ops).
async fn fresh(node: &Server, user: &str, doc: &str, rev: u64) -> (u64, String) {
    let e = editor(node, user, doc, 0).await.catch_up(rev).await;
    (e.rev, e.text)
}

/// After its node died: a new connection to `node`, the document opened
/// again from where it was, and its unacknowledged op resent (same seq),
/// as static/ot.js does.
async fn reconnect(mut e: Editor, node: &Server, user: &str) -> Editor {
    e.c = node.user(user).await;
    e.c.send(json!({"type": "doc:open", "doc": e.doc, "rev": e.rev}))
        .await;
    if let Some((seq, op)) = &e.pending {
        let op = serde_json::from_str(&op.to_json()).unwrap();
        e.c.send(op_frame(&e.doc, e.rev, &e.cid, *seq, op)).await;
    }
    e
}

/// Settles every editor, then checks that a fresh open on each node gives
/// one revision and text, and that every editor has exactly that.
async fn converged(nodes: &[&Server], eds: Vec<Editor>, doc: &str) -> (u64, String, u64) {
    let quiet = Duration::from_millis(300);
    let eds = futures_util::future::join_all(eds.into_iter().map(|e| e.settle(quiet))).await;
    // Every op is acked: the highest ack is the document's last revision.
    let top = eds.iter().map(|e| e.rev).max().unwrap();
    let mut server: Option<(u64, String)> = None;
    for (i, n) in nodes.iter().enumerate() {
        let got = fresh(n, &format!("fresh{i}"), doc, top).await;
        match &server {
            None => server = Some(got),
            Some(s) => assert_eq!(&got, s, "node {i} has another document"),
        }
    }
    let (rev, text) = server.unwrap();
    let eds = futures_util::future::join_all(eds.into_iter().map(|e| e.catch_up(rev))).await;
    let mut concurrent = 0;
    for e in &eds {
        assert_eq!((e.rev, &e.text), (rev, &text), "{} diverged", e.cid);
        concurrent += e.concurrent;
    }
    (rev, text, concurrent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_on_three_nodes_editing_one_document_converge() {
    let redis = Redis::start();
    // Small snapshot rhythm: snapshots are stored during the run. (The
    // editors read one frame per edit and fall behind: the default kept
    // history is what lets their ops still be transformed.)
    let nodes = redis.nodes(3, &[("SWITCHBOARD_DOC_SNAPSHOT_EVERY", "10")]);
    let mut eds = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for j in 0..2 {
            let seed = (i * 2 + j) as u64;
            eds.push(editor(n, &format!("u{i}{j}"), "shared", seed).await);
        }
    }
    let eds =
        futures_util::future::join_all(eds.into_iter().map(|e| e.edit_concurrently(40))).await;
    let refs: Vec<&Server> = nodes.iter().collect();
    let (rev, text, concurrent) = converged(&refs, eds, "shared").await;
    assert!(rev >= 40, "too few ops were committed: {rev}");
    assert!(!text.is_empty());
    assert!(concurrent > 0, "no edit was concurrent with another");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_document_outlives_a_killed_node_and_its_clients_converge_elsewhere() {
    let redis = Redis::start();
    let mut nodes = redis.nodes(3, &[]);
    let mut eds = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for j in 0..2 {
            let seed = 100 + (i * 2 + j) as u64;
            eds.push(editor(n, &format!("k{i}{j}"), "live", seed).await);
        }
    }
    // Everyone edits; node a's clients stop with ops possibly in flight.
    let mut eds =
        futures_util::future::join_all(eds.into_iter().map(|e| e.edit_concurrently(20))).await;
    let on_b_c: Vec<Editor> = eds.split_off(2);
    // The others go on editing while node a is killed.
    let others: Vec<_> = on_b_c
        .into_iter()
        .map(|e| tokio::spawn(e.edit_concurrently(30)))
        .collect();
    let mut a = nodes.remove(0);
    a.restart(true, &[("SWITCHBOARD_NODE_ID", "a2")]);
    // Node a's clients come back on b and c, resend, and edit on.
    let mut back = Vec::new();
    for (j, e) in eds.into_iter().enumerate() {
        let e = reconnect(e, &nodes[j], &format!("k0{j}")).await;
        back.push(tokio::spawn(e.edit_concurrently(20)));
    }
    let mut all = Vec::new();
    for h in others.into_iter().chain(back) {
        all.push(h.await.expect("an editor panicked"));
    }
    // The restarted node serves the document too.
    let refs = [&nodes[0], &nodes[1], &a];
    let (rev, _, _) = converged(&refs, all, "live").await;
    assert!(rev >= 30, "too few ops were committed: {rev}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resent_op_is_applied_once_whichever_node_it_reaches() {
    let redis = Redis::start();
    // Snapshots every 2 ops, 3 kept before: the stream forgets quickly.
    let nodes = redis.nodes(
        3,
        &[
            ("SWITCHBOARD_DOC_SNAPSHOT_EVERY", "2"),
            ("SWITCHBOARD_DOC_KEEP_OPS", "3"),
        ],
    );
    let mut x = nodes[0].user("xa").await;
    open(&mut x, "r").await;
    let ack = edit(&mut x, "r", 0, "cx", 1, json!(["hello"])).await;
    assert_eq!(ack["rev"], 1, "{ack}");
    // The same op through another node: acked with its first revision.
    let mut y = nodes[1].user("xa").await;
    assert_eq!(open(&mut y, "r").await["text"], "hello");
    let again = edit(&mut y, "r", 0, "cx", 1, json!(["hello"])).await;
    assert_eq!(again["rev"], 1, "{again}");
    // One op sent to two nodes at once (a client that resent on a new
    // connection while the first was still in flight): one is applied,
    // both are acknowledged with the same revision.
    let mut z = nodes[2].user("za").await;
    open(&mut z, "r").await;
    let op = json!([5, " world"]);
    y.send(op_frame("r", 1, "cy", 1, op.clone())).await;
    z.send(op_frame("r", 1, "cy", 1, op)).await;
    let (ay, az) = (y.recv_type("doc:ack").await, z.recv_type("doc:ack").await);
    assert_eq!(
        (ay["rev"].as_u64(), ay["seq"].as_u64()),
        (Some(2), Some(1)),
        "{ay}"
    );
    assert_eq!(az["rev"], ay["rev"], "{az}");
    z.expect_no("doc:op", Duration::from_millis(200)).await;
    for (i, n) in nodes.iter().enumerate() {
        let got = fresh(n, &format!("f{i}"), "r", 2).await;
        assert_eq!(got, (2, "hello world".into()), "node {i}");
    }
    // Eight more ops: op 2 is trimmed from the stream behind a snapshot.
    for seq in 2..10 {
        let rev = seq;
        let len = 11 + seq - 2;
        edit(&mut x, "r", rev, "cx", seq, json!([len, "!"])).await;
    }
    // Node b opens the document again (read from Redis: op 2 is not in its
    // history) and gets client cy's seq 1 once more, made on rev 9: Redis
    // remembers it, so it is acknowledged with rev 2, not applied.
    y.send(json!({"type": "doc:close", "doc": "r", "id": "cl"}))
        .await;
    y.recv_type("ack").await;
    let snap = open(&mut y, "r").await;
    let behind = 10 - snap["rev"].as_u64().unwrap();
    for _ in 0..behind {
        y.recv_type("doc:op").await;
    }
    let again = edit(&mut y, "r", 9, "cy", 1, json!([18, "?"])).await;
    assert_eq!(again["rev"], 2, "{again}");
    let got = fresh(&nodes[2], "last", "r", 10).await;
    assert_eq!(got, (10, "hello world!!!!!!!!".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cursors_reach_the_sessions_of_other_nodes() {
    let redis = Redis::start();
    let nodes = redis.nodes(2, &[]);
    let mut a = nodes[0].user("alice").await;
    let mut b = nodes[1].user("bob").await;
    open(&mut a, "cur").await;
    open(&mut b, "cur").await;
    edit(&mut a, "cur", 0, "ca", 1, json!(["hello"])).await;
    assert_eq!(b.recv_type("doc:op").await["rev"], 1);
    a.send(
        json!({"type": "doc:cursor", "doc": "cur", "cid": "ca", "rev": 1, "anchor": 2, "head": 9}),
    )
    .await;
    let c = b.recv_type("doc:cursor").await;
    assert_eq!(
        c,
        json!({"type": "doc:cursor", "doc": "cur", "rev": 1, "cid": "ca", "user": "alice", "name": "alice name", "anchor": 2, "head": 5})
    );
    a.expect_no("doc:cursor", Duration::from_millis(200)).await;
    // Closing clears it on the other node too.
    a.send(json!({"type": "doc:close", "doc": "cur"})).await;
    let gone = b.recv_type("doc:cursor").await;
    assert_eq!(
        (gone["cid"].as_str(), &gone["anchor"]),
        (Some("ca"), &json!(null)),
        "{gone}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_that_lost_a_document_gives_its_sessions_redis_s_copy() {
    let mut redis = Redis::start();
    let nodes = redis.nodes(2, &[]);
    let mut a = nodes[0].user("alice").await;
    let mut b = nodes[1].user("bob").await;
    open(&mut a, "gone").await;
    open(&mut b, "gone").await;
    edit(&mut a, "gone", 0, "ca", 1, json!(["lost text"])).await;
    b.recv_type("doc:op").await;
    redis.restart();
    // Each node notices (its subscription was re-made) and sends the
    // document as Redis has it now: empty, at rev 0. Never a silent fork.
    for c in [&mut a, &mut b] {
        let s = c.recv_type("doc:snapshot").await;
        assert_eq!(
            (s["rev"].as_u64(), s["text"].as_str()),
            (Some(0), Some("")),
            "{s}"
        );
    }
    edit(&mut b, "gone", 0, "cb", 1, json!(["new"])).await;
    assert_eq!(a.recv_type("doc:op").await["rev"], 1);
}
