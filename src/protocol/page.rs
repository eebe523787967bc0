//! Which page of a room's history `room:history` asks for (read by
//! `scrollback.rs`).

/// Messages in a page when the request names no `limit`.
pub const DEFAULT_LIMIT: usize = 50;
/// Most messages in one page; a larger `limit` is lowered to this.
pub const MAX_LIMIT: usize = 500;
/// Which page: the newest `limit` messages with seq below `before`
/// (`None`: the room's newest).
#[derive(Clone, Copy, Debug)]
pub struct PageRequest {
    pub before: Option<u64>,
    pub limit: usize,
}

impl PageRequest {
    /// `limit` defaulted and capped.
    pub fn new(before: Option<u64>, limit: Option<u64>) -> PageRequest {
        let limit = limit.map_or(DEFAULT_LIMIT, |l| {
            usize::try_from(l).unwrap_or(MAX_LIMIT).min(MAX_LIMIT)
        });
        PageRequest { before, limit }
    }
}
