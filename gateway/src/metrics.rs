//! Counters and gauges, rendered in the Prometheus text format at `/metrics`.
//!
//! Updating one is an atomic add; nothing on a media path allocates or logs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Reasons a packet or frame may be dropped; each has its own counter.
pub const DROP_REASONS: &[&str] = &[
    "audio_not_admitted",
    "mixer_queue_full",
    "participant_queue_full",
    "room_queue_full",
    "loopback_bad_frame",
    "sip_malformed",
    "sip_rate_limited",
    "h323_connection_limit",
    "h323_fast_update_queue_full",
    "web_bad_origin",
];

/// The daemon's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Listeners bound, by name (`http`, `loopback`).
    listeners: Mutex<BTreeMap<&'static str, bool>>,
    /// Calls offered to the router.
    pub calls_total: AtomicU64,
    /// Calls refused, any reason.
    pub calls_rejected: AtomicU64,
    /// Legs in a conference or its lobby now.
    pub legs_active: AtomicU64,
    /// Participants admitted or put in a lobby since start.
    pub participants_joined: AtomicU64,
    /// Conferences running now.
    pub conferences_running: AtomicU64,
    /// Loopback sessions open now.
    pub loopback_sessions: AtomicU64,
    /// Admin API requests refused for a missing or wrong token.
    pub api_unauthorized: AtomicU64,
    dropped: [AtomicU64; DROP_REASONS.len()],
    relay: OnceLock<relay::Relay>,
}

impl Metrics {
    /// Marks a listener up or down.
    pub fn set_listener(&self, name: &'static str, up: bool) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, up);
    }

    /// Includes the media relay's counters in the exposition.
    pub fn set_relay(&self, relay: relay::Relay) {
        let _ = self.relay.set(relay);
    }

    /// Counts one drop. `reason` must be one of [`DROP_REASONS`]; another is
    /// a programming error (a debug assertion).
    pub fn count_drop(&self, reason: &'static str) {
        if let Some(i) = DROP_REASONS.iter().position(|r| *r == reason) {
            self.dropped[i].fetch_add(1, Ordering::Relaxed);
        } else {
            debug_assert!(false, "unknown drop reason {reason}");
        }
    }

    /// Drops counted for one reason.
    pub fn dropped(&self, reason: &str) -> u64 {
        DROP_REASONS
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.dropped[i].load(Ordering::Relaxed))
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str("# HELP confgate_listener_up Whether a listener is bound (1) or not (0).\n# TYPE confgate_listener_up gauge\n");
        for (name, up) in self.listeners.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "confgate_listener_up{{listener=\"{name}\"}} {}", u8::from(*up));
        }
        let simple: [(&str, &str, &str, &AtomicU64); 7] = [
            (
                "confgate_calls_total",
                "counter",
                "Calls offered to the router.",
                &self.calls_total,
            ),
            (
                "confgate_calls_rejected_total",
                "counter",
                "Calls refused.",
                &self.calls_rejected,
            ),
            (
                "confgate_legs_active",
                "gauge",
                "Legs in a conference or lobby now.",
                &self.legs_active,
            ),
            (
                "confgate_participants_joined_total",
                "counter",
                "Participants admitted or put in a lobby.",
                &self.participants_joined,
            ),
            (
                "confgate_conferences_running",
                "gauge",
                "Conferences running now.",
                &self.conferences_running,
            ),
            (
                "confgate_loopback_sessions",
                "gauge",
                "Loopback sessions open now.",
                &self.loopback_sessions,
            ),
            (
                "confgate_api_unauthorized_total",
                "counter",
                "Admin API requests without a valid token.",
                &self.api_unauthorized,
            ),
        ];
        for (name, kind, help, v) in simple {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        if let Some(r) = self.relay.get() {
            for (reason, n) in r.drops() {
                let _ = writeln!(out, "confgate_dropped_total{{reason=\"relay_{reason}\"}} {n}");
            }
            let _ = writeln!(out, "# HELP confgate_relay_endpoints Media endpoints allocated now.");
            let _ = writeln!(
                out,
                "# TYPE confgate_relay_endpoints gauge\nconfgate_relay_endpoints {}",
                r.endpoint_count()
            );
            let _ = writeln!(out, "# HELP confgate_relay_ports_in_use Media ports in use now.");
            let _ = writeln!(
                out,
                "# TYPE confgate_relay_ports_in_use gauge\nconfgate_relay_ports_in_use {}",
                r.ports_in_use()
            );
            let _ = writeln!(
                out,
                "# HELP confgate_relay_keyframe_requests_total Keyframe requests (PLI) sent."
            );
            let _ = writeln!(
                out,
                "# TYPE confgate_relay_keyframe_requests_total counter\nconfgate_relay_keyframe_requests_total {}",
                r.keyframe_requests()
            );
            let _ = writeln!(
                out,
                "# HELP confgate_relay_raw_send 1 when IPv4 media leaves through raw sockets (relay.raw_send), 0 when each media socket sends."
            );
            let _ = writeln!(
                out,
                "# TYPE confgate_relay_raw_send gauge\nconfgate_relay_raw_send {}",
                u8::from(r.raw_send())
            );
        }
        out.push_str("# HELP confgate_dropped_total Packets or frames dropped, by reason.\n# TYPE confgate_dropped_total counter\n");
        for (reason, v) in DROP_REASONS.iter().zip(&self.dropped) {
            let _ = writeln!(
                out,
                "confgate_dropped_total{{reason=\"{reason}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Metrics::default();
        m.set_listener("http", true);
        m.count_drop("mixer_queue_full");
        m.calls_total.fetch_add(3, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("confgate_listener_up{listener=\"http\"} 1"));
        assert!(text.contains("confgate_calls_total 3"));
        assert!(text.contains("confgate_dropped_total{reason=\"mixer_queue_full\"} 1"));
        assert!(text.contains("confgate_dropped_total{reason=\"loopback_bad_frame\"} 0"));
        assert_eq!(m.dropped("mixer_queue_full"), 1);
        // every line is a comment or `name{labels} value`
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or("");
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }
}
