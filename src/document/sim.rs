//! A seeded, randomized simulation of one document: several clients (the
//! three ot.js states, as in `static/ot.js`) edit concurrently over FIFO
//! links whose deliveries interleave at random, disconnect and reconnect
//! (resending their pending op with the same seq), while the store answers
//! batches late and sometimes fails, and the kept history is tiny. At the
//! end every client's text and revision must equal the server's.
//!
//! A failure names its seed; `SWITCHBOARD_SIM_SEED=<seed>` reruns just it,
//! `SWITCHBOARD_SIM_SEEDS=<n>` runs more.

use super::core::{DocCore, DocFrame, Edit, Limits, Out};
use crate::docstore::{DocOpRecord, DocState};
use crate::error::{ErrorCode, HubError};
use crate::ot::testkit::{typing_op, Rng};
use crate::ot::{char_len, Op};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

/// A client's session: which client, and which connection of it.
type Sess = (usize, u32);

#[derive(Debug, Clone)]
enum Up {
    Open(Option<u64>),
    Op { rev: u64, seq: u64, op: Op },
}

#[derive(Debug, Clone)]
enum State {
    Synced,
    Awaiting {
        seq: u64,
        op: Op,
    },
    Buffering {
        seq: u64,
        op: Op,
        buffer: Op,
    },
    /// Refused for good: waiting for a fresh snapshot, ignoring everything else.
    Resyncing,
}

/// The client algorithm of `static/ot.js`, in Rust.
struct Client {
    cid: Arc<str>,
    text: String,
    rev: u64,
    state: State,
    next_seq: u64,
    opened: bool,
    /// Connection generation; frames of older connections are gone.
    gen: u32,
    connected: bool,
    up: VecDeque<Up>,
    down: VecDeque<DocFrame>,
    /// Counts for [`Seen`].
    resends: u64,
    resyncs: u64,
    late_snapshots: u64,
}

impl Client {
    fn new(i: usize) -> Client {
        Client {
            cid: Arc::from(format!("c{i}")),
            text: String::new(),
            rev: 0,
            state: State::Resyncing,
            next_seq: 1,
            opened: false,
            gen: 0,
            connected: true,
            up: VecDeque::from([Up::Open(None)]),
            down: VecDeque::new(),
            resends: 0,
            resyncs: 0,
            late_snapshots: 0,
        }
    }

    fn send(&mut self, op: Op) -> State {
        let seq = self.next_seq;
        self.next_seq += 1;
        // Offline, the op waits for `reconnect`, which resends it.
        if self.connected {
            self.up.push_back(Up::Op {
                rev: self.rev,
                seq,
                op: op.clone(),
            });
        }
        State::Awaiting { seq, op }
    }

    fn edit(&mut self, op: Op) {
        self.text = op.apply(&self.text).expect("local edit applies");
        self.state = match std::mem::replace(&mut self.state, State::Synced) {
            State::Synced => self.send(op),
            State::Awaiting { seq, op: o } => State::Buffering {
                seq,
                op: o,
                buffer: op,
            },
            State::Buffering { seq, op: o, buffer } => State::Buffering {
                seq,
                op: o,
                buffer: buffer.compose(&op).expect("compose"),
            },
            State::Resyncing => unreachable!("no edits while resyncing"),
        };
    }

    fn pending_seq(&self) -> Option<u64> {
        match &self.state {
            State::Awaiting { seq, .. } | State::Buffering { seq, .. } => Some(*seq),
            _ => None,
        }
    }

    fn acked(&mut self, rev: u64) {
        self.rev = rev;
        self.state = match std::mem::replace(&mut self.state, State::Synced) {
            State::Buffering { buffer, .. } => self.send(buffer),
            _ => State::Synced,
        };
    }

    fn resync(&mut self) {
        self.resyncs += 1;
        self.state = State::Resyncing;
        self.up.push_back(Up::Open(None));
    }

