//! The golden cases shared with the JavaScript client: generated here from a
//! fixed seed, committed as `tests/js/ot_golden.json`, and checked there by
//! `tests/js/ot.test.mjs`. This test fails if regenerating would change the
//! file (then, if the change is intended:
//! `SWITCHBOARD_WRITE_GOLDEN=1 cargo test --release --lib golden`).

use super::testkit::{random_op, Rng};
use super::{char_len, Op};
use serde_json::{json, Value};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/ot_golden.json");

/// Ops the JS parser must refuse as the Rust one does. (Floats with an
/// integral value, like `1.0`, are refused here but read as integers by
/// JavaScript's `JSON.parse`, so they are not shared.)
const INVALID: &[&str] = &[
    "[0]",
    "[1.5]",
    "[-0.5]",
    r#"[""]"#,
    "[18446744073709551615,1]",
    "[-9223372036854775808]",
    "[9007199254740992]",
    "[9007199254740991,1]",
    "[9007199254740991,-1]",
    r#"[9007199254740991,"x"]"#,
    "[true]",
    "[null]",
    "[[1]]",
    r#"[{"a":1}]"#,
    "{}",
    "3",
    r#""abc""#,
    r#"["\ud800"]"#,
];

fn generate() -> String {
    let mut rng = Rng::new(0x005e_ed0f_0ca1);
    let mut sections: Vec<(&str, Vec<Value>)> = Vec::new();

    let mut apply = Vec::new();
    for _ in 0..60 {
        let doc = rng.text(10);
        let op = random_op(&mut rng, char_len(&doc));
        let result = op.apply(&doc).expect("apply");
        apply.push(json!({"doc": doc, "op": op, "result": result}));
    }
    sections.push(("apply", apply));

    let mut compose = Vec::new();
    for _ in 0..60 {
        let doc = rng.text(10);
        let a = random_op(&mut rng, char_len(&doc));
        let mid = a.apply(&doc).expect("apply");
        let b = random_op(&mut rng, char_len(&mid));
        let ab = a.compose(&b).expect("compose");
        compose.push(
            json!({"doc": doc, "a": a, "b": b, "ab": ab, "result": ab.apply(&doc).expect("apply")}),
        );
    }
    sections.push(("compose", compose));

    let mut transform = Vec::new();
    for i in 0..80 {
        let doc = rng.text(10);
        let a = random_op(&mut rng, char_len(&doc));
        // Every fourth case inserts at the same place in both ops: the tie rule.
        let b = if i % 4 == 0 {
            let mut b = Op::new();
            let at = a.parts().first().map_or(0, |p| match p {
                super::Part::Retain(n) => *n,
                _ => 0,
            });
            b.retain(at).insert(&rng.text(2)).insert("!");
            b.retain(char_len(&doc) - at);
            b
        } else {
            random_op(&mut rng, char_len(&doc))
        };
        let (a2, b2) = Op::transform(&a, &b).expect("transform");
        let result = b2.apply(&a.apply(&doc).expect("a")).expect("b'");
        transform.push(
            json!({"doc": doc, "a": a, "b": b, "a_prime": a2, "b_prime": b2, "result": result}),
        );
    }
    sections.push(("transform", transform));

    let mut index = Vec::new();
    for _ in 0..40 {
        let doc = rng.text(8);
        let op = random_op(&mut rng, char_len(&doc));
        let at = rng.below(char_len(&doc) + 1);
        index.push(json!({"doc": doc, "op": op, "index": at, "result": op.transform_index(at)}));
    }
    sections.push(("transform_index", index));

    let mut utf16 = Vec::new();
    for _ in 0..20 {
        let text = rng.text(8);
        let mut offsets = vec![0u64];
        for c in text.chars() {
            offsets.push(offsets.last().copied().unwrap_or(0) + c.len_utf16() as u64);
        }
        utf16.push(json!({"text": text, "utf16_offsets": offsets}));
    }
    sections.push(("utf16", utf16));

    let invalid: Vec<Value> = INVALID.iter().map(|s| json!(s)).collect();
    sections.push(("invalid", invalid));

    let mut out = String::from("{\n");
    for (i, (name, cases)) in sections.iter().enumerate() {
        out.push_str(&format!("  {}: [\n", json!(name)));
        for (j, c) in cases.iter().enumerate() {
            let sep = if j + 1 < cases.len() { "," } else { "" };
            out.push_str(&format!("    {c}{sep}\n"));
        }
        let sep = if i + 1 < sections.len() { "," } else { "" };
        out.push_str(&format!("  ]{sep}\n"));
    }
    out.push_str("}\n");
    out
}

#[test]
fn golden_file_is_current() {
    let fresh = generate();
    // Every shared invalid op is refused here too.
    for bad in INVALID {
        assert!(Op::parse(bad).is_err(), "{bad}");
    }
    if std::env::var("SWITCHBOARD_WRITE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(PATH, &fresh).expect("write the golden file");
    }
    let committed = std::fs::read_to_string(PATH).unwrap_or_default();
    assert!(
        committed == fresh,
        "{PATH} is not what the Rust side generates; if the change is intended, run \
         SWITCHBOARD_WRITE_GOLDEN=1 cargo test --release --lib golden and commit the file"
    );
}
