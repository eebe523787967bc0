//! The MQTT bridge's settings.

use super::*;

/// Where the MQTT broker is: `mqtt://[user[:password]@]host[:port]` (port
/// 1883) or `mqtts://…` (TLS, port 8883).
#[derive(Debug, Clone, PartialEq)]
pub struct Broker {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Broker {
    pub fn parse(url: &str) -> Result<Broker, String> {
        let bad = |why: &str| format!("SWITCHBOARD_MQTT_URL={url:?}: {why}");
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else {
            return Err(bad("use mqtt://host:port or mqtts://host:port"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(bad("a broker URL has no path or query"));
        }
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let (username, password) = match auth.map(|a| a.split_once(':').unwrap_or((a, ""))) {
            Some((u, p)) => (Some(u.to_string()), (!p.is_empty()).then(|| p.to_string())),
            None => (None, None),
        };
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("bad port"))?,
                None if after.is_empty() => default_port,
                None => return Err(bad("bad host")),
            };
            (h.to_string(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("bad port"))?),
                None => (hostport.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Broker {
            tls,
            host,
            port,
            username,
            password,
        })
    }
}

/// The MQTT bridge's settings.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// `SWITCHBOARD_MQTT_URL`: the broker; none means no bridge.
    pub broker: Option<Broker>,
    /// `SWITCHBOARD_MQTT_CLIENT_ID` (default `switchboard-<random>`).
    pub client_id: String,
    /// `SWITCHBOARD_MQTT_USERNAME` / `SWITCHBOARD_MQTT_PASSWORD` (override the URL's).
    pub username: Option<String>,
    pub password: Option<String>,
    /// `SWITCHBOARD_MQTT_CA_FILE`: PEM CA bundle for `mqtts://` (default: the system bundle).
    pub ca_file: Option<String>,
    /// `SWITCHBOARD_MQTT_KEEP_ALIVE_S` (default 30; 0 turns pings off).
    pub keep_alive: Duration,
    /// `SWITCHBOARD_MQTT_SUBSCRIPTIONS`: comma-separated filters the bridge always subscribes to.
    pub subscriptions: Vec<crate::mqtt::topic::TopicFilter>,
    /// `SWITCHBOARD_MQTT_ROOMS`: `filter=room,…`; matching messages go to the room.
    pub rooms: Vec<(crate::mqtt::topic::TopicFilter, crate::ids::RoomName)>,
    /// `SWITCHBOARD_MQTT_QUEUE` (default 1000): publishes waiting for the broker
    /// (not yet sent, or sent and not yet acknowledged); beyond it → `mqtt_queue_full`.
    pub queue: usize,
    /// `SWITCHBOARD_MQTT_MAX_PACKET` (default 262144): largest MQTT packet either way;
    /// larger broker messages are dropped and counted (up to `mqtt::link::INCOMING_CEILING`).
    pub max_packet: usize,
    /// `SWITCHBOARD_MQTT_RECONNECT_MIN_MS` / `_MAX_MS` (default 250 / 10000): reconnect backoff.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// `SWITCHBOARD_MQTT_HEALTH_PREFIX` (default `switchboard`): health is published,
    /// retained, at `<prefix>/health`; empty turns that off.
    pub health_prefix: String,
    /// `SWITCHBOARD_MQTT_GUEST_SUBSCRIBE` / `_GUEST_PUBLISH`: topic patterns guests
    /// may subscribe / publish to (default: none).
    pub guest_subscribe: Vec<crate::mqtt::topic::TopicFilter>,
    pub guest_publish: Vec<crate::mqtt::topic::TopicFilter>,
    /// `SWITCHBOARD_MQTT_FILTERS_PER_SESSION` (default 50): `mqtt:subscribe` filters per connection.
    pub filters_per_session: usize,
}

fn filters(name: &str) -> Result<Vec<crate::mqtt::topic::TopicFilter>, String> {
    var(name)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            crate::mqtt::topic::TopicFilter::parse(s)
                .map_err(|e| format!("{name}: topic filter {s:?}: {e}"))
        })
        .collect()
}

