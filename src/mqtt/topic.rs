//! MQTT topic names and topic filters: validated once, at the edge, into
//! types, and matched with the MQTT 3.1.1 wildcard rules (section 4.7).
//!
//! - A **topic name** (what is published) has no wildcards.
//! - A **topic filter** (what is subscribed) may use `+` for exactly one level
//!   and `#` for any number of remaining levels (including none: `a/#` matches
//!   `a`); each must fill its whole level, and `#` must be last.
//! - Filters that start with a wildcard do not match topics starting with `$`
//!   (`$SYS/…` is the broker's own).

use std::fmt;
use std::sync::Arc;

/// Longest topic name or filter accepted from clients and configuration, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;
/// Most levels (`/`-separated parts) in a topic name or filter.
pub const MAX_TOPIC_LEVELS: usize = 32;

/// Why a topic or filter was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicError(pub &'static str);

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError("a topic must not be empty"));
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError("a topic is at most 256 bytes"));
    }
    if s.split('/').count() > MAX_TOPIC_LEVELS {
        return Err(TopicError("a topic has at most 32 levels"));
    }
    // MQTT forbids U+0000 and discourages the other control characters; a
    // topic that carries them cannot be shown or logged safely.
    if s.chars().any(char::is_control) {
        return Err(TopicError("a topic must not contain control characters"));
    }
    Ok(())
}

/// A topic name a client may publish to: 1-256 bytes of UTF-8 (Rust strings
/// always are), at most 32 levels, no control characters, no `+` or `#`, and
/// not starting with `$` (reserved for the broker).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(Arc<str>);

