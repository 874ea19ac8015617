//! A closed conference with a lobby: a bot without the PIN waits in the
//! lobby, a moderator bot admits it, and then it hears the others.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use confgate_suite::{dominant_frequency, read_wav, ChildGuard, Daemon};

#[test]
fn moderator_bot_admits_the_waiting_guest() {
    let d = Daemon::start("lobby-moderator").unwrap();
    d.cli_stdin(
        &["user", "add", "mod", "--name", "Moderator", "--password-stdin"],
        "mod-secret\n",
    )
    .unwrap();
    d.cli_ok(&[
        "conference",
        "add",
        "board",
        "--closed",
        "--lobby",
        "--pin",
        "8642",
        "--moderator",
        "mod",
    ])
    .unwrap();
    let mut c = d.command();
    c.args([
        "bot",
        "--conference",
        "board",
        "--user",
        "mod",
        "--password-stdin",
        "--play",
        "tone:550",
        "--admit-lobby",
        "--duration",
        "9",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut moderator = ChildGuard(c.spawn().unwrap());
    moderator.0.stdin.take().unwrap().write_all(b"mod-secret\n").unwrap();
    std::thread::sleep(Duration::from_millis(800));

    let rec = d.dir.path().join("guest.wav");
    let guest = d
        .bot(&[
            "--conference",
            "board",
            "--name",
            "Guest",
            "--record",
            rec.to_str().unwrap(),
            "--duration",
            "6",
        ])
        .unwrap();
    let (st, _, err) = guest.output_timeout(Duration::from_secs(30)).unwrap();
    assert!(st.success(), "{err}");
    assert!(err.contains("waiting in the lobby"), "{err}");
    assert!(err.contains("admitted by a moderator"), "{err}");
    let (rate, s) = read_wav(&rec).unwrap();
    assert!(s.len() > 48_000 * 2, "{} samples", s.len());
    let f = dominant_frequency(&s[24_000..], rate);
    assert!((f - 550.0).abs() <= 5.0, "guest hears the moderator's tone: {f} Hz");

    let (st, _, err) = moderator.output_timeout(Duration::from_secs(30)).unwrap();
    assert!(st.success(), "{err}");
    assert!(
        err.contains("joined board as moderator") && err.contains("admitting Guest"),
        "{err}"
    );
}
