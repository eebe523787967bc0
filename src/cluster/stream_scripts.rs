//! The stream scripts (`src/room/cluster/streams.rs`). A room's live
//! streams are the hash `<prefix>:{r:<room>}:sx`: per stream `<id>` (its
//! start event: producer, from, meta, ts), `<id>#t` (the text so far) and
//! `<id>#n` (chunks so far). Each script checks, changes the hash and
//! publishes the event (`A<json>`) on the room's channel in one step, so
//! the hash and the channel always agree: a node that reads the hash after
//! subscribing drops the events it already has by their chunk index.
//! The hash expires `ttl` ms after its last change (streams of a room no
//! node serves any more do not stay forever). Sent with EVAL: the scripts
//! are short and run once per chunk.

/// KEYS hash, channel. ARGV stream, start event json, most streams, ttl.
/// Answers 'ok', 'exists' or 'full'.
pub const START: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 'exists' end
if redis.call('HLEN', KEYS[1]) >= 3 * tonumber(ARGV[3]) then return 'full' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], ARGV[1] .. '#t', '', ARGV[1] .. '#n', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', KEYS[2], 'A' .. ARGV[2])
return 'ok'
"#;

/// The producer check shared by the scripts below: ARGV[1] stream, ARGV[2]
/// producer (`''`: anyone, for the server's own errors).
const OWNER: &str = r#"
local head = redis.call('HGET', KEYS[1], ARGV[1])
if not head then return 'unknown' end
if ARGV[2] ~= '' and cjson.decode(head)['producer'] ~= ARGV[2] then return 'forbidden' end
"#;

/// KEYS hash, channel. ARGV stream, producer, chunk, most bytes, ttl, then
/// the event's tail (`"stream":…,"chunk":…}`). Answers 'ok' (with the
/// index), 'unknown', 'forbidden' or 'too_large'.
pub fn data() -> String {
    format!(
        "{OWNER}{}",
        r#"
local t = redis.call('HGET', KEYS[1], ARGV[1] .. '#t')
if string.len(t) + string.len(ARGV[3]) > tonumber(ARGV[4]) then return 'too_large' end
redis.call('HSET', KEYS[1], ARGV[1] .. '#t', t .. ARGV[3])
local n = redis.call('HINCRBY', KEYS[1], ARGV[1] .. '#n', 1) - 1
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PUBLISH', KEYS[2], 'A{"e":"data","index":' .. n .. ',' .. ARGV[6])
return {'ok', n}
"#
    )
}

/// KEYS hash, channel. ARGV stream, producer, event json. Ends the stream
/// (an end or an error): answers {'ok', start event, text} or a refusal.
pub fn finish() -> String {
    format!(
        "{OWNER}{}",
        r#"
local t = redis.call('HGET', KEYS[1], ARGV[1] .. '#t')
redis.call('HDEL', KEYS[1], ARGV[1], ARGV[1] .. '#t', ARGV[1] .. '#n')
redis.call('PUBLISH', KEYS[2], 'A' .. ARGV[3])
return {'ok', head, t}
"#
    )
}

/// KEYS hash, channel. ARGV stream, '' , event json: a cancel, by anyone.
pub fn cancel() -> String {
    format!(
        "{OWNER}{}",
        r#"
if not string.find(head, '"cancelled":true', 1, true) then
  redis.call('HSET', KEYS[1], ARGV[1], string.sub(head, 1, -2) .. ',"cancelled":true}')
end
redis.call('PUBLISH', KEYS[2], 'A' .. ARGV[3])
return 'ok'
"#
    )
}
