//! Scrollback: pages of a room's history going back from a seq, for
//! `GET /api/rooms/{room}/history?before=&limit=` and `history:get`.
//!
//! A page is planned where the room's in-memory history is (the room actor,
//! or the Hub for an idle room): the newest messages below `before` that
//! memory holds, and, when memory does not reach back far enough, what the
//! database must add below memory's oldest seq. The plan is finished by the
//! caller (an HTTP handler or a session), which waits for the read thread of
//! `store::reader`: neither the room nor the Hub ever waits for the disk.
//!
//! Seqs are never reused within an epoch and a stored message never
//! changes, so a page is the same whenever it is read: a client paging back
//! from its first live message sees each message once.

use crate::error::HubError;
use crate::history::History;
use crate::ids::{now_ms, RoomName};
pub use crate::protocol::page::{PageRequest, DEFAULT_LIMIT, MAX_LIMIT};
use crate::store::reader::{ReadPage, ReaderHandle};
use crate::store::StoreHandle;
use bytes::Bytes;
use std::sync::Arc;

/// Most bytes of messages in one page (the first message always fits): a
/// page of large messages has fewer than `limit`, and `more` says so.
pub const MAX_PAGE_BYTES: usize = 1 << 20;

/// A finished page.
#[derive(Debug)]
pub struct Page {
    /// The room's numbering; `None` for a room with no history anywhere.
    pub epoch: Option<Arc<str>>,
    /// The room's last seq.
    pub seq: u64,
    /// The oldest seq in the room's memory (for a room not in memory, the
    /// oldest on this page; `seq + 1` when there is none).
    pub first_seq: u64,
    /// Stored `message:receive` frames, oldest first.
    pub messages: Vec<Bytes>,
    /// Older messages remain before the first one of this page.
    pub more: bool,
}

/// A page begun from memory; [`Plan::finish`] adds what the database has.
pub struct Plan {
    epoch: Option<Arc<str>>,
    seq: u64,
    first_seq: Option<u64>,
    /// From memory, newest first.
    newest_first: Vec<Bytes>,
    more: bool,
    rest: Option<Rest>,
}

/// Where the rest of a page is read.
enum Rest {
    /// The embedded database.
    Db(ReaderHandle, ReadPage),
    /// The room's stream in Redis (several nodes): older than `below`, at
    /// most `want` messages and `bytes` bytes (but at least one if
    /// `at_least_one`).
    Redis {
        c: crate::cluster::Cluster,
        room: RoomName,
        below: Option<u64>,
        want: usize,
        bytes: usize,
        at_least_one: bool,
    },
}

/// Where a room's older messages are, if it is stored.
fn read_for(store: &StoreHandle, room: &RoomName, below: Option<u64>, want: usize) -> ReadPage {
    let cutoff_ms = store
        .policy
        .retention(room.as_str())
        .age
        .map_or(0, |a| now_ms().saturating_sub(a.as_millis() as u64));
    ReadPage {
        room: room.to_string(),
        below,
        want,
        bytes: MAX_PAGE_BYTES,
        at_least_one: true,
        cutoff_ms,
        // Taken now, after every write the room has handed over.
        mark: store.reader.progress.mark(),
    }
}

impl Plan {
    /// From a room's in-memory history. `store`: where the room's messages
    /// are stored (`None` for a volatile room, or storage off: then memory
    /// is all there is).
    pub fn from_history(
        h: &History,
        room: &RoomName,
        req: PageRequest,
        store: Option<&StoreHandle>,
        cluster: Option<&crate::cluster::Cluster>,
    ) -> Plan {
        let before = req.before.unwrap_or(u64::MAX).min(h.seq.saturating_add(1));
        let (mut newest_first, mut bytes, mut more) = (Vec::new(), 0, false);
        for (_, frame) in h.newest_below(before) {
            if newest_first.len() >= req.limit
                || (!newest_first.is_empty() && bytes + frame.len() > MAX_PAGE_BYTES)
            {
                more = true;
                break;
            }
            bytes += frame.len();
            newest_first.push(frame.clone());
        }
        // Memory is complete from its oldest seq on; below it, the database.
        let below = before.min(h.first_seq());
        let rest = match cluster {
            Some(c) if !more && below > 1 => Some(Rest::Redis {
                c: c.clone(),
                room: room.clone(),
                below: Some(below),
                want: req.limit - newest_first.len(),
                bytes: MAX_PAGE_BYTES.saturating_sub(bytes),
                at_least_one: newest_first.is_empty(),
            }),
            Some(_) => None,
            None => store.filter(|_| !more && below > 1).map(|s| {
                let mut read = read_for(s, room, Some(below), req.limit - newest_first.len());
                read.bytes = MAX_PAGE_BYTES.saturating_sub(bytes);
                read.at_least_one = newest_first.is_empty();
                Rest::Db(s.reader.clone(), read)
            }),
        };
        Plan {
            epoch: Some(h.epoch.clone()),
            seq: h.seq,
            first_seq: Some(h.first_seq()),
            newest_first,
            more,
            rest,
        }
    }