impl MqttConfig {
    pub(super) fn from_env() -> Result<MqttConfig, String> {
        let broker = var("SWITCHBOARD_MQTT_URL")
            .map(|u| Broker::parse(u.trim()))
            .transpose()?;
        let mut rooms = Vec::new();
        for item in var("SWITCHBOARD_MQTT_ROOMS").unwrap_or_default().split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let bad = || format!("SWITCHBOARD_MQTT_ROOMS: {item:?} is not filter=room");
            let (f, r) = item.rsplit_once('=').ok_or_else(bad)?;
            let filter = crate::mqtt::topic::TopicFilter::parse(f.trim())
                .map_err(|e| format!("SWITCHBOARD_MQTT_ROOMS: {f:?}: {e}"))?;
            let room = crate::ids::RoomName::parse(r.trim()).ok_or_else(bad)?;
            rooms.push((filter, room));
        }
        let keep_alive: u16 = num("SWITCHBOARD_MQTT_KEEP_ALIVE_S", 30)?;
        let cfg = MqttConfig {
            client_id: var("SWITCHBOARD_MQTT_CLIENT_ID")
                .unwrap_or_else(|| format!("switchboard-{}", crate::ids::random_hex(4))),
            username: var("SWITCHBOARD_MQTT_USERNAME")
                .or_else(|| broker.as_ref().and_then(|b| b.username.clone())),
            password: var("SWITCHBOARD_MQTT_PASSWORD")
                .or_else(|| broker.as_ref().and_then(|b| b.password.clone())),
            broker,
            ca_file: var("SWITCHBOARD_MQTT_CA_FILE"),
            keep_alive: Duration::from_secs(keep_alive.into()),
            subscriptions: filters("SWITCHBOARD_MQTT_SUBSCRIPTIONS")?,
            rooms,
            queue: num("SWITCHBOARD_MQTT_QUEUE", 1000)?,
            max_packet: num("SWITCHBOARD_MQTT_MAX_PACKET", 256 * 1024)?,
            reconnect_min: millis("SWITCHBOARD_MQTT_RECONNECT_MIN_MS", 250)?,
            reconnect_max: millis("SWITCHBOARD_MQTT_RECONNECT_MAX_MS", 10_000)?,
            health_prefix: var("SWITCHBOARD_MQTT_HEALTH_PREFIX")
                .map(|p| p.trim().trim_end_matches('/').to_string())
                .unwrap_or_else(|| "switchboard".into()),
            guest_subscribe: filters("SWITCHBOARD_MQTT_GUEST_SUBSCRIBE")?,
            guest_publish: filters("SWITCHBOARD_MQTT_GUEST_PUBLISH")?,
            filters_per_session: num("SWITCHBOARD_MQTT_FILTERS_PER_SESSION", 50)?,
        };
        if cfg.queue == 0 {
            return Err("SWITCHBOARD_MQTT_QUEUE must be at least 1".into());
        }
        if cfg.max_packet < 1024 {
            return Err("SWITCHBOARD_MQTT_MAX_PACKET must be at least 1024".into());
        }
        if cfg.reconnect_min.is_zero() || cfg.reconnect_max < cfg.reconnect_min {
            return Err("SWITCHBOARD_MQTT_RECONNECT_MIN_MS must be at least 1 and at most SWITCHBOARD_MQTT_RECONNECT_MAX_MS".into());
        }
        if !cfg.health_prefix.is_empty() {
            crate::mqtt::topic::TopicName::parse(&format!("{}/health", cfg.health_prefix))
                .map_err(|e| format!("SWITCHBOARD_MQTT_HEALTH_PREFIX: {e}"))?;
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let b = Broker::parse("mqtt://127.0.0.1:1884").unwrap();
        assert_eq!((b.tls, b.host.as_str(), b.port), (false, "127.0.0.1", 1884));
        let b = Broker::parse("mqtts://u:p%w@broker.example").unwrap();
        assert_eq!((b.tls, b.port), (true, 8883));
        assert_eq!(
            (b.username.as_deref(), b.password.as_deref()),
            (Some("u"), Some("p%w"))
        );
        let b = Broker::parse("mqtt://[::1]:1883/").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("::1", 1883));
        assert_eq!(Broker::parse("mqtt://h").unwrap().port, 1883);
        for bad in [
            "http://h",
            "mqtt://",
            "mqtt://h:x",
            "mqtt://h/path",
            "mqtt://h:99999",
        ] {
            assert!(Broker::parse(bad).is_err(), "{bad}");
        }
    }
}
