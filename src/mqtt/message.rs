//! An MQTT message as clients see it: one `mqtt:message` frame, encoded once
//! for all the sessions that subscribed, and once per mapped room (with the
//! room's `seq`).

use super::payload::Rendered;
use crate::ids::RoomName;
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::Arc;

#[derive(Debug)]
pub struct MqttMessage {
    pub topic: Arc<str>,
    pub payload: Box<RawValue>,
    pub binary: bool,
    pub qos: u8,
    pub retain: bool,
    pub ts: u64,
}

#[derive(Serialize)]
struct Frame<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a RoomName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    topic: &'a str,
    payload: &'a RawValue,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    binary: bool,
    qos: u8,
    retain: bool,
    ts: u64,
}

impl MqttMessage {
    pub fn new(topic: &str, rendered: Rendered, qos: u8, retain: bool) -> MqttMessage {
        MqttMessage {
            topic: topic.into(),
            payload: rendered.payload,
            binary: rendered.binary,
            qos,
            retain,
            ts: crate::ids::now_ms(),
        }
    }

    /// The `mqtt:message` frame; `room` and `seq` when delivered through a room.
    pub fn frame(&self, room: Option<(&RoomName, u64)>) -> Bytes {
        let f = Frame {
            ty: "mqtt:message",
            room: room.map(|r| r.0),
            seq: room.map(|r| r.1),
            topic: &self.topic,
            payload: &self.payload,
            binary: self.binary,
            qos: self.qos,
            retain: self.retain,
            ts: self.ts,
        };
        // Unreachable failure (no maps with non-string keys); never panic on it.
        serde_json::to_vec(&f).map(Bytes::from).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let m = MqttMessage {
            ts: 5,
            ..MqttMessage::new("a/b", super::super::payload::render(b"{\"t\":1}"), 1, false)
        };
        assert_eq!(
            &m.frame(None)[..],
            br#"{"type":"mqtt:message","topic":"a/b","payload":{"t":1},"qos":1,"retain":false,"ts":5}"#
        );
        let room = RoomName::parse("iot").unwrap();
        let bin = MqttMessage {
            ts: 5,
            ..MqttMessage::new("x", super::super::payload::render(&[0xff]), 0, true)
        };
        assert_eq!(
            &bin.frame(Some((&room, 7)))[..],
            br#"{"type":"mqtt:message","room":"iot","seq":7,"topic":"x","payload":"/w==","binary":true,"qos":0,"retain":true,"ts":5}"#
        );
    }
}
