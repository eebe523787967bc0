//! The connection to the broker: rumqttc's event loop in its own task. The
//! loop only polls; every event it cares about is handed to the bridge actor
//! with `do_send`, which never waits, so keep-alive pings and acknowledgements
//! keep flowing however busy the actor is. A failed poll means the connection
//! is down: the loop tells the bridge, sleeps (exponential backoff between the
//! configured bounds, reset by a successful connection) and polls again, which
//! reconnects.

use super::bridge::{Link, MqttBridge};
use super::pipeline::RUMQTT_INFLIGHT;
use crate::config::MqttConfig;
use actix::prelude::*;
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, Transport,
};
use std::time::Duration;

/// Requests rumqttc buffers between the bridge and its event loop.
const REQUEST_CAPACITY: usize = 256;

/// The largest packet rumqttc reads from the broker (or
/// `SWITCHBOARD_MQTT_MAX_PACKET` if that is larger). rumqttc drops the whole
/// connection on a larger one, so this sits well above the setting: packets
/// between the two are read, dropped and counted by the bridge
/// (`MqttBridge::on_message`), and the connection stays up.
pub const INCOMING_CEILING: usize = 16 * 1024 * 1024;

/// System CA bundles tried for `mqtts://` when no CA file is configured.
const SYSTEM_CA_FILES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// The client options for `cfg` (which has a broker), with the hub's health
/// topic as its last will so a crashed hub shows as offline.
pub fn options(cfg: &MqttConfig) -> Result<MqttOptions, String> {
    let broker = cfg.broker.as_ref().ok_or("no broker configured")?;
    let mut o = MqttOptions::new(cfg.client_id.clone(), broker.host.clone(), broker.port);
    o.set_keep_alive(cfg.keep_alive);
    o.set_clean_session(true);
    o.set_max_packet_size(cfg.max_packet.max(INCOMING_CEILING), cfg.max_packet);
    o.set_inflight(RUMQTT_INFLIGHT);
    o.set_request_channel_capacity(REQUEST_CAPACITY);
    if let Some(user) = &cfg.username {
        o.set_credentials(user.clone(), cfg.password.clone().unwrap_or_default());
    }
    if !cfg.health_prefix.is_empty() {
        let will = serde_json::json!({"type": "health:update", "status": "offline", "ts": crate::ids::now_ms()});
        o.set_last_will(LastWill::new(
            format!("{}/health", cfg.health_prefix),
            will.to_string(),
            QoS::AtLeastOnce,
            true,
        ));
    }
    if broker.tls {
        let path = match &cfg.ca_file {
            Some(p) => p.clone(),
            None => SYSTEM_CA_FILES
                .iter()
                .find(|p| std::path::Path::new(p).exists())
                .map(|p| p.to_string())
                .ok_or("mqtts:// needs SWITCHBOARD_MQTT_CA_FILE (no system CA bundle found)")?,
        };
        let ca =
            std::fs::read(&path).map_err(|e| format!("SWITCHBOARD_MQTT_CA_FILE {path}: {e}"))?;
        o.set_transport(Transport::tls(ca, None, None));
    }
    Ok(o)
}

/// Starts the event loop task on the current arbiter; returns the client the
/// bridge sends requests with.
pub fn start(cfg: &MqttConfig, options: MqttOptions, bridge: Addr<MqttBridge>) -> AsyncClient {
    let (client, eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
    actix::spawn(run(eventloop, bridge, cfg.reconnect_min, cfg.reconnect_max));
    client
}

async fn run(mut eventloop: EventLoop, bridge: Addr<MqttBridge>, min: Duration, max: Duration) {
    let mut delay = min;
    while bridge.connected() {
        let event = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                delay = min;
                Link::Connected
            }
            Ok(Event::Incoming(Packet::Publish(p))) => Link::Message(p),
            Ok(Event::Incoming(Packet::PubAck(a))) => Link::PubAck(a.pkid),
            Ok(Event::Incoming(Packet::SubAck(s))) => Link::SubAck(s),
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Link::Written(pkid),
            Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => Link::SubscribeWritten(pkid),
            Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => Link::Collision(pkid),
            Ok(_) => continue,
            Err(e) => {
                bridge.do_send(Link::Down(e.to_string()));
                actix::clock::sleep(delay).await;
                delay = (delay * 2).min(max);
                continue;
            }
        };
        bridge.do_send(event);
    }
}
