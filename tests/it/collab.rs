//! Collaborative editing over real WebSockets: open, ops, acks, broadcast,
//! transformation of concurrent ops, resends, snapshots for late clients,
//! cursors, access rules, bounds, hostile ops, and three clients editing at
//! once that converge.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;
use switchboard::ot::{char_len, Op};

pub(crate) fn op_frame(doc: &str, rev: u64, cid: &str, seq: u64, op: Value) -> Value {
    json!({"type": "doc:op", "doc": doc, "rev": rev, "cid": cid, "seq": seq, "op": op})
}

/// Opens `doc` without a revision; returns the `doc:snapshot`.
pub(crate) async fn open(c: &mut Client, doc: &str) -> Value {
    c.send(json!({"type": "doc:open", "doc": doc})).await;
    let s = c.recv_type("doc:snapshot").await;
    assert_eq!(s["doc"], doc, "{s}");
    s
}

/// Sends an op and returns its `doc:ack`.
pub(crate) async fn edit(
    c: &mut Client,
    doc: &str,
    rev: u64,
    cid: &str,
    seq: u64,
    op: Value,
) -> Value {
    c.send(op_frame(doc, rev, cid, seq, op)).await;
    let a = c.recv_type("doc:ack").await;
    assert_eq!(
        (a["doc"].as_str(), a["seq"].as_u64()),
        (Some(doc), Some(seq)),
        "{a}"
    );
    a
}

/// The next frame, which must be an `error` for `doc` with `code` (and `seq`).
async fn doc_error(c: &mut Client, doc: &str, code: &str, seq: Option<u64>, what: &str) -> Value {
    let e = c.recv().await;
    assert_eq!(e["type"], "error", "{what}: {e}");
    assert_eq!(e["code"], code, "{what}: {e}");
    assert_eq!(e["doc"], doc, "{what}: {e}");
    assert_eq!(e["seq"].as_u64(), seq, "{what}: {e}");
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {e}"
    );
    e
}

/// The next `doc:*` frame, skipping presence and other room events.
async fn recv_doc(c: &mut Client) -> Value {
    loop {
        let f = c.recv().await;
        if f["type"].as_str().is_some_and(|t| t.starts_with("doc:")) {
            return f;
        }
    }
}

async fn assert_alive(c: &mut Client, tag: &str) {
    c.send(json!({"type": "ping", "id": tag})).await;
    assert_eq!(c.recv_type("pong").await["id"], tag);
}

#[tokio::test]
async fn ops_are_acked_to_the_sender_and_sent_to_the_others() {
    let s = Server::start();
    let (mut a, mut b) = (s.user("alice").await, s.user("bob").await);
    let snap = open(&mut a, "d1").await;
    assert_eq!(
        (snap["rev"].as_u64(), snap["text"].as_str()),
        (Some(0), Some(""))
    );
    open(&mut b, "d1").await;

    let ack = edit(&mut a, "d1", 0, "ca", 1, json!(["héllo 👋"])).await;
    assert_eq!(ack["rev"], 1);
    let op = b.recv_type("doc:op").await;
    assert_eq!(
        op,
        json!({"type": "doc:op", "doc": "d1", "rev": 1, "cid": "ca", "seq": 1, "user": "alice", "op": ["héllo 👋"]})
    );
    // Lengths are code points: the emoji counts one.
    edit(&mut b, "d1", 1, "cb", 1, json!([7, "!"])).await;
    assert_eq!(a.recv_type("doc:op").await["op"], json!([7, "!"]));
    a.expect_no("doc:ack", Duration::from_millis(200)).await;

    // Opening with a revision gets the ops since it, then the ack of the open.
    let mut c = s.user("carol").await;
    c.send(json!({"type": "doc:open", "doc": "d1", "rev": 1, "id": "o1"}))
        .await;
    let f = c.recv().await;
    assert_eq!(
        (f["type"].as_str(), f["rev"].as_u64(), f["cid"].as_str()),
        (Some("doc:op"), Some(2), Some("cb")),
        "{f}"
    );
    assert_eq!(c.recv().await, json!({"type": "ack", "id": "o1"}));
    // At the head, only the ack.
    c.send(json!({"type": "doc:open", "doc": "d1", "rev": 2, "id": "o2"}))
        .await;
    assert_eq!(c.recv().await, json!({"type": "ack", "id": "o2"}));
    assert_eq!(open(&mut c, "d1").await["text"], "héllo 👋!");

    // Closing stops the frames.
    c.send(json!({"type": "doc:close", "doc": "d1", "id": "x1"}))
        .await;
    assert_eq!(c.recv_type("ack").await["id"], "x1");
    edit(&mut a, "d1", 2, "ca", 2, json!(["<", 8])).await;
    b.recv_type("doc:op").await;
    c.expect_no("doc:op", Duration::from_millis(300)).await;
}

