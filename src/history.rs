//! A room's numbered message history: the last N encoded frames, the room's
//! `seq` counter and its `epoch`. Plain data, moved into the Hub's LRU while a
//! room has no members and back into a Room actor when someone joins.

use crate::ids::random_hex;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct History {
    /// Names this numbering of the room. A new epoch means earlier history was lost.
    pub epoch: Arc<str>,
    /// The last seq given out (0 before the first message).
    pub seq: u64,
    /// `(seq, encoded message:receive frame)`, oldest first, at most `cap`.
    entries: VecDeque<(u64, Bytes)>,
    cap: usize,
}

/// What a join with `since` gets.
#[derive(Debug, PartialEq)]
pub enum Recovery {
    /// Every message after `since`, in order (possibly none).
    Complete(Vec<Bytes>),
    /// The gap is not fully in history, or `since`/`epoch` belong to another numbering.
    Lost,
}

impl History {
    pub fn new(cap: usize) -> History {
        History {
            epoch: random_hex(8).into(),
            seq: 0,
            entries: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// The seq the next message will get.
    pub fn next_seq(&self) -> u64 {
        self.seq + 1
    }

    /// Appends the frame of message `seq` (which must be `next_seq()`).
    pub fn push(&mut self, seq: u64, frame: Bytes) {
        debug_assert_eq!(seq, self.seq + 1);
        self.seq = seq;
        if self.entries.len() == self.cap {
            self.entries.pop_front();
        }
        self.entries.push_back((seq, frame));
    }

    /// The oldest seq still kept (`seq + 1` when nothing is kept).
    pub fn first_seq(&self) -> u64 {
        self.entries.front().map(|e| e.0).unwrap_or(self.seq + 1)
    }

    pub fn is_empty(&self) -> bool {
        self.seq == 0
    }

    /// Messages after `since` for a rejoining client. Never a partial replay.
    pub fn recover(&self, since: u64, epoch: Option<&str>) -> Recovery {
        if epoch.is_some_and(|e| e != &*self.epoch)
            || since > self.seq
            || since + 1 < self.first_seq()
        {
            return Recovery::Lost;
        }
        Recovery::Complete(self.after(since, usize::MAX))
    }

    /// Up to `limit` kept messages with seq > `since`, oldest first.
    pub fn after(&self, since: u64, limit: usize) -> Vec<Bytes> {
        let skip = self.entries.partition_point(|e| e.0 <= since);
        self.entries
            .iter()
            .skip(skip)
            .take(limit)
            .map(|e| e.1.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(cap: usize, n: u64) -> History {
        let mut h = History::new(cap);
        for s in 1..=n {
            h.push(s, Bytes::from(s.to_string()));
        }
        h
    }

    fn seqs(r: Recovery) -> Option<Vec<String>> {
        match r {
            Recovery::Complete(v) => Some(
                v.iter()
                    .map(|b| String::from_utf8(b.to_vec()).unwrap())
                    .collect(),
            ),
            Recovery::Lost => None,
        }
    }

    #[test]
    fn recovers_only_complete_gaps() {
        let h = filled(3, 5); // keeps 3,4,5
        assert_eq!(h.first_seq(), 3);
        assert_eq!(seqs(h.recover(5, None)), Some(vec![]));
        assert_eq!(seqs(h.recover(4, None)), Some(vec!["5".into()]));
        assert_eq!(
            seqs(h.recover(2, None)),
            Some(vec!["3".into(), "4".into(), "5".into()])
        );
        assert_eq!(seqs(h.recover(1, None)), None, "message 2 is gone");
        assert_eq!(seqs(h.recover(0, None)), None);
        assert_eq!(seqs(h.recover(6, None)), None, "since in the future");
        let epoch = h.epoch.to_string();
        assert_eq!(seqs(h.recover(4, Some(&epoch))), Some(vec!["5".into()]));
        assert_eq!(seqs(h.recover(4, Some("other"))), None);
    }

    #[test]
    fn empty_history() {
        let h = History::new(10);
        assert_eq!(h.first_seq(), 1);
        assert_eq!(seqs(h.recover(0, None)), Some(vec![]));
        assert_eq!(seqs(h.recover(1, None)), None);
        assert!(h.after(0, 10).is_empty());
    }

    #[test]
    fn after_respects_limit() {
        let h = filled(10, 8);
        assert_eq!(h.after(2, 3).len(), 3);
        assert_eq!(h.after(0, 100).len(), 8);
        assert_eq!(h.after(8, 100).len(), 0);
    }
}
