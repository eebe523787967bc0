//! The Lua scripts (each one atomic in Redis) and their typed replies.
//!
//! Every script gets the Redis run id the node last saw as `ARGV[1]`
//! (added by the lane). A room's meta hash records the run under which its
//! numbering was written; a script that finds another run there (Redis
//! restarted, possibly rolled back to an older snapshot, or failed over)
//! starts a new epoch instead of continuing a numbering it cannot trust —
//! clients holding the old epoch then get `recovered:false`, never a
//! silent hole. Keys: docs/SCALEOUT.md.

use bytes::Bytes;
use redis::Value;
use std::sync::OnceLock;

/// Fences a room's meta (`KEYS[1]`), creating its epoch (`ARGV[2]`) and
/// emptying its stream (`KEYS[2]`) when there is none. Answers the epoch,
/// or `false` and the server's run id when the caller's is out of date.
const META: &str = r#"
local function meta(m, x)
  local h = redis.call('HMGET', m, 'e', 'rid')
  local e, r = h[1], h[2]
  if e and r ~= ARGV[1] then
    local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
    if run ~= ARGV[1] then return false, run end
    e = false
  end
  if not e then
    e = ARGV[2]
    redis.call('HSET', m, 'e', e, 's', 0, 'rid', ARGV[1])
    redis.call('DEL', x)
  end
  return e
end
"#;

/// A user's status across nodes: the most present of the nodes' statuses
/// (online, then busy, then away); offline when no node has a session.
const AGG: &str = r#"
local rank = {offline = 0, away = 1, busy = 2, online = 3}
local function agg(key)
  local best = 'offline'
  for _, v in ipairs(redis.call('HVALS', key)) do
    if rank[v] and rank[v] > rank[best] then best = v end
  end
  return best
end
"#;

/// KEYS meta, stream, channel, idempotency key.
/// ARGV run, new epoch, stream length, frame head, frame tail, key ttl ms,
/// has key, the session that does not get it (`node/session` or `-`).
const PUBLISH: &str = r#"
local e, run = meta(KEYS[1], KEYS[2])
if not e then return {'stale', run} end
if ARGV[7] == '1' then
  local old = redis.call('GET', KEYS[4])
  if old then
    local sp = string.find(old, ' ', 1, true)
    if sp and string.sub(old, sp + 1) == e then
      return {'dup', tonumber(string.sub(old, 1, sp - 1)), e}
    end
  end
end
local s = redis.call('HINCRBY', KEYS[1], 's', 1)
local f = ARGV[4] .. s .. ARGV[5]
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], s .. '-1', 'f', f)
redis.call('PUBLISH', KEYS[3], 'M' .. s .. ' ' .. e .. ' ' .. ARGV[8] .. ' ' .. f)
if ARGV[7] == '1' then redis.call('SET', KEYS[4], s .. ' ' .. e, 'PX', ARGV[6]) end
return {'ok', s, e}
"#;

/// KEYS meta, stream, members, state hash, state counter, sessions. ARGV
/// run, new epoch, entries wanted. The shared state and the sessions are
/// read in the same call, so they are as of the same moment as the rest.
const LOAD: &str = r#"
local e, run = meta(KEYS[1], KEYS[2])
if not e then return {'stale', run} end
local h = redis.call('HMGET', KEYS[1], 's', 'v')
local entries = {}
if tonumber(ARGV[3]) > 0 then
  entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[3])
end
return {'ok', e, tonumber(h[1]), tonumber(h[2] or '0'), entries, redis.call('HGETALL', KEYS[3]),
  tonumber(redis.call('GET', KEYS[5]) or '0'), redis.call('HVALS', KEYS[4]),
  redis.call('HGETALL', KEYS[6])}
"#;

/// KEYS meta, stream. ARGV run, first id (exclusive: `(N-1`), last id, count.
const RANGE: &str = r#"
local h = redis.call('HMGET', KEYS[1], 'e', 's')
if not h[1] then return {'ok', '', 0, {}} end
return {'ok', h[1], tonumber(h[2]),
  redis.call('XRANGE', KEYS[2], ARGV[2], ARGV[3], 'COUNT', ARGV[4])}
