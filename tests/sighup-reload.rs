//! SIGHUP re-reads the configuration: routing changes apply at once, and the
//! log names the changed keys that need a restart (the listener stays where it is).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use confgate_suite::Daemon;

#[test]
fn reload_applies_routing_and_names_restart_keys() {
    let mut d = Daemon::start("sighup").unwrap();
    d.cli_ok(&["conference", "add", "lounge"]).unwrap();
    let cfg = d.dir.path().join("confgate.toml");
    std::fs::write(&cfg, "[routing]\nallow_anonymous = true\n").unwrap();
    // restart with the file
    assert!(d.terminate(Duration::from_secs(10)).unwrap().success());
    d.spawn(&["--config", cfg.to_str().unwrap()]).unwrap();
    let (st, _, err) = d
        .bot(&["--conference", "lounge", "--duration", "1"])
        .unwrap()
        .output_timeout(Duration::from_secs(20))
        .unwrap();
    assert!(st.success(), "{err}");

    std::fs::write(
        &cfg,
        "[routing]\nallow_anonymous = false\n[media]\nport_min = 30000\nport_max = 30999\n",
    )
    .unwrap();
    d.child.as_ref().unwrap().signal("HUP").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.stderr().contains("configuration reloaded") {
        assert!(Instant::now() < deadline, "no reload in the log: {}", d.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = d.stderr();
    assert!(log.contains("only after a restart") && log.contains("media"), "{log}");
    let (st, _, err) = d
        .bot(&["--conference", "lounge", "--duration", "1"])
        .unwrap()
        .output_timeout(Duration::from_secs(20))
        .unwrap();
    assert_eq!(st.code(), Some(3), "anonymous now refused: {err}");
    assert!(err.contains("anonymous_not_allowed"), "{err}");

    // a bad file is refused and the running configuration kept
    std::fs::write(&cfg, "[routing]\nallow_anonymous = \"maybe\"\n").unwrap();
    d.child.as_ref().unwrap().signal("HUP").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.stderr().contains("reload refused") {
        assert!(Instant::now() < deadline, "bad reload not reported: {}", d.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d.stderr().contains("routing.allow_anonymous"));
    assert_eq!(ureq::get(&d.url("/healthz")).call().unwrap().status(), 200);
}
