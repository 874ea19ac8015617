//! A bad key or value in the configuration stops start-up with exit code 2
//! and one line naming the key (and the value and what is allowed);
//! `check-config` prints the effective configuration.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};

use confgate_suite::{confgate_bin, TempDir};

fn run(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(confgate_bin());
    c.args(args).current_dir(dir.path()).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn unknown_key_in_file() {
    let dir = TempDir::new("cfg-key");
    let f = dir.path().join("c.toml");
    std::fs::write(&f, "[server]\nnmae = \"x\"\n").unwrap();
    let (code, _, err) = run(&dir, &["serve", "--config", f.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("server.nmae"), "{err}");
    assert!(!dir.path().join("confgate-data").exists(), "nothing created");
}

#[test]
fn bad_value_in_file_and_env() {
    let dir = TempDir::new("cfg-val");
    let f = dir.path().join("c.toml");
    std::fs::write(&f, "[media]\nport_min = 20001\n").unwrap();
    let (code, _, err) = run(&dir, &["check-config", "--config", f.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("media.port_min") && err.contains("20001") && err.contains("even"),
        "{err}"
    );

    let (code, _, err) = run(&dir, &["serve"], &[("CONFGATE_HTTP__LISTEN", "everywhere")]);
    assert_eq!(code, 2);
    assert!(err.contains("http.listen") && err.contains("everywhere"), "{err}");

    let (code, _, err) = run(&dir, &["serve"], &[("CONFGATE_ROUTING__LOCKOUT_AFTER", "0")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("routing.lockout_after") && err.contains("1 to 1000"),
        "{err}"
    );

    let (code, _, err) = run(&dir, &["serve", "--config", "/nonexistent/confgate.toml"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let dir = TempDir::new("cfg-ok");
    let f = dir.path().join("c.toml");
    std::fs::write(
        &f,
        "[server]\nname = \"video.example.com\"\n[http]\nlisten = \"127.0.0.1:9999\"\n",
    )
    .unwrap();
    let (code, out, _) = run(
        &dir,
        &["check-config", "--config", f.to_str().unwrap()],
        &[
            ("CONFGATE_HTTP__LISTEN", "127.0.0.1:18080"),
            ("CONFGATE_MEDIA__ADVERTISE", "192.0.2.1,192.0.2.2"),
        ],
    );
    assert_eq!(code, 0);
    assert!(out.contains("name = \"video.example.com\""), "{out}");
    assert!(
        out.contains("listen = \"127.0.0.1:18080\""),
        "environment wins over the file: {out}"
    );
    assert!(
        out.contains("\"192.0.2.1\"") && out.contains("\"192.0.2.2\""),
        "comma-separated list: {out}"
    );
    assert!(out.contains("port_min = 20000"), "defaults shown: {out}");
}
