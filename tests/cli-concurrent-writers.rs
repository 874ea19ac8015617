//! Two CLI writers at once, while the daemon runs: every command succeeds and
//! nothing is lost or corrupted.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use confgate_suite::Daemon;

#[test]
fn parallel_cli_writers() {
    let d = Arc::new(Daemon::start("cli-parallel").unwrap());
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let d = d.clone();
            std::thread::spawn(move || {
                for i in 0..15 {
                    let user = format!("w{w}u{i}");
                    d.cli_ok(&["user", "add", &user, "--name", &format!("Worker {w} user {i}")])
                        .unwrap();
                    d.cli_ok(&[
                        "conference",
                        "add",
                        &format!("c_{user}"),
                        "--moderator",
                        &user,
                        "--pin",
                        "1234",
                    ])
                    .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let (_, users) = d.api("GET", "/api/v1/users", None).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 30);
    let (_, confs) = d.api("GET", "/api/v1/conferences", None).unwrap();
    let confs = confs.as_array().unwrap();
    assert_eq!(confs.len(), 30);
    for c in confs {
        let id = c["id"].as_str().unwrap();
        assert_eq!(c["moderators"][0], format!("{}@test.example", &id[2..]));
    }
}
