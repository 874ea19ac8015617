//! SIP over WebSocket (RFC 7118) with a real browser softphone: SIP.js
//! (npm `sip.js`, nobody here wrote it) in Chromium, driven by
//! playwright-core (`tests/web/sip-softphone.mjs`), against the daemon's
//! `/sip` on the HTTP listener.
//!
//! - [`sipjs_registers_and_calls_a_conference`]: the handshake names the
//!   `sip` subprotocol, and one without it is refused (400 with a text that
//!   says why); OPTIONS over the WebSocket gets 200, a malformed request a
//!   400 naming the header, and the connection stays usable; a double CRLF
//!   gets a CRLF; a message over 65535 bytes closes its own connection
//!   (1009) and no other; REGISTER with a wrong password gets 403 after
//!   the digest challenge, with the right one 200 listing the browser's
//!   `.invalid` contact; a call to a conference with a `confgate bot` playing a tone
//!   is answered (ICE-lite, DTLS-SRTP, Opus), the browser receives audio
//!   (`getStats` bytes growing, audio level above silence) and the bot
//!   hears the browser's fake microphone; BYE and unregister get 200.
//! - [`a_phone_reaches_the_browser_over_its_websocket`]: a SIP phone (SIPp)
//!   calls the account the browser registered over its WebSocket: the
//!   INVITE reaches the browser over that connection (Via `WS`), the
//!   browser's 486 comes back to the phone; once the browser has dropped
//!   the connection without unregistering, its binding is gone and the
//!   same call gets 480.
//! - [`a_phone_calls_the_browser_and_media_flows_both_ways`]: a SIP phone
//!   with plain RTP (baresip, G.711 µ-law) calls the browser: the INVITE
//!   carries our WebRTC offer, the browser answers with the phone's codec,
//!   and the relay forwards RTP ↔ DTLS-SRTP both ways (the browser's
//!   getStats counts the phone's packets received and decoded; the phone
//!   decodes the browser's microphone). The same through the transcoder
//!   when the browser answers with Opus only, and with a desk phone of the
//!   same account rung at once (plain offer, cancelled when the browser
//!   answers).
//!
//! As in `tests/web-client.rs`, the daemon runs in one network namespace
//! and Chromium in another (Chromium gathers no ICE candidate on `lo`).
//! Needs root, iproute2, curl, node, /usr/bin/chromium and sipp;
//! `npm ci --prefix tests/web` is run here when a package is missing.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use confgate_suite::{confgate_bin, read_wav, read_wav_mixed, repo_dir, rms, ChildGuard, NetnsPair, TempDir};

const HTTP_PORT: u16 = 8080;
const SIP_PORT: u16 = 5060;
const SERVER: &str = "ws.test";

/// One browser at a time (2 cores).
static BROWSER: Mutex<()> = Mutex::new(());

fn web_dir() -> PathBuf {
    repo_dir().join("tests/web")
}

/// Chromium, SIP.js and playwright-core are there (npm ci when missing).
fn need_browser() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "needs /usr/bin/chromium (scripts/test installs it)"
    );
    let modules = web_dir().join("node_modules");
    if !modules.join("playwright-core").exists() || !modules.join("sip.js").exists() {
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(web_dir())
            .status()
            .expect("npm (scripts/test installs it)");
        assert!(st.success(), "npm ci in tests/web failed");
    }
}

/// The daemon in the server namespace of a fresh pair. Fields drop in
/// order: the daemon, the namespaces (killing what runs in them), the
/// directory.
struct Server {
    _daemon: ChildGuard,
    net: NetnsPair,
    dir: TempDir,
}

impl Server {
    fn start(tag: &str) -> Self {
        let dir = TempDir::new(&format!("sip-websocket-{tag}"));
        let net = NetnsPair::create(tag, 190 + (std::process::id() % 30) as u8).unwrap();
        let d = dir.path();
        let mut serve = confgate(&net, d);
        serve
            .arg("serve")
            .stdout(std::fs::File::create(d.join("serve.out")).unwrap())
            .stderr(std::fs::File::create(d.join("serve.err")).unwrap());
        let mut daemon = ChildGuard(serve.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (code, body) = curl(&net, &[], "/healthz");
            if code == 200 && body.trim() == "ok" {
                break;
            }
            if let Some(st) = daemon.0.try_wait().unwrap() {
                panic!("confgate exited with {st}: {}", log(d));
            }
            assert!(Instant::now() < deadline, "confgate is not healthy: {}", log(d));
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            _daemon: daemon,
            net,
            dir,
        }
    }

