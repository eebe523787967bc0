//! Operational transformation for plain text, in the ot.js wire format.
//!
//! An [`Op`] is a list of parts walked over the document from its start: a
//! positive integer **retains** that many characters, a string **inserts**
//! itself, a negative integer **deletes** that many characters. Every length
//! counts Unicode code points (Rust `char`s), never UTF-16 units or bytes,
//! and text is never normalized: what a client inserts is what it gets back.
//!
//! Client JSON is read only by [`Op::parse`], which refuses anything that is
//! not a well-formed op (zero, floats, counts above [`MAX_COUNT`], empty
//! strings, sums that overflow) with an [`OpError`], never a panic, never a
//! wrapped count. Ops are kept normalized (adjacent parts of one kind merged,
//! an insert before an adjacent delete), so equal edits compare equal.
//!
//! [`Op::transform`] lets its first argument win insert ties: the server
//! passes the incoming op first, as ot.js does.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod proptests;
#[cfg(test)]
pub(crate) mod testkit;

/// The largest count or length an op may hold: 2^53 - 1, the largest
/// integer a JavaScript client represents exactly, so both sides agree.
pub const MAX_COUNT: u64 = (1 << 53) - 1;

/// One part of an op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Keep this many characters (at least 1).
    Retain(u64),
    /// Insert this text (not empty).
    Insert(String),
    /// Remove this many characters (at least 1).
    Delete(u64),
}

/// A text operation, normalized; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Op {
    parts: Vec<Part>,
    /// Length of the text the op applies to.
    base_len: u64,
    /// Length of the text it produces.
    target_len: u64,
}

/// Why an op was refused: always reported to clients as `invalid_op`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError(pub String);

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OpError {}

fn fail<T>(msg: impl Into<String>) -> Result<T, OpError> {
    Err(OpError(msg.into()))
}

/// Length of `s` in code points.
pub fn char_len(s: &str) -> u64 {
    s.chars().count() as u64
}

