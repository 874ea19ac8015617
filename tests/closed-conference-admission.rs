//! Admission over the loopback protocol: a closed conference with a lobby
//! holds a bot without the PIN until the admin API admits it; a wrong PIN,
//! an unknown conference and a full conference are refused with the reason
//! and exit code 3; an account logs in with its password.
#![allow(clippy::unwrap_used)]

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use confgate_suite::{dominant_frequency, read_wav, Daemon};

/// Runs a bot with `args` to its end (20 s at most): its exit status and
/// stderr.
fn run_bot(d: &Daemon, args: &[&str]) -> (ExitStatus, String) {
    let (st, _, err) = d.bot(args).unwrap().output_timeout(Duration::from_secs(20)).unwrap();
    (st, err)
}

/// Runs a bot with `args` and checks that it is refused: exit code 3, with
/// `reason` in its stderr.
#[track_caller]
fn assert_refused(d: &Daemon, args: &[&str], reason: &str) {
    let (st, err) = run_bot(d, args);
    assert_eq!(st.code(), Some(3), "{err}");
    assert!(err.contains(reason), "{err}");
}

/// Runs a one-second bot in `conference` as `user`, giving `password` on
/// its stdin (`--password-stdin`), to its end: its exit status and stderr.
fn run_bot_with_password(d: &Daemon, conference: &str, user: &str, password: &str) -> (ExitStatus, String) {
    let out = d
        .command()
        .args([
            "bot",
            "--conference",
            conference,
            "--user",
            user,
            "--password-stdin",
            "--duration",
            "1",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut g = confgate_suite::ChildGuard(out);
    std::io::Write::write_all(g.0.stdin.as_mut().unwrap(), format!("{password}\n").as_bytes()).unwrap();
    drop(g.0.stdin.take());
    let (st, _, err) = g.output_timeout(Duration::from_secs(20)).unwrap();
    (st, err)
}

#[test]
fn wrong_pin_unknown_and_full_are_refused() {
    let d = Daemon::start("admission-refused").unwrap();
    d.cli_ok(&["conference", "add", "locked", "--closed", "--pin", "2468"])
        .unwrap();
    d.cli_ok(&["conference", "add", "tiny", "--max", "1"]).unwrap();

    assert_refused(
        &d,
        &["--conference", "locked", "--pin", "1111", "--duration", "3"],
        "wrong PIN",
    );
    assert_refused(&d, &["--conference", "locked", "--duration", "3"], "needs a PIN");
    assert_refused(&d, &["--conference", "nowhere", "--duration", "3"], "not_found");

    let (st, err) = run_bot(&d, &["--conference", "locked", "--pin", "2468", "--duration", "1"]);
    assert!(st.success(), "right PIN: {err}");

    let first = d.bot(&["--conference", "tiny", "--duration", "6"]).unwrap();
    wait_participants(&d, "tiny", 1);
    assert_refused(&d, &["--conference", "tiny", "--duration", "2"], "conference_full");
    drop(first);
}

#[test]
fn account_login_and_wrong_password() {
    let d = Daemon::start("admission-login").unwrap();
    d.cli_stdin(
        &["user", "add", "olga", "--name", "Olga", "--password-stdin"],
        "olga-pass\n",
    )
    .unwrap();
    d.cli_ok(&[
        "conference",
        "add",
        "staff",
        "--closed",
        "--no-anonymous",
        "--owner",
        "olga",
    ])
    .unwrap();

    let (st, err) = run_bot_with_password(&d, "staff", "olga", "wrong-pass");
    assert_eq!(st.code(), Some(3), "{err}");
    assert!(err.contains("forbidden"), "{err}");

    let (st, err) = run_bot_with_password(&d, "staff", "olga@test.example", "olga-pass");
    assert!(st.success(), "{err}");
    assert!(err.contains("joined staff as owner"), "{err}");

    assert_refused(
        &d,
        &["--conference", "staff", "--duration", "1"],
        "anonymous_not_allowed",
    );
}

fn wait_participants(d: &Daemon, conf: &str, n: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = d
            .api("GET", &format!("/api/v1/conferences/{conf}/participants"), None)
            .unwrap();
        let count = body["participants"].as_array().map_or(0, Vec::len) + body["lobby"].as_array().map_or(0, Vec::len);
        if count >= n {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{conf}: {n} participants never showed: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn lobby_wait_then_admitted_by_the_api() {
    let d = Daemon::start("admission-lobby").unwrap();
    d.cli_ok(&["conference", "add", "review", "--closed", "--lobby", "--pin", "97531"])
        .unwrap();
    let speaker = d
        .bot(&[
            "--conference",
            "review",
            "--name",
            "Host",
            "--pin",
            "97531",
            "--play",
            "tone:660",
            "--duration",
            "12",
        ])
        .unwrap();
    wait_participants(&d, "review", 1);
    let rec = d.dir.path().join("guest.wav");
    let guest = d
        .bot(&[
            "--conference",
            "review",
            "--name",
            "Guest",
            "--record",
            rec.to_str().unwrap(),
            "--duration",
            "8",
        ])
        .unwrap();
    let body = wait_participants(&d, "review", 2);
    let lobby = body["lobby"].as_array().unwrap();
    assert_eq!(lobby.len(), 1, "{body}");
    assert_eq!(lobby[0]["display_name"], "Guest");
    assert_eq!(body["participants"].as_array().unwrap().len(), 1);
    std::thread::sleep(Duration::from_millis(1500));
    let pid = lobby[0]["id"].as_u64().unwrap();
    // POSTs `action` for the guest to the admin API.
    let act = |action: &str| {
        d.api(
            "POST",
            &format!("/api/v1/conferences/review/participants/{pid}/{action}"),
            None,
        )
        .unwrap()
    };
    let (s, _) = act("admit");
    assert_eq!(s, 204);
    let (s, err) = act("admit");
    assert_eq!(s, 409, "{err}");
    let (s, err) = act("dance");
    assert_eq!((s, err["field"].as_str()), (400, Some("action")));

    let (st, _, err) = guest.output_timeout(Duration::from_secs(30)).unwrap();
    assert!(st.success(), "{err}");
    assert!(
        err.contains("waiting in the lobby") && err.contains("admitted by a moderator"),
        "{err}"
    );
    let (rate, heard) = read_wav(&rec).unwrap();
    assert!(
        heard.len() > 48_000 * 3,
        "the guest heard the room once admitted ({} samples)",
        heard.len()
    );
    // While waiting (the first second), the guest hears the waiting-room prompt.
    let waiting = confgate_suite::rms(&heard[..48_000]);
    assert!(
        waiting > 300.0,
        "the waiting-room prompt is heard in the lobby (rms {waiting})"
    );
    // Once admitted, the room: the host's tone.
    let f = dominant_frequency(&heard[heard.len() - 96_000..], rate);
    assert!((f - 660.0).abs() <= 5.0, "dominant {f} Hz");
    drop(speaker);
}
