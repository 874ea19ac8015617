//! The registrar's group commit seen from SIPp: many accounts registering
//! at once (so that their REGISTERs share database batches, some accounts
//! twice in a row) all get their 200; a 200 means the binding is on disk,
//! so it is still there after a `kill -9` and a restart; a binding expires
//! on time; and a password changed by the CLI counts for the very next
//! REGISTER (credentials are read from the directory for every batch, not
//! cached).
//!
//! Scenarios: `tests/sipp/register-many.xml`, `register-query-bound.xml`,
//! `register-query-unbound.xml`. Needs `sipp` (Debian `sip-tester`); it
//! fails, not skips, without it. Every process is ended by its PID.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use confgate_suite::sipp::spawn_sipp;
use confgate_suite::{free_udp_port, Daemon, SERVER};

const ACCOUNTS: usize = 20;

fn password(i: usize) -> String {
    format!("pw-{i}-secret")
}

fn add_users(d: &Daemon, n: usize) {
    let token = d.token().unwrap();
    for i in 1..=n {
        let (status, body) = d
            .api_with_token(
                "POST",
                "/api/v1/users",
                Some(serde_json::json!({"user": format!("u{i}"), "type": "sip", "password": password(i)})),
                Some(&token),
            )
            .unwrap();
        assert_eq!(status, 201, "creating u{i}: {body}");
    }
}

/// An injection file: one line per `(account, password)`, each registration
/// asking for `expires` seconds.
fn injection(dir: &Path, name: &str, accounts: &[(usize, String)], expires: u32) -> String {
    let mut text = String::from("SEQUENTIAL\n");
    for (i, pw) in accounts {
        text.push_str(&format!(
            "u{i};{SERVER};[authentication username=u{i} password={pw}];{expires}\n"
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Runs `scenario` `calls` times at `rate` per second with `inf`; whether
/// every call passed, and SIPp's logs.
fn run(d: &Daemon, scenario: &str, inf: &str, calls: usize, rate: usize) -> (bool, String) {
    let (calls, rate) = (calls.to_string(), rate.to_string());
    let extra = ["-inf", inf, "-m", &calls, "-l", &calls, "-r", &rate, "-rp", "1000"];
    spawn_sipp(d.dir.path(), scenario, free_udp_port(), Some(d.sip_port), &extra).finish(Duration::from_secs(60))
}

#[test]
fn registrations_in_one_burst_are_all_stored_and_survive_kill_9() {
    let mut d = Daemon::start("sip-register-batch").unwrap();
    add_users(&d, ACCOUNTS);
    // Every account twice, 2 ms apart: the REGISTERs of one account can meet
    // in one batch, the second replacing the first's binding (new Call-ID).
    let all: Vec<(usize, String)> = (1..=ACCOUNTS).chain(1..=ACCOUNTS).map(|i| (i, password(i))).collect();
    let inf = injection(d.dir.path(), "burst.csv", &all, 3600);
    let (ok, log) = run(&d, "register-many.xml", &inf, all.len(), 500);
    assert!(ok, "every REGISTER of the burst must get 200 with its binding: {log}");

    // Each 200 was sent after its commit: a crash right now loses nothing.
    d.kill9().unwrap();
    d.spawn(&[]).unwrap();
    for i in [1, 7, ACCOUNTS] {
        let inf = injection(d.dir.path(), &format!("query-{i}.csv"), &[(i, password(i))], 0);
        let (ok, log) = run(&d, "register-query-bound.xml", &inf, 1, 10);
        assert!(ok, "u{i}'s binding must have survived kill -9: {log}");
    }
}

#[test]
fn a_binding_expires_on_time() {
    let d = Daemon::start_with("sip-register-expiry", &[("CONFGATE_SIP__MIN_EXPIRES", "1")]).unwrap();
    add_users(&d, 1);
    let inf = injection(d.dir.path(), "short.csv", &[(1, password(1))], 4);
    let registered = Instant::now();
    let (ok, log) = run(&d, "register-many.xml", &inf, 1, 10);
    assert!(ok, "REGISTER with Expires: 4 must get 200: {log}");
    let (ok, log) = run(&d, "register-query-bound.xml", &inf, 1, 10);
    assert!(
        ok && registered.elapsed() < Duration::from_secs(4),
        "within its 4 s the binding is listed ({:?} after registering): {log}",
        registered.elapsed()
    );
    std::thread::sleep(Duration::from_secs(5).saturating_sub(registered.elapsed()));
    let (ok, log) = run(&d, "register-query-unbound.xml", &inf, 1, 10);
    assert!(ok, "5 s after an Expires: 4 registration no binding is listed: {log}");
}

#[test]
fn a_password_changed_by_the_cli_counts_for_the_next_register() {
    let d = Daemon::start("sip-register-passwd").unwrap();
    add_users(&d, 1);
    let old = injection(d.dir.path(), "old.csv", &[(1, password(1))], 3600);
    let (ok, log) = run(&d, "register-many.xml", &old, 1, 10);
    assert!(ok, "the first password registers: {log}");

    let out = d
        .cli_stdin(&["user", "passwd", "u1", "--password-stdin"], "another-secret-9\n")
        .unwrap();
    assert!(
        out.status.success(),
        "user passwd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, log) = run(&d, "register-many.xml", &old, 1, 10);
    assert!(
        !ok && log.contains("SIP/2.0 403"),
        "the old password must be refused (403) at once: {log}"
    );
    let new = injection(d.dir.path(), "new.csv", &[(1, "another-secret-9".into())], 3600);
    let (ok, log) = run(&d, "register-many.xml", &new, 1, 10);
    assert!(ok, "the new password registers at once: {log}");
}
