//! One canonical request path for the router and for every rule that looks
//! at the path (CORS, the WebSocket endpoint, the dev routes, static files).
//!
//! actix-web's router matches a percent-decoded path, while `req.path()` is
//! the raw one, so a rule reading the raw path could be walked around with
//! `/api/%64ev/token`. Instead, before anything else sees a request, its path
//! is rewritten to the canonical form, which the router's own decoding leaves
//! with the same segments and the same letters:
//!
//! - escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded
//!   (`%64` → `d`, `%2e` → `.`); every other escape stays as sent (`%2F` is
//!   not a separator, `%3A` stays for the router to decode into a parameter);
//! - repeated slashes collapse (`//api` → `/api`);
//! - `.` and `..` segments are resolved as RFC 3986 `remove_dot_segments`
//!   does (`..` never climbs above `/`).
//!
//! The router decodes all escapes but `%2F`, `%25` and `%2B`; after this,
//! what is left for it to decode can only yield characters outside the
//! unreserved set and never `/`, so no route literal (they are all letters,
//! digits and `/`) and no segment boundary can differ between the two views.

use actix_http::{RequestHead, Uri};
use std::borrow::Cow;

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes `%XX` escapes of unreserved characters; leaves all else as it is.
fn decode_unreserved(raw: &str) -> Cow<'_, str> {
    if !raw.contains('%') {
        return Cow::Borrowed(raw);
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                let c = h << 4 | l;
                if unreserved(c) {
                    out.push(c);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    // Only ASCII bytes were replaced by ASCII bytes.
    Cow::Owned(String::from_utf8(out).unwrap_or_else(|_| raw.to_string()))
}

/// The canonical form of a request path (see the module docs). Paths that do
/// not start with `/` (`*` in `OPTIONS *`) are returned as they are. Applied
/// until nothing changes (`%%32e` decodes to a new `%2e`), so the result is a
/// fixed point; each pass that changes something shortens the path.
pub fn canonical(raw: &str) -> Cow<'_, str> {
    let mut path = match once(raw) {
        None => return Cow::Borrowed(raw),
        Some(p) => p,
    };
    while let Some(p) = once(&path) {
        path = p;
    }
    Cow::Owned(path)
}

/// One pass of [`canonical`]; `None` when it changes nothing.
fn once(raw: &str) -> Option<String> {
    if !raw.starts_with('/') {
        return None;
    }
    let decoded = decode_unreserved(raw);
    let mut segments: Vec<&str> = Vec::new();
    // A path ending in `/`, `/.` or `/..` names a directory: keep the slash.
    let mut trailing = false;
    for seg in decoded[1..].split('/') {
        trailing = true;
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => {
                segments.push(s);
                trailing = false;
            }
        }
    }
    let mut path = String::with_capacity(decoded.len());
    for s in &segments {
        path.push('/');
        path.push_str(s);
    }
    if trailing || segments.is_empty() {
        path.push('/');
    }
    (path != raw).then_some(path)
}

/// Rewrites the request's URI to its canonical path (the query is kept).
/// `Err` only if the result is not a valid URI, which cannot happen for a
/// URI that parsed: every byte of the new path was in the old one or is an
/// unreserved character.
pub fn canonicalise(head: &mut RequestHead) -> Result<(), crate::error::HubError> {
    let path = match canonical(head.uri.path()) {
        Cow::Borrowed(_) => return Ok(()),
        Cow::Owned(p) => p,
    };
    let mut parts = head.uri.clone().into_parts();
    let pq = match head.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let refused = |e: String| {
        crate::error::HubError::new(
            crate::error::ErrorCode::BadRequest,
            format!("invalid request path: {e}"),
        )
    };
    parts.path_and_query = Some(pq.parse().map_err(|e| refused(format!("{e}")))?);
    head.uri = Uri::from_parts(parts).map_err(|e| refused(format!("{e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn canonical_paths() {
        for (raw, want) in [
            ("/", "/"),
            ("/ws", "/ws"),
            ("/api/%64ev/token", "/api/dev/token"),
            ("/api/%44ev/token", "/api/Dev/token"),
            ("/api/d%65v/t%6Fken", "/api/dev/token"),
            ("//api/dev/token", "/api/dev/token"),
            ("/api//dev///token", "/api/dev/token"),
            ("/api/./dev/token", "/api/dev/token"),
            ("/api/x/../dev/token", "/api/dev/token"),
            ("/api/x/%2e%2E/dev/token", "/api/dev/token"),
            ("/api/%2e/dev/token", "/api/dev/token"),
            ("/../../api/dev/token", "/api/dev/token"),
            ("/api/dev/token/", "/api/dev/token/"),
            ("/api/dev/token/.", "/api/dev/token/"),
            ("/a/b/..", "/a/"),
            ("/..", "/"),
            ("/api%2Fdev/token", "/api%2Fdev/token"),
            (
                "/api/rooms/user%3Aann/history",
                "/api/rooms/user%3Aann/history",
            ),
            ("/api/rooms/caf%C3%A9", "/api/rooms/caf%C3%A9"),
            ("/a%2", "/a%2"),
            ("/a%", "/a%"),
            ("/a%zz", "/a%zz"),
            ("/a%252e", "/a%252e"),
            ("*", "*"),
        ] {
            assert_eq!(canonical(raw), want, "{raw}");
        }
    }

    #[test]
    fn canonical_is_a_fixed_point() {
        for raw in [
            "/api/%2e%2e/x",
            "//a/./b/../c/",
            "/%2F%2e/..",
            "/%%32e%%32e/x",
            "/a/%%32%65",
        ] {
            let once = canonical(raw).into_owned();
            assert_eq!(canonical(&once), once, "{raw}");
        }
    }
}
