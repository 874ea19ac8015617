//! `confgate conference add c1 --pin 0123` fails naming the PIN rule and
//! writes nothing; `--pin 1234` works, and the conference is visible over the
//! REST API at once and after a restart.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use confgate_suite::Daemon;

#[test]
fn pin_rule_and_visibility_across_restart() {
    let mut d = Daemon::start("pin-rule").unwrap();
    let bad = d.cli(&["conference", "add", "c1", "--pin", "0123"]).unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("pin") && err.contains("must not start with 0"), "{err}");
    let (status, _) = d.api("GET", "/api/v1/conferences/c1", None).unwrap();
    assert_eq!(status, 404, "nothing was written");

    for (pin, rule) in [("12a4", "1 to 15 digits"), ("1234567890123456", "1 to 15 digits")] {
        let o = d.cli(&["conference", "add", "c1", "--pin", pin]).unwrap();
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains(rule));
    }

    d.cli_ok(&["conference", "add", "c1", "--pin", "1234", "--name", "Weekly"])
        .unwrap();
    let (status, body) = d.api("GET", "/api/v1/conferences/c1", None).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pin"], "1234");
    assert_eq!(body["name"], "Weekly");

    assert!(d.terminate(Duration::from_secs(15)).unwrap().success());
    d.spawn(&[]).unwrap();
    let (status, body) = d.api("GET", "/api/v1/conferences", None).unwrap();
    assert_eq!(status, 200);
    let list = body.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], "c1");
    assert_eq!(list[0]["pin"], "1234");
}
