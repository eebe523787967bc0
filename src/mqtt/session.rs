//! The MQTT frames as a session handles them: `mqtt:subscribe`,
//! `mqtt:unsubscribe` and `mqtt:publish`. Parsed in `protocol/` into
//! [`MqttFrame`]; access is checked here, with the session's identity, and
//! the rest is the bridge's (which answers through the session's outbox).

use super::access;
use super::bridge;
use super::topic::{TopicFilter, TopicName};
use crate::auth::Identity;
use crate::error::{ErrorCode, HubError};
use crate::ids::SessionId;
use crate::monitor::flow::SenderKind;
use crate::outbox::Outbox;
use crate::Shared;
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

/// What the session knows that the bridge needs.
pub struct Caller<'a> {
    pub session: SessionId,
    pub ident: &'a Identity,
    pub outbox: &'a Outbox,
    pub shared: &'a Shared,
}

/// A session's MQTT state: whether the bridge has heard of it.
#[derive(Default)]
pub struct SessionMqtt {
    subscribed: bool,
}

impl SessionMqtt {
    pub fn handle(
        &mut self,
        frame: MqttFrame,
        id: Option<String>,
        c: &Caller,
    ) -> Result<(), HubError> {
        let Some(bridge) = c.shared.services.get().and_then(|s| s.mqtt.as_ref()) else {
            return Err(HubError::new(
                ErrorCode::MqttUnavailable,
                "this server has no MQTT broker configured",
            ));
        };
        let cfg = &c.shared.cfg.mqtt;
        match frame {
            MqttFrame::Subscribe { filter } => {
                if !access::may_subscribe(c.ident, cfg, &filter) {
                    return Err(HubError::new(
                        ErrorCode::Forbidden,
                        format!("you may not subscribe to {filter}"),
                    ));
                }
                self.subscribed = true;
                bridge.addr.do_send(bridge::Subscribe {
                    session: c.session,
                    filter,
                    id,
                    outbox: c.outbox.clone(),
                });
            }
            MqttFrame::Unsubscribe { filter } => {
                bridge.addr.do_send(bridge::Unsubscribe {
                    session: c.session,
                    filter,
                    id,
                    outbox: c.outbox.clone(),
                });
            }
            MqttFrame::Publish {
                topic,
                payload,
                qos1,
                retain,
            } => {
                if !access::may_publish(c.ident, cfg, &topic) {
                    return Err(HubError::new(
                        ErrorCode::Forbidden,
                        format!("you may not publish to {topic}"),
                    ));
                }
                bridge.addr.do_send(bridge::Publish {
                    topic,
                    payload,
                    qos1,
                    retain,
                    id,
                    outbox: c.outbox.clone(),
                    sender: SenderKind::of(c.ident),
                });
            }
        }
        Ok(())
    }

    /// The session ended: the bridge forgets its filters.
    pub fn stopped(&self, session: SessionId, shared: &Shared) {
        if self.subscribed {
            if let Some(b) = shared.services.get().and_then(|s| s.mqtt.as_ref()) {
                b.addr.do_send(bridge::SessionGone { session });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{parse, ClientFrame};

    fn code(text: &str) -> ErrorCode {
        parse(text.as_bytes()).expect_err(text).code
    }

    #[test]
    fn parses_mqtt_frames() {
        match parse(br#"{"type":"mqtt:publish","topic":"a/b","payload":{"on":true},"qos":1,"retain":true,"id":"c9"}"#)
            .unwrap()
            .frame
        {
            ClientFrame::Mqtt(MqttFrame::Publish { topic, payload, qos1, retain }) => {
                assert_eq!(topic.as_str(), "a/b");
                assert_eq!(payload, br#"{"on":true}"#);
                assert!(qos1 && retain);
            }
            f => panic!("{f:?}"),
        }
        assert!(matches!(
            parse(br#"{"type":"mqtt:subscribe","filter":"sensors/#"}"#)
                .unwrap()
                .frame,
            ClientFrame::Mqtt(MqttFrame::Subscribe { .. })
        ));
        assert_eq!(
            code(r#"{"type":"mqtt:publish","topic":"a/+","payload":1}"#),
            ErrorCode::InvalidTopic
        );
        assert_eq!(
            code(r#"{"type":"mqtt:publish","topic":"","payload":1}"#),
            ErrorCode::InvalidTopic
        );
        assert_eq!(
            code(r#"{"type":"mqtt:publish","topic":"a","payload":1,"qos":2}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"mqtt:publish","topic":"a"}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"mqtt:publish","topic":"a","payload":"%%","binary":true}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"mqtt:subscribe","filter":"a/#/b"}"#),
            ErrorCode::InvalidTopic
        );
        assert_eq!(
            code(r#"{"type":"mqtt:subscribe","topic":"a"}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"message:send","room":"r","data":1,"qos":1}"#),
            ErrorCode::BadRequest
        );
    }
}
