//! A browser (Chromium, driven by playwright-core: `tests/web/join-and-hear.mjs`)
//! joins a conference anonymously by link (`/c/<id>?name=Guest&autojoin=1`)
//! with a `confgate bot` that plays a 440 Hz tone and records:
//! - the browser receives audio (`getStats`: inbound-rtp bytes growing,
//!   a candidate pair succeeded) and sends its own;
//! - the bot's recording holds the browser's fake microphone (Chromium's
//!   beep: loud windows, not silence);
//! - a malformed signaling frame closes that session with 1008;
//! - screenshots of the main page, the join screen and the conference go to
//!   `tests/artifacts/web-client/`.
//!
//! Chromium gathers no ICE candidate on `lo` (it would use the host's own
//! eth0 address instead), so, as `TESTING.md` says, the daemon runs in one
//! network namespace and the browser in another, joined by a veth pair.
//! Needs root, iproute2, curl, node and /usr/bin/chromium; playwright-core
//! comes from `npm ci --prefix tests/web` (done here when missing).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use confgate_suite::{confgate_bin, read_wav, rms, ChildGuard, NetnsPair, TempDir};

const HTTP_PORT: u16 = 8080;

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web")
}

/// Largest RMS over 20 ms windows.
fn loudest_window(samples: &[i16], rate: u32) -> f64 {
    let w = (rate / 50) as usize;
    samples.chunks(w).map(rms).fold(0.0, f64::max)
}

/// `confgate <args>` in the server namespace with the daemon's environment.
fn confgate(net: &NetnsPair, dir: &Path) -> Command {
    let srv = &net.server_ip;
    let mut c = net.server_cmd(confgate_bin());
    c.current_dir(dir)
        .env_remove("CONFGATE_KEEP_TEST_DIRS")
        .env("CONFGATE_SERVER__DATA_DIR", dir.join("data"))
        .env("CONFGATE_SERVER__NAME", "web.test")
        .env("CONFGATE_HTTP__LISTEN", format!("{srv}:{HTTP_PORT}"))
        .env("CONFGATE_MEDIA__BIND", srv)
        .env("CONFGATE_MEDIA__ADVERTISE", srv)
        .env("CONFGATE_RELAY__NG_LISTEN", "")
        .env("CONFGATE_SIP__UDP_LISTEN", "")
        .env("CONFGATE_SIP__TCP_LISTEN", "")
        .env("CONFGATE_H323__SIGNALLING_LISTEN", "")
        .stdin(Stdio::null());
    c
}

fn wait_healthy(net: &NetnsPair, daemon: &mut ChildGuard, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = net
            .server_cmd("curl")
            .args(["-s", "--max-time", "1"])
            .arg(format!("http://{}:{HTTP_PORT}/healthz", net.server_ip))
            .stdin(Stdio::null())
            .output()
            .expect("curl");
        if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok" {
            return;
        }
        if let Some(st) = daemon.0.try_wait().unwrap() {
            panic!("confgate exited with {st}: {}", log(dir));
        }
        assert!(Instant::now() < deadline, "confgate is not healthy: {}", log(dir));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("serve.err")).unwrap_or_default()
}

#[test]
fn browser_and_bot_hear_each_other() {
    if !Path::new("/usr/bin/chromium").exists() {
        panic!("needs /usr/bin/chromium (scripts/test installs it)");
    }
    if !web_dir().join("node_modules/playwright-core").exists() {
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(web_dir())
            .status()
            .expect("npm (scripts/test installs it)");
        assert!(st.success(), "npm ci in tests/web failed");
    }
    let dir = TempDir::new("web-client");
    // Declared after the directory, so that it drops (and kills every
    // process in its namespaces) before the directory goes.
    let net = NetnsPair::create("web", 220 + (std::process::id() % 30) as u8).unwrap();
    let d = dir.path();

    let mut serve = confgate(&net, d);
    serve
        .arg("serve")
        .stdout(std::fs::File::create(d.join("serve.out")).unwrap())
        .stderr(std::fs::File::create(d.join("serve.err")).unwrap());
    let mut daemon = ChildGuard(serve.spawn().unwrap());
    wait_healthy(&net, &mut daemon, d);
    let out = confgate(&net, d).args(["conference", "add", "c1"]).output().unwrap();
    assert!(
        out.status.success(),
        "conference add: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let rec = d.join("bot.wav");
    let bot = confgate(&net, d)
        .args([
            "bot",
            "--conference",
            "c1",
            "--name",
            "Bot",
            "--play",
            "tone:440",
            "--duration",
            "16",
        ])
        .arg("--record")
        .arg(&rec)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bot = ChildGuard(bot);
    std::thread::sleep(Duration::from_millis(500));

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts/web-client");
    let browser = net
        .client_cmd("node")
        .arg(web_dir().join("join-and-hear.mjs"))
        .env("BASE_URL", format!("http://{}:{HTTP_PORT}", net.server_ip))
        .env("CONF", "c1")
        .env("ARTIFACTS", &artifacts)
        .env("STAY_SECS", "9")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (st, out, err) = ChildGuard(browser).output_timeout(Duration::from_secs(90)).unwrap();
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT from the browser script ({st}): {out}\n{err}\n{}", log(d)));
    let r: serde_json::Value = serde_json::from_str(line).unwrap();
    eprintln!("browser: {r}");
    assert!(
        r.get("error").is_none(),
        "browser script failed: {r}\n{err}\ndaemon: {}",
        log(d)
    );
    assert_eq!(r["prefilled"], "Guest", "the join screen takes name= from the link");
    assert_eq!(
        r["badFrame"]["code"], 1008,
        "a malformed frame closes its session with 1008: {r}"
    );
    let first = r["first"]["inbound"].as_f64().unwrap();
    let second = r["second"]["inbound"].as_f64().unwrap();
    assert!(
        r["second"]["pair"].as_bool().unwrap(),
        "a candidate pair succeeded: {r}"
    );
    let remote = r["second"]["remote"].as_str().unwrap_or_default();
    assert!(
        remote.starts_with(&format!("{}:", net.server_ip)),
        "media goes to the server namespace: {remote}"
    );
    assert!(
        second > first && second - first > 10_000.0,
        "inbound audio bytes grow in 3 s: {first} → {second}"
    );
    assert!(
        r["second"]["outbound"].as_f64().unwrap() > 5_000.0,
        "the browser sends audio: {r}"
    );
    let names = r["participants"].to_string();
    assert!(
        names.contains("Guest") && names.contains("Bot"),
        "participants: {names}"
    );
    assert_eq!(r["left"], true);

    let (st, _, err) = bot.output_timeout(Duration::from_secs(40)).unwrap();
    assert!(st.success(), "bot: {st} {err}");
    let (rate, heard) = read_wav(&rec).unwrap();
    assert_eq!(rate, 48_000);
    let loudest = loudest_window(&heard, rate);
    eprintln!(
        "bot recording: {} samples, loudest 20 ms window rms {loudest:.0}, overall rms {:.0}",
        heard.len(),
        rms(&heard)
    );
    assert!(
        loudest > 500.0,
        "the bot hears the browser's microphone: loudest window rms {loudest}"
    );
    drop(daemon);
}
