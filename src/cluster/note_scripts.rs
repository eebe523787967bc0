//! The notification scripts (`src/cluster/inbox.rs`, the Redis `notifications::Inbox`).

/// A user's notifications (src/cluster/inbox.rs). Keys share the user's
/// hash tag: `nm` (hash: `c` the last id), `nx` (stream, id `<id>-1`,
/// fields `f` sender json, `d` data json, `t` ts), `nu` (set of unread ids),
/// and the user's channel, where the frames go to every node holding a
/// session of theirs, in the order the script ran.
///
/// KEYS nm, nx, nu, channel. ARGV run, sender, data, ts, most kept.
/// Answers {id, unread}.
pub const NOTE_ADD: &str = r#"
local id = redis.call('HINCRBY', KEYS[1], 'c', 1)
redis.call('XADD', KEYS[2], id .. '-1', 'f', ARGV[2], 'd', ARGV[3], 't', ARGV[4])
redis.call('SADD', KEYS[3], id)
local extra = redis.call('XLEN', KEYS[2]) - tonumber(ARGV[5])
if extra > 0 then
  for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', extra)) do
    redis.call('SREM', KEYS[3], string.match(e[1], '^%d+'))
    redis.call('XDEL', KEYS[2], e[1])
  end
end
local n = redis.call('SCARD', KEYS[3])
redis.call('PUBLISH', KEYS[4], '{"type":"notification:new","notification":{"id":' .. id ..
  ',"from":' .. ARGV[2] .. ',"data":' .. ARGV[3] .. ',"ts":' .. ARGV[4] .. ',"read":false}}')
redis.call('PUBLISH', KEYS[4], '{"type":"notification:count","unread":' .. n .. '}')
return {id, n}
"#;

/// KEYS nu, channel. ARGV run, `<node> <session>`. Sends the unread count,
/// when not zero, to that one session (`S<node> <session> <frame>`, in
/// order with the user's other frames). Answers the count.
pub const NOTE_COUNT: &str = r#"
local n = redis.call('SCARD', KEYS[1])
if n > 0 then
  redis.call('PUBLISH', KEYS[2], 'S' .. ARGV[2] .. ' {"type":"notification:count","unread":' .. n .. '}')
end
return n
"#;

/// KEYS nx, nu. ARGV run, before (0: the newest), limit, unread only ('1').
/// Answers {{id, sender, data, ts, unread}…, more, unread count}, newest first.
pub const NOTE_LIST: &str = r#"
local hi = '+'
if ARGV[2] ~= '0' then hi = '(' .. ARGV[2] .. '-0' end
local limit, only = tonumber(ARGV[3]), ARGV[4] == '1'
local out, more = {}, 0
while more == 0 do
  local batch = redis.call('XREVRANGE', KEYS[1], hi, '-', 'COUNT', 128)
  if #batch == 0 then break end
  for _, e in ipairs(batch) do
    local id = string.match(e[1], '^%d+')
    local unread = redis.call('SISMEMBER', KEYS[2], id)
    if not only or unread == 1 then
      if #out == limit then more = 1 break end
      local f = e[2]
      out[#out + 1] = {tonumber(id), f[2], f[4], f[6], unread}
    end
  end
  hi = '(' .. batch[#batch][1]
end
return {out, more, redis.call('SCARD', KEYS[2])}
"#;

/// KEYS nu, channel. ARGV run, all ('1'), then ids. Marks them read and
/// sends the unread count to the user's sessions. Answers {changed, unread}.
pub const NOTE_READ: &str = r#"
local changed = 0
if ARGV[2] == '1' then
  changed = redis.call('SCARD', KEYS[1])
  redis.call('DEL', KEYS[1])
else
  for i = 3, #ARGV do changed = changed + redis.call('SREM', KEYS[1], ARGV[i]) end
end
local n = redis.call('SCARD', KEYS[1])
redis.call('PUBLISH', KEYS[2], '{"type":"notification:count","unread":' .. n .. '}')
return {changed, n}
"#;
