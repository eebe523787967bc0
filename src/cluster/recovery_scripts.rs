//! Socket.IO connection state recovery across nodes
//! (`src/socketio/recovery.rs`): what a dropped connection knew, kept under
//! its `pid` for the recovery window, so the client may come back on any
//! node. One hash per `pid`: `u` the user, `t` the state.

/// KEYS k. ARGV run, user, state, window ms.
pub const SIO_SAVE: &str = r#"
redis.call('HSET', KEYS[1], 'u', ARGV[2], 't', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"#;

/// KEYS k. ARGV run, user. Answers the state and forgets it if it was the
/// user's (a `pid` recovers one connection); else nil, and it stays.
pub const SIO_TAKE: &str = r#"
local v = redis.call('HMGET', KEYS[1], 'u', 't')
if v[1] ~= ARGV[2] then return false end
redis.call('DEL', KEYS[1])
return v[2]
"#;