"#;

/// KEYS meta, stream. ARGV run, newest id (exclusive: `(N-1`, or `+`),
/// count. Answers {'ok', epoch, seq, entries newest first}.
const PAGE: &str = r#"
local h = redis.call('HMGET', KEYS[1], 'e', 's')
if not h[1] then return {'ok', '', 0, {}} end
return {'ok', h[1], tonumber(h[2]),
  redis.call('XREVRANGE', KEYS[2], ARGV[2], '-', 'COUNT', ARGV[3])}
"#;

/// KEYS members, meta, channel, node index, user's rooms, user's presence,
/// occupied rooms. ARGV run, user, member json, index field, node, session,
/// room, prefix.
/// The member's status is the user's status across nodes. Answers 0, or 1
/// when the user became a member (cluster-wide), 2 when they are also the
/// room's only member (it was empty): the caller's webhook events.
const JOIN: &str = r#"
local res = 0
if redis.call('HSETNX', KEYS[4], ARGV[4], '1') == 1 then
  local n = redis.call('HINCRBY', KEYS[1], 'c:' .. ARGV[2], 1)
  if n == 1 then
    res = 1
    local st = agg(KEYS[6])
    local j = ARGV[3]
    if st ~= 'offline' then
      j = string.gsub(j, '"status":"%a+"', '"status":"' .. st .. '"', 1)
    end
    redis.call('HSET', KEYS[1], 'j:' .. ARGV[2], j)
    redis.call('SADD', KEYS[5], ARGV[7])
    redis.call('SADD', KEYS[7], ARGV[7])
    local v = redis.call('HINCRBY', KEYS[2], 'v', 1)
    redis.call('PUBLISH', KEYS[3], 'J' .. v .. ' ' .. ARGV[5] .. ' ' .. ARGV[6] ..
      ' {"type":"room:member_joined","room":"' .. ARGV[7] .. '","user":' .. j .. '}')
    -- A member who is not plainly online is also announced with their
    -- status (and activity), as on one node.
    local tail = redis.call('HGET', KEYS[6], '_t')
    if tail and (st ~= 'online' or string.find(tail, '"activity"', 1, true)) then
      announce(ARGV[8], ARGV[2], st, tail, {ARGV[7]})
    end
    if redis.call('HLEN', KEYS[1]) == 2 then res = 2 end
  end
end
return res
"#;

/// KEYS members, meta, channel, node index, user's rooms, occupied rooms.
/// ARGV run, user, index field, node, session, room. Answers 0, or 1 when
/// the user stopped being a member (cluster-wide), 2 when the room is now
/// empty: the caller's webhook events.
const LEAVE: &str = r#"
local res = 0
if redis.call('HDEL', KEYS[4], ARGV[3]) == 1 then
  local n = redis.call('HINCRBY', KEYS[1], 'c:' .. ARGV[2], -1)
  if n <= 0 then
    res = 1
    local j = redis.call('HGET', KEYS[1], 'j:' .. ARGV[2])
    redis.call('HDEL', KEYS[1], 'c:' .. ARGV[2], 'j:' .. ARGV[2])
    redis.call('SREM', KEYS[5], ARGV[6])
    local v = redis.call('HINCRBY', KEYS[2], 'v', 1)
    if j then
      redis.call('PUBLISH', KEYS[3], 'L' .. v .. ' ' .. ARGV[4] .. ' ' .. ARGV[5] ..
        ' {"type":"room:member_left","room":"' .. ARGV[6] .. '","user":' .. j .. '}')
    end
    if redis.call('HLEN', KEYS[1]) == 0 then
      res = 2
      redis.call('SREM', KEYS[6], ARGV[6])
    end
  end
end
return res
"#;

