//! The MQTT frames as a session handles them: `mqtt:subscribe`,
//! `mqtt:unsubscribe` and `mqtt:publish`. Parsed in `protocol.rs` into
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

impl MqttFrame {
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
