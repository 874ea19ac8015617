//! confgate's media relay driven by a real SIP proxy over rtpengine's *ng*
//! protocol, between two real SIP user agents.
//!
//! Per case, a fresh pair of network namespaces (see `TESTING.md`):
//!
//! - server side `10.99.X.1`: `confgate serve` (ng control on UDP 2223, media
//!   on 30000–30099) and Kamailio 5.6 (SIP on 5060) as a stateful proxy and
//!   in-memory registrar whose `rtpengine` module points at confgate:
//!   `rtpengine_offer` on an INVITE with SDP, `rtpengine_answer` on a
//!   183/2xx with SDP, `rtpengine_delete` on BYE, CANCEL and failure;
//! - client side `10.99.X.2`: baresip "bob" (SIP 5081, plays 660 Hz,
//!   auto-answers) and baresip "alice" (SIP 5071, plays 440 Hz), both
//!   registered with Kamailio; alice calls bob for about 7 s, opus at 48 kHz.
//!
//! Checked: each side's decoded recording holds the other side's tone; the
//! SDP each UA saw points at the relay, with the expected profile and with
//! SDES keys that the relay generated itself (none of one UA's keys reaches
//! the other: the relay decrypts and re-encrypts in place); media comes
//! from the relay; confgate's `/metrics` shows the relay endpoints during the
//! call, none after it (Kamailio's delete), and no SRTP authentication
//! failure while the call runs (at hang-up baresip 1.0 sends its RTCP BYE
//! unencrypted, which the relay rightly drops: one such drop is allowed
//! after the call when the caller speaks SRTP); Kamailio logged no error.
//!
//! Cases: SDES-SRTP on both sides; plain RTP caller and SDES-SRTP callee
//! (`RTP/SAVP` in the offer, `RTP/AVP` in the answer: `transport-protocol`).
//!
//! Needs root, `ip netns` (iproute2), `kamailio`, `baresip` and `curl`; it
//! fails, not skips, without them. Every process is ended by its PID, the
//! namespaces are deleted also on failure, and the logs are printed when a
//! case fails (kept with `CONFGATE_KEEP_TEST_DIRS=1`).

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use confgate_suite::{
    confgate_bin, dominant_frequency, metric_value, read_wav_mixed, rms, ChildGuard, NetnsPair, TempDir,
};

/// The cases run one after the other: two cores, real-time audio.
static SERIAL: Mutex<()> = Mutex::new(());

const HTTP_PORT: u16 = 8080;
const NG_PORT: u16 = 2223;
const SIP_PORT: u16 = 5060;
const MEDIA_PORTS: (u16, u16) = (30000, 30099);
const ALICE: Ua = Ua {
    name: "alice",
    sip_port: 5071,
    tone: 440.0,
};
const BOB: Ua = Ua {
    name: "bob",
    sip_port: 5081,
    tone: 660.0,
};
/// How long alice stays in the call (baresip `-t`).
const CALL_SECS: u64 = 7;

const ENDPOINTS: &str = "confgate_relay_endpoints";
const SRTP_AUTH_DROPS: &str = "confgate_dropped_total{reason=\"relay_srtp_auth\"}";

#[derive(Clone, Copy)]
struct Ua {
    name: &'static str,
    sip_port: u16,
    tone: f64,
}

struct Case {
    name: &'static str,
    /// `/24` used inside this case's namespaces.
    subnet: u8,
    /// Whether alice (the caller) speaks SDES-SRTP; bob always does.
    alice_srtp: bool,
    offer_flags: &'static str,
    answer_flags: &'static str,
}

#[test]
fn sdes_srtp_on_both_sides_rekeyed_by_the_relay() {
    run(&Case {
        name: "kb-srtp",
        subnet: 10 + (std::process::id() % 100) as u8,
        alice_srtp: true,
        offer_flags: "replace-origin replace-session-connection ICE=remove",
        answer_flags: "replace-origin replace-session-connection ICE=remove",
    });
}

#[test]
fn plain_rtp_caller_and_sdes_srtp_callee() {
    run(&Case {
        name: "kb-plain",
        subnet: 120 + (std::process::id() % 100) as u8,
        alice_srtp: false,
        offer_flags: "replace-origin replace-session-connection ICE=remove RTP/SAVP",
        answer_flags: "replace-origin replace-session-connection ICE=remove RTP/AVP",
    });
}

