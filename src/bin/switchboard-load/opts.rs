//! The load tool's command line: the scenario, its options, and the
//! servers it drives (`--url`, one or a comma-separated list).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

pub const USAGE: &str = "usage: switchboard-load <fanout|rooms|idle> [options]
  --url URL[,URL…]     server WebSocket URL (default ws://127.0.0.1:8080/ws; a path /socket.io…:
                       Socket.IO clients over WebSocket); several, comma-
                       separated, spread the clients (publishers too) over them: client i
                       connects to URL number i mod count (nodes of a cluster)
  --offset N           number clients from N (user names, idle rooms, URL choice), so that
                       several load processes together make one set of clients (default 0)
  --secret S           the server's SWITCHBOARD_JWT_SECRET (default: that env var); clients
                       connect as role=service users, exempt from rate limits
  --pid PID[,PID…]     the server's pid: report its CPU seconds and RSS (several: their sums,
                       and each one's in the JSON line as server_each)
  --concurrency C      connections being opened at once (default 200)
  --sources A,B,…      local addresses to connect from (e.g. 127.0.0.1,127.0.0.2) to pass
                       the ~28k ports one address gives
  --size BYTES         padding added to each message payload (default 0)
  --deflate on|off     clients offer permessage-deflate and inflate what comes compressed
                       (default off); the JSON line says how many negotiated it
  fanout: --subscribers N (1000) --publishers P (1) --rate MSGS_PER_S (1000) --duration S (10)
  rooms:  --rooms K (100) --clients N (2000) --rate MSGS_PER_S total (2000) --duration S (10)
  idle:   --conns N (10000) --room-size M (100) --hold S (10)";

/// One server URL: the Host and path of the handshake, and where to connect.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub host: String,
    pub path: String,
    pub addr: SocketAddr,
}

/// `ws://host:port[/path]` (path `/ws` when absent).
fn parse_target(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("{url:?}: only ws:// URLs are supported"))?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/ws".into()));
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    Ok(Target {
        host: host.to_string(),
        path,
        addr,
    })
}

/// A comma-separated list of URLs, in order; an empty entry is an error.
fn parse_targets(list: &str) -> Result<Vec<Target>, String> {
    list.split(',')
        .map(str::trim)
        .map(|u| {
            if u.is_empty() {
                Err(format!("--url {list:?}: empty entry"))
            } else {
                parse_target(u)
            }
        })
        .collect()
}

#[derive(Clone)]
pub struct Opts {
    pub mode: String,
    /// Client i connects to `targets[i % targets.len()]` (never empty).
    pub targets: Vec<Target>,
    pub offset: usize,
    pub secret: String,
    pub pids: Vec<u32>,
    pub concurrency: usize,
    pub sources: Vec<IpAddr>,
    pub size: usize,
    pub deflate: bool,
    pub subscribers: usize,
    pub publishers: usize,
    pub rate: f64,
    pub duration: f64,
    pub rooms: usize,
    pub clients: usize,
    pub conns: usize,
    pub room_size: usize,
    pub hold: f64,
}

pub fn parse_opts() -> Result<Opts, String> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().ok_or("missing mode")?;
    if !["fanout", "rooms", "idle"].contains(&mode.as_str()) {
        return Err(format!("unknown mode {mode:?}"));
    }
    let mut o = Opts {
        mode,
        targets: Vec::new(),
        offset: 0,
        secret: std::env::var("SWITCHBOARD_JWT_SECRET").unwrap_or_default(),
        pids: Vec::new(),
        concurrency: 200,
        sources: Vec::new(),
        size: 0,
        deflate: false,
        subscribers: 1000,
        publishers: 1,
        rate: 1000.0,
        duration: 10.0,
        rooms: 100,
        clients: 2000,
        conns: 10_000,
        room_size: 100,
        hold: 10.0,
    };
    let mut url = "ws://127.0.0.1:8080/ws".to_string();
    while let Some(flag) = args.next() {
        let v = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--url" => url = v,
            "--secret" => o.secret = v,
            "--offset" => o.offset = num(&v)? as usize,
            "--pid" => {
                o.pids = v
                    .split(',')
                    .map(|p| {
                        p.trim()
                            .parse()
                            .map_err(|_| format!("--pid: bad pid {p:?}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--concurrency" => o.concurrency = num(&v)?.max(1.0) as usize,
            "--sources" => {
                o.sources = v
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|_| format!("bad address {s}")))
                    .collect::<Result<_, _>>()?
            }
            "--size" => o.size = num(&v)? as usize,
            "--deflate" => {
                o.deflate = match v.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => return Err(format!("--deflate: on or off, not {v:?}")),
                }
            }
            "--subscribers" => o.subscribers = num(&v)? as usize,
            "--publishers" => o.publishers = num(&v)?.max(1.0) as usize,
            "--rate" => o.rate = num(&v)?,
            "--duration" => o.duration = num(&v)?,
            "--rooms" => o.rooms = num(&v)?.max(1.0) as usize,
            "--clients" => o.clients = num(&v)? as usize,
            "--conns" => o.conns = num(&v)? as usize,
            "--room-size" => o.room_size = num(&v)?.max(1.0) as usize,
            "--hold" => o.hold = num(&v)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if o.secret.is_empty() {
        return Err("give --secret (or SWITCHBOARD_JWT_SECRET): the server's HS256 secret".into());
    }
    o.targets = parse_targets(&url)?;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_is_one_target_with_its_path() {
        let t = parse_targets("ws://127.0.0.1:8080/ws").unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].host, "127.0.0.1:8080");
        assert_eq!(t[0].path, "/ws");
        assert_eq!(t[0].addr, "127.0.0.1:8080".parse().unwrap());
    }

    #[test]
    fn a_list_keeps_its_order_and_defaults_the_path() {
        let t =
            parse_targets("ws://127.0.0.1:1/ws, ws://127.0.0.1:2,ws://127.0.0.1:3/x/y").unwrap();
        let got: Vec<(u16, &str)> = t.iter().map(|t| (t.addr.port(), t.path.as_str())).collect();
        assert_eq!(got, vec![(1, "/ws"), (2, "/ws"), (3, "/x/y")]);
    }

    #[test]
    fn empty_entries_and_other_schemes_are_refused() {
        assert!(parse_targets("ws://127.0.0.1:1/ws,")
            .unwrap_err()
            .contains("empty entry"));
        assert!(parse_targets("").unwrap_err().contains("empty entry"));
        assert!(parse_targets("ws://127.0.0.1:1,http://127.0.0.1:2")
            .unwrap_err()
            .contains("only ws://"));
    }
}