/// The byte offset `n` code points after byte offset `from` (or the end).
fn advance(s: &str, from: usize, n: u64) -> usize {
    if n == 0 {
        return from;
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    match s[from..].char_indices().nth(n) {
        Some((i, _)) => from + i,
        None => s.len(),
    }
}

/// Splits `s` after `n` code points.
fn split_chars(s: &str, n: u64) -> (&str, &str) {
    s.split_at(advance(s, 0, n))
}

impl Op {
    pub fn new() -> Op {
        Op::default()
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    pub fn base_len(&self) -> u64 {
        self.base_len
    }

    pub fn target_len(&self) -> u64 {
        self.target_len
    }

    /// True when applying the op changes nothing (only retains, or nothing).
    pub fn is_noop(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Retain(_)))
    }

    /// Appends a retain, merging with a retain before it. Lengths must stay
    /// within [`MAX_COUNT`]; [`Op::parse`] checks that for client input.
    pub fn retain(&mut self, n: u64) -> &mut Op {
        if n == 0 {
            return self;
        }
        self.base_len += n;
        self.target_len += n;
        match self.parts.last_mut() {
            Some(Part::Retain(m)) => *m += n,
            _ => self.parts.push(Part::Retain(n)),
        }
        self
    }

    /// Appends an insert. Next to a delete, the insert goes first, so that
    /// "insert then delete" and "delete then insert" are one op.
    pub fn insert(&mut self, s: &str) -> &mut Op {
        self.insert_counted(s, char_len(s))
    }

    fn insert_counted(&mut self, s: &str, len: u64) -> &mut Op {
        if s.is_empty() {
            return self;
        }
        self.target_len += len;
        let n = self.parts.len();
        match self.parts.last_mut() {
            Some(Part::Insert(t)) => t.push_str(s),
            Some(Part::Delete(_)) => match n.checked_sub(2).map(|i| &mut self.parts[i]) {
                Some(Part::Insert(t)) => t.push_str(s),
                _ => self.parts.insert(n - 1, Part::Insert(s.to_string())),
            },
            _ => self.parts.push(Part::Insert(s.to_string())),
        }
        self
    }

    /// Appends a delete, merging with a delete before it.
    pub fn delete(&mut self, n: u64) -> &mut Op {
        if n == 0 {
            return self;
        }
        self.base_len += n;
        match self.parts.last_mut() {
            Some(Part::Delete(m)) => *m += n,
            _ => self.parts.push(Part::Delete(n)),
        }
        self
    }

    /// Parses client JSON (`[3,"ab",-2]`) into a normalized op.
    pub fn parse(json: &str) -> Result<Op, OpError> {
        let mut de = serde_json::Deserializer::from_str(json);
        let op = de
            .deserialize_seq(OpVisitor)
            .and_then(|op| de.end().map(|_| op))
            .map_err(|e| OpError(format!("invalid op: {e}")))?;
        Ok(op)
    }

    /// The op as ot.js JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "[]".into())
    }

    /// Applies the op to `text`, whose length must be the op's base length.
    pub fn apply(&self, text: &str) -> Result<String, OpError> {
        let len = char_len(text);
        if len != self.base_len {
            return fail(format!(
                "the op applies to a text of {} characters, but the document has {len}",
                self.base_len
            ));
        }
        let extra: usize = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Insert(s) => s.len(),
                _ => 0,
            })
            .sum();
        let mut out = String::with_capacity(text.len() + extra);
        let mut at = 0;
        for p in &self.parts {
            match p {
                Part::Retain(n) => {
                    let end = advance(text, at, *n);
                    out.push_str(&text[at..end]);
                    at = end;
                }
                Part::Delete(n) => at = advance(text, at, *n),
                Part::Insert(s) => out.push_str(s),
            }
        }
        Ok(out)
    }

    /// The single op that has the effect of `self` then `next`.
    pub fn compose(&self, next: &Op) -> Result<Op, OpError> {
        if self.target_len != next.base_len {
            return fail(format!(
                "cannot compose: the first op produces {} characters, the second applies to {}",
                self.target_len, next.base_len
            ));
        }
        let mut out = Op::new();
        let (mut a, mut b) = (Cursor::new(&self.parts), Cursor::new(&next.parts));
        loop {
            match (a.peek(), b.peek()) {
                (None, None) => return Ok(out),
                (Some(Cur::Delete(d)), _) => {
                    out.delete(d);
                    a.take(d);
                }
                (_, Some(Cur::Insert(s, n))) => {
                    out.insert_counted(s, n);
                    b.take(n);
                }
                (None, _) | (_, None) => return fail("cannot compose: lengths do not line up"),
                (Some(x), Some(y)) => {
                    let m = x.len().min(y.len());
                    match (x, y) {
                        (Cur::Retain(_), Cur::Retain(_)) => {
                            out.retain(m);
                        }
                        (Cur::Insert(s, _), Cur::Retain(_)) => {
                            out.insert_counted(split_chars(s, m).0, m);
                        }
                        (Cur::Insert(..), Cur::Delete(_)) => {}
                        (Cur::Retain(_), Cur::Delete(_)) => {
                            out.delete(m);
                        }
                        _ => return fail("cannot compose: lengths do not line up"),
                    }
                    a.take(m);
                    b.take(m);
                }
            }
        }
    }

    /// Transforms two ops made on the same text into `(a', b')` such that
    /// `b'` after `a` equals `a'` after `b`. When both insert at the same
    /// place, `a`'s insert comes first.
    pub fn transform(a: &Op, b: &Op) -> Result<(Op, Op), OpError> {
        if a.base_len != b.base_len {
            return fail(format!(
                "the op applies to a text of {} characters, but the document had {} at its revision",
                a.base_len, b.base_len
            ));
        }
        let (mut a2, mut b2) = (Op::new(), Op::new());
        let (mut x, mut y) = (Cursor::new(&a.parts), Cursor::new(&b.parts));
        loop {
            match (x.peek(), y.peek()) {
                (None, None) => return Ok((a2, b2)),
                (Some(Cur::Insert(s, n)), _) => {
                    a2.insert_counted(s, n);
                    b2.retain(n);
                    x.take(n);
                }
                (_, Some(Cur::Insert(s, n))) => {
                    a2.retain(n);
                    b2.insert_counted(s, n);
                    y.take(n);
                }
                (None, _) | (_, None) => return fail("cannot transform: lengths do not line up"),
                (Some(p), Some(q)) => {
                    let m = p.len().min(q.len());
                    match (p, q) {
                        (Cur::Retain(_), Cur::Retain(_)) => {
                            a2.retain(m);
                            b2.retain(m);
                        }
                        (Cur::Delete(_), Cur::Retain(_)) => {
                            a2.delete(m);
                        }
                        (Cur::Retain(_), Cur::Delete(_)) => {
                            b2.delete(m);
                        }
                        _ => {} // both delete the same characters
                    }
                    x.take(m);
                    y.take(m);
                }
            }
        }
    }

    /// Where a cursor at `index` (in code points) stands after the op. An
    /// insert exactly at the cursor pushes it right, as in ot.js.
    pub fn transform_index(&self, index: u64) -> u64 {
        let (mut left, mut new) = (index as i128, index as i128);
        for p in &self.parts {
            match p {
                Part::Retain(n) => left -= *n as i128,
                Part::Insert(s) => new += char_len(s) as i128,
                Part::Delete(n) => {
                    new -= left.min(*n as i128).max(0);
                    left -= *n as i128;
                }
            }
            if left < 0 {
                break;
            }
        }
        new.clamp(0, self.target_len as i128) as u64
    }
}