/// Publishes `user`'s status `st` to each room of `rooms` (once each),
/// recording it in the room's member list.
const ANNOUNCE: &str = r#"
local function announce(prefix, user, st, tail, rooms)
  local seen = {}
  for _, r in ipairs(rooms) do
    if not seen[r] then
      seen[r] = true
      local p = prefix .. ':{r:' .. r .. '}:'
      local j = redis.call('HGET', p .. 'mem', 'j:' .. user)
      if j then
        j = string.gsub(j, '"status":"%a+"', '"status":"' .. st .. '"', 1)
        redis.call('HSET', p .. 'mem', 'j:' .. user, j)
      end
      local v = redis.call('HINCRBY', p .. 'm', 'v', 1)
      redis.call('PUBLISH', p .. 'c', 'P' .. v .. ' {"type":"presence:update","room":"' .. r ..
        '","user":"' .. user .. '","status":"' .. st .. '","last_seen":' .. tail .. '}')
    end
  end
end
"#;

/// KEYS user's presence, user's rooms, node's users, users online.
/// ARGV run, node, user, this node's status ('' = no session here),
/// last_seen and activity json tail, prefix, force ('1': announce even if
/// the status across nodes is unchanged), then the rooms this node's
/// sessions were in. A user coming online is not announced (as on one
/// node): their rooms' `room:member_joined` says `online`, and a room
/// joined before this ran would otherwise get it or not by chance. Answers
/// {before, after}.
const PRESENCE: &str = r#"
local before = agg(KEYS[1])
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('SREM', KEYS[3], ARGV[3])
else
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[4], '_t', ARGV[5])
  redis.call('SADD', KEYS[3], ARGV[3])
end
local after = agg(KEYS[1])
if after == 'offline' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[4], ARGV[3])
else
  redis.call('SADD', KEYS[4], ARGV[3])
end
if (after ~= before and before ~= 'offline') or ARGV[7] == '1' then
  local rooms = redis.call('SMEMBERS', KEYS[2])
  for i = 8, #ARGV do table.insert(rooms, ARGV[i]) end
  announce(ARGV[6], ARGV[3], after, ARGV[5], rooms)
end
return {before, after}
"#;

/// KEYS nodes, figures, users online, occupied rooms. ARGV run, node, ttl
/// ms, this node's figures (`<connections> <sessions>`), prefix. Answers
/// {added, stale nodes, live nodes, their connections, their sessions,
/// users online, occupied rooms}: the cluster-wide figures. A few members
/// of each set are checked on every beat (a user with no status left, a
/// room with no member left are taken out), so a removal missed while
/// Redis was unreachable does not stay counted.
const HEARTBEAT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local since = now - tonumber(ARGV[3])
local added = redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], 0, since)
local live = redis.call('ZCOUNT', KEYS[1], '(' .. since, '+inf')
local conns, sessions = 0, 0
local kv = redis.call('HGETALL', KEYS[2])
for i = 1, #kv, 2 do
  local score = redis.call('ZSCORE', KEYS[1], kv[i])
  if score and tonumber(score) > since then
    local c, s = string.match(kv[i + 1], '^(%d+) (%d+)$')
    conns = conns + tonumber(c or '0')
    sessions = sessions + tonumber(s or '0')
  end
end
local p = ARGV[5]
for _, u in ipairs(redis.call('SRANDMEMBER', KEYS[3], 8)) do
  if redis.call('EXISTS', p .. ':{u:' .. u .. '}:p') == 0 then redis.call('SREM', KEYS[3], u) end
end
for _, r in ipairs(redis.call('SRANDMEMBER', KEYS[4], 8)) do
  if redis.call('EXISTS', p .. ':{r:' .. r .. '}:mem') == 0 then redis.call('SREM', KEYS[4], r) end
end
return {added, stale, live, conns, sessions, redis.call('SCARD', KEYS[3]), redis.call('SCARD', KEYS[4])}
"#;

