//! The daemon speaks systemd's notify protocol (READY=1 once listening,
//! WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1) and on SIGTERM ends its
//! calls properly and exits 0 within the grace period.
#![allow(clippy::unwrap_used)]

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use confgate_suite::Daemon;

fn recv_until(sock: &UnixDatagram, want: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            let done = msg.lines().any(|l| l == want);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }
    panic!("did not receive {want} within {timeout:?}; got {seen:?}");
}

#[test]
fn notify_ready_watchdog_stopping_and_clean_exit() {
    let sock_dir = confgate_suite::TempDir::new("notify");
    let sock_path = sock_dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let mut d = Daemon::start_with(
        "notify",
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
            ("CONFGATE_SERVER__SHUTDOWN_GRACE_SECS", "3"),
        ],
    )
    .unwrap();
    // READY=1 came before /healthz answered (start_with waits for it).
    let seen = recv_until(&sock, "READY=1", Duration::from_secs(5));
    assert!(seen.iter().all(|m| !m.contains("STOPPING")));
    recv_until(&sock, "WATCHDOG=1", Duration::from_secs(2));

    // A bot in a conference is told the server is shutting down.
    d.cli_ok(&["conference", "add", "room"]).unwrap();
    let bot = d
        .bot(&["--conference", "room", "--play", "tone:300", "--duration", "30"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));

    let started = Instant::now();
    let status = d.terminate(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "within the 3 s grace period: {:?}",
        started.elapsed()
    );
    recv_until(&sock, "STOPPING=1", Duration::from_secs(2));

    let (st, _, err) = bot.output_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(st.code(), Some(4), "bot: {err}");
    assert!(err.contains("server_shutdown"), "{err}");
}