fn run(case: &Case) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new(case.name);
    match run_case(case, dir.path()) {
        Ok(report) => println!("{}: {report}", case.name),
        Err(e) => {
            print_logs(dir.path());
            panic!("{}: {e:#}", case.name);
        }
    }
}

/// The Kamailio configuration: stateless where it can be, a transaction per
/// INVITE, record-routing so that BYE comes through, no authentication, no
/// database. `@…@` placeholders are filled in by [`kamailio_cfg`].
const KAMAILIO_CFG: &str = r#"#!KAMAILIO
debug=2
log_stderror=yes
memdbg=5
memlog=5
children=2
disable_tcp=yes
auto_aliases=no
listen=udp:@SRV@:@SIP_PORT@
alias="@SRV@:@SIP_PORT@"

mpath="@MODULES@"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "rtpengine.so"

modparam("usrloc", "db_mode", 0)
modparam("rr", "append_fromtag", 1)
modparam("rtpengine", "rtpengine_sock", "udp:@SRV@:@NG_PORT@")

request_route {
    xlog("L_INFO", "request $rm $ru from $si:$sp\n");
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    if (has_totag()) {
        if (loose_route()) {
            if (is_method("BYE")) {
                rtpengine_delete();
            } else if (is_method("ACK") && has_body("application/sdp")) {
                rtpengine_answer("@ANSWER_FLAGS@");
            }
            route(RELAY);
        }
        if (is_method("ACK") && t_check_trans()) {
            route(RELAY);
        }
        sl_send_reply("404", "Not here");
        exit;
    }
    if (is_method("CANCEL")) {
        if (t_check_trans()) {
            rtpengine_delete();
            route(RELAY);
        }
        exit;
    }
    t_check_trans();
    if (is_method("REGISTER")) {
        if (!save("location")) {
            sl_reply_error();
        }
        exit;
    }
    if (!is_method("INVITE")) {
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }
    record_route();
    if (!lookup("location")) {
        sl_send_reply("404", "Not Found");
        exit;
    }
    if (has_body("application/sdp")) {
        if (!rtpengine_offer("@OFFER_FLAGS@")) {
            sl_send_reply("503", "Media relay refused the offer");
            exit;
        }
    }
    t_on_reply("REPLY");
    t_on_failure("FAILED");
    route(RELAY);
}

route[RELAY] {
    if (!t_relay()) {
        sl_reply_error();
    }
    exit;
}

onreply_route[REPLY] {
    xlog("L_INFO", "reply $rs $rr\n");
    if (($rs == 183 || ($rs >= 200 && $rs < 300)) && has_body("application/sdp")) {
        rtpengine_answer("@ANSWER_FLAGS@");
    }
}

failure_route[FAILED] {
    rtpengine_delete();
}
"#;

/// Kamailio's module directory (Debian puts it under the multiarch triplet).
fn kamailio_modules() -> Result<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/lib/kamailio/modules")];
    if let Ok(dirs) = std::fs::read_dir("/usr/lib") {
        candidates.extend(dirs.filter_map(|d| d.ok()).map(|d| d.path().join("kamailio/modules")));
    }
    candidates
        .into_iter()
        .find(|d| d.join("rtpengine.so").exists())
        .ok_or_else(|| anyhow!("no Kamailio module directory with rtpengine.so: install the Debian package kamailio"))
}

/// Fails, naming the Debian package, unless every peer program is installed.
fn require_programs() -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
    let missing: Vec<String> = [
        ("kamailio", "kamailio"),
        ("baresip", "baresip"),
        ("curl", "curl"),
        ("ip", "iproute2"),
    ]
    .into_iter()
    .filter(|(bin, _)| !dirs.iter().any(|d| d.join(bin).exists()))
    .map(|(bin, pkg)| format!("{bin} (Debian package {pkg})"))
    .collect();
    ensure!(missing.is_empty(), "missing programs: {}", missing.join(", "));
    Ok(())
}

fn kamailio_cfg(srv: &str, case: &Case) -> Result<String> {
    Ok(KAMAILIO_CFG
        .replace("@MODULES@", &kamailio_modules()?.display().to_string())
        .replace("@SRV@", srv)
        .replace("@SIP_PORT@", &SIP_PORT.to_string())
        .replace("@NG_PORT@", &NG_PORT.to_string())
        .replace("@OFFER_FLAGS@", case.offer_flags)
        .replace("@ANSWER_FLAGS@", case.answer_flags))
}