/// KEYS nodes. ARGV run, dead node, prefix. Its users' statuses are
/// removed (offline announced where it was a user's last node), then its
/// memberships leave their rooms (announced likewise). Answers 0 when
/// another node did it first, else {1 + the memberships removed, what
/// changed cluster-wide for webhooks: `P\t<user>` offline, `L\t<room>\t<user>`
/// left, `V\t<room>` vacated}.
const REAP: &str = r#"
if redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then return 0 end
local p = ARGV[3]
local ev = {}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local users = p .. ':node:' .. ARGV[2] .. ':users'
for _, u in ipairs(redis.call('SMEMBERS', users)) do
  local key = p .. ':{u:' .. u .. '}:p'
  redis.call('HDEL', key, ARGV[2])
  if agg(key) == 'offline' then
    redis.call('DEL', key)
    redis.call('SREM', p .. ':online', u)
    table.insert(ev, 'P\t' .. u)
    announce(p, u, 'offline', tostring(now), redis.call('SMEMBERS', p .. ':{u:' .. u .. '}:rooms'))
  end
end
redis.call('DEL', users)
redis.call('HDEL', p .. ':figures', ARGV[2])
local idx = p .. ':node:' .. ARGV[2] .. ':idx'
local fields = redis.call('HKEYS', idx)
for _, f in ipairs(fields) do
  local tab = string.find(f, '\t', 1, true)
  if tab then
    local r, u = string.sub(f, 1, tab - 1), string.sub(f, tab + 1)
    local mem = p .. ':{r:' .. r .. '}:mem'
    local n = redis.call('HINCRBY', mem, 'c:' .. u, -1)
    if n <= 0 then
      local j = redis.call('HGET', mem, 'j:' .. u)
      redis.call('HDEL', mem, 'c:' .. u, 'j:' .. u)
      redis.call('SREM', p .. ':{u:' .. u .. '}:rooms', r)
      local v = redis.call('HINCRBY', p .. ':{r:' .. r .. '}:m', 'v', 1)
      if j then
        redis.call('PUBLISH', p .. ':{r:' .. r .. '}:c', 'L' .. v .. ' ' .. ARGV[2] ..
          ' - {"type":"room:member_left","room":"' .. r .. '","user":' .. j .. '}')
      end
      table.insert(ev, 'L\t' .. r .. '\t' .. u)
      if redis.call('HLEN', mem) == 0 then
        table.insert(ev, 'V\t' .. r)
        redis.call('SREM', p .. ':occupied', r)
      end
    end
  end
