//! Per-hook counters and latency histograms, rendered into `/metrics`.

use super::{Hook, Outcome};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Upper bounds (seconds) of the hook latency buckets.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);

struct HookMetrics {
    calls: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    sum_us: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: HookMetrics = HookMetrics {
    calls: ZERO,
    refused: ZERO,
    errors: ZERO,
    buckets: [ZERO; BUCKETS.len()],
    sum_us: ZERO,
};

static HOOKS: [HookMetrics; 3] = [EMPTY; 3];

fn of(hook: Hook) -> &'static HookMetrics {
    &HOOKS[hook as usize]
}

pub(super) fn record(hook: Hook, started: Instant, outcome: Outcome) {
    let m = of(hook);
    let secs = started.elapsed().as_secs_f64();
    m.calls.fetch_add(1, Relaxed);
    match outcome {
        Outcome::Allowed => {}
        Outcome::Refused => {
            m.refused.fetch_add(1, Relaxed);
        }
        Outcome::Failed => {
            m.errors.fetch_add(1, Relaxed);
        }
    }
    if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
        m.buckets[i].fetch_add(1, Relaxed);
    }
    m.sum_us.fetch_add((secs * 1e6) as u64, Relaxed);
}

/// Appends the hooks' figures (only those of configured hooks).
pub fn render_metrics(cfg: &super::ProxyConfig, out: &mut String) {
    let hooks: Vec<Hook> = Hook::ALL
        .into_iter()
        .filter(|h| cfg.url(*h).is_some())
        .collect();
    if hooks.is_empty() {
        return;
    }
    out.push_str("# HELP switchboard_proxy_calls_total Calls to a proxy hook.\n# TYPE switchboard_proxy_calls_total counter\n");
    for h in &hooks {
        let _ = writeln!(
            out,
            "switchboard_proxy_calls_total{{hook=\"{}\"}} {}",
            h.as_str(),
            of(*h).calls.load(Relaxed)
        );
    }
    out.push_str("# HELP switchboard_proxy_refused_total Calls the backend answered with a refusal.\n# TYPE switchboard_proxy_refused_total counter\n");
    for h in &hooks {
        let _ = writeln!(
            out,
            "switchboard_proxy_refused_total{{hook=\"{}\"}} {}",
            h.as_str(),
            of(*h).refused.load(Relaxed)
        );
    }
    out.push_str("# HELP switchboard_proxy_errors_total Calls without a usable answer (timeout, unreachable, bad status or body, too many in flight).\n# TYPE switchboard_proxy_errors_total counter\n");
    for h in &hooks {
        let _ = writeln!(
            out,
            "switchboard_proxy_errors_total{{hook=\"{}\"}} {}",
            h.as_str(),
            of(*h).errors.load(Relaxed)
        );
    }
    out.push_str("# HELP switchboard_proxy_latency_seconds Time a proxy hook call took, answer or not.\n# TYPE switchboard_proxy_latency_seconds histogram\n");
    for h in &hooks {
        let (m, name) = (of(*h), h.as_str());
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += m.buckets[i].load(Relaxed);
            let _ = writeln!(out, "switchboard_proxy_latency_seconds_bucket{{hook=\"{name}\",le=\"{bound}\"}} {cumulative}");
        }
        let count = m.calls.load(Relaxed);
        let _ = writeln!(
            out,
            "switchboard_proxy_latency_seconds_bucket{{hook=\"{name}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "switchboard_proxy_latency_seconds_sum{{hook=\"{name}\"}} {}",
            m.sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "switchboard_proxy_latency_seconds_count{{hook=\"{name}\"}} {count}"
        );
    }
}
