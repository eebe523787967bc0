//! The room actor's unit tests.

use super::*;
use crate::hub::Hub;
use crate::outbox::{self, Evict, Sink};
use crate::presence::Presence;

/// Every member's connection gone at once (distinct users, so each removal
/// announces a departure): evictions must not recurse, or a large room
/// overflows its thread's stack and takes the server down.
#[test]
fn a_mass_drop_out_is_handled_without_recursion() {
    actix::System::new().block_on(async {
        let sink = Sink.start().recipient::<Evict>();
        let presence = Presence::new(Duration::from_secs(60)).start();
        let limits = Hub::test_limits();
        let hub = Hub::for_tests(presence);
        let ttl = Duration::from_secs(5);
        let mut room = Room::new(
            RoomName::parse("big").unwrap(),
            super::Owner::of(hub),
            History::new(limits),
            ttl,
        );
        let mut bodies = Vec::new();
        for i in 0..50_000u64 {
            let (outbox, _close, queue) = outbox::queue(4, sink.clone());
            bodies.push(queue);
            let user = UserId::parse(&format!("u{i}")).unwrap();
            let slot = UserSlot {
                name: "n".into(),
                status: Status::Online,
                activity: None,
                info: None,
                sessions: 1,
            };
            room.users.insert(user.clone(), slot);
            room.typing.insert(user.clone(), Instant::now() + ttl);
            let member = Member {
                session: SessionId(i),
                user,
                name: "n".into(),
                outbox,
                info: None,
            };
            room.members.insert(SessionId(i), member);
        }
        drop(bodies);
        assert_eq!(room.broadcast(&Bytes::from_static(b"{}"), None), 0);
        assert!(room.members.is_empty() && room.users.is_empty() && room.typing.is_empty());
    });
}
