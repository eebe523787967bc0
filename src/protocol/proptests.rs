//! Property tests of the client-frame parser: arbitrary bytes and mutated
//! valid frames never panic and always come back typed; whatever `data` is
//! accepted, a strict JSON reader can read.

use super::*;
use proptest::prelude::*;

/// One valid frame of each kind.
const VALID: [&str; 14] = [
    r#"{"type":"auth","token":"abc.def.ghi"}"#,
    r#"{"type":"room:join","room":"general","since":41,"id":"j1"}"#,
    r#"{"type":"room:leave","room":"general"}"#,
    r#"{"type":"message:send","room":"r","id":"m","data":{"t":"hé","n":[1,-2.5e3,true,null]}}"#,
    r#"{"type":"direct:send","to":"bob","data":"hi \"there\" \u00e9"}"#,
    r#"{"type":"typing:start","room":"r"}"#,
    r#"{"type":"presence:update","status":"away","activity":"lunch"}"#,
    r#"{"type":"ping","id":"p"}"#,
    r#"{"type":"mqtt:publish","topic":"a/b","payload":{"on":true},"qos":1,"retain":true}"#,
    r#"{"type":"mqtt:subscribe","filter":"a/+/c"}"#,
    r#"{"type":"notification:list","limit":5,"unread":true}"#,
    r#"{"type":"notification:read","ids":[1,2,3]}"#,
    r#"{"type":"doc:open","doc":"d1"}"#,
    r#"{"type":"doc:op","doc":"d1","rev":3,"op":[2,"ab",-1],"id":"o"}"#,
];

/// Every answer is typed: a request, or a stable code with a message.
fn check_typed(text: &[u8]) {
    match parse(text) {
        Ok(req) => {
            assert!(req.id.as_ref().is_none_or(|i| i.len() <= MAX_ID_LEN));
            if let ClientFrame::Send { data, .. } | ClientFrame::Direct { data, .. } = &req.frame {
                let strict = serde_json::from_str::<serde_json::Value>(data.get());
                assert!(strict.is_ok(), "accepted unreadable data {}", data.get());
            }
        }
        Err(e) => {
            assert!(ErrorCode::ALL.contains(&e.code));
            assert!(!e.message.is_empty());
            assert!(e.id.as_ref().is_none_or(|i| i.len() <= MAX_ID_LEN));
        }
    }
}

/// A mutation: replace, insert or delete a byte, or cut the text short.
fn mutate(text: &str, edits: &[(u8, usize, u8)]) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    for &(kind, at, byte) in edits {
        let at = at % (b.len() + 1);
        match kind {
            0 if at < b.len() => b[at] = byte,
            1 => b.insert(at, byte),
            2 if at < b.len() => {
                b.remove(at);
            }
            3 => b.truncate(at),
            _ => {}
        }
    }
    b
}

/// Bytes that matter to JSON, plus anything.
fn json_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(b"{}[]\":,\\-+.eE0123456789 tfnu".to_vec()),
        any::<u8>(),
    ]
}

/// A JSON number: mantissa of up to 6 digits, exponent from -400 to 400,
/// sometimes a long run of digits instead.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            any::<bool>(),
            0u32..1_000_000,
            0u32..7,
            -400i32..400,
            any::<bool>()
        )
            .prop_map(|(neg, m, point, exp, upper)| {
                let digits = m.to_string();
                let cut = (point as usize).min(digits.len() - 1) + 1;
                let e = if upper { 'E' } else { 'e' };
                let sign = if neg { "-" } else { "" };
                match &digits[cut..] {
                    "" => format!("{sign}{digits}{e}{exp}"),
                    frac => format!("{sign}{}.{frac}{e}{exp:+}", &digits[..cut]),
                }
            }),
        (1usize..400).prop_map(|n| format!("1{}", "0".repeat(n))),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
    ]
}

/// JSON data holding numbers, strings that look like numbers, and nesting.
fn data() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        number(),
        number().prop_map(|n| format!("\"{n}\"")),
        Just("true".to_string()),
        Just("\"e\\\"1e999\"".to_string()),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(inner, 0..4).prop_map(|v| {
                let fields: Vec<String> = v
                    .iter()
                    .enumerate()
                    .map(|(i, x)| format!("\"k{i}e5\":{x}"))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_get_a_typed_answer(bytes in prop::collection::vec(json_byte(), 0..256)) {
        check_typed(&bytes);
    }

    #[test]
    fn mutated_frames_get_a_typed_answer(
        which in 0..VALID.len(),
        edits in prop::collection::vec((0u8..4, any::<usize>(), json_byte()), 1..6),
    ) {
        check_typed(&mutate(VALID[which], &edits));
    }

    /// `data` is accepted exactly when a strict parser reads it: numbers past
    /// a double are refused, underflow and numbers inside strings are not.
    #[test]
    fn data_is_accepted_iff_a_strict_reader_reads_it(d in data()) {
        let strict = serde_json::from_str::<serde_json::Value>(&d).is_ok();
        prop_assert_eq!(data_problem(&d).is_none(), strict, "{}", d);
        let frame = format!(r#"{{"type":"message:send","room":"r","data":{d}}}"#);
        prop_assert_eq!(parse(frame.as_bytes()).is_ok(), strict, "{}", d);
    }
}
