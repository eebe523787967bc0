//! The MQTT frames as a session handles them: `mqtt:subscribe`,
//! `mqtt:unsubscribe` and `mqtt:publish`. Parsed in `protocol/` into
//! [`MqttFrame`]; access is checked here, with the session's identity, and
//! the rest is the bridge's (which answers through the session's outbox).

use super::access;
use super::bridge;
pub use super::frame::{MqttFields, MqttFrame};
use crate::auth::Identity;
use crate::error::{ErrorCode, HubError};
use crate::ids::SessionId;
use crate::monitor::flow::SenderKind;
use crate::outbox::Outbox;
use crate::Shared;

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