/// Writes a baresip config directory for `ua`; returns (dir, recordings dir).
fn baresip_dir(root: &Path, net: &NetnsPair, ua: Ua, srtp: bool) -> Result<(PathBuf, PathBuf)> {
    let dir = root.join(ua.name);
    let rec = dir.join("rec");
    std::fs::create_dir_all(&rec)?;
    let config = format!(
        "poll_method\t\tepoll\n\
         sip_listen\t\t{cli}:{port}\n\
         module_path\t\t/usr/lib/baresip/modules\n\
         module\t\t\tg711.so\n\
         module\t\t\topus.so\n\
         module\t\t\tausine.so\n\
         module\t\t\taufile.so\n\
         module\t\t\tsndfile.so\n\
         module\t\t\tsrtp.so\n\
         module_app\t\taccount.so\n\
         module_app\t\tmenu.so\n\
         audio_source\t\tausine,{tone}\n\
         snd_path\t\t{rec}\n\
         rtp_ports\t\t40000-40199\n",
        cli = net.client_ip,
        port = ua.sip_port,
        tone = ua.tone,
        rec = rec.display(),
    );
    std::fs::write(dir.join("config"), config)?;
    let account = format!(
        "<sip:{name}@{srv}:{sip}>;answermode=auto;regint=60;audio_codecs=opus/48000/2{enc}\n",
        name = ua.name,
        srv = net.server_ip,
        sip = SIP_PORT,
        enc = if srtp { ";mediaenc=srtp-mand" } else { "" },
    );
    std::fs::write(dir.join("accounts"), account)?;
    Ok((dir, rec))
}

fn spawn_logged(mut cmd: Command, log_dir: &Path, name: &str) -> Result<ChildGuard> {
    let out = File::create(log_dir.join(format!("{name}.out")))?;
    let err = File::create(log_dir.join(format!("{name}.err")))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("spawning {name}"))?;
    Ok(ChildGuard(child))
}

fn log_of(log_dir: &Path, name: &str) -> String {
    let mut s = String::new();
    for ext in ["out", "err"] {
        if let Ok(b) = std::fs::read(log_dir.join(format!("{name}.{ext}"))) {
            s.push_str(&String::from_utf8_lossy(&b));
        }
    }
    s
}

