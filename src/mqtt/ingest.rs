//! Who numbers broker messages into mapped rooms: the seam between the Hub
//! (which hands each broker message for a mapped room to the room) and
//! whatever decides which node does so.
//!
//! Every bridge subscribes to the mapped topics, so with several nodes every
//! node gets each broker message; exactly one must number it into the room.
//! [`Local`] is the one-node engine: its bridge is the only one, and it
//! always ingests. With Redis (`cluster::Cluster`) the node holding the
//! MQTT lease ingests and the others drop their copies (docs/SCALEOUT.md).

/// What the Hub asks before numbering a broker message into a mapped room.
pub trait Ingestion: Send + Sync + 'static {
    /// Whether this node numbers broker messages into mapped rooms now.
    fn ingests(&self) -> bool;
    /// This node's bridge maps rooms and can ingest whenever `ready` says
    /// so (it is connected to the broker).
    fn offer(&self, ready: Box<dyn Fn() -> bool + Send + Sync>);
}

/// One node: its own bridge ingests everything it gets.
pub struct Local;

impl Ingestion for Local {
    fn ingests(&self) -> bool {
        true
    }

    fn offer(&self, _: Box<dyn Fn() -> bool + Send + Sync>) {}
}