#[tokio::test]
async fn concurrent_ops_are_transformed_and_resends_are_not_applied_twice() {
    let s = Server::start();
    let (mut a, mut b) = (s.user("alice").await, s.user("bob").await);
    open(&mut a, "d").await;
    open(&mut b, "d").await;
    edit(&mut a, "d", 0, "ca", 1, json!(["abc"])).await;
    b.recv_type("doc:op").await;

    // Both edit rev 1; bob's arrives second and is transformed past alice's.
    edit(&mut a, "d", 1, "ca", 2, json!([1, "X", 2])).await;
    assert_eq!(b.recv_type("doc:op").await["op"], json!([1, "X", 2]));
    let ack = edit(&mut b, "d", 1, "cb", 1, json!([2, "Y", -1])).await;
    assert_eq!(ack["rev"], 3);
    assert_eq!(a.recv_type("doc:op").await["op"], json!([3, "Y", -1]));
    // Both insert at 0 on rev 3: the later (incoming) op wins the tie.
    edit(&mut a, "d", 3, "ca", 3, json!(["1", 4])).await;
    edit(&mut b, "d", 3, "cb", 2, json!(["2", 4])).await;
    assert_eq!(open(&mut a, "d").await["text"], "21aXbY");

    // A resend of a committed (cid, seq) is acked again with its rev, not applied.
    let again = edit(&mut a, "d", 1, "ca", 2, json!([1, "X", 2])).await;
    assert_eq!(again["rev"], 2);
    let snap = open(&mut b, "d").await;
    assert_eq!(
        (snap["rev"].as_u64(), snap["text"].as_str()),
        (Some(5), Some("21aXbY"))
    );
    b.expect_no("doc:op", Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_client_that_reconnects_resends_with_the_same_seq() {
    let s = Server::start();
    let mut a = s.user("alice").await;
    open(&mut a, "r").await;
    // The op goes out and the connection drops before the ack is read.
    a.send(op_frame("r", 0, "ca", 1, json!(["once"]))).await;
    a.close().await;

    let mut a2 = s.user("alice").await;
    a2.send(json!({"type": "doc:open", "doc": "r", "rev": 0}))
        .await;
    a2.send(op_frame("r", 0, "ca", 1, json!(["once"]))).await;
    // Either its own op comes back in the catch-up (and then the ack), or it
    // is applied now and acked: in both cases at rev 1, once.
    let mut got = recv_doc(&mut a2).await;
    if got["type"] == "doc:op" {
        assert_eq!(
            (got["cid"].as_str(), got["seq"].as_u64()),
            (Some("ca"), Some(1)),
            "{got}"
        );
        got = recv_doc(&mut a2).await;
    }
    assert_eq!(
        (got["type"].as_str(), got["rev"].as_u64()),
        (Some("doc:ack"), Some(1)),
        "{got}"
    );
    let snap = open(&mut a2, "r").await;
    assert_eq!(
        (snap["rev"].as_u64(), snap["text"].as_str()),
        (Some(1), Some("once"))
    );
}

#[tokio::test]
async fn late_clients_get_a_snapshot_and_documents_outlive_their_actor() {
    let s = Server::with_env(&[
        ("SWITCHBOARD_DOC_KEEP_OPS", "2"),
        ("SWITCHBOARD_DOC_SNAPSHOT_EVERY", "2"),
    ]);
    let mut a = s.user("alice").await;
    open(&mut a, "late").await;
    for i in 0..5u64 {
        // (a retain of 0 would be refused: the first op is a bare insert)
        let op = if i == 0 {
            json!(["x"])
        } else {
            json!([i, "x"])
        };
        edit(&mut a, "late", i, "ca", i + 1, op).await;
    }
    // Behind the kept log: a snapshot instead of ops.
    let mut b = s.user("bob").await;
    b.send(json!({"type": "doc:open", "doc": "late", "rev": 1}))
        .await;
    let f = b.recv().await;
    assert_eq!(
        (f["type"].as_str(), f["rev"].as_u64(), f["text"].as_str()),
        (Some("doc:snapshot"), Some(5), Some("xxxxx")),
        "{f}"
    );
    // Within it: the ops.
    b.send(json!({"type": "doc:open", "doc": "late", "rev": 3}))
        .await;
    assert_eq!(b.recv().await["rev"], 4);
    assert_eq!(b.recv().await["rev"], 5);
    // An op based on a revision no longer kept is refused.
    b.send(op_frame("late", 1, "cb", 1, json!([1]))).await;
    doc_error(&mut b, "late", "rev_too_old", Some(1), "old rev").await;

    // Everyone closes: the actor is freed, the text stays in the store.
    a.send(json!({"type": "doc:close", "doc": "late"})).await;
    b.close().await;
    let mut freed = false;
    for _ in 0..100 {
        if s.metric("switchboard_documents").await == 0.0 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "the document actor was not freed");
    let snap = open(&mut a, "late").await;
    assert_eq!(
        (snap["rev"].as_u64(), snap["text"].as_str()),
        (Some(5), Some("xxxxx"))
    );
    assert!(s.metric("switchboard_doc_ops_total").await >= 5.0);
}

#[tokio::test]
async fn cursors_are_shared_clamped_moved_and_cleared() {
    let s = Server::start();
    let (mut a, mut b) = (s.user("alice").await, s.user("bob").await);
    open(&mut a, "cur").await;
    open(&mut b, "cur").await;
    edit(&mut a, "cur", 0, "ca", 1, json!(["hello"])).await;
    b.recv_type("doc:op").await;

    b.send(
        json!({"type": "doc:cursor", "doc": "cur", "cid": "cb", "rev": 1, "anchor": 1, "head": 99}),
    )
    .await;
    let c = a.recv_type("doc:cursor").await;
    assert_eq!(
        c,
        json!({"type": "doc:cursor", "doc": "cur", "rev": 1, "cid": "cb", "user": "bob", "name": "bob name", "anchor": 1, "head": 5})
    );
    // A cursor made before an op is moved over it.
    edit(&mut a, "cur", 1, "ca", 2, json!([">>", 5])).await;
    b.recv_type("doc:op").await;
    b.send(json!({"type": "doc:cursor", "doc": "cur", "cid": "cb", "rev": 1, "anchor": 3}))
        .await;
    let c = a.recv_type("doc:cursor").await;
    assert_eq!(
        (c["rev"].as_u64(), c["anchor"].as_u64(), c["head"].as_u64()),
        (Some(2), Some(5), Some(5)),
        "{c}"
    );
    // A newcomer sees the cursors already there.
    let mut carol = s.user("carol").await;
    carol.send(json!({"type": "doc:open", "doc": "cur"})).await;
    carol.recv_type("doc:snapshot").await;
    assert_eq!(carol.recv_type("doc:cursor").await["cid"], "cb");
    // Closing clears the cursor for the others.
    b.close().await;
    let gone = a.recv_type("doc:cursor").await;
    assert_eq!(
        (gone["cid"].as_str(), gone["anchor"].is_null()),
        (Some("cb"), true),
        "{gone}"
    );
    assert!(gone.get("rev").is_none(), "{gone}");
    a.send(json!({"type": "doc:cursor", "doc": "cur", "cid": "ca", "rev": 9, "anchor": 0}))
        .await;
    doc_error(&mut a, "cur", "rev_in_future", None, "cursor ahead").await;
}

#[tokio::test]
async fn hostile_ops_get_error_frames_and_the_connection_lives() {
    let s = Server::with_env(&[
        ("SWITCHBOARD_DOC_MAX_CHARS", "20"),
        ("SWITCHBOARD_DOC_MAX_OP_PARTS", "8"),
        // (more than the default flood burst of frames are sent below)
        ("SWITCHBOARD_FRAME_BURST", "1000"),
    ]);
    let mut a = s.user("alice").await;
    open(&mut a, "h").await;
    edit(&mut a, "h", 0, "ca", 1, json!(["abc"])).await;
    let raw = |rev: u64, seq: u64, op: &str| {
        format!(r#"{{"type":"doc:op","doc":"h","rev":{rev},"cid":"ca","seq":{seq},"op":{op}}}"#)
    };
    let cases: &[(&str, &str)] = &[
        ("[0,3]", "zero"),
        ("[1.5,2]", "float"),
        ("[3.0]", "integral float"),
        ("[18446744073709551615,1]", "u64 max"),
        ("[-9223372036854775808]", "i64 min"),
        ("[9007199254740992]", "past 2^53"),
        ("[9007199254740991,9007199254740991]", "overflowing sum"),
        ("[1e400]", "huge exponent"),
        (r#"["",3]"#, "empty insert"),
        (r#"[3,"\ud800"]"#, "lone surrogate"),
        ("[4]", "wrong base length"),
        ("[2]", "short base length"),
        ("[-4]", "deletes past the end"),
        ("3", "not an array"),
        (r#"{"retain":3}"#, "an object"),
        ("[true]", "a boolean"),
        ("[[3]]", "nested"),
    ];
    for (i, (op, what)) in cases.iter().enumerate() {
        let seq = 10 + i as u64;
        a.send_text(&raw(1, seq, op)).await;
        doc_error(&mut a, "h", "invalid_op", Some(seq), what).await;
    }
    a.send_text(&raw(2, 40, "[3]")).await;
    doc_error(&mut a, "h", "rev_in_future", Some(40), "future rev").await;
    a.send_text(&raw(u64::MAX, 41, "[3]")).await;
    doc_error(&mut a, "h", "rev_in_future", Some(41), "u64::MAX rev").await;
    a.send_text(&raw(1, 42, r#"[3,"0123456789012345678"]"#))
        .await;
    doc_error(&mut a, "h", "too_large", Some(42), "document too long").await;
    // Nine parts, even normalized.
    a.send_text(&raw(1, 43, r#"[1,"a",-1,1,"b",-1,1,"c",-1]"#))
        .await;
    doc_error(&mut a, "h", "too_large", Some(43), "too many parts").await;
    a.send_text(r#"{"type":"doc:op","doc":"nope","rev":0,"cid":"ca","seq":1,"op":[]}"#)
        .await;
    doc_error(&mut a, "nope", "not_member", Some(1), "not open").await;
    for (frame, code, what) in [
        (
            r#"{"type":"doc:op","doc":"h","rev":1,"seq":1,"op":[3],"id":"m1"}"#,
            "bad_request",
            "no cid",
        ),
        (
            r#"{"type":"doc:op","doc":"h","rev":-1,"cid":"ca","seq":1,"op":[3],"id":"m2"}"#,
            "bad_request",
            "negative rev",
        ),
        (
            r#"{"type":"doc:op","doc":"h","rev":1.5,"cid":"ca","seq":1,"op":[3],"id":"m3"}"#,
            "bad_request",
            "float rev",
        ),
        (
            r#"{"type":"doc:op","doc":"h","rev":1,"cid":"ca","seq":1,"op":[3],"colour":1,"id":"m4"}"#,
            "bad_request",
            "unknown field",
        ),
        (
            r#"{"type":"doc:open","doc":"bad doc","id":"m5"}"#,
            "invalid_room",
            "bad name",
        ),
        (
            r#"{"type":"doc:edit","doc":"h","id":"m6"}"#,
            "unknown_type",
            "unknown doc frame",
        ),
    ] {
        a.send_text(frame).await;
        let e = a.recv().await;
        assert_eq!(
            (e["type"].as_str(), e["code"].as_str()),
            (Some("error"), Some(code)),
            "{what}: {e}"
        );
        assert!(
            e["ref"].as_str().is_some_and(|r| r.starts_with('m')),
            "{what}: {e}"
        );
    }
    assert_alive(&mut a, "p1").await;
    // Nothing of that was applied, and the document still takes ops.
    assert_eq!(
        edit(&mut a, "h", 1, "ca", 99, json!([3, "!"])).await["rev"],
        2
    );
    assert_eq!(open(&mut a, "h").await["text"], "abc!");

    // Random ops made of valid and hostile parts, on random revisions: every
    // one is answered (ack or error, naming its seq), and the server lives.
    let parts = [
        "1",
        "2",
        "4",
        "-1",
        "-2",
        "0",
        "1.5",
        "-0",
        "9007199254740991",
        "-9223372036854775808",
        "18446744073709551615",
        r#""x""#,
        r#""""#,
        r#""😀""#,
        "null",
        "[]",
        "{}",
    ];
    let mut r: u64 = 0x2545_f491;
    let mut next = |n: u64| {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        r % n
    };
    let mut sent = Vec::new();
    for i in 0..200u64 {
        let len = next(5) as usize;
        let op: Vec<&str> = (0..len)
            .map(|_| parts[next(parts.len() as u64) as usize])
            .collect();
        let seq = 1000 + i;
        a.send_text(&raw(next(4), seq, &format!("[{}]", op.join(","))))
            .await;
        sent.push(seq);
    }
    let mut answered = Vec::new();
    while answered.len() < sent.len() {
        let f = recv_doc_or_error(&mut a).await;
        assert_eq!(f["doc"], "h", "{f}");
        answered.push(f["seq"].as_u64().unwrap_or_else(|| panic!("no seq: {f}")));
    }
    answered.sort_unstable();
    assert_eq!(answered, sent);
    assert_alive(&mut a, "p2").await;
}

/// The next `doc:*` or `error` frame.
async fn recv_doc_or_error(c: &mut Client) -> Value {
    loop {
        let f = c.recv().await;
        if f["type"] == "error" || f["type"].as_str().is_some_and(|t| t.starts_with("doc:")) {
            return f;
        }
    }
}

#[tokio::test]
async fn access_follows_the_room_rules_and_open_documents_are_bounded() {
    let s = Server::with_env(&[("SWITCHBOARD_DOCS_PER_SESSION", "2")]);
    let mut g = s.guest("gina").await;
    g.send(json!({"type": "doc:open", "doc": "secret", "id": "g1"}))
        .await;
    let e = doc_error(&mut g, "secret", "forbidden", None, "guest, private doc").await;
    assert_eq!(e["ref"], "g1");
    open(&mut g, "public-notes").await;
    // A doc:op to a refused document is not applied anywhere.
    g.send(op_frame("secret", 0, "cg", 1, json!(["x"]))).await;
    doc_error(
        &mut g,
        "secret",
        "not_member",
        Some(1),
        "op to a refused doc",
    )
    .await;

    let mut t = s.user_with("tom", json!({"rooms": ["team-*"]})).await;
    t.send(json!({"type": "doc:open", "doc": "other"})).await;
    doc_error(
        &mut t,
        "other",
        "forbidden",
        None,
        "outside the rooms claim",
    )
    .await;
    open(&mut t, "team-plan").await;
    let mut a = s.user("alice").await;
    a.send(json!({"type": "doc:open", "doc": "user:bob"})).await;
    doc_error(
        &mut a,
        "user:bob",
        "forbidden",
        None,
        "another user's personal doc",
    )
    .await;
    open(&mut a, "user:alice").await;
    open(&mut a, "two").await;
    a.send(json!({"type": "doc:open", "doc": "three"})).await;
    doc_error(&mut a, "three", "too_many_docs", None, "third document").await;
    // Reopening one already open is not a new one.
    open(&mut a, "two").await;
}

/// A client with the three ot.js states, as static/ot.js implements them.
pub(crate) struct Editor {
    pub(crate) c: Client,
    pub(crate) cid: String,
    pub(crate) doc: String,
    pub(crate) text: String,
    pub(crate) rev: u64,
    pub(crate) seq: u64,
    /// The op sent and not acked (with its seq), and what was typed since.
    pub(crate) pending: Option<(u64, Op)>,
    pub(crate) buffer: Option<Op>,
    pub(crate) rng: u64,
    /// Remote ops that arrived while an op of its own was unacknowledged.
    pub(crate) concurrent: u64,
}

impl Editor {
    fn rand(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n.max(1)
    }

    pub(crate) async fn send(&mut self, op: Op) {
        self.seq += 1;
        let f = op_frame(
            &self.doc,
            self.rev,
            &self.cid,
            self.seq,
            serde_json::from_str(&op.to_json()).unwrap(),
        );
        self.c.send(f).await;
        self.pending = Some((self.seq, op));
    }

    /// Types something at a random place.
    async fn type_something(&mut self) {
        let len = char_len(&self.text);
        let at = self.rand(len + 1);
        let del = if self.rand(3) == 0 {
            self.rand((len - at).min(3) + 1)
        } else {
            0
        };
        let words = ["a", "🙂", "é", "👨‍👩‍👧", " ", "中"];
        let mut op = Op::new();
        op.retain(at)
            .insert(words[self.rand(words.len() as u64) as usize])
            .delete(del)
            .retain(len - at - del);
        self.text = op.apply(&self.text).unwrap();
        match (&self.pending, self.buffer.take()) {
            (None, _) => self.send(op).await,
            (Some(_), None) => self.buffer = Some(op),
            (Some(_), Some(b)) => self.buffer = Some(b.compose(&op).unwrap()),
        }
    }

    pub(crate) async fn handle(&mut self, f: Value) {
        // Its own op, seen in the catch-up after a reconnect, is the ack.
        let mine = self.pending.as_ref().map(|p| p.0) == f["seq"].as_u64()
            && (f["type"] == "doc:ack" || f["cid"] == self.cid.as_str());
        match f["type"].as_str() {
            Some("doc:ack" | "doc:op") if mine => {
                assert!(f["rev"].as_u64() > Some(self.rev), "{} got {f}", self.cid);
                self.rev = f["rev"].as_u64().unwrap();
                self.pending = None;
                if let Some(b) = self.buffer.take() {
                    self.send(b).await;
                }
            }
            Some("doc:op") => {
                assert_eq!(f["rev"].as_u64(), Some(self.rev + 1), "{f}");
                let mut remote = Op::parse(&f["op"].to_string()).unwrap();
                if let Some((seq, p)) = self.pending.take() {
                    self.concurrent += 1;
                    let (p2, r2) = Op::transform(&p, &remote).unwrap();
                    self.pending = Some((seq, p2));
                    remote = r2;
                }
                if let Some(b) = self.buffer.take() {
                    let (b2, r2) = Op::transform(&b, &remote).unwrap();
                    self.buffer = Some(b2);
                    remote = r2;
                }
                self.text = remote.apply(&self.text).unwrap();
                self.rev += 1;
            }
            Some("error") => panic!("{} got {f}", self.cid),
            _ => {}
        }
    }

    /// Edits `n` times at random moments while reading what comes in.
    pub(crate) async fn edit_concurrently(mut self, n: usize) -> Editor {
        for _ in 0..n {
            let pause = Duration::from_millis(self.rand(15));
            if let Some(f) = self.c.try_recv(pause).await {
                self.handle(f).await;
            }
            self.type_something().await;
        }
        self
    }

    /// Reads until it has the document at `rev`.
    pub(crate) async fn catch_up(mut self, rev: u64) -> Editor {
        let deadline = tokio::time::Instant::now() + WAIT * 3;
        while self.rev < rev {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.c.try_recv(left).await {
                Some(f) => self.handle(f).await,
                None => panic!("{} stayed at rev {} of {rev}", self.cid, self.rev),
            }
        }
        self
    }

    /// Reads until its own ops are acked and nothing has come for `quiet`.
    pub(crate) async fn settle(mut self, quiet: Duration) -> Editor {
        let deadline = tokio::time::Instant::now() + WAIT * 3;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not settle",
                self.cid
            );
            match self.c.try_recv(quiet).await {
                Some(f) => self.handle(f).await,
                None if self.pending.is_none() => return self,
                None => {}
            }
        }
    }
}

#[tokio::test]
async fn three_clients_editing_one_document_concurrently_converge() {
    let s = Server::start();
    let mut eds = Vec::new();
    for (i, user) in ["alice", "bob", "carol"].into_iter().enumerate() {
        let mut c = s.user(user).await;
        let snap = open(&mut c, "shared").await;
        eds.push(Editor {
            c,
            cid: format!("c-{user}"),
            doc: "shared".into(),
            text: snap["text"].as_str().unwrap().to_string(),
            rev: snap["rev"].as_u64().unwrap(),
            seq: 0,
            pending: None,
            buffer: None,
            rng: 0x9e37_79b9 + i as u64 * 7919,
            concurrent: 0,
        });
    }
    let mut it = eds.into_iter();
    let (a, b, c) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let (a, b, c) = tokio::join!(
        a.edit_concurrently(60),
        b.edit_concurrently(60),
        c.edit_concurrently(60)
    );
    // Everyone's ops are acked, so nothing more will be committed; then
    // each catches up with the server's revision.
    let quiet = Duration::from_millis(150);
    let (a, b, c) = tokio::join!(a.settle(quiet), b.settle(quiet), c.settle(quiet));
    let mut fresh = s.user("dave").await;
    let snap = open(&mut fresh, "shared").await;
    let server = (
        snap["rev"].as_u64().unwrap(),
        snap["text"].as_str().unwrap().to_string(),
    );
    let (a, b, c) = tokio::join!(
        a.catch_up(server.0),
        b.catch_up(server.0),
        c.catch_up(server.0)
    );
    assert!(server.0 >= 30, "too few ops were committed: {server:?}");
    let concurrent = a.concurrent + b.concurrent + c.concurrent;
    assert!(concurrent > 0, "no edit was concurrent with another");
    for e in [&a, &b, &c] {
        assert_eq!(
            (e.rev, &e.text),
            (server.0, &server.1),
            "{} diverged",
            e.cid
        );
    }
}

#[tokio::test]
async fn the_js_client_is_served_with_the_demo() {
    let s = Server::start();
    let r = s.request("GET", "/ot.js", &[], None).await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/javascript")));
    assert!(String::from_utf8_lossy(&r.body).contains("export class OTClient"));
}

#[tokio::test]
async fn documents_survive_a_restart_and_resends_are_still_recognised() {
    let mut s = Server::with_env(&[
        ("SWITCHBOARD_DOC_KEEP_OPS", "3"),
        ("SWITCHBOARD_DOC_SNAPSHOT_EVERY", "4"),
    ]);
    let mut a = s.user("alice").await;
    open(&mut a, "plan").await;
    let mut text = String::new();
    for i in 0..6u64 {
        let word = format!("w{i}🙂 ");
        let op = if i == 0 {
            json!([word])
        } else {
            json!([char_len(&text), word])
        };
        let ack = edit(&mut a, "plan", i, "ca", i + 1, op).await;
        assert_eq!(ack["rev"], i + 1);
        text.push_str(&word);
    }
    // Killed, not stopped: what was acknowledged must already be on disk.
    s.restart(true, &[]);

    let mut b = s.user("bob").await;
    let snap = open(&mut b, "plan").await;
    assert_eq!(
        (snap["rev"].as_u64(), snap["text"].as_str()),
        (Some(6), Some(text.as_str())),
        "{snap}"
    );
    // A client a little behind gets the kept ops, not a snapshot.
    b.send(json!({"type": "doc:open", "doc": "plan", "rev": 4}))
        .await;
    let five = recv_doc(&mut b).await;
    assert_eq!(
        (five["type"].as_str(), five["rev"].as_u64()),
        (Some("doc:op"), Some(5)),
        "{five}"
    );
    assert_eq!(recv_doc(&mut b).await["rev"], 6);

    // alice's last op resent after the restart (its ack lost with the old
    // connection): acknowledged again at the same rev, not applied twice.
    let mut a2 = s.user("alice").await;
    a2.send(json!({"type": "doc:open", "doc": "plan", "rev": 6}))
        .await;
    let last = format!("w{}🙂 ", 5);
    let before_last = char_len(&text) - char_len(&last);
    a2.send(op_frame("plan", 5, "ca", 6, json!([before_last, last])))
        .await;
    let ack = a2.recv_type("doc:ack").await;
    assert_eq!(
        (ack["seq"].as_u64(), ack["rev"].as_u64()),
        (Some(6), Some(6)),
        "{ack}"
    );
    // A new op continues at rev 7 and reaches bob.
    edit(&mut a2, "plan", 6, "ca", 7, json!([char_len(&text), "end"])).await;
    let op = recv_doc(&mut b).await;
    assert_eq!(
        (op["rev"].as_u64(), op["user"].as_str()),
        (Some(7), Some("alice")),
        "{op}"
    );
    let snap = open(&mut b, "plan").await;
    assert_eq!(snap["text"].as_str(), Some(format!("{text}end").as_str()));
}