end
redis.call('DEL', idx)
local tail = '@' .. ARGV[2]
local done = {}
for _, f in ipairs(fields) do
  local tab = string.find(f, '\t', 1, true)
  local r = tab and string.sub(f, 1, tab - 1)
  if r and not done[r] then
    done[r] = true
    local ses = p .. ':{r:' .. r .. '}:ses'
    local kv = redis.call('HGETALL', ses)
    for k = 1, #kv, 2 do
      local a, u = kv[k], kv[k + 1]
      if string.sub(a, -#tail) == tail then
        redis.call('HDEL', ses, a)
        redis.call('PUBLISH', p .. ':{r:' .. r .. '}:c', 'E0 ' .. a .. ' ' .. u ..
          ' {"type":"room:session_left","room":"' .. r .. '","user":"' .. u ..
          '","session":"' .. a .. '"}')
      end
    end
  end
end
table.insert(ev, 1, #fields + 1)
return ev
"#;

/// KEYS sessions, channel. ARGV run, session address, user, '1' joined or
/// '0' left, frame. Records the session in the room's sessions (or
/// removes it) and says so on the room's channel.
const SESSION: &str = r#"
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
elseif redis.call('HDEL', KEYS[1], ARGV[2]) == 0 then
  return 0
end
redis.call('PUBLISH', KEYS[2], 'E' .. ARGV[4] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[5])
return 1
"#;

/// KEYS lease. ARGV run, node, ttl ms. Takes the lease when free, renews
/// it when held; answers 1 when this node holds it.
const LEASE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if cur == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
"#;

/// KEYS lease. ARGV run, node. Gives the lease up if this node holds it.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[2] then redis.call('DEL', KEYS[1]) end
return 1
"#;

/// KEYS user channel, inbox, dropped count. ARGV run, frame, inbox cap,
/// store when nobody got it ('1'). Answers {nodes that got it, stored}.
const DIRECT: &str = r#"
local n = redis.call('PUBLISH', KEYS[1], ARGV[2])
if n > 0 or ARGV[4] ~= '1' then return {n, 0} end
local cap = tonumber(ARGV[3])
if redis.call('XLEN', KEYS[2]) >= cap then redis.call('INCR', KEYS[3]) end
redis.call('XADD', KEYS[2], 'MAXLEN', cap, '*', 'f', ARGV[2])
return {0, 1}
"#;

/// KEYS inbox, user channel, dropped count. ARGV run. The stored
/// messages go out on the user's channel (to every node with a session of
/// the user, in order, once, after a `direct:offline` header) and leave
/// the inbox. Answers {count, dropped}.
const CLAIM: &str = r#"
local e = redis.call('XRANGE', KEYS[1], '-', '+')
redis.call('DEL', KEYS[1])
local d = tonumber(redis.call('GET', KEYS[3]) or '0')
redis.call('DEL', KEYS[3])
if #e > 0 or d > 0 then
  redis.call('PUBLISH', KEYS[2], '{"type":"direct:offline","count":' .. #e .. ',"dropped":' .. d .. '}')
end
for _, it in ipairs(e) do redis.call('PUBLISH', KEYS[2], it[2][2]) end
return {#e, d}
"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lua {
    Publish,
    Load,
    Range,
    Page,
    Join,
    Leave,
    Presence,
    Heartbeat,
    Reap,
    Direct,
    Claim,
    Lease,
    Release,
    DocLoad,
    DocRange,
    DocAppend,
    DocSnapshot,
    NoteAdd,
    NoteList,
    NoteRead,
    NoteCount,
    StateWrite,
    StateExpire,
    Session,
    SioSave,
    SioTake,
}

const ALL: [Lua; 26] = [
    Lua::Publish,
    Lua::Load,
    Lua::Range,
    Lua::Page,
    Lua::Join,
    Lua::Leave,
    Lua::Presence,
    Lua::Heartbeat,
    Lua::Reap,
    Lua::Direct,
    Lua::Claim,
    Lua::Lease,
    Lua::Release,
    Lua::DocLoad,
    Lua::DocRange,
    Lua::DocAppend,
    Lua::DocSnapshot,
    Lua::NoteAdd,
    Lua::NoteList,
    Lua::NoteRead,
    Lua::NoteCount,
    Lua::StateWrite,
    Lua::StateExpire,
    Lua::Session,
    Lua::SioSave,
    Lua::SioTake,
];

impl Lua {
    fn body(self) -> &'static str {
        match self {
            Lua::Publish => PUBLISH,
            Lua::Load => LOAD,
            Lua::Range => RANGE,
            Lua::Page => PAGE,
            Lua::Join => JOIN,
            Lua::Leave => LEAVE,
            Lua::Presence => PRESENCE,
            Lua::Heartbeat => HEARTBEAT,
            Lua::Reap => REAP,
            Lua::Direct => DIRECT,
            Lua::Claim => CLAIM,
            Lua::Lease => LEASE,
            Lua::Release => RELEASE,
            Lua::DocLoad => super::doc_scripts::DOC_LOAD,
            Lua::DocRange => super::doc_scripts::DOC_RANGE,
            Lua::DocAppend => super::doc_scripts::DOC_APPEND,
            Lua::DocSnapshot => super::doc_scripts::DOC_SNAPSHOT,
            Lua::NoteAdd => super::note_scripts::NOTE_ADD,
            Lua::NoteList => super::note_scripts::NOTE_LIST,
            Lua::NoteRead => super::note_scripts::NOTE_READ,
            Lua::NoteCount => super::note_scripts::NOTE_COUNT,
            Lua::StateWrite => super::state_scripts::STATE_WRITE,
            Lua::StateExpire => super::state_scripts::STATE_EXPIRE,
            Lua::Session => SESSION,
            Lua::SioSave => super::recovery_scripts::SIO_SAVE,
            Lua::SioTake => super::recovery_scripts::SIO_TAKE,
        }
    }

    fn source(self) -> String {
        match self {
            Lua::Publish | Lua::Load => format!("{META}{}", self.body()),
            Lua::Join | Lua::Presence | Lua::Reap => {
                format!("{AGG}{ANNOUNCE}{}", self.body())
            }
            _ => self.body().to_string(),
        }
    }

    pub fn sha(self) -> &'static str {
        static SHAS: OnceLock<Vec<String>> = OnceLock::new();
        let shas = SHAS.get_or_init(|| {
            ALL.iter()
                .map(|l| redis::Script::new(&l.source()).get_hash().to_string())
                .collect()
        });
        &shas[self as usize]
    }
}

/// Loads every script (after a NOSCRIPT: Redis restarted or was flushed).
pub async fn load_all(conn: &mut redis::aio::ConnectionManager) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for l in ALL {
        pipe.cmd("SCRIPT").arg("LOAD").arg(l.source()).ignore();
    }
    pipe.query_async::<()>(conn).await
}

