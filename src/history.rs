//! A room's numbered message history: the last N encoded frames, the room's
//! `seq` counter and its `epoch`. Plain data, moved into the Hub's LRU while a
//! room has no members and back into a Room actor when someone joins.

use crate::idempotency::{IdemKey, KeyLimits, Keys};
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
    /// `(seq, encoded message:receive frame)`, oldest first, within `limits`.
    entries: VecDeque<(u64, Bytes)>,
    /// Sum of the kept frames' lengths.
    bytes: usize,
    limits: HistoryLimits,
    /// Messages up to this seq may be missing (given out, never stored): a
    /// recovery must start at or after it.
    missing_upto: u64,
    /// In a stored room: the room may hand out seqs up to this one (see
    /// `Room::seq_reserved`).
    pub reserved: u64,
    /// This numbering was made here and was never read from the database.
    pub fresh: bool,
    /// Idempotency keys accepted recently (`idempotency.rs`).
    keys: Keys,
}

/// How much history a room keeps: whichever bound is hit first. Counting
/// bytes too keeps a room of 64 KiB messages from holding 200 × 64 KiB.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HistoryLimits {
    pub entries: usize,
    pub bytes: usize,
    /// How long and how many idempotency keys are remembered.
    pub keys: KeyLimits,
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
    pub fn new(limits: HistoryLimits) -> History {
        History {
            epoch: random_hex(8).into(),
            seq: 0,
            entries: VecDeque::new(),
            bytes: 0,
            missing_upto: 0,
            reserved: 0,
            fresh: true,
            keys: Keys::default(),
            limits: HistoryLimits {
                entries: limits.entries.max(1),
                ..limits
            },
        }
    }

    /// A history read back from storage: numbering `epoch`, last seq `seq`, and
    /// the stored tail `entries` (oldest first). The newest run of entries
    /// without a gap is kept. If it ends before `seq` (the last messages were
    /// given out but not stored), it is still there to read, but no recovery
    /// from before `seq` is offered: a replay never skips a message.
    pub fn restore(
        limits: HistoryLimits,
        epoch: &str,
        seq: u64,
        entries: Vec<(u64, Bytes)>,
    ) -> History {
        let mut h = History::new(limits);
        h.epoch = epoch.into();
        let last = entries.last().map_or(seq, |e| e.0.min(seq));
        let contiguous = entries
            .iter()
            .rev()
            .zip((0..=last).rev())
            .take_while(|((s, _), want)| s == want)
            .count();
        let start = entries.len() - contiguous;
        h.seq = last.saturating_sub(contiguous as u64);
        for (s, frame) in entries.into_iter().skip(start) {
            h.push(s, frame);
        }
        if last < seq {
            h.missing_upto = seq;
        }
        h.seq = seq;
        h.reserved = seq;
        h.fresh = false;
        h
    }

    pub fn limits(&self) -> HistoryLimits {
        self.limits
    }

    /// Bytes of kept frames.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The seq the next message will get.
    pub fn next_seq(&self) -> u64 {
        self.seq + 1
    }

    /// Appends the frame of message `seq` (which must be `next_seq()`).
    pub fn push(&mut self, seq: u64, frame: Bytes) {
        debug_assert_eq!(seq, self.seq + 1);
        self.seq = seq;
        self.bytes += frame.len();
        self.entries.push_back((seq, frame));
        // The newest message is always kept, even if it alone exceeds the byte bound.
        while self.entries.len() > 1
            && (self.entries.len() > self.limits.entries || self.bytes > self.limits.bytes)
        {
            if let Some((_, old)) = self.entries.pop_front() {
                self.bytes -= old.len();
            }
        }
    }

    /// The oldest seq still kept (`seq + 1` when nothing is kept).
    pub fn first_seq(&self) -> u64 {
        self.entries.front().map(|e| e.0).unwrap_or(self.seq + 1)
    }

    pub fn is_empty(&self) -> bool {
        self.seq == 0
    }

    /// The seq of the message published with `key` within the window.
    pub fn key_seq(&mut self, key: &IdemKey, now_ms: u64) -> Option<u64> {
        self.keys.get(key, now_ms, self.limits.keys)
    }

    /// Remembers that message `seq` (stamped `ts`) carried `key`.
    pub fn remember_key(&mut self, key: IdemKey, seq: u64, ts: u64) {
        self.keys.insert(key, seq, ts, self.limits.keys);
    }

    /// Messages after `since` for a rejoining client. Never a partial replay.
    pub fn recover(&self, since: u64, epoch: Option<&str>) -> Recovery {
        if epoch.is_some_and(|e| e != &*self.epoch)
            || since > self.seq
            || since < self.missing_upto
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

    /// Kept messages with seq below `before`, newest first (for scrollback).
    pub fn newest_below(&self, before: u64) -> impl Iterator<Item = (u64, &Bytes)> {
        let end = self.entries.partition_point(|e| e.0 < before);
        self.entries.range(..end).rev().map(|e| (e.0, &e.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(entries: usize) -> HistoryLimits {
        HistoryLimits {
            entries,
            bytes: usize::MAX,
            keys: KeyLimits::default(),
        }
    }

    fn filled(cap: usize, n: u64) -> History {
        let mut h = History::new(limits(cap));
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
        let h = History::new(limits(10));
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

    #[test]
    fn restore_keeps_only_the_gapless_tail() {
        let e = |v: &[u64]| v.iter().map(|s| (*s, Bytes::from(s.to_string()))).collect();
        let h = History::restore(limits(10), "ep", 5, e(&[2, 3, 4, 5]));
        assert_eq!((&*h.epoch, h.seq, h.first_seq()), ("ep", 5, 2));
        assert_eq!(
            seqs(h.recover(1, Some("ep"))),
            Some(vec!["2".into(), "3".into(), "4".into(), "5".into()])
        );
        // 3 was never stored: only 4..5 can be replayed.
        let h = History::restore(limits(10), "ep", 5, e(&[1, 2, 4, 5]));
        assert_eq!(h.first_seq(), 4);
        assert_eq!(seqs(h.recover(2, None)), None);
        assert_eq!(seqs(h.recover(3, None)), Some(vec!["4".into(), "5".into()]));
        // The newest stored message is not the room's last: what is stored
        // can be read, but nothing replays from before the room's last seq.
        let mut h = History::restore(limits(10), "ep", 7, e(&[4, 5]));
        assert_eq!((h.seq, h.first_seq()), (7, 4));
        assert_eq!(h.after(0, 10).len(), 2);
        assert_eq!(seqs(h.recover(5, None)), None);
        assert_eq!(seqs(h.recover(3, None)), None);
        assert_eq!(seqs(h.recover(7, None)), Some(vec![]));
        h.push(8, Bytes::from("8"));
        assert_eq!(seqs(h.recover(7, None)), Some(vec!["8".into()]));
        assert_eq!(seqs(h.recover(6, None)), None);
        // The in-memory bound still applies; seq continues after it.
        let mut h = History::restore(limits(2), "ep", 5, e(&[3, 4, 5]));
        assert_eq!((h.first_seq(), h.next_seq()), (4, 6));
        h.push(6, Bytes::from("6"));
        assert_eq!(h.first_seq(), 5);
    }

    #[test]
    fn byte_bound_drops_the_oldest_but_keeps_the_newest() {
        let mut h = History::new(HistoryLimits {
            entries: 100,
            bytes: 10,
            keys: KeyLimits::default(),
        });
        for s in 1..=5 {
            h.push(s, Bytes::from(vec![b'x'; 4]));
        }
        assert_eq!(
            (h.first_seq(), h.bytes()),
            (4, 8),
            "two 4-byte frames fit in 10"
        );
        h.push(6, Bytes::from(vec![b'y'; 50]));
        assert_eq!(
            (h.first_seq(), h.bytes()),
            (6, 50),
            "an oversized newest frame stays alone"
        );
        assert_eq!(h.recover(3, None), Recovery::Lost);
    }
}
