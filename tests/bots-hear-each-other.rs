//! Two `confgate bot`s in one conference, one playing tone:440 and one
//! recording, for 5 s: the recording's dominant frequency is 440 Hz, and the
//! player does not hear itself.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use confgate_suite::{dominant_frequency, read_wav, rms, tone_power, Daemon};

#[test]
fn recorder_hears_the_tone() {
    let d = Daemon::start("bots").unwrap();
    d.cli_ok(&["conference", "add", "c1"]).unwrap();
    let player_rec = d.dir.path().join("player.wav");
    let listener_rec = d.dir.path().join("listener.wav");
    let player = d
        .bot(&[
            "--conference",
            "c1",
            "--name",
            "Player",
            "--play",
            "tone:440",
            "--record",
            player_rec.to_str().unwrap(),
            "--duration",
            "5",
        ])
        .unwrap();
    let listener = d
        .bot(&[
            "--conference",
            "c1",
            "--name",
            "Listener",
            "--record",
            listener_rec.to_str().unwrap(),
            "--duration",
            "5",
        ])
        .unwrap();
    let (st, _, err) = listener.output_timeout(Duration::from_secs(30)).unwrap();
    assert!(st.success(), "listener: {st} {err}");
    let (st, _, err) = player.output_timeout(Duration::from_secs(30)).unwrap();
    assert!(st.success(), "player: {st} {err}");

    let (rate, heard) = read_wav(&listener_rec).unwrap();
    assert_eq!(rate, 48_000);
    assert!(
        heard.len() > 48_000 * 3,
        "at least 3 s recorded, got {} samples",
        heard.len()
    );
    // Skip the first second (joining), analyse the rest.
    let tail = &heard[48_000..];
    let f = dominant_frequency(tail, rate);
    assert!((f - 440.0).abs() <= 5.0, "dominant frequency {f} Hz");
    assert!(rms(tail) > 1000.0, "the tone is loud enough: rms {}", rms(tail));

    // N-1: the player hears silence, not its own tone.
    let (_, own) = read_wav(&player_rec).unwrap();
    let p_own = tone_power(&own, rate, 440.0);
    let p_heard = tone_power(tail, rate, 440.0);
    assert!(p_own < p_heard / 1000.0, "player hears itself: {p_own} vs {p_heard}");
}
