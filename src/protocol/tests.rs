//! Parsing and encoding of the native protocol.

use super::*;

fn code(text: &str) -> ErrorCode {
    parse(text.as_bytes()).expect_err(text).code
}

#[test]
fn parses_each_frame() {
    let r = parse(br#"{"type":"room:join","room":"general","since":41,"id":"j1"}"#).unwrap();
    assert_eq!(r.id.as_deref(), Some("j1"));
    match r.frame {
        ClientFrame::Join {
            room, since, epoch, ..
        } => {
            assert_eq!(room.as_str(), "general");
            assert_eq!(since, Some(41));
            assert_eq!(epoch, None);
        }
        f => panic!("{f:?}"),
    }
    match parse(br#"{"type":"message:send","room":"r","data":{"a":[1,2,"x"]},"id":"c1"}"#)
        .unwrap()
        .frame
    {
        ClientFrame::Send { data, .. } => assert_eq!(data.get(), r#"{"a":[1,2,"x"]}"#),
        f => panic!("{f:?}"),
    }
    match parse(br#"{"type":"message:send","room":"r","data":null}"#)
        .unwrap()
        .frame
    {
        ClientFrame::Send { data, .. } => assert_eq!(data.get(), "null"),
        f => panic!("{f:?}"),
    }
    assert!(matches!(
        parse(br#"{"type":"ping"}"#).unwrap().frame,
        ClientFrame::Ping
    ));
    assert!(matches!(
        parse(br#"{"type":"typing:stop","room":"r"}"#)
            .unwrap()
            .frame,
        ClientFrame::Typing { on: false, .. }
    ));
    assert!(matches!(
        parse(br#"{"type":"presence:update","status":"busy","activity":"coding"}"#)
            .unwrap()
            .frame,
        ClientFrame::Presence {
            status: Status::Busy,
            ..
        }
    ));
    assert!(matches!(
        parse(br#"{"type":"direct:send","to":"bob","data":"hi"}"#)
            .unwrap()
            .frame,
        ClientFrame::Direct { .. }
    ));
    assert!(matches!(
        parse(br#"{"type":"auth","token":"x.y.z"}"#).unwrap().frame,
        ClientFrame::Auth { .. }
    ));
}

#[test]
fn classifies_bad_input() {
    assert_eq!(code("{"), ErrorCode::BadJson);
    assert_eq!(code("not json"), ErrorCode::BadJson);
    assert_eq!(code(""), ErrorCode::BadJson);
    assert_eq!(code("[1,2]"), ErrorCode::BadRequest);
    assert_eq!(code("\"str\""), ErrorCode::BadRequest);
    assert_eq!(code("{}"), ErrorCode::BadRequest);
    assert_eq!(code(r#"{"type":5}"#), ErrorCode::BadRequest);
    assert_eq!(code(r#"{"type":"nope"}"#), ErrorCode::UnknownType);
    assert_eq!(code(r#"{"type":"nope","extra":1}"#), ErrorCode::UnknownType);
    assert_eq!(code(r#"{"type":"room:join"}"#), ErrorCode::BadRequest);
    assert_eq!(
        code(r#"{"type":"room:join","room":"bad room"}"#),
        ErrorCode::InvalidRoom
    );
    assert_eq!(
        code(r#"{"type":"room:join","room":""}"#),
        ErrorCode::InvalidRoom
    );
    assert_eq!(
        code(r#"{"type":"room:join","room":"r","since":-1}"#),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(r#"{"type":"room:join","room":"r","since":1e400}"#),
        ErrorCode::BadJson
    );
    assert_eq!(
        code(r#"{"type":"room:join","room":"r","since":18446744073709551616}"#),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(r#"{"type":"message:send","room":"r"}"#),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(r#"{"type":"message:send","room":"r","data":1,"since":3}"#),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(r#"{"type":"ping","bogus":true}"#),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(r#"{"type":"presence:update","status":"offline"}"#),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(r#"{"type":"presence:update","status":"sleepy"}"#),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(r#"{"type":"direct:send","to":"a b","data":1}"#),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(r#"{"type":"ping","type":"ping"}"#),
        ErrorCode::BadRequest
    );
}

#[test]
fn notification_frames() {
    match parse(br#"{"type":"notification:list","before":9,"limit":5,"unread":true,"id":"n"}"#)
        .unwrap()
        .frame
    {
        ClientFrame::NotificationList {
            before,
            limit,
            unread_only,
        } => {
            assert_eq!((before, limit, unread_only), (Some(9), 5, true))
        }
        f => panic!("{f:?}"),
    }
    assert!(matches!(
        parse(br#"{"type":"notification:list"}"#).unwrap().frame,
        ClientFrame::NotificationList {
            before: None,
            limit: 20,
            unread_only: false
        }
    ));
    assert!(matches!(
        parse(br#"{"type":"notification:read","ids":[1,2]}"#).unwrap().frame,
        ClientFrame::NotificationRead { mark: crate::protocol::Mark::Ids(ref v) } if v == &[1, 2]
    ));
    assert!(matches!(
        parse(br#"{"type":"notification:read","all":true}"#)
            .unwrap()
            .frame,
        ClientFrame::NotificationRead {
            mark: crate::protocol::Mark::All
        }
    ));
    for bad in [
        r#"{"type":"notification:list","limit":0}"#,
        r#"{"type":"notification:list","limit":101}"#,
        r#"{"type":"notification:list","before":-1}"#,
        r#"{"type":"notification:list","ids":[1]}"#,
        r#"{"type":"notification:read"}"#,
        r#"{"type":"notification:read","ids":[]}"#,
        r#"{"type":"notification:read","all":false}"#,
        r#"{"type":"notification:read","ids":[1],"all":true}"#,
        r#"{"type":"notification:read","ids":[1.5]}"#,
        r#"{"type":"notification:read","ids":"1"}"#,
    ] {
        assert_eq!(code(bad), ErrorCode::BadRequest, "{bad}");
    }
    let many = format!(
        r#"{{"type":"notification:read","ids":[{}]}}"#,
        vec!["1"; MAX_READ_IDS + 1].join(",")
    );
    assert_eq!(code(&many), ErrorCode::BadRequest);
}

#[test]
fn error_keeps_the_frames_id() {
    let e = parse(br#"{"type":"room:join","room":"bad room","id":"x7"}"#).unwrap_err();
    assert_eq!(e.id.as_deref(), Some("x7"));
    let e = parse(br#"{"type":"whatever","id":"x8","more":[1]}"#).unwrap_err();
    assert_eq!(
        (e.code, e.id.as_deref()),
        (ErrorCode::UnknownType, Some("x8"))
    );
    let e = parse(format!(r#"{{"type":"ping","id":"{}"}}"#, "i".repeat(MAX_ID_LEN + 1)).as_bytes())
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
}

#[test]
fn hostile_input_never_panics() {
    // A top-level array is refused as "not an object" before its end is read.
    let deep = "[".repeat(100_000);
    assert_eq!(code(&deep), ErrorCode::BadRequest);
    let deep_obj =
        r#"{"type":"message:send","room":"r","data":"#.to_string() + &"[".repeat(100_000);
    assert!(parse(deep_obj.as_bytes()).is_err());
    assert_eq!(code(r#"{"type":"ping""#), ErrorCode::BadJson);
    let deep_data = format!(
        r#"{{"type":"message:send","room":"r","data":{}}}"#,
        "[".repeat(10_000) + &"]".repeat(10_000)
    );
    assert_eq!(code(&deep_data), ErrorCode::BadRequest);
    let ok_depth = "[".repeat(MAX_DATA_DEPTH) + &"]".repeat(MAX_DATA_DEPTH);
    assert!(
        parse(format!(r#"{{"type":"message:send","room":"r","data":{ok_depth}}}"#).as_bytes())
            .is_ok()
    );
    assert_eq!(json_depth(r#"{"a":"[[[[\"[[","b":[{}]}"#), 3);
    assert_eq!(code("\u{0}\u{1}\u{2}"), ErrorCode::BadJson);
    assert!(parse(&[0xff, 0xfe, b'{', b'}']).is_err());
    assert!(parse(br#"{"type":"message:send","room":"r","data":"\ud800"}"#).is_err());
    let long_room = format!(r#"{{"type":"room:join","room":"{}"}}"#, "a".repeat(10_000));
    assert_eq!(code(&long_room), ErrorCode::InvalidRoom);
}

#[test]
fn encodes_raw_data_verbatim() {
    let from = From {
        user: UserId::parse("u1").unwrap(),
        name: "U".into(),
    };
    let room = RoomName::parse("general").unwrap();
    let data = RawValue::from_string(r#"{"text":"hé \"q\""}"#.into()).unwrap();
    let b = encode(&ServerFrame::Message {
        room: &room,
        seq: 58,
        from: &from,
        data: &data,
        ts: 1,
        id: Some("c1"),
        priority: None,
    });
    assert_eq!(
        std::str::from_utf8(&b).unwrap(),
        r#"{"type":"message:receive","room":"general","seq":58,"from":{"user":"u1","name":"U"},"data":{"text":"hé \"q\""},"ts":1,"id":"c1"}"#
    );
    // The class is the frame's last field, read back by a suffix compare
    // (several nodes); an `id` or `data` that looks like one is not taken.
    use crate::delivery::{Class, Priority};
    assert_eq!(Class::of_frame(&b), Class::Normal);
    for (p, want) in [
        (Priority::Critical, Class::Critical),
        (Priority::Low, Class::Low),
        (Priority::High, Class::Normal),
    ] {
        let f = encode(&ServerFrame::Message {
            room: &room,
            seq: 1,
            from: &from,
            data: &data,
            ts: 1,
            id: Some(r#"x","priority":"low"}"#),
            priority: Some(p),
        });
        assert_eq!(Class::of_frame(&f), want);
    }
    let tricky = encode(&ServerFrame::Message {
        room: &room,
        seq: 1,
        from: &from,
        data: &data,
        ts: 1,
        id: Some(r#","priority":"critical"}"#),
        priority: None,
    });
    assert_eq!(Class::of_frame(&tricky), Class::Normal);
    let v = encode(&ServerFrame::VolatileMessage {
        room: &room,
        from: &from,
        data: &data,
        ts: 1,
        id: None,
        priority: Some(Priority::Critical),
        volatile: true,
    });
    assert_eq!(Class::of_frame(&v), Class::Volatile);
}

#[test]
fn numbers_a_double_cannot_hold_are_refused_in_data() {
    for bad in ["1e999999", "-1e400", "[1,2E+309]", r#"{"a":{"b":9e9999}}"#] {
        assert!(unreadable_number(bad).is_some(), "{bad}");
        let frame = format!(r#"{{"type":"message:send","room":"r","id":"n","data":{bad}}}"#);
        let e = parse(frame.as_bytes()).unwrap_err();
        assert_eq!(
            (e.code, e.id.as_deref()),
            (ErrorCode::BadRequest, Some("n")),
            "{bad}"
        );
        assert!(e.message.contains("range of a double"), "{}", e.message);
    }
    let digits = "9".repeat(400);
    assert_eq!(
        unreadable_number(&format!("[true,{digits}]")),
        Some(digits.as_str())
    );
    // Readable numbers, underflow to zero, and the same text in strings pass.
    for ok in [
        "1.5e308",
        "-0",
        "1e-999999",
        "123456789012345678901234567890",
        r#"["1e999999",true,false,null,{"e":"E"}]"#,
        r#"{"\"1e999":"\\"}"#,
    ] {
        assert_eq!(unreadable_number(ok), None, "{ok}");
        assert_eq!(data_problem(ok), None, "{ok}");
    }
}

#[test]
fn history_get_defaults_and_caps_its_limit() {
    let page = |text: &[u8]| match parse(text).map(|r| r.frame) {
        Ok(ClientFrame::HistoryGet { room, page }) => {
            Ok((room.to_string(), page.before, page.limit))
        }
        Ok(f) => panic!("{f:?}"),
        Err(e) => Err(e.code),
    };
    assert_eq!(
        page(br#"{"type":"history:get","room":"general"}"#),
        Ok(("general".into(), None, crate::scrollback::DEFAULT_LIMIT))
    );
    assert_eq!(
        page(br#"{"type":"history:get","room":"r","before":58,"limit":9999999999999}"#),
        Ok(("r".into(), Some(58), crate::scrollback::MAX_LIMIT))
    );
    assert_eq!(
        page(br#"{"type":"history:get","room":"r","limit":0}"#).map(|p| p.2),
        Ok(0)
    );
    for bad in [
        &br#"{"type":"history:get","room":"r","since":1}"#[..],
        br#"{"type":"history:get","room":"r","before":1.5}"#,
        br#"{"type":"history:get"}"#,
    ] {
        assert_eq!(
            page(bad),
            Err(ErrorCode::BadRequest),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(
        page(br#"{"type":"history:get","room":"a b"}"#),
        Err(ErrorCode::InvalidRoom)
    );
}

/// Every type the unknown-type error lists is one the parsers know (a frame
/// with only its `type` is at worst a `bad_request`), and every family's own
/// list is in it.
#[test]
fn every_listed_client_type_is_parsed() {
    for t in CLIENT_TYPES {
        let frame = format!(r#"{{"type":"{t}"}}"#);
        if let Err(e) = parse(frame.as_bytes()) {
            assert_ne!(e.code, ErrorCode::UnknownType, "{t}: {}", e.message);
        }
    }
    for t in crate::streams::wire::STREAM_TYPES {
        assert!(CLIENT_TYPES.contains(&t), "{t} is not in CLIENT_TYPES");
    }
    let e = parse(br#"{"type":"nope"}"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownType);
    assert!(e.message.contains("stream:cancel"), "{}", e.message);
}