    fn receive(&mut self, f: DocFrame, seed: u64) {
        match f {
            DocFrame::Snapshot { rev, text } => {
                // A snapshot replaces everything, pending edits included.
                if self.opened && !matches!(self.state, State::Resyncing) {
                    self.late_snapshots += 1;
                }
                self.text = text.to_string();
                self.rev = rev;
                self.state = State::Synced;
                self.opened = true;
            }
            _ if matches!(self.state, State::Resyncing) => {}
            DocFrame::Op(c) => {
                if c.rev <= self.rev {
                    return;
                }
                assert_eq!(
                    c.rev,
                    self.rev + 1,
                    "seed {seed}: gap in ops for {}",
                    self.cid
                );
                if c.cid == self.cid && self.pending_seq() == Some(c.seq) {
                    return self.acked(c.rev);
                }
                let remote = c.op.clone();
                let applied = match std::mem::replace(&mut self.state, State::Synced) {
                    State::Synced => remote,
                    State::Awaiting { seq, op } => {
                        let (op2, remote2) = Op::transform(&op, &remote).expect("transform");
                        self.state = State::Awaiting { seq, op: op2 };
                        remote2
                    }
                    State::Buffering { seq, op, buffer } => {
                        let (op2, r1) = Op::transform(&op, &remote).expect("transform");
                        let (buf2, r2) = Op::transform(&buffer, &r1).expect("transform");
                        self.state = State::Buffering {
                            seq,
                            op: op2,
                            buffer: buf2,
                        };
                        r2
                    }
                    State::Resyncing => unreachable!(),
                };
                self.text = applied.apply(&self.text).expect("remote op applies");
                self.rev = c.rev;
            }
            DocFrame::Ack { rev, seq } => {
                if self.pending_seq() == Some(seq) {
                    self.acked(rev);
                }
            }
            DocFrame::Error(e) => {
                if e.seq.is_none() || e.seq != self.pending_seq() {
                    return;
                }
                match e.code {
                    // Not stored: resend the same op, same seq, same base.
                    ErrorCode::Unavailable | ErrorCode::RateLimited => self.resend(),
                    _ => self.resync(),
                }
            }
        }
    }

    fn resend(&mut self) {
        if let State::Awaiting { seq, op } | State::Buffering { seq, op, .. } = &self.state {
            self.resends += 1;
            self.up.push_back(Up::Op {
                rev: self.rev,
                seq: *seq,
                op: op.clone(),
            });
        }
    }

    fn reconnect(&mut self) {
        self.gen += 1;
        self.connected = true;
        if matches!(self.state, State::Resyncing) || !self.opened {
            self.up.push_back(Up::Open(None));
            self.state = State::Resyncing;
            return;
        }
        self.up.push_back(Up::Open(Some(self.rev)));
        self.resend();
    }
}

/// What happened across runs, so the test can tell it exercised each path.
#[derive(Default, Debug)]
struct Seen {
    commits: u64,
    failed_writes: u64,
    resends: u64,
    resyncs: u64,
    late_snapshots: u64,
    /// Ops based on a revision older than the document's.
    stale_base: u64,
}

struct World {
    seen: Seen,
    seed: u64,
    rng: Rng,
    core: DocCore<Sess>,
    open: HashSet<Sess>,
    clients: Vec<Client>,
    /// The batch the store is writing, and what it holds.
    writing: Option<Vec<DocOpRecord>>,
    stored: Vec<DocOpRecord>,
    fail_writes: bool,
}

impl World {
    fn route(&mut self, outs: Vec<Out<Sess>>) {
        for o in outs {
            match o {
                Out::To(s, f) => self.deliver(s, f),
                Out::Others(except, f) => {
                    for s in self.open.clone() {
                        if !except.contains(&s) {
                            self.deliver(s, f.clone());
                        }
                    }
                }
                Out::Write(ops) => {
                    assert!(
                        self.writing.is_none(),
                        "seed {}: two batches at once",
                        self.seed
                    );
                    self.writing = Some(ops);
                }
                Out::Snapshot { .. } => {}
            }
        }
    }

    fn deliver(&mut self, s: Sess, f: DocFrame) {
        let c = &mut self.clients[s.0];
        if c.connected && c.gen == s.1 {
            c.down.push_back(f);
        }
    }

    fn uplink(&mut self, i: usize) {
        let Some(msg) = self.clients[i].up.pop_front() else {
            return;
        };
        let sess = (i, self.clients[i].gen);
        match msg {
            Up::Open(rev) => {
                self.open.insert(sess);
                for f in self.core.open(rev) {
                    self.deliver(sess, f);
                }
            }
            Up::Op { rev, seq, op } => {
                let edit = Edit {
                    rev,
                    cid: self.clients[i].cid.clone(),
                    seq,
                    op,
                };
                let user: Arc<str> = Arc::from("u");
                let before = self.core.visible();
                let outs = self.core.submit(sess, &user, edit, 0);
                self.seen.commits += outs.iter().any(|o| matches!(o, Out::Write(_))) as u64;
                self.seen.stale_base += (rev < before) as u64;
                self.route(outs);
            }
        }
    }

    fn finish_write(&mut self) {
        let Some(ops) = self.writing.take() else {
            return;
        };
        let fail = self.fail_writes && self.rng.chance(10);
        self.seen.failed_writes += fail as u64;
        let result = if fail {
            Err(HubError::new(ErrorCode::Internal, "disk full"))
        } else {
            let head = self.stored.last().map_or(0, |o| o.rev);
            assert_eq!(
                ops.first().map(|o| o.rev),
                Some(head + 1),
                "seed {}",
                self.seed
            );
            self.stored.extend(ops);
            Ok(())
        };
        let outs = self.core.stored(result);
        self.route(outs);
    }

