//! The MQTT client frames (`mqtt:subscribe`, `mqtt:unsubscribe`,
//! `mqtt:publish`) as `protocol::parse` turns them into types: topic and
//! payload rules are checked here, access in `session.rs`.

use super::topic::{TopicFilter, TopicName};
use crate::error::ErrorCode;
use serde_json::value::RawValue;

/// A parsed MQTT client frame.
#[derive(Debug)]
pub enum MqttFrame {
    Subscribe {
        filter: TopicFilter,
    },
    Unsubscribe {
        filter: TopicFilter,
    },
    Publish {
        topic: TopicName,
        /// The bytes to publish (see `payload::encode`).
        payload: Vec<u8>,
        qos1: bool,
        retain: bool,
    },
}

/// The MQTT fields of a client frame, as `protocol::parse` read them.
pub struct MqttFields<'a> {
    pub filter: Option<&'a str>,
    pub topic: Option<&'a str>,
    pub payload: Option<&'a RawValue>,
    pub qos: Option<u8>,
    pub retain: Option<bool>,
    pub binary: Option<bool>,
}

impl MqttFrame {
    /// Checks an MQTT frame's fields (topic syntax: [`super::topic`]); `ty` is
    /// `mqtt:subscribe`, `mqtt:unsubscribe` or `mqtt:publish`.
    pub fn parse(ty: &str, w: &MqttFields) -> Result<MqttFrame, (ErrorCode, String)> {
        let bad = |m: String| (ErrorCode::BadRequest, m);
        let invalid = |e: super::topic::TopicError| (ErrorCode::InvalidTopic, e.to_string());
        if ty == "mqtt:publish" {
            let topic = w
                .topic
                .ok_or_else(|| bad("mqtt:publish needs `topic`".into()))?;
            let topic = TopicName::parse(topic).map_err(invalid)?;
            let raw = w
                .payload
                .ok_or_else(|| bad("mqtt:publish needs `payload`".into()))?;
            let payload = super::payload::encode(raw, w.binary.unwrap_or(false))
                .map_err(|m| bad(m.into()))?;
            let qos1 = match w.qos.unwrap_or(0) {
                0 => false,
                1 => true,
                _ => return Err(bad("qos must be 0 or 1".into())),
            };
            return Ok(MqttFrame::Publish {
                topic,
                payload,
                qos1,
                retain: w.retain.unwrap_or(false),
            });
        }
        let filter = w
            .filter
            .ok_or_else(|| bad(format!("{ty} needs `filter`")))?;
        let filter = TopicFilter::parse(filter).map_err(invalid)?;
        Ok(if ty == "mqtt:subscribe" {
            MqttFrame::Subscribe { filter }
        } else {
            MqttFrame::Unsubscribe { filter }
        })
    }

    /// Publishes use up the message rate limit; (un)subscribes do not.
    pub fn is_publish(&self) -> bool {
        matches!(self, MqttFrame::Publish { .. })
    }
}