/// The server's `run_id`; the scripts are loaded on the way.
pub async fn server_run_id(conn: &mut redis::aio::ConnectionManager) -> Result<String, String> {
    load_all(conn).await.map_err(|e| e.to_string())?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    info.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|s| s.trim().to_string())
        .ok_or_else(|| "INFO server has no run_id".into())
}

pub fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

pub fn text(v: &Value) -> Option<&str> {
    bytes(v).and_then(|b| std::str::from_utf8(b).ok())
}

pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        v => text(v)?.parse().ok(),
    }
}

pub fn array(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => &[],
    }
}

/// `{'stale', run_id}`: the caller's run id is out of date.
pub fn stale_run(v: &Value) -> Option<String> {
    match array(v) {
        [tag, run] if bytes(tag) == Some(b"stale") => text(run).map(str::to_string),
        _ => None,
    }
}

/// A publish's answer.
#[derive(Debug, PartialEq)]
pub enum Published {
    New {
        seq: u64,
        epoch: String,
    },
    /// The idempotency key names message `seq` of this epoch.
    Duplicate {
        seq: u64,
        epoch: String,
    },
}

pub fn published(v: &Value) -> Option<Published> {
    let a = array(v);
    let (tag, seq, epoch) = (bytes(a.first()?)?, int(a.get(1)?)?, text(a.get(2)?)?);
    let (seq, epoch) = (u64::try_from(seq).ok()?, epoch.to_string());
    match tag {
        b"ok" => Some(Published::New { seq, epoch }),
        b"dup" => Some(Published::Duplicate { seq, epoch }),
        _ => None,
    }
}

/// `(seq, frame)` from stream entries `[id, [field, value]]` (ids `<seq>-1`).
pub fn entries(v: &Value) -> Vec<(u64, Bytes)> {
    array(v)
        .iter()
        .filter_map(|e| {
            let [id, fields] = array(e) else { return None };
            let seq = text(id)?.split('-').next()?.parse().ok()?;
            let frame = bytes(array(fields).get(1)?)?;
            Some((seq, Bytes::copy_from_slice(frame)))
        })
        .collect()
}

/// A room as Redis has it.
pub struct Loaded {
    pub epoch: String,
    pub seq: u64,
    /// Member-list version: events at or below it are in `members`.
    pub version: u64,
    /// The newest entries, oldest first.
    pub entries: Vec<(u64, Bytes)>,
    /// Member json by user.
    pub members: Vec<Bytes>,
    /// The shared state: the last version given out, and the stored
    /// entries (`<version> <expires> <state:update frame>`).
    pub state_rev: u64,
    pub state: Vec<Bytes>,
    /// Every session in the room, on any node, with its user.
    pub sessions: Vec<(crate::ids::SessionAddr, crate::ids::UserId)>,
}

