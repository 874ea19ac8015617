//! With no configuration file the daemon runs on embedded defaults: it
//! creates its state in ./confgate-data, prints where it listens and the
//! admin token, and answers /healthz and /metrics.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use confgate_suite::{confgate_bin, free_port, ChildGuard, TempDir};

#[test]
fn runs_on_defaults_and_creates_its_state() {
    let dir = TempDir::new("defaults");
    let port = free_port();
    let sip = confgate_suite::free_sip_port();
    let h323 = free_port();
    let ras = confgate_suite::free_udp_port();
    let out = std::fs::File::create(dir.path().join("out")).unwrap();
    // Only the HTTP, SIP and H.323 ports are moved off 8080, 5060, 1720 and 1719 (they may be taken on a test
    // machine, and tests run in parallel); everything else is the default.
    let child = std::process::Command::new(confgate_bin())
        .arg("serve")
        .current_dir(dir.path())
        .env("CONFGATE_HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("CONFGATE_SIP__UDP_LISTEN", format!("127.0.0.1:{sip}"))
        .env("CONFGATE_SIP__TCP_LISTEN", format!("127.0.0.1:{sip}"))
        .env("CONFGATE_H323__SIGNALLING_LISTEN", format!("127.0.0.1:{h323}"))
        .env("CONFGATE_H323__RAS_LISTEN", format!("127.0.0.1:{ras}"))
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);
    let url = format!("http://127.0.0.1:{port}");
    let mut ok = false;
    for _ in 0..200 {
        if let Ok(r) = ureq::get(&format!("{url}/healthz")).call() {
            assert_eq!(r.status(), 200);
            assert_eq!(r.into_string().unwrap().trim(), "ok");
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ok, "/healthz never answered");
    assert!(
        dir.path().join("confgate-data/confgate.db").exists(),
        "state under ./confgate-data"
    );
    assert!(
        dir.path().join("confgate-data/loopback.sock").exists(),
        "loopback socket in the state dir"
    );

    // The listeners answer as soon as they are bound; the summary is printed right after.
    let mut printed = String::new();
    for _ in 0..100 {
        printed = std::fs::read_to_string(dir.path().join("out")).unwrap();
        if printed.contains("admin token:") && printed.contains("media:") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(printed.contains(&format!("http://127.0.0.1:{port}/")), "{printed}");
    let token = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("admin token:"))
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no admin token printed: {printed}"));
    assert_eq!(token.len(), 48);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));

    // The printed token works on the admin API.
    let r = ureq::get(&format!("{url}/api/v1/users"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);

    let metrics = ureq::get(&format!("{url}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("confgate_listener_up{listener=\"http\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("confgate_listener_up{listener=\"loopback\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("confgate_conferences_running 0"), "{metrics}");
    assert!(
        metrics.contains("confgate_listener_up{listener=\"ng\"} 1"),
        "ng on 127.0.0.1:2223 by default: {metrics}"
    );
    assert!(printed.contains("ng control:   127.0.0.1:2223"), "{printed}");

    child.signal("TERM").unwrap();
    assert!(child.wait_timeout(Duration::from_secs(15)).unwrap().success());
    assert!(
        !dir.path().join("confgate-data/loopback.sock").exists(),
        "socket removed on stop"
    );
}
