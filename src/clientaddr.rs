//! Who is on the other end: the client's IP address, taken from the socket,
//! or from `X-Forwarded-For` when the socket's peer is a trusted proxy
//! (`SWITCHBOARD_TRUSTED_PROXIES`); and what is counted by that address
//! (guest sessions, `SWITCHBOARD_GUESTS_PER_IP`).

use actix_web::dev::RequestHead;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// An address block: `10.0.0.0/8`, `::1/128`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    /// `ip` or `ip/bits`; the host bits of `ip` are ignored.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, bits) = match s.split_once('/') {
            Some((ip, bits)) => (ip.parse::<IpAddr>().ok()?, Some(bits.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { net: ip, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on an IPv6 socket arrives as ::ffff:a.b.c.d.
        let ip = canonical(ip);
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = ((bits / 8) as usize, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

/// `SWITCHBOARD_TRUSTED_PROXIES`: a comma list of addresses and blocks.
pub fn parse_list(v: &str) -> Result<Vec<Cidr>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            Cidr::parse(s).ok_or_else(|| {
                format!("SWITCHBOARD_TRUSTED_PROXIES: {s:?} is not an IP address or CIDR block")
            })
        })
        .collect()
}

/// One `X-Forwarded-For` entry: an address, with or without a port.
fn hop(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// The client's address: the socket's peer, unless the peer is trusted;
/// then `X-Forwarded-For` read from the right, each trusted hop handing
/// over to the one before it, up to the first untrusted address (a client
/// can write anything to the left of it, but not past its own proxy). An
/// unreadable entry ends the walk at the last hop that could be read.
pub fn client_addr(peer: IpAddr, forwarded: &[&str], trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut addr = peer;
    for entry in forwarded.iter().rev().flat_map(|h| h.rsplit(',')) {
        match hop(entry) {
            Some(ip) => {
                addr = canonical(ip);
                if !is_trusted(addr) {
                    break;
                }
            }
            None => break,
        }
    }
    addr
}

/// [`client_addr`] of a request (an unknown peer is taken as 0.0.0.0).
pub fn of_request(head: &RequestHead, trusted: &[Cidr]) -> IpAddr {
    let peer = head
        .peer_addr
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if trusted.is_empty() {
        return canonical(peer);
    }
    let forwarded: Vec<&str> = head
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect();
    client_addr(peer, &forwarded, trusted)
}

/// Guest sessions open per client address, for `SWITCHBOARD_GUESTS_PER_IP`.
#[derive(Default)]
pub struct GuestCount {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One guest session's place in its address's count, given back on drop.
pub struct GuestSlot {
    count: Arc<GuestCount>,
    addr: IpAddr,
}

impl GuestCount {
    /// A place for one more guest from `addr`, unless `limit` (0: none) are open.
    pub fn take(self: &Arc<Self>, addr: IpAddr, limit: usize) -> Option<GuestSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(addr).or_default();
        if limit > 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(GuestSlot {
            count: self.clone(),
            addr,
        })
    }
}

impl Drop for GuestSlot {
    fn drop(&mut self) {
        let mut open = self.count.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(ip("10.1.200.3")) && !c.contains(ip("10.2.0.1")));
        assert!(Cidr::parse("10.0.0.0/9")
            .unwrap()
            .contains(ip("10.127.0.1")));
        assert!(!Cidr::parse("10.0.0.0/9")
            .unwrap()
            .contains(ip("10.128.0.1")));
        assert!(Cidr::parse("127.0.0.1")
            .unwrap()
            .contains(ip("::ffff:127.0.0.1")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains(ip("::2")));
        for bad in ["10.0.0.0/33", "::/129", "x", "10.0.0.0/", "10.0.0/8"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
        assert!(parse_list("127.0.0.1, 10.0.0.0/8,,::1").unwrap().len() == 3);
        assert!(parse_list("127.0.0.1,nope").is_err());
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let t = parse_list("127.0.0.1,10.0.0.0/8").unwrap();
        let local = ip("127.0.0.1");
        // Untrusted peer: its headers are ignored.
        assert_eq!(
            client_addr(ip("192.0.2.9"), &["1.2.3.4"], &t),
            ip("192.0.2.9")
        );
        // Trusted peer: the hop it names.
        assert_eq!(client_addr(local, &["203.0.113.7"], &t), ip("203.0.113.7"));
        // A forged left part is passed over; trusted hops are walked through.
        assert_eq!(
            client_addr(local, &["6.6.6.6, 203.0.113.7, 10.0.0.2"], &t),
            ip("203.0.113.7")
        );
        // Several headers are one list, in order.
        assert_eq!(
            client_addr(local, &["6.6.6.6", "203.0.113.7:5000, 10.0.0.2"], &t),
            ip("203.0.113.7")
        );
        // Garbage ends the walk at the last readable hop.
        assert_eq!(
            client_addr(local, &["1.1.1.1, junk, 10.0.0.3"], &t),
            ip("10.0.0.3")
        );
        // No header: the proxy itself.
        assert_eq!(client_addr(local, &[], &t), local);
        assert_eq!(
            client_addr(local, &["[2001:db8::1]:80"], &t),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn guest_slots_count_per_address() {
        let c = Arc::new(GuestCount::default());
        let a = c.take(ip("192.0.2.1"), 2).unwrap();
        let _b = c.take(ip("192.0.2.1"), 2).unwrap();
        assert!(c.take(ip("192.0.2.1"), 2).is_none());
        assert!(c.take(ip("192.0.2.2"), 2).is_some());
        drop(a);
        assert!(c.take(ip("192.0.2.1"), 2).is_some());
        assert!(c.take(ip("192.0.2.1"), 0).is_some());
    }
}
