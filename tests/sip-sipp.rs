//! SIPp (a SIP test tool nobody here wrote) against the running daemon:
//! registration with digest authentication, a call into a conference with
//! media that a `confgate bot` in the same conference hears, PIN entry by
//! SIP INFO and by RFC 4733 events, and malformed messages.
//!
//! Scenarios are in `tests/sipp/`. Needs `sipp` (Debian `sip-tester`); it
//! fails, not skips, without it. Every SIPp process is ended by its PID.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use confgate_suite::{dominant_frequency, free_udp_port, read_wav, rms, ChildGuard, Daemon, SERVER};

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp").join(name)
}

/// Runs SIPp once (one call) and returns its exit status and its error log.
fn sipp(d: &Daemon, scenario_file: &str, extra: &[&str], timeout: Duration) -> (bool, String) {
    let port = free_udp_port();
    let media = free_udp_port();
    let err_file = d.dir.path().join(format!("sipp-{scenario_file}-{port}.err"));
    let mut cmd = Command::new("sipp");
    cmd.current_dir(d.dir.path())
        .arg("-sf")
        .arg(scenario(scenario_file))
        .arg(format!("127.0.0.1:{}", d.sip_port))
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &media.to_string()])
        .args(["-m", "1", "-l", "1", "-timeout", "30s", "-timeout_error", "-nostdin"])
        .args(["-trace_err", "-error_file", err_file.to_str().unwrap()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = ChildGuard(cmd.spawn().expect("sipp is installed (Debian package sip-tester)"));
    let (status, _, stderr) = child.output_timeout(timeout).unwrap();
    let log = std::fs::read_to_string(&err_file).unwrap_or_default();
    (
        status.success(),
        format!("exit {status}; stderr: {stderr}; error log: {log}"),
    )
}

fn injection(d: &Daemon, user: &str, password: &str) -> String {
    let path = d.dir.path().join(format!("users-{user}-{password}.csv"));
    std::fs::write(&path, format!("SEQUENTIAL\n{user};{SERVER};{password}\n")).unwrap();
    path.display().to_string()
}

#[test]
fn register_with_digest_right_and_wrong_password() {
    let d = Daemon::start("sipp-register").unwrap();
    add_user(&d, "alice", "alice-secret-1");
    let inf = injection(&d, "alice", "alice-secret-1");
    let creds = ["-au", "alice", "-ap", "alice-secret-1"];
    let (ok, log) = sipp(
        &d,
        "register.xml",
        &[&["-inf", &inf][..], &creds].concat(),
        Duration::from_secs(30),
    );
    assert!(ok, "REGISTER with the right password must get 200: {log}");

    let bad = injection(&d, "alice", "not-the-password");
    let creds = ["-au", "alice", "-ap", "not-the-password"];
    let (ok, log) = sipp(
        &d,
        "register-wrong-password.xml",
        &[&["-inf", &bad][..], &creds].concat(),
        Duration::from_secs(30),
    );
    assert!(ok, "REGISTER with a wrong password must get 403: {log}");

    // An unknown user is answered exactly like a wrong password.
    let ghost = injection(&d, "nobody", "whatever-pass");
    let creds = ["-au", "nobody", "-ap", "whatever-pass"];
    let (ok, log) = sipp(
        &d,
        "register-wrong-password.xml",
        &[&["-inf", &ghost][..], &creds].concat(),
        Duration::from_secs(30),
    );
    assert!(ok, "REGISTER of an unknown user must get 403: {log}");
}

/// 1 s of a µ-law tone at `hz`, raw (what SIPp's rtp_stream plays as PCMU).
fn ulaw_tone(path: &Path, hz: f64) {
    let bytes: Vec<u8> = (0..8000)
        .map(|i| {
            let s = (f64::sin(2.0 * std::f64::consts::PI * hz * f64::from(i) / 8000.0) * 12_000.0) as i16;
            linear_to_ulaw(s)
        })
        .collect();
    std::fs::write(path, bytes).unwrap();
}

/// ITU-T G.711 µ-law encoding of one sample.
fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let mut s = i32::from(sample);
    let sign = if s < 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s;
    }
    s = s.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as i32 | mantissa) as u8
}

#[test]
fn call_into_a_conference_is_heard_by_a_bot() {
    let d = Daemon::start("sipp-call").unwrap();
    d.cli_ok(&["conference", "add", "5001"]).unwrap();
    let rec = d.dir.path().join("bot.wav");
    let bot = d
        .bot(&[
            "--conference",
            "5001",
            "--name",
            "Listener",
            "--record",
            rec.to_str().unwrap(),
            "--duration",
            "7",
        ])
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let tone = d.dir.path().join("tone.ulaw");
    ulaw_tone(&tone, 800.0);
    let (ok, log) = sipp(&d, "call-conference.xml", &["-s", "5001"], Duration::from_secs(40));
    assert!(ok, "SIPp call: INVITE → 200 → ACK → media → BYE → 200: {log}");
    let (st, _, err) = bot.output_timeout(Duration::from_secs(30)).unwrap();
    assert!(st.success(), "bot: {st} {err}");
    let (rate, heard) = read_wav(&rec).unwrap();
    // The call lasted ~5 s of the bot's 7: look at the loudest 2 s window.
    let window = rate as usize * 2;
    let best = (0..heard.len().saturating_sub(window))
        .step_by(rate as usize / 4)
        .max_by(|a, b| rms(&heard[*a..*a + window]).total_cmp(&rms(&heard[*b..*b + window])))
        .unwrap();
    let part = &heard[best..best + window];
    let f = dominant_frequency(part, rate);
    assert!(rms(part) > 500.0, "the bot hears the SIP caller: rms {}", rms(part));
    assert!((f - 800.0).abs() <= 10.0, "dominant frequency {f} Hz");
}

fn add_user(d: &Daemon, user: &str, password: &str) {
    let out = d
        .cli_stdin(
            &["user", "add", user, "--type", "sip", "--password-stdin"],
            &format!("{password}\n"),
        )
        .unwrap();
    assert!(
        out.status.success(),
        "user add {user}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