/// A part with the count still to be consumed.
#[derive(Clone, Copy)]
enum Cur<'a> {
    Retain(u64),
    /// The remaining text and its length in code points.
    Insert(&'a str, u64),
    Delete(u64),
}

impl Cur<'_> {
    fn len(&self) -> u64 {
        match self {
            Cur::Retain(n) | Cur::Delete(n) | Cur::Insert(_, n) => *n,
        }
    }
}

/// Walks an op's parts, consuming them piecewise.
struct Cursor<'a> {
    parts: &'a [Part],
    /// The current part as far as not consumed yet.
    cur: Option<Cur<'a>>,
}

impl<'a> Cursor<'a> {
    fn new(parts: &'a [Part]) -> Cursor<'a> {
        let mut c = Cursor { parts, cur: None };
        c.load();
        c
    }

    fn load(&mut self) {
        self.cur = self.parts.split_first().map(|(p, rest)| {
            self.parts = rest;
            match p {
                Part::Retain(n) => Cur::Retain(*n),
                Part::Delete(n) => Cur::Delete(*n),
                Part::Insert(s) => Cur::Insert(s, char_len(s)),
            }
        });
    }

    fn peek(&self) -> Option<Cur<'a>> {
        self.cur
    }

    /// Consumes `n` (at most the current part's length).
    fn take(&mut self, n: u64) {
        let Some(c) = self.cur else { return };
        if n >= c.len() {
            return self.load();
        }
        self.cur = Some(match c {
            Cur::Retain(m) => Cur::Retain(m - n),
            Cur::Delete(m) => Cur::Delete(m - n),
            Cur::Insert(s, m) => Cur::Insert(split_chars(s, n).1, m - n),
        });
    }
}

impl Serialize for Op {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.parts.len()))?;
        for p in &self.parts {
            match p {
                Part::Retain(n) => seq.serialize_element(n)?,
                // n ≤ MAX_COUNT < 2^63: the negation cannot overflow.
                Part::Delete(n) => seq.serialize_element(&-(*n as i64))?,
                Part::Insert(t) => seq.serialize_element(t)?,
            }
        }
        seq.end()
    }
}

/// One part as read from JSON, before it joins an op.
enum RawPart {
    Count(u64, bool),
    Insert(String),
}

struct PartVisitor;