    /// A room with nothing in memory (neither active nor idle): what the
    /// database has, if the room is stored.
    pub fn stored(room: &RoomName, req: PageRequest, store: Option<&StoreHandle>) -> Plan {
        Plan::only(
            store.map(|s| Rest::Db(s.reader.clone(), read_for(s, room, req.before, req.limit))),
        )
    }

    /// A page with nothing from memory: all of it from `rest`.
    fn only(rest: Option<Rest>) -> Plan {
        Plan {
            epoch: None,
            seq: 0,
            first_seq: None,
            newest_first: Vec::new(),
            more: false,
            rest,
        }
    }

    /// A room not active on this node, with several nodes: what its stream
    /// in Redis has (on the Redis of its messages).
    pub fn shared(room: &RoomName, req: PageRequest, c: &crate::cluster::Cluster) -> Plan {
        Plan::only(Some(Rest::Redis {
            c: c.for_room(room),
            room: room.clone(),
            below: req.before,
            want: req.limit,
            bytes: MAX_PAGE_BYTES,
            at_least_one: true,
        }))
    }

    /// Reads what the database must add (on the reader thread; the caller
    /// waits, nobody else).
    pub async fn finish(self) -> Result<Page, HubError> {
        let Plan {
            mut epoch,
            mut seq,
            first_seq,
            mut newest_first,
            mut more,
            rest,
        } = self;
        if let Some(Rest::Redis {
            c,
            room,
            below,
            want,
            bytes,
            at_least_one,
        }) = rest
        {
            let end = below.map_or("+".to_string(), |b| format!("({b}-1"));
            let v = c
                .script(
                    crate::cluster::Lua::Page,
                    vec![c.room_key(&room, "m"), c.room_key(&room, "x")],
                    vec![end.into_bytes(), (want + 1).to_string().into_bytes()],
                )
                .await?;
            let (e, s, entries) = crate::cluster::scripts::range(&v).ok_or_else(|| {
                HubError::new(
                    crate::error::ErrorCode::Internal,
                    "unexpected answer from Redis",
                )
            })?;
            if epoch.is_none() && !e.is_empty() {
                (epoch, seq) = (Some(e.as_str().into()), s);
            }
            // Another numbering than memory's (Redis lost it): nothing older.
            if epoch.as_deref() == Some(e.as_str()) {
                let (mut taken, mut used) = (0, 0);
                for (_, f) in &entries {
                    let first = taken == 0 && at_least_one;
                    if taken >= want || (!first && used + f.len() > bytes) {
                        break;
                    }
                    used += f.len();
                    taken += 1;
                    newest_first.push(f.clone());
                }
                more = entries.len() > taken;
            }
        } else if let Some(Rest::Db(reader, read)) = rest {
            let stored = reader.read(read).await?;
            if epoch.is_none() {
                if let Some((e, s)) = stored.head {
                    (epoch, seq) = (Some(e.into()), s);
                }
            }
            more = stored.more;
            newest_first.extend(stored.rows.into_iter().map(|r| r.1));
        }
        let first_seq = first_seq.unwrap_or_else(|| {
            // Not in memory: the page's oldest (frames begin with their seq's room and seq).
            newest_first
                .last()
                .and_then(|f| seq_of(f))
                .unwrap_or(seq + 1)
        });
        newest_first.reverse();
        Ok(Page {
            epoch,
            seq,
            first_seq,
            messages: newest_first,
            more,
        })
    }
}

/// The `seq` of a stored `message:receive` frame.
fn seq_of(frame: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Seq {
        seq: u64,
    }
    serde_json::from_slice::<Seq>(frame).ok().map(|s| s.seq)
}

