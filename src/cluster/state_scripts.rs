//! The shared-state scripts (`src/room/cluster/state.rs`). A room's state
//! is the hash `<prefix>:{r:<room>}:st` (per key: `<version> <expires or
//! 0> <state:update frame>`) and the counter `<prefix>:{r:<room>}:sv` (the
//! last version the room gave out), so every write is decided by one
//! script on the room's keys: two nodes can never both win a version.
//! Time is Redis's (`TIME`), the same for every node.

/// KEYS state hash, counter, channel. ARGV run, key, expected version,
/// frame head (`{"type":"state:update","room":…,"key":…,` and, for a set,
/// `"value":…,`), by json, ttl ms (0: none), most keys, `1` for a delete.
/// Answers {'ok', version}, {'conflict', current version, stored entry or
/// ''}, or {'full'}; publishes `S<frame>` on the room's channel.
pub const STATE_WRITE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function live(val)
  local e = tonumber(string.match(val, '^%d+ (%d+) '))
  return e == 0 or e > now
end
local cur = redis.call('HGET', KEYS[1], ARGV[2])
local cv, seen = 0, ''
if cur and live(cur) then
  cv = tonumber(string.match(cur, '^(%d+) '))
  seen = cur
end
if cv ~= tonumber(ARGV[3]) then return {'conflict', cv, seen} end
local del = ARGV[8] == '1'
if not del and cv == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[7]) then
  local n = 0
  for _, val in ipairs(redis.call('HVALS', KEYS[1])) do
    if live(val) then n = n + 1 end
  end
  if n >= tonumber(ARGV[7]) then return {'full'} end
end
local v = redis.call('INCR', KEYS[2])
local exp = 0
if not del and tonumber(ARGV[6]) > 0 then exp = now + tonumber(ARGV[6]) end
local f = ARGV[4] .. '"version":' .. v .. ',"by":' .. ARGV[5] .. ',"ts":' .. now
if exp > 0 then f = f .. ',"expires":' .. exp end
if del then
  f = f .. ',"deleted":true}'
  redis.call('HDEL', KEYS[1], ARGV[2])
else
  f = f .. '}'
  redis.call('HSET', KEYS[1], ARGV[2], v .. ' ' .. exp .. ' ' .. f)
end
redis.call('PUBLISH', KEYS[3], 'S' .. f)
return {'ok', v}
"#;

/// KEYS state hash, counter, channel. ARGV run, key, version, frame head.
/// Deletes the key if it still has that version and its time is up (any
/// node may try; one succeeds). Answers 1 if deleted.
pub const STATE_EXPIRE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HGET', KEYS[1], ARGV[2])
if not cur then return 0 end
local v, e = string.match(cur, '^(%d+) (%d+) ')
e = tonumber(e)
if tonumber(v) ~= tonumber(ARGV[3]) or e == 0 or e > now then return 0 end
redis.call('HDEL', KEYS[1], ARGV[2])
local nv = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', KEYS[3], 'S' .. ARGV[4] .. '"version":' .. nv .. ',"ts":' .. now ..
  ',"deleted":true,"expired":true}')
return 1
"#;