impl<'de> Visitor<'de> for PartVisitor {
    type Value = RawPart;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a positive integer (retain), a non-empty string (insert) or a negative integer (delete)")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<RawPart, E> {
        match n {
            0 => Err(E::custom("0 is neither a retain nor a delete")),
            n if n > MAX_COUNT => Err(E::custom(format!("{n} is larger than {MAX_COUNT}"))),
            n => Ok(RawPart::Count(n, false)),
        }
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<RawPart, E> {
        if n >= 0 {
            return self.visit_u64(n as u64);
        }
        match n.unsigned_abs() {
            m if m > MAX_COUNT => Err(E::custom(format!("{n} is smaller than -{MAX_COUNT}"))),
            m => Ok(RawPart::Count(m, true)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawPart, E> {
        Err(E::custom(format!("{v} is not an integer")))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<RawPart, E> {
        self.visit_string(s.to_string())
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<RawPart, E> {
        if s.is_empty() {
            return Err(E::custom("an insert may not be empty"));
        }
        Ok(RawPart::Insert(s))
    }
}

impl<'de> Deserialize<'de> for RawPart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawPart, D::Error> {
        d.deserialize_any(PartVisitor)
    }
}

struct OpVisitor;

impl<'de> Visitor<'de> for OpVisitor {
    type Value = Op;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of retains, inserts and deletes")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Op, A::Error> {
        let mut op = Op::new();
        let too_long = || de::Error::custom(format!("the op is longer than {MAX_COUNT}"));
        while let Some(part) = seq.next_element::<RawPart>()? {
            match part {
                RawPart::Count(n, delete) => {
                    let base = op.base_len.checked_add(n).filter(|l| *l <= MAX_COUNT);
                    let target = op.target_len.checked_add(n).filter(|l| *l <= MAX_COUNT);
                    match (base, target, delete) {
                        (Some(_), _, true) => op.delete(n),
                        (Some(_), Some(_), false) => op.retain(n),
                        _ => return Err(too_long()),
                    };
                }
                RawPart::Insert(s) => {
                    let n = char_len(&s);
                    if op.target_len.checked_add(n).is_none_or(|l| l > MAX_COUNT) {
                        return Err(too_long());
                    }
                    op.insert_counted(&s, n);
                }
            }
        }
        Ok(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(json: &str) -> Op {
        Op::parse(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    #[test]
    fn parses_and_normalizes() {
        let o = op(r#"[2,1,"a","b",-1,-2,"c",3]"#);
        assert_eq!(o.to_json(), r#"[3,"abc",-3,3]"#);
        assert_eq!((o.base_len(), o.target_len()), (9, 9));
        assert_eq!(op("[]").to_json(), "[]");
        assert_eq!(op(r#"[-1,"x"]"#).to_json(), r#"["x",-1]"#);
        assert_eq!(op(r#"["👨‍👩‍👧"]"#).target_len(), 5);
    }

    #[test]
    fn refuses_hostile_ops_without_panicking() {
        for bad in [
            "[0]",
            "[1.5]",
            "[1.0]",
            "[1e3]",
            "[-0.5]",
            r#"[""]"#,
            "[18446744073709551615,1]",
            "[18446744073709551616]",
            "[-9223372036854775808]",
            "[9007199254740992]",
            "[-9007199254740992]",
            "[9007199254740991,1]",
            "[9007199254740991,-1]",
            r#"[9007199254740991,"x"]"#,
            "[1e400]",
            "[true]",
            "[null]",
            "[[1]]",
            r#"[{"a":1}]"#,
            "{}",
            "3",
            r#""abc""#,
            "[1,",
            "[1] 2",
            r#"["\ud800"]"#,
        ] {
            assert!(Op::parse(bad).is_err(), "{bad} was accepted");
        }
        assert_eq!(op("[9007199254740991]").base_len(), MAX_COUNT);
        assert_eq!(op("[-9007199254740991]").base_len(), MAX_COUNT);
    }

    #[test]
    fn applies_in_code_points() {
        let text = "a😀é\u{301}b";
        assert_eq!(char_len(text), 5);
        assert_eq!(op(r#"[1,-1,"🎉",3]"#).apply(text).unwrap(), "a🎉é\u{301}b");
        assert_eq!(op(r#"[3,-1,1]"#).apply(text).unwrap(), "a😀éb");
        assert!(op("[4]").apply(text).is_err());
        assert!(op("[6]").apply(text).is_err());
        assert_eq!(op(r#"["x"]"#).apply("").unwrap(), "x");
    }

    #[test]
    fn composes_and_transforms() {
        let a = op(r#"[1,"X",2]"#);
        let b = op(r#"[-2,"Y",2]"#);
        let ab = a.compose(&b).unwrap();
        assert_eq!(
            ab.apply("abc").unwrap(),
            b.apply(&a.apply("abc").unwrap()).unwrap()
        );
        assert!(b.compose(&b).is_err());

        // Both insert at 1: the first argument's insert comes first.
        let (x, y) = (op(r#"[1,"A",2]"#), op(r#"[1,"B",2]"#));
        let (x2, y2) = Op::transform(&x, &y).unwrap();
        let left = y2.apply(&x.apply("abc").unwrap()).unwrap();
        let right = x2.apply(&y.apply("abc").unwrap()).unwrap();
        assert_eq!((left.as_str(), right.as_str()), ("aABbc", "aABbc"));
        assert!(Op::transform(&x, &op("[2]")).is_err());
    }

    #[test]
    fn transforms_cursor_indexes() {
        let o = op(r#"[2,"xy",-2,1]"#);
        assert_eq!(o.transform_index(0), 0);
        assert_eq!(o.transform_index(2), 4);
        assert_eq!(o.transform_index(3), 4);
        assert_eq!(o.transform_index(5), 5);
        assert_eq!(o.transform_index(99), 5);
    }
}