    fn log(&self) -> String {
        log(self.dir.path())
    }

    /// `confgate <args>` with `stdin`; must succeed.
    fn cli(&self, args: &[&str], stdin: &str) {
        let mut child = confgate(&self.net, self.dir.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "confgate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `sip-softphone.mjs` in the client namespace with `env`.
    fn softphone(&self, env: &[(&str, &str)], artifacts: &Path) -> ChildGuard {
        let mut c = self.net.client_cmd("node");
        c.arg(web_dir().join("sip-softphone.mjs"))
            .env("BASE_URL", format!("http://{}:{HTTP_PORT}", self.net.server_ip))
            .env("DOMAIN", SERVER)
            .env("ARTIFACTS", artifacts)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        ChildGuard(c.spawn().unwrap())
    }

    /// A SIPp scenario from `tests/sipp/` in the server namespace, as a
    /// phone on the server's address calling the daemon; whether it passed,
    /// and its logs.
    fn sipp(&self, scenario: &str, service: &str, port: u16) -> (bool, String) {
        let d = self.dir.path();
        let err = d.join(format!("{scenario}-{port}.err"));
        let msg = d.join(format!("{scenario}-{port}.msg"));
        let child = self
            .net
            .server_cmd("sipp")
            .current_dir(d)
            .arg("-sf")
            .arg(repo_dir().join("tests/sipp").join(scenario))
            .arg(format!("{}:{SIP_PORT}", self.net.server_ip))
            .args(["-i", &self.net.server_ip, "-p", &port.to_string()])
            .args(["-mp", &(port + 1000).to_string(), "-s", service])
            .args(["-m", "1", "-l", "1", "-timeout", "30s", "-timeout_error", "-nostdin"])
            .args(["-trace_err", "-error_file", err.to_str().unwrap()])
            .args(["-trace_msg", "-message_file", msg.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sipp (Debian package sip-tester)");
        let (st, _, stderr) = ChildGuard(child).output_timeout(Duration::from_secs(40)).unwrap();
        let logs = format!(
            "exit {st}; {stderr}\nerrors: {}\nmessages: {}",
            std::fs::read_to_string(&err).unwrap_or_default(),
            std::fs::read_to_string(&msg).unwrap_or_default()
        );
        (st.success(), logs)
    }
}

/// `confgate <args>` in the server namespace with the daemon's environment.
fn confgate(net: &NetnsPair, dir: &Path) -> Command {
    let srv = &net.server_ip;
    let mut c = net.server_cmd(confgate_bin());
    c.current_dir(dir)
        .env_remove("CONFGATE_KEEP_TEST_DIRS")
        .env("CONFGATE_SERVER__DATA_DIR", dir.join("data"))
        .env("CONFGATE_SERVER__NAME", SERVER)
        .env("CONFGATE_HTTP__LISTEN", format!("{srv}:{HTTP_PORT}"))
        .env("CONFGATE_MEDIA__BIND", srv)
        .env("CONFGATE_MEDIA__ADVERTISE", srv)
        .env("CONFGATE_RELAY__NG_LISTEN", "")
        .env("CONFGATE_SIP__UDP_LISTEN", format!("{srv}:{SIP_PORT}"))
        .env("CONFGATE_SIP__TCP_LISTEN", "")
        .env("CONFGATE_H323__SIGNALLING_LISTEN", "")
        .env("CONFGATE_H323__RAS_LISTEN", "")
        .stdin(Stdio::null());
    c
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("serve.err")).unwrap_or_default()
}

/// `curl` in the server namespace: the status code and the body.
fn curl(net: &NetnsPair, headers: &[&str], path: &str) -> (u16, String) {
    let mut c = net.server_cmd("curl");
    c.args(["-s", "--max-time", "2", "-w", "\n%{http_code}"]);
    for h in headers {
        c.args(["-H", h]);
    }
    let out = c
        .arg(format!("http://{}:{HTTP_PORT}{path}", net.server_ip))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn artifacts() -> PathBuf {
    repo_dir().join("tests/artifacts/sip-websocket")
}

/// The script's `RESULT` line, parsed; panics with its output when there is
/// none or it reports an error.
fn result_of(browser: ChildGuard, server: &Server) -> serde_json::Value {
    let (st, out, err) = browser.output_timeout(Duration::from_secs(120)).unwrap();
    let line = out.lines().find_map(|l| l.strip_prefix("RESULT ")).unwrap_or_else(|| {
        panic!(
            "no RESULT from the browser script ({st}): {out}\n{err}\n{}",
            server.log()
        )
    });
    let r: serde_json::Value = serde_json::from_str(line).unwrap();
    eprintln!("browser: {r}");
    assert!(
        r.get("error").is_none(),
        "browser script failed: {r}\n{err}\ndaemon: {}",
        server.log()
    );
    r
}

/// Largest RMS over 20 ms windows.
fn loudest_window(samples: &[i16], rate: u32) -> f64 {
    let w = (rate / 50) as usize;
    samples.chunks(w).map(rms).fold(0.0, f64::max)
}

/// A WebSocket handshake to `/sip` asking for `protocol` (none: `None`).
fn handshake(net: &NetnsPair, protocol: Option<&str>) -> (u16, String) {
    let mut headers = vec![
        "Connection: Upgrade",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    let p = protocol.map(|p| format!("Sec-WebSocket-Protocol: {p}"));
    if let Some(p) = &p {
        headers.push(p);
    }
    let mut c = net.server_cmd("curl");
    c.args(["-s", "-i", "--max-time", "2"]);
    for h in &headers {
        c.args(["-H", h]);
    }
    let out = c
        .arg(format!("http://{}:{HTTP_PORT}/sip", net.server_ip))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

#[test]
fn sipjs_registers_and_calls_a_conference() {
    need_browser();
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start("swc");
    server.cli(
        &["user", "add", "alice", "--type", "sip", "--password-stdin"],
        "alice-secret-1\n",
    );
    server.cli(&["conference", "add", "c1"], "");

    // The handshake: with the subprotocol it is switched and named; without
    // it, or from a page on another origin, refused with a reason.
    let (code, text) = handshake(&server.net, Some("sip"));
    assert_eq!(code, 101, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("sec-websocket-protocol: sip"),
        "{text}"
    );
    let (code, text) = handshake(&server.net, None);
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("'sip' subprotocol"), "{text}");
    let (code, text) = handshake(&server.net, Some("chat"));
    assert_eq!(code, 400, "{text}");
    let (code, _) = curl(
        &server.net,
        &[
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Protocol: sip",
            "Origin: http://evil.example",
        ],
        "/sip",
    );
    assert_eq!(code, 403, "a page from another origin is refused");

    // A bot plays a tone in the conference and records what it hears.
    let rec = server.dir.path().join("bot.wav");
    let bot = confgate(&server.net, server.dir.path())
        .args(["bot", "--conference", "c1", "--name", "Bot", "--play", "tone:440"])
        .args(["--duration", "45", "--record"])
        .arg(&rec)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bot = ChildGuard(bot);
    std::thread::sleep(Duration::from_millis(500));

    let art = artifacts();
    let browser = server.softphone(
        &[
            ("MODE", "call"),
            ("SIP_USER", "alice"),
            ("PASSWORD", "alice-secret-1"),
            ("CONF", "c1"),
            ("STAY_SECS", "3"),
            ("REINVITE", "1"),
        ],
        &art,
    );
    let r = result_of(browser, &server);

    // Raw SIP over the WebSocket.
    let raw = &r["raw"];
    assert_eq!(raw["protocol"], "sip", "the browser sees the subprotocol: {raw}");
    let options = raw["options"].as_str().unwrap_or_default();
    assert!(options.starts_with("SIP/2.0 200 "), "OPTIONS: {options}");
    assert!(options.contains("Allow: "), "OPTIONS tells what we take: {options}");
    assert!(options.contains("branch=z9hG4bK-opt1"), "{options}");
    let bad = raw["malformed"].as_str().unwrap_or_default();
    assert!(bad.starts_with("SIP/2.0 400 "), "a malformed request: {bad}");
    assert!(
        bad.contains("Warning: ") && bad.contains("CSeq"),
        "the 400 names the header: {bad}"
    );
    assert_eq!(raw["keepalive"], "\r\n", "a double CRLF is answered with a CRLF: {raw}");
    let again = raw["afterMalformed"].as_str().unwrap_or_default();
    assert!(
        again.starts_with("SIP/2.0 200 ") && again.contains("branch=z9hG4bK-opt2"),
        "the connection serves on after a malformed request: {again}"
    );
    assert_eq!(
        raw["oversize"]["code"], 1009,
        "a message over 65535 bytes closes its connection: {raw}"
    );
    let after = raw["afterOversize"].as_str().unwrap_or_default();
    assert!(
        after.starts_with("SIP/2.0 200 ") && after.contains("branch=z9hG4bK-opt3"),
        "other connections are untouched: {after}"
    );
    assert_eq!(
        r["noSubprotocol"]["opened"], false,
        "a browser asking for no subprotocol is refused: {r}"
    );

    // Registration with digest.
    assert_eq!(r["wrong"]["status"], 403, "wrong password: {r}");
    assert_eq!(r["wrong"]["ok"], false);
    let call = &r["call"];
    assert_eq!(call["register"]["status"], 200, "right password: {call}");
    let contacts = call["register"]["contacts"].to_string();
    assert!(
        contacts.contains(".invalid") && contacts.contains("transport=ws"),
        "the 200 lists the browser's contact: {contacts}"
    );

    // The call into the conference.
    assert_eq!(call["established"], true, "the call is answered: {call}");
    let answer = call["answerLines"].to_string();
    for line in [
        "a=ice-lite",
        "a=setup:passive",
        "UDP/TLS/RTP/SAVPF",
        "opus/48000/2",
        "a=fingerprint:sha-256",
    ] {
        assert!(answer.contains(line), "the answer has {line}: {answer}");
    }
    assert!(
        answer.contains(&format!("{} ", server.net.server_ip)),
        "our candidate is the media address: {answer}"
    );
    assert!(r["second"]["pair"].as_bool().unwrap_or(false), "ICE succeeded: {r}");
    let first = r["first"]["inbound"].as_f64().unwrap_or_default();
    let second = r["second"]["inbound"].as_f64().unwrap_or_default();
    assert!(
        second > first && second - first > 10_000.0,
        "inbound audio bytes grow in 3 s: {first} → {second}"
    );
    assert!(
        r["second"]["audioLevel"].as_f64().unwrap_or_default() > 0.01,
        "the browser hears the tone, not silence: {r}"
    );
    assert!(
        r["second"]["outbound"].as_f64().unwrap_or_default() > 5_000.0,
        "the browser sends audio: {r}"
    );
    // Hold, resume and an ICE restart by re-INVITE, answered as WebRTC.
    let fingerprint = call["answerLines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str())
        .find(|l| l.starts_with("a=fingerprint:"))
        .unwrap_or_else(|| panic!("no fingerprint in the answer: {call}"))
        .to_string();
    check_reinvites(&r["reinvite"], "a=setup:passive", &fingerprint);
    assert_eq!(r["bye"], 200, "BYE: {r}");
    assert_eq!(r["unregister"]["status"], 200, "unregister: {r}");
    assert!(
        !r["unregister"]["contacts"].to_string().contains(".invalid"),
        "unregistered: {r}"
    );

    let (st, _, err) = bot.output_timeout(Duration::from_secs(60)).unwrap();
    assert!(st.success(), "bot: {st} {err}");
    let (rate, heard) = read_wav(&rec).unwrap();
    let loudest = loudest_window(&heard, rate);
    eprintln!(
        "bot recording: {} samples, loudest 20 ms window rms {loudest:.0}",
        heard.len()
    );
    assert!(
        loudest > 500.0,
        "the bot hears the browser's microphone: loudest window rms {loudest}"
    );
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_phone_reaches_the_browser_over_its_websocket() {
    need_browser();
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start("swp");
    server.cli(
        &["user", "add", "bob", "--type", "sip", "--password-stdin"],
        "bob-secret-1\n",
    );
    let art = artifacts().join("callee");
    let _ = std::fs::remove_dir_all(&art);
    let browser = server.softphone(
        &[
            ("MODE", "callee"),
            ("SIP_USER", "bob"),
            ("PASSWORD", "bob-secret-1"),
            ("WAIT_SECS", "30"),
        ],
        &art,
    );
    let wait_for = |file: &str| {
        let deadline = Instant::now() + Duration::from_secs(40);
        while !art.join(file).exists() {
            assert!(
                Instant::now() < deadline,
                "the browser did not get to '{file}': {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("registered");
    let registered = std::fs::read_to_string(art.join("registered")).unwrap();
    assert!(registered.contains("\"status\":200"), "{registered}");

    let (ok, logs) = server.sipp("call-user-busy.xml", "bob", 5071);
    assert!(ok, "the browser's 486 reaches the phone: {logs}\n{}", server.log());
    wait_for("dropped");
    let r = result_of(browser, &server);
    let invites = r["invites"].as_array().cloned().unwrap_or_default();
    assert_eq!(invites.len(), 1, "one INVITE reached the browser: {r}");
    let via = invites[0]["via"].as_str().unwrap_or_default();
    assert!(via.starts_with("SIP/2.0/WS "), "over the WebSocket: {via}");
    assert!(
        invites[0]["ruri"].as_str().unwrap_or_default().contains(".invalid"),
        "to the contact the browser registered: {r}"
    );

    // The browser is gone without unregistering: so is its binding.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("its registrations removed") {
        assert!(Instant::now() < deadline, "binding not removed: {}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, logs) = server.sipp("call-user-unavailable.xml", "bob", 5073);
    assert!(ok, "nobody to call any more: {logs}\n{}", server.log());
}

/// What the desk phone (baresip with its SIP trace) wrote.
fn desk_log(dir: &Path) -> String {
    ["desk.out", "desk.err"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `secs` seconds of a 16-bit mono tone at `hz`, sampled at `rate`.
fn write_tone(path: &Path, rate: u32, hz: f64, secs: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..rate * secs {
        let t = f64::from(i) / f64::from(rate);
        w.write_sample((8000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// A SIP phone with plain RTP and no ICE (baresip, G.711 µ-law, playing a
/// tone) calls the account a browser registered over its WebSocket: the
/// INVITE to the browser carries our WebRTC offer (ICE-lite, DTLS
/// fingerprint, rtcp-mux, SAVPF), the browser answers with the phone's
/// codec, and the relay forwards RTP ↔ DTLS-SRTP both ways: the browser's
/// getStats shows the phone's audio received and decoded, and the phone
/// decodes the browser's fake microphone; then the browser holds the call,
/// resumes it and restarts ICE by re-INVITE ([`check_reinvites`]).
#[test]
fn a_phone_calls_the_browser_and_media_flows_both_ways() {
    phone_calls_browser("swm", None, false);
}

/// What `reinvites()` of tests/web/sip-softphone.mjs saw (`r`): each
/// re-INVITE got 200 with a WebRTC answer keeping the DTLS association
/// (`setup` and `fingerprint` as in the call's first SDP of ours, BUNDLE,
/// rtcp-mux); hold (`a=sendonly`) is answered `recvonly` and the browser
/// stops receiving audio, resume is answered `sendrecv` and audio flows
/// again; the ICE restart is answered with new credentials of ours, and
/// the browser's ICE transport runs on them with audio flowing.
fn check_reinvites(r: &serde_json::Value, setup: &str, fingerprint: &str) {
    let packets = |a: &str, b: &str| {
        r[b]["packetsIn"].as_f64().unwrap_or_default() - r[a]["packetsIn"].as_f64().unwrap_or_default()
    };
    for (step, direction) in [("hold", "recvonly"), ("resume", "sendrecv"), ("restart", "sendrecv")] {
        let a = &r[step];
        assert_eq!(a["status"], 200, "re-INVITE {step}: {r}");
        assert_eq!(a["direction"], direction, "our answer's direction at {step}: {r}");
        let lines = a["lines"].to_string();
        for line in [
            "UDP/TLS/RTP/SAVPF",
            "a=ice-lite",
            "a=group:BUNDLE",
            "a=rtcp-mux",
            "a=mid:",
            setup,
            fingerprint,
        ] {
            assert!(lines.contains(line), "the answer to {step} has {line}: {r}");
        }
    }
    let ufrag = |step: &str| r[step]["ufrag"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        ufrag("hold"),
        r["before"]["remoteUfrag"].as_str().unwrap_or("?"),
        "hold keeps our ICE credentials: {r}"
    );
    assert_eq!(ufrag("hold"), ufrag("resume"), "resume keeps our ICE credentials: {r}");
    assert_ne!(
        ufrag("restart"),
        ufrag("resume"),
        "an ICE restart gets new credentials: {r}"
    );
    let held = packets("held1", "held2");
    assert!(held < 10.0, "a held browser gets no audio: {held} packets in 2 s ({r})");
    let resumed = packets("resumed1", "resumed2");
    assert!(
        resumed > 50.0,
        "audio flows again after resume: {resumed} packets in 2 s ({r})"
    );
    let after = &r["restarted2"];
    assert_ne!(
        after["localUfrag"], r["before"]["localUfrag"],
        "the browser restarted ICE: {r}"
    );
    assert_eq!(
        after["transportUfrag"], after["localUfrag"],
        "the ICE transport runs on the restarted credentials: {r}"
    );
    assert_eq!(after["pair"], true, "a candidate pair succeeded after the restart: {r}");
    assert!(
        matches!(after["ice"].as_str(), Some("connected" | "completed")),
        "ICE connected after the restart: {r}"
    );
    let restarted = packets("restarted1", "restarted2");
    assert!(
        restarted > 50.0,
        "audio flows after the ICE restart: {restarted} packets in 2 s ({r})"
    );
}

/// `bob` has a desk phone (plain SIP over UDP, never answering) as well as
/// the browser: both ring, each with an offer it can take (plain RTP to
/// the phone, WebRTC to the browser); the browser answers, the desk phone
/// is cancelled, and the media flows as with the browser alone.
#[test]
fn a_call_forked_to_a_desk_phone_and_a_browser_connects_the_browser() {
    phone_calls_browser("swf", None, true);
}

/// The same call with a browser that answers with Opus only: the relay
/// cannot forward G.711 to it as it is, so the call goes through the
/// transcoder (G.711 µ-law ↔ Opus), still both ways.
#[test]
fn a_phone_calls_a_browser_answering_another_codec_through_the_transcoder() {
    phone_calls_browser("swt", Some("opus"), false);
}

/// A baresip phone (PCMU) calls `bob`, a SIP.js browser registered over
/// its WebSocket; `answer_codec`: the only codec the browser answers with
/// (`None`: its own choice among those offered, the phone's); `desk`: bob
/// also has a desk phone registered (baresip, never answering).
fn phone_calls_browser(tag: &str, answer_codec: Option<&str>, desk: bool) {
    need_browser();
    // The plain call also re-INVITEs (hold, resume, ICE restart).
    let reinvite = answer_codec.is_none() && !desk;
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(tag);
    server.cli(
        &["user", "add", "bob", "--type", "sip", "--password-stdin"],
        "bob-secret-1\n",
    );
    let art = artifacts().join(format!("answer-{tag}"));
    let _ = std::fs::remove_dir_all(&art);
    let browser = server.softphone(
        &[
            ("MODE", "answer"),
            ("SIP_USER", "bob"),
            ("PASSWORD", "bob-secret-1"),
            ("WAIT_SECS", "30"),
            ("STAY_SECS", "2"),
            ("ANSWER_CODEC", answer_codec.unwrap_or("")),
            ("REINVITE", if reinvite { "1" } else { "" }),
        ],
        &art,
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    while !art.join("registered").exists() {
        assert!(
            Instant::now() < deadline,
            "the browser did not register: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let srv = server.net.server_ip.clone();
    // bob's desk phone: registered over UDP, rings, never answers.
    let mut desk_phone = None;
    if desk {
        let dir = server.dir.path().join("desk");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config"),
            format!(
                "poll_method\t\tepoll\n\
                 sip_listen\t\t{srv}:5094\n\
                 module_path\t\t/usr/lib/baresip/modules\n\
                 module\t\t\tg711.so\n\
                 module_app\t\taccount.so\n\
                 module_app\t\tmenu.so\n\
                 rtp_ports\t\t30100-30199\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("accounts"),
            format!(
                "<sip:bob@{SERVER};transport=udp>;outbound=\"sip:{srv}:{SIP_PORT}\";auth_pass=bob-secret-1;\
                 answermode=manual;regint=60;audio_codecs=PCMU\n"
            ),
        )
        .unwrap();
        let out = std::fs::File::create(server.dir.path().join("desk.out")).unwrap();
        let child = server
            .net
            .server_cmd("baresip")
            .args(["-4", "-s", "-f"])
            .arg(&dir)
            .args(["-t", "40"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(std::fs::File::create(server.dir.path().join("desk.err")).unwrap())
            .spawn()
            .expect("baresip (Debian package baresip-core)");
        desk_phone = Some(ChildGuard(child));
        let deadline = Instant::now() + Duration::from_secs(15);
        let desk_log = || desk_log(server.dir.path());
        while !server.log().contains("contacts=2 transport=\"UDP\"") {
            assert!(
                Instant::now() < deadline,
                "the desk phone did not register: {}",
                desk_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
    }

    // The phone: baresip in the server's namespace, no registration.
    let phone = server.dir.path().join("phone");
    let rec = phone.join("rec");
    std::fs::create_dir_all(&rec).unwrap();
    let wav = phone.join("tone.wav");
    write_tone(&wav, 8000, 440.0, 20);
    std::fs::write(
        phone.join("config"),
        format!(
            "poll_method\t\tepoll\n\
             sip_listen\t\t{srv}:5090\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             module\t\t\tg711.so\n\
             module\t\t\taufile.so\n\
             module\t\t\tsndfile.so\n\
             module_app\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             audio_source\t\taufile,{wav}\n\
             snd_path\t\t{rec}\n\
             rtp_ports\t\t30000-30099\n",
            wav = wav.display(),
            rec = rec.display(),
        ),
    )
    .unwrap();
    std::fs::write(
        phone.join("accounts"),
        format!("<sip:phone@{srv}:{SIP_PORT};transport=udp>;regint=0;answermode=auto;audio_codecs=PCMU\n"),
    )
    .unwrap();
    let out = std::fs::File::create(server.dir.path().join("phone.out")).unwrap();
    let err = std::fs::File::create(server.dir.path().join("phone.err")).unwrap();
    let caller = server
        .net
        .server_cmd("baresip")
        .args(["-4", "-f"])
        .arg(&phone)
        .args(["-e", &format!("/dial sip:bob@{srv}:{SIP_PORT}")])
        .args(["-t", if reinvite { "36" } else { "16" }])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("baresip (Debian package baresip-core)");
    let mut caller = ChildGuard(caller);

    let r = result_of(browser, &server);
    let st = caller.wait_timeout(Duration::from_secs(50)).unwrap();
    let phone_log = std::fs::read_to_string(server.dir.path().join("phone.out")).unwrap_or_default();
    assert!(st.success(), "baresip: {st}\n{phone_log}");
    assert_eq!(r["established"], true, "the browser answered: {r}\n{}", server.log());
    if let Some(d) = desk_phone.take() {
        drop(d);
        let log = desk_log(server.dir.path());
        let invite = log
            .split("\nINVITE sip:")
            .nth(1)
            .unwrap_or_else(|| panic!("the desk phone got no INVITE: {log}"));
        let invite = invite.split("\n\n").take(2).collect::<Vec<_>>().join("\n\n");
        assert!(
            invite.contains("RTP/AVP") && !invite.contains("SAVPF") && !invite.contains("a=ice-"),
            "the desk phone is offered plain RTP: {invite}"
        );
        assert!(
            log.contains("\nCANCEL sip:"),
            "the desk phone's ringing is cancelled: {log}"
        );
    }

    // Our offer to the browser is WebRTC's.
    let offer = r["invites"][0]["offer"].as_str().unwrap_or_default();
    for line in [
        "a=ice-lite",
        "UDP/TLS/RTP/SAVPF",
        "a=fingerprint:sha-256",
        "a=setup:actpass",
        "a=rtcp-mux",
        "PCMU/8000",
        "typ host",
    ] {
        assert!(offer.contains(line), "the offer to the browser has {line}: {offer}");
    }
    assert!(
        r["invites"][0]["via"]
            .as_str()
            .unwrap_or_default()
            .starts_with("SIP/2.0/WS "),
        "over the WebSocket: {r}"
    );

    // The browser receives and decodes the phone's audio: with the phone's
    // codec, forwarded by the relay; or with its own, transcoded.
    let (first, second) = (&r["first"], &r["second"]);
    assert_eq!(second["pair"], true, "ICE succeeded: {r}");
    let (codec, transcoded) = match answer_codec {
        None => ("audio/PCMU".to_string(), false),
        Some(c) => (format!("audio/{c}"), true),
    };
    assert_eq!(second["codec"], codec.as_str(), "the browser's codec: {r}");
    let packets = second["packetsIn"].as_f64().unwrap_or_default() - first["packetsIn"].as_f64().unwrap_or_default();
    assert!(packets > 100.0, "audio packets received in 3 s: {packets} ({r})");
    let decoded =
        |s: &serde_json::Value| s["samples"].as_f64().unwrap_or_default() - s["concealed"].as_f64().unwrap_or_default();
    let decoded = decoded(second) - decoded(first);
    // PCMU decodes to 8000 samples a second (Opus to 48000): over 2 s of PCMU in 3 s.
    assert!(
        decoded > 16_000.0,
        "samples decoded (not concealed) in 3 s: {decoded} ({r})"
    );
    assert!(
        second["audioLevel"].as_f64().unwrap_or_default() > 0.01,
        "the browser hears the tone, not silence: {r}"
    );
    assert!(
        second["packetsOut"].as_f64().unwrap_or_default() > 100.0,
        "the browser sends audio: {r}"
    );
    let log = server.log();
    assert!(
        log.contains("browser callee answered with WebRTC media") && log.contains(&format!("transcoded={transcoded}")),
        "{log}"
    );
    if reinvite {
        // Our offer's fingerprint; we answered it `a=setup:active`'s peer as DTLS server.
        let fingerprint = offer
            .split("\r\n")
            .find(|l| l.starts_with("a=fingerprint:"))
            .unwrap_or_else(|| panic!("no fingerprint in our offer: {offer}"));
        check_reinvites(&r["reinvite"], "a=setup:passive", fingerprint);
    }

    // The phone decoded the browser's microphone (SRTP → RTP through the relay).
    let files: Vec<PathBuf> = std::fs::read_dir(&rec)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .collect();
    assert_eq!(files.len(), 1, "one decoded recording: {files:?}\n{phone_log}");
    let (rate, heard) = read_wav_mixed(&files[0]).unwrap();
    let loudest = loudest_window(&heard, rate);
    eprintln!(
        "phone recording: {} samples, loudest 20 ms window rms {loudest:.0}; browser got {packets} packets, {decoded} samples decoded",
        heard.len()
    );
    assert!(
        loudest > 500.0,
        "the phone hears the browser's microphone: loudest window rms {loudest}"
    );
    assert!(!log.contains("panicked"), "{log}");
}
