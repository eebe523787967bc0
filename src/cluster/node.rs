//! The node's heartbeat, and the removal of dead nodes' members: every
//! node writes its time into `<prefix>:nodes` every quarter of
//! `SWITCHBOARD_NODE_TTL_MS` and removes, in one script each, the nodes
//! silent for longer than that (their members leave their rooms, with the
//! usual `room:member_left` when it was a user's last session anywhere).
//! Nodes with an MQTT bridge also keep (or take over) the lease to ingest
//! the broker's messages into mapped rooms.
//! The heartbeat also writes this node's figures and reads the
//! cluster-wide ones (`Cluster::figures`: `/healthz`, `/metrics`, the monitor).

use super::scripts::{self, Lua};
use super::Cluster;

/// How often a node that wants the MQTT lease and lacks it tries for it.
const LEASE_TRY: std::time::Duration = std::time::Duration::from_millis(200);

pub async fn run(c: Cluster) {
    let every = c.node_ttl() / 4;
    let mut first = true;
    let mut next_beat = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_beat {
            next_beat += every;
            beat(&c, &mut first).await;
            lease(&c).await;
        } else if c.wants_lease() != c.mqtt_leader() {
            // A bridge just connected (or dropped): do not wait for the beat.
            lease(&c).await;
        }
        let wake = next_beat.min(tokio::time::Instant::now() + LEASE_TRY);
        tokio::time::sleep_until(wake).await;
    }
}

/// The heartbeat, and the removal of the nodes it finds dead.
async fn beat(c: &Cluster, first: &mut bool) {
    use crate::metrics::METRICS;
    use std::sync::atomic::Ordering::Relaxed;
    let mine = format!(
        "{} {}",
        METRICS.connections.load(Relaxed).max(0),
        crate::metrics::sessions_open().max(0)
    );
    let beat = c.script(
        Lua::Heartbeat,
        vec![
            c.key("nodes"),
            c.key("figures"),
            c.key("online"),
            c.key("occupied"),
        ],
        vec![
            c.node().as_bytes().to_vec(),
            c.node_ttl().as_millis().to_string().into_bytes(),
            mine.into_bytes(),
            c.prefix().as_bytes().to_vec(),
        ],
    );
    match beat.await {
        Ok(v) => {
            let (added, stale, figures) = scripts::heartbeat_reply(&v);
            c.set_figures(figures);
            if added && !*first {
                // Taken for dead while paused: its members were removed.
                log::warn!(
                    "node {} was taken for dead; registering its members again",
                    c.node()
                );
                super::reregister();
            }
            *first = false;
            for node in stale {
                let reap = c.script(
                    Lua::Reap,
                    vec![c.key("nodes")],
                    vec![node.clone().into_bytes(), c.prefix().as_bytes().to_vec()],
                );
                match reap.await {
                    Ok(redis::Value::Array(v)) => {
                        if let Some(redis::Value::Int(n)) = v.first() {
                            log::info!("node {node} is gone: removed {} memberships", n - 1)
                        }
                        crate::webhooks::reaped(&v[1..]);
                    }
                    Ok(_) => {}
                    Err(e) => log::warn!("cannot remove node {node}: {}", e.message),
                }
            }
        }
        Err(e) => {
            // Not known: not shown as if it were.
            c.set_figures(None);
            log::debug!("heartbeat: {}", e.message)
        }
    }
}

/// Takes or renews the MQTT lease while this node's bridge can ingest;
/// gives it up when it cannot.
async fn lease(c: &Cluster) {
    if c.wants_lease() {
        let lease = c.script(
            Lua::Lease,
            vec![c.key("mqtt:lease")],
            vec![
                c.node().as_bytes().to_vec(),
                c.node_ttl().as_millis().to_string().into_bytes(),
            ],
        );
        // Unsure (Redis unreachable) is not holding it.
        c.set_leader(matches!(lease.await, Ok(redis::Value::Int(1))));
    } else if c.mqtt_leader() {
        // The bridge is down: let another node's take over.
        let release = c.script(
            Lua::Release,
            vec![c.key("mqtt:lease")],
            vec![c.node().as_bytes().to_vec()],
        );
        let _ = release.await;
        c.set_leader(false);
    }
}