pub fn loaded(v: &Value) -> Option<Loaded> {
    let a = array(v);
    if bytes(a.first()?)? != b"ok" {
        return None;
    }
    let mut entries = entries(a.get(4)?);
    entries.reverse();
    let flat = array(a.get(5)?);
    let members = flat
        .chunks(2)
        .filter(|kv| kv.len() == 2 && bytes(&kv[0]).is_some_and(|k| k.starts_with(b"j:")))
        .filter_map(|kv| bytes(&kv[1]).map(Bytes::copy_from_slice))
        .collect();
    let sessions = array(a.get(8)?)
        .chunks(2)
        .filter_map(|kv| {
            let addr = crate::ids::SessionAddr::parse(text(kv.first()?)?)?;
            Some((addr, crate::ids::UserId::parse(text(kv.get(1)?)?)?))
        })
        .collect();
    Some(Loaded {
        sessions,
        epoch: text(a.get(1)?)?.to_string(),
        seq: u64::try_from(int(a.get(2)?)?).ok()?,
        version: u64::try_from(int(a.get(3)?)?).ok()?,
        entries,
        members,
        state_rev: a
            .get(6)
            .and_then(int)
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(0),
        state: a
            .get(7)
            .map(array)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| bytes(v).map(Bytes::copy_from_slice))
            .collect(),
    })
}

/// Stream entries as `(seq, frame)`, oldest first.
pub type Entries = Vec<(u64, Bytes)>;

/// A range read: the room's epoch and top seq now, and the entries.
pub fn range(v: &Value) -> Option<(String, u64, Entries)> {
    let a = array(v);
    if bytes(a.first()?)? != b"ok" {
        return None;
    }
    Some((
        text(a.get(1)?)?.to_string(),
        u64::try_from(int(a.get(2)?)?).ok()?,
        entries(a.get(3)?),
    ))
}

/// `{added, stale nodes, figures…}`: whether this node was added (it had
/// been taken for dead), the nodes found silent, the cluster-wide figures.
pub fn heartbeat_reply(v: &Value) -> (bool, Vec<String>, Option<super::Figures>) {
    let a = array(v);
    let added = a.first().and_then(int) == Some(1);
    let stale = a
        .get(1)
        .map(array)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| text(n).map(str::to_string))
        .collect();
    let n = |i: usize| a.get(i).and_then(int).and_then(|x| u64::try_from(x).ok());
    let figures = (|| {
        Some(super::Figures {
            nodes: n(2)?,
            connections: n(3)?,
            sessions: n(4)?,
            users_online: n(5)?,
            rooms: n(6)?,
        })
    })();
    (added, stale, figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_replies_are_read_into_types() {
        let s = |b: &str| Value::BulkString(b.as_bytes().to_vec());
        let v = Value::Array(vec![
            Value::Int(0),
            Value::Array(vec![s("b")]),
            Value::Int(2),
            Value::Int(7),
            Value::Int(9),
            Value::Int(5),
            Value::Int(3),
        ]);
        let (added, stale, f) = heartbeat_reply(&v);
        assert!(!added);
        assert_eq!(stale, ["b"]);
        let f = f.expect("figures");
        assert_eq!(
            (f.nodes, f.connections, f.sessions, f.users_online, f.rooms),
            (2, 7, 9, 5, 3)
        );
        // An older reply without figures still reads.
        let old = Value::Array(vec![Value::Int(1), Value::Array(vec![])]);
        assert_eq!(heartbeat_reply(&old), (true, Vec::new(), None));
    }

    #[test]
    fn every_script_has_its_own_hash() {
        let mut shas: Vec<&str> = ALL.iter().map(|l| l.sha()).collect();
        shas.sort();
        shas.dedup();
        assert_eq!(shas.len(), ALL.len());
    }

    #[test]
    fn replies_are_read_into_types() {
        let v = Value::Array(vec![
            Value::BulkString(b"ok".to_vec()),
            Value::Int(7),
            Value::BulkString(b"ab12".to_vec()),
        ]);
        assert_eq!(
            published(&v),
            Some(Published::New {
                seq: 7,
                epoch: "ab12".into()
            })
        );
        let stale = Value::Array(vec![
            Value::BulkString(b"stale".to_vec()),
            Value::BulkString(b"f00".to_vec()),
        ]);
        assert_eq!(stale_run(&stale).as_deref(), Some("f00"));
        assert_eq!(published(&stale), None);
        let e = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"5-1".to_vec()),
            Value::Array(vec![
                Value::BulkString(b"f".to_vec()),
                Value::BulkString(b"{}".to_vec()),
            ]),
        ])]);
        assert_eq!(entries(&e), vec![(5, Bytes::from_static(b"{}"))]);
    }
}
