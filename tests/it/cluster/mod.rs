//! Several hub processes sharing rooms through a real `redis-server`
//! (docs/SCALEOUT.md): one numbering per room across nodes, recovery on any
//! node, cluster-wide members, direct messages, broadcasts and documents.

mod docs;
mod faults;
mod figures;
mod members;
mod messages;
mod mqtt;
pub mod redis;
mod rpc;
mod shards;
mod signal;
mod soak;
mod socketio;
mod state;
mod streams;
mod tls;
mod webhooks;
