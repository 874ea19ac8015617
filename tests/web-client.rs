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
//! `tests/web/account-join.mjs` covers joining as an account:
//! - [`personal_account_join_as_sip_user`]: a `sip` account logs in on
//!   `/account`, sees only the conference it takes part in, and its "Join
//!   conference" joins as `user@server` (admin API) with audio flowing;
//!   logout forgets the session;
//! - [`main_page_login_then_anonymous_join_is_the_account`]: a login on `/`
//!   followed by a join with only a display name joins as the account.
//!
//! The browser tests take [`BROWSER`] in turn (2 cores, one Chromium at a
//! time).
//! Chromium gathers no ICE candidate on `lo` (it would use the host's own
//! eth0 address instead), so, as `TESTING.md` says, the daemon runs in one
//! network namespace and the browser in another, joined by a veth pair.
//! Needs root, iproute2, curl, node and /usr/bin/chromium; playwright-core
//! comes from `npm ci --prefix tests/web` (done here when missing).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use confgate_suite::{confgate_bin, read_wav, rms, ChildGuard, NetnsPair, TempDir};

const HTTP_PORT: u16 = 8080;

/// One browser test at a time.
static BROWSER: Mutex<()> = Mutex::new(());

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

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts/web-client")
}

/// Chromium and playwright-core are there (npm ci when missing).
fn need_browser() {
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
}

/// A daemon in the server namespace of a fresh pair, for one browser test.
/// Fields drop in order: the daemon, then the namespaces (killing what runs
/// in them), then the directory, and last the turn at [`BROWSER`].
struct Web {
    _daemon: ChildGuard,
    net: NetnsPair,
    dir: TempDir,
    _one: MutexGuard<'static, ()>,
}

impl Web {
    /// Checks that the browser is there ([`need_browser`]), waits for this
    /// test's turn at [`BROWSER`], and starts the daemon.
    fn start(tag: &str) -> Self {
        need_browser();
        let one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
        let dir = TempDir::new(&format!("web-client-{tag}"));
        let net = NetnsPair::create(tag, 220 + (std::process::id() % 30) as u8).unwrap();
        let d = dir.path();
        let mut serve = confgate(&net, d);
        serve
            .arg("serve")
            .stdout(std::fs::File::create(d.join("serve.out")).unwrap())
            .stderr(std::fs::File::create(d.join("serve.err")).unwrap());
        let mut daemon = ChildGuard(serve.spawn().unwrap());
        wait_healthy(&net, &mut daemon, d);
        Self {
            _daemon: daemon,
            net,
            dir,
            _one: one,
        }
    }

    /// `confgate user add <user> --type <kind> --name <name>
    /// --password-stdin`, with `password`.
    fn add_user(&self, user: &str, kind: &str, name: &str, password: &str) {
        self.cli(
            &["user", "add", user, "--type", kind, "--name", name, "--password-stdin"],
            &format!("{password}\n"),
        );
    }