/// Waits until `name`'s log contains `needle`; fails early if the process exits.
fn wait_for_log(child: &mut ChildGuard, log_dir: &Path, name: &str, needle: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if log_of(log_dir, name).contains(needle) {
            return Ok(());
        }
        if let Some(st) = child.0.try_wait()? {
            bail!("{name} exited with {st} before logging {needle:?}");
        }
        if Instant::now() >= deadline {
            bail!("{name} did not log {needle:?} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET /metrics` from inside the server namespace.
fn metrics(net: &NetnsPair) -> Result<String> {
    let out = net
        .server_cmd("curl")
        .args(["-sS", "--max-time", "2"])
        .arg(format!("http://{}:{HTTP_PORT}/metrics", net.server_ip))
        .stdin(Stdio::null())
        .output()
        .context("running curl (is it installed?)")?;
    ensure!(
        out.status.success(),
        "curl /metrics: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_healthy(net: &NetnsPair, confgate: &mut ChildGuard, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let out = net
            .server_cmd("curl")
            .args(["-s", "--max-time", "1"])
            .arg(format!("http://{}:{HTTP_PORT}/healthz", net.server_ip))
            .stdin(Stdio::null())
            .output()
            .context("running curl (is it installed?)")?;
        if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok" {
            return Ok(());
        }
        if let Some(st) = confgate.0.try_wait()? {
            bail!("confgate exited with {st} during start-up");
        }
        if Instant::now() >= deadline {
            bail!("confgate did not answer /healthz within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One SDP body seen in a baresip SIP trace (`-s`).
#[derive(Debug, Clone)]
struct SeenSdp {
    /// `UDP <from> -> <to>` of the datagram.
    from: String,
    to: String,
    /// The SIP start line.
    start: String,
    lines: Vec<String>,
}

impl SeenSdp {
    fn values<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.lines.iter().filter_map(move |l| l.strip_prefix(prefix))
    }

    /// `(port, proto)` of the first `m=audio` line.
    fn audio(&self) -> Option<(u16, String)> {
        let m = self.values("m=audio ").next()?;
        let mut f = m.split(' ');
        Some((f.next()?.parse().ok()?, f.next()?.to_owned()))
    }

    /// Every address in a `c=` line.
    fn connections(&self) -> Vec<String> {
        self.values("c=IN IP4 ").map(str::to_owned).collect()
    }

    /// The inline keys of the `a=crypto` lines.
    fn keys(&self) -> Vec<String> {
        self.values("a=crypto:")
            .filter_map(|c| c.split(' ').nth(2))
            .map(|k| k.trim_start_matches("inline:").to_owned())
            .collect()
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The SDP bodies in a baresip log with SIP trace, in order.
fn sdps_in_trace(log: &str) -> Vec<SeenSdp> {
    let log = strip_ansi(log);
    let mut found = Vec::new();
    let (mut from, mut to) = (String::new(), String::new());
    let mut start: Option<String> = None;
    let mut body: Option<Vec<String>> = None;
    for line in log.split('\n') {
        let line = line.trim_end_matches('\r');
        if let Some(lines) = body.as_mut() {
            let b = line.as_bytes();
            if b.len() >= 2 && b[0].is_ascii_lowercase() && b[1] == b'=' {
                lines.push(line.to_owned());
                continue;
            }
            found.push(SeenSdp {
                from: from.clone(),
                to: to.clone(),
                start: start.clone().unwrap_or_default(),
                lines: body.take().unwrap_or_default(),
            });
        }
        if let Some((f, t)) = line.strip_prefix("UDP ").and_then(|l| l.split_once(" -> ")) {
            (from, to) = (f.trim().to_owned(), t.trim().to_owned());
            start = None;
        } else if line == "v=0" {
            body = Some(vec![line.to_owned()]);
        } else if start.is_none() && !line.trim().is_empty() {
            start = Some(line.to_owned());
        }
    }
    if let Some(lines) = body {
        found.push(SeenSdp {
            from,
            to,
            start: start.unwrap_or_default(),
            lines,
        });
    }
    found
}

/// The first SDP in `log` whose start line begins with `start`, sent by
/// (`sent`) or to the UA listening on `ua_addr`.
fn find_sdp(log: &str, start: &str, ua_addr: &str, sent: bool) -> Result<SeenSdp> {
    sdps_in_trace(log)
        .into_iter()
        .find(|s| s.start.starts_with(start) && if sent { s.from == ua_addr } else { s.to == ua_addr })
        .ok_or_else(|| {
            anyhow!(
                "no SDP in a '{start}…' {} {ua_addr} in the SIP trace",
                if sent { "from" } else { "to" }
            )
        })
}

/// The single `*-dec.wav` in `rec`.
fn decoded_wav(rec: &Path) -> Result<PathBuf> {
    let files: Vec<PathBuf> = std::fs::read_dir(rec)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .collect();
    match files.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("expected one *-dec.wav in {}, found {files:?}", rec.display()),
    }
}

/// Dominant frequency and RMS of seconds 1–4 of a decoded recording.
fn analyse(rec: &Path) -> Result<(f64, f64, f64)> {
    let path = decoded_wav(rec)?;
    let (rate, samples) = read_wav_mixed(&path)?;
    let r = rate as usize;
    let secs = samples.len() as f64 / f64::from(rate);
    ensure!(samples.len() >= 4 * r, "{}: only {secs:.1} s recorded", path.display());
    let window = &samples[r..4 * r];
    Ok((dominant_frequency(window, rate), rms(window), secs))
}

fn run_case(case: &Case, root: &Path) -> Result<String> {
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs)?;
    require_programs()?;
    // Declared first so that it drops last, after every process guard.
    let net = NetnsPair::create(&case.name[..2], case.subnet)?;
    let srv = net.server_ip.clone();
    let mut report = String::new();

    // confgate, with its ng socket and media ports on the server address.
    let mut confgate_cmd = net.server_cmd(confgate_bin());
    confgate_cmd
        .arg("serve")
        .current_dir(root)
        .env("CONFGATE_SERVER__DATA_DIR", root.join("data"))
        .env("CONFGATE_SERVER__NAME", "relay.test")
        .env("CONFGATE_HTTP__LISTEN", format!("{srv}:{HTTP_PORT}"))
        .env("CONFGATE_RELAY__NG_LISTEN", format!("{srv}:{NG_PORT}"))
        .env("CONFGATE_MEDIA__BIND", &srv)
        .env("CONFGATE_MEDIA__ADVERTISE", &srv)
        .env("CONFGATE_MEDIA__PORT_MIN", MEDIA_PORTS.0.to_string())
        .env("CONFGATE_MEDIA__PORT_MAX", MEDIA_PORTS.1.to_string())
        // Kamailio is the SIP server here: confgate only relays media.
        .env("CONFGATE_SIP__UDP_LISTEN", "")
        .env("CONFGATE_SIP__TCP_LISTEN", "")
        .env("CONFGATE_H323__SIGNALLING_LISTEN", "")
        .env("CONFGATE_H323__RAS_LISTEN", "");
    let mut confgate = spawn_logged(confgate_cmd, &logs, "confgate")?;
    wait_healthy(&net, &mut confgate, Duration::from_secs(20))?;
    let before = metrics(&net)?;

    // Kamailio: its first ng ping must reach confgate.
    let kam_dir = root.join("kamailio");
    std::fs::create_dir_all(&kam_dir)?;
    let cfg = kam_dir.join("kamailio.cfg");
    std::fs::write(&cfg, kamailio_cfg(&srv, case)?)?;
    let mut kam_cmd = net.server_cmd("kamailio");
    kam_cmd
        .args(["-DD", "-E", "-f"])
        .arg(&cfg)
        .arg("-Y")
        .arg(&kam_dir)
        .arg("-w")
        .arg(&kam_dir);
    let mut kamailio = spawn_logged(kam_cmd, &logs, "kamailio")?;
    wait_for_log(
        &mut kamailio,
        &logs,
        "kamailio",
        &format!("rtpengine instance <udp:{srv}:{NG_PORT}> found, support for it enabled"),
        Duration::from_secs(15),
    )?;

    // bob registers and waits; alice registers and calls him.
    let (bob_dir, bob_rec) = baresip_dir(root, &net, BOB, true)?;
    let (alice_dir, alice_rec) = baresip_dir(root, &net, ALICE, case.alice_srtp)?;
    let mut bob_cmd = net.client_cmd("baresip");
    bob_cmd.args(["-4", "-s", "-f"]).arg(&bob_dir).args(["-t", "60"]);
    let mut bob = spawn_logged(bob_cmd, &logs, "bob")?;
    wait_for_log(&mut bob, &logs, "bob", "[1 binding]", Duration::from_secs(10))?;

    let mut alice_cmd = net.client_cmd("baresip");
    alice_cmd
        .args(["-4", "-s", "-f"])
        .arg(&alice_dir)
        .arg("-e")
        .arg(format!("/dial sip:bob@{srv}:{SIP_PORT}"))
        .args(["-t", &CALL_SECS.to_string()]);
    let mut alice = spawn_logged(alice_cmd, &logs, "alice")?;
    let dialled = Instant::now();

    // During the call: the relay's endpoints, SRTP authentication failures.
    // Authentication failures count until 1 s before alice hangs up: when
    // baresip 1.0 ends an SRTP call it sends its RTCP BYE in the clear
    // (seen in a capture: `81cb…` BYE + SDES, no SRTCP index or tag), and the
    // relay rightly drops that one if it arrives before Kamailio's delete.
    let mut max_endpoints: Option<f64> = None;
    let mut max_auth_drops: Option<f64> = None;
    let mut during = String::new();
    let deadline = Instant::now() + Duration::from_secs(CALL_SECS + 15);
    let alice_status = loop {
        if let Some(st) = alice.0.try_wait()? {
            break st;
        }
        ensure!(
            Instant::now() < deadline,
            "alice did not quit within {CALL_SECS} s + 15 s"
        );
        let text = metrics(&net)?;
        if let Some(v) = metric_value(&text, ENDPOINTS) {
            max_endpoints = Some(max_endpoints.map_or(v, |m| m.max(v)));
        }
        if let Some(v) = metric_value(&text, SRTP_AUTH_DROPS).filter(|_| dialled.elapsed().as_secs() < CALL_SECS - 1) {
            max_auth_drops = Some(max_auth_drops.map_or(v, |m| m.max(v)));
        }
        during = text;
        std::thread::sleep(Duration::from_millis(250));
    };
    ensure!(alice_status.success(), "alice exited with {alice_status}");

    // alice's BYE reaches bob through Kamailio, which deletes the call over ng.
    wait_for_log(&mut bob, &logs, "bob", "terminated", Duration::from_secs(10))?;
    bob.signal("TERM")?;
    bob.wait_timeout(Duration::from_secs(10))?;
    let mut after = metrics(&net)?;
    let released = Instant::now() + Duration::from_secs(5);
    while metric_value(&after, ENDPOINTS) != Some(0.0) && Instant::now() < released {
        std::thread::sleep(Duration::from_millis(200));
        after = metrics(&net)?;
    }
    kamailio.signal("TERM")?;
    kamailio.wait_timeout(Duration::from_secs(10))?;
    confgate.signal("TERM")?;
    let st = confgate.wait_timeout(Duration::from_secs(15))?;
    ensure!(st.success(), "confgate exited with {st} on SIGTERM");

    // Everything below is checked, and every failure reported together.
    let mut failures: Vec<String> = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            failures.push(what);
        }
    };

    // 1. Audio, both ways.
    for (ua, rec, other) in [(ALICE, &alice_rec, BOB), (BOB, &bob_rec, ALICE)] {
        match analyse(rec) {
            Ok((f, level, secs)) => {
                let _ = write!(
                    report,
                    "{} heard {f} Hz (rms {level:.0}, {secs:.1} s recorded); ",
                    ua.name
                );
                check(
                    (f - other.tone).abs() <= 10.0,
                    format!("{} heard {f} Hz, expected {}'s {} Hz", ua.name, other.name, other.tone),
                );
                check(
                    level > 1000.0,
                    format!("{} heard almost nothing: rms {level:.0}", ua.name),
                );
            }
            Err(e) => check(false, format!("{}'s recording: {e:#}", ua.name)),
        }
    }

    // 2. The SDP each UA saw, and where its media came from.
    let alice_log = log_of(&logs, "alice");
    let bob_log = log_of(&logs, "bob");
    let alice_addr = format!("{}:{}", net.client_ip, ALICE.sip_port);
    let bob_addr = format!("{}:{}", net.client_ip, BOB.sip_port);
    let alice_proto = if case.alice_srtp { "RTP/SAVP" } else { "RTP/AVP" };
    let in_range = |p: u16| (MEDIA_PORTS.0..=MEDIA_PORTS.1).contains(&p);
    let sdps = (|| -> Result<[SeenSdp; 4]> {
        Ok([
            find_sdp(&alice_log, "INVITE ", &alice_addr, true)?,
            find_sdp(&bob_log, "INVITE ", &bob_addr, false)?,
            find_sdp(&bob_log, "SIP/2.0 200", &bob_addr, true)?,
            find_sdp(&alice_log, "SIP/2.0 200", &alice_addr, false)?,
        ])
    })();
    match sdps {
        Ok([alice_offer, bob_offer, bob_answer, alice_answer]) => {
            check(
                alice_offer.audio().map(|a| a.1).as_deref() == Some(alice_proto),
                format!("alice offered {:?}, not {alice_proto}", alice_offer.audio()),
            );
            check(
                bob_offer
                    .audio()
                    .is_some_and(|(p, proto)| in_range(p) && proto == "RTP/SAVP"),
                format!("bob was offered {:?}, not RTP/SAVP on a relay port", bob_offer.audio()),
            );
            check(
                bob_offer.connections().iter().all(|c| *c == srv) && !bob_offer.connections().is_empty(),
                format!("bob was offered c= {:?}, not the relay", bob_offer.connections()),
            );
            check(
                alice_answer
                    .audio()
                    .is_some_and(|(p, proto)| in_range(p) && proto == alice_proto),
                format!(
                    "alice was answered {:?}, not {alice_proto} on a relay port",
                    alice_answer.audio()
                ),
            );
            check(
                alice_answer.connections().iter().all(|c| *c == srv) && !alice_answer.connections().is_empty(),
                format!("alice was answered c= {:?}, not the relay", alice_answer.connections()),
            );
            check(
                !bob_offer.keys().is_empty() && bob_answer.keys().len() == 1,
                format!(
                    "SDES towards bob: offered {} keys, he answered {}",
                    bob_offer.keys().len(),
                    bob_answer.keys().len()
                ),
            );
            check(
                bob_offer.keys().iter().all(|k| !alice_offer.keys().contains(k)),
                "one of alice's SDES keys reached bob: the relay did not re-key".into(),
            );
            check(
                alice_answer.keys().iter().all(|k| !bob_answer.keys().contains(k)),
                "bob's SDES key reached alice: the relay did not re-key".into(),
            );
            if case.alice_srtp {
                check(
                    !alice_offer.keys().is_empty() && alice_answer.keys().len() == 1,
                    format!(
                        "SDES towards alice: she offered {} keys, was answered {}",
                        alice_offer.keys().len(),
                        alice_answer.keys().len()
                    ),
                );
            } else {
                check(
                    alice_answer.keys().is_empty(),
                    format!("plain-RTP alice was answered with keys {:?}", alice_answer.keys()),
                );
            }
            let _ = write!(
                report,
                "alice offered {:?}, bob was offered {:?} with {} key(s) and answered with {} key(s), alice was answered {:?} with {} key(s); ",
                alice_offer.audio(),
                bob_offer.audio(),
                bob_offer.keys().len(),
                bob_answer.keys().len(),
                alice_answer.audio(),
                alice_answer.keys().len()
            );
        }
        Err(e) => check(false, format!("{e:#}")),
    }
    for (ua, log) in [(ALICE, &alice_log), (BOB, &bob_log)] {
        check(
            log.contains(&format!("receiving from {srv}:")),
            format!("{} received no RTP from the relay at {srv}", ua.name),
        );
        let srtp = ua.name == BOB.name || case.alice_srtp;
        check(
            log.contains("SRTP is Enabled") == srtp,
            format!("{}: SRTP enabled should be {srtp}", ua.name),
        );
    }

    // 3. Kamailio got no error from the relay.
    let kam_log = log_of(&logs, "kamailio");
    let kam_errors: Vec<&str> = kam_log.lines().filter(|l| l.contains("ERROR")).collect();
    check(
        kam_errors.is_empty(),
        format!("Kamailio logged errors: {kam_errors:#?}"),
    );

    // 4. The relay's metrics.
    let _ = write!(
        report,
        "{ENDPOINTS}: before {:?}, max during the call {max_endpoints:?}, after {:?}; relay_srtp_auth drops: max during {max_auth_drops:?}, after {:?}; other relay drops after: {}",
        metric_value(&before, ENDPOINTS),
        metric_value(&after, ENDPOINTS),
        metric_value(&after, SRTP_AUTH_DROPS),
        after
            .lines()
            .filter(|l| l.starts_with("confgate_dropped_total{reason=\"relay_") && !l.ends_with(" 0"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    // At most alice's clear-text RTCP BYE, and only if she speaks SRTP.
    let allowed_after = if case.alice_srtp { 1.0 } else { 0.0 };
    let missing: Vec<&str> = [ENDPOINTS, SRTP_AUTH_DROPS]
        .into_iter()
        .filter(|m| metric_value(&before, m).is_none())
        .collect();
    if missing.is_empty() {
        check(
            max_endpoints.is_some_and(|m| m >= 2.0),
            format!("{ENDPOINTS} never reached 2 during the call (max {max_endpoints:?}); last /metrics:\n{during}"),
        );
        check(
            max_auth_drops == Some(0.0) && metric_value(&after, SRTP_AUTH_DROPS).is_some_and(|v| v <= allowed_after),
            format!(
                "{SRTP_AUTH_DROPS}: max during the call {max_auth_drops:?}, after {:?} (at most {allowed_after})",
                metric_value(&after, SRTP_AUTH_DROPS)
            ),
        );
        check(
            metric_value(&after, ENDPOINTS) == Some(0.0),
            format!(
                "{ENDPOINTS} is {:?} 5 s after the call, not 0",
                metric_value(&after, ENDPOINTS)
            ),
        );
    } else {
        check(
            false,
            format!("GET /metrics does not expose {missing:?}; it served:\n{before}"),
        );
    }

    if failures.is_empty() {
        Ok(report)
    } else {
        Err(anyhow!(
            "{} check(s) failed:\n- {}\n(observed: {report})",
            failures.len(),
            failures.join("\n- ")
        ))
    }
}

/// Prints the tail of every log of a failed case.
fn print_logs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root.join("logs")) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let text = strip_ansi(&String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()));
        // baresip redraws its status line with CR; keep the log readable.
        let text: String = text
            .split('\n')
            .map(|l| l.rsplit('\r').find(|s| !s.trim().is_empty()).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let tail = text.len().saturating_sub(8_000);
        let tail = (tail..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        eprintln!("===== {} =====\n{}", p.display(), &text[tail..]);
    }
}