/// Appends `[m1,m2,…]`: the stored frames, spliced in as they are.
fn splice(out: &mut Vec<u8>, messages: &[Bytes]) {
    out.push(b'[');
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(m);
    }
    out.push(b']');
}

/// Encodes `head` (a JSON object) with `"messages":[…]` spliced in last.
pub fn with_messages(head: &impl serde::Serialize, messages: &[Bytes]) -> Vec<u8> {
    let head = serde_json::to_vec(head).unwrap_or_else(|_| b"{}".to_vec());
    let mut out =
        Vec::with_capacity(head.len() + 16 + messages.iter().map(|m| m.len() + 1).sum::<usize>());
    out.extend_from_slice(&head[..head.len() - 1]);
    if head.len() > 2 {
        out.push(b',');
    }
    out.extend_from_slice(br#""messages":"#);
    splice(&mut out, messages);
    out.push(b'}');
    out
}

/// The head of `history:page`, `type` first as in every server frame (the
/// SSE transport names its events from the front of the frame).
#[derive(serde::Serialize)]
struct PageHead<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    room: &'a RoomName,
    epoch: Option<&'a str>,
    more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
}

/// The `history:page` frame answering `history:get`.
pub fn page_frame(room: &RoomName, page: &Page, id: Option<&str>) -> Bytes {
    let head = PageHead {
        ty: "history:page",
        room,
        epoch: page.epoch.as_deref(),
        more: page.more,
        id,
    };
    Bytes::from(with_messages(&head, &page.messages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistoryLimits;

    fn history(n: u64, keep: usize) -> History {
        let mut h = History::new(HistoryLimits {
            entries: keep,
            bytes: usize::MAX,
            keys: Default::default(),
        });
        for s in 1..=n {
            h.push(s, Bytes::from(format!(r#"{{"seq":{s}}}"#)));
        }
        h
    }

    fn seqs(p: &Page) -> Vec<u64> {
        p.messages.iter().filter_map(|m| seq_of(m)).collect()
    }

    fn page(h: &History, before: Option<u64>, limit: usize) -> Page {
        let room = RoomName::parse("r").unwrap();
        let plan = Plan::from_history(h, &room, PageRequest { before, limit }, None, None);
        actix::System::new().block_on(plan.finish()).unwrap()
    }

    #[test]
    fn memory_pages_go_back_oldest_first_within_a_page() {
        let h = history(10, 100);
        let p = page(&h, None, 3);
        assert_eq!((seqs(&p), p.more), (vec![8, 9, 10], true));
        let p = page(&h, Some(8), 3);
        assert_eq!((seqs(&p), p.more), (vec![5, 6, 7], true));
        let p = page(&h, Some(4), 3);
        assert_eq!((seqs(&p), p.more), (vec![1, 2, 3], false));
        let p = page(&h, Some(1), 3);
        assert_eq!((seqs(&p), p.more), (vec![], false));
        let p = page(&h, Some(99), 2);
        assert_eq!(seqs(&p), vec![9, 10], "before past the end: the newest");
        let p = page(&h, None, 0);
        assert_eq!((seqs(&p), p.more), (vec![], true));
    }

    #[test]
    fn without_storage_memory_is_all_there_is() {
        let h = history(10, 4); // keeps 7..10
        let p = page(&h, Some(9), 5);
        assert_eq!((seqs(&p), p.more), (vec![7, 8], false));
        assert_eq!((p.seq, p.first_seq), (10, 7));
    }

    #[test]
    fn frames_are_spliced_not_reencoded() {
        let room = RoomName::parse("r").unwrap();
        let p = Page {
            epoch: Some("ep".into()),
            seq: 2,
            first_seq: 1,
            messages: vec![
                Bytes::from_static(b"{\"seq\": 1}"),
                Bytes::from_static(b"{\"seq\":2}"),
            ],
            more: false,
        };
        let f = page_frame(&room, &p, Some("h1"));
        assert!(f.starts_with(br#"{"type":"history:page","#), "type first");
        let v: serde_json::Value = serde_json::from_slice(&f).unwrap();
        assert_eq!(v["type"], "history:page");
        assert_eq!(
            (v["more"].as_bool(), v["id"].as_str()),
            (Some(false), Some("h1"))
        );
        assert!(
            f.windows(10).any(|w| w == b"{\"seq\": 1}"),
            "kept byte for byte"
        );
        let empty = with_messages(&serde_json::json!({}), &[]);
        assert_eq!(empty, br#"{"messages":[]}"#);
    }
}
