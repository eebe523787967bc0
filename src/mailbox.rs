//! Starting an actor whose mailbox is bounded from its first message.
//!
//! `Actor::start_in_arbiter` hands out the address at once with actix's
//! default capacity (16) and applies `set_mailbox_capacity` only when the
//! arbiter first runs the actor. A sender that pipes messages right behind
//! the one that started the actor (a join, then a burst) meets the small
//! mailbox, and actix parks it: every later `try_send` is refused until the
//! actor drains, which for a room loading its history is the whole load.

use actix::dev::channel;
use actix::prelude::*;

/// Starts `actor` on `arbiter` (or on the current thread) with a mailbox
/// that refuses `try_send` past `capacity` waiting messages.
pub fn start_bounded<A>(actor: A, capacity: usize, arbiter: Option<&ArbiterHandle>) -> Addr<A>
where
    A: Actor<Context = Context<A>> + Send,
{
    let (tx, rx) = channel::channel(capacity.clamp(1, usize::MAX >> 4));
    let run = move || {
        let ctx = Context::<A>::with_receiver(rx);
        actix::spawn(ctx.into_future(actor));
    };
    match arbiter {
        Some(a) => {
            a.spawn_fn(run);
        }
        None => run(),
    }
    Addr::new(tx)
}
