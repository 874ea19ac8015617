//! The directory survives `kill -9` of the daemon in the middle of writes:
//! after a restart, every write that was acknowledged is there and the
//! daemon serves as before.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confgate_suite::Daemon;
use serde_json::json;

#[test]
fn acknowledged_writes_survive_kill_9() {
    let mut d = Daemon::start("kill9").unwrap();
    let token = d.token().unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, url) = (acked.clone(), stop.clone(), d.url("/api/v1/users"));
        std::thread::spawn(move || {
            for i in 0..2000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let user = format!("u{i}");
                let r = ureq::post(&url)
                    .set("Authorization", &format!("Bearer {token}"))
                    .timeout(Duration::from_secs(5))
                    .send_json(json!({"user": user, "display_name": format!("User {i}")}));
                match r {
                    Ok(resp) if resp.status() == 201 => acked.lock().unwrap().push(user),
                    _ => break,
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    d.kill9().unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 3,
        "some writes were acknowledged before the kill ({})",
        acked.len()
    );

    d.spawn(&[]).unwrap();
    let (s, list) = d.api("GET", "/api/v1/users", None).unwrap();
    assert_eq!(s, 200);
    let have: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap().to_string())
        .collect();
    for u in &acked {
        assert!(have.contains(u), "acknowledged account {u} lost after kill -9");
    }
    // every stored account is whole
    for u in list.as_array().unwrap() {
        let n: u32 = u["user"].as_str().unwrap()[1..].parse().unwrap();
        assert_eq!(u["display_name"], format!("User {n}"));
    }
    // and the daemon still writes
    assert_eq!(
        d.api("POST", "/api/v1/users", Some(json!({"user": "after"})))
            .unwrap()
            .0,
        201
    );
}
