//! The client's `Sec-WebSocket-Extensions` offer (RFC 6455 §9.1) parsed
//! into types, and our answer to its permessage-deflate part (RFC 7692 §7).
//!
//! Every offer is read in order (several headers count as one list); the
//! first permessage-deflate offer whose parameters are valid is accepted.
//! An offer with an unknown or repeated parameter, or an invalid value, is
//! declined as the RFC asks, and the next one is tried. A header that is not
//! a well-formed extension list is ignored as a whole: the connection goes
//! on without compression.

use super::{Outbound, Settings};

pub const NAME: &str = "permessage-deflate";

/// One extension in the list, with its parameters in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub name: String,
    pub params: Vec<(String, Option<String>)>,
}

/// An accepted permessage-deflate offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The client's `server_max_window_bits` (8–15), echoed in the answer:
    /// messages longer than the window are then sent uncompressed.
    pub server_max_window_bits: Option<u8>,
}

impl Accepted {
    /// The `Sec-WebSocket-Extensions` value of the answer. No context is
    /// taken over either way, whatever the offer said (RFC 7692 §7.1.1 lets
    /// the server add both parameters).
    pub fn answer(&self) -> String {
        let mut s = format!("{NAME}; server_no_context_takeover; client_no_context_takeover");
        if let Some(bits) = self.server_max_window_bits {
            s.push_str(&format!("; server_max_window_bits={bits}"));
        }
        s
    }

    /// How the connection compresses what it sends.
    pub fn outbound(&self, s: &Settings) -> Outbound {
        Outbound {
            threshold: s.threshold,
            max: self.server_max_window_bits.map_or(usize::MAX, |b| 1 << b),
            level: s.level,
        }
    }
}

/// The first acceptable permessage-deflate offer in the header values, in order.
pub fn negotiate<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<Accepted> {
    let mut list = Vec::new();
    for v in values {
        list.extend(parse_list(std::str::from_utf8(v).ok()?)?);
    }
    list.iter()
        .filter(|e| e.name.eq_ignore_ascii_case(NAME))
        .find_map(|e| accept(&e.params))
}

/// Our parameters for one offer, or `None` to decline it (RFC 7692 §5).
pub fn accept(params: &[(String, Option<String>)]) -> Option<Accepted> {
    let mut seen = [false; 4];
    let mut accepted = Accepted {
        server_max_window_bits: None,
    };
    for (name, value) in params {
        let (i, ok) = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => (0, value.is_none()),
            "client_no_context_takeover" => (1, value.is_none()),
            "server_max_window_bits" => {
                accepted.server_max_window_bits = value.as_deref().and_then(window_bits);
                (2, accepted.server_max_window_bits.is_some())
            }
            // No value: the client can take a limit (we set none, since we
            // inflate without context); a value is the client's own limit.
            "client_max_window_bits" => {
                (3, value.as_deref().is_none_or(|v| window_bits(v).is_some()))
            }
            _ => return None,
        };
        if !ok || std::mem::replace(&mut seen[i], true) {
            return None;
        }
    }
    Some(accepted)
}

/// A window size: 8 to 15, digits only, no leading zero.
fn window_bits(v: &str) -> Option<u8> {
    if v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|b| (8..=15).contains(b))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `1#( token *( ";" token [ "=" ( token / quoted-string ) ] ) )`, with
