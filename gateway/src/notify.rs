//! systemd's notify protocol (`sd_notify(3)`): datagrams to `$NOTIFY_SOCKET`.
//!
//! `READY=1` once every listener is bound, `WATCHDOG=1` at half of
//! `$WATCHDOG_USEC`, `RELOADING=1`/`READY=1` around a reload and
//! `STOPPING=1` on shutdown. Without `$NOTIFY_SOCKET` every call does nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A handle on the notify socket, if systemd gave one.
#[derive(Debug, Clone)]
pub struct Notifier {
    target: Option<String>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`.
    pub fn from_env() -> Self {
        Self {
            target: std::env::var("NOTIFY_SOCKET").ok().filter(|s| !s.is_empty()),
        }
    }

    /// Sends one state string such as `READY=1`. Errors are logged, never fatal.
    pub fn notify(&self, state: &str) {
        let Some(target) = &self.target else { return };
        let result = (|| -> std::io::Result<()> {
            let sock = UnixDatagram::unbound()?;
            if let Some(name) = target.strip_prefix('@') {
                // An abstract socket address (Linux).
                use std::os::linux::net::SocketAddrExt;
                let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
                sock.send_to_addr(state.as_bytes(), &addr)?;
            } else {
                sock.send_to(state.as_bytes(), target)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(error = %e, socket = %target, "sd_notify failed");
        }
    }

    /// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, if set for
    /// this process (`$WATCHDOG_PID` absent or ours).
    pub fn watchdog_interval() -> Option<Duration> {
        if let Ok(pid) = std::env::var("WATCHDOG_PID") {
            if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
                return None;
            }
        }
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
        (usec > 0).then(|| Duration::from_micros(usec / 2))
    }
}
