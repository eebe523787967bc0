//! Collaborative documents: the Hub opens Document actors and frees idle ones.

use super::*;

/// Open a document (access was checked by the session): starts its actor on
/// a room arbiter if needed, forwards the open, answers the actor's address.
#[derive(Message)]
#[rtype(result = "Result<Addr<crate::document::Document>, HubError>")]
pub struct OpenDoc {
    pub doc: RoomName,
    pub open: crate::document::Open,
}

impl Handler<OpenDoc> for Hub {
    type Result = Result<Addr<crate::document::Document>, HubError>;

    fn handle(&mut self, msg: OpenDoc, ctx: &mut Context<Self>) -> Self::Result {
        let arbiter = if self.arbiters.is_empty() {
            None
        } else {
            self.next_arbiter = (self.next_arbiter + 1) % self.arbiters.len();
            Some(&self.arbiters[self.next_arbiter])
        };
        match self.docs.as_mut() {
            Some(d) => Ok(d.open(msg.doc, msg.open, ctx.address(), arbiter)),
            None => Err(HubError::new(
                ErrorCode::Unavailable,
                "documents are not enabled",
            )),
        }
    }
}

/// From a document that no one has open and that has nothing left to store.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DocIdle {
    pub addr: Addr<crate::document::Document>,
    pub doc: RoomName,
    pub hub_ops: u64,
}

impl Handler<DocIdle> for Hub {
    type Result = ();

    fn handle(&mut self, msg: DocIdle, _: &mut Context<Self>) {
        if let Some(d) = self.docs.as_mut() {
            d.idle(msg);
        }
    }
}
