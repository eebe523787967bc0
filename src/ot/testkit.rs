//! Test support: a seeded random generator whose sequence never changes
//! (the golden file and the simulation's seeds depend on it), random texts
//! over an alphabet full of multi-code-point characters, and random ops.

use super::Op;

/// Characters the tests build texts from: ASCII, accents as one or two code
/// points, astral emoji (two UTF-16 units), ZWJ families, flags, skin tones,
/// CJK, a newline, a zero-width joiner on its own.
pub const ALPHABET: &[&str] = &[
    "a",
    "b",
    "Z",
    " ",
    "\n",
    "é",
    "e\u{301}",
    "ß",
    "中",
    "😀",
    "🎉",
    "👨‍👩‍👧",
    "🇫🇷",
    "👍🏽",
    "\u{200d}",
    "𝄞",
];

/// splitmix64: small, fast, and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `p` percent.
    pub fn chance(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    pub fn text(&mut self, max_pieces: u64) -> String {
        let n = self.below(max_pieces + 1);
        (0..n)
            .map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize])
            .collect()
    }
}

/// A random op on a text of `len` code points: runs of retains, inserts and
/// deletes until the whole text is covered.
pub fn random_op(rng: &mut Rng, len: u64) -> Op {
    let mut op = Op::new();
    let mut left = len;
    while left > 0 {
        let n = 1 + rng.below(left.min(6));
        match rng.below(3) {
            0 => {
                op.retain(n);
                left -= n;
            }
            1 => {
                op.delete(n);
                left -= n;
            }
            _ => {
                op.insert(&rng.text(3));
            }
        }
    }
    if rng.chance(30) {
        op.insert(&rng.text(3));
    }
    op
}

/// A random op that edits few places of a longer text, as a person types.
pub fn typing_op(rng: &mut Rng, len: u64) -> Op {
    let mut op = Op::new();
    let at = rng.below(len + 1);
    op.retain(at);
    let del = if rng.chance(30) {
        rng.below((len - at).min(4) + 1)
    } else {
        0
    };
    if rng.chance(80) || del == 0 {
        let s = rng.text(4);
        op.insert(if s.is_empty() { "x" } else { &s });
    }
    op.delete(del);
    op.retain(len - at - del);
    op
}
