//! Property tests: apply lengths, JSON round trips, compose, and convergence
//! of concurrent edits (TP1), over texts full of emoji and characters made
//! of several code points.

use super::testkit::ALPHABET;
use super::{char_len, Op, MAX_COUNT};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(0..ALPHABET.len(), 0..24)
        .prop_map(|ix| ix.into_iter().map(|i| ALPHABET[i]).collect())
}

/// What an op does, step by step; `op_on` turns it into an op for a text.
type Steps = Vec<(u8, u64, String)>;

fn steps() -> impl Strategy<Value = Steps> {
    prop::collection::vec((0u8..3, 1u64..6, text()), 0..16)
}

/// Builds an op on a text of `len` code points from `steps`, retaining
/// whatever the steps leave uncovered.
fn op_on(len: u64, steps: &Steps) -> Op {
    let mut op = Op::new();
    let mut left = len;
    for (kind, n, s) in steps {
        let n = (*n).min(left);
        match kind {
            0 => {
                op.retain(n);
                left -= n;
            }
            1 => {
                op.delete(n);
                left -= n;
            }
            _ => {
                op.insert(s);
            }
        }
    }
    op.retain(left);
    op
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn apply_gives_the_declared_lengths(t in text(), s in steps()) {
        let op = op_on(char_len(&t), &s);
        prop_assert_eq!(op.base_len(), char_len(&t));
        let out = op.apply(&t).unwrap();
        prop_assert_eq!(char_len(&out), op.target_len());
        // A text of another length is refused, never mangled.
        let longer = format!("{t}x");
        prop_assert!(op.apply(&longer).is_err());
    }

    #[test]
    fn json_round_trips_to_the_same_normalized_op(t in text(), s in steps()) {
        let op = op_on(char_len(&t), &s);
        let again = Op::parse(&op.to_json()).unwrap();
        prop_assert_eq!(&again, &op);
        prop_assert_eq!(again.to_json(), op.to_json());
    }

    #[test]
    fn compose_equals_applying_in_turn(t in text(), s1 in steps(), s2 in steps()) {
        let a = op_on(char_len(&t), &s1);
        let mid = a.apply(&t).unwrap();
        let b = op_on(char_len(&mid), &s2);
        let ab = a.compose(&b).unwrap();
        prop_assert_eq!((ab.base_len(), ab.target_len()), (a.base_len(), b.target_len()));
        prop_assert_eq!(ab.apply(&t).unwrap(), b.apply(&mid).unwrap());
    }

    #[test]
    fn transform_converges_tp1(t in text(), s1 in steps(), s2 in steps()) {
        let len = char_len(&t);
        let (a, b) = (op_on(len, &s1), op_on(len, &s2));
        let (a2, b2) = Op::transform(&a, &b).unwrap();
        let left = b2.apply(&a.apply(&t).unwrap()).unwrap();
        let right = a2.apply(&b.apply(&t).unwrap()).unwrap();
        prop_assert_eq!(&left, &right);
        // The transformed ops are as normal as parsed ones.
        prop_assert_eq!(Op::parse(&a2.to_json()).unwrap(), a2);
        prop_assert_eq!(Op::parse(&b2.to_json()).unwrap(), b2);
    }

    #[test]
    fn cursor_indexes_stay_inside_the_text(t in text(), s in steps(), at in 0u64..40) {
        let op = op_on(char_len(&t), &s);
        prop_assert!(op.transform_index(at) <= op.target_len());
    }

    /// Any array of integers, floats and strings: parsed exactly when every
    /// part is valid and the lengths fit, and never a panic.
    #[test]
    fn parser_accepts_exactly_valid_ops(
        parts in prop::collection::vec(prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            (-5i64..6).prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| format!("{f:?}")),
            Just("\"\"".to_string()),
            text().prop_map(|s| serde_json::to_string(&s).unwrap()),
        ], 0..8)
    ) {
        let json = format!("[{}]", parts.join(","));
        let expect_ok = {
            let (mut base, mut target, mut ok) = (0u128, 0u128, true);
            for p in &parts {
                match p.parse::<i128>() {
                    Ok(0) => ok = false,
                    Ok(n) if n.unsigned_abs() > MAX_COUNT as u128 => ok = false,
                    Ok(n) if n > 0 => { base += n as u128; target += n as u128; }
                    Ok(n) => base += n.unsigned_abs(),
                    Err(_) if p.starts_with('"') => {
                        ok &= p != "\"\"";
                        target += char_len(&serde_json::from_str::<String>(p).unwrap()) as u128;
                    }
                    Err(_) => ok = false,
                }
            }
            ok && base <= MAX_COUNT as u128 && target <= MAX_COUNT as u128
        };
        prop_assert_eq!(Op::parse(&json).is_ok(), expect_ok, "{}", json);
    }
}