    /// `confgate <args>` (with `stdin` on its standard input); its stdout.
    fn cli(&self, args: &[&str], stdin: &str) -> String {
        let mut c = confgate(&self.net, self.dir.path());
        let mut child = c
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
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `<method> /api/v1/<path>` with the admin token, and with the JSON
    /// `body` if given; the response body (`null` when not JSON).
    fn api(&self, token: &str, method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
        let mut c = self.net.server_cmd("curl");
        c.args(["-s", "--max-time", "2", "-X", method, "-H"])
            .arg(format!("Authorization: Bearer {token}"));
        if let Some(body) = body {
            c.args(["-H", "content-type: application/json", "-d", body]);
        }
        let out = c
            .arg(format!("http://{}:{HTTP_PORT}/api/v1/{path}", self.net.server_ip))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Runs `account-join.mjs` with `mode` while watching the conference's
    /// participants through the admin API; returns the script's result and
    /// the first web participant seen.
    fn join_as_account(
        &self,
        mode: &str,
        user: &str,
        password: &str,
        conf: &str,
    ) -> (serde_json::Value, serde_json::Value) {
        let token = self.cli(&["admin", "token"], "").trim().to_string();
        let script = "account-join.mjs";
        let env = [
            ("MODE", mode),
            ("USER_ID", user),
            ("PASSWORD", password),
            ("CONF", conf),
            ("STAY_SECS", "8"),
        ];
        let mut browser = spawn_script(self, script, &env);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = serde_json::Value::Null;
        while Instant::now() < deadline && browser.0.try_wait().unwrap().is_none() {
            let v = self.api(&token, "GET", &format!("conferences/{conf}/participants"), None);
            if let Some(p) = v["participants"].as_array().and_then(|l| {
                l.iter()
                    .find(|p| p["protocol"].as_str().is_some_and(|x| x.contains("web")))
            }) {
                seen = p.clone();
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let r = script_result(self, script, browser, Duration::from_secs(90));
        eprintln!("web participant ({mode}): {seen}");
        (r, seen)
    }
}

/// Runs `tests/web/<script>` in the client namespace with `env` (and
/// BASE_URL, ARTIFACTS); returns its `RESULT` line, after checking that it
/// reported no error.
fn run_script(web: &Web, script: &str, env: &[(&str, &str)], timeout: Duration) -> serde_json::Value {
    script_result(web, script, spawn_script(web, script, env), timeout)
}

/// Starts `tests/web/<script>` in the client namespace with `env` (and
/// BASE_URL, ARTIFACTS).
fn spawn_script(web: &Web, script: &str, env: &[(&str, &str)]) -> ChildGuard {
    let mut c = web.net.client_cmd("node");
    c.arg(web_dir().join(script))
        .env("BASE_URL", format!("http://{}:{HTTP_PORT}", web.net.server_ip))
        .env("ARTIFACTS", artifacts())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    ChildGuard(c.spawn().unwrap())
}

/// Waits up to `timeout` for the started `script` to end; returns its
/// `RESULT` line, after checking that it reported no error.
fn script_result(web: &Web, script: &str, running: ChildGuard, timeout: Duration) -> serde_json::Value {
    let (st, out, err) = running.output_timeout(timeout).unwrap();
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT from {script} ({st}): {out}\n{err}\n{}", log(web.dir.path())));
    let r: serde_json::Value = serde_json::from_str(line).unwrap();
    eprintln!("{script}: {r}");
    assert!(
        r.get("error").is_none(),
        "{script} failed: {r}\n{err}\ndaemon: {}",
        log(web.dir.path())
    );
    r
}

/// Whether a `[a, b]` pair of counters grew by more than `by`.
fn grew(pair: &serde_json::Value, by: f64) -> bool {
    let a = pair[0].as_f64().unwrap_or_default();
    let b = pair[1].as_f64().unwrap_or_default();
    b > a + by
}

/// Audio flowed both ways while the browser was in (`getStats`).
fn assert_audio_flows(r: &serde_json::Value) {
    let first = r["first"]["inbound"].as_f64().unwrap_or_default();
    let second = r["second"]["inbound"].as_f64().unwrap_or_default();
    assert!(
        r["second"]["pair"].as_bool().unwrap_or(false),
        "a candidate pair succeeded: {r}"
    );
    assert!(
        second > first && second - first > 10_000.0,
        "inbound audio bytes grow in 3 s: {first} → {second}"
    );
    assert!(
        r["second"]["outbound"].as_f64().unwrap_or_default() > 5_000.0,
        "the browser sends audio: {r}"
    );
    assert_eq!(r["left"], true);
}

/// The session cookie as the browser stored it.
fn assert_cookie(r: &serde_json::Value) {
    assert_eq!(r["cookie"]["httpOnly"], true, "{r}");
    assert_eq!(r["cookie"]["sameSite"], "Strict", "{r}");
    assert_eq!(r["cookie"]["secure"], false, "plain HTTP: not Secure: {r}");
    assert_eq!(r["cookie"]["len"], 32, "128-bit id in hex: {r}");
}

/// How a [`tone_bot`] gets into its conference.
enum BotEntry<'a> {
    /// As a guest.
    Guest,
    /// As an account: user and password.
    Account(&'a str, &'a str),
    /// As a guest with the conference's PIN.
    Pin(&'a str),
}

/// A bot that plays a tone into `conf` for `secs`, so the browser has audio
/// to receive; it enters as `entry` says.
fn tone_bot(web: &Web, conf: &str, secs: u32, entry: BotEntry) -> ChildGuard {
    let mut c = confgate(&web.net, web.dir.path());
    c.args([
        "bot",
        "--conference",
        conf,
        "--name",
        "Bot",
        "--play",
        "tone:440",
        "--duration",
    ])
    .arg(secs.to_string())
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    match entry {
        BotEntry::Guest => {}
        BotEntry::Account(user, _) => {
            c.args(["--user", user, "--password-stdin"]);
        }
        BotEntry::Pin(pin) => {
            c.args(["--pin", pin]);
        }
    }
    let mut bot = c.spawn().unwrap();
    let mut stdin = bot.stdin.take().unwrap();
    if let BotEntry::Account(_, password) = entry {
        stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
    }
    drop(stdin);
    std::thread::sleep(Duration::from_millis(500));
    ChildGuard(bot)
}

#[test]
fn personal_account_join_as_sip_user() {
    let web = Web::start("acct");
    web.add_user("carol", "sip", "Carol Sip", "carol-secret-1");
    web.cli(&["user", "add", "dave", "--type", "ws", "--name", "Dave"], "");
    web.cli(
        &["user", "add", "botty", "--type", "loop", "--password-stdin"],
        "botty-secret-1\n",
    );
    web.cli(
        &[
            "conference",
            "add",
            "board",
            "--name",
            "Board meeting",
            "--closed",
            "--no-anonymous",
            "--participant",
            "carol",
            "--participant",
            "botty",
        ],
        "",
    );
    web.cli(
        &[
            "conference",
            "add",
            "secret",
            "--name",
            "Not for Carol",
            "--closed",
            "--no-anonymous",
            "--participant",
            "dave",
        ],
        "",
    );
    let bot = tone_bot(&web, "board", 30, BotEntry::Account("botty", "botty-secret-1"));

    let (r, seen) = web.join_as_account("account", "carol", "carol-secret-1", "board");
    assert_cookie(&r);
    assert_eq!(
        r["listed"],
        serde_json::json!(["board"]),
        "only carol's conference is offered: {r}"
    );
    assert_eq!(
        r["menu"],
        serde_json::json!(["board"]),
        "the side menu offers the same: {r}"
    );
    assert_eq!(r["joinLabels"], serde_json::json!(["Join conference: Board meeting"]));
    assert!(
        r["url"].as_str().unwrap_or_default().contains("/c/board?autojoin=1"),
        "{r}"
    );
    assert!(r["participants"].to_string().contains("Bot"), "the bot is in too: {r}");
    assert_eq!(seen["account"], "carol@web.test", "joined as the account: {seen}");
    assert_eq!(r["welcomeUser"], "carol@web.test", "{r}");
    assert_audio_flows(&r);
    assert_eq!(r["afterLogout"], 401, "logout forgets the session: {r}");
    assert!(r["cookieAfterLogout"].is_null(), "logout clears the cookie: {r}");
    drop(bot);
    drop(web);
}

#[test]
fn main_page_login_then_anonymous_join_is_the_account() {
    let web = Web::start("main");
    web.add_user("erin", "ws", "Erin", "erin-secret-1");
    web.cli(&["conference", "add", "lounge"], "");
    let bot = tone_bot(&web, "lounge", 30, BotEntry::Guest);

    let (r, seen) = web.join_as_account("main", "erin", "erin-secret-1", "lounge");
    assert_cookie(&r);
    assert_eq!(
        seen["account"], "erin@web.test",
        "recognised by the cookie, not a guest: {seen}"
    );
    assert_eq!(seen["display_name"], "Anon Name", "with the name typed in: {seen}");
    assert_eq!(r["welcomeUser"], "erin@web.test", "{r}");
    assert!(r["participants"].to_string().contains("Bot"), "the bot is in too: {r}");
    assert_audio_flows(&r);

    // A login flood from one address over HTTP meets the same lock-out
    // (routing.lockout_after = 5 by default): then even the right password
    // is refused from there for a while.
    let login = |user: &str, password: &str| -> String {
        let out = web
            .net
            .client_cmd("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3"])
            .args(["-H", "content-type: application/json", "-d"])
            .arg(serde_json::json!({ "user": user, "password": password }).to_string())
            .arg(format!("http://{}:{HTTP_PORT}/api/session", web.net.server_ip))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let codes: Vec<String> = (0..6).map(|i| login(&format!("nobody{i}"), "wrong")).collect();
    assert_eq!(codes[..5], ["401"; 5], "wrong logins: {codes:?}");
    assert_eq!(codes[5], "429", "the sixth is locked out: {codes:?}");
    assert_eq!(login("erin", "erin-secret-1"), "429", "the address stays locked out");
    drop(bot);
    drop(web);
}

#[test]
fn browser_and_bot_hear_each_other() {
    let web = Web::start("web");
    let (net, d) = (&web.net, web.dir.path());
    web.cli(&["conference", "add", "c1"], "");

    let rec = d.join("bot.wav");
    let bot = confgate(net, d)
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

    let r = run_script(
        &web,
        "join-and-hear.mjs",
        &[("CONF", "c1"), ("STAY_SECS", "9")],
        Duration::from_secs(90),
    );
    assert_eq!(r["prefilled"], "Guest", "the join screen takes name= from the link");
    assert_eq!(
        r["badFrame"]["code"], 1008,
        "a malformed frame closes its session with 1008: {r}"
    );
    // Both byte counts are there (assert_audio_flows reads a missing one as 0).
    assert!(r["first"]["inbound"].is_number(), "{r}");
    assert!(r["second"]["inbound"].is_number(), "{r}");
    assert_audio_flows(&r);
    let remote = r["second"]["remote"].as_str().unwrap_or_default();
    assert!(
        remote.starts_with(&format!("{}:", net.server_ip)),
        "media goes to the server namespace: {remote}"
    );
    let names = r["participants"].to_string();
    assert!(
        names.contains("Guest") && names.contains("Bot"),
        "participants: {names}"
    );

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
    drop(web);
}

/// Two browsers, one logged in and one a guest by link, both with a
/// (fake) camera and microphone, see and hear each other through the
/// relay's video forwarding and the mixer.
#[test]
fn two_browsers_see_and_hear_each_other() {
    let web = Web::start("two");
    web.add_user("alice", "ws", "Alice", "alice-secret-1");
    web.cli(&["conference", "add", "meet"], "");
    let r = run_script(
        &web,
        "two-browsers.mjs",
        &[("CONF", "meet"), ("USER_ID", "alice"), ("PASSWORD", "alice-secret-1")],
        Duration::from_secs(120),
    );
    let grew = |who: &str, key: &str| {
        let a = r[format!("{who}1")][key].as_f64().unwrap_or_default();
        let b = r[format!("{who}2")][key].as_f64().unwrap_or_default();
        (a, b)
    };
    for who in ["alice", "guest"] {
        let (f1, f2) = grew(who, "videoFrames");
        assert!(
            f2 > f1 + 20.0,
            "{who} decodes the other's video: {f1} then {f2} frames\n{r}"
        );
        let (e1, e2) = grew(who, "audioEnergy");
        assert!(e2 > e1, "{who} hears the other (audio energy {e1} then {e2})\n{r}");
        assert_eq!(
            r[format!("{who}2")]["videoStreams"],
            1,
            "one other participant's video: {r}"
        );
    }
    assert_eq!(
        r["alice2"]["tiles"],
        serde_json::json!(["Guest"]),
        "Alice's tile names the guest: {r}"
    );
    assert_eq!(
        r["guest2"]["tiles"],
        serde_json::json!(["Alice"]),
        "the guest's tile names Alice: {r}"
    );
    assert_eq!(r["tileGoneAfterLeave"], true, "{r}");
}

/// A closed conference with a PIN: the browser asks for it, says when it
/// is wrong (with the attempts left), joins with the right one; three wrong
/// PINs end the attempt with a clear message.
#[test]
fn closed_conference_asks_for_the_pin() {
    let web = Web::start("pin");
    web.cli(&["conference", "add", "vault", "--closed", "--pin", "4711"], "");
    let bot = tone_bot(&web, "vault", 40, BotEntry::Pin("4711"));
    let r = run_script(
        &web,
        "pin.mjs",
        &[("CONF", "vault"), ("PIN", "4711"), ("WRONG", "1234")],
        Duration::from_secs(120),
    );
    drop(bot);
    let screen = &r["pinScreen"];
    assert_eq!(screen["focused"], "pin-input", "the PIN field has the focus: {r}");
    assert_eq!(screen["label"], "PIN", "{r}");
    assert!(
        screen["help"]
            .as_str()
            .unwrap_or_default()
            .contains("never starts with 0"),
        "{r}"
    );
    assert_eq!(screen["attempts"], "3 attempts left.", "{r}");
    assert_eq!(screen["wrongShown"], false, "no error before a try: {r}");
    assert_eq!(
        r["leadingZero"],
        serde_json::json!({"valid": false, "patternMismatch": true}),
        "the form refuses a PIN starting with 0: {r}"
    );
    let wrong = &r["afterWrong"];
    assert_eq!(wrong["alert"], "Wrong PIN. Try again.", "{r}");
    assert_eq!(wrong["role"], "alert", "{r}");
    assert_eq!(wrong["attempts"], "2 attempts left.", "{r}");
    assert_eq!(wrong["cleared"], "", "the wrong PIN is cleared: {r}");
    assert_eq!(wrong["invalid"], "true", "{r}");
    let joined = &r["joined"];
    let names = joined["participants"].to_string();
    assert!(
        names.contains("Guest (you)") && names.contains("Bot"),
        "in the conference: {r}"
    );
    assert!(grew(&joined["audioBytes"], 10_000.0), "audio flows after the PIN: {r}");
    assert_eq!(
        r["exhausted"]["attemptsSeen"],
        serde_json::json!(["3 attempts left.", "2 attempts left.", "Last attempt."]),
        "{r}"
    );
    assert_eq!(
        r["exhausted"]["ended"], "Three wrong PINs: this attempt has ended.",
        "{r}"
    );
    assert_eq!(r["left"], true);
    let log = log(web.dir.path());
    assert!(
        !log.contains("locked out"),
        "four wrong PINs stay below the lock-out: {log}"
    );
}

/// A closed conference with a waiting room: a guest waits (screenshot
/// `waiting-room.png`), a logged-in moderator admits it from its browser,
/// and the guest is in the conference; another guest is rejected, a third
/// cancels its wait.
#[test]
fn waiting_room_and_a_moderator_admits_from_the_browser() {
    let web = Web::start("lob");
    web.add_user("mona", "ws", "Mona", "mona-secret-1");
    web.cli(
        &[
            "conference",
            "add",
            "board",
            "--closed",
            "--lobby",
            "--moderator",
            "mona",
        ],
        "",
    );
    let r = run_script(
        &web,
        "lobby.mjs",
        &[
            ("CONF", "board"),
            ("MOD_USER", "mona"),
            ("MOD_PASSWORD", "mona-secret-1"),
        ],
        Duration::from_secs(150),
    );
    let waiting = &r["waiting"];
    assert_eq!(waiting["heading"], "Waiting room", "{r}");
    assert!(
        waiting["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Conference ID: board"),
        "{r}"
    );
    assert!(
        waiting["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Waiting for a moderator"),
        "{r}"
    );
    assert!(waiting["text"].as_str().unwrap_or_default().contains("Visitor"), "{r}");
    assert_eq!(waiting["cancelFocused"], "lobby-cancel", "{r}");
    assert!(artifacts().join("waiting-room.png").exists());
    assert_eq!(r["moderatorSees"], serde_json::json!(["Visitor", "Stranger"]), "{r}");
    assert_eq!(r["admitLabel"], "Admit Visitor", "{r}");
    let names = r["admitted"]["participants"].to_string();
    assert!(
        names.contains("Visitor (you)") && names.contains("Mona"),
        "admitted into the conference: {r}"
    );
    // The room is Mona's browser and its fake microphone: the mix is often
    // near silence, and how many bytes variable-rate Opus spends on it
    // varies (between 4,979 and 13,066 in 2.5 s here). Packets come at 50
    // a second whatever the sound: 2.5 s lie between the two samples.
    assert!(
        grew(&r["admitted"]["audioPackets"], 60.0),
        "the admitted guest receives the room's audio: {r}"
    );
    assert_eq!(r["rejected"], "A moderator did not let you in.", "{r}");
    assert_eq!(r["cancelled"]["ended"], "You left the conference.", "{r}");
    assert_eq!(r["cancelled"]["moderatorList"], serde_json::json!([]), "{r}");
    assert_eq!(r["mutedNotice"], "A moderator muted your microphone.", "{r}");
    assert_eq!(r["removed"], "A moderator removed you from the conference.", "{r}");
    assert_eq!(r["endedByModerator"], "The conference was ended.", "{r}");
    assert_eq!(r["left"], true);
}

/// Chat between two browsers in a conference that allows it (keyboard and
/// button, names, order, no markup); a chat flood closes only the flooding
/// session; a conference with chat off hides the panel and refuses chat
/// frames with `chat_disabled`.
#[test]
fn chat_between_browsers_and_chat_off() {
    let web = Web::start("cht");
    web.cli(&["conference", "add", "talk"], "");
    web.cli(&["conference", "add", "quiet", "--no-chat"], "");
    let shown = web.cli(&["conference", "show", "quiet"], "");
    assert!(shown.contains("chat:             off"), "{shown}");
    let r = run_script(
        &web,
        "chat.mjs",
        &[("CONF", "talk"), ("QUIET", "quiet")],
        Duration::from_secs(120),
    );
    assert_eq!(
        r["panel"],
        serde_json::json!({"visible": true, "label": "Message", "logLive": "polite", "logTag": "OL"}),
        "{r}"
    );
    assert_eq!(r["inputAfterSend"], "", "Enter sent the line: {r}");
    let expected = serde_json::json!([
        {"from": "Ann (you)", "text": "Hello from Ann\nsecond line"},
        {"from": "Ben", "text": "Hi Ann, Ben here <b>not bold</b>"},
    ]);
    assert_eq!(r["annSees"], expected, "{r}");
    assert_eq!(
        r["benSees"],
        serde_json::json!([
            {"from": "Ann", "text": "Hello from Ann\nsecond line"},
            {"from": "Ben (you)", "text": "Hi Ann, Ben here <b>not bold</b>"},
        ]),
        "{r}"
    );
    assert_eq!(r["boldTags"], 0, "chat text is text, not markup: {r}");
    assert_eq!(r["flood"]["code"], 1008, "the flood is closed: {r}");
    assert_eq!(r["flood"]["reason"], "rate limited", "{r}");
    assert!(
        r["flood"]["got"].to_string().contains("error:rate_limited"),
        "told why before the close: {r}"
    );
    let seen = r["floodLinesSeen"].as_u64().unwrap_or(0);
    // The per-session burst (`listen::web::RATE_BURST` = 40, less hello and
    // join), plus the few tokens (10/s) that refill while the burst arrives.
    assert!(
        (30..60).contains(&seen),
        "the room got the burst's worth of lines, not all 80: {seen}"
    );
    assert_eq!(r["afterFlood"], true, "the others keep chatting: {r}");
    assert_eq!(r["quietPanelHidden"], true, "{r}");
    assert_eq!(r["quietJoined"], false, "joined says chat is off: {r}");
    assert!(
        r["quiet"]["got"].to_string().contains("error:chat_disabled"),
        "a chat frame in a conference without chat: {r}"
    );
    // The REST API shows and changes the setting; so does the CLI.
    let token = web.cli(&["admin", "token"], "").trim().to_string();
    assert_eq!(web.api(&token, "GET", "conferences/quiet", None)["chat"], false);
    assert_eq!(web.api(&token, "GET", "conferences/talk", None)["chat"], true);
    let patched = web.api(&token, "PATCH", "conferences/talk", Some(r#"{"chat":false}"#));
    assert_eq!(patched["chat"], false, "PATCH turns chat off: {patched}");
    web.cli(&["conference", "update", "quiet", "--chat"], "");
    assert!(web
        .cli(&["conference", "show", "quiet"], "")
        .contains("chat:             on"));
    assert_eq!(web.api(&token, "GET", "conferences/quiet", None)["chat"], true);
}

/// Microphone, camera and speaker chosen on the join screen and changed
/// during the call (Chromium's fake devices: three cameras, three
/// microphones, three speakers); the other participant keeps receiving.
#[test]
fn device_selection_before_and_during_the_call() {
    let web = Web::start("dev");
    web.cli(&["conference", "add", "gear"], "");
    let r = run_script(&web, "devices.mjs", &[("CONF", "gear")], Duration::from_secs(120));
    let labels = |k: &str| r["join"][k].to_string();
    assert!(
        labels("cams").contains("fake_device_0") && labels("cams").contains("fake_device_2"),
        "the cameras are listed: {r}"
    );
    assert!(labels("mics").contains("Fake Audio Input 2"), "{r}");
    assert!(labels("spks").contains("Fake Audio Output 1"), "{r}");
    assert_eq!(
        r["join"]["labels"],
        serde_json::json!(["Microphone->dev-mic", "Camera->dev-cam", "Speaker->dev-spk"]),
        "every select has its label: {r}"
    );
    assert_eq!(r["previewShown"], true, "{r}");
    assert_eq!(
        r["startedWith"]["cam"]["id"], r["chosen"]["cam"],
        "the call starts with the chosen camera: {r}"
    );
    assert_eq!(r["startedWith"]["mic"]["id"], r["chosen"]["mic"], "and microphone: {r}");
    assert_eq!(
        r["panel"],
        serde_json::json!({"expanded": "true", "inRoom": true, "focused": "dev-mic"}),
        "{r}"
    );
    assert_eq!(r["switchedTo"]["cam"]["id"], r["wanted"]["cam"], "{r}");
    assert_eq!(r["switchedTo"]["mic"]["id"], r["wanted"]["mic"], "{r}");
    assert_eq!(r["switchedTo"]["cam"]["state"], "live", "{r}");
    assert_eq!(r["sinkId"], r["wanted"]["spk"], "the speaker follows the choice: {r}");
    assert!(
        r["peerFramesBefore"].as_f64().unwrap_or_default() >= 10.0,
        "the peer decoded the first camera: {r}"
    );
    assert!(grew(&r["sentFrames"], 30.0), "the new camera is sent: {r}");
    assert!(grew(&r["peerFrames"], 30.0), "the peer keeps decoding video: {r}");
    assert!(grew(&r["peerAudio"], 5_000.0), "and hearing the new microphone: {r}");
}

/// Screen sharing as a second video: the viewer gets the presenter's
/// screen as its own tile "<name> (screen)", decoded, next to the
/// presenter's camera; on the presenter's bundle the screen has payload
/// types of its own (VP8 97) apart from the camera's (VP8 96). Headless
/// Chromium captures its screen with `--use-fake-ui-for-media-stream`.
#[test]
fn screen_share_is_a_tile_of_its_own() {
    let web = Web::start("scr");
    web.cli(&["conference", "add", "demo"], "");
    let r = run_script(&web, "screen.mjs", &[("CONF", "demo")], Duration::from_secs(120));
    assert_eq!(r["presenter"]["pressed"], "true", "{r}");
    assert_eq!(r["presenter"]["button"], "Stop sharing", "{r}");
    assert_eq!(r["presenter"]["ownScreenTile"], true, "{r}");
    let v = &r["viewer"];
    assert_eq!(
        v["captions"],
        serde_json::json!(["Pia (screen)", "Viv (you)", "Pia"]),
        "the screen is a tile of its own, named, with the camera beside it: {r}"
    );
    assert!(grew(&v["screenFrames"], 5.0), "the viewer decodes the screen: {r}");
    assert!(grew(&v["cameraFrames"], 30.0), "and still the camera: {r}");
    assert_eq!(v["screenPt"], 97, "the screen keeps its own payload type: {r}");
    assert_eq!(v["cameraPt"], 96, "{r}");
    assert_ne!(v["screenSize"], "0x0", "{r}");
    let sent = &r["presenterSent"];
    assert!(
        sent["1"].as_f64().unwrap_or_default() > 0.0 && sent["2"].as_f64().unwrap_or_default() > 0.0,
        "the presenter sends camera (mid 1) and screen (mid 2): {r}"
    );
    assert_eq!(
        r["afterStop"]["captions"],
        serde_json::json!(["Viv (you)", "Pia"]),
        "the screen tile goes when sharing stops: {r}"
    );
    assert_eq!(r["afterStop"]["button"], "Share screen", "{r}");
    assert_eq!(r["afterStop"]["ownScreenTile"], false, "{r}");
}

/// The client namespace's end of the veth pair (the interface that is not `lo`).
fn client_veth(net: &NetnsPair) -> String {
    let out = Command::new("ip")
        .args(["-n", &net.client, "-o", "link", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .find(|n| n != "lo")
        .expect("a veth in the client namespace")
}

/// A brief network loss: the link between the namespaces goes down (at
/// least 6 s, until both pages have reacted: Chromium reports ICE
/// `disconnected` some 7 s into a silent path). Both pages say
/// "reconnecting", send `ice_restart`, the server offers new ICE
/// credentials (same DTLS, same relay endpoint) and points the endpoint at
/// the new nomination, and media comes back: decoded frames and audio
/// energy grow again on both, over the new candidate pair.
#[test]
fn reconnects_by_ice_restart_after_a_network_loss() {
    let web = Web::start("rec");
    web.cli(&["conference", "add", "flaky"], "");
    let veth = client_veth(&web.net);
    let r = run_script(
        &web,
        "reconnect.mjs",
        &[("CONF", "flaky"), ("VETH", &veth), ("DOWN_SECS", "6")],
        Duration::from_secs(150),
    );
    assert_eq!(r["noticeText"], "Connection lost. Reconnecting…", "{r}");
    assert_eq!(r["noticeRole"], "status", "{r}");
    for who in ["ann", "ben"] {
        let at = |phase: &str, key: &str| r[phase][who][key].as_f64().unwrap_or_default();
        assert!(
            at("before", "videoFrames") > 10.0,
            "{who} decoded video before the loss: {r}"
        );
        assert_ne!(
            r["after2"][who]["local"], r["before"][who]["local"],
            "{who}: media runs on the restart's new candidate pair: {r}"
        );
        assert!(
            at("after2", "videoFrames") > at("after1", "videoFrames") + 20.0,
            "{who} decodes video again after the loss: {r}"
        );
        assert!(
            at("after2", "audioEnergy") > at("after1", "audioEnergy"),
            "{who} hears again after the loss: {r}"
        );
        assert!(
            at("after2", "videoFrames") > at("during", "videoFrames") + 20.0,
            "{who}: frames resumed: {r}"
        );
        let log = r[format!("{who}Log")].to_string();
        assert!(
            log.contains("reconnecting") && log.contains("reconnected"),
            "{who} said so on screen: {log}"
        );
        assert!(r["restarts"][who].as_u64().unwrap_or(0) >= 1, "{r}");
    }
    assert_eq!(r["tiles"], serde_json::json!(["Ben"]), "{r}");
    let log = log(web.dir.path());
    assert!(
        log.contains("web client restarts ICE") && log.contains("ICE restart: new credentials offered"),
        "the server restarted ICE: {log}"
    );
}
