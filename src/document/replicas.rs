//! Several `DocCore`s as the replicas of one shared document (what
//! `cluster.rs` does with Redis), driven by a seeded random schedule: a
//! shared log accepts a replica's batch only if it follows the log's head;
//! otherwise the replica parks its ops, applies what it missed and commits
//! them again. Every replica must end with the log's text, and every op must
//! be acknowledged exactly once, with the revision the log gave it.

use super::core::{DocCore, DocFrame, Edit, Limits, Out};
use crate::docstore::{DocOpRecord, DocState};
use crate::ot::testkit::{random_op, Rng};
use crate::ot::{char_len, Op};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A session: (replica, client).
type Sess = (usize, usize);

struct Replica {
    core: DocCore<Sess>,
    /// The batch being appended.
    writing: Option<Vec<DocOpRecord>>,
}

struct World {
    seed: u64,
    rng: Rng,
    log: Vec<DocOpRecord>,
    reps: Vec<Replica>,
    /// Per client id: its next seq, and the seq it waits an ack for.
    clients: HashMap<String, (u64, Option<u64>)>,
    /// (cid, seq) → the rev it was acked with.
    acks: HashMap<(String, u64), u64>,
}

impl World {
    fn route(&mut self, r: usize, outs: Vec<Out<Sess>>) {
        for o in outs {
            match o {
                Out::To((_, c), DocFrame::Ack { rev, seq }) => {
                    let cid = format!("r{r}c{c}");
                    let first = self.acks.insert((cid.clone(), seq), rev);
                    assert!(
                        first.is_none(),
                        "seed {}: {cid}/{seq} acked twice",
                        self.seed
                    );
                    let entry = self.clients.get_mut(&cid).expect("a client");
                    assert_eq!(
                        entry.1,
                        Some(seq),
                        "seed {}: an ack not waited for",
                        self.seed
                    );
                    entry.1 = None;
                }
                Out::To(s, f) => panic!("seed {}: {s:?} got {f:?}", self.seed),
                Out::Write(ops) => {
                    assert!(
                        self.reps[r].writing.is_none(),
                        "seed {}: two batches",
                        self.seed
                    );
                    self.reps[r].writing = Some(ops);
                }
                Out::Others(..) | Out::Snapshot { .. } => {}
            }
        }
    }

    /// A client of replica `r` edits the replica's visible text.
    fn edit(&mut self, r: usize) {
        let c = self.rng.below(2) as usize;
        let cid = format!("r{r}c{c}");
        let (next, waiting) = self.clients.entry(cid.clone()).or_insert((1, None));
        if waiting.is_some() {
            return;
        }
        let seq = *next;
        *next += 1;
        *waiting = Some(seq);
        let core = &mut self.reps[r].core;
        let op: Op = random_op(&mut self.rng, char_len(core.visible_text()));
        let edit = Edit {
            rev: core.visible(),
            cid: Arc::from(cid.as_str()),
            seq,
            op,
        };
        let user: Arc<str> = Arc::from("u");
        let outs = if self.reps[r].writing.is_none() && self.rng.chance(30) {
            // As while catching up in cluster.rs: held, committed later.
            self.reps[r].core.park();
            self.reps[r].core.hold((r, c), &user, edit, 0);
            let outs = self.catch_up(r);
            self.route(r, outs);
            self.reps[r].core.unpark()
        } else {
            self.reps[r].core.submit((r, c), &user, edit, 0)
        };
        self.route(r, outs);
    }

    /// Applies every logged op the replica has not, in order.
    fn catch_up(&mut self, r: usize) -> Vec<Out<Sess>> {
        let mut outs = Vec::new();
        let core = &mut self.reps[r].core;
        while let Some(o) = self.log.get(core.visible() as usize) {
            outs.extend(core.remote(o).expect("a logged op applies"));
        }
        outs
    }

    /// Redis answers replica `r`'s batch.
    fn append(&mut self, r: usize) {
        let Some(ops) = self.reps[r].writing.take() else {
            return;
        };
        if ops[0].rev == self.log.len() as u64 + 1 {
            self.log.extend(ops);
            let outs = self.reps[r].core.stored(Ok(()));
            self.route(r, outs);
        } else {
            self.reps[r].core.park();
            let outs = self.catch_up(r);
            self.route(r, outs);
            let outs = self.reps[r].core.unpark();
            self.route(r, outs);
        }
    }

    /// Ops from the channel, when nothing of the replica's is pending.
    fn deliver(&mut self, r: usize) {
        if self.reps[r].writing.is_none() && !self.reps[r].core.busy() {
            let outs = self.catch_up(r);
            self.route(r, outs);
        }
    }
}

fn run(seed: u64) {
    let limits = Limits {
        max_chars: 1 << 20,
        keep_ops: 50,
        snapshot_every: 10,
    };
    let reps = (0..3)
        .map(|_| Replica {
            core: DocCore::load("d", DocState::default(), limits).expect("load"),
            writing: None,
        })
        .collect();
    let mut w = World {
        seed,
        rng: Rng::new(seed),
        log: Vec::new(),
        reps,
        clients: HashMap::new(),
        acks: HashMap::new(),
    };
    for _ in 0..400 {
        let r = w.rng.below(3) as usize;
        match w.rng.below(3) {
            0 => w.edit(r),
            1 => w.append(r),
            _ => w.deliver(r),
        }
    }
    // Quiesce: every batch answered, every replica caught up.
    for _ in 0..50 {
        for r in 0..3 {
            w.append(r);
            w.deliver(r);
        }
    }
    let mut text = String::new();
    for o in &w.log {
        text = Op::parse(&o.op).unwrap().apply(&text).unwrap();
    }
    for (r, rep) in w.reps.iter().enumerate() {
        assert!(!rep.core.busy(), "seed {seed}: replica {r} still busy");
        assert_eq!(rep.core.visible(), w.log.len() as u64, "seed {seed}");
        assert_eq!(rep.core.visible_text(), text, "seed {seed}: replica {r}");
    }
    // Each logged op once, acked with its revision; every op acked.
    let logged: HashSet<(String, u64)> = w.log.iter().map(|o| (o.cid.clone(), o.seq)).collect();
    assert_eq!(logged.len(), w.log.len(), "seed {seed}: an op logged twice");
    for o in &w.log {
        assert_eq!(
            w.acks.get(&(o.cid.clone(), o.seq)),
            Some(&o.rev),
            "seed {seed}"
        );
    }
    assert!(
        w.clients.values().all(|c| c.1.is_none()),
        "seed {seed}: an op never acked"
    );
    assert!(w.log.len() > 20, "seed {seed}: too few ops");
}

#[test]
fn replicas_of_a_shared_document_converge_and_ack_each_op_once() {
    for seed in 0..200 {
        run(seed);
    }
}
