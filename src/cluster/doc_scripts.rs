//! The collaborative documents' scripts (`src/document/cluster.rs`).

/// A document (src/document/cluster.rs). Keys: `h` (hash: `r` head rev,
/// `sr`/`st` snapshot rev and text), `x` (stream of ops, id `<rev>-1`,
/// field `j`: the op's json), `cl`/`cz` (per client id its last `seq rev`,
/// and the same ids by rev to bound them), `c` (channel).
///
/// KEYS h, x. ARGV run, ops kept before the snapshot.
/// Answers {'ok', head, snapshot rev, snapshot text, entries from the
/// oldest kept op}.
pub const DOC_LOAD: &str = r#"
local h = redis.call('HMGET', KEYS[1], 'r', 'sr', 'st')
local sr = tonumber(h[2] or '0')
local from = sr - tonumber(ARGV[2]) + 1
if from < 1 then from = 1 end
return {'ok', tonumber(h[1] or '0'), sr, h[3] or '',
  redis.call('XRANGE', KEYS[2], from .. '-0', '+')}
"#;

/// KEYS h, x. ARGV run, first rev wanted, count. Answers {'ok', head, entries}.
pub const DOC_RANGE: &str = r#"
local r = tonumber(redis.call('HGET', KEYS[1], 'r') or '0')
return {'ok', r, redis.call('XRANGE', KEYS[2], ARGV[2] .. '-0', '+', 'COUNT', ARGV[3])}
"#;

/// KEYS h, x, cl, cz, c. ARGV run, the head the ops follow, client ids
/// kept, then per op: client id, seq, json. Appends them only if the head
/// is still the expected one ({'conflict', head} otherwise) and none was
/// stored before ({'dup', index, seq, rev}: that client's last op), and
/// publishes each (`O<json>`). Answers {'ok', head}.
pub const DOC_APPEND: &str = r#"
local head = tonumber(redis.call('HGET', KEYS[1], 'r') or '0')
if head ~= tonumber(ARGV[2]) then return {'conflict', head} end
local n = (#ARGV - 3) / 3
for i = 0, n - 1 do
  local old = redis.call('HGET', KEYS[3], ARGV[4 + 3 * i])
  if old then
    local sp = string.find(old, ' ', 1, true)
    local s = tonumber(string.sub(old, 1, sp - 1))
    if s >= tonumber(ARGV[5 + 3 * i]) then
      return {'dup', i, s, tonumber(string.sub(old, sp + 1))}
    end
  end
end
for i = 0, n - 1 do
  local cid, j = ARGV[4 + 3 * i], ARGV[6 + 3 * i]
  head = head + 1
  redis.call('XADD', KEYS[2], head .. '-1', 'j', j)
  redis.call('HSET', KEYS[3], cid, ARGV[5 + 3 * i] .. ' ' .. head)
  redis.call('ZADD', KEYS[4], head, cid)
  redis.call('PUBLISH', KEYS[5], 'O' .. j)
end
redis.call('HSET', KEYS[1], 'r', head)
local extra = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[3])
if extra > 0 then
  local old = redis.call('ZPOPMIN', KEYS[4], extra)
  for k = 1, #old, 2 do redis.call('HDEL', KEYS[3], old[k]) end
end
return {'ok', head}
"#;

/// KEYS h, x. ARGV run, rev, text, ops kept before it. Stores a snapshot
/// newer than the stored one and trims the stream to the ops after it
/// and the kept ones. Answers 1 if stored.
pub const DOC_SNAPSHOT: &str = r#"
local rev = tonumber(ARGV[2])
if rev <= tonumber(redis.call('HGET', KEYS[1], 'sr') or '0') then return 0 end
redis.call('HSET', KEYS[1], 'sr', rev, 'st', ARGV[3])
local min = rev - tonumber(ARGV[4]) + 1
if min > 1 then redis.call('XTRIM', KEYS[2], 'MINID', min .. '-0') end
return 1
"#;