/// optional white space around separators and empty list elements allowed.
pub fn parse_list(s: &str) -> Option<Vec<Extension>> {
    let mut c = Cursor {
        s: s.as_bytes(),
        i: 0,
    };
    let mut list = Vec::new();
    loop {
        c.skip_ws();
        match c.peek() {
            None => return Some(list),
            Some(b',') => {
                c.i += 1;
                continue;
            }
            _ => {}
        }
        let name = c.token()?;
        let mut params = Vec::new();
        loop {
            c.skip_ws();
            match c.peek() {
                None => break,
                Some(b',') => {
                    c.i += 1;
                    break;
                }
                Some(b';') => {
                    c.i += 1;
                    c.skip_ws();
                    let p = c.token()?;
                    c.skip_ws();
                    let value = if c.peek() == Some(b'=') {
                        c.i += 1;
                        c.skip_ws();
                        // (RFC 7692 §7: a quoted value of ours must still
                        // be a token; `accept` checks the values.)
                        Some(if c.peek() == Some(b'"') {
                            c.quoted()?
                        } else {
                            c.token()?
                        })
                    } else {
                        None
                    };
                    params.push((p, value));
                }
                _ => return None,
            }
        }
        list.push(Extension { name, params });
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// A quoted string, unescaped; the cursor is on its opening quote.
    fn quoted(&mut self) -> Option<String> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return String::from_utf8(out).ok();
                }
                b'\\' => {
                    out.push(*self.s.get(self.i + 1)?);
                    self.i += 2;
                }
                b => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(values: &[&str]) -> Option<Accepted> {
        negotiate(values.iter().map(|v| v.as_bytes()))
    }

    const PLAIN: Accepted = Accepted {
        server_max_window_bits: None,
    };

    #[test]
    fn browsers_offer() {
        // Chromium and Firefox.
        assert_eq!(
            neg(&["permessage-deflate; client_max_window_bits"]),
            Some(PLAIN)
        );
        assert_eq!(neg(&["permessage-deflate"]), Some(PLAIN));
        assert_eq!(
            PLAIN.answer(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
    }

    #[test]
    fn every_parameter_and_quoted_values() {
        let a = neg(&["permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=\"10\"; client_max_window_bits=12"]);
        assert_eq!(
            a,
            Some(Accepted {
                server_max_window_bits: Some(10)
            })
        );
        assert_eq!(
            a.unwrap().answer(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
        );
        let s = Settings {
            enabled: true,
            threshold: 100,
            level: 6,
        };
        assert_eq!(a.unwrap().outbound(&s).max, 1024);
        assert_eq!(PLAIN.outbound(&s).max, usize::MAX);
    }

    #[test]
    fn a_declined_offer_falls_back_to_the_next() {
        // RFC 7692 §5.2's example: the first is declined only if the server
        // cannot do it; ours are declined for bad parameters.
        for bad in [
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits=x",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; mystery",
        ] {
            assert_eq!(neg(&[bad]), None, "{bad}");
            let two = format!("{bad}, permessage-deflate; server_max_window_bits=9");
            assert_eq!(
                neg(&[&two]),
                Some(Accepted {
                    server_max_window_bits: Some(9)
                }),
                "{two}"
            );
            // Several headers are one list.
            assert_eq!(
                neg(&[bad, "x-other, permessage-deflate"]),
                Some(PLAIN),
                "{bad}"
            );
        }
    }

    #[test]
    fn other_extensions_and_malformed_headers() {
        assert_eq!(neg(&[]), None);
        assert_eq!(neg(&["x-webkit-deflate-frame"]), None);
        assert_eq!(
            neg(&[" , x-foo; a=\"b,c\" ,permessage-deflate ,"]),
            Some(PLAIN)
        );
        for bad in [
            "permessage-deflate;",
            "permessage-deflate; =3",
            "permessage-deflate; a=\"x",
            "pe rmessage-deflate",
            "permessage-deflate; a=\"\"",
            "permessage-deflate; server_max_window_bits=\"\"",
        ] {
            assert_eq!(neg(&[bad]), None, "{bad}");
        }
        // A malformed header spoils the list: nothing is accepted.
        assert_eq!(neg(&["permessage-deflate", "@"]), None);
        assert_eq!(
            parse_list("a; b=\"c\\\"d\"; e"),
            Some(vec![Extension {
                name: "a".into(),
                params: vec![("b".into(), Some("c\"d".into())), ("e".into(), None)]
            }])
        );
        assert_eq!(
            neg(&["permessage-deflate; server_max_window_bits=\"1 0\""]),
            None
        );
    }
}