impl TopicName {
    pub fn parse(s: &str) -> Result<TopicName, TopicError> {
        check_common(s)?;
        if s.contains(['+', '#']) {
            return Err(TopicError(
                "wildcards (+ and #) are not allowed in a topic name",
            ));
        }
        if s.starts_with('$') {
            return Err(TopicError(
                "topics starting with $ are reserved for the broker",
            ));
        }
        Ok(TopicName(Arc::from(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A topic filter: like a topic name, but `+` and `#` may each fill a whole
/// level, and `#` only the last one. May start with `$` (to watch `$SYS/#`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(Arc<str>);

impl TopicFilter {
    pub fn parse(s: &str) -> Result<TopicFilter, TopicError> {
        check_common(s)?;
        let levels: Vec<&str> = s.split('/').collect();
        for (i, level) in levels.iter().enumerate() {
            if level.contains(['+', '#']) && level.len() > 1 {
                return Err(TopicError("+ and # must fill a whole level"));
            }
            if *level == "#" && i != levels.len() - 1 {
                return Err(TopicError("# must be the last level"));
            }
        }
        Ok(TopicFilter(Arc::from(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Does this filter match the topic `topic` (a name, never a filter)?
    pub fn matches(&self, topic: &str) -> bool {
        matches(&self.0, topic)
    }

    /// Does this filter match every topic that `other` matches? Exact for the
    /// filters this type admits; used to keep the broker's subscriptions free
    /// of overlap and to check client filters against the patterns a token allows.
    pub fn covers(&self, other: &TopicFilter) -> bool {
        covers(&self.0, &other.0)
    }
}

crate::ids::show_as_str!(TopicName, TopicFilter);

fn wildcard(level: &str) -> bool {
    level == "+" || level == "#"
}

/// MQTT matching of a (valid) filter against a topic name.
fn matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/').peekable();
    let mut t = topic.split('/');
    if topic.starts_with('$') && f.peek().is_some_and(|l| wildcard(l)) {
        return false;
    }
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Does `g` match every topic `f` matches?
fn covers(g: &str, f: &str) -> bool {
    let mut gl = g.split('/').peekable();
    let mut fl = f.split('/').peekable();
    // A wildcard first level of `g` cannot reach `$` topics; if `f` names one, no.
    if gl.peek().is_some_and(|l| wildcard(l)) && fl.peek().is_some_and(|l| l.starts_with('$')) {
        return false;
    }
    let mut first = true;
    loop {
        let (g, f) = (gl.next(), fl.next());
        let at_first = std::mem::replace(&mut first, false);
        match (g, f) {
            // `#` takes the rest of f, whatever it is (also nothing: `a/#` ⊇ `a`).
            (Some("#"), _) => return true,
            // Every topic has a first level, so `+/#` matches what `#` does;
            // deeper, `a/#` also matches `a`, which `a/+/#` does not.
            (Some("+"), Some("#")) => return at_first && gl.next() == Some("#"),
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b && b != "+" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The filters of `wanted` that no other filter of `wanted` covers: the set to
/// subscribe to at the broker so that no message comes twice for one
/// subscription overlap of the kind `a/#` + `a/+/b`. Of two filters that cover
/// each other (`#` and `+/#`), the smaller string is kept.
pub fn minimal_cover<'a, I>(wanted: I) -> Vec<TopicFilter>
where
    I: IntoIterator<Item = &'a TopicFilter>,
{
    let mut all: Vec<&TopicFilter> = wanted.into_iter().collect();
    all.sort();
    all.dedup();
    let kept = all.iter().filter(|f| {
        !all.iter()
            .any(|g| g != *f && g.covers(f) && (!f.covers(g) || *g < **f))
    });
    kept.map(|f| (*f).clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> TopicFilter {
        TopicFilter::parse(s).unwrap()
    }

    #[test]
    fn names_are_validated() {
        assert!(TopicName::parse("sensors/kitchen/temp").is_ok());
        assert!(TopicName::parse("a").is_ok());
        assert!(TopicName::parse("/leading/and/trailing/").is_ok());
        assert!(TopicName::parse("ünïcode/ok").is_ok());
        for bad in [
            "",
            "a/+/b",
            "a/#",
            "+",
            "a+b",
            "$SYS/x",
            "tab\there",
            "nul\0",
        ] {
            assert!(TopicName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(TopicName::parse(&"x".repeat(MAX_TOPIC_LEN)).is_ok());
        assert!(TopicName::parse(&"x".repeat(MAX_TOPIC_LEN + 1)).is_err());
        let levels = |n: usize| vec!["a"; n].join("/");
        assert!(TopicName::parse(&levels(MAX_TOPIC_LEVELS)).is_ok());
        assert!(TopicName::parse(&levels(MAX_TOPIC_LEVELS + 1)).is_err());
    }

    #[test]
    fn filters_are_validated() {
        for ok in ["#", "+", "a/#", "a/+/b", "+/+", "$SYS/#", "a//b", "/"] {
            assert!(TopicFilter::parse(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "a/#/b", "a#", "a/b+", "++", "#/", "a/##"] {
            assert!(TopicFilter::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wildcard_matching_follows_mqtt() {
        let cases = [
            ("sensors/#", "sensors", true),
            ("sensors/#", "sensors/a", true),
            ("sensors/#", "sensors/a/b/c", true),
            ("sensors/#", "sensorsx", false),
            ("sensors/+", "sensors/a", true),
            ("sensors/+", "sensors/a/b", false),
            ("sensors/+", "sensors", false),
            ("sensors/+", "sensors/", true),
            ("+/+", "/x", true),
            ("+", "/x", false),
            ("#", "anything/at/all", true),
            ("#", "$SYS/uptime", false),
            ("+/uptime", "$SYS/uptime", false),
            ("$SYS/#", "$SYS/uptime", true),
            ("alicia/+/+", "alicia/kitchen/temp", true),
            ("alicia/+/+", "alicia/kitchen", false),
            ("a/b", "a/b", true),
            ("a/b", "a/b/c", false),
            ("a/+/c", "a//c", true),
        ];
        for (filter, topic, want) in cases {
            assert_eq!(f(filter).matches(topic), want, "{filter} vs {topic}");
        }
    }

    #[test]
    fn covering() {
        let yes = [
            ("#", "a/b"),
            ("#", "+/#"),
            ("+/#", "#"),
            ("a/#", "a"),
            ("a/#", "a/+/b"),
            ("a/+", "a/b"),
            ("a/+/+", "a/b/+"),
            ("a/b", "a/b"),
        ];
        for (g, s) in yes {
            assert!(f(g).covers(&f(s)), "{g} should cover {s}");
        }
        let no = [
            ("a/+", "a/#"),
            ("a/+", "a"),
            ("a/b", "a/+"),
            ("a/+/c", "a/b/+"),
            ("#", "$SYS/#"),
            ("+/x", "$SYS/x"),
            ("a", "a/#"),
            ("a/+/#", "a/#"),
        ];
        for (g, s) in no {
            assert!(!f(g).covers(&f(s)), "{g} should not cover {s}");
        }
    }

    /// `covers` agrees with `matches` on every small filter pair and topic.
    #[test]
    fn covering_agrees_with_matching() {
        fn all(parts: &[&str], max: usize) -> Vec<String> {
            let mut out: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
            let mut last = out.clone();
            for _ in 1..max {
                last = last
                    .iter()
                    .flat_map(|l| parts.iter().map(move |p| format!("{l}/{p}")))
                    .collect();
                out.extend(last.iter().cloned());
            }
            out
        }
        let filters: Vec<TopicFilter> = all(&["a", "b", "+", "#"], 3)
            .iter()
            .filter_map(|s| TopicFilter::parse(s).ok())
            .collect();
        let topics = all(&["a", "b", ""], 4);
        for g in &filters {
            for f in &filters {
                let semantic = topics.iter().all(|t| !f.matches(t) || g.matches(t));
                assert_eq!(g.covers(f), semantic, "{g} covers {f}?");
            }
        }
    }

    #[test]
    fn minimal_cover_drops_covered_filters() {
        let set = [f("alicia/+/+"), f("alicia/#"), f("b/+"), f("b/+"), f("c/x")];
        assert_eq!(minimal_cover(&set), vec![f("alicia/#"), f("b/+"), f("c/x")]);
        let mutual = [f("+/#"), f("#")];
        assert_eq!(minimal_cover(&mutual), vec![f("#")]);
        let partial = [f("a/+/c"), f("a/b/+")];
        assert_eq!(minimal_cover(&partial).len(), 2);
    }
}