    fn step(&mut self) {
        let n = self.clients.len() as u64;
        let i = self.rng.below(n) as usize;
        match self.rng.below(100) {
            0..=29 => {
                let c = &self.clients[i];
                // Edits go on offline too: they wait in the pending op and buffer.
                if c.opened && !matches!(c.state, State::Resyncing) {
                    let op = typing_op(&mut self.rng, char_len(&c.text));
                    self.clients[i].edit(op);
                }
            }
            30..=54 => {
                if self.clients[i].connected {
                    self.uplink(i);
                }
            }
            55..=84 => {
                let seed = self.seed;
                if let Some(f) = self.clients[i].down.pop_front() {
                    self.clients[i].receive(f, seed);
                }
            }
            85..=93 => self.finish_write(),
            94..=96 => {
                let c = &mut self.clients[i];
                if c.connected {
                    // Whatever was in flight either way is lost.
                    self.open.remove(&(i, c.gen));
                    c.connected = false;
                    c.up.clear();
                    c.down.clear();
                }
            }
            _ => {
                if !self.clients[i].connected {
                    self.clients[i].reconnect();
                }
            }
        }
    }

    /// Delivers everything, with no more edits, failures or disconnects.
    fn settle(&mut self) {
        self.fail_writes = false;
        for c in &mut self.clients {
            if !c.connected {
                c.reconnect();
            }
        }
        for _ in 0..100_000 {
            let busy = self.writing.is_some()
                || self
                    .clients
                    .iter()
                    .any(|c| !c.up.is_empty() || !c.down.is_empty());
            if !busy {
                return;
            }
            for i in 0..self.clients.len() {
                self.uplink(i);
                if let Some(f) = self.clients[i].down.pop_front() {
                    self.clients[i].receive(f, self.seed);
                }
            }
            self.finish_write();
        }
        panic!("seed {}: the simulation did not settle", self.seed);
    }
}

fn run(seed: u64) -> Seen {
    let limits = Limits {
        max_chars: 10_000,
        keep_ops: 4,
        snapshot_every: 3,
    };
    let mut rng = Rng::new(seed);
    let clients = 2 + rng.below(3) as usize;
    let steps = 200 + rng.below(400);
    let initial = DocState {
        snapshot_rev: 0,
        snapshot_text: "hello 😀 world".into(),
        ..DocState::default()
    };
    let mut w = World {
        seen: Seen::default(),
        seed,
        rng,
        core: DocCore::load("sim", initial, limits).expect("load"),
        open: HashSet::new(),
        clients: (0..clients).map(Client::new).collect(),
        writing: None,
        stored: Vec::new(),
        fail_writes: true,
    };
    for _ in 0..steps {
        w.step();
    }
    w.settle();
    let (rev, text) = (w.core.visible(), w.core.visible_text().to_string());
    assert_eq!(
        w.stored.last().map_or(0, |o| o.rev),
        rev,
        "seed {seed}: store behind"
    );
    for c in &w.clients {
        assert!(
            matches!(c.state, State::Synced),
            "seed {seed}: {} is {:?}",
            c.cid,
            c.state
        );
        assert_eq!(
            (c.rev, &c.text),
            (rev, &text),
            "seed {seed}: {} differs",
            c.cid
        );
    }
    // What the store holds rebuilds the same document.
    let reloaded = DocState {
        snapshot_rev: 0,
        snapshot_text: "hello 😀 world".into(),
        ops: w.stored.clone(),
        older_ops: Vec::new(),
    };
    let again: DocCore<Sess> = DocCore::load("sim", reloaded, limits).expect("reload");
    assert_eq!(
        again.visible_text(),
        text,
        "seed {seed}: the stored ops differ"
    );
    let mut seen = w.seen;
    for c in &w.clients {
        seen.resends += c.resends;
        seen.resyncs += c.resyncs;
        seen.late_snapshots += c.late_snapshots;
    }
    seen
}

#[test]
fn clients_converge_with_the_server_under_random_schedules() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let seeds: Vec<u64> = match env("SWITCHBOARD_SIM_SEED") {
        Some(s) => vec![s],
        None => (1..=env("SWITCHBOARD_SIM_SEEDS").unwrap_or(1000)).collect(),
    };
    let many = seeds.len() > 100;
    let mut all = Seen::default();
    for seed in seeds {
        match std::panic::catch_unwind(|| run(seed)) {
            Ok(s) => {
                all.commits += s.commits;
                all.failed_writes += s.failed_writes;
                all.resends += s.resends;
                all.resyncs += s.resyncs;
                all.late_snapshots += s.late_snapshots;
                all.stale_base += s.stale_base;
            }
            Err(_) => panic!(
                "the simulation failed with seed {seed}; rerun it alone with SWITCHBOARD_SIM_SEED={seed}"
            ),
        }
    }
    println!("simulation: {all:?}");
    if many {
        // Every path the simulation is for was taken, many times.
        let counts = [
            all.commits,
            all.failed_writes,
            all.resends,
            all.resyncs,
            all.late_snapshots,
            all.stale_base,
        ];
        assert!(counts.iter().all(|n| *n >= 20), "{all:?}");
    }
}
