//! Property tests: what is compressed inflates back to itself; arbitrary
//! input never panics the inflater nor makes it return more than the cap;
//! the offer parser never panics and accepts only valid parameters.

use super::*;
use proptest::prelude::*;

/// Text with repeats, like JSON frames, and arbitrary bytes.
fn message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..3000),
        (proptest::collection::vec(0u8..8, 1..40), 1usize..200).prop_map(|(word, n)| word
            .iter()
            .map(|b| b'a' + b)
            .collect::<Vec<_>>()
            .repeat(n)),
    ]
}

/// Made only of the letters `message()` repeats (8 letters: 3 bits each at most).
fn repetitive(msg: &[u8]) -> bool {
    msg.iter().all(|b| (b'a'..b'a' + 8).contains(b))
}

proptest! {
    #[test]
    fn round_trip(msg in message(), level in 1u32..=9) {
        let out = Outbound { threshold: 0, max: usize::MAX, level };
        let msg = Bytes::from(msg);
        match out.compress(&msg) {
            Some(c) => {
                prop_assert!(c.len() < msg.len());
                prop_assert_eq!(inflate(&c, msg.len()).unwrap(), msg.to_vec());
                // One byte less room than it needs: refused, not cut.
                if !msg.is_empty() {
                    prop_assert_eq!(inflate(&c, msg.len() - 1), Err(InflateError::TooBig));
                }
            }
            // Text of a few repeated letters always shrinks once it is long.
            None => prop_assert!(msg.len() < 200 || !repetitive(&msg)),
        }
    }

    #[test]
    fn arbitrary_input_is_bounded(data in proptest::collection::vec(any::<u8>(), 0..2000), cap in 0usize..5000) {
        if let Ok(v) = inflate(&data, cap) {
            prop_assert!(v.len() <= cap);
        }
    }

    #[test]
    fn offers_never_panic(s in "[ -~\t]{0,80}") {
        if let Some(list) = offer::parse_list(&s) {
            for e in list {
                if let Some(a) = offer::accept(&e.params) {
                    prop_assert!(a.server_max_window_bits.is_none_or(|b| (8..=15).contains(&b)));
                    // The answer is itself a well-formed list with one acceptable offer.
                    let again = offer::negotiate([a.answer().as_bytes()]);
                    prop_assert_eq!(again, Some(a));
                }
            }
        }
    }
}
